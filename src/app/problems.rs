//! Every error response is a problem document. Operations build theirs
//! (`error::ApiError`); what reaches here as anything else is poem's own
//! answer (no such route, wrong method, a panic caught, a CORS refusal) and
//! is rewritten from its status alone, keeping `Allow`, `Retry-After`,
//! `WWW-Authenticate` and the CORS headers (`Vary`,
//! `Access-Control-Allow-Origin`, `-Expose-Headers`). Nothing here reads
//! poem's message text.
//!
//! The one exception is the OAuth token endpoint, whose clients read RFC
//! 6749 errors: there, its own answers (`application/json`) are kept, and
//! anything else (a problem from a layer inside, poem's own error) becomes
//! an RFC 6749 error with the same status and headers.

use std::sync::Arc;

use poem::PathPattern;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::api::oauth::{Refusal, TOKEN_PATH};
use crate::api::routes::RouteTable;
use crate::error::{BEARER_CHALLENGE, PROBLEM_CONTENT_TYPE, Problem};

pub struct ProblemCatchAll {
    routes: Arc<RouteTable>,
}

impl ProblemCatchAll {
    pub fn new(routes: Arc<RouteTable>) -> Self {
        Self { routes }
    }
}

impl<E: Endpoint> Middleware<E> for ProblemCatchAll {
    type Output = ProblemCatchAllEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ProblemCatchAllEndpoint {
            inner: ep,
            routes: self.routes.clone(),
        }
    }
}

pub struct ProblemCatchAllEndpoint<E> {
    inner: E,
    routes: Arc<RouteTable>,
}

fn is_problem(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_CONTENT_TYPE))
}

/// What a client should read for an error poem answered by itself.
fn detail(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "No such resource.",
        StatusCode::METHOD_NOT_ALLOWED => "This method is not allowed on this resource.",
        StatusCode::UNAUTHORIZED => "Authentication credentials were not provided or are invalid.",
        StatusCode::FORBIDDEN => "This request is not allowed.",
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large.",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "The request body must be JSON (Content-Type: application/json)."
        }
        s if s.is_server_error() => "An unexpected error occurred.",
        _ => "The request is invalid.",
    }
}

/// Whether a request path is the token endpoint's (with or without the
/// trailing slash).
fn is_token_endpoint(path: &str) -> bool {
    path.trim_end_matches('/') == TOKEN_PATH
}

/// An error of the token endpoint, as RFC 6749 errors go: kept when the
/// endpoint wrote it, rewritten from its status otherwise.
fn oauth_error(resp: Response) -> Response {
    let own = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if own {
        return resp;
    }
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut out = Refusal::for_status(status.as_u16(), retry_after)
        .into_answer()
        .into_response();
    // The status it had, whatever the code's usual one.
    out.set_status(status);
    for name in [
        header::ALLOW,
        header::VARY,
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
    ] {
        if let Some(v) = resp.headers().get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    if let Some(pattern) = resp.data::<PathPattern>().cloned() {
        out.set_data(pattern);
    }
    out
}

impl<E: Endpoint> Endpoint for ProblemCatchAllEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let oauth = is_token_endpoint(req.uri().path());
        let resp = match self.inner.call(req).await {
            Ok(resp) => resp.into_response(),
            Err(err) => err.into_response(),
        };
        let status = resp.status();
        if !(status.is_client_error() || status.is_server_error()) {
            return Ok(resp);
        }
        if oauth {
            let mut out = oauth_error(resp);
            if status == StatusCode::METHOD_NOT_ALLOWED
                && let Some(allow) = out
                    .data::<PathPattern>()
                    .and_then(|p| self.routes.allow(&p.0))
                && let Ok(v) = HeaderValue::from_str(allow)
            {
                out.headers_mut().insert(header::ALLOW, v);
            }
            return Ok(out);
        }
        if is_problem(&resp) {
            return Ok(resp);
        }
        let mut out = Problem::new(status, detail(status)).into_http();
        for name in [
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
            header::ALLOW,
            header::VARY,
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
        ] {
            if let Some(v) = resp.headers().get(&name) {
                out.headers_mut().insert(name, v.clone());
            }
        }
        if status == StatusCode::UNAUTHORIZED
            && !out.headers().contains_key(header::WWW_AUTHENTICATE)
        {
            out.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BEARER_CHALLENGE),
            );
        }
        let pattern = resp.data::<PathPattern>().cloned();
        if status == StatusCode::METHOD_NOT_ALLOWED
            && let Some(allow) = pattern.as_ref().and_then(|p| self.routes.allow(&p.0))
            && let Ok(v) = HeaderValue::from_str(allow)
        {
            out.headers_mut().insert(header::ALLOW, v);
        }
        // The matched route stays known to the layers outside (metrics, logs).
        if let Some(pattern) = pattern {
            out.set_data(pattern);
        }
        Ok(out)
    }
}
