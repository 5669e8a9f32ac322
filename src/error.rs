//! One error type for the whole API and the one place that turns errors into
//! RFC 9457 problem documents (`application/problem+json`).

use std::collections::BTreeMap;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use sea_orm::{DbErr, SqlErr};

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Field name → list of messages, as Django REST framework reports them.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// An RFC 9457 problem document.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename = "Problem")]
pub struct Problem {
    /// A URI reference naming the kind of problem.
    #[oai(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem (the HTTP reason phrase).
    pub title: String,
    /// The HTTP status code of this response.
    pub status: u16,
    /// A human-readable sentence about this occurrence.
    pub detail: String,
    /// Field errors, keyed by field name (only for invalid input).
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<FieldErrors>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        let title = status.canonical_reason().unwrap_or("Error").to_string();
        let slug = title.to_ascii_lowercase().replace([' ', '\''], "-");
        Self {
            kind: format!("https://httpstatuses.io/{}#{}", status.as_u16(), slug),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
        }
    }

    /// Render as a bare HTTP response, used by the catch-all for errors that
    /// never went through [`ApiError`].
    pub fn into_http(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({
            "type": self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        });
        let mut body = body;
        if let Some(errors) = self.errors {
            body["errors"] = serde_json::json!(errors);
        }
        Response::builder()
            .status(status)
            .content_type(PROBLEM_CONTENT_TYPE)
            .body(body.to_string())
    }
}

const BEARER_CHALLENGE: &str = "Bearer realm=\"healthcare\"";

/// Every error an operation can answer with. Each variant is a problem document.
#[derive(ApiResponse, Debug)]
pub enum ApiError {
    /// The request is malformed or a field is invalid (`errors` names the fields).
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// The access token is missing, malformed, expired or revoked, or the credentials are wrong.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(
        Json<Problem>,
        /// RFC 6750 challenge.
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// Authenticated, but not allowed to do this.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// No such resource, or it is not yours.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The resource already exists (uniqueness conflict).
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// `If-Match` does not match the current `ETag`.
    #[oai(status = 412, content_type = "application/problem+json")]
    PreconditionFailed(Json<Problem>),
    /// The request body is larger than the configured limit.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// The request body is not `application/json`.
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    /// Too many requests; retry after the given number of seconds.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(
        Json<Problem>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
    ),
    /// An unexpected server error (details are in the server log, never in the response).
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// The database is unavailable; retry after the given number of seconds.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(
        Json<Problem>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest(Json(Problem::new(StatusCode::BAD_REQUEST, detail)))
    }

    /// A 400 naming the fields that are wrong.
    pub fn invalid(errors: FieldErrors) -> Self {
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        let detail = format!("Invalid input in: {}.", fields.join(", "));
        let mut problem = Problem::new(StatusCode::BAD_REQUEST, detail);
        problem.errors = Some(errors);
        Self::BadRequest(Json(problem))
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::new();
        errors.insert(field.to_string(), vec![message.into()]);
        Self::invalid(errors)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::Unauthorized(
            Json(Problem::new(StatusCode::UNAUTHORIZED, detail)),
            BEARER_CHALLENGE.to_string(),
        )
    }

    /// A 401 for a token that was presented but is not acceptable (RFC 6750 §3.1).
    pub fn invalid_token(detail: impl Into<String>) -> Self {
        Self::Unauthorized(
            Json(Problem::new(StatusCode::UNAUTHORIZED, detail)),
            format!("{BEARER_CHALLENGE}, error=\"invalid_token\""),
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::Forbidden(Json(Problem::new(StatusCode::FORBIDDEN, detail)))
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound(Json(Problem::new(
            StatusCode::NOT_FOUND,
            format!("{what} not found."),
        )))
    }

    pub fn conflict(errors: FieldErrors, detail: impl Into<String>) -> Self {
        let mut problem = Problem::new(StatusCode::CONFLICT, detail);
        problem.errors = Some(errors);
        Self::Conflict(Json(problem))
    }

    pub fn precondition_failed() -> Self {
        Self::PreconditionFailed(Json(Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "The resource has changed since you read it (If-Match does not match its ETag).",
        )))
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        Self::TooManyRequests(
            Json(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many attempts. Try again in {retry_after} seconds."),
            )),
            retry_after,
        )
    }

    pub fn unavailable() -> Self {
        Self::Unavailable(
            Json(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unavailable. Try again shortly.",
            )),
            RETRY_AFTER_UNAVAILABLE,
        )
    }

    /// Logs the cause with context; the client sees only a bare 500 problem.
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "{context}");
        Self::Internal(Json(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error occurred.",
        )))
    }

    /// Maps a database error that no caller handled: outages become 503,
    /// everything else a logged 500.
    pub fn from_db(context: &str, err: DbErr) -> Self {
        if is_unavailable(&err) {
            tracing::warn!(error = %err, "{context}: database unavailable");
            return Self::unavailable();
        }
        Self::internal(context, err)
    }
}

const RETRY_AFTER_UNAVAILABLE: u64 = 2;

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        Self::from_db("database error", err)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let problem = match self {
            Self::BadRequest(p)
            | Self::Forbidden(p)
            | Self::NotFound(p)
            | Self::Conflict(p)
            | Self::PreconditionFailed(p)
            | Self::PayloadTooLarge(p)
            | Self::UnsupportedMediaType(p)
            | Self::Internal(p)
            | Self::Unauthorized(p, _)
            | Self::TooManyRequests(p, _)
            | Self::Unavailable(p, _) => p,
        };
        write!(f, "{} {}", problem.status, problem.detail)
    }
}

/// Whether the error is a uniqueness violation (decided by the driver's
/// error class, not by the message text).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

pub fn is_foreign_key_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(SqlErr::ForeignKeyConstraintViolation(_))
    )
}

/// Connection-level failures: the pool timed out or the server went away.
pub fn is_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => matches!(
            e.as_ref(),
            sea_orm::sqlx::Error::Io(_)
                | sea_orm::sqlx::Error::PoolTimedOut
                | sea_orm::sqlx::Error::PoolClosed
                | sea_orm::sqlx::Error::WorkerCrashed
        ),
        _ => false,
    }
}

/// Turns every error response that is not already a problem document (poem's
/// own errors: unknown route, wrong method, bad path parameter, missing
/// token, payload limits, panics) into one, keeping the status code.
/// Problems built by handlers pass through untouched.
pub struct ProblemCatchAll {
    allowed: std::sync::Arc<crate::startup::AllowedMethods>,
}

impl ProblemCatchAll {
    pub fn new(allowed: std::sync::Arc<crate::startup::AllowedMethods>) -> Self {
        Self { allowed }
    }
}

impl<E: Endpoint> Middleware<E> for ProblemCatchAll {
    type Output = ProblemCatchAllEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ProblemCatchAllEndpoint {
            inner: ep,
            allowed: self.allowed.clone(),
        }
    }
}

pub struct ProblemCatchAllEndpoint<E> {
    inner: E,
    allowed: std::sync::Arc<crate::startup::AllowedMethods>,
}

impl<E: Endpoint> Endpoint for ProblemCatchAllEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let path = req.uri().path().to_string();
        let resp = match self.inner.call(req).await {
            Ok(resp) => resp.into_response(),
            Err(err) => err.into_response(),
        };
        let status = resp.status();
        if !(status.is_client_error() || status.is_server_error()) || is_problem(&resp) {
            return Ok(resp);
        }
        Ok(self.to_problem(&path, resp).await)
    }
}

fn is_problem(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_CONTENT_TYPE))
}

impl<E> ProblemCatchAllEndpoint<E> {
    async fn to_problem(&self, path: &str, resp: Response) -> Response {
        let status = resp.status();
        let (parts, body) = resp.into_parts();
        let detail = match status {
            StatusCode::NOT_FOUND => "No such resource.".to_string(),
            StatusCode::METHOD_NOT_ALLOWED => {
                "This method is not allowed on this resource.".to_string()
            }
            StatusCode::UNAUTHORIZED => {
                "Authentication credentials were not provided or are invalid.".to_string()
            }
            StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large.".to_string(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                "The request body must be JSON (Content-Type: application/json).".to_string()
            }
            s if s.is_server_error() => "An unexpected error occurred.".to_string(),
            _ => {
                // poem's own 4xx messages describe the input, never internals.
                let text = body.into_string().await.unwrap_or_default();
                if text.is_empty() {
                    "The request is invalid.".to_string()
                } else {
                    clean_poem_message(&text)
                }
            }
        };
        let mut problem = Problem::new(status, detail);
        if status == StatusCode::BAD_REQUEST {
            problem.errors = param_errors(&problem.detail);
        }
        let mut out = problem.into_http();
        for name in [header::RETRY_AFTER, header::WWW_AUTHENTICATE, header::ALLOW] {
            if let Some(v) = parts.headers.get(&name) {
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
        if status == StatusCode::METHOD_NOT_ALLOWED
            && let Some(allow) = self.allowed.allow_header(path)
            && let Ok(v) = HeaderValue::from_str(allow)
        {
            out.headers_mut().insert(header::ALLOW, v);
        }
        out
    }
}

/// A query or header parameter that poem-openapi refused ("Failed to parse
/// parameter `limit`: verification failed. minimum(1, exclusive: false).")
/// as a DRF-style field error keyed by the parameter's name.
fn param_errors(detail: &str) -> Option<FieldErrors> {
    let rest = detail.strip_prefix("Failed to parse parameter `")?;
    let (name, reason) = rest.split_once("`: ")?;
    let bound = |prefix: &str| {
        reason
            .strip_prefix(prefix)
            .and_then(|r| r.split([',', ')']).next())
            .map(str::to_string)
    };
    let message = if let Some(n) = bound("verification failed. minimum(") {
        format!("Ensure this value is greater than or equal to {n}.")
    } else if let Some(n) = bound("verification failed. maximum(") {
        format!("Ensure this value is less than or equal to {n}.")
    } else if reason.contains("integer") {
        "A valid integer is required.".to_string()
    } else {
        "Not a valid value.".to_string()
    };
    let mut errors = FieldErrors::new();
    errors.insert(name.to_string(), vec![message]);
    Some(errors)
}

/// poem-openapi's messages start with the layer that failed
/// ("failed to parse path `id`: ..."); keep them, capitalised as a sentence.
fn clean_poem_message(text: &str) -> String {
    let text = text.trim();
    // Every path parameter of this API is a 64-bit id.
    if text.starts_with("failed to parse path") {
        return "The id in the URL must be a whole number.".to_string();
    }
    let mut chars = text.chars();
    let mut out = match chars.next() {
        Some(c) => c.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// Status bits for [`Errors`]: which problems an operation documents.
pub mod status {
    pub const BAD_REQUEST: u32 = 1 << 0;
    pub const UNAUTHORIZED: u32 = 1 << 1;
    pub const FORBIDDEN: u32 = 1 << 2;
    pub const NOT_FOUND: u32 = 1 << 3;
    pub const CONFLICT: u32 = 1 << 4;
    pub const PRECONDITION_FAILED: u32 = 1 << 5;
    pub const PAYLOAD_TOO_LARGE: u32 = 1 << 6;
    pub const UNSUPPORTED_MEDIA_TYPE: u32 = 1 << 7;
    pub const TOO_MANY_REQUESTS: u32 = 1 << 8;
    pub const INTERNAL: u32 = 1 << 9;
    pub const UNAVAILABLE: u32 = 1 << 10;

    /// Any operation that touches the database can fail with these.
    pub const SERVER: u32 = INTERNAL | UNAVAILABLE;
    /// Operations that read a JSON body.
    pub const BODY: u32 = BAD_REQUEST | PAYLOAD_TOO_LARGE | UNSUPPORTED_MEDIA_TYPE;
    /// Operations behind the Bearer scheme.
    pub const AUTHED: u32 = UNAUTHORIZED | SERVER;

    pub(super) fn bit(code: u16) -> u32 {
        match code {
            400 => BAD_REQUEST,
            401 => UNAUTHORIZED,
            403 => FORBIDDEN,
            404 => NOT_FOUND,
            409 => CONFLICT,
            412 => PRECONDITION_FAILED,
            413 => PAYLOAD_TOO_LARGE,
            415 => UNSUPPORTED_MEDIA_TYPE,
            429 => TOO_MANY_REQUESTS,
            500 => INTERNAL,
            503 => UNAVAILABLE,
            _ => 0,
        }
    }
}

/// An [`ApiError`] whose spec lists only the statuses in `MASK` (see
/// [`status`]), so that each operation documents the problems it can
/// really return.
#[derive(Debug)]
pub struct Errors<const MASK: u32>(pub ApiError);

/// The result of an operation documenting the problems in `MASK`.
pub type Res<T, const MASK: u32> = Result<T, Errors<MASK>>;

impl<const MASK: u32> From<ApiError> for Errors<MASK> {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl<const MASK: u32> From<DbErr> for Errors<MASK> {
    fn from(err: DbErr) -> Self {
        Self(err.into())
    }
}

impl<const MASK: u32> IntoResponse for Errors<MASK> {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl<const MASK: u32> From<Errors<MASK>> for poem::Error {
    fn from(err: Errors<MASK>) -> Self {
        err.0.into()
    }
}

impl<const MASK: u32> ApiResponse for Errors<MASK> {
    fn meta() -> poem_openapi::registry::MetaResponses {
        let mut meta = ApiError::meta();
        meta.responses
            .retain(|r| r.status.is_some_and(|code| status::bit(code) & MASK != 0));
        meta
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        ApiError::register(registry);
    }
}
