//! One integration-test binary: the real app on a real database.

mod helpers;

mod auth;
mod bad_input;
mod concurrency;
mod flow;
mod ownership;
mod spec;
mod tokens;
