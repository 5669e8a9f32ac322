//! Idempotency keys (draft-ietf-httpapi-idempotency-key-header): the first
//! request with a key claims it with a short lease; the change it makes
//! completes the claim in the change's own transaction, so a retry either
//! finds the outcome or finds nothing was done. A claim whose lease ran out
//! (its server died mid-request) can be taken over: nothing was committed
//! under it.

use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DatabaseTransaction,
    DbErr, EntityTrait, QueryFilter,
};

use super::now;
use crate::domain::audit::Resource;
use crate::entity::idempotency_key;

/// How long a key is remembered.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How long a claim holds without completing before another request may
/// take it over.
const LEASE: Duration = Duration::from_secs(60);

const RUNNING: &str = "running";
const DONE: &str = "done";

/// The outcome of a completed request, from which its response is replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: u16,
    pub resource: String,
    pub resource_id: i64,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request holds the key; pass the id to the change as its claim.
    Claimed(i64),
    /// The same request already completed.
    Replay(Outcome),
    /// The same request is still running.
    Running,
    /// The key was used with a different request.
    Mismatch,
}

fn lease_end() -> chrono::DateTime<chrono::Utc> {
    now() + chrono::Duration::from_std(LEASE).unwrap_or_default()
}

/// Claims `key` for `principal`'s request with `fingerprint`.
pub async fn claim(
    db: &DatabaseConnection,
    principal: &str,
    key: &str,
    fingerprint: &str,
) -> Result<Claim, DbErr> {
    use idempotency_key::Column;
    let forgotten = now() - chrono::Duration::from_std(RETENTION).unwrap_or_default();
    idempotency_key::Entity::delete_many()
        .filter(Column::Principal.eq(principal))
        .filter(Column::IdempotencyKey.eq(key))
        .filter(Column::CreatedAt.lt(forgotten))
        .exec(db)
        .await?;
    let fresh = idempotency_key::ActiveModel {
        principal: Set(principal.to_string()),
        idempotency_key: Set(key.to_string()),
        fingerprint: Set(fingerprint.to_string()),
        state: Set(RUNNING.to_string()),
        lease_until: Set(lease_end()),
        status: Set(None),
        resource: Set(None),
        resource_id: Set(None),
        version: Set(None),
        created_at: Set(now()),
        ..Default::default()
    };
    match fresh.insert(db).await {
        Ok(row) => return Ok(Claim::Claimed(row.id)),
        Err(err) if super::is_unique_violation(&err) => {}
        Err(err) => return Err(err),
    }
    let Some(held) = idempotency_key::Entity::find()
        .filter(Column::Principal.eq(principal))
        .filter(Column::IdempotencyKey.eq(key))
        .one(db)
        .await?
    else {
        // Released between our insert and this read: the client may retry.
        return Ok(Claim::Running);
    };
    if held.fingerprint != fingerprint {
        return Ok(Claim::Mismatch);
    }
    if held.state == DONE {
        return Ok(
            match (held.status, held.resource, held.resource_id, held.version) {
                (Some(status), Some(resource), Some(resource_id), Some(version)) => {
                    Claim::Replay(Outcome {
                        status: u16::try_from(status).unwrap_or(200),
                        resource,
                        resource_id,
                        version,
                    })
                }
                _ => Claim::Running,
            },
        );
    }
    if held.lease_until > now() {
        return Ok(Claim::Running);
    }
    // Its server died mid-request: nothing was committed under the claim.
    let taken = idempotency_key::Entity::update_many()
        .col_expr(Column::LeaseUntil, Expr::value(lease_end()))
        .filter(Column::Id.eq(held.id))
        .filter(Column::State.eq(RUNNING))
        .filter(Column::LeaseUntil.lte(now()))
        .exec(db)
        .await?;
    Ok(if taken.rows_affected == 1 {
        Claim::Claimed(held.id)
    } else {
        Claim::Running
    })
}

/// Records the outcome, in the transaction of the change it describes.
pub(super) async fn complete(
    txn: &DatabaseTransaction,
    claim: i64,
    status: u16,
    resource: Resource,
    resource_id: i64,
    version: i64,
) -> Result<(), DbErr> {
    use idempotency_key::Column;
    idempotency_key::Entity::update_many()
        .col_expr(Column::State, Expr::value(DONE))
        .col_expr(Column::Status, Expr::value(i32::from(status)))
        .col_expr(Column::Resource, Expr::value(resource.as_str()))
        .col_expr(Column::ResourceId, Expr::value(resource_id))
        .col_expr(Column::Version, Expr::value(version))
        .filter(Column::Id.eq(claim))
        .exec(txn)
        .await?;
    Ok(())
}

/// Gives up a claim whose request changed nothing (it failed): the client
/// may send the key again, with the same or a corrected request.
pub async fn release(db: &DatabaseConnection, claim: i64) -> Result<(), DbErr> {
    use idempotency_key::Column;
    idempotency_key::Entity::delete_many()
        .filter(Column::Id.eq(claim))
        .filter(Column::State.eq(RUNNING))
        .exec(db)
        .await?;
    Ok(())
}

/// Forgets keys older than [`RETENTION`].
pub async fn purge(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let forgotten = now() - chrono::Duration::from_std(RETENTION).unwrap_or_default();
    let deleted = idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::CreatedAt.lt(forgotten))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}
