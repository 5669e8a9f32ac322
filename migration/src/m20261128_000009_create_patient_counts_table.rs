//! How many patients each user has, kept exact by triggers on `patients`,
//! so that a list's `X-Total-Count` is one primary-key read instead of
//! counting the owner's rows on every page.
//!
//! The triggers run inside the writing transaction: the count is exactly
//! what a query in the same snapshot would count, whichever instance (or a
//! hand-written SQL statement) wrote the rows. There is no foreign key to
//! `users`: deleting a user cascades to their patients, and the cascade's
//! triggers must be able to update the count while the user row goes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Each owner's count is split over `SHARDS` rows, picked by patient id, so
/// that one owner's concurrent creates do not all queue on one row lock (a
/// single row made creates twice as expensive under load); a count is the
/// sum of the owner's rows.
const SHARDS: i64 = 16;

/// PostgreSQL.
const POSTGRES: &[&str] = &[
    "CREATE FUNCTION patient_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       IF TG_OP IN ('DELETE', 'UPDATE') THEN
         UPDATE patient_counts SET n = n - 1
         WHERE owner_id = OLD.created_by AND shard = OLD.id % {SHARDS};
       END IF;
       IF TG_OP IN ('INSERT', 'UPDATE') THEN
         INSERT INTO patient_counts AS c (owner_id, shard, n) VALUES (NEW.created_by, NEW.id % {SHARDS}, 1)
         ON CONFLICT (owner_id, shard) DO UPDATE SET n = c.n + 1;
       END IF;
       RETURN NULL;
     END $$",
    "CREATE TRIGGER patients_count_insert AFTER INSERT ON patients
     FOR EACH ROW EXECUTE FUNCTION patient_counts_track()",
    "CREATE TRIGGER patients_count_delete AFTER DELETE ON patients
     FOR EACH ROW EXECUTE FUNCTION patient_counts_track()",
    "CREATE TRIGGER patients_count_move AFTER UPDATE OF created_by, id ON patients
     FOR EACH ROW WHEN (OLD.created_by <> NEW.created_by OR OLD.id <> NEW.id)
     EXECUTE FUNCTION patient_counts_track()",
];

/// SQLite: the same three triggers.
const SQLITE: &[&str] = &[
    "CREATE TRIGGER patients_count_insert AFTER INSERT ON patients BEGIN
       INSERT INTO patient_counts (owner_id, shard, n) VALUES (NEW.created_by, NEW.id % {SHARDS}, 1)
       ON CONFLICT (owner_id, shard) DO UPDATE SET n = n + 1;
     END",
    "CREATE TRIGGER patients_count_delete AFTER DELETE ON patients BEGIN
       UPDATE patient_counts SET n = n - 1 WHERE owner_id = OLD.created_by AND shard = OLD.id % {SHARDS};
     END",
    "CREATE TRIGGER patients_count_move AFTER UPDATE OF created_by, id ON patients
     WHEN OLD.created_by <> NEW.created_by OR OLD.id <> NEW.id BEGIN
       UPDATE patient_counts SET n = n - 1 WHERE owner_id = OLD.created_by AND shard = OLD.id % {SHARDS};
       INSERT INTO patient_counts (owner_id, shard, n) VALUES (NEW.created_by, NEW.id % {SHARDS}, 1)
       ON CONFLICT (owner_id, shard) DO UPDATE SET n = n + 1;
     END",
];

const TRIGGERS: &[&str] = &[
    "patients_count_insert",
    "patients_count_delete",
    "patients_count_move",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PatientCounts::Table)
                    .col(
                        ColumnDef::new(PatientCounts::OwnerId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(PatientCounts::Shard).integer().not_null())
                    .col(ColumnDef::new(PatientCounts::N).big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(PatientCounts::OwnerId)
                            .col(PatientCounts::Shard),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // Patients written before this migration; migrations run in one
        // transaction on PostgreSQL, so no row slips between this and the
        // triggers.
        db.execute_unprepared(&format!(
            "INSERT INTO patient_counts (owner_id, shard, n)
             SELECT created_by, id % {SHARDS}, count(*) FROM patients GROUP BY created_by, id % {SHARDS}"
        ))
        .await?;
        let statements = match manager.get_database_backend() {
            DbBackend::Postgres => POSTGRES,
            _ => SQLITE,
        };
        for statement in statements {
            db.execute_unprepared(&statement.replace("{SHARDS}", &SHARDS.to_string()))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        for trigger in TRIGGERS {
            let on = if postgres { " ON patients" } else { "" };
            db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {trigger}{on}"))
                .await?;
        }
        if postgres {
            db.execute_unprepared("DROP FUNCTION IF EXISTS patient_counts_track()")
                .await?;
        }
        manager
            .drop_table(Table::drop().table(PatientCounts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum PatientCounts {
    Table,
    OwnerId,
    Shard,
    N,
}
