//! Authentication limits shared by every instance on PostgreSQL: one row per
//! limit key (per client IP, per account, per known address) with its GCRA
//! theoretical arrival time in microseconds of the database's clock (for a
//! known address, the time it is remembered until), the clock reading of
//! the last step and whether that step was refused.
//!
//! Unlogged: no WAL write and no fsync for every login attempt. A crash or
//! a failover empties it, which gives guessers at most a fresh budget.
//! SQLite serves a single instance, which keeps its limits in memory: the
//! table is not created there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNLOGGED TABLE auth_limits (
                   key TEXT PRIMARY KEY,
                   tat_us BIGINT NOT NULL,
                   seen_us BIGINT NOT NULL,
                   refused BOOLEAN NOT NULL
                 )",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE IF EXISTS auth_limits")
            .await?;
        Ok(())
    }
}
