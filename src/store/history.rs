//! Every version of every patient, doctor and mapping, written in the
//! transaction of the change that made it (see [`super::Write`]).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder, Statement,
};

use super::{Listed, Page};
use crate::domain::Actor;
use crate::domain::audit::{Change, Resource};
use crate::entity::record_version;

/// A version about to be written: the record's row after the change.
pub struct NewVersion<'a, T> {
    pub resource: Resource,
    pub id: i64,
    pub version: i64,
    /// Whose record it is, for deciding who may see the version.
    pub owner: Option<i64>,
    pub row: &'a T,
}

pub(super) async fn insert<T: serde::Serialize>(
    txn: &DatabaseTransaction,
    actor: &Actor,
    change: Change,
    version: &NewVersion<'_, T>,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let data = serde_json::to_string(version.row)
        .map_err(|e| DbErr::Custom(format!("serialising a version: {e}")))?;
    let inserted = record_version::ActiveModel {
        resource: Set(version.resource.as_str().to_string()),
        resource_id: Set(version.id),
        version: Set(version.version),
        change: Set(change.as_str().to_string()),
        owner_id: Set(version.owner),
        data: Set(Some(data)),
        actor_id: Set(actor.user_id),
        client_id: Set(actor.client_id),
        request_id: Set(actor.request_id.clone()),
        at: Set(at),
        position: Set(None),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    if txn.get_database_backend() == DbBackend::Sqlite {
        // Writers take turns on SQLite (`BEGIN IMMEDIATE`), so ids are
        // handed out in commit order and never reused: the id is the feed
        // position. PostgreSQL positions versions after commit
        // (`super::feed::sequence`).
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "UPDATE record_versions SET position = id WHERE id = ?",
            [inserted.id.into()],
        ))
        .await?;
    }
    super::feed::announce();
    Ok(())
}

/// The versions of one record, newest first.
pub async fn list(
    db: &DatabaseConnection,
    resource: Resource,
    id: i64,
    page: Page,
) -> Result<Listed<record_version::Model>, DbErr> {
    let query = record_version::Entity::find()
        .filter(record_version::Column::Resource.eq(resource.as_str()))
        .filter(record_version::Column::ResourceId.eq(id));
    super::counted_page(db, query, page, |q| {
        q.order_by_desc(record_version::Column::Version)
    })
    .await
}

/// One version of one record.
pub async fn get(
    db: &DatabaseConnection,
    resource: Resource,
    id: i64,
    version: i64,
) -> Result<Option<record_version::Model>, DbErr> {
    record_version::Entity::find()
        .filter(record_version::Column::Resource.eq(resource.as_str()))
        .filter(record_version::Column::ResourceId.eq(id))
        .filter(record_version::Column::Version.eq(version))
        .one(db)
        .await
}

/// The row a version holds.
pub fn row<T: serde::de::DeserializeOwned>(version: &record_version::Model) -> Result<T, DbErr> {
    let data = version
        .data
        .as_deref()
        .ok_or_else(|| DbErr::Custom("a version without data".into()))?;
    serde_json::from_str(data).map_err(|e| DbErr::Custom(format!("reading a version: {e}")))
}

/// Removes the versions of records (erasure).
pub(super) async fn erase<C: ConnectionTrait>(
    conn: &C,
    resource: Resource,
    ids: Vec<i64>,
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    record_version::Entity::delete_many()
        .filter(record_version::Column::Resource.eq(resource.as_str()))
        .filter(record_version::Column::ResourceId.is_in(ids))
        .exec(conn)
        .await?;
    Ok(())
}
