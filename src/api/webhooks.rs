//! `/api/webhooks/`: a person's subscriptions to change events, sent to
//! their URL signed (Standard Webhooks). Each subscription is its owner's
//! alone (anyone else's is a 404) and sees only what its owner may see.
//! Service clients cannot manage subscriptions (403): a subscription sends
//! data on its owner's behalf, so it needs the owner's own session.

use chrono::{DateTime, Utc};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};

use super::ApiTags;
use super::audited::*;
use super::body::{JsonBody, input};
use super::events::{WebhookData, WebhookMessage, cursor};
use super::params::{Path, QueryArg};
use super::patients::Deleted;
use super::schema::{Choice, Input, choice_type};
use super::security::PersonAuth;
use super::{link_header, page};
use crate::domain::events::{EventType, EventTypes, PayloadMode};
use crate::domain::{Invalid, Limit, Offset};
use crate::entity::webhook;
use crate::error::status::*;
use crate::error::{ApiError, Res};
use crate::store::webhooks::{self as store, WebhookChanges, WebhookFields};
use crate::webhooks::{Engine, sign, ssrf};

impl Choice for EventType {
    const ALL: &'static [Self] = &EventType::ALL;
    const COMPONENT: Option<(&'static str, &'static str)> = Some((
        "EventType",
        "What happened to which kind of record: `patient.created`, `patient.updated`, `patient.deleted`, `patient.restored`, the same for `doctor`, `mapping.created`, `mapping.deleted`.",
    ));

    fn as_str(self) -> &'static str {
        EventType::as_str(self)
    }
}

choice_type!(EventType);

impl Choice for PayloadMode {
    const ALL: &'static [Self] = &PayloadMode::ALL;
    const COMPONENT: Option<(&'static str, &'static str)> = Some((
        "WebhookPayload",
        "What a message carries: `id-only` (the event: which record, which version; the default, so that no patient data leaves unless asked for) or `full` (the record too).",
    ));

    fn as_str(self) -> &'static str {
        PayloadMode::as_str(self)
    }
}

choice_type!(PayloadMode);

impl Input for EventTypes {
    fn schema() -> MetaSchema {
        MetaSchema {
            description: Some("The event types to send: at least one (repeats count once)."),
            items: Some(Box::new(MetaSchemaRef::Reference("EventType".into()))),
            min_items: Some(1),
            max_items: Some(EventType::ALL.len() * 4),
            ..MetaSchema::new("array")
        }
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        <EventType as Input>::register(registry);
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        let Value::Array(items) = value else {
            return Err(Invalid::new("A list of event types is required."));
        };
        if items.len() > EventType::ALL.len() * 4 {
            return Err(Invalid::new("Too many event types."));
        }
        let types = items
            .into_iter()
            .map(<EventType as Input>::from_json)
            .collect::<Result<Vec<_>, _>>()?;
        EventTypes::new(types)
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        Self::from_json(Value::Array(
            text.split(',').map(|t| Value::from(t.trim())).collect(),
        ))
    }
}

/// A receiver's URL as sent: parsed here; where it may point is checked by
/// the operation (it depends on the server's settings and on DNS).
#[derive(Debug, Clone)]
pub struct WebhookUrl(pub String);

impl Input for WebhookUrl {
    fn schema() -> MetaSchema {
        MetaSchema {
            description: Some(
                "Where to POST: an `https` URL on a public address (loopback, private, link-local and metadata addresses are refused, also when a name resolves to one).",
            ),
            max_length: Some(ssrf::MAX_URL_LEN),
            ..MetaSchema::new_with_format("string", "uri")
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        match value {
            Value::String(s) => Self::from_text(&s),
            _ => Err(Invalid::new("Not a valid string.")),
        }
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        if text.len() > ssrf::MAX_URL_LEN {
            return Err(Invalid::new(format!(
                "A URL is at most {} characters.",
                ssrf::MAX_URL_LEN
            )));
        }
        reqwest::Url::parse(text)
            .map(|_| Self(text.to_string()))
            .map_err(|e| Invalid::new(format!("Not a valid URL: {e}.")))
    }
}

const READ_ONLY: &[&str] = &[
    "id",
    "enabled_reason",
    "disabled_reason",
    "failing_since",
    "created_at",
    "updated_at",
];

input! {
    /// A new subscription.
    pub struct WebhookInput ignoring READ_ONLY, example json!({"url": "https://example.com/hooks/healthcare", "events": ["patient.created", "patient.updated"], "payload": "id-only"}) => {
        required url: WebhookUrl,
        required events: EventTypes,
        optional payload: PayloadMode,
    }
}

input! {
    /// A JSON merge patch of a subscription: only the fields present
    /// change. `enabled: true` turns a disabled subscription back on and
    /// clears its failure record.
    pub struct WebhookPatch ignoring READ_ONLY, example json!({"enabled": true}) => {
        optional url: WebhookUrl,
        optional events: EventTypes,
        optional payload: PayloadMode,
        optional enabled: bool,
    }
}

/// A subscription (its secret is shown only when made or rotated).
#[derive(Object, Debug, Clone)]
pub struct Webhook {
    #[oai(read_only)]
    pub id: i64,
    pub url: String,
    pub events: Vec<EventType>,
    pub payload: PayloadMode,
    /// Whether events are sent. A subscription whose deliveries all failed
    /// for 5 days is disabled, and says why in `disabled_reason`.
    pub enabled: bool,
    #[oai(read_only, skip_serializing_if_is_none)]
    pub disabled_reason: Option<String>,
    /// Since when deliveries fail with no success in between.
    #[oai(read_only, skip_serializing_if_is_none)]
    pub failing_since: Option<DateTime<Utc>>,
    #[oai(read_only)]
    pub created_at: DateTime<Utc>,
    #[oai(read_only)]
    pub updated_at: DateTime<Utc>,
}

impl From<webhook::Model> for Webhook {
    fn from(row: webhook::Model) -> Self {
        Self {
            id: row.id,
            events: EventTypes::from_stored(&row.events).iter().collect(),
            payload: PayloadMode::parse(&row.payload).unwrap_or_default(),
            url: row.url,
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            failing_since: row.failing_since,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A subscription with its signing secret, shown this once.
#[derive(Object, Debug, Clone)]
pub struct WebhookWithSecret {
    #[oai(flatten)]
    pub webhook: Webhook,
    /// The signing secret: `whsec_` and the base64 of the key. Shown only
    /// now; keep it to verify signatures.
    pub secret: String,
}

/// One attempt to deliver a message.
#[derive(Object, Debug, Clone)]
pub struct DeliveryAttempt {
    #[oai(read_only)]
    pub id: i64,
    /// The message's `webhook-id` (the same on every attempt of it).
    pub message_id: String,
    /// The event type, or `webhook.test`.
    pub event_type: String,
    /// The event's cursor in the feed (absent for a test message).
    #[oai(skip_serializing_if_is_none)]
    pub event: Option<String>,
    /// When the attempt was made.
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status (absent when none came).
    #[oai(skip_serializing_if_is_none)]
    pub status_code: Option<i32>,
    /// How long the attempt took, in milliseconds.
    pub latency_ms: i64,
    /// What went wrong (absent on success).
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
    /// Where the message is now: `pending` (to be retried), `delivered`,
    /// `failed` (retried for the whole retry window) or `cancelled`.
    pub delivery_state: String,
}

#[derive(ApiResponse)]
pub enum WebhookCreated {
    /// The new subscription, with its signing secret (shown only now).
    #[oai(status = 201)]
    Created(
        Json<WebhookWithSecret>,
        /// URL of the new subscription.
        #[oai(header = "Location")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum WebhookOk {
    #[oai(status = 200)]
    Ok(Json<Webhook>),
}

#[derive(ApiResponse)]
pub enum SecretRotated {
    /// The subscription with its new secret (the old one stops signing now).
    #[oai(status = 200)]
    Ok(Json<WebhookWithSecret>),
}

#[derive(ApiResponse)]
pub enum WebhookList {
    /// One page of the caller's subscriptions, by id.
    #[oai(status = 200)]
    Ok(
        Json<Vec<Webhook>>,
        /// Number of subscriptions in the whole list.
        #[oai(header = "X-Total-Count")]
        u64,
        /// RFC 8288 links to the next and previous pages.
        #[oai(header = "Link")]
        Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum TestQueued {
    /// The test message, queued to be sent now (see its attempts in
    /// `GET /api/webhooks/{id}/deliveries/`).
    #[oai(status = 202)]
    Accepted(Json<WebhookMessage>),
}

#[derive(ApiResponse)]
pub enum AttemptList {
    /// One page of the subscription's attempts, newest first.
    #[oai(status = 200)]
    Ok(
        Json<Vec<DeliveryAttempt>>,
        /// Number of attempts in the whole list.
        #[oai(header = "X-Total-Count")]
        u64,
        /// RFC 8288 links to the next and previous pages.
        #[oai(header = "Link")]
        Option<String>,
    ),
}

pub struct WebhooksApi {
    pub db: DatabaseConnection,
    pub engine: Engine,
}

fn not_found() -> ApiError {
    ApiError::not_found("Webhook")
}

impl WebhooksApi {
    /// Where the URL may point, checked against the settings and DNS now.
    async fn checked_url(&self, url: WebhookUrl) -> Result<String, ApiError> {
        ssrf::check_url(&url.0, self.engine.settings().policy)
            .await
            .map(|_| url.0)
            .map_err(|refused| ApiError::field("url", refused))
    }
}

#[OpenApi(tag = "ApiTags::Webhooks")]
impl WebhooksApi {
    /// Subscribe to events
    ///
    /// Sends the chosen events to `url` as they happen, signed with the
    /// secret in the answer (shown only now). `payload` is `id-only` by
    /// default (which record, which version: fetch it with your token) or
    /// `full` (the record too). The URL must be `https` and reach a public
    /// address: loopback, private, link-local and metadata addresses are a
    /// 400 naming `url`, also when a name resolves to one.
    #[oai(
        path = "/api/webhooks",
        method = "post",
        operation_id = "create_webhook",
        transform = "audit_webhook_create"
    )]
    async fn create(
        &self,
        auth: PersonAuth,
        req: &poem::Request,
        body: JsonBody<WebhookInput>,
    ) -> Res<WebhookCreated, { AUTHED | BODY }> {
        let JsonBody(input, _) = body;
        let url = self.checked_url(input.url).await?;
        let secret = sign::new_secret();
        let row = store::create(
            &self.db,
            auth.0.principal.user_id,
            WebhookFields {
                url,
                events: input.events,
                payload: input.payload.unwrap_or_default(),
            },
            secret.clone(),
        )
        .await?;
        if let Some(note) = req.extensions().get::<AuditNote>() {
            note.set_resource(row.id);
        }
        let location = format!("/api/webhooks/{}/", row.id);
        Ok(WebhookCreated::Created(
            Json(WebhookWithSecret {
                webhook: row.into(),
                secret,
            }),
            location,
        ))
    }

    /// List subscriptions
    ///
    /// The caller's subscriptions, by id, paginated with `limit` and `offset`.
    #[oai(path = "/api/webhooks", method = "get", operation_id = "list_webhooks")]
    async fn list(
        &self,
        auth: PersonAuth,
        limit: QueryArg<Limit>,
        offset: QueryArg<Offset>,
    ) -> Res<WebhookList, { AUTHED | BAD_REQUEST }> {
        let page = page(limit, offset);
        let listed = store::list(&self.db, auth.0.principal.user_id, page).await?;
        let link = link_header("/api/webhooks/", &[], page, listed.total);
        let items = listed.items.into_iter().map(Webhook::from).collect();
        Ok(WebhookList::Ok(Json(items), listed.total, link))
    }

    /// Read a subscription
    ///
    /// 404 when it does not exist or is not the caller's.
    #[oai(
        path = "/api/webhooks/:id",
        method = "get",
        operation_id = "get_webhook"
    )]
    async fn get(
        &self,
        auth: PersonAuth,
        id: Path,
    ) -> Res<WebhookOk, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        let row = store::get(&self.db, auth.0.principal.user_id, id.0)
            .await?
            .ok_or_else(not_found)?;
        Ok(WebhookOk::Ok(Json(row.into())))
    }

    /// Change a subscription
    ///
    /// A JSON merge patch: `url`, `events`, `payload`, `enabled`. Setting
    /// `enabled: true` turns a subscription disabled for failing back on.
    #[oai(
        path = "/api/webhooks/:id",
        method = "patch",
        operation_id = "update_webhook",
        transform = "audit_webhook_update"
    )]
    async fn update(
        &self,
        auth: PersonAuth,
        id: Path,
        body: JsonBody<WebhookPatch>,
    ) -> Res<WebhookOk, { AUTHED | BODY | NOT_FOUND }> {
        let JsonBody(patch, _) = body;
        let owner = auth.0.principal.user_id;
        if store::get(&self.db, owner, id.0).await?.is_none() {
            return Err(not_found().into());
        }
        let url = match patch.url {
            Some(url) => Some(self.checked_url(url).await?),
            None => None,
        };
        let changes = WebhookChanges {
            url,
            events: patch.events,
            payload: patch.payload,
            enabled: patch.enabled,
        };
        let row = store::update(&self.db, owner, id.0, changes)
            .await?
            .ok_or_else(not_found)?;
        Ok(WebhookOk::Ok(Json(row.into())))
    }

    /// Delete a subscription
    ///
    /// Stops sending at once; its queued messages and attempts are deleted.
    #[oai(
        path = "/api/webhooks/:id",
        method = "delete",
        operation_id = "delete_webhook",
        transform = "audit_webhook_delete"
    )]
    async fn delete(
        &self,
        auth: PersonAuth,
        id: Path,
    ) -> Res<Deleted, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        if store::delete(&self.db, auth.0.principal.user_id, id.0).await? {
            Ok(Deleted::NoContent)
        } else {
            Err(not_found().into())
        }
    }

    /// Rotate a subscription's secret
    ///
    /// A new signing secret, shown only in this answer; messages are signed
    /// with it from now on (retries included).
    #[oai(
        path = "/api/webhooks/:id/secret",
        method = "post",
        operation_id = "rotate_webhook_secret",
        transform = "audit_webhook_rotate"
    )]
    async fn rotate(
        &self,
        auth: PersonAuth,
        id: Path,
    ) -> Res<SecretRotated, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        let secret = sign::new_secret();
        let row = store::rotate_secret(&self.db, auth.0.principal.user_id, id.0, secret.clone())
            .await?
            .ok_or_else(not_found)?;
        Ok(SecretRotated::Ok(Json(WebhookWithSecret {
            webhook: row.into(),
            secret,
        })))
    }

    /// Send a test message
    ///
    /// Queues a `webhook.test` message to the subscription's URL now (also
    /// when it is disabled), signed like every other; answers the message.
    #[oai(
        path = "/api/webhooks/:id/test",
        method = "post",
        operation_id = "test_webhook"
    )]
    async fn test(
        &self,
        auth: PersonAuth,
        id: Path,
    ) -> Res<TestQueued, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        let hook = store::get(&self.db, auth.0.principal.user_id, id.0)
            .await?
            .ok_or_else(not_found)?;
        let delivery = store::enqueue_test(&self.db, &hook).await?;
        self.engine.poke();
        Ok(TestQueued::Accepted(Json(WebhookMessage {
            kind: store::TEST_EVENT.to_string(),
            timestamp: delivery.created_at,
            data: WebhookData {
                webhook: hook.id,
                event: None,
                record: None,
            },
        })))
    }

    /// List delivery attempts
    ///
    /// Every attempt to deliver the subscription's messages, newest first:
    /// when, the receiver's status, how long it took, what went wrong.
    #[oai(
        path = "/api/webhooks/:id/deliveries",
        method = "get",
        operation_id = "list_webhook_deliveries"
    )]
    async fn deliveries(
        &self,
        auth: PersonAuth,
        id: Path,
        limit: QueryArg<Limit>,
        offset: QueryArg<Offset>,
    ) -> Res<AttemptList, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        let page = page(limit, offset);
        let listed = store::attempts(&self.db, auth.0.principal.user_id, id.0, page)
            .await?
            .ok_or_else(not_found)?;
        let path = format!("/api/webhooks/{}/deliveries/", id.0);
        let link = link_header(&path, &[], page, listed.total);
        let key = self.engine.cursor_key();
        let items = listed
            .items
            .into_iter()
            .map(|(attempt, delivery)| DeliveryAttempt {
                id: attempt.id,
                message_id: format!("msg_{}", attempt.delivery_id),
                event_type: delivery
                    .as_ref()
                    .map_or_else(String::new, |d| d.event_type.clone()),
                event: delivery
                    .as_ref()
                    .and_then(|d| d.position)
                    .map(|p| cursor(key, p)),
                at: attempt.at,
                status_code: attempt.status_code,
                latency_ms: attempt.latency_ms,
                error: attempt.error,
                delivery_state: delivery.map_or_else(|| "deleted".into(), |d| d.state),
            })
            .collect();
        Ok(AttemptList::Ok(Json(items), listed.total, link))
    }
}
