//! CORS for the origins of `CORS_ALLOWED_ORIGINS`: poem's `Cors`, with the
//! rules it does not keep by itself.
//!
//! - A same-origin request is not a CORS request, even though browsers send
//!   `Origin` on same-origin POSTs: an `Origin` naming this server (its
//!   host and port as the request's `Host` says, either scheme) is passed
//!   through untouched, without CORS headers, instead of being refused as
//!   an origin that is not listed.
//! - A preflight is granted only when every header it asks for is on the
//!   allow-list (poem grants it when one is), and the answer lists the
//!   allow-list, never the requested headers; methods are the API's own
//!   (never TRACE or CONNECT).
//! - Every answer carries `Vary: Origin`, since whether it carries
//!   `Access-Control-Allow-Origin` depends on it (poem adds it only for
//!   wildcard origins), so that no cache hands one origin's answer to
//!   another.

use std::collections::HashSet;

use poem::error::CorsError;
use poem::http::Method;
use poem::http::header::{self, HeaderName, HeaderValue};
use poem::middleware::{Cors, CorsEndpoint};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

/// The methods a cross-origin page may use.
const METHODS: [Method; 6] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// The request headers a cross-origin page may send.
const ALLOWED_HEADERS: [&str; 5] = [
    "authorization",
    "content-type",
    "if-match",
    "idempotency-key",
    "x-request-id",
];

/// The response headers a cross-origin page may read.
const EXPOSED_HEADERS: [&str; 8] = [
    "location",
    "etag",
    "x-total-count",
    "link",
    "x-request-id",
    "retry-after",
    "idempotent-replayed",
    "www-authenticate",
];

pub struct CorsPolicy {
    origins: Vec<String>,
}

impl CorsPolicy {
    pub fn new(origins: &[String]) -> Self {
        Self {
            origins: origins.to_vec(),
        }
    }
}

impl<E: Endpoint> Middleware<E> for CorsPolicy {
    type Output = CorsPolicyEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        let cors = self
            .origins
            .iter()
            .fold(Cors::new(), |cors, origin| {
                cors.allow_origin(origin.as_str())
            })
            .allow_credentials(false)
            .allow_methods(METHODS)
            .allow_headers(ALLOWED_HEADERS)
            .expose_headers(EXPOSED_HEADERS);
        CorsPolicyEndpoint {
            inner: cors.transform(ep),
            allowed_headers: ALLOWED_HEADERS
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect(),
        }
    }
}

pub struct CorsPolicyEndpoint<E> {
    inner: CorsEndpoint<E>,
    allowed_headers: HashSet<HeaderName>,
}

/// `host[:port]` of an origin (`scheme://host[:port]`), without the
/// scheme's default port, lower-cased.
fn origin_authority(origin: &str) -> Option<String> {
    let (scheme, authority) = origin.split_once("://")?;
    let authority = authority.to_ascii_lowercase();
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    Some(
        authority
            .strip_suffix(default_port)
            .map(str::to_owned)
            .unwrap_or(authority),
    )
}

/// Whether the request's `Origin` is this server, as the client reached it.
fn is_same_origin(req: &Request) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .and_then(origin_authority)
    else {
        return false;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .map(str::to_ascii_lowercase);
    host.is_some_and(|host| {
        let bare = |h: &str| {
            h.strip_suffix(":80")
                .or_else(|| h.strip_suffix(":443"))
                .unwrap_or(h)
                .to_owned()
        };
        host == origin || bare(&host) == bare(&origin)
    })
}

impl<E: Endpoint> CorsPolicyEndpoint<E> {
    /// Whether a preflight asks only for allowed headers.
    fn headers_allowed(&self, req: &Request) -> bool {
        req.headers()
            .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .all(|value| {
                value.to_str().is_ok_and(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|name| !name.is_empty())
                        .all(|name| {
                            HeaderName::try_from(name)
                                .is_ok_and(|name| self.allowed_headers.contains(&name))
                        })
                })
            })
    }
}

fn with_vary_origin(mut resp: Response) -> Response {
    let headers = resp.headers_mut();
    let varies = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            let v = v.trim();
            v == "*" || v.eq_ignore_ascii_case("origin")
        });
    if !varies {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

impl<E: Endpoint> Endpoint for CorsPolicyEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let preflight = req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight && !self.headers_allowed(&req) {
            let resp = poem::Error::from(CorsError::HeadersNotAllowed).into_response();
            return Ok(with_vary_origin(resp));
        }
        if !preflight && is_same_origin(&req) {
            // Not a CORS request: poem's check would refuse our own origin
            // unless it were listed.
            req.headers_mut().remove(header::ORIGIN);
        }
        let resp = match self.inner.call(req).await {
            Ok(resp) => resp.into_response(),
            Err(err) => err.into_response(),
        };
        Ok(with_vary_origin(resp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origins_default_port_is_its_bare_host() {
        assert_eq!(
            origin_authority("https://API.example:443").as_deref(),
            Some("api.example")
        );
        assert_eq!(
            origin_authority("http://127.0.0.1:8000").as_deref(),
            Some("127.0.0.1:8000")
        );
        assert_eq!(origin_authority("null"), None);
        assert_eq!(origin_authority("file://x"), None);
    }
}
