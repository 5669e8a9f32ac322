use sea_orm::entity::prelude::*;

/// A request sent with an `Idempotency-Key`: while `running` it holds a
/// lease; once `done` it names the version it produced, from which the
/// first response is replayed.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Who sent it (user, and client when there is one).
    pub principal: String,
    pub idempotency_key: String,
    /// SHA-256 of the method, path and body.
    pub fingerprint: String,
    /// `running` or `done`.
    pub state: String,
    pub lease_until: DateTimeUtc,
    pub status: Option<i32>,
    pub resource: Option<String>,
    pub resource_id: Option<i64>,
    pub version: Option<i64>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
