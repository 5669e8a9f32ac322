use sea_orm::entity::prelude::*;

/// One version of a patient, doctor or mapping: the whole row after a
/// change, who made it and when. Immutable; erasure removes a record's
/// versions altogether.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "record_versions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `patient`, `doctor` or `mapping`.
    pub resource: String,
    pub resource_id: i64,
    /// The record's version after the change (the one in its `ETag`).
    pub version: i64,
    /// `created`, `updated`, `deleted`, `restored` or `imported`.
    pub change: String,
    /// Whose record it is (a patient's owner; a mapping's patient's owner;
    /// a doctor's creator), for deciding who may see the version.
    pub owner_id: Option<i64>,
    /// The row after the change, as JSON.
    pub data: Option<String>,
    pub actor_id: Option<i64>,
    pub client_id: Option<i64>,
    pub request_id: String,
    pub at: DateTimeUtc,
    /// Order in the change feed, assigned once the version is committed.
    pub position: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
