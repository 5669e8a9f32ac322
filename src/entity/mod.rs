//! SeaORM entities: the database rows. Never exposed as API types.

pub mod audit_event;
pub mod doctor;
pub mod idempotency_key;
pub mod mapping;
pub mod patient;
pub mod patient_count;
pub mod record_version;
pub mod refresh_token;
pub mod server_setting;
pub mod service_client;
pub mod user;
pub mod webhook;
pub mod webhook_attempt;
pub mod webhook_delivery;
