//! A change feed and signed webhooks.
//!
//! - Every version of `record_versions` gets its feed `position` once it is
//!   committed. On SQLite writers take turns (`BEGIN IMMEDIATE`), so a
//!   version's own id is its position, set in its transaction. On
//!   PostgreSQL a sequencer assigns positions after commit from
//!   `record_versions_position_seq`; a trigger announces every committed
//!   version on the `healthcare_versions` channel (a `NOTIFY` is delivered
//!   only when its transaction commits). Versions that exist already are
//!   positioned here, in id order.
//! - `feed_cursors`: how far the webhook dispatcher has read the feed.
//! - `webhooks`: subscriptions; `webhook_deliveries`: the queue, one row
//!   per (event, subscription); `webhook_attempts`: every attempt.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const COMMON: &[&str] = &[
    "CREATE TABLE feed_cursors (
       name VARCHAR(32) NOT NULL PRIMARY KEY,
       position BIGINT NOT NULL
     )",
    "INSERT INTO feed_cursors (name, position) VALUES ('webhooks', 0)",
    "CREATE TABLE webhooks (
       id {ID},
       owner_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
       url VARCHAR(2048) NOT NULL,
       events TEXT NOT NULL,
       payload VARCHAR(8) NOT NULL,
       secret VARCHAR(128) NOT NULL,
       enabled BOOLEAN NOT NULL,
       disabled_reason TEXT NULL,
       failing_since TIMESTAMP WITH TIME ZONE NULL,
       created_at TIMESTAMP WITH TIME ZONE NOT NULL,
       updated_at TIMESTAMP WITH TIME ZONE NOT NULL
     )",
    "CREATE INDEX ix_webhooks_owner ON webhooks (owner_id, id)",
    "CREATE TABLE webhook_deliveries (
       id {ID},
       webhook_id BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
       position BIGINT NULL,
       version_id BIGINT NULL,
       event_type VARCHAR(32) NOT NULL,
       state VARCHAR(16) NOT NULL,
       attempts INTEGER NOT NULL,
       next_attempt_at TIMESTAMP WITH TIME ZONE NOT NULL,
       locked_until TIMESTAMP WITH TIME ZONE NULL,
       created_at TIMESTAMP WITH TIME ZONE NOT NULL,
       finished_at TIMESTAMP WITH TIME ZONE NULL
     )",
    "CREATE UNIQUE INDEX ux_webhook_deliveries_event ON webhook_deliveries (webhook_id, position)",
    "CREATE INDEX ix_webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending'",
    "CREATE TABLE webhook_attempts (
       id {ID},
       delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
       webhook_id BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
       at TIMESTAMP WITH TIME ZONE NOT NULL,
       status_code INTEGER NULL,
       latency_ms BIGINT NOT NULL,
       error TEXT NULL
     )",
    "CREATE INDEX ix_webhook_attempts_webhook ON webhook_attempts (webhook_id, id)",
];

const POSTGRES: &[&str] = &[
    "CREATE SEQUENCE record_versions_position_seq",
    "UPDATE record_versions r SET position = n.p
     FROM (SELECT id, nextval('record_versions_position_seq') AS p
           FROM (SELECT id FROM record_versions WHERE position IS NULL ORDER BY id) s) n
     WHERE r.id = n.id",
    "CREATE OR REPLACE FUNCTION record_versions_announce() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       PERFORM pg_notify('healthcare_versions', '');
       RETURN NULL;
     END $$",
    "CREATE TRIGGER record_versions_announce AFTER INSERT ON record_versions
     FOR EACH STATEMENT EXECUTE FUNCTION record_versions_announce()",
];

const SQLITE: &[&str] = &["UPDATE record_versions SET position = id WHERE position IS NULL"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        let (id, backend) = if postgres {
            ("BIGSERIAL PRIMARY KEY", POSTGRES)
        } else {
            ("INTEGER PRIMARY KEY AUTOINCREMENT", SQLITE)
        };
        for statement in COMMON.iter().chain(backend) {
            db.execute_unprepared(&statement.replace("{ID}", id))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        for table in [
            "webhook_attempts",
            "webhook_deliveries",
            "webhooks",
            "feed_cursors",
        ] {
            db.execute_unprepared(&format!("DROP TABLE {table}"))
                .await?;
        }
        if postgres {
            db.execute_unprepared("DROP TRIGGER record_versions_announce ON record_versions")
                .await?;
            db.execute_unprepared("DROP FUNCTION record_versions_announce()")
                .await?;
            db.execute_unprepared("DROP SEQUENCE record_versions_position_seq")
                .await?;
        }
        Ok(())
    }
}
