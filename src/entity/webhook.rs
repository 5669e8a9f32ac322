use sea_orm::entity::prelude::*;

/// A webhook subscription: where to send which events, signed with
/// `secret`, as its owner may see them.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub owner_id: i64,
    pub url: String,
    /// Event types, comma-separated.
    pub events: String,
    /// `id-only` or `full`.
    pub payload: String,
    /// `whsec_` and the base64 of the key; needed in clear to sign.
    pub secret: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// When deliveries started failing without a success since.
    pub failing_since: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
