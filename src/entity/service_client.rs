use sea_orm::entity::prelude::*;

/// A service client: credentials a user created for an integration that
/// acts for them. Only a SHA-256 of the secret is kept.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "service_clients")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The user the client acts for.
    pub owner_id: i64,
    pub name: String,
    /// Space-separated scopes, in `Scopes::to_string_list` form.
    pub scopes: String,
    pub secret_hash: String,
    pub created_at: DateTimeUtc,
    /// Tokens issued to the client before this are refused (set when its
    /// secret is rotated, it is disabled or deleted).
    pub tokens_valid_after: Option<DateTimeUtc>,
    pub disabled_at: Option<DateTimeUtc>,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
