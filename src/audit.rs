//! The audit trail: who read or changed which patient data, and security
//! events (logins, revocations). Events are classified by one middleware,
//! queued, and written in batches by a background task, so a request never
//! pays a database round trip of its own for them. A full queue makes
//! requests wait (back-pressure) rather than drop events; shutdown drains it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use poem::http::Method;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::entity::audit_event;
use crate::ratelimit::RateLimits;
use crate::store::{Listed, Page};
use crate::telemetry::REQUEST_ID;

const QUEUE: usize = 10_000;
const BATCH: usize = 500;
const LINGER: Duration = Duration::from_millis(50);

/// An event before it is written.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub actor_id: Option<i64>,
    pub action: &'static str,
    pub resource_type: &'static str,
    pub resource_id: Option<i64>,
    pub status: u16,
    pub ip: Option<String>,
    pub request_id: String,
}

enum Msg {
    Event(Event),
    Flush(oneshot::Sender<()>),
}

/// The sending side of the trail; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    writer: Arc<tokio::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl AuditLog {
    /// Starts the writer task on the current runtime.
    pub fn start(db: DatabaseConnection) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = tokio::spawn(write_loop(db, rx));
        Self {
            tx,
            writer: Arc::new(tokio::sync::Mutex::new(Some(handle))),
        }
    }

    /// A trail that records nothing, for describing the API offline.
    pub fn disabled() -> Self {
        let (tx, _) = mpsc::channel(1);
        Self {
            tx,
            writer: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// Queues an event, waiting while the queue is full.
    pub async fn record(&self, event: Event) {
        if self.tx.send(Msg::Event(event)).await.is_err() {
            tracing::error!("audit writer has stopped; event not recorded");
        }
    }

    /// Returns once every event queued before the call is in the database.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Flushes and stops the writer (clean shutdown).
    pub async fn close(&self) {
        self.flush().await;
        if let Some(handle) = self.writer.lock().await.take() {
            handle.abort();
            let _ = handle.await;
        }
    }
}

async fn write_loop(db: DatabaseConnection, mut rx: mpsc::Receiver<Msg>) {
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH);
    let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let deadline = tokio::time::Instant::now() + LINGER;
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(event) => batch.push(event),
                Msg::Flush(ack) => {
                    acks.push(ack);
                    break;
                }
            }
            if batch.len() >= BATCH {
                break;
            }
            next = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(msg)) => Some(msg),
                _ => None,
            };
        }
        write_with_retry(&db, &mut batch).await;
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
    write_with_retry(&db, &mut batch).await;
}

/// Writes the batch, retrying while the database is unavailable: events are
/// kept, and the queue filling up slows requests down until it is back.
async fn write_with_retry(db: &DatabaseConnection, batch: &mut Vec<Event>) {
    let mut delay = Duration::from_millis(100);
    while !batch.is_empty() {
        match write(db, batch).await {
            Ok(()) => batch.clear(),
            Err(err) => {
                tracing::error!(error = %err, pending = batch.len(), "writing audit events failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Statement shapes a batch is written with. Every distinct row count is a
/// distinct prepared statement, cached on every pooled connection (client
/// and server side alike); a few fixed sizes keep that cache small.
const CHUNKS: [usize; 3] = [100, 10, 1];

async fn write(db: &DatabaseConnection, batch: &[Event]) -> Result<(), DbErr> {
    use sea_orm::TransactionTrait;
    // One transaction: a failed batch is retried whole, never half-written twice.
    let txn = db.begin().await?;
    let mut rest = batch;
    for size in CHUNKS {
        while rest.len() >= size {
            let (chunk, tail) = rest.split_at(size);
            insert(&txn, chunk).await?;
            rest = tail;
        }
    }
    txn.commit().await
}

async fn insert(txn: &sea_orm::DatabaseTransaction, events: &[Event]) -> Result<(), DbErr> {
    let rows = events.iter().map(|e| audit_event::ActiveModel {
        at: Set(e.at),
        actor_id: Set(e.actor_id),
        action: Set(e.action.to_string()),
        resource_type: Set(e.resource_type.to_string()),
        resource_id: Set(e.resource_id),
        status: Set(i32::from(e.status)),
        ip: Set(e.ip.clone()),
        request_id: Set(e.request_id.clone()),
        ..Default::default()
    });
    audit_event::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// What the handler learnt that the middleware cannot see: the user (set by
/// the Bearer check or the login handler), the id of a created resource, or
/// a more precise action.
#[derive(Clone, Default)]
pub struct AuditContext(Arc<ContextInner>);

#[derive(Default)]
struct ContextInner {
    actor: OnceLock<i64>,
    resource_id: OnceLock<i64>,
    action: OnceLock<&'static str>,
}

impl AuditContext {
    pub fn set(&self, actor: i64) {
        let _ = self.0.actor.set(actor);
    }

    pub fn set_resource(&self, id: i64) {
        let _ = self.0.resource_id.set(id);
    }

    pub fn set_action(&self, action: &'static str) {
        let _ = self.0.action.set(action);
    }
}

/// Which audit event, if any, a request is: (action, resource type, id in path).
fn classify(
    method: &Method,
    path: &str,
    status: u16,
) -> Option<(&'static str, &'static str, Option<i64>)> {
    // The router matches percent-decoded segments (`%31` is `1`), so must this.
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let parts: Vec<&str> = decoded.trim_matches('/').split('/').collect();
    let id = |s: &str| s.parse::<i64>().ok();
    let ok = (200..300).contains(&status);
    // HEAD is answered by the GET handlers, and reveals as much.
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    Some(match (method, parts.as_slice()) {
        ("POST", ["api", "patients"]) => ("create", "patient", None),
        ("GET", ["api", "patients"]) => ("list", "patient", None),
        ("GET", ["api", "patients", p]) => ("read", "patient", id(p)),
        ("PUT" | "PATCH", ["api", "patients", p]) => ("update", "patient", id(p)),
        ("DELETE", ["api", "patients", p]) => ("delete", "patient", id(p)),
        ("GET", ["api", "patients", p, "doctors"]) => ("read", "patient", id(p)),
        ("POST", ["api", "mappings"]) => ("create", "mapping", None),
        ("GET", ["api", "mappings"]) => ("list", "mapping", None),
        // The original's shared URL: a patient id for GET, a mapping id for DELETE.
        ("GET", ["api", "mappings", p]) => ("read", "patient", id(p)),
        ("DELETE", ["api", "mappings", m]) => ("delete", "mapping", id(m)),
        ("POST", ["api", "auth", "login"]) if status == 200 => ("login_success", "user", None),
        ("POST", ["api", "auth", "login"]) if status == 401 || status == 429 => {
            ("login_failure", "user", None)
        }
        ("POST", ["api", "auth", "logout" | "password"]) if ok => ("revoke", "user", None),
        ("POST", ["api", "users", u, "deactivate" | "revoke-tokens"]) if ok => {
            ("revoke", "user", id(u))
        }
        // Refresh is recorded only when the handler marks it (reuse detected).
        ("POST", ["api", "auth", "token", "refresh"]) => ("refresh", "user", None),
        _ => return None,
    })
}

/// Records an audit event for every request that touches patient data or
/// is a security event.
pub struct AuditMiddleware {
    pub log: AuditLog,
    pub limits: Arc<RateLimits>,
}

impl<E: Endpoint> Middleware<E> for AuditMiddleware {
    type Output = AuditEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        AuditEndpoint {
            inner: ep,
            log: self.log.clone(),
            limits: self.limits.clone(),
        }
    }
}

pub struct AuditEndpoint<E> {
    inner: E,
    log: AuditLog,
    limits: Arc<RateLimits>,
}

impl<E: Endpoint> Endpoint for AuditEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let ip = self.limits.client_ip(&req).map(|ip| ip.to_string());
        let request_id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let context = AuditContext::default();
        req.extensions_mut().insert(context.clone());
        let resp = match self.inner.call(req).await {
            Ok(resp) => resp.into_response(),
            Err(err) => err.into_response(),
        };
        let status = resp.status().as_u16();
        // A created resource's id is in its `Location` (`/api/patients/7/`).
        let created_id = (status == 201)
            .then(|| resp.headers().get(poem::http::header::LOCATION))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|loc| loc.trim_end_matches('/').rsplit('/').next())
            .and_then(|id| id.parse::<i64>().ok());
        if let Some((action, resource_type, path_id)) = classify(&method, &path, status) {
            let action = context.0.action.get().copied().unwrap_or(action);
            // Refreshes are routine; only a detected reuse (a revocation) is recorded.
            if action != "refresh" {
                self.log
                    .record(Event {
                        at: crate::store::now(),
                        actor_id: context.0.actor.get().copied(),
                        action,
                        resource_type,
                        resource_id: context
                            .0
                            .resource_id
                            .get()
                            .copied()
                            .or(path_id)
                            .or(created_id),
                        status,
                        ip,
                        request_id,
                    })
                    .await;
            }
        }
        Ok(resp)
    }
}

/// Filters for reading the trail.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub actor: Option<i64>,
    pub resource_type: Option<String>,
    pub resource_id: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Events matching `filter`, newest first.
pub async fn list(
    db: &DatabaseConnection,
    filter: Filter,
    page: Page,
) -> Result<Listed<audit_event::Model>, DbErr> {
    use audit_event::Column;
    let mut query = audit_event::Entity::find();
    if let Some(actor) = filter.actor {
        query = query.filter(Column::ActorId.eq(actor));
    }
    if let Some(kind) = filter.resource_type {
        query = query.filter(Column::ResourceType.eq(kind));
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
    let total = query.clone().count(db).await?;
    let items = query
        .order_by_desc(Column::Id)
        .limit(page.limit)
        .offset(page.offset)
        .all(db)
        .await?;
    Ok(Listed { items, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_mappings_url_is_classified_per_method() {
        assert_eq!(
            classify(&Method::GET, "/api/mappings/7", 200),
            Some(("read", "patient", Some(7)))
        );
        assert_eq!(
            classify(&Method::DELETE, "/api/mappings/7", 204),
            Some(("delete", "mapping", Some(7)))
        );
    }

    #[test]
    fn head_and_percent_encoded_ids_are_classified_like_get() {
        assert_eq!(
            classify(&Method::HEAD, "/api/patients/%31", 200),
            Some(("read", "patient", Some(1)))
        );
    }

    #[test]
    fn doctors_and_probes_are_not_audited() {
        assert_eq!(classify(&Method::GET, "/api/doctors", 200), None);
        assert_eq!(classify(&Method::GET, "/healthz", 200), None);
    }
}
