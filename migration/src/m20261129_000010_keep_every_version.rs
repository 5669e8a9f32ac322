//! Nothing is ever lost: soft delete, a version of every record change,
//! idempotency keys, the client of an audit event, and account keys
//! compared under Unicode normalisation.
//!
//! - `patients`, `doctors` and `mappings` get `deleted_at`; mappings get a
//!   `version`. A pair (patient, doctor) is unique among mappings that are
//!   not deleted. Deleted patients no longer count in `patient_counts`.
//! - `record_versions` holds every version of every patient, doctor and
//!   mapping: the full row after the change, who, when, which request. Rows
//!   that exist before this migration get a first version marked
//!   `imported`. `position` is the change feed's order, assigned after
//!   commit.
//! - `idempotency_keys` remembers POST and PATCH requests sent with an
//!   `Idempotency-Key`, for 24 hours.
//! - `users.tokens_valid_after`: access tokens issued before it are refused
//!   (deactivation ends every session).
//! - `users.username_key` and `email_key` are recomputed: NFKC and full
//!   case folding, the email domain in IDNA ASCII form. The rule is copied
//!   here as it stands at this release (a migration must not change
//!   meaning when the server's rule changes later). Where two existing
//!   accounts now share a key, the newer keeps its old key (and a warning
//!   is printed) so that the migration never fails on existing data.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use unicode_normalization::UnicodeNormalization;

#[derive(DeriveMigrationName)]
pub struct Migration;

const SHARDS: i64 = 16;

const COMMON: &[&str] = &[
    "ALTER TABLE patients ADD COLUMN deleted_at TIMESTAMP WITH TIME ZONE NULL",
    "ALTER TABLE doctors ADD COLUMN deleted_at TIMESTAMP WITH TIME ZONE NULL",
    "ALTER TABLE mappings ADD COLUMN deleted_at TIMESTAMP WITH TIME ZONE NULL",
    "ALTER TABLE mappings ADD COLUMN version BIGINT NOT NULL DEFAULT 1",
    "ALTER TABLE audit_events ADD COLUMN client_id BIGINT NULL",
    "ALTER TABLE users ADD COLUMN tokens_valid_after TIMESTAMP WITH TIME ZONE NULL",
    "DROP INDEX ux_mappings_patient_doctor",
    "CREATE UNIQUE INDEX ux_mappings_patient_doctor ON mappings (patient_id, doctor_id) WHERE deleted_at IS NULL",
    "CREATE INDEX ix_patients_deleted ON patients (deleted_at, id) WHERE deleted_at IS NOT NULL",
    "CREATE INDEX ix_doctors_deleted ON doctors (deleted_at, id) WHERE deleted_at IS NOT NULL",
    "CREATE TABLE record_versions (
       id {ID},
       resource VARCHAR(16) NOT NULL,
       resource_id BIGINT NOT NULL,
       version BIGINT NOT NULL,
       change VARCHAR(16) NOT NULL,
       owner_id BIGINT NULL,
       data TEXT NULL,
       actor_id BIGINT NULL,
       client_id BIGINT NULL,
       request_id VARCHAR(64) NOT NULL,
       at TIMESTAMP WITH TIME ZONE NOT NULL,
       position BIGINT NULL
     )",
    "CREATE UNIQUE INDEX ux_record_versions ON record_versions (resource, resource_id, version)",
    "CREATE UNIQUE INDEX ux_record_versions_position ON record_versions (position) WHERE position IS NOT NULL",
    "CREATE INDEX ix_record_versions_unpositioned ON record_versions (id) WHERE position IS NULL",
    "CREATE TABLE idempotency_keys (
       id {ID},
       principal VARCHAR(64) NOT NULL,
       idempotency_key VARCHAR(255) NOT NULL,
       fingerprint VARCHAR(64) NOT NULL,
       state VARCHAR(8) NOT NULL,
       lease_until TIMESTAMP WITH TIME ZONE NOT NULL,
       status INTEGER NULL,
       resource VARCHAR(16) NULL,
       resource_id BIGINT NULL,
       version BIGINT NULL,
       created_at TIMESTAMP WITH TIME ZONE NOT NULL
     )",
    "CREATE UNIQUE INDEX ux_idempotency_keys ON idempotency_keys (principal, idempotency_key)",
    "CREATE INDEX ix_idempotency_keys_created_at ON idempotency_keys (created_at)",
];

/// The patient count triggers of migration 9, now skipping deleted patients:
/// a soft delete counts as leaving, a restore as coming back.
const POSTGRES: &[&str] = &[
    "ALTER TABLE users ALTER COLUMN username_key TYPE VARCHAR(600)",
    "ALTER TABLE users ALTER COLUMN email_key TYPE VARCHAR(1024)",
    "DROP TRIGGER patients_count_insert ON patients",
    "DROP TRIGGER patients_count_delete ON patients",
    "DROP TRIGGER patients_count_move ON patients",
    "CREATE OR REPLACE FUNCTION patient_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.deleted_at IS NULL THEN
         UPDATE patient_counts SET n = n - 1
         WHERE owner_id = OLD.created_by AND shard = OLD.id % {SHARDS};
       END IF;
       IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted_at IS NULL THEN
         INSERT INTO patient_counts AS c (owner_id, shard, n) VALUES (NEW.created_by, NEW.id % {SHARDS}, 1)
         ON CONFLICT (owner_id, shard) DO UPDATE SET n = c.n + 1;
       END IF;
       RETURN NULL;
     END $$",
    "CREATE TRIGGER patients_count_insert AFTER INSERT ON patients
     FOR EACH ROW EXECUTE FUNCTION patient_counts_track()",
    "CREATE TRIGGER patients_count_delete AFTER DELETE ON patients
     FOR EACH ROW EXECUTE FUNCTION patient_counts_track()",
    "CREATE TRIGGER patients_count_move AFTER UPDATE OF created_by, id, deleted_at ON patients
     FOR EACH ROW WHEN (OLD.created_by <> NEW.created_by OR OLD.id <> NEW.id
                        OR (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL))
     EXECUTE FUNCTION patient_counts_track()",
];

const SQLITE: &[&str] = &[
    "DROP TRIGGER patients_count_insert",
    "DROP TRIGGER patients_count_delete",
    "DROP TRIGGER patients_count_move",
    "CREATE TRIGGER patients_count_insert AFTER INSERT ON patients WHEN NEW.deleted_at IS NULL BEGIN
       INSERT INTO patient_counts (owner_id, shard, n) VALUES (NEW.created_by, NEW.id % {SHARDS}, 1)
       ON CONFLICT (owner_id, shard) DO UPDATE SET n = n + 1;
     END",
    "CREATE TRIGGER patients_count_delete AFTER DELETE ON patients WHEN OLD.deleted_at IS NULL BEGIN
       UPDATE patient_counts SET n = n - 1 WHERE owner_id = OLD.created_by AND shard = OLD.id % {SHARDS};
     END",
    "CREATE TRIGGER patients_count_leave AFTER UPDATE OF created_by, id, deleted_at ON patients
     WHEN OLD.deleted_at IS NULL AND (NEW.deleted_at IS NOT NULL OR OLD.created_by <> NEW.created_by OR OLD.id <> NEW.id) BEGIN
       UPDATE patient_counts SET n = n - 1 WHERE owner_id = OLD.created_by AND shard = OLD.id % {SHARDS};
     END",
    "CREATE TRIGGER patients_count_move AFTER UPDATE OF created_by, id, deleted_at ON patients
     WHEN NEW.deleted_at IS NULL AND (OLD.deleted_at IS NOT NULL OR OLD.created_by <> NEW.created_by OR OLD.id <> NEW.id) BEGIN
       INSERT INTO patient_counts (owner_id, shard, n) VALUES (NEW.created_by, NEW.id % {SHARDS}, 1)
       ON CONFLICT (owner_id, shard) DO UPDATE SET n = n + 1;
     END",
];

/// The first version of every row that exists before this migration, with
/// the row as JSON in the shape the server writes (the entity's fields).
const IMPORT_POSTGRES: &[&str] = &[
    "INSERT INTO record_versions (resource, resource_id, version, change, owner_id, data, request_id, at)
     SELECT 'patient', p.id, p.version, 'imported', p.created_by, row_to_json(p)::text, 'migration', now()
     FROM patients p",
    "INSERT INTO record_versions (resource, resource_id, version, change, owner_id, data, request_id, at)
     SELECT 'doctor', d.id, d.version, 'imported', d.created_by, row_to_json(d)::text, 'migration', now()
     FROM doctors d",
    "INSERT INTO record_versions (resource, resource_id, version, change, owner_id, data, request_id, at)
     SELECT 'mapping', m.id, m.version, 'imported', p.created_by,
            (to_jsonb(m) || jsonb_build_object('doctor_detail', to_jsonb(d)))::text, 'migration', now()
     FROM mappings m JOIN patients p ON p.id = m.patient_id JOIN doctors d ON d.id = m.doctor_id",
];

const IMPORT_SQLITE: &[&str] = &[
    "INSERT INTO record_versions (resource, resource_id, version, change, owner_id, data, request_id, at)
     SELECT 'patient', id, version, 'imported', created_by,
            json_object('id', id, 'name', name, 'name_key', name_key, 'age', age, 'gender', gender,
                        'created_by', created_by, 'created_at', {TS:created_at}, 'updated_at', {TS:updated_at},
                        'version', version, 'deleted_at', {TS:deleted_at}),
            'migration', strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')
     FROM patients",
    "INSERT INTO record_versions (resource, resource_id, version, change, owner_id, data, request_id, at)
     SELECT 'doctor', id, version, 'imported', created_by,
            json_object('id', id, 'name', name, 'name_key', name_key, 'specialization', specialization,
                        'specialization_key', specialization_key, 'created_by', created_by,
                        'created_at', {TS:created_at}, 'updated_at', {TS:updated_at}, 'version', version,
                        'deleted_at', {TS:deleted_at}),
            'migration', strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')
     FROM doctors",
    "INSERT INTO record_versions (resource, resource_id, version, change, owner_id, data, request_id, at)
     SELECT 'mapping', m.id, m.version, 'imported', p.created_by,
            json_object('id', m.id, 'patient_id', m.patient_id, 'doctor_id', m.doctor_id,
                        'created_at', {TS:m.created_at}, 'version', m.version, 'deleted_at', {TS:m.deleted_at},
                        'doctor_detail', json_object('id', d.id, 'name', d.name, 'name_key', d.name_key,
                            'specialization', d.specialization, 'specialization_key', d.specialization_key,
                            'created_by', d.created_by, 'created_at', {TS:d.created_at}, 'updated_at', {TS:d.updated_at},
                            'version', d.version, 'deleted_at', {TS:d.deleted_at})),
            'migration', strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')
     FROM mappings m JOIN patients p ON p.id = m.patient_id JOIN doctors d ON d.id = m.doctor_id",
];

/// SQLite keeps timestamps as text; rows written by hand (`CURRENT_TIMESTAMP`)
/// may lack the offset the row's JSON needs: they are UTC.
fn with_offset(sql: &str) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(start) = rest.find("{TS:") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').unwrap_or(rest.len() - start);
        let col = &rest[start + 4..end];
        out.push_str(&format!(
            "CASE WHEN {col} GLOB '*[+-][0-9][0-9]:[0-9][0-9]' OR {col} GLOB '*Z' THEN {col} ELSE {col} || '+00:00' END"
        ));
        rest = &rest[(end + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

fn username_key(raw: &str) -> String {
    let nfkc: String = raw.trim().nfkc().collect();
    caseless::default_case_fold_str(&nfkc).nfkc().collect()
}

fn email_key(raw: &str) -> String {
    let raw = raw.trim();
    match raw.rsplit_once('@') {
        Some((local, domain)) => {
            let local: String = local.nfkc().collect();
            let domain = idna::domain_to_ascii(domain).unwrap_or_else(|_| domain.to_lowercase());
            format!(
                "{}@{}",
                caseless::default_case_fold_str(&local),
                domain.to_ascii_lowercase()
            )
        }
        None => raw.to_lowercase(),
    }
}

async fn rekey_users(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let backend = manager.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id, username, email, username_key, email_key FROM users ORDER BY id",
        ))
        .await?;
    let mut taken_usernames = std::collections::HashSet::new();
    let mut taken_emails = std::collections::HashSet::new();
    let mut updates = Vec::new();
    for row in &rows {
        let id: i64 = row.try_get("", "id")?;
        let username: String = row.try_get("", "username")?;
        let email: String = row.try_get("", "email")?;
        let old_username_key: String = row.try_get("", "username_key")?;
        let old_email_key: String = row.try_get("", "email_key")?;
        let mut new_username_key = username_key(&username);
        if !taken_usernames.insert(new_username_key.clone()) {
            eprintln!(
                "warning: user {id}'s username is the same as an older account's under Unicode normalisation; it keeps its old comparison key"
            );
            new_username_key = old_username_key.clone();
        }
        let mut new_email_key = email_key(&email);
        if !taken_emails.insert(new_email_key.clone()) {
            eprintln!(
                "warning: user {id}'s email is the same mailbox as an older account's; it keeps its old comparison key"
            );
            new_email_key = old_email_key.clone();
        }
        if new_username_key != old_username_key || new_email_key != old_email_key {
            updates.push((id, new_username_key, new_email_key));
        }
    }
    // Two passes, so that keys swapping between accounts never collide midway.
    for (id, _, _) in &updates {
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            placeholders(
                backend,
                "UPDATE users SET username_key = ? || '#' || CAST(id AS TEXT), email_key = ? || '#' || CAST(id AS TEXT) WHERE id = ?",
            ),
            [
                Value::from("rekey"),
                Value::from("rekey"),
                Value::from(*id),
            ],
        ))
        .await?;
    }
    for (id, username, email) in updates {
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            placeholders(
                backend,
                "UPDATE users SET username_key = ?, email_key = ? WHERE id = ?",
            ),
            [Value::from(username), Value::from(email), Value::from(id)],
        ))
        .await?;
    }
    Ok(())
}

/// `?` placeholders as the backend writes them.
fn placeholders(backend: DbBackend, sql: &str) -> String {
    if backend != DbBackend::Postgres {
        return sql.to_string();
    }
    let mut out = String::new();
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        let id = if postgres {
            "BIGSERIAL PRIMARY KEY"
        } else {
            "INTEGER PRIMARY KEY AUTOINCREMENT"
        };
        let (triggers, import) = if postgres {
            (POSTGRES, IMPORT_POSTGRES)
        } else {
            (SQLITE, IMPORT_SQLITE)
        };
        for statement in COMMON.iter().chain(triggers).chain(import) {
            db.execute_unprepared(&with_offset(
                &statement
                    .replace("{ID}", id)
                    .replace("{SHARDS}", &SHARDS.to_string()),
            ))
            .await?;
        }
        // Deleted patients no longer count; none are deleted yet, so the
        // counts of migration 9 stand.
        rekey_users(manager).await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "keeping every version cannot be undone without losing history; restore a backup instead"
                .into(),
        ))
    }
}
