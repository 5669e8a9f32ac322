use sea_orm::entity::prelude::*;

/// One event to send to one subscription: the delivery queue.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub webhook_id: i64,
    /// The event's feed position (none for a test message).
    pub position: Option<i64>,
    /// The `record_versions` row the event is (none for a test message).
    pub version_id: Option<i64>,
    pub event_type: String,
    /// `pending`, `delivered`, `failed` or `cancelled`.
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// A worker's claim: nobody else attempts it before then.
    pub locked_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
