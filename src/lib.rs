//! Healthcare backend API: the server as a library, so that tests build the
//! real application.

// ApiError carries its problem document inline: errors are the cold path,
// and boxing would only move the allocation.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod entity;
pub mod error;
pub mod metrics;
pub mod store;
pub mod telemetry;
pub mod webhooks;
