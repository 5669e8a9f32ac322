//! `/api/auth/`: accounts and tokens, over `auth::sessions`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::json;

use super::ApiTags;
use super::audited::*;
use super::body::{JsonBody, input};
use super::context::{RequestMeta, Sessions};
use super::schema::{NewSecret, Secret};
use super::security::PersonAuth;
use crate::auth::sessions::{SessionError, Tokens};
use crate::domain::audit::Action;
use crate::domain::{Email, LoginName, Scopes, Username};
use crate::entity::user;
use crate::error::status::*;
use crate::error::{ApiError, FieldErrors, Res};

/// A user account.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct User {
    #[oai(read_only)]
    pub id: i64,
    /// Letters, digits and `@.+-_`; unique (compared in NFKC form, ignoring case).
    pub username: String,
    /// Unique (compared ignoring case, with the domain in IDNA form).
    pub email: String,
    #[oai(read_only)]
    pub date_joined: DateTime<Utc>,
    /// Whether this user is an administrator.
    #[oai(read_only)]
    pub is_staff: bool,
    /// Whether this user may log in (administrators can deactivate users).
    #[oai(read_only)]
    pub is_active: bool,
}

impl Example for User {
    fn example() -> Self {
        Self {
            id: 1,
            username: "john".into(),
            email: "john@example.com".into(),
            date_joined: DateTime::<Utc>::from_timestamp(1_764_000_000, 0).unwrap_or_default(),
            is_staff: false,
            is_active: true,
        }
    }
}

impl From<user::Model> for User {
    fn from(row: user::Model) -> Self {
        Self {
            id: row.id,
            username: row.username,
            email: row.email,
            date_joined: row.date_joined,
            is_staff: row.is_staff,
            is_active: row.is_active,
        }
    }
}

input! {
    /// A new account.
    pub struct RegisterInput ignoring &[], example json!({"username": "john", "email": "john@example.com", "password": "Velvet-Otter-Quarry-42"}) => {
        /// Letters, digits and `@.+-_` in one script (surrounding whitespace
        /// is trimmed); unique, compared in NFKC form ignoring case.
        required username: Username,
        /// A valid email address; unique, compared ignoring case with the
        /// domain in IDNA form.
        required email: Email,
        /// Not easy to guess: checked by a strength estimator, also against
        /// the username and email.
        required password: NewSecret,
    }
}

input! {
    /// Credentials.
    pub struct LoginInput ignoring &[], example json!({"username": "john", "password": "Velvet-Otter-Quarry-42"}) => {
        /// The username (compared in NFKC form ignoring case); surrounding
        /// whitespace is trimmed.
        required username: LoginName,
        /// The password, exactly as registered (never trimmed).
        required password: Secret,
    }
}

input! {
    /// A refresh token.
    pub struct RefreshInput ignoring &[], example json!({"refresh": "your.jwt.refresh.token"}) => {
        /// The refresh token from login (or from the last refresh when rotation is on).
        required refresh: Secret,
    }
}

input! {
    /// A password change.
    pub struct PasswordChangeInput ignoring &[], example json!({"old_password": "Velvet-Otter-Quarry-42", "new_password": "Amber-Falcon-Ridge-77"}) => {
        /// The current password.
        required old_password: Secret,
        /// Not easy to guess (checked like a registration's).
        required new_password: NewSecret,
    }
}

/// A token pair.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct TokenPair {
    /// Access token for `Authorization: Bearer ...` (short-lived).
    pub access: String,
    /// Refresh token for `POST /api/auth/token/refresh/`.
    pub refresh: String,
}

impl Example for TokenPair {
    fn example() -> Self {
        Self {
            access: "your.jwt.access.token".into(),
            refresh: "your.jwt.refresh.token".into(),
        }
    }
}

/// A new access token (and a new refresh token when rotation is on).
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct Refreshed {
    /// Access token for `Authorization: Bearer ...`.
    pub access: String,
    /// Present only when `ROTATE_REFRESH_TOKENS` is on; the old one is then spent.
    #[oai(skip_serializing_if_is_none)]
    pub refresh: Option<String>,
}

impl Example for Refreshed {
    fn example() -> Self {
        Self {
            access: "new.jwt.access.token".into(),
            refresh: None,
        }
    }
}

#[derive(ApiResponse)]
pub enum Registered {
    /// The new account.
    #[oai(status = 201)]
    Created(
        Json<User>,
        /// Where the account can be read once logged in.
        #[oai(header = "Location")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum LoggedIn {
    /// An access token and a refresh token.
    #[oai(status = 200)]
    Ok(Json<TokenPair>),
}

#[derive(ApiResponse)]
pub enum RefreshOk {
    /// A new access token.
    #[oai(status = 200)]
    Ok(Json<Refreshed>),
}

#[derive(ApiResponse)]
pub enum MeOk {
    /// The caller's account.
    #[oai(status = 200)]
    Ok(Json<User>),
}

#[derive(ApiResponse)]
pub enum Done {
    /// Done; there is no content to return.
    #[oai(status = 204)]
    NoContent,
}

const BAD_CREDENTIALS: &str = "No active account found with the given credentials.";
const BAD_REFRESH: &str = "Token is invalid or expired.";

fn taken_error(fields: &[&str]) -> ApiError {
    let mut errors = FieldErrors::new();
    for field in fields {
        errors.insert(
            (*field).to_string(),
            vec![format!("A user with that {field} already exists.")],
        );
    }
    ApiError::conflict(errors, "An account with these details already exists.")
}

/// The answer to a session error; what the audit trail must know about it
/// goes into `req`'s note.
pub fn session_error(err: SessionError, req: &Request) -> ApiError {
    let note = req.extensions().get::<AuditNote>();
    match err {
        SessionError::BadCredentials { user_id } => {
            if let (Some(note), Some(id)) = (note, user_id) {
                note.set_user(id);
            }
            ApiError::unauthorized(BAD_CREDENTIALS)
        }
        SessionError::RateLimited(limited) => ApiError::too_many_requests(limited.0),
        SessionError::Taken(fields) => taken_error(&fields),
        SessionError::Invalid { field, message } => ApiError::field(field, message),
        SessionError::BadRefreshToken => ApiError::unauthorized(BAD_REFRESH),
        SessionError::NotARefreshToken => ApiError::unauthorized("This is not a refresh token."),
        SessionError::Reused { user_id } => {
            if let Some(note) = note {
                note.set_user(user_id);
                note.set_action(Action::RefreshReuse);
            }
            ApiError::unauthorized(BAD_REFRESH)
        }
        SessionError::NoSuchUser => ApiError::not_found("User"),
        SessionError::LastAdmin => ApiError::conflict(
            Default::default(),
            "This is the last active administrator; deactivating it would leave none. \
             Make another user an administrator first.",
        ),
        SessionError::Db(e) => e.into(),
        // Service clients' errors belong to the OAuth token endpoint.
        SessionError::BadClient | SessionError::NotTheOwner { .. } => {
            ApiError::unauthorized(BAD_CREDENTIALS)
        }
        SessionError::ScopeNotAllowed => ApiError::forbidden("This scope was not granted."),
        SessionError::Limits(e) => {
            tracing::warn!(error = %e, "rate-limit store unavailable");
            ApiError::unavailable()
        }
        SessionError::Internal(e) => ApiError::internal("sessions", e),
    }
}

fn client_ip(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions().get::<RequestMeta>().and_then(|m| m.ip)
}

fn pair(tokens: Tokens) -> Result<TokenPair, ApiError> {
    let refresh = tokens
        .refresh
        .ok_or_else(|| ApiError::internal("login", "no refresh token issued"))?;
    Ok(TokenPair {
        access: tokens.access.token,
        refresh: refresh.token,
    })
}

pub struct AuthApi {
    pub sessions: Arc<Sessions>,
}

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Register a new user
    ///
    /// Creates an account. Usernames and emails are unique (409 when
    /// taken): usernames compared in NFKC form ignoring case (`ａｄｍｉｎ１`
    /// is `admin1`), emails ignoring case with the domain in IDNA form.
    /// Passwords must be 8 to 128 characters and not easy to guess; the 400
    /// says why one was refused.
    #[oai(
        path = "/api/auth/register",
        method = "post",
        operation_id = "register",
        transform = "audit_register"
    )]
    async fn register(
        &self,
        req: &Request,
        body: JsonBody<RegisterInput>,
    ) -> Res<Registered, { BODY | CONFLICT | TOO_MANY_REQUESTS | SERVER }> {
        let input = body.0;
        let user = self
            .sessions
            .register(
                client_ip(req),
                input.username,
                input.email,
                input.password.0,
                false,
            )
            .await
            .map_err(|e| session_error(e, req))?;
        if let Some(note) = req.extensions().get::<AuditNote>() {
            note.set_user(user.id);
            note.set_resource(user.id);
        }
        Ok(Registered::Created(
            Json(user.into()),
            "/api/auth/me/".into(),
        ))
    }

    /// Log in
    ///
    /// Exchanges a username and password for an access token and a refresh
    /// token. Wrong credentials and inactive accounts get the same 401.
    #[oai(
        path = "/api/auth/login",
        method = "post",
        operation_id = "login",
        transform = "audit_login"
    )]
    async fn login(
        &self,
        req: &Request,
        body: JsonBody<LoginInput>,
    ) -> Res<LoggedIn, { BODY | UNAUTHORIZED | TOO_MANY_REQUESTS | SERVER }> {
        let input = body.0;
        let (user, tokens) = self
            .sessions
            .login(
                client_ip(req),
                input.username.as_str(),
                input.password.0,
                Scopes::ALL,
            )
            .await
            .map_err(|e| session_error(e, req))?;
        if let Some(note) = req.extensions().get::<AuditNote>() {
            note.set_user(user.id);
        }
        Ok(LoggedIn::Ok(Json(pair(tokens)?)))
    }

    /// Refresh the access token
    ///
    /// Exchanges a refresh token for a new access token. When refresh-token
    /// rotation is on, also returns a new refresh token and spends the old
    /// one; presenting a spent one again revokes every token descended from
    /// the same login.
    #[oai(
        path = "/api/auth/token/refresh",
        method = "post",
        operation_id = "refresh_token",
        transform = "audit_refresh"
    )]
    async fn refresh(
        &self,
        req: &Request,
        body: JsonBody<RefreshInput>,
    ) -> Res<RefreshOk, { BODY | UNAUTHORIZED | TOO_MANY_REQUESTS | SERVER }> {
        let (_, tokens) = self
            .sessions
            .refresh(client_ip(req), &body.0.refresh.0)
            .await
            .map_err(|e| session_error(e, req))?;
        Ok(RefreshOk::Ok(Json(Refreshed {
            access: tokens.access.token,
            refresh: tokens.refresh.map(|r| r.token),
        })))
    }

    /// Log out
    ///
    /// Revokes the refresh token (and every token rotated from the same
    /// login). Access tokens already issued stay valid until they expire
    /// (5 minutes by default).
    #[oai(
        path = "/api/auth/logout",
        method = "post",
        operation_id = "logout",
        transform = "audit_logout"
    )]
    async fn logout(
        &self,
        req: &Request,
        body: JsonBody<RefreshInput>,
    ) -> Res<Done, { BODY | UNAUTHORIZED | SERVER }> {
        let user_id = self
            .sessions
            .logout(&body.0.refresh.0)
            .await
            .map_err(|e| session_error(e, req))?;
        if let Some(note) = req.extensions().get::<AuditNote>() {
            note.set_user(user_id);
        }
        Ok(Done::NoContent)
    }

    /// The current user
    ///
    /// The account the access token belongs to.
    #[oai(
        path = "/api/auth/me",
        method = "get",
        operation_id = "get_current_user"
    )]
    async fn me(&self, auth: PersonAuth) -> Res<MeOk, AUTHED> {
        let user = self
            .sessions
            .account(auth.0.principal.user_id)
            .await
            .map_err(|e| match e {
                SessionError::NoSuchUser => ApiError::invalid_token(
                    "The user of this token no longer exists or is inactive.",
                ),
                other => ApiError::internal("reading the current user", other),
            })?;
        Ok(MeOk::Ok(Json(user.into())))
    }

    /// Change the password
    ///
    /// Needs the current password, checked within the same limits as a
    /// login (a wrong one counts against the account's failed-login
    /// budget). Revokes every refresh token of the user, so every other
    /// session must log in again.
    #[oai(
        path = "/api/auth/password",
        method = "post",
        operation_id = "change_password",
        transform = "audit_password"
    )]
    async fn change_password(
        &self,
        auth: PersonAuth,
        req: &Request,
        body: JsonBody<PasswordChangeInput>,
    ) -> Res<Done, { AUTHED | BODY | TOO_MANY_REQUESTS }> {
        let input = body.0;
        self.sessions
            .change_password(
                client_ip(req),
                auth.0.principal.user_id,
                input.old_password.0,
                input.new_password.0,
            )
            .await
            .map_err(|e| session_error(e, req))?;
        Ok(Done::NoContent)
    }
}
