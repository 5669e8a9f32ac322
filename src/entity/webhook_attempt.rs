use sea_orm::entity::prelude::*;

/// One attempt to deliver: when, the receiver's status, how long, what failed.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_attempts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub delivery_id: i64,
    pub webhook_id: i64,
    pub at: DateTimeUtc,
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
