//! One integration-test binary: the real app on a real database.

mod helpers;

mod auth;
mod flow;
mod spec;
