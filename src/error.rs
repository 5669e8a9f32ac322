//! One error type for the whole API: every variant is an RFC 9457 problem
//! document (`application/problem+json`). Errors that never went through it
//! (poem's own: unknown route, wrong method, missing token, panics) are
//! turned into problems by `app::problems`.

use std::collections::BTreeMap;

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use sea_orm::DbErr;

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

pub const BEARER_CHALLENGE: &str = "Bearer realm=\"healthcare\"";

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
    /// Authenticated, but not allowed to do this (for a token without the
    /// scope the operation needs, `WWW-Authenticate` names it: RFC 6750 §3.1).
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(
        Json<Problem>,
        /// `Bearer error="insufficient_scope", scope="..."` when a scope is missing.
        #[oai(header = "WWW-Authenticate")]
        Option<String>,
    ),
    /// No such resource, or it is not yours.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The request conflicts with the resource's state: a uniqueness
    /// conflict, or a retry while the first request with its
    /// `Idempotency-Key` is still running.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// `If-Match` does not match the current `ETag`.
    #[oai(status = 412, content_type = "application/problem+json")]
    PreconditionFailed(Json<Problem>),
    /// The request body is larger than the configured limit.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// The request body is not `application/json` in UTF-8, or is compressed.
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    /// The `Idempotency-Key` was already used with a different request body.
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<Problem>),
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
    /// The database (or the audit trail, which must record an access before
    /// it is disclosed) is unavailable; retry after the given number of seconds.
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
        Self::Forbidden(Json(Problem::new(StatusCode::FORBIDDEN, detail)), None)
    }

    /// A 403 for a token that lacks `scope` (RFC 6750 §3.1).
    pub fn insufficient_scope(scope: &str) -> Self {
        Self::Forbidden(
            Json(Problem::new(
                StatusCode::FORBIDDEN,
                format!("This token does not have the `{scope}` scope this operation needs."),
            )),
            Some(format!(
                "{BEARER_CHALLENGE}, error=\"insufficient_scope\", scope=\"{scope}\""
            )),
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound(Json(Problem::new(
            StatusCode::NOT_FOUND,
            format!("{what} not found."),
        )))
    }

    pub fn conflict(errors: FieldErrors, detail: impl Into<String>) -> Self {
        let mut problem = Problem::new(StatusCode::CONFLICT, detail);
        problem.errors = (!errors.is_empty()).then_some(errors);
        Self::Conflict(Json(problem))
    }

    pub fn precondition_failed() -> Self {
        Self::PreconditionFailed(Json(Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "The resource has changed since you read it (If-Match does not match its ETag).",
        )))
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::PayloadTooLarge(Json(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body is larger than {limit} bytes."),
        )))
    }

    pub fn unsupported_media_type(detail: String) -> Self {
        Self::UnsupportedMediaType(Json(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            detail,
        )))
    }

    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::Unprocessable(Json(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, detail)))
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
        Self::unavailable_because("The database is unavailable. Try again shortly.")
    }

    pub fn unavailable_because(detail: &str) -> Self {
        Self::Unavailable(
            Json(Problem::new(StatusCode::SERVICE_UNAVAILABLE, detail)),
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
        if crate::store::is_unavailable(&err) {
            tracing::warn!(error = %err, "{context}: database unavailable");
            return Self::unavailable();
        }
        Self::internal(context, err)
    }

    /// The problem document of this error.
    pub fn problem(&self) -> &Problem {
        match self {
            Self::BadRequest(p)
            | Self::NotFound(p)
            | Self::Conflict(p)
            | Self::PreconditionFailed(p)
            | Self::PayloadTooLarge(p)
            | Self::UnsupportedMediaType(p)
            | Self::Unprocessable(p)
            | Self::Internal(p)
            | Self::Forbidden(p, _)
            | Self::Unauthorized(p, _)
            | Self::TooManyRequests(p, _)
            | Self::Unavailable(p, _) => p,
        }
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
        let problem = self.problem();
        write!(f, "{} {}", problem.status, problem.detail)
    }
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
    pub const UNPROCESSABLE: u32 = 1 << 11;

    /// Any operation that touches the database can fail with these.
    pub const SERVER: u32 = INTERNAL | UNAVAILABLE;
    /// Operations that read a JSON body.
    pub const BODY: u32 = BAD_REQUEST | PAYLOAD_TOO_LARGE | UNSUPPORTED_MEDIA_TYPE;
    /// Operations behind the Bearer scheme (403: a token without the scope
    /// the operation needs).
    pub const AUTHED: u32 = UNAUTHORIZED | FORBIDDEN | SERVER;

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
            422 => UNPROCESSABLE,
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
