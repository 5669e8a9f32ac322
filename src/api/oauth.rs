//! OAuth 2.0 (RFC 6749) for integrations: the token endpoint
//! `POST /api/auth/token` with the `password`, `refresh_token` and
//! `client_credentials` grants, and its metadata (RFC 8414) at
//! `/.well-known/oauth-authorization-server`.
//!
//! This is the one place errors are not problem documents: OAuth clients
//! read `error` and `error_description` (RFC 6749 §5.2), so every answer of
//! the token endpoint but a success is an [`OAuthError`] in
//! `application/json`, including the ones about the body itself (413, 415)
//! and the rate limit (429); `app::problems` leaves them alone and turns
//! anything else answered on this path into one.
//!
//! The rules themselves (passwords, budgets, rotation, clients' status) are
//! `auth::sessions`'; this module reads the request the way RFC 6749 says
//! and maps the outcome onto its vocabulary.

use std::collections::HashMap;
use std::sync::Arc;

use poem::Request;
use poem::http::header;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::Example;
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, Enum, ExtractParamOptions, Object, OpenApi,
};
use serde_json::Value;

use super::ApiTags;
use super::audited::*;
use super::body::{check_content_encoding, read_object};
use super::context::{RequestMeta, Sessions};
use crate::auth::sessions::{SessionError, Tokens};
use crate::domain::audit::Action;
use crate::domain::{LoginName, Scope, Scopes};
use crate::entity::service_client;

/// Where the token endpoint is (the spec's template, no trailing slash).
pub const TOKEN_PATH: &str = "/api/auth/token";

/// The grants the token endpoint serves.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum GrantType {
    Password,
    RefreshToken,
    ClientCredentials,
}

/// What went wrong: RFC 6749 §5.2's error codes, and `slow_down` (RFC 8628,
/// registered for token endpoint responses) for the rate limit (wait
/// `Retry-After` seconds).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    SlowDown,
    TemporarilyUnavailable,
    ServerError,
}

/// An OAuth 2.0 error (RFC 6749 §5.2).
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct OAuthError {
    // No doc comment here: poem-openapi would wrap the enum's reference in
    // an `allOf`, which some client generators cannot read.
    pub error: OAuthErrorCode,
    /// One sentence for the developer.
    pub error_description: String,
}

impl Example for OAuthError {
    fn example() -> Self {
        Self {
            error: OAuthErrorCode::InvalidGrant,
            error_description: "Wrong username or password, or the account is inactive.".into(),
        }
    }
}

/// An access token (RFC 6749 §5.1).
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct TokenResponse {
    /// Send it as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The scopes granted, space-separated.
    pub scope: String,
    /// For the `refresh_token` grant (not issued to `client_credentials`,
    /// which simply ask again).
    #[oai(skip_serializing_if_is_none)]
    pub refresh_token: Option<String>,
}

impl Example for TokenResponse {
    fn example() -> Self {
        Self {
            access_token: "your.jwt.access.token".into(),
            token_type: "Bearer".into(),
            expires_in: 300,
            scope: "patients:read mappings:read".into(),
            refresh_token: None,
        }
    }
}

const NO_STORE: &str = "no-store";
const CLIENT_CHALLENGE: &str = "Basic realm=\"healthcare\"";

/// Every answer of the token endpoint.
#[derive(ApiResponse, Debug)]
pub enum TokenAnswer {
    /// The token.
    #[oai(status = 200)]
    Ok(
        Json<TokenResponse>,
        /// Tokens are never cached.
        #[oai(header = "Cache-Control")]
        String,
        /// `no-cache`, for HTTP/1.0 caches.
        #[oai(header = "Pragma")]
        String,
    ),
    /// `invalid_request` (a parameter missing, repeated or malformed),
    /// `invalid_grant` (wrong username or password, a bad refresh token),
    /// `unauthorized_client` (a client logging in someone other than its
    /// owner), `unsupported_grant_type` or `invalid_scope`.
    #[oai(status = 400)]
    BadRequest(Json<OAuthError>, #[oai(header = "Cache-Control")] String),
    /// `invalid_client`: the client's id or secret is wrong, or the client
    /// or its owner is no longer active.
    #[oai(status = 401)]
    Unauthorized(
        Json<OAuthError>,
        /// `Basic realm="healthcare"`: authenticate the client with HTTP Basic.
        #[oai(header = "WWW-Authenticate")]
        String,
        #[oai(header = "Cache-Control")] String,
    ),
    /// `invalid_request`: the body is larger than the configured limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<OAuthError>, #[oai(header = "Cache-Control")] String),
    /// `invalid_request`: the body is not `application/x-www-form-urlencoded`
    /// (or JSON) in UTF-8, or is compressed.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<OAuthError>, #[oai(header = "Cache-Control")] String),
    /// `slow_down`: too many attempts from this address, or too many failed
    /// passwords for this account.
    #[oai(status = 429)]
    TooManyRequests(
        Json<OAuthError>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
        #[oai(header = "Cache-Control")] String,
    ),
    /// `server_error` (details are in the server log).
    #[oai(status = 500)]
    Internal(Json<OAuthError>, #[oai(header = "Cache-Control")] String),
    /// `temporarily_unavailable`: the database is unavailable.
    #[oai(status = 503)]
    Unavailable(
        Json<OAuthError>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
        #[oai(header = "Cache-Control")] String,
    ),
}

/// An OAuth error answer: the code, its HTTP status and one sentence.
#[derive(Debug)]
pub struct Refusal {
    pub code: OAuthErrorCode,
    pub status: u16,
    pub description: String,
    pub retry_after: u64,
}

impl Refusal {
    fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        let status = match code {
            OAuthErrorCode::InvalidClient => 401,
            OAuthErrorCode::SlowDown => 429,
            OAuthErrorCode::TemporarilyUnavailable => 503,
            OAuthErrorCode::ServerError => 500,
            _ => 400,
        };
        Self {
            code,
            status,
            description: description.into(),
            retry_after: 2,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, description)
    }

    fn invalid_client() -> Self {
        Self::new(
            OAuthErrorCode::InvalidClient,
            "Client authentication failed: unknown client, wrong secret, or the client or its \
             owner is no longer active.",
        )
    }

    fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The answer to an error with `status` that something other than the
    /// token endpoint's own code produced (see `app::problems`).
    pub fn for_status(status: u16, retry_after: Option<u64>) -> Self {
        let (code, description) = match status {
            401 => return Self::invalid_client(),
            429 => (
                OAuthErrorCode::SlowDown,
                "Too many requests. Try again later.",
            ),
            503 => (
                OAuthErrorCode::TemporarilyUnavailable,
                "The service is unavailable. Try again shortly.",
            ),
            s if s >= 500 => (OAuthErrorCode::ServerError, "An unexpected error occurred."),
            413 => (
                OAuthErrorCode::InvalidRequest,
                "The request body is too large.",
            ),
            415 => (
                OAuthErrorCode::InvalidRequest,
                "Send the parameters as application/x-www-form-urlencoded.",
            ),
            _ => (OAuthErrorCode::InvalidRequest, "The request is invalid."),
        };
        let mut refusal = Self::new(code, description).with_status(status);
        refusal.retry_after = retry_after.unwrap_or(refusal.retry_after);
        refusal
    }

    pub fn into_answer(self) -> TokenAnswer {
        let body = Json(OAuthError {
            error: self.code,
            error_description: self.description,
        });
        let cc = NO_STORE.to_string();
        match self.status {
            401 => TokenAnswer::Unauthorized(body, CLIENT_CHALLENGE.into(), cc),
            413 => TokenAnswer::PayloadTooLarge(body, cc),
            415 => TokenAnswer::UnsupportedMediaType(body, cc),
            429 => TokenAnswer::TooManyRequests(body, self.retry_after.max(1), cc),
            503 => TokenAnswer::Unavailable(body, self.retry_after.max(1), cc),
            s if s >= 500 => TokenAnswer::Internal(body, cc),
            _ => TokenAnswer::BadRequest(body, cc),
        }
    }
}

/// The parameters of a token request: each sent once; empty ones are
/// omitted (RFC 6749 §3.2).
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    fn insert(&mut self, name: String, value: String) -> Result<(), Refusal> {
        if self.0.contains_key(&name) {
            let shown: String = name.chars().take(64).collect();
            return Err(Refusal::invalid_request(format!(
                "The parameter `{shown}` is repeated; each may be sent once (RFC 6749 §3.2)."
            )));
        }
        self.0.insert(name, value);
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn require(&self, name: &str, grant: &str) -> Result<&str, Refusal> {
        self.get(name)
            .ok_or_else(|| Refusal::invalid_request(format!("The `{grant}` grant needs `{name}`.")))
    }
}

/// The token request's body: read as a form (or JSON), never failing the
/// operation itself, so that every error becomes an [`OAuthError`].
pub struct TokenForm(pub Result<Params, Refusal>);

const FORM: &str = "application/x-www-form-urlencoded";

fn token_request_schema() -> MetaSchema {
    let text = |description: &'static str| {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some(description),
            ..MetaSchema::new("string")
        }))
    };
    let secret = |description: &'static str| {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some(description),
            ..MetaSchema::new_with_format("string", "password")
        }))
    };
    let mut schema = MetaSchema::new("object");
    schema.description = Some(
        "An OAuth 2.0 token request (RFC 6749 §4.3, §4.4, §6). Parameters may be sent once \
         each; empty ones count as omitted, unknown ones are ignored.",
    );
    schema.properties = vec![
        (
            "grant_type",
            <GrantType as poem_openapi::types::Type>::schema_ref(),
        ),
        ("username", text("`password` grant: the username.")),
        ("password", secret("`password` grant: the password.")),
        (
            "refresh_token",
            secret("`refresh_token` grant: a refresh token from this endpoint or from login."),
        ),
        (
            "scope",
            text(
                "Space-separated scopes to narrow the token to (default: all the client's, or \
                 every scope for a person).",
            ),
        ),
        (
            "client_id",
            text("`client_secret_post`: the client's id (or send it with HTTP Basic)."),
        ),
        (
            "client_secret",
            secret("`client_secret_post`: the client's secret (or send it with HTTP Basic)."),
        ),
    ];
    schema.required = vec!["grant_type"];
    schema
}

impl<'a> ApiExtractor<'a> for TokenForm {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <GrantType as poem_openapi::types::Type>::register(registry);
        registry
            .create_schema::<TokenForm, _>("TokenRequest".to_string(), |_| token_request_schema());
    }

    fn request_meta() -> Option<MetaRequest> {
        // One media type: the one RFC 6749 defines (some client generators
        // refuse an operation with two). JSON is read too, as the
        // operation's description says.
        Some(MetaRequest {
            description: Some("The grant's parameters, form-encoded."),
            content: vec![MetaMediaType {
                content_type: FORM,
                schema: MetaSchemaRef::Reference("TokenRequest".to_string()),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut poem::RequestBody,
        _param_opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        Ok(Self(read_params(request, body).await))
    }
}

async fn read_params(request: &Request, body: &mut poem::RequestBody) -> Result<Params, Refusal> {
    let unsupported = |detail: &str| Refusal::invalid_request(detail).with_status(415);
    check_content_encoding(request).map_err(|e| unsupported(&e.problem().detail))?;
    let mime = request
        .content_type()
        .and_then(|ct| ct.parse::<mime::Mime>().ok());
    let json = match &mime {
        Some(m) if m.essence_str() == FORM => false,
        Some(m)
            if m.type_() == "application"
                && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json")) =>
        {
            true
        }
        _ => {
            return Err(unsupported(
                "Send the parameters as application/x-www-form-urlencoded (RFC 6749 §4.3.2).",
            ));
        }
    };
    if mime
        .as_ref()
        .and_then(|m| m.get_param(mime::CHARSET))
        .is_some_and(|charset| !charset.as_str().eq_ignore_ascii_case("utf-8"))
    {
        return Err(unsupported("Parameters must be UTF-8."));
    }
    let limit = request
        .data::<super::context::Shared>()
        .map_or(65_536, |shared| shared.body_limit);
    let bytes = body
        .take()
        .map_err(|_| Refusal::invalid_request("The request body could not be read."))?
        .into_bytes_limit(limit)
        .await
        .map_err(|err| match err {
            poem::error::ReadBodyError::PayloadTooLarge => {
                Refusal::invalid_request(format!("The request body is larger than {limit} bytes."))
                    .with_status(413)
            }
            _ => Refusal::invalid_request("The request body could not be read."),
        })?;
    let mut params = Params::default();
    if json {
        let map = read_object(&bytes).map_err(|e| Refusal::invalid_request(&e.problem().detail))?;
        for (name, value) in map {
            match value {
                Value::String(s) => params.insert(name, s)?,
                Value::Null => {}
                _ => {
                    let shown: String = name.chars().take(64).collect();
                    return Err(Refusal::invalid_request(format!(
                        "The parameter `{shown}` must be a string."
                    )));
                }
            }
        }
    } else {
        if std::str::from_utf8(&bytes).is_err() {
            return Err(Refusal::invalid_request("Parameters must be UTF-8."));
        }
        for (name, value) in form_urlencoded::parse(&bytes) {
            params.insert(name.into_owned(), value.into_owned())?;
        }
    }
    Ok(params)
}

/// How the client authenticated, if it did: HTTP Basic
/// (`client_secret_basic`) or the body (`client_secret_post`), never both.
fn client_credentials(req: &Request, params: &Params) -> Result<Option<(String, String)>, Refusal> {
    let mut basic = None;
    let mut headers = req.headers().get_all(header::AUTHORIZATION).iter();
    if let Some(value) = headers.next() {
        if headers.next().is_some() {
            return Err(Refusal::invalid_request("Send one Authorization header."));
        }
        let value = value.to_str().map_err(|_| Refusal::invalid_client())?;
        // Other schemes (a Bearer token sent everywhere by a tool) are not
        // client authentication: ignored.
        if let Some((scheme, encoded)) = value.split_once(' ')
            && scheme.eq_ignore_ascii_case("basic")
        {
            basic = Some(decode_basic(encoded.trim())?);
        }
    }
    // `Basic Og==` (an empty id and secret) is what Swagger UI sends for a
    // person logging in without a client: no client authentication.
    let basic = basic.filter(|(id, secret)| !(id.is_empty() && secret.is_empty()));
    let posted = match (params.get("client_id"), params.get("client_secret")) {
        (Some(id), Some(secret)) => Some((id.to_string(), secret.to_string())),
        (None, Some(_)) => {
            return Err(Refusal::invalid_request(
                "`client_secret` was sent without `client_id`.",
            ));
        }
        (Some(id), None) => match &basic {
            // RFC 6749 §3.2.1 lets a client send its id too; it must agree.
            Some((basic_id, _)) if basic_id == id => None,
            Some(_) => {
                return Err(Refusal::invalid_request(
                    "`client_id` does not match the client of the Authorization header.",
                ));
            }
            None => return Err(Refusal::invalid_client()),
        },
        (None, None) => None,
    };
    match (basic, posted) {
        (Some(_), Some(_)) => Err(Refusal::invalid_request(
            "Authenticate the client one way: HTTP Basic or the body, not both.",
        )),
        (basic, posted) => Ok(basic.or(posted)),
    }
}

/// `client_id:client_secret`, each form-encoded, in Base64 (RFC 6749 §2.3.1).
fn decode_basic(encoded: &str) -> Result<(String, String), Refusal> {
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(Refusal::invalid_client)?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(Refusal::invalid_client)?;
    let unform = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok((unform(id), unform(secret)))
}

/// The `scope` parameter: `None` when absent (the default applies).
fn requested_scopes(params: &Params) -> Result<Option<Scopes>, Refusal> {
    let Some(raw) = params.get("scope") else {
        return Ok(None);
    };
    let scopes = Scopes::parse(raw).map_err(|e| {
        Refusal::new(
            OAuthErrorCode::InvalidScope,
            format!("Unknown scope. {}", e.message()),
        )
    })?;
    Ok((!scopes.is_empty()).then_some(scopes))
}

fn client_ip(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions().get::<RequestMeta>().and_then(|m| m.ip)
}

/// The OAuth answer to a session error; the audit note learns whom it was
/// about.
fn refusal(err: SessionError, note: Option<&AuditNote>) -> Refusal {
    use OAuthErrorCode::*;
    match err {
        SessionError::BadCredentials { user_id } => {
            if let (Some(note), Some(id)) = (note, user_id) {
                note.set_user(id);
            }
            Refusal::new(
                InvalidGrant,
                "Wrong username or password, or the account is inactive.",
            )
        }
        SessionError::RateLimited(limited) => {
            let mut refusal = Refusal::new(
                SlowDown,
                format!("Too many attempts. Try again in {} seconds.", limited.0),
            );
            refusal.retry_after = limited.0;
            refusal
        }
        SessionError::BadRefreshToken => Refusal::new(
            InvalidGrant,
            "The refresh token is invalid, expired, revoked, or was issued to another client.",
        ),
        SessionError::NotARefreshToken => {
            Refusal::new(InvalidGrant, "This is not a refresh token.")
        }
        SessionError::Reused { user_id } => {
            if let Some(note) = note {
                note.set_user(user_id);
                note.set_action(Action::RefreshReuse);
            }
            Refusal::new(
                InvalidGrant,
                "The refresh token is invalid, expired, revoked, or was issued to another client.",
            )
        }
        SessionError::BadClient => Refusal::invalid_client(),
        SessionError::NotTheOwner { user_id } => {
            if let Some(note) = note {
                note.set_user(user_id);
            }
            Refusal::new(
                UnauthorizedClient,
                "A service client may only log in its owner.",
            )
        }
        SessionError::ScopeNotAllowed => Refusal::new(
            InvalidScope,
            "The scope asked for is beyond what was granted.",
        ),
        SessionError::Db(e) if crate::store::is_unavailable(&e) => {
            tracing::warn!(error = %e, "token endpoint: database unavailable");
            Refusal::new(
                TemporarilyUnavailable,
                "The database is unavailable. Try again shortly.",
            )
        }
        SessionError::Limits(e) => {
            tracing::warn!(error = %e, "rate-limit store unavailable");
            Refusal::new(
                TemporarilyUnavailable,
                "The service is unavailable. Try again shortly.",
            )
        }
        other => {
            tracing::error!(error = %other, "token endpoint");
            Refusal::new(ServerError, "An unexpected error occurred.")
        }
    }
}

fn issued(tokens: Tokens, ttl: u64) -> TokenAnswer {
    TokenAnswer::Ok(
        Json(TokenResponse {
            access_token: tokens.access.token,
            token_type: "Bearer".into(),
            expires_in: ttl,
            scope: tokens.scopes.to_string_list(),
            refresh_token: tokens.refresh.map(|r| r.token),
        }),
        NO_STORE.into(),
        "no-cache".into(),
    )
}

/// The authorization server's metadata (RFC 8414).
#[derive(Object, Debug, Clone)]
pub struct ServerMetadata {
    /// This server's issuer identifier: the URL the metadata was fetched
    /// under, without the well-known suffix.
    pub issuer: String,
    /// The token endpoint's URL.
    pub token_endpoint: String,
    pub grant_types_supported: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Empty: there is no authorization endpoint (tokens come from the
    /// token endpoint alone).
    pub response_types_supported: Vec<String>,
    /// Where the API is described.
    pub service_documentation: String,
}

#[derive(ApiResponse)]
pub enum MetadataOk {
    /// The metadata.
    #[oai(status = 200)]
    Ok(Json<ServerMetadata>),
}

pub struct OAuthApi {
    pub sessions: Arc<Sessions>,
    /// The configured public URL, if any (`PUBLIC_URL`).
    pub public_url: Option<String>,
}

impl OAuthApi {
    async fn grant(&self, req: &Request, params: Params) -> Result<TokenAnswer, Refusal> {
        let note = req.extensions().get::<AuditNote>();
        let grant_type = params
            .get("grant_type")
            .ok_or_else(|| Refusal::invalid_request("`grant_type` is required."))?;
        let grant = match grant_type {
            "password" => GrantType::Password,
            "refresh_token" => GrantType::RefreshToken,
            "client_credentials" => GrantType::ClientCredentials,
            other => {
                let shown: String = other.chars().take(64).collect();
                return Err(Refusal::new(
                    OAuthErrorCode::UnsupportedGrantType,
                    format!(
                        "`{shown}` is not a grant this server supports: password, \
                         refresh_token or client_credentials."
                    ),
                ));
            }
        };
        let ip = client_ip(req);
        let sessions = &self.sessions;
        sessions
            .check_token_request(ip)
            .await
            .map_err(|e| refusal(e, note))?;
        let requested = requested_scopes(&params)?;
        let client: Option<service_client::Model> = match client_credentials(req, &params)? {
            Some((id, secret)) => Some(
                sessions
                    .authenticate_client(&id, &secret)
                    .await
                    .map_err(|e| refusal(e, note))?,
            ),
            None => None,
        };
        if let (Some(note), Some(client)) = (note, &client) {
            note.set_client(client.id);
            note.set_user(client.owner_id);
        }
        let ttl = sessions.keys().access_ttl().as_secs();
        let tokens = match grant {
            GrantType::Password => {
                let username = params.require("username", "password")?;
                let password = params.require("password", "password")?;
                let outcome = match LoginName::parse(username) {
                    Ok(username) => {
                        sessions
                            .password_grant(
                                ip,
                                client.as_ref(),
                                username.as_str(),
                                password.to_string(),
                                requested,
                            )
                            .await
                    }
                    // Not a username anyone can have: a wrong one.
                    Err(_) => Err(SessionError::BadCredentials { user_id: None }),
                };
                // A password checked is a login, whichever endpoint took it.
                if let Some(note) = note {
                    note.set_action(if outcome.is_ok() {
                        Action::LoginSuccess
                    } else {
                        Action::LoginFailure
                    });
                }
                let (user, tokens) = outcome.map_err(|e| refusal(e, note))?;
                if let Some(note) = note {
                    note.set_user(user.id);
                }
                tokens
            }
            GrantType::RefreshToken => {
                let token = params.require("refresh_token", "refresh_token")?;
                let (user_id, tokens) = sessions
                    .refresh_grant(client.as_ref(), token, requested)
                    .await
                    .map_err(|e| refusal(e, note))?;
                if let Some(note) = note {
                    note.set_user(user_id);
                }
                tokens
            }
            GrantType::ClientCredentials => {
                let client = client.as_ref().ok_or_else(|| {
                    Refusal::new(
                        OAuthErrorCode::InvalidClient,
                        "The `client_credentials` grant needs the client's id and secret \
                         (HTTP Basic, or client_id and client_secret in the body).",
                    )
                })?;
                sessions
                    .client_credentials(client, requested)
                    .await
                    .map_err(|e| refusal(e, note))?
            }
        };
        Ok(issued(tokens, ttl))
    }

    /// The URL this server is reached at: `PUBLIC_URL`, or the scheme and
    /// host of this request.
    fn base_url(&self, req: &Request) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_string();
        }
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| h.parse::<poem::http::uri::Authority>().is_ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    }
}

#[OpenApi(tag = "ApiTags::Auth")]
impl OAuthApi {
    /// Get a token (OAuth 2.0)
    ///
    /// The OAuth 2.0 token endpoint (RFC 6749), for integrations and any
    /// standard OAuth library. Parameters are form-encoded
    /// (`application/x-www-form-urlencoded`; a JSON object of strings is
    /// read too), each sent once. Grants: `password` (a person's username
    /// and password, within the same limits as `/api/auth/login/`),
    /// `refresh_token`, and `client_credentials` (a service client from
    /// `/api/clients/`, acting for its owner with its scopes). A client
    /// authenticates with HTTP Basic (`client_secret_basic`) or
    /// `client_id` and `client_secret` in the body (`client_secret_post`).
    /// `scope` narrows the token. Errors are RFC 6749 §5.2 JSON objects
    /// (`error`, `error_description`), not problem documents, and no answer
    /// is cached (`Cache-Control: no-store`).
    #[oai(
        path = "/api/auth/token",
        method = "post",
        operation_id = "token",
        transform = "audit_token"
    )]
    async fn token(&self, req: &Request, form: TokenForm) -> TokenAnswer {
        let outcome = match form.0 {
            Ok(params) => self.grant(req, params).await,
            Err(refusal) => Err(refusal),
        };
        outcome.unwrap_or_else(Refusal::into_answer)
    }

    /// OAuth 2.0 server metadata
    ///
    /// RFC 8414 metadata: where the token endpoint is, the grants, scopes
    /// and client authentication methods it supports. The issuer is
    /// `PUBLIC_URL` when set, otherwise this request's host.
    #[oai(
        path = "/.well-known/oauth-authorization-server",
        method = "get",
        operation_id = "oauth_metadata"
    )]
    async fn metadata(&self, req: &Request) -> MetadataOk {
        let issuer = self.base_url(req);
        let strings = |items: &[&str]| items.iter().map(|s| (*s).to_string()).collect();
        MetadataOk::Ok(Json(ServerMetadata {
            token_endpoint: format!("{issuer}{TOKEN_PATH}"),
            grant_types_supported: strings(&["password", "refresh_token", "client_credentials"]),
            scopes_supported: Scope::ALL.iter().map(|s| s.as_str().to_string()).collect(),
            token_endpoint_auth_methods_supported: strings(&[
                "client_secret_basic",
                "client_secret_post",
            ]),
            response_types_supported: Vec::new(),
            service_documentation: format!("{issuer}/docs"),
            issuer,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode("12:hcs_a%2Bb");
        assert_eq!(
            decode_basic(&encoded).unwrap(),
            ("12".to_string(), "hcs_a+b".to_string())
        );
        assert!(decode_basic("not base64!").is_err());
    }

    #[test]
    fn a_repeated_parameter_is_refused() {
        let mut params = Params::default();
        params.insert("scope".into(), "a".into()).unwrap();
        let refusal = params.insert("scope".into(), "b".into()).unwrap_err();
        assert_eq!(refusal.code, OAuthErrorCode::InvalidRequest);
    }
}
