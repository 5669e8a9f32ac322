//! The server-side record of issued refresh tokens, for revocation.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter,
};

use crate::entity::refresh_token;

/// SHA-256 of a token id, hex: what the database keeps instead of the token.
pub fn fingerprint(jti: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(jti.as_bytes()))
}

pub async fn record(
    db: &DatabaseConnection,
    user_id: i64,
    jti: &str,
    family: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    refresh_token::ActiveModel {
        jti_hash: Set(fingerprint(jti)),
        user_id: Set(user_id),
        family: Set(family.to_string()),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
        rotated_at: Set(None),
        created_at: Set(super::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

pub async fn find(
    db: &DatabaseConnection,
    jti: &str,
) -> Result<Option<refresh_token::Model>, DbErr> {
    refresh_token::Entity::find()
        .filter(refresh_token::Column::JtiHash.eq(fingerprint(jti)))
        .one(db)
        .await
}

/// Marks a token as exchanged. Returns false when another request already
/// did (the token is being reused).
pub async fn mark_rotated(db: &DatabaseConnection, id: i64) -> Result<bool, DbErr> {
    let result = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RotatedAt, Expr::value(super::now()))
        .filter(refresh_token::Column::Id.eq(id))
        .filter(refresh_token::Column::RotatedAt.is_null())
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

pub async fn revoke_family(db: &DatabaseConnection, family: &str) -> Result<u64, DbErr> {
    let result = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(super::now()))
        .filter(refresh_token::Column::Family.eq(family))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

pub async fn revoke_user(db: &DatabaseConnection, user_id: i64) -> Result<u64, DbErr> {
    let result = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(super::now()))
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
