//! Probes and the root redirect.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::DatabaseConnection;

use super::ApiTags;
use crate::error::status::*;
use crate::error::{ApiError, Res};

#[derive(Object)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

#[derive(ApiResponse)]
pub enum HealthOk {
    #[oai(status = 200)]
    Ok(Json<Health>),
}

#[derive(ApiResponse)]
pub enum Redirect {
    #[oai(status = 302)]
    Found(PlainText<String>, #[oai(header = "Location")] String),
}

pub struct OpsApi {
    pub db: DatabaseConnection,
    pub draining: Draining,
}

/// Set once the server is shutting down: `/readyz` answers 503 from then
/// on, so that load balancers stop sending requests while the server still
/// serves the ones that arrive meanwhile.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[OpenApi(tag = "ApiTags::Operations")]
impl OpsApi {
    /// Liveness probe
    ///
    /// 200 while the process is up. Does not touch the database.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> HealthOk {
        HealthOk::Ok(Json(Health {
            status: "ok".into(),
        }))
    }

    /// Readiness probe
    ///
    /// 200 when the database answers; 503 problem (with `Retry-After`) when
    /// it does not, and from the moment the server is asked to shut down.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self) -> Res<HealthOk, UNAVAILABLE> {
        if self.draining.is_set() {
            return Err(ApiError::unavailable_because("The server is shutting down.").into());
        }
        match self.db.ping().await {
            Ok(()) => Ok(HealthOk::Ok(Json(Health {
                status: "ok".into(),
            }))),
            Err(err) => {
                tracing::warn!(error = %err, "readiness check failed");
                Err(ApiError::unavailable().into())
            }
        }
    }

    /// Metrics
    ///
    /// Prometheus text format: `http_requests_total` and
    /// `http_request_duration_seconds` by method, route template and status,
    /// and database pool gauges.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self) -> PlainText<String> {
        PlainText(crate::metrics::render(&self.db))
    }

    /// Redirect to the API documentation.
    #[oai(path = "/", method = "get", hidden)]
    async fn root(&self) -> Redirect {
        Redirect::Found(PlainText("See /docs".into()), "/docs".into())
    }
}
