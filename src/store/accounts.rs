//! The storage sessions need (`auth::AccountStore`), on the database.

use sea_orm::{DatabaseConnection, DbErr};

use super::{clients, refresh_tokens, users};
use crate::auth::{AccountStore, CreateAccountError, NewAccount, NewRefreshToken, StatusError};
use crate::domain::{Email, Username};
use crate::entity::{refresh_token, service_client, user};

/// Accounts and their refresh tokens in the database.
#[derive(Clone)]
pub struct Accounts(pub DatabaseConnection);

impl AccountStore for Accounts {
    async fn user(&self, id: i64) -> Result<Option<user::Model>, DbErr> {
        users::find(&self.0, id).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<user::Model>, DbErr> {
        users::find_by_username(&self.0, username).await
    }

    async fn taken(&self, username: &Username, email: &Email) -> Result<Vec<&'static str>, DbErr> {
        users::taken_fields(&self.0, username, email).await
    }

    async fn create_user(&self, new: NewAccount) -> Result<user::Model, CreateAccountError> {
        users::create(&self.0, new).await
    }

    async fn set_password(&self, id: i64, password_hash: String) -> Result<(), DbErr> {
        users::set_password(&self.0, id, password_hash).await
    }

    async fn set_active(&self, id: i64, active: bool) -> Result<user::Model, StatusError> {
        users::set_active(&self.0, id, active).await
    }

    async fn record_refresh_token(&self, token: NewRefreshToken<'_>) -> Result<(), DbErr> {
        refresh_tokens::record(
            &self.0,
            token.user_id,
            token.jti,
            token.family,
            token.expires_at,
        )
        .await
    }

    async fn refresh_token(&self, jti: &str) -> Result<Option<refresh_token::Model>, DbErr> {
        refresh_tokens::find(&self.0, jti).await
    }

    async fn mark_rotated(&self, id: i64) -> Result<bool, DbErr> {
        refresh_tokens::mark_rotated(&self.0, id).await
    }

    async fn revoke_family(&self, family: &str) -> Result<u64, DbErr> {
        refresh_tokens::revoke_family(&self.0, family).await
    }

    async fn revoke_user_tokens(&self, user_id: i64) -> Result<u64, DbErr> {
        refresh_tokens::revoke_user(&self.0, user_id).await
    }

    async fn client(&self, id: i64) -> Result<Option<service_client::Model>, DbErr> {
        clients::find(&self.0, id).await
    }
}
