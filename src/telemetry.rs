//! Logging: tracing-subscriber set-up and one log line per request.

use std::sync::Arc;
use std::time::Instant;

use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::startup::AllowedMethods;

/// Installs the global subscriber: human-readable text or one JSON object
/// per line, filtered by `RUST_LOG` syntax.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    // Already installed (tests build many apps in one process): keep it.
    drop(result);
}

pub const REQUEST_ID: &str = "x-request-id";

/// Sent with every API response: no sniffing, no framing, no caching of
/// patient data, no referrer, HTTPS only once seen over HTTPS.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
];

/// A request id from the client is kept when it is short and plain.
fn sane_request_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| s.to_string())
}

/// Gives every request an `X-Request-Id` and logs one line when it ends:
/// method, path (never the query, which may hold patient names), status,
/// latency, request id and user id.
/// Also counts the request in the metrics, by route template.
pub struct RequestLog {
    pub routes: Arc<AllowedMethods>,
}

impl<E: Endpoint> Middleware<E> for RequestLog {
    type Output = RequestLogEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RequestLogEndpoint {
            inner: ep,
            routes: self.routes.clone(),
        }
    }
}

pub struct RequestLogEndpoint<E> {
    inner: E,
    routes: Arc<AllowedMethods>,
}

impl<E: Endpoint> Endpoint for RequestLogEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let request_id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(sane_request_id)
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            req.headers_mut().insert(REQUEST_ID, v);
        }
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let span = tracing::info_span!("request", request_id = %request_id, user_id = tracing::field::Empty);
        let started = Instant::now();
        let result = self.inner.call(req).instrument(span.clone()).await;
        let mut resp = match result {
            Ok(resp) => resp.into_response(),
            Err(err) => err.into_response(),
        };
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert(REQUEST_ID, v);
        }
        // The Swagger UI page runs inline scripts that this CSP would block.
        if !path.starts_with("/docs") {
            let headers = resp.headers_mut();
            for (name, value) in SECURITY_HEADERS {
                headers.insert(*name, HeaderValue::from_static(value));
            }
        }
        let status = resp.status().as_u16();
        let elapsed = started.elapsed().as_secs_f64();
        let route = self
            .routes
            .route_template(&path)
            .unwrap_or(if path.starts_with("/docs") {
                "/docs"
            } else {
                "unmatched"
            });
        crate::metrics::record_request(method.as_str(), route, status, elapsed);
        // A number (not a string) in JSON logs, to the microsecond.
        let latency_ms = (elapsed * 1_000_000.0).round() / 1000.0;
        span.in_scope(|| {
            tracing::info!(%method, route, status, latency_ms, "request");
        });
        Ok(resp)
    }
}
