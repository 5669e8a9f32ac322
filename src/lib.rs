//! Healthcare backend API: the server as a library, so that tests build the
//! real application.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod entity;
pub mod error;
pub mod startup;
pub mod store;
pub mod telemetry;
