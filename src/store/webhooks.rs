//! Webhook subscriptions, the delivery queue and its attempts.
//!
//! - The dispatcher ([`dispatch`]) reads the change feed after its cursor
//!   (`feed_cursors`, row-locked while it works, so that with several
//!   instances each event is queued once per subscription) and queues one
//!   delivery per (event, subscription that asks for its type and whose
//!   owner may see it).
//! - Workers [`claim`] due deliveries for a lease (`locked_until`); on
//!   PostgreSQL with `FOR UPDATE SKIP LOCKED`, so instances never wait for
//!   or take each other's. A worker that dies mid-delivery leaves its claim
//!   to expire: the delivery is attempted again (at least once).
//! - [`finish`] records an attempt and what follows: delivered, retried
//!   later, failed for good, or cancelled.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DbBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};

use super::{Listed, Page, begin_write, now};
use crate::domain::events::{EventType, EventTypes, PayloadMode};
use crate::entity::{record_version, user, webhook, webhook_attempt, webhook_delivery};

/// The event type of a test message.
pub const TEST_EVENT: &str = "webhook.test";

/// A subscription's client-set fields.
#[derive(Debug, Clone)]
pub struct WebhookFields {
    pub url: String,
    pub events: EventTypes,
    pub payload: PayloadMode,
}

/// A partial change: `None` leaves a field as it is. Enabling clears the
/// failure record.
#[derive(Debug, Clone, Default)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub events: Option<EventTypes>,
    pub payload: Option<PayloadMode>,
    pub enabled: Option<bool>,
}

pub async fn create(
    db: &DatabaseConnection,
    owner: i64,
    fields: WebhookFields,
    secret: String,
) -> Result<webhook::Model, DbErr> {
    let at = now();
    webhook::ActiveModel {
        owner_id: Set(owner),
        url: Set(fields.url),
        events: Set(fields.events.to_stored()),
        payload: Set(fields.payload.as_str().to_string()),
        secret: Set(secret),
        enabled: Set(true),
        disabled_reason: Set(None),
        failing_since: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// The caller's subscriptions, by id.
pub async fn list(
    db: &DatabaseConnection,
    owner: i64,
    page: Page,
) -> Result<Listed<webhook::Model>, DbErr> {
    let query = webhook::Entity::find().filter(webhook::Column::OwnerId.eq(owner));
    super::counted_page(db, query, page, |q| q.order_by_asc(webhook::Column::Id)).await
}

/// One of the caller's subscriptions; `None` for anyone else's.
pub async fn get(
    db: &DatabaseConnection,
    owner: i64,
    id: i64,
) -> Result<Option<webhook::Model>, DbErr> {
    webhook::Entity::find_by_id(id)
        .filter(webhook::Column::OwnerId.eq(owner))
        .one(db)
        .await
}

pub async fn update(
    db: &DatabaseConnection,
    owner: i64,
    id: i64,
    changes: WebhookChanges,
) -> Result<Option<webhook::Model>, DbErr> {
    let Some(found) = get(db, owner, id).await? else {
        return Ok(None);
    };
    let mut row: webhook::ActiveModel = found.into();
    if let Some(url) = changes.url {
        row.url = Set(url);
    }
    if let Some(events) = changes.events {
        row.events = Set(events.to_stored());
    }
    if let Some(payload) = changes.payload {
        row.payload = Set(payload.as_str().to_string());
    }
    if let Some(enabled) = changes.enabled {
        row.enabled = Set(enabled);
        if enabled {
            row.disabled_reason = Set(None);
            row.failing_since = Set(None);
        } else {
            row.disabled_reason = Set(Some("Disabled by its owner.".into()));
        }
    }
    row.updated_at = Set(now());
    row.update(db).await.map(Some)
}

/// Deletes a subscription with its queue and attempts.
pub async fn delete(db: &DatabaseConnection, owner: i64, id: i64) -> Result<bool, DbErr> {
    let txn = begin_write(db).await?;
    let Some(found) = webhook::Entity::find_by_id(id)
        .filter(webhook::Column::OwnerId.eq(owner))
        .one(&txn)
        .await?
    else {
        return Ok(false);
    };
    webhook_attempt::Entity::delete_many()
        .filter(webhook_attempt::Column::WebhookId.eq(found.id))
        .exec(&txn)
        .await?;
    webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::WebhookId.eq(found.id))
        .exec(&txn)
        .await?;
    webhook::Entity::delete_by_id(found.id).exec(&txn).await?;
    txn.commit().await?;
    Ok(true)
}

pub async fn rotate_secret(
    db: &DatabaseConnection,
    owner: i64,
    id: i64,
    secret: String,
) -> Result<Option<webhook::Model>, DbErr> {
    let Some(found) = get(db, owner, id).await? else {
        return Ok(None);
    };
    let mut row: webhook::ActiveModel = found.into();
    row.secret = Set(secret);
    row.updated_at = Set(now());
    row.update(db).await.map(Some)
}

/// Queues a test message, due now.
pub async fn enqueue_test(
    db: &DatabaseConnection,
    hook: &webhook::Model,
) -> Result<webhook_delivery::Model, DbErr> {
    let at = now();
    new_delivery(hook.id, None, None, TEST_EVENT, at)
        .insert(db)
        .await
}

fn new_delivery(
    webhook_id: i64,
    position: Option<i64>,
    version_id: Option<i64>,
    event_type: &str,
    at: DateTime<Utc>,
) -> webhook_delivery::ActiveModel {
    webhook_delivery::ActiveModel {
        webhook_id: Set(webhook_id),
        position: Set(position),
        version_id: Set(version_id),
        event_type: Set(event_type.to_string()),
        state: Set("pending".into()),
        attempts: Set(0),
        next_attempt_at: Set(at),
        locked_until: Set(None),
        created_at: Set(at),
        finished_at: Set(None),
        ..Default::default()
    }
}

/// An attempt, with the delivery it belongs to.
pub type AttemptOf = (webhook_attempt::Model, Option<webhook_delivery::Model>);

/// A subscription's attempts, newest first; `None` when the subscription
/// is not the caller's.
pub async fn attempts(
    db: &DatabaseConnection,
    owner: i64,
    id: i64,
    page: Page,
) -> Result<Option<Listed<AttemptOf>>, DbErr> {
    if get(db, owner, id).await?.is_none() {
        return Ok(None);
    }
    let query = webhook_attempt::Entity::find().filter(webhook_attempt::Column::WebhookId.eq(id));
    let Listed { items: rows, total } = super::counted_page(db, query, page, |q| {
        q.order_by_desc(webhook_attempt::Column::Id)
    })
    .await?;
    let ids: Vec<i64> = rows.iter().map(|a| a.delivery_id).collect();
    let deliveries = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Id.is_in(ids))
        .all(db)
        .await?;
    let items = rows
        .into_iter()
        .map(|a| {
            let d = deliveries.iter().find(|d| d.id == a.delivery_id).cloned();
            (a, d)
        })
        .collect();
    Ok(Some(Listed { items, total }))
}

/// How many feed events one dispatch pass reads.
const DISPATCH_BATCH: u64 = 500;

/// Queues the deliveries of the events after the dispatcher's cursor and
/// moves the cursor past them; returns how many deliveries it queued.
pub async fn dispatch(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let mut queued = 0;
    loop {
        let (n, more) = dispatch_batch(db).await?;
        queued += n;
        if !more {
            return Ok(queued);
        }
    }
}

async fn dispatch_batch(db: &DatabaseConnection) -> Result<(u64, bool), DbErr> {
    let backend = db.get_database_backend();
    let txn = begin_write(db).await?;
    let lock = if backend == DbBackend::Postgres {
        "SELECT position FROM feed_cursors WHERE name = 'webhooks' FOR UPDATE"
    } else {
        "SELECT position FROM feed_cursors WHERE name = 'webhooks'"
    };
    let cursor: i64 = match txn
        .query_one_raw(Statement::from_string(backend, lock))
        .await?
    {
        Some(row) => row.try_get("", "position")?,
        None => return Err(DbErr::RecordNotFound("feed cursor `webhooks`".into())),
    };
    let events = record_version::Entity::find()
        .filter(record_version::Column::Position.gt(cursor))
        .order_by_asc(record_version::Column::Position)
        .limit(DISPATCH_BATCH)
        .all(&txn)
        .await?;
    let Some(last) = events.last().and_then(|e| e.position) else {
        return Ok((0, false));
    };
    let hooks = webhook::Entity::find()
        .filter(webhook::Column::Enabled.eq(true))
        .all(&txn)
        .await?;
    let owners: Vec<i64> = hooks.iter().map(|h| h.owner_id).collect();
    // Who the owners are now: a deactivated account's subscriptions send
    // nothing; an administrator's see everything.
    let accounts: Vec<(i64, bool)> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .column(user::Column::IsStaff)
        .filter(user::Column::Id.is_in(owners))
        .filter(user::Column::IsActive.eq(true))
        .into_tuple()
        .all(&txn)
        .await?;
    let active: Vec<i64> = accounts.iter().map(|(id, _)| *id).collect();
    let staff: Vec<i64> = accounts
        .iter()
        .filter(|(_, is_staff)| *is_staff)
        .map(|(id, _)| *id)
        .collect();
    let subscribed: Vec<(&webhook::Model, EventTypes, bool)> = hooks
        .iter()
        .filter(|h| active.contains(&h.owner_id))
        .map(|h| {
            (
                h,
                EventTypes::from_stored(&h.events),
                staff.contains(&h.owner_id),
            )
        })
        .collect();
    let at = now();
    let mut rows = Vec::new();
    for event in &events {
        let Some(kind) = EventType::of_version(&event.resource, &event.change) else {
            continue;
        };
        for (hook, types, is_staff) in &subscribed {
            // What the owner may see: doctors, their own patients and
            // those patients' mappings (everything for administrators);
            // only what happened since the subscription began.
            let visible =
                event.resource == "doctor" || *is_staff || event.owner_id == Some(hook.owner_id);
            if visible && types.contains(kind) && event.at >= hook.created_at {
                rows.push(new_delivery(
                    hook.id,
                    event.position,
                    Some(event.id),
                    kind.as_str(),
                    at,
                ));
            }
        }
    }
    let queued = rows.len() as u64;
    if !rows.is_empty() {
        webhook_delivery::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await?;
    }
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        if backend == DbBackend::Postgres {
            "UPDATE feed_cursors SET position = $1 WHERE name = 'webhooks'"
        } else {
            "UPDATE feed_cursors SET position = ? WHERE name = 'webhooks'"
        },
        [last.into()],
    ))
    .await?;
    txn.commit().await?;
    Ok((queued, events.len() as u64 == DISPATCH_BATCH))
}

/// A delivery claimed by a worker, with its subscription.
pub type Claimed = (webhook_delivery::Model, webhook::Model);

/// Claims up to `n` due deliveries until `lease_until`.
pub async fn claim(
    db: &DatabaseConnection,
    lease_until: DateTime<Utc>,
    n: u64,
) -> Result<Vec<Claimed>, DbErr> {
    let backend = db.get_database_backend();
    let at = now();
    let sql = if backend == DbBackend::Postgres {
        "UPDATE webhook_deliveries SET locked_until = $1 WHERE id IN (
           SELECT id FROM webhook_deliveries
           WHERE state = 'pending' AND next_attempt_at <= $2
             AND (locked_until IS NULL OR locked_until <= $2)
           ORDER BY next_attempt_at, id LIMIT $3
           FOR UPDATE SKIP LOCKED)
         RETURNING *"
    } else {
        "UPDATE webhook_deliveries SET locked_until = ?1 WHERE id IN (
           SELECT id FROM webhook_deliveries
           WHERE state = 'pending' AND next_attempt_at <= ?2
             AND (locked_until IS NULL OR locked_until <= ?2)
           ORDER BY next_attempt_at, id LIMIT ?3)
         RETURNING *"
    };
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let txn = begin_write(db).await?;
    let claimed = webhook_delivery::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            backend,
            sql,
            [lease_until.into(), at.into(), n.into()],
        ))
        .all(&txn)
        .await?;
    txn.commit().await?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = claimed.iter().map(|d| d.webhook_id).collect();
    let hooks = webhook::Entity::find()
        .filter(webhook::Column::Id.is_in(ids))
        .all(db)
        .await?;
    Ok(claimed
        .into_iter()
        .filter_map(|d| {
            let hook = hooks.iter().find(|h| h.id == d.webhook_id)?.clone();
            Some((d, hook))
        })
        .collect())
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// What happens to the delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    RetryAt(DateTime<Utc>),
    /// Retried for the whole retry window: given up.
    Failed,
    /// Nothing left to send (the record was erased, the subscription
    /// disabled).
    Cancelled,
}

/// Records an attempt and its consequence: the delivery's state, and the
/// subscription's failure record (disabled once it has failed for
/// `disable_after` with no success). Returns whether it disabled it.
pub async fn finish(
    db: &DatabaseConnection,
    delivery: &webhook_delivery::Model,
    attempt: Attempt,
    next: Next,
    disable_after: chrono::Duration,
) -> Result<bool, DbErr> {
    let txn = begin_write(db).await?;
    webhook_attempt::ActiveModel {
        delivery_id: Set(delivery.id),
        webhook_id: Set(delivery.webhook_id),
        at: Set(attempt.at),
        status_code: Set(attempt.status_code.map(i32::from)),
        latency_ms: Set(attempt.latency_ms),
        error: Set(attempt.error),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let (state, next_at, finished) = match next {
        Next::Delivered => ("delivered", None, true),
        Next::RetryAt(at) => ("pending", Some(at), false),
        Next::Failed => ("failed", None, true),
        Next::Cancelled => ("cancelled", None, true),
    };
    let mut update = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::State, Expr::value(state))
        .col_expr(
            webhook_delivery::Column::Attempts,
            Expr::col(webhook_delivery::Column::Attempts).add(1),
        )
        .col_expr(
            webhook_delivery::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(webhook_delivery::Column::Id.eq(delivery.id));
    if let Some(at) = next_at {
        update = update.col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(at));
    }
    if finished {
        update = update.col_expr(
            webhook_delivery::Column::FinishedAt,
            Expr::value(Some(attempt.at)),
        );
    }
    update.exec(&txn).await?;
    let mut disabled = false;
    if let Some(hook) = webhook::Entity::find_by_id(delivery.webhook_id)
        .one(&txn)
        .await?
    {
        let mut row: webhook::ActiveModel = hook.clone().into();
        match next {
            Next::Delivered => row.failing_since = Set(None),
            Next::RetryAt(_) | Next::Failed => {
                let since = hook.failing_since.unwrap_or(attempt.at);
                row.failing_since = Set(Some(since));
                if hook.enabled && attempt.at - since >= disable_after {
                    row.enabled = Set(false);
                    row.disabled_reason = Set(Some(format!(
                        "Disabled automatically on {}: every delivery failed since {}.",
                        attempt.at.to_rfc3339(),
                        since.to_rfc3339()
                    )));
                    disabled = true;
                }
            }
            Next::Cancelled => {}
        }
        row.update(&txn).await?;
    }
    txn.commit().await?;
    Ok(disabled)
}

/// Deliveries waiting, and when the oldest of them was queued.
pub async fn queue_stats(db: &DatabaseConnection) -> Result<(u64, Option<DateTime<Utc>>), DbErr> {
    let pending =
        webhook_delivery::Entity::find().filter(webhook_delivery::Column::State.eq("pending"));
    let depth = pending.clone().count(db).await?;
    let oldest = pending
        .order_by_asc(webhook_delivery::Column::CreatedAt)
        .one(db)
        .await?
        .map(|d| d.created_at);
    Ok((depth, oldest))
}

/// The version an event delivery is about (`None` once erased).
pub async fn version_of(
    db: &DatabaseConnection,
    delivery: &webhook_delivery::Model,
) -> Result<Option<record_version::Model>, DbErr> {
    match delivery.version_id {
        Some(id) => record_version::Entity::find_by_id(id).one(db).await,
        None => Ok(None),
    }
}
