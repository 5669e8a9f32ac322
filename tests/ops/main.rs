//! Operational behaviour of the real `healthcare` binary: database outages,
//! several instances on one database, graceful shutdown, metrics, request
//! ids and JSON logs. Each test runs its own server process.
//!
//! Tests that need PostgreSQL (a TCP proxy in front of it, a second
//! database) run when `TEST_DATABASE_URL` is set, as `.ci/run` does, and
//! skip with a note otherwise.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod cli;
mod connections;
mod durability;
mod findings;
mod instances;
mod logs;
mod metrics;
mod outage;
mod proxy;
mod shutdown;
mod webhooks;
