//! Every rule about sessions and tokens, for the HTTP API and the CLI alike:
//! registration, login, refresh (with rotation and reuse detection),
//! logout, password change, deactivation and revocation. Tokens are
//! revoked here and only here.

use std::net::IpAddr;
use std::sync::Arc;

use super::limits::{LimitError, LimitStore, Limited, Limits};
use super::password::{HashError, PasswordHasherPool};
use super::tokens::{Grant, Issued, JwtKeys, TokenError, TokenType};
use super::{
    AccountStore, Authenticator, CreateAccountError, NewAccount, NewRefreshToken, StatusError,
};
use crate::domain::account::{Strength, username_key};
use crate::domain::{Email, NewPassword, Principal, Scopes, Username};
use crate::entity::user;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Wrong username or password, or an inactive account: one answer for
    /// all, so that accounts cannot be told apart. `user_id` is for the
    /// audit trail only.
    #[error("bad credentials")]
    BadCredentials { user_id: Option<i64> },
    #[error("rate limited")]
    RateLimited(Limited),
    #[error("{0:?} taken")]
    Taken(Vec<&'static str>),
    /// A field the client must fix (a weak password, a wrong old password).
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("the refresh token is invalid, expired or revoked")]
    BadRefreshToken,
    #[error("not a refresh token")]
    NotARefreshToken,
    /// A rotated refresh token was presented again; its family is revoked.
    #[error("refresh token reused")]
    Reused { user_id: i64 },
    #[error("no such user")]
    NoSuchUser,
    #[error("last active administrator")]
    LastAdmin,
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Limits(#[from] LimitError),
    #[error("{0}")]
    Internal(String),
}

impl From<HashError> for SessionError {
    fn from(err: HashError) -> Self {
        Self::Internal(format!("password hashing: {err}"))
    }
}

impl From<jsonwebtoken::errors::Error> for SessionError {
    fn from(err: jsonwebtoken::errors::Error) -> Self {
        Self::Internal(format!("issuing a token: {err}"))
    }
}

/// Tokens handed out at login or refresh.
pub struct Tokens {
    pub access: Issued,
    /// A new refresh token (login, or refresh with rotation on).
    pub refresh: Option<Issued>,
    pub scopes: Scopes,
}

/// Session settings.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// New refresh token on every refresh; reuse revokes the family.
    pub rotate_refresh_tokens: bool,
    pub password_strength: Strength,
}

pub struct Sessions<S, L> {
    store: S,
    keys: JwtKeys,
    hasher: PasswordHasherPool,
    limits: Arc<Limits<L>>,
    authenticator: Authenticator<S>,
    policy: Policy,
}

impl<S: AccountStore, L: LimitStore> Sessions<S, L> {
    pub fn new(
        store: S,
        keys: JwtKeys,
        hasher: PasswordHasherPool,
        limits: Arc<Limits<L>>,
        policy: Policy,
    ) -> Self {
        Self {
            authenticator: Authenticator::new(keys.clone(), store.clone()),
            store,
            keys,
            hasher,
            limits,
            policy,
        }
    }

    pub fn authenticator(&self) -> &Authenticator<S> {
        &self.authenticator
    }

    pub fn limits(&self) -> &Limits<L> {
        &self.limits
    }

    pub fn keys(&self) -> &JwtKeys {
        &self.keys
    }

    async fn check_ip(&self, ip: Option<IpAddr>) -> Result<(), SessionError> {
        self.limits
            .check_ip(ip)
            .await?
            .map_err(SessionError::RateLimited)
    }

    /// Creates an account; the CLI creates administrators the same way.
    pub async fn register(
        &self,
        ip: Option<IpAddr>,
        username: Username,
        email: Email,
        password: String,
        is_staff: bool,
    ) -> Result<user::Model, SessionError> {
        self.check_ip(ip).await?;
        let taken = self.store.taken(&username, &email).await?;
        if !taken.is_empty() {
            return Err(SessionError::Taken(taken));
        }
        let password = NewPassword::parse(
            password,
            &[username.as_str(), email.as_str()],
            self.policy.password_strength,
        )
        .map_err(|e| SessionError::Invalid {
            field: "password",
            message: e.into_message(),
        })?;
        let password_hash = self.hasher.hash(password.expose()).await?;
        let account = NewAccount {
            username,
            email,
            password_hash,
            is_staff,
        };
        match self.store.create_user(account).await {
            Ok(user) => {
                tracing::info!(user_id = user.id, is_staff, "user registered");
                Ok(user)
            }
            Err(CreateAccountError::Taken(fields)) => Err(SessionError::Taken(fields)),
            Err(CreateAccountError::Db(e)) => Err(e.into()),
        }
    }

    /// Checks `password` against `username`'s account within the account's
    /// failure budget; the user when it is right and the account active.
    async fn check_password(
        &self,
        ip: Option<IpAddr>,
        username: &str,
        password: String,
    ) -> Result<user::Model, SessionError> {
        let account = username_key(username);
        self.limits
            .check_account(&account, ip)
            .await?
            .map_err(SessionError::RateLimited)?;
        let user = self.store.user_by_username(username).await?;
        let verified = self
            .hasher
            .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
            .await?;
        match user {
            Some(user) if verified && user.is_active => {
                self.limits.record_success(&account, ip).await?;
                Ok(user)
            }
            other => {
                if !verified {
                    self.limits.record_failure(&account, ip).await?;
                }
                let user_id = other.map(|u| u.id);
                tracing::info!(user_id, "login failed");
                Err(SessionError::BadCredentials { user_id })
            }
        }
    }

    /// Issues an access token and a remembered refresh token in `family`.
    async fn issue_pair(&self, grant: Grant, family: &str) -> Result<Tokens, SessionError> {
        let access = self.keys.issue(grant, TokenType::Access, None)?;
        let refresh = self.keys.issue(grant, TokenType::Refresh, None)?;
        self.store
            .record_refresh_token(NewRefreshToken {
                user_id: grant.user_id,
                jti: &refresh.jti,
                family,
                expires_at: refresh.expires_at,
            })
            .await?;
        Ok(Tokens {
            access,
            refresh: Some(refresh),
            scopes: grant.scopes,
        })
    }

    /// A person logs in with their username and password; the tokens carry
    /// `scopes` (every scope for the original login).
    pub async fn login(
        &self,
        ip: Option<IpAddr>,
        username: &str,
        password: String,
        scopes: Scopes,
    ) -> Result<(user::Model, Tokens), SessionError> {
        self.check_ip(ip).await?;
        let user = self.check_password(ip, username, password).await?;
        let family = uuid::Uuid::new_v4().simple().to_string();
        let grant = Grant {
            user_id: user.id,
            client_id: None,
            scopes,
        };
        let tokens = self.issue_pair(grant, &family).await?;
        tracing::info!(user_id = user.id, "login succeeded");
        Ok((user, tokens))
    }

    /// Exchanges a refresh token for a new access token (and, with
    /// rotation, a new refresh token; presenting a rotated one again
    /// revokes every token descended from the same login).
    pub async fn refresh(
        &self,
        ip: Option<IpAddr>,
        token: &str,
    ) -> Result<(i64, Tokens), SessionError> {
        self.check_ip(ip).await?;
        let (claims, record) = self.refresh_record(token).await?;
        if record.revoked_at.is_some() {
            return Err(SessionError::BadRefreshToken);
        }
        let user = self
            .store
            .user(record.user_id)
            .await?
            .filter(|u| u.is_active)
            .ok_or(SessionError::BadRefreshToken)?;
        let rotate = self.policy.rotate_refresh_tokens;
        let reused =
            record.rotated_at.is_some() || (rotate && !self.store.mark_rotated(record.id).await?);
        if reused {
            let revoked = self.store.revoke_family(&record.family).await?;
            tracing::warn!(
                user_id = user.id,
                revoked,
                "rotated refresh token reused; family revoked"
            );
            return Err(SessionError::Reused { user_id: user.id });
        }
        let grant = Grant {
            user_id: user.id,
            client_id: None,
            scopes: claims.scopes(),
        };
        let tokens = if rotate {
            self.issue_pair(grant, &record.family).await?
        } else {
            Tokens {
                access: self.keys.issue(grant, TokenType::Access, None)?,
                refresh: None,
                scopes: grant.scopes,
            }
        };
        Ok((user.id, tokens))
    }

    /// A refresh token's claims and what the server remembers of it.
    async fn refresh_record(
        &self,
        token: &str,
    ) -> Result<(super::tokens::Claims, crate::entity::refresh_token::Model), SessionError> {
        let claims = self
            .keys
            .verify(token, TokenType::Refresh)
            .map_err(refresh_error)?;
        let record = self
            .store
            .refresh_token(&claims.jti)
            .await?
            .ok_or(SessionError::BadRefreshToken)?;
        Ok((claims, record))
    }

    /// Revokes a refresh token and its rotation family; the user's id.
    pub async fn logout(&self, token: &str) -> Result<i64, SessionError> {
        let (_, record) = self.refresh_record(token).await?;
        let revoked = self.store.revoke_family(&record.family).await?;
        tracing::info!(
            user_id = record.user_id,
            revoked,
            "refresh tokens revoked at logout"
        );
        Ok(record.user_id)
    }

    /// Changes the caller's password (the old one is checked within the
    /// same limits as a login) and revokes every refresh token of theirs.
    pub async fn change_password(
        &self,
        ip: Option<IpAddr>,
        user_id: i64,
        old_password: String,
        new_password: String,
    ) -> Result<(), SessionError> {
        self.check_ip(ip).await?;
        let user = self
            .store
            .user(user_id)
            .await?
            .filter(|u| u.is_active)
            .ok_or(SessionError::BadCredentials {
                user_id: Some(user_id),
            })?;
        let account = username_key(&user.username);
        self.limits
            .check_account(&account, ip)
            .await?
            .map_err(SessionError::RateLimited)?;
        let verified = self
            .hasher
            .verify(old_password, Some(user.password_hash.clone()))
            .await?;
        if !verified {
            self.limits.record_failure(&account, ip).await?;
            return Err(SessionError::Invalid {
                field: "old_password",
                message: "Your old password was entered incorrectly.".into(),
            });
        }
        let new_password = NewPassword::parse(
            new_password,
            &[&user.username, &user.email],
            self.policy.password_strength,
        )
        .map_err(|e| SessionError::Invalid {
            field: "new_password",
            message: e.into_message(),
        })?;
        let hash = self.hasher.hash(new_password.expose()).await?;
        self.store.set_password(user.id, hash).await?;
        let revoked = self.store.revoke_user_tokens(user.id).await?;
        tracing::info!(
            user_id = user.id,
            revoked,
            "password changed; refresh tokens revoked"
        );
        Ok(())
    }

    /// Activates or deactivates a user. Deactivation ends every session:
    /// refresh tokens are revoked and access tokens issued before it stay
    /// refused after a reactivation. The last active administrator cannot
    /// be deactivated.
    pub async fn set_active(
        &self,
        by: &Principal,
        user_id: i64,
        active: bool,
    ) -> Result<user::Model, SessionError> {
        let user = self
            .store
            .set_active(user_id, active)
            .await
            .map_err(|e| match e {
                StatusError::NotFound => SessionError::NoSuchUser,
                StatusError::LastAdmin => SessionError::LastAdmin,
                StatusError::Db(e) => SessionError::Db(e),
            })?;
        if !active {
            let revoked = self.store.revoke_user_tokens(user_id).await?;
            tracing::info!(
                user_id,
                revoked,
                by = by.user_id,
                "user deactivated; sessions ended"
            );
        }
        self.authenticator.forget(user_id).await;
        Ok(user)
    }

    /// The caller's own account, while it is active.
    pub async fn account(&self, user_id: i64) -> Result<user::Model, SessionError> {
        self.store
            .user(user_id)
            .await?
            .filter(|u| u.is_active)
            .ok_or(SessionError::NoSuchUser)
    }

    /// Revokes every refresh token of a user.
    pub async fn revoke_tokens(&self, by: &Principal, user_id: i64) -> Result<u64, SessionError> {
        if self.store.user(user_id).await?.is_none() {
            return Err(SessionError::NoSuchUser);
        }
        let revoked = self.store.revoke_user_tokens(user_id).await?;
        tracing::info!(
            user_id,
            revoked,
            by = by.user_id,
            "tokens revoked by an administrator"
        );
        Ok(revoked)
    }
}

fn refresh_error(err: TokenError) -> SessionError {
    match err {
        TokenError::WrongType => SessionError::NotARefreshToken,
        TokenError::Expired | TokenError::Invalid => SessionError::BadRefreshToken,
    }
}
