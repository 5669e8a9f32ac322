//! Authentication: who may log in, which tokens are good, when sessions
//! end. [`sessions`] owns every session and token rule (register, login,
//! refresh with rotation and reuse detection, logout, password change,
//! deactivation); [`Authenticator`] checks access tokens on every request.
//!
//! This module never touches the database itself: what it needs is the
//! [`AccountStore`] trait, which `store` implements.

pub mod clients;
pub mod limits;
pub mod password;
pub mod sessions;
pub mod tokens;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::DbErr;

use crate::domain::{Email, Principal, Username};
use crate::entity::{refresh_token, service_client, user};
use tokens::{JwtKeys, TokenError, TokenType};

/// A new account, valid and with its password already hashed.
pub struct NewAccount {
    pub username: Username,
    pub email: Email,
    pub password_hash: String,
    pub is_staff: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateAccountError {
    /// Which of `username` / `email` is taken.
    #[error("{0:?} is taken")]
    Taken(Vec<&'static str>),
    #[error(transparent)]
    Db(#[from] DbErr),
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no such user")]
    NotFound,
    /// Deactivating the last active administrator would leave none.
    #[error("last active administrator")]
    LastAdmin,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A refresh token to remember (only a hash of its id is stored).
pub struct NewRefreshToken<'a> {
    pub user_id: i64,
    pub jti: &'a str,
    pub family: &'a str,
    pub expires_at: DateTime<Utc>,
}

/// What sessions need from storage.
pub trait AccountStore: Clone + Send + Sync + 'static {
    fn user(&self, id: i64) -> impl Future<Output = Result<Option<user::Model>, DbErr>> + Send;

    /// The account a username as typed names (compared by its key).
    fn user_by_username(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<user::Model>, DbErr>> + Send;

    /// Which of the unique fields are taken.
    fn taken(
        &self,
        username: &Username,
        email: &Email,
    ) -> impl Future<Output = Result<Vec<&'static str>, DbErr>> + Send;

    fn create_user(
        &self,
        new: NewAccount,
    ) -> impl Future<Output = Result<user::Model, CreateAccountError>> + Send;

    fn set_password(
        &self,
        id: i64,
        password_hash: String,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// Activates or deactivates; deactivation also refuses access tokens
    /// issued before it and refuses to leave no active administrator.
    fn set_active(
        &self,
        id: i64,
        active: bool,
    ) -> impl Future<Output = Result<user::Model, StatusError>> + Send;

    fn record_refresh_token(
        &self,
        token: NewRefreshToken<'_>,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;

    fn refresh_token(
        &self,
        jti: &str,
    ) -> impl Future<Output = Result<Option<refresh_token::Model>, DbErr>> + Send;

    /// Marks a token exchanged; false when another request already did.
    fn mark_rotated(&self, id: i64) -> impl Future<Output = Result<bool, DbErr>> + Send;

    fn revoke_family(&self, family: &str) -> impl Future<Output = Result<u64, DbErr>> + Send;

    fn revoke_user_tokens(&self, user_id: i64) -> impl Future<Output = Result<u64, DbErr>> + Send;

    /// A service client, deleted or not.
    fn client(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<service_client::Model>, DbErr>> + Send;
}

/// How long a user's status is trusted before it is read again:
/// deactivation and role changes take effect within this time on every
/// instance, at one indexed read per user per period.
pub const STATUS_TTL: Duration = Duration::from_secs(5);

/// Whose status a token depends on: its user's, and its service client's
/// when it has one. Both are checked the same way (active, and tokens
/// issued before `tokens_valid_after` refused) and trusted for the same
/// [`STATUS_TTL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    User(i64),
    Client(i64),
}

#[derive(Debug, Clone, Copy)]
struct Status {
    active: bool,
    staff: bool,
    /// Access tokens issued (in milliseconds since the epoch) before this
    /// are refused.
    valid_after: Option<i64>,
    /// A client's owner: the only user its tokens may name.
    owner: Option<i64>,
}

impl Status {
    fn of_user(u: user::Model) -> Self {
        Self {
            active: u.is_active,
            staff: u.is_staff,
            valid_after: u.tokens_valid_after.map(|t| t.timestamp_millis()),
            owner: None,
        }
    }

    /// A client is active until it is disabled or deleted.
    fn of_client(c: &service_client::Model) -> Self {
        Self {
            active: c.disabled_at.is_none() && c.deleted_at.is_none(),
            staff: false,
            valid_after: c.tokens_valid_after.map(|t| t.timestamp_millis()),
            owner: Some(c.owner_id),
        }
    }

    /// Whether a token issued at `issued_at_ms` is still good.
    fn admits(&self, issued_at_ms: i64) -> bool {
        self.active && self.valid_after.is_none_or(|after| issued_at_ms >= after)
    }
}

/// Whether a token of `client` issued at `issued_at_ms` for `user_id` is
/// still good: the client active, owned by that user, and not revoked since.
pub fn client_admits(client: &service_client::Model, user_id: i64, issued_at_ms: i64) -> bool {
    let status = Status::of_client(client);
    status.owner == Some(user_id) && status.admits(issued_at_ms)
}

/// Why an access token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("The access token has expired.")]
    Expired,
    #[error("This is not an access token.")]
    WrongType,
    #[error("The access token is invalid.")]
    Invalid,
    #[error("The user of this token is inactive or no longer exists, or the session has ended.")]
    Inactive,
    #[error("checking the user of a token: {0}")]
    Db(DbErr),
}

/// Verifies access tokens and checks that their user is still active.
/// Cheap to clone.
#[derive(Clone)]
pub struct Authenticator<S>(Arc<Inner<S>>);

struct Inner<S> {
    keys: JwtKeys,
    store: S,
    status: moka::future::Cache<Subject, Option<Status>>,
}

impl<S: AccountStore> Authenticator<S> {
    pub fn new(keys: JwtKeys, store: S) -> Self {
        Self(Arc::new(Inner {
            keys,
            store,
            status: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(STATUS_TTL)
                .build(),
        }))
    }

    /// Forgets what is cached about a user or a client (after deactivation,
    /// say), so that this instance sees the change at once.
    pub async fn forget(&self, subject: Subject) {
        self.0.status.invalidate(&subject).await;
    }

    async fn status(&self, subject: Subject) -> Result<Option<Status>, AuthError> {
        let store = self.0.store.clone();
        self.0
            .status
            .try_get_with(subject, async move {
                match subject {
                    Subject::User(id) => store.user(id).await.map(|u| u.map(Status::of_user)),
                    Subject::Client(id) => store
                        .client(id)
                        .await
                        .map(|c| c.as_ref().map(Status::of_client)),
                }
            })
            .await
            .map_err(|e: Arc<DbErr>| AuthError::Db((*e).clone()))
    }

    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self
            .0
            .keys
            .verify(token, TokenType::Access)
            .map_err(|e| match e {
                TokenError::Expired => AuthError::Expired,
                TokenError::WrongType => AuthError::WrongType,
                TokenError::Invalid => AuthError::Invalid,
            })?;
        let user_id = claims.user_id().ok_or(AuthError::Invalid)?;
        let issued = claims.issued_at_ms();
        let user = self
            .status(Subject::User(user_id))
            .await?
            .filter(|s| s.admits(issued))
            .ok_or(AuthError::Inactive)?;
        if let Some(client_id) = claims.client_id {
            self.status(Subject::Client(client_id))
                .await?
                .filter(|s| s.owner == Some(user_id) && s.admits(issued))
                .ok_or(AuthError::Inactive)?;
        }
        Ok(Principal {
            user_id,
            is_staff: user.staff,
            client_id: claims.client_id,
            scopes: claims.scopes(),
        })
    }
}
