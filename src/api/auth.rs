//! `/api/auth/`: accounts and tokens.

use chrono::{DateTime, Utc};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use poem::Request;

use super::ApiTags;
use super::body::{Fields, FromJson, JsonBody};
use crate::audit::AuditContext;
use crate::auth::BearerAuth;
use crate::auth::password::check_strength;
use crate::auth::tokens::{TokenError, TokenType};
use crate::domain::{EMAIL_MAX, USERNAME_MAX, check_email, check_username};
use crate::entity::user;
use crate::error::status::*;
use crate::error::{ApiError, ApiResult, FieldErrors, Res};
use crate::startup::AppState;
use crate::store::{refresh_tokens, users};

/// A user account.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct User {
    #[oai(read_only)]
    pub id: i64,
    /// 1 to 150 letters, digits and `@.+-_`; unique ignoring case.
    pub username: String,
    /// Unique ignoring case.
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

/// A new account.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct RegisterInput {
    /// 1 to 150 letters, digits and `@.+-_` (surrounding whitespace is
    /// trimmed); unique ignoring case.
    #[oai(validator(
        min_length = 1,
        pattern = r"^[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[\w.@+-]{1,150}[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    ))]
    pub username: String,
    /// A valid email address, unique ignoring case.
    #[oai(validator(min_length = 3, max_length = 254))]
    pub email: String,
    /// 8 to 128 characters, and not easy to guess (checked by a strength
    /// estimator, also against the username and email).
    #[oai(validator(min_length = 8, max_length = 128))]
    pub password: String,
}

impl Example for RegisterInput {
    fn example() -> Self {
        Self {
            username: "john".into(),
            email: "john@example.com".into(),
            password: "Velvet-Otter-Quarry-42".into(),
        }
    }
}

impl FromJson for RegisterInput {
    fn from_json(f: &mut Fields) -> Option<Self> {
        let username = f.string("username", USERNAME_MAX);
        let email = f.string("email", EMAIL_MAX);
        let password = f.raw_string("password");
        if let Some(Err(e)) = username.as_deref().map(check_username) {
            f.error("username", e);
        }
        if let Some(Err(e)) = email.as_deref().map(check_email) {
            f.error("email", e);
        }
        if let Some(password) = &password {
            let context: Vec<&str> = [username.as_deref(), email.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            if let Err(e) = check_strength(password, &context) {
                f.error("password", e);
            }
        }
        Some(Self {
            username: username?,
            email: email?,
            password: password?,
        })
    }
}

/// Credentials.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct LoginInput {
    /// The username (or its case variant); surrounding whitespace is trimmed.
    #[oai(validator(
        min_length = 1,
        pattern = r"^[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000](?:[^\x00-\x1F\x7F-\x9F]{0,148}[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    ))]
    pub username: String,
    /// The password, exactly as registered (never trimmed).
    #[oai(validator(min_length = 1))]
    pub password: String,
}

impl Example for LoginInput {
    fn example() -> Self {
        Self {
            username: "john".into(),
            password: "Velvet-Otter-Quarry-42".into(),
        }
    }
}

impl FromJson for LoginInput {
    fn from_json(f: &mut Fields) -> Option<Self> {
        let username = f.string("username", USERNAME_MAX);
        let password = f.raw_string("password");
        Some(Self {
            username: username?,
            password: password?,
        })
    }
}

/// A refresh token.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct RefreshInput {
    /// The refresh token from login (or from the last refresh when rotation is on).
    #[oai(validator(min_length = 1))]
    pub refresh: String,
}

impl Example for RefreshInput {
    fn example() -> Self {
        Self {
            refresh: "your.jwt.refresh.token".into(),
        }
    }
}

impl FromJson for RefreshInput {
    fn from_json(f: &mut Fields) -> Option<Self> {
        Some(Self {
            refresh: f.raw_string("refresh")?,
        })
    }
}

/// A password change.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct PasswordChangeInput {
    /// The current password.
    #[oai(validator(min_length = 1))]
    pub old_password: String,
    /// 8 to 128 characters, not easy to guess.
    #[oai(validator(min_length = 8, max_length = 128))]
    pub new_password: String,
}

impl Example for PasswordChangeInput {
    fn example() -> Self {
        Self {
            old_password: "Velvet-Otter-Quarry-42".into(),
            new_password: "Amber-Falcon-Ridge-77".into(),
        }
    }
}

impl FromJson for PasswordChangeInput {
    fn from_json(f: &mut Fields) -> Option<Self> {
        let old_password = f.raw_string("old_password");
        let new_password = f.raw_string("new_password");
        Some(Self {
            old_password: old_password?,
            new_password: new_password?,
        })
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
    #[oai(status = 200)]
    Ok(Json<TokenPair>),
}

#[derive(ApiResponse)]
pub enum RefreshOk {
    #[oai(status = 200)]
    Ok(Json<Refreshed>),
}

#[derive(ApiResponse)]
pub enum MeOk {
    #[oai(status = 200)]
    Ok(Json<User>),
}

#[derive(ApiResponse)]
pub enum Done {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

const BAD_CREDENTIALS: &str = "No active account found with the given credentials.";
const BAD_REFRESH: &str = "Token is invalid or expired.";

pub struct AuthApi {
    pub state: AppState,
}

impl AuthApi {
    fn issue_error(err: jsonwebtoken::errors::Error) -> ApiError {
        ApiError::internal("issuing a token", err)
    }

    /// Issues an access token and a recorded refresh token in `family`.
    async fn issue_pair(&self, user: &user::Model, family: &str) -> ApiResult<TokenPair> {
        let keys = &self.state.keys;
        let access = keys
            .issue(user.id, TokenType::Access)
            .map_err(Self::issue_error)?;
        let refresh = keys
            .issue(user.id, TokenType::Refresh)
            .map_err(Self::issue_error)?;
        refresh_tokens::record(
            &self.state.db,
            user.id,
            &refresh.jti,
            family,
            refresh.expires_at,
        )
        .await?;
        Ok(TokenPair {
            access: access.token,
            refresh: refresh.token,
        })
    }
}

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Register a new user
    ///
    /// Creates an account. Usernames and emails are unique ignoring case
    /// (409 when taken). Passwords must be 8 to 128 characters and not easy
    /// to guess; the 400 says why one was refused.
    #[oai(
        path = "/api/auth/register",
        method = "post",
        operation_id = "register"
    )]
    async fn register(
        &self,
        req: &Request,
        body: JsonBody<RegisterInput>,
    ) -> Res<Registered, { BODY | CONFLICT | TOO_MANY_REQUESTS | SERVER }> {
        self.state.limits.check_ip(req)?;
        let input = body.0;
        let db = &self.state.db;
        let taken = users::taken_fields(db, &input.username, &input.email).await?;
        if !taken.is_empty() {
            return Err(taken_error(&taken).into());
        }
        let password_hash = self
            .state
            .hasher
            .hash(input.password)
            .await
            .map_err(|e| ApiError::internal("hashing a password", e))?;
        let new = users::NewUser {
            username: input.username,
            email: input.email,
            password_hash,
            is_staff: false,
        };
        match users::create(db, new).await {
            Ok(row) => {
                tracing::info!(user_id = row.id, "user registered");
                Ok(Registered::Created(
                    Json(row.into()),
                    "/api/auth/me/".into(),
                ))
            }
            Err(users::CreateUserError::Taken(fields)) => Err(taken_error(&fields).into()),
            Err(users::CreateUserError::Db(e)) => Err(e.into()),
        }
    }

    /// Log in
    ///
    /// Exchanges a username and password for an access token and a refresh
    /// token. Wrong credentials and inactive accounts get the same 401.
    #[oai(path = "/api/auth/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        req: &Request,
        body: JsonBody<LoginInput>,
    ) -> Res<LoggedIn, { BODY | UNAUTHORIZED | TOO_MANY_REQUESTS | SERVER }> {
        let limits = &self.state.limits;
        limits.check_ip(req)?;
        let input = body.0;
        limits.check_account(&input.username)?;
        let user = users::find_by_username(&self.state.db, &input.username).await?;
        if let (Some(user), Some(audit)) = (&user, req.data::<AuditContext>()) {
            audit.set(user.id);
        }
        let verified = self
            .state
            .hasher
            .verify(
                input.password,
                user.as_ref().map(|u| u.password_hash.clone()),
            )
            .await
            .map_err(|e| ApiError::internal("verifying a password", e))?;
        let user = match user {
            Some(user) if verified && user.is_active => user,
            other => {
                tracing::info!(user_id = other.map(|u| u.id), "login failed");
                return Err(ApiError::unauthorized(BAD_CREDENTIALS).into());
            }
        };
        let family = uuid::Uuid::new_v4().simple().to_string();
        let pair = self.issue_pair(&user, &family).await?;
        tracing::info!(user_id = user.id, "login succeeded");
        Ok(LoggedIn::Ok(Json(pair)))
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
        operation_id = "refresh_token"
    )]
    async fn refresh(
        &self,
        req: &Request,
        body: JsonBody<RefreshInput>,
    ) -> Res<RefreshOk, { BODY | UNAUTHORIZED | TOO_MANY_REQUESTS | SERVER }> {
        let state = &self.state;
        state.limits.check_ip(req)?;
        let claims = state
            .keys
            .verify(&body.0.refresh, TokenType::Refresh)
            .map_err(refresh_error)?;
        let record = refresh_tokens::find(&state.db, &claims.jti)
            .await?
            .filter(|r| r.revoked_at.is_none())
            .ok_or_else(|| ApiError::unauthorized(BAD_REFRESH))?;
        let user = users::find(&state.db, record.user_id)
            .await?
            .filter(|u| u.is_active)
            .ok_or_else(|| ApiError::unauthorized(BAD_REFRESH))?;
        let reused = record.rotated_at.is_some()
            || (state.config.rotate_refresh_tokens
                && !refresh_tokens::mark_rotated(&state.db, record.id).await?);
        if reused {
            if let Some(audit) = req.data::<AuditContext>() {
                audit.set(user.id);
                audit.set_action("revoke");
            }
            let revoked = refresh_tokens::revoke_family(&state.db, &record.family).await?;
            tracing::warn!(
                user_id = user.id,
                revoked,
                "rotated refresh token reused; family revoked"
            );
            return Err(ApiError::unauthorized(BAD_REFRESH).into());
        }
        if state.config.rotate_refresh_tokens {
            let pair = self.issue_pair(&user, &record.family).await?;
            return Ok(RefreshOk::Ok(Json(Refreshed {
                access: pair.access,
                refresh: Some(pair.refresh),
            })));
        }
        let access = state
            .keys
            .issue(user.id, TokenType::Access)
            .map_err(Self::issue_error)?;
        Ok(RefreshOk::Ok(Json(Refreshed {
            access: access.token,
            refresh: None,
        })))
    }

    /// Log out
    ///
    /// Revokes the refresh token (and every token rotated from the same
    /// login). Access tokens already issued stay valid until they expire
    /// (5 minutes by default).
    #[oai(path = "/api/auth/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        req: &Request,
        body: JsonBody<RefreshInput>,
    ) -> Res<Done, { BODY | UNAUTHORIZED | SERVER }> {
        let state = &self.state;
        let claims = state
            .keys
            .verify(&body.0.refresh, TokenType::Refresh)
            .map_err(refresh_error)?;
        let record = refresh_tokens::find(&state.db, &claims.jti)
            .await?
            .ok_or_else(|| ApiError::unauthorized(BAD_REFRESH))?;
        if let Some(audit) = req.data::<AuditContext>() {
            audit.set(record.user_id);
        }
        let revoked = refresh_tokens::revoke_family(&state.db, &record.family).await?;
        tracing::info!(
            user_id = record.user_id,
            revoked,
            "refresh tokens revoked at logout"
        );
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
    async fn me(&self, auth: BearerAuth) -> Res<MeOk, AUTHED> {
        let user = users::find(&self.state.db, auth.0.user_id)
            .await?
            .filter(|u| u.is_active)
            .ok_or_else(|| {
                ApiError::invalid_token("The user of this token no longer exists or is inactive.")
            })?;
        Ok(MeOk::Ok(Json(user.into())))
    }

    /// Change the password
    ///
    /// Needs the current password. Revokes every refresh token of the user,
    /// so every other session must log in again.
    #[oai(
        path = "/api/auth/password",
        method = "post",
        operation_id = "change_password"
    )]
    async fn change_password(
        &self,
        auth: BearerAuth,
        body: JsonBody<PasswordChangeInput>,
    ) -> Res<Done, { AUTHED | BODY }> {
        let state = &self.state;
        let input = body.0;
        let user = users::find(&state.db, auth.0.user_id)
            .await?
            .filter(|u| u.is_active)
            .ok_or_else(|| {
                ApiError::invalid_token("The user of this token no longer exists or is inactive.")
            })?;
        let verified = state
            .hasher
            .verify(input.old_password, Some(user.password_hash.clone()))
            .await
            .map_err(|e| ApiError::internal("verifying a password", e))?;
        if !verified {
            return Err(ApiError::field(
                "old_password",
                "Your old password was entered incorrectly.",
            )
            .into());
        }
        if let Err(e) = check_strength(&input.new_password, &[&user.username, &user.email]) {
            return Err(ApiError::field("new_password", e).into());
        }
        let hash = state
            .hasher
            .hash(input.new_password)
            .await
            .map_err(|e| ApiError::internal("hashing a password", e))?;
        users::set_password(&state.db, user.id, hash).await?;
        let revoked = refresh_tokens::revoke_user(&state.db, user.id).await?;
        tracing::info!(
            user_id = user.id,
            revoked,
            "password changed; refresh tokens revoked"
        );
        Ok(Done::NoContent)
    }
}

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

fn refresh_error(err: TokenError) -> ApiError {
    match err {
        TokenError::WrongType => ApiError::unauthorized("This is not a refresh token."),
        TokenError::Expired | TokenError::Invalid => ApiError::unauthorized(BAD_REFRESH),
    }
}
