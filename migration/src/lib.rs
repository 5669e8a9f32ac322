//! Database migrations, one file per table, applied in order.

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_create_users_table;
mod m20261128_000002_create_patients_table;
mod m20261128_000003_create_doctors_table;
mod m20261128_000004_create_mappings_table;
mod m20261128_000005_create_refresh_tokens_table;
mod m20261128_000006_create_server_settings_table;
mod m20261128_000007_create_audit_events_table;
mod m20261128_000008_add_list_indexes;
mod m20261128_000009_create_patient_counts_table;
mod m20261129_000010_keep_every_version;
mod m20261129_000011_create_service_clients_table;
mod m20261129_000012_create_auth_limits_table;
mod m20261129_000013_change_feed_and_webhooks;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_create_users_table::Migration),
            Box::new(m20261128_000002_create_patients_table::Migration),
            Box::new(m20261128_000003_create_doctors_table::Migration),
            Box::new(m20261128_000004_create_mappings_table::Migration),
            Box::new(m20261128_000005_create_refresh_tokens_table::Migration),
            Box::new(m20261128_000006_create_server_settings_table::Migration),
            Box::new(m20261128_000007_create_audit_events_table::Migration),
            Box::new(m20261128_000008_add_list_indexes::Migration),
            Box::new(m20261128_000009_create_patient_counts_table::Migration),
            Box::new(m20261129_000010_keep_every_version::Migration),
            Box::new(m20261129_000011_create_service_clients_table::Migration),
            Box::new(m20261129_000012_create_auth_limits_table::Migration),
            Box::new(m20261129_000013_change_feed_and_webhooks::Migration),
        ]
    }
}

/// The 64-bit auto-increment primary key every table uses.
pub(crate) fn id_column<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

pub(crate) fn timestamp<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}
