//! Where the authentication limits live: in this process (one instance, the
//! SQLite default), or in the database, shared by every instance
//! (PostgreSQL).
//!
//! In the database each limit key is one row of the unlogged table
//! `auth_limits`: the key and the GCRA theoretical arrival time in
//! microseconds (for a remembered address, the time it is remembered
//! until). Each step is one statement, one round trip: counting an attempt
//! is a single `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` that decides
//! and counts under the row lock (so instances racing on one key never both
//! get the last allowance), and a check is a single `SELECT`. Time is the
//! database's clock, the same for every instance. The table is unlogged:
//! no WAL write, no fsync per login; a crash of the database (or a
//! failover) forgets the budgets, which only gives guessers a fresh hour.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};

use crate::auth::limits::{LimitError, LimitStore, MemoryLimits};

/// The limit store a server runs with.
#[derive(Clone)]
pub enum LimitBackend {
    Memory(MemoryLimits),
    Database(DatabaseLimits),
}

impl LimitBackend {
    /// Shared by every instance on PostgreSQL; in this process otherwise
    /// (SQLite serves one instance). Chosen by the URL, as the connection
    /// may be a placeholder (`healthcare openapi`). `scope` prefixes the keys
    /// (tests that share a database give each server its own).
    pub fn for_database(database_url: &str, db: &DatabaseConnection, scope: Option<&str>) -> Self {
        if database_url.starts_with("postgres") {
            Self::Database(DatabaseLimits {
                db: db.clone(),
                scope: scope.map(|s| format!("{s}:")).unwrap_or_default(),
            })
        } else {
            Self::Memory(MemoryLimits::default())
        }
    }
}

impl LimitStore for LimitBackend {
    async fn gcra(
        &self,
        key: &str,
        emission: Duration,
        burst: u32,
        consume: bool,
    ) -> Result<Result<(), Duration>, LimitError> {
        match self {
            Self::Memory(store) => store.gcra(key, emission, burst, consume).await,
            Self::Database(store) => store.gcra(key, emission, burst, consume).await,
        }
    }

    async fn remember(&self, key: &str, ttl: Duration) -> Result<(), LimitError> {
        match self {
            Self::Memory(store) => store.remember(key, ttl).await,
            Self::Database(store) => store.remember(key, ttl).await,
        }
    }

    async fn remembered(&self, key: &str) -> Result<bool, LimitError> {
        match self {
            Self::Memory(store) => store.remembered(key).await,
            Self::Database(store) => store.remembered(key).await,
        }
    }
}

/// Limit state in PostgreSQL's `auth_limits`, shared by every instance.
#[derive(Clone)]
pub struct DatabaseLimits {
    db: DatabaseConnection,
    scope: String,
}

/// The database's clock in microseconds, fixed for the statement.
const NOW_US: &str = "(EXTRACT(EPOCH FROM statement_timestamp()) * 1000000)::BIGINT";

/// One GCRA step that counts: a new key is allowed and gets `now +
/// emission`; an existing one is refused when its arrival time is more than
/// `tolerance` ahead (and left as is), else moves on by `emission`. Every
/// `SET` expression reads the row as it was, so `refused` and `tat_us`
/// decide on the same value.
fn consume_sql() -> String {
    format!(
        "INSERT INTO auth_limits AS l (key, tat_us, seen_us, refused) \
         VALUES ($1, {NOW_US} + $2, {NOW_US}, FALSE) \
         ON CONFLICT (key) DO UPDATE SET \
           refused = l.tat_us - EXCLUDED.seen_us > $3, \
           tat_us = CASE WHEN l.tat_us - EXCLUDED.seen_us > $3 THEN l.tat_us \
                    ELSE GREATEST(l.tat_us, EXCLUDED.seen_us) + $2 END, \
           seen_us = EXCLUDED.seen_us \
         RETURNING tat_us, seen_us, refused"
    )
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn from_micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

fn db_error(err: sea_orm::DbErr) -> LimitError {
    LimitError(err.to_string())
}

impl DatabaseLimits {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.scope)
    }

    /// Drops rows that no longer hold anything (an arrival time or a
    /// remembered-until in the past reads the same as no row), now and then.
    async fn prune_sometimes(&self) {
        if rand::random_range(0..1000) != 0 {
            return;
        }
        let sql = format!("DELETE FROM auth_limits WHERE tat_us < {NOW_US}");
        if let Err(err) = self
            .db
            .execute_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
        {
            tracing::warn!(error = %err, "could not prune auth_limits");
        }
    }
}

impl LimitStore for DatabaseLimits {
    async fn gcra(
        &self,
        key: &str,
        emission: Duration,
        burst: u32,
        consume: bool,
    ) -> Result<Result<(), Duration>, LimitError> {
        let tolerance = micros(emission * burst.saturating_sub(1));
        let key = self.key(key);
        if consume {
            self.prune_sometimes().await;
            let row = self
                .db
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    consume_sql(),
                    [
                        Value::from(key),
                        Value::from(micros(emission)),
                        Value::from(tolerance),
                    ],
                ))
                .await
                .map_err(db_error)?
                .ok_or_else(|| LimitError("the limit step returned no row".into()))?;
            let tat: i64 = row.try_get("", "tat_us").map_err(db_error)?;
            let now: i64 = row.try_get("", "seen_us").map_err(db_error)?;
            let refused: bool = row.try_get("", "refused").map_err(db_error)?;
            return Ok(if refused {
                Err(from_micros(tat - now - tolerance))
            } else {
                Ok(())
            });
        }
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!("SELECT tat_us - {NOW_US} AS ahead FROM auth_limits WHERE key = $1"),
                [Value::from(key)],
            ))
            .await
            .map_err(db_error)?;
        let ahead: i64 = match row {
            Some(row) => row.try_get("", "ahead").map_err(db_error)?,
            None => return Ok(Ok(())),
        };
        Ok(if ahead > tolerance {
            Err(from_micros(ahead - tolerance))
        } else {
            Ok(())
        })
    }

    async fn remember(&self, key: &str, ttl: Duration) -> Result<(), LimitError> {
        let sql = format!(
            "INSERT INTO auth_limits (key, tat_us, seen_us, refused) \
             VALUES ($1, {NOW_US} + $2, {NOW_US}, FALSE) \
             ON CONFLICT (key) DO UPDATE SET tat_us = EXCLUDED.tat_us, seen_us = EXCLUDED.seen_us"
        );
        self.db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                [Value::from(self.key(key)), Value::from(micros(ttl))],
            ))
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn remembered(&self, key: &str) -> Result<bool, LimitError> {
        let sql =
            format!("SELECT 1 AS known FROM auth_limits WHERE key = $1 AND tat_us > {NOW_US}");
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                [Value::from(self.key(key))],
            ))
            .await
            .map_err(db_error)?;
        Ok(row.is_some())
    }
}
