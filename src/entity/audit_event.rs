use sea_orm::entity::prelude::*;

/// One access to patient data or one security event. Append-only.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    /// The authenticated user, when there was one.
    pub actor_id: Option<i64>,
    /// The service client acting for the actor, when there was one.
    pub client_id: Option<i64>,
    /// What happened (`domain::audit::Action`): `create`, `read`, `login_success`,
    /// `password_change`, `deactivate`, `forbidden`, ...
    pub action: String,
    /// The kind of record (`domain::audit::Resource`): `patient`, `doctor`, `mapping`, `user`, ...
    pub resource_type: String,
    pub resource_id: Option<i64>,
    /// The HTTP status the request was answered with.
    pub status: i32,
    pub ip: Option<String>,
    pub request_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
