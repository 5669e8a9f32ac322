use sea_orm::entity::prelude::*;

/// A refresh token the server issued. Only a SHA-256 of its `jti` is kept.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub jti_hash: String,
    pub user_id: i64,
    /// Tokens rotated from one login share a family; reuse revokes the family.
    pub family: String,
    pub expires_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    /// Set when this token was exchanged for a newer one (rotation).
    pub rotated_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
