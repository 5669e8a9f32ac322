//! The outermost layer: every request gets an `X-Request-Id` and its client
//! address (the operations read both as [`RequestMeta`]); every response
//! gets the security headers; every request is counted in the metrics and
//! logged once, labelled by the route the router matched.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use poem::PathPattern;
use poem::http::{HeaderValue, Method};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use tracing::Instrument;

use crate::api::context::RequestMeta;
use crate::api::routes::RouteTable;

pub const REQUEST_ID: &str = "x-request-id";

/// Sent with every API response: no sniffing, no framing, no caching of
/// patient data, no referrer, HTTPS only once seen over HTTPS.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
];

/// The API's policy: it serves data, never pages.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// A request id from the client is kept when it is short and plain.
fn sane_request_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| s.to_string())
}

/// The client's address: the socket peer, or — when the peer is a trusted
/// proxy — the last address in `X-Forwarded-For` that is not one.
fn client_ip(req: &Request, trusted_proxies: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
    if !trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted_proxies.contains(ip))
            .unwrap_or(peer),
    )
}

/// Methods get their own metric label; any other is counted as `OTHER`, so
/// that a client cannot add series by inventing methods.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

pub struct Observe {
    routes: Arc<RouteTable>,
    trusted_proxies: Arc<[IpAddr]>,
    docs_csp: Arc<str>,
}

impl Observe {
    pub fn new(routes: Arc<RouteTable>, trusted_proxies: Vec<IpAddr>, docs_csp: String) -> Self {
        Self {
            routes,
            trusted_proxies: trusted_proxies.into(),
            docs_csp: docs_csp.into(),
        }
    }
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ObserveEndpoint {
            inner: ep,
            routes: self.routes.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            docs_csp: self.docs_csp.clone(),
        }
    }
}

pub struct ObserveEndpoint<E> {
    inner: E,
    routes: Arc<RouteTable>,
    trusted_proxies: Arc<[IpAddr]>,
    docs_csp: Arc<str>,
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let request_id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(sane_request_id)
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let ip = client_ip(&req, &self.trusted_proxies);
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            req.headers_mut().insert(REQUEST_ID, v);
        }
        req.extensions_mut().insert(RequestMeta {
            request_id: request_id.clone(),
            ip,
        });
        let method = method_label(req.method());
        let docs = req.uri().path().starts_with("/docs");
        let span = tracing::info_span!("request", request_id = %request_id, user_id = tracing::field::Empty);
        let started = Instant::now();
        let result = self.inner.call(req).instrument(span.clone()).await;
        let mut resp = match result {
            Ok(resp) => resp.into_response(),
            Err(err) => err.into_response(),
        };
        let headers = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            headers.insert(REQUEST_ID, v);
        }
        for (name, value) in SECURITY_HEADERS {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        let csp = if docs { &*self.docs_csp } else { API_CSP };
        if let Ok(v) = HeaderValue::from_str(csp) {
            headers.insert("content-security-policy", v);
        }
        let status = resp.status().as_u16();
        let elapsed = started.elapsed().as_secs_f64();
        // Labels come from the router's own patterns (a bounded set), never
        // from the request's path.
        let pattern = resp.data::<PathPattern>().map(|p| p.0.clone());
        // A path no route matched is `unmatched`, whatever prefix route (the
        // API's, nested at `/`) saw it on its way.
        let route = match &pattern {
            _ if docs => "/docs",
            Some(pattern) => match self.routes.template(pattern) {
                Some(template) => template,
                None if pattern.starts_with('/') => pattern,
                None => "unmatched",
            },
            None => "unmatched",
        };
        crate::metrics::record_request(method, route, status, elapsed);
        // A number (not a string) in JSON logs, to the microsecond.
        let latency_ms = (elapsed * 1_000_000.0).round() / 1000.0;
        span.in_scope(|| {
            tracing::info!(%method, route, status, latency_ms, "request");
        });
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        let evil = Method::from_bytes(b"EVILMETHOD").unwrap();
        assert_eq!(method_label(&evil), "OTHER");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }
}
