//! One integration-test binary: the real app on a real database.

#[path = "../common/mod.rs"]
mod common;
mod helpers;

mod audit;
mod audit_coverage;
mod auth;
mod bad_input;
mod concurrency;
mod editing;
mod events;
mod findings;
mod flow;
mod history;
mod idempotency;
mod lists;
mod oauth;
mod ownership;
mod security;
mod sharding;
mod spec;
mod tokens;
mod webhooks;
