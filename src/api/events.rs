//! `/api/events/`: the change feed, and the messages webhooks send (the
//! same events, described here once so that the spec types both).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use poem_openapi::payload::Json;
use poem_openapi::registry::MetaSchema;
use poem_openapi::{ApiResponse, Object, OpenApi, Union};
use sea_orm::{DatabaseConnection, DbErr};
use serde_json::Value;

use super::ApiTags;
use super::audited::*;
use super::doctors::Doctor;
use super::mappings::Mapping;
use super::params::QueryArg;
use super::patients::Patient;
use super::schema::Input;
use super::security::Auth;
use crate::domain::audit::Resource;
use crate::domain::events::{EventType, FeedLimit, PayloadMode, WaitSeconds};
use crate::domain::{Invalid, Scope};
use crate::entity::{record_version, webhook, webhook_delivery};
use crate::error::status::*;
use crate::error::{ApiError, Res};
use crate::store::feed::{self, Reader};
use crate::store::{history, webhooks as queue};
use crate::webhooks::Engine;

/// One change of a record, as the feed lists it and webhooks send it.
#[derive(Object, Debug, Clone)]
pub struct Event {
    /// This event's cursor: pass it as `after` to read what follows.
    pub id: String,
    /// What happened: `patient.created`, `patient.updated`,
    /// `patient.deleted`, `patient.restored`, the same for `doctor`, or
    /// `mapping.created`, `mapping.deleted`.
    #[oai(rename = "type")]
    pub kind: String,
    /// `patient`, `doctor` or `mapping`.
    pub resource: String,
    /// The record's id.
    pub resource_id: i64,
    /// The record's version after the change (its `ETag`'s).
    pub version: i64,
    /// When the change was committed (UTC).
    pub occurred_at: DateTime<Utc>,
    /// The user who made the change (absent for records that existed
    /// before history was kept).
    #[oai(skip_serializing_if_is_none)]
    pub actor: Option<i64>,
}

/// One page of the feed.
#[derive(Object, Debug, Clone)]
pub struct EventPage {
    /// The events after `after`, oldest first.
    pub events: Vec<Event>,
    /// Where to continue: the last event's `id`, or the cursor sent when
    /// there was nothing new. Send it as `after` next time.
    pub next: String,
}

/// The record after the change, when the subscription asks for `full`
/// payloads.
#[derive(Union, Debug, Clone)]
#[oai(one_of)]
pub enum EventRecord {
    Patient(Patient),
    Doctor(Doctor),
    Mapping(Mapping),
}

/// What a message is about: `webhook`, the subscription that sent it;
/// `event`, the event (absent in a test message); `record`, the record
/// after the change (only with `payload: full`; absent for deletions of
/// mappings whose patient is gone).
// `event` and `record` carry no doc comment of their own: a described
// reference becomes an `allOf`, which openapi-python-client cannot read
// for a non-object schema.
#[derive(Object, Debug, Clone)]
pub struct WebhookData {
    /// The subscription that sent it.
    pub webhook: i64,
    #[oai(skip_serializing_if_is_none)]
    pub event: Option<Event>,
    #[oai(skip_serializing_if_is_none)]
    pub record: Option<EventRecord>,
}

/// The body of every webhook request (Standard Webhooks): POSTed as JSON
/// with the headers `webhook-id` (the same on every retry of one message:
/// deduplicate by it), `webhook-timestamp` (Unix seconds) and
/// `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
/// `{webhook-id}.{webhook-timestamp}.{body}` keyed with the secret's
/// base64-decoded part after `whsec_`).
#[derive(Object, Debug, Clone)]
pub struct WebhookMessage {
    /// The event's type, or `webhook.test` for a test message.
    #[oai(rename = "type")]
    pub kind: String,
    /// When the event occurred (for a test message, when it was queued).
    pub timestamp: DateTime<Utc>,
    pub data: WebhookData,
}

/// A feed cursor as sent: `ev_` and 27 URL-safe base64 characters.
#[derive(Debug, Clone)]
pub struct CursorText(String);

const CURSOR_PREFIX: &str = "ev_";
/// Position (8 bytes) and a MAC of it (12 bytes).
const CURSOR_BYTES: usize = 20;

impl Input for CursorText {
    fn schema() -> MetaSchema {
        MetaSchema {
            description: Some(
                "A cursor this server gave (an event's `id` or a page's `next`); leave it out to start from the beginning.",
            ),
            pattern: Some("^ev_[A-Za-z0-9_-]{27}$".into()),
            ..MetaSchema::new("string")
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        match value {
            Value::String(s) => Self::from_text(&s),
            _ => Err(Invalid::new("Not a valid string.")),
        }
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        let ok = text.strip_prefix(CURSOR_PREFIX).is_some_and(|rest| {
            rest.len() == 27
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if ok {
            Ok(Self(text.to_string()))
        } else {
            Err(Invalid::new(NOT_OURS))
        }
    }
}

const NOT_OURS: &str =
    "Not a cursor of this feed: send an event's `id` or a page's `next` unchanged.";

/// A keyed hash of a position (key and message of fixed length, so a plain
/// SHA-256 over both is a sound MAC here).
fn mac(key: &[u8; 32], position: i64) -> [u8; 12] {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(key);
    hasher.update(position.to_be_bytes());
    let full = hasher.finalize();
    let mut out = [0u8; 12];
    out.copy_from_slice(&full[..12]);
    out
}

/// The cursor of a feed position.
pub fn cursor(key: &[u8; 32], position: i64) -> String {
    let mut bytes = [0u8; CURSOR_BYTES];
    bytes[..8].copy_from_slice(&position.to_be_bytes());
    bytes[8..].copy_from_slice(&mac(key, position));
    format!("{CURSOR_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The position of a cursor this server made; `None` for anything else.
pub fn position(key: &[u8; 32], text: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text.strip_prefix(CURSOR_PREFIX)?)
        .ok()?;
    if bytes.len() != CURSOR_BYTES {
        return None;
    }
    let position = i64::from_be_bytes(bytes[..8].try_into().ok()?);
    // Constant-time comparison of the MAC.
    let expected = mac(key, position);
    let diff = expected
        .iter()
        .zip(&bytes[8..])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    (diff == 0 && position >= 0).then_some(position)
}

impl Input for FeedLimit {
    fn schema() -> MetaSchema {
        MetaSchema {
            description: Some("Events per page: 1 to 1000 (default 100)."),
            minimum: Some(1.0),
            maximum: Some(FeedLimit::MAX as f64),
            ..MetaSchema::new_with_format("integer", "int64")
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        FeedLimit::new(<i64 as Input>::from_json(value)?)
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        FeedLimit::new(<i64 as Input>::from_text(text)?)
    }
}

impl Input for WaitSeconds {
    fn schema() -> MetaSchema {
        MetaSchema {
            description: Some(
                "Long poll: when nothing is new, wait up to this many seconds (0 to 30, default 0) for an event before answering an empty page.",
            ),
            minimum: Some(0.0),
            maximum: Some(WaitSeconds::MAX as f64),
            ..MetaSchema::new_with_format("integer", "int64")
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        WaitSeconds::new(<i64 as Input>::from_json(value)?)
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        WaitSeconds::new(<i64 as Input>::from_text(text)?)
    }
}

/// A stored version as a feed event; `None` for a change the feed does
/// not name (none today).
pub fn event_of(key: &[u8; 32], version: &record_version::Model) -> Option<Event> {
    let kind = EventType::of_version(&version.resource, &version.change)?;
    Some(Event {
        id: cursor(key, version.position?),
        kind: kind.as_str().to_string(),
        resource: version.resource.clone(),
        resource_id: version.resource_id,
        version: version.version,
        occurred_at: version.at,
        actor: version.actor_id,
    })
}

/// The record a version holds, as the API shows it.
fn record_of(version: &record_version::Model) -> Result<Option<EventRecord>, DbErr> {
    use crate::entity::{doctor, patient};
    use crate::store::mappings::Snapshot;
    Ok(match version.resource.as_str() {
        "patient" => Some(EventRecord::Patient(
            history::row::<patient::Model>(version)?.into(),
        )),
        "doctor" => Some(EventRecord::Doctor(
            history::row::<doctor::Model>(version)?.into(),
        )),
        "mapping" => {
            let snapshot: Snapshot = history::row(version)?;
            Some(EventRecord::Mapping(
                (snapshot.mapping, snapshot.doctor_detail).into(),
            ))
        }
        _ => None,
    })
}

/// The body of a delivery, as sent; `None` when its record was erased
/// meanwhile (nothing is left to tell).
pub async fn message_body(
    db: &DatabaseConnection,
    delivery: &webhook_delivery::Model,
    hook: &webhook::Model,
    key: &[u8; 32],
) -> Result<Option<Vec<u8>>, DbErr> {
    use poem_openapi::types::ToJSON;
    let message = if delivery.event_type == queue::TEST_EVENT {
        WebhookMessage {
            kind: queue::TEST_EVENT.to_string(),
            timestamp: delivery.created_at,
            data: WebhookData {
                webhook: hook.id,
                event: None,
                record: None,
            },
        }
    } else {
        let Some(version) = queue::version_of(db, delivery).await? else {
            return Ok(None);
        };
        let Some(event) = event_of(key, &version) else {
            return Ok(None);
        };
        let record = if PayloadMode::parse(&hook.payload) == Some(PayloadMode::Full) {
            record_of(&version)?
        } else {
            None
        };
        WebhookMessage {
            kind: event.kind.clone(),
            timestamp: event.occurred_at,
            data: WebhookData {
                webhook: hook.id,
                event: Some(event),
                record,
            },
        }
    };
    let json = message.to_json().unwrap_or(Value::Null);
    serde_json::to_vec(&json)
        .map(Some)
        .map_err(|e| DbErr::Custom(format!("serialising a webhook message: {e}")))
}

#[derive(ApiResponse)]
pub enum EventsPage {
    /// The events after the cursor that the caller may see, oldest first.
    #[oai(status = 200)]
    Ok(Json<EventPage>),
}

pub struct EventsApi {
    pub db: DatabaseConnection,
    pub engine: Engine,
}

#[OpenApi(tag = "ApiTags::Events")]
impl EventsApi {
    /// Read the change feed
    ///
    /// Every committed change the caller may see — their patients, those
    /// patients' mappings, and the shared doctors directory (administrators:
    /// everything) — oldest first, each once. Start without `after`, then
    /// send the page's `next` as `after`: a cursor never skips an event,
    /// even one from a transaction that committed late. With `wait`, an
    /// empty page is answered only after waiting that many seconds for a
    /// new event (it answers as soon as one exists). A service client sees
    /// the kinds of record it has the `:read` scope of (`patients:read`,
    /// `doctors:read`, `mappings:read`; none of them: 403). A cursor not
    /// made by this server is a 400.
    #[oai(
        path = "/api/events",
        method = "get",
        operation_id = "list_events",
        transform = "audit_events_read"
    )]
    async fn list(
        &self,
        auth: Auth,
        after: QueryArg<CursorText>,
        limit: QueryArg<FeedLimit>,
        wait: QueryArg<WaitSeconds>,
    ) -> Res<EventsPage, { AUTHED | BAD_REQUEST }> {
        let principal = auth.0.principal;
        let key = self.engine.cursor_key();
        let after_position = match &after.0 {
            Some(CursorText(text)) => {
                position(key, text).ok_or_else(|| ApiError::field("after", NOT_OURS))?
            }
            None => 0,
        };
        let kinds: Vec<Resource> = [
            (Resource::Patient, Scope::PatientsRead),
            (Resource::Doctor, Scope::DoctorsRead),
            (Resource::Mapping, Scope::MappingsRead),
        ]
        .into_iter()
        .filter(|(_, scope)| principal.scopes.contains(*scope))
        .map(|(kind, _)| kind)
        .collect();
        if kinds.is_empty() {
            return Err(ApiError::insufficient_scope(Scope::PatientsRead.as_str()).into());
        }
        let reader = Reader {
            owner: principal.owner_filter(),
            kinds,
        };
        let limit = limit.0.unwrap_or_default().get();
        let wait = std::time::Duration::from_secs(wait.0.unwrap_or_default().get());
        let deadline = tokio::time::Instant::now() + wait;
        // Subscribed before the first read, so that nothing announced
        // between the read and the wait is missed.
        let (mut written, mut positioned) = self.engine.wake_ups();
        let mut settle = false;
        let rows = loop {
            let rows = feed::page(&self.db, &reader, after_position, limit, settle).await?;
            if !rows.is_empty() || tokio::time::Instant::now() >= deadline {
                break rows;
            }
            tokio::select! {
                _ = written.changed() => settle = true,
                _ = positioned.changed() => settle = false,
                // A last look at the deadline, and a safety net for a lost
                // wake-up.
                () = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + std::time::Duration::from_secs(1))) => settle = false,
            }
        };
        let events: Vec<Event> = rows.iter().filter_map(|v| event_of(key, v)).collect();
        let next = rows
            .last()
            .and_then(|v| v.position)
            .map_or_else(|| cursor(key, after_position), |p| cursor(key, p));
        Ok(EventsPage::Ok(Json(EventPage { events, next })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let key = [7u8; 32];
        let c = cursor(&key, 42);
        assert!(CursorText::from_text(&c).is_ok(), "{c}");
        assert_eq!(position(&key, &c), Some(42));
        assert_eq!(position(&[8u8; 32], &c), None, "another server's key");
        let mut forged = c.clone();
        forged.pop();
        forged.push(if c.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(position(&key, &forged), None);
        assert!(CursorText::from_text("42").is_err());
    }
}
