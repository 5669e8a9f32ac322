//! The queries and the rules that need the database: who may see and change
//! what, uniqueness, pagination, and what every change leaves behind (a
//! version, an audit event, the outcome of an idempotent request), written
//! in the change's own transaction. Functions take a connection; nothing
//! here knows about HTTP.

pub mod accounts;
pub mod audit;
pub mod clients;
pub mod doctors;
pub mod feed;
pub mod history;
pub mod idempotency;
pub mod limits;
pub mod mappings;
pub mod patients;
pub mod refresh_tokens;
pub mod settings;
pub mod sqlite_file;
pub mod users;
pub mod webhooks;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, EntityTrait, Select, SqlErr, Statement,
};

use crate::domain::Actor;
pub use crate::domain::Page;
use crate::domain::audit::{Change, Event, Resource};

/// A list's sort: one allow-listed column, ascending or descending, with
/// `id` breaking ties so that pages never overlap or skip rows.
#[derive(Debug, Clone, Copy)]
pub struct Sort<C> {
    pub column: C,
    pub descending: bool,
}

/// Applies a sort (and the `id` tie-break) to a query.
pub fn sorted<E, C>(query: sea_orm::Select<E>, sort: Sort<C>, id: C) -> sea_orm::Select<E>
where
    E: sea_orm::EntityTrait,
    C: sea_orm::ColumnTrait,
{
    use sea_orm::{Order, QueryOrder};
    let order = || {
        if sort.descending {
            Order::Desc
        } else {
            Order::Asc
        }
    };
    query.order_by(sort.column, order()).order_by(id, order())
}

/// `key LIKE '%term%'` on a column holding a lower-cased copy of a field
/// (see [`fold_case`](crate::domain::fold_case)), with the term's own `%`,
/// `_` and `\` escaped: a case-insensitive substring match that behaves the
/// same on every database.
///
/// On PostgreSQL a trigram index can serve it, which pays off only over a
/// whole table and for terms of three characters or more (shorter ones have
/// no trigram, and the index would be read whole). Otherwise the column is
/// wrapped (`COALESCE(key, '')`, the same text) so that no plan, generic
/// plans included (see [`connect`]), reads the trigram index: an owner's
/// search then walks only the owner's rows.
pub fn contains_ci<C: sea_orm::ColumnTrait>(
    key: C,
    term: &str,
    whole_table: bool,
) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
    let escaped = crate::domain::fold_case(term)
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    let pattern = LikeExpr::new(format!("%{escaped}%")).escape('\\');
    if whole_table && term.chars().count() >= 3 {
        Expr::col(key).like(pattern)
    } else {
        Expr::from(Func::coalesce([Expr::col(key), Expr::val("")])).like(pattern)
    }
}

/// Rows of one page and how many rows the whole list has.
pub struct Listed<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// One page of `query`'s rows, in the order `order` puts them, with how
/// many rows the query has in all (a list's `X-Total-Count`).
pub async fn counted_page<E, C>(
    db: &C,
    query: Select<E>,
    page: Page,
    order: impl FnOnce(Select<E>) -> Select<E>,
) -> Result<Listed<E::Model>, DbErr>
where
    E: EntityTrait,
    E::Model: Send + Sync,
    C: ConnectionTrait,
{
    use sea_orm::{PaginatorTrait, QuerySelect};
    let total = query.clone().count(db).await?;
    let items = order(query)
        .limit(page.limit())
        .offset(page.offset())
        .all(db)
        .await?;
    Ok(Listed { items, total })
}

/// Every query is a prepared statement of a fixed shape whose best plan does
/// not depend on the values (keyed by owner or id, backed by an index for
/// each filter and ordering; see [`contains_ci`] for searches). PostgreSQL
/// would still plan each of them again on every execution (its "custom
/// plans" heuristic, fooled by `LIMIT $n`), which cost as much as running
/// them; generic plans are planned once per connection.
const GENERIC_PLANS: &str = "SET plan_cache_mode = force_generic_plan";

pub async fn connect(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    // Before SQLite opens (or creates) the file: owner-only, or no start.
    sqlite_file::protect(url)
        .map_err(|message| DbErr::Conn(sea_orm::RuntimeErr::Internal(message)))?;
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(acquire_timeout)
        .acquire_timeout(acquire_timeout)
        // A connection in steady use is not pinged before each query (that
        // would double the round trips); one idle for a second is, which
        // catches connections the server or a proxy dropped meanwhile.
        .test_before_acquire_if_idle_for(Duration::from_secs(1))
        .map_sqlx_postgres_pool_opts(|pool| {
            pool.after_connect(|conn, _| {
                Box::pin(async move {
                    sea_orm::sqlx::Executor::execute(conn, GENERIC_PLANS)
                        .await
                        .map(|_| ())
                })
            })
        })
        .sqlx_logging(false);
    let db = Database::connect(options).await?;
    if db.get_database_backend() == DbBackend::Sqlite {
        // WAL lets readers run beside the writer; the busy timeout makes
        // concurrent writers wait for each other instead of failing.
        for pragma in [
            "PRAGMA journal_mode = WAL",
            "PRAGMA busy_timeout = 5000",
            "PRAGMA foreign_keys = ON",
        ] {
            db.execute_unprepared(pragma).await?;
        }
    }
    Ok(db)
}

/// Applies pending migrations, in one transaction (so on one connection: a
/// pooled SQLite connection with an older snapshot could otherwise miss the
/// schema changes of the one before). On PostgreSQL an advisory lock makes
/// instances that start together run them one at a time (so exactly once).
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    const LOCK_KEY: i64 = 0x6865_616c_7468; // "health"
    let txn = begin_write(db).await?;
    if db.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [LOCK_KEY.into()],
        ))
        .await?;
    }
    Migrator::up(&*txn, None).await?;
    txn.commit().await
}

/// A transaction that writes. Used like a `DatabaseTransaction` (it derefs
/// to one); on SQLite it also holds this process's turn to write.
pub struct WriteTxn {
    txn: DatabaseTransaction,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::ops::Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl WriteTxn {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<sea_orm::ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<sea_orm::ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<sea_orm::QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }
}

/// Begins a transaction that writes. On SQLite it takes the write lock at
/// once (`BEGIN IMMEDIATE`): a transaction that reads first and writes later
/// could otherwise find another writer committed in between and fail
/// instead of waiting its turn. Writers of one SQLite file in this process
/// first queue for it in arrival order (for up to 5 s): SQLite's own busy handler retries
/// after growing sleeps, which let a late writer overtake one that has
/// waited for a second (create-patient's p99 under load went from over a
/// second to tens of milliseconds; bench/README.md). The busy handler still
/// arbitrates between processes.
pub async fn begin_write(db: &DatabaseConnection) -> Result<WriteTxn, DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    if db.get_database_backend() == DbBackend::Sqlite {
        // Bounded, so that a writer that somehow waits on itself falls back
        // to SQLite's busy timeout instead of hanging.
        let gate = sqlite_file::write_gate(db);
        let turn = tokio::time::timeout(Duration::from_secs(5), gate.lock_owned())
            .await
            .ok();
        let txn = db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        Ok(WriteTxn { txn, _turn: turn })
    } else {
        Ok(WriteTxn {
            txn: db.begin().await?,
            _turn: None,
        })
    }
}

pub fn is_postgres(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DbBackend::Postgres
}

/// The current time at the precision both databases store (microseconds),
/// so that what a write returns equals what a later read returns.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

/// Whether the error is a uniqueness violation (decided by the driver's
/// error class, not by the message text).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

pub fn is_foreign_key_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(SqlErr::ForeignKeyConstraintViolation(_))
    )
}

/// Connection-level failures: the pool timed out or the server went away.
pub fn is_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => matches!(
            e.as_ref(),
            sea_orm::sqlx::Error::Io(_)
                | sea_orm::sqlx::Error::PoolTimedOut
                | sea_orm::sqlx::Error::PoolClosed
                | sea_orm::sqlx::Error::WorkerCrashed
        ),
        _ => false,
    }
}

/// What a change writes besides itself, in its own transaction: who made
/// it (for the version and the audit event), the status the request will be
/// answered with (for the audit event), and the idempotency claim it
/// completes, if any.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    pub actor: &'a Actor,
    pub status: u16,
    pub claim: Option<i64>,
}

impl Write<'_> {
    /// Records one change of one record: its new version, the audit event
    /// and the idempotency claim's outcome. Every write of a patient, doctor
    /// or mapping goes through here.
    async fn record<T: serde::Serialize>(
        &self,
        txn: &DatabaseTransaction,
        change: Change,
        version: history::NewVersion<'_, T>,
    ) -> Result<(), DbErr> {
        let at = now();
        history::insert(txn, self.actor, change, &version, at).await?;
        audit::insert(
            txn,
            &[Event {
                at,
                actor: self.actor.clone(),
                action: change.action(),
                resource: version.resource,
                resource_id: Some(version.id),
                status: self.status,
            }],
        )
        .await?;
        if let Some(claim) = self.claim {
            idempotency::complete(
                txn,
                claim,
                self.status,
                version.resource,
                version.id,
                version.version,
            )
            .await?;
        }
        Ok(())
    }

    /// Applies `update` (a change of one row, bumping its version) in a
    /// write transaction and records the row it returns as `change`;
    /// `None` when no row matched (nothing was written).
    async fn apply<E>(
        &self,
        db: &DatabaseConnection,
        update: sea_orm::UpdateMany<E>,
        change: Change,
        version_of: impl Fn(&E::Model) -> history::NewVersion<'_, E::Model>,
    ) -> Result<Option<E::Model>, DbErr>
    where
        E: sea_orm::EntityTrait,
        E::Model: serde::Serialize + sea_orm::FromQueryResult + Send + Sync,
    {
        let txn = begin_write(db).await?;
        let Some(row) = update.exec_with_returning(&txn).await?.pop() else {
            return Ok(None);
        };
        self.record(&txn, change, version_of(&row)).await?;
        txn.commit().await?;
        Ok(Some(row))
    }

    /// An audit event for a change that leaves no version (erasure).
    async fn audit_only(
        &self,
        txn: &DatabaseTransaction,
        action: crate::domain::audit::Action,
        resource: Resource,
        id: i64,
    ) -> Result<(), DbErr> {
        audit::insert(
            txn,
            &[Event {
                at: now(),
                actor: self.actor.clone(),
                action,
                resource,
                resource_id: Some(id),
                status: self.status,
            }],
        )
        .await
    }
}
