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
    Subject, client_admits, clients,
};
use crate::domain::account::{Strength, username_key};
use crate::domain::{Email, NewPassword, Principal, Scopes, Username};
use crate::entity::{service_client, user};

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
    /// A service client's id or secret is wrong, or the client (or its
    /// owner) is no longer active: one answer for all.
    #[error("client authentication failed")]
    BadClient,
    /// A service client asked for a token for someone other than its owner.
    #[error("the client does not act for this user")]
    NotTheOwner { user_id: i64 },
    /// Scopes beyond what the client (or the refreshed token) has.
    #[error("scope not granted")]
    ScopeNotAllowed,
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
        self.password_grant(ip, None, username, password, Some(scopes))
            .await
    }

    /// Counts one request of the OAuth token endpoint against the client
    /// IP's rate (the same rate as a login's); the grants below do not.
    pub async fn check_token_request(&self, ip: Option<IpAddr>) -> Result<(), SessionError> {
        self.check_ip(ip).await
    }

    /// The OAuth `password` grant (and the login): a person's username and
    /// password, within the account's failure budget. With `client`, the
    /// tokens are the client's, narrowed to its scopes, and only its owner
    /// may log in through it. `requested`: the scopes asked for (all the
    /// client's, or every scope for a person, when `None`).
    pub async fn password_grant(
        &self,
        ip: Option<IpAddr>,
        client: Option<&service_client::Model>,
        username: &str,
        password: String,
        requested: Option<Scopes>,
    ) -> Result<(user::Model, Tokens), SessionError> {
        let user = self.check_password(ip, username, password).await?;
        if let Some(client) = client
            && client.owner_id != user.id
        {
            return Err(SessionError::NotTheOwner { user_id: user.id });
        }
        let allowed = client.map_or(Scopes::ALL, client_scopes);
        let grant = Grant {
            user_id: user.id,
            client_id: client.map(|c| c.id),
            scopes: narrowed(allowed, requested)?,
        };
        let family = uuid::Uuid::new_v4().simple().to_string();
        let tokens = self.issue_pair(grant, &family).await?;
        tracing::info!(
            user_id = user.id,
            client_id = grant.client_id,
            "login succeeded"
        );
        Ok((user, tokens))
    }

    /// A service client proves who it is with its id and secret. Unknown
    /// ids, wrong secrets, disabled or deleted clients and inactive owners
    /// get the same error.
    pub async fn authenticate_client(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<service_client::Model, SessionError> {
        let id = client_id
            .parse::<i64>()
            .ok()
            .filter(|_| client_id.bytes().all(|b| b.is_ascii_digit()));
        let client = match id {
            Some(id) => self.store.client(id).await?,
            None => None,
        };
        let Some(client) = client else {
            return Err(SessionError::BadClient);
        };
        if !clients::secret_matches(secret, &client.secret_hash) {
            tracing::info!(client_id = client.id, "client authentication failed");
            return Err(SessionError::BadClient);
        }
        let owner_active = self
            .store
            .user(client.owner_id)
            .await?
            .is_some_and(|u| u.is_active);
        if !owner_active || !client_admits(&client, client.owner_id, i64::MAX) {
            tracing::info!(client_id = client.id, "inactive client refused");
            return Err(SessionError::BadClient);
        }
        Ok(client)
    }

    /// The OAuth `client_credentials` grant: an access token (no refresh
    /// token, RFC 6749 §4.4.3) for the client's owner, narrowed to the
    /// client's scopes.
    pub async fn client_credentials(
        &self,
        client: &service_client::Model,
        requested: Option<Scopes>,
    ) -> Result<Tokens, SessionError> {
        let grant = Grant {
            user_id: client.owner_id,
            client_id: Some(client.id),
            scopes: narrowed(client_scopes(client), requested)?,
        };
        let access = self.keys.issue(grant, TokenType::Access, None)?;
        tracing::info!(
            user_id = client.owner_id,
            client_id = client.id,
            "client token issued"
        );
        Ok(Tokens {
            access,
            refresh: None,
            scopes: grant.scopes,
        })
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
        self.refresh_grant(None, token, None).await
    }

    /// The OAuth `refresh_token` grant (and the refresh above, with no
    /// client). A token issued to a service client is only refreshed by
    /// that client, while it is active and not revoked since the token was
    /// issued; a person's token by no client. `requested` may narrow the
    /// scopes, never widen them.
    pub async fn refresh_grant(
        &self,
        client: Option<&service_client::Model>,
        token: &str,
        requested: Option<Scopes>,
    ) -> Result<(i64, Tokens), SessionError> {
        let (claims, record) = self.refresh_record(token).await?;
        if record.revoked_at.is_some() || claims.client_id != client.map(|c| c.id) {
            return Err(SessionError::BadRefreshToken);
        }
        let user = self
            .store
            .user(record.user_id)
            .await?
            .filter(|u| u.is_active)
            .ok_or(SessionError::BadRefreshToken)?;
        if let Some(client_id) = claims.client_id {
            // The client's current state, not the one its authentication
            // read: a token issued before a rotation is refused.
            let admitted = self
                .store
                .client(client_id)
                .await?
                .is_some_and(|c| client_admits(&c, user.id, claims.issued_at_ms()));
            if !admitted {
                return Err(SessionError::BadRefreshToken);
            }
        }
        let scopes = narrowed(claims.scopes(), requested)?;
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
            client_id: claims.client_id,
            scopes,
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
        self.authenticator.forget(Subject::User(user_id)).await;
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

/// The scopes a client was granted (as stored).
fn client_scopes(client: &service_client::Model) -> Scopes {
    Scopes::parse(&client.scopes).unwrap_or(Scopes::NONE)
}

/// `requested` when it is within `allowed`; `allowed` when nothing was asked.
fn narrowed(allowed: Scopes, requested: Option<Scopes>) -> Result<Scopes, SessionError> {
    match requested {
        None => Ok(allowed),
        Some(requested) if requested.is_subset_of(allowed) && !requested.is_empty() => {
            Ok(requested)
        }
        Some(_) => Err(SessionError::ScopeNotAllowed),
    }
}

fn refresh_error(err: TokenError) -> SessionError {
    match err {
        TokenError::WrongType => SessionError::NotARefreshToken,
        TokenError::Expired | TokenError::Invalid => SessionError::BadRefreshToken,
    }
}
