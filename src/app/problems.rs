//! Every error response is a problem document. Operations build theirs
//! (`error::ApiError`); what reaches here as anything else is poem's own
//! answer (no such route, wrong method, a panic caught, a CORS refusal) and
//! is rewritten from its status alone, keeping `Allow`, `Retry-After`,
//! `WWW-Authenticate` and the CORS headers (`Vary`,
//! `Access-Control-Allow-Origin`, `-Expose-Headers`). Nothing here reads
//! poem's message text.

use std::sync::Arc;

use poem::PathPattern;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

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

impl<E: Endpoint> Endpoint for ProblemCatchAllEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let resp = match self.inner.call(req).await {
            Ok(resp) => resp.into_response(),
            Err(err) => err.into_response(),
        };
        let status = resp.status();
        if !(status.is_client_error() || status.is_server_error()) || is_problem(&resp) {
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
