//! The audit trail's table: append-only for the API.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, QueryFilter, QueryOrder, Statement,
};

use super::{Listed, Page};
use crate::domain::audit::{Event, Resource};
use crate::entity::audit_event;

/// Statement shapes events are written with. Every distinct row count is a
/// distinct prepared statement, cached on every pooled connection (client
/// and server side alike); a few fixed sizes keep that cache small.
const CHUNKS: [usize; 3] = [100, 10, 1];

/// Writes events on `conn` (a transaction: the change's own, or the batch's).
pub async fn insert<C: ConnectionTrait>(conn: &C, events: &[Event]) -> Result<(), DbErr> {
    let mut rest = events;
    for size in CHUNKS {
        while rest.len() >= size {
            let (chunk, tail) = rest.split_at(size);
            let rows = chunk.iter().map(|e| audit_event::ActiveModel {
                at: Set(e.at),
                actor_id: Set(e.actor.user_id),
                client_id: Set(e.actor.client_id),
                action: Set(e.action.as_str().to_string()),
                resource_type: Set(e.resource.as_str().to_string()),
                resource_id: Set(e.resource_id),
                status: Set(i32::from(e.status)),
                ip: Set(e.actor.ip.clone()),
                request_id: Set(e.actor.request_id.clone()),
                ..Default::default()
            });
            audit_event::Entity::insert_many(rows)
                .exec_without_returning(conn)
                .await?;
            rest = tail;
        }
    }
    Ok(())
}

/// Commits a batch of events on their own (the audit writer's group
/// commit). On PostgreSQL that is one statement over the whole batch,
/// whatever its size, in autocommit: one round trip and one prepared
/// statement instead of `BEGIN`, an `INSERT` per chunk and `COMMIT`
/// (bench/README.md). Elsewhere, one transaction of chunked inserts.
pub async fn commit_batch(db: &DatabaseConnection, events: &[Event]) -> Result<(), DbErr> {
    if !super::is_postgres(db) {
        let txn = super::begin_write(db).await?;
        insert(&txn, events).await?;
        return txn.commit().await;
    }
    // Written straight from the events, without a `serde_json::Value` tree.
    #[derive(serde::Serialize)]
    struct Row<'a> {
        at: DateTime<Utc>,
        actor_id: Option<i64>,
        client_id: Option<i64>,
        action: &'static str,
        resource_type: &'static str,
        resource_id: Option<i64>,
        status: u16,
        ip: Option<&'a str>,
        request_id: &'a str,
    }
    let rows: Vec<Row<'_>> = events
        .iter()
        .map(|e| Row {
            at: e.at,
            actor_id: e.actor.user_id,
            client_id: e.actor.client_id,
            action: e.action.as_str(),
            resource_type: e.resource.as_str(),
            resource_id: e.resource_id,
            status: e.status,
            ip: e.actor.ip.as_deref(),
            request_id: &e.actor.request_id,
        })
        .collect();
    let rows = serde_json::to_string(&rows)
        .map_err(|e| DbErr::Custom(format!("encoding audit events: {e}")))?;
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        BATCH_INSERT,
        [rows.into()],
    ))
    .await
    .map(drop)
}

const BATCH_INSERT: &str = "INSERT INTO audit_events \
    (at, actor_id, client_id, action, resource_type, resource_id, status, ip, request_id) \
    SELECT at, actor_id, client_id, action, resource_type, resource_id, status, ip, request_id \
    FROM json_to_recordset($1::json) AS e(at timestamptz, actor_id bigint, client_id bigint, \
    action text, resource_type text, resource_id bigint, status integer, ip text, request_id text)";

/// Filters for reading the trail; `None` means "any".
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub actor: Option<i64>,
    pub resource_type: Option<Resource>,
    pub resource_id: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl AuditFilter {
    /// The filter as query parameters, for the `Link` of its pages.
    pub fn query_params(&self) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        if let Some(actor) = self.actor {
            params.push(("actor", actor.to_string()));
        }
        if let Some(kind) = self.resource_type {
            params.push(("resource_type", kind.as_str().to_string()));
        }
        if let Some(id) = self.resource_id {
            params.push(("resource_id", id.to_string()));
        }
        if let Some(since) = self.since {
            params.push(("since", since.to_rfc3339()));
        }
        if let Some(until) = self.until {
            params.push(("until", until.to_rfc3339()));
        }
        params
    }
}

/// Events matching `filter`, newest first.
pub async fn list(
    db: &DatabaseConnection,
    filter: &AuditFilter,
    page: Page,
) -> Result<Listed<audit_event::Model>, DbErr> {
    use audit_event::Column;
    let mut query = audit_event::Entity::find();
    if let Some(actor) = filter.actor {
        query = query.filter(Column::ActorId.eq(actor));
    }
    if let Some(kind) = filter.resource_type {
        query = query.filter(Column::ResourceType.eq(kind.as_str()));
    }
    if let Some(id) = filter.resource_id {
        query = query.filter(Column::ResourceId.eq(id));
    }
    if let Some(since) = filter.since {
        query = query.filter(Column::At.gte(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(Column::At.lt(until));
    }
    super::counted_page(db, query, page, |q| q.order_by_desc(Column::Id)).await
}
