//! Indexes behind every list filter and ordering, so that a page costs the
//! same with a million rows as with a thousand.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Patients are always listed per owner (administrators excepted), so each
/// index leads with `created_by`.
const BTREE: &[(&str, &str, &str)] = &[
    ("ix_patients_owner_name", "patients", "created_by, name, id"),
    ("ix_patients_owner_age", "patients", "created_by, age, id"),
    (
        "ix_patients_owner_gender",
        "patients",
        "created_by, gender, id",
    ),
    (
        "ix_patients_owner_created_at",
        "patients",
        "created_by, created_at, id",
    ),
    (
        "ix_patients_owner_updated_at",
        "patients",
        "created_by, updated_at, id",
    ),
    ("ix_doctors_name", "doctors", "name, id"),
    ("ix_doctors_specialization", "doctors", "specialization, id"),
    (
        "ix_doctors_specialization_key",
        "doctors",
        "specialization_key, id",
    ),
    ("ix_doctors_created_at", "doctors", "created_at, id"),
    ("ix_mappings_patient_id", "mappings", "patient_id, id"),
    ("ix_mappings_created_at", "mappings", "created_at, id"),
];

/// Case-insensitive substring search (`name_key LIKE '%x%'`, the key being
/// the name lower-cased by the server) on PostgreSQL, through trigrams. pg_trgm is a trusted extension: the
/// database owner may create it.
const TRIGRAM: &[(&str, &str)] = &[
    ("ix_patients_name_trgm", "patients"),
    ("ix_doctors_name_trgm", "doctors"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, table, columns) in BTREE {
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})"
            ))
            .await?;
        }
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                .await?;
            for (name, table) in TRIGRAM {
                db.execute_unprepared(&format!(
                    "CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (name_key gin_trgm_ops)"
                ))
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, _) in TRIGRAM {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
        }
        for (name, _, _) in BTREE {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
        }
        Ok(())
    }
}
