//! Webhook delivery and the change feed's moving parts, as background tasks
//! of every instance (none blocks a request):
//!
//! - on PostgreSQL, a listener (`LISTEN`) for committed versions and new
//!   positions, and the sequencer that gives committed versions their
//!   feed positions (`store::feed::sequence`);
//! - the dispatcher, which queues deliveries for new feed events
//!   (`store::webhooks::dispatch`);
//! - the worker, which claims due deliveries and sends them: signed
//!   (Standard Webhooks), through an HTTP client that only connects to
//!   addresses checked against [`ssrf`], with a timeout, no redirects, and
//!   at most [`MAX_RESPONSE_BYTES`] of the answer read; failures retried
//!   with exponential backoff and jitter for the retry window.
//!
//! Wake-ups: in this process, writers announce versions
//! (`store::feed::announce`); across PostgreSQL instances, `NOTIFY`. Every
//! task also looks again every second, so a lost wake-up only delays.

pub mod sign;
pub mod ssrf;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use sea_orm::{DatabaseConnection, EntityTrait, QueryFilter};
use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::entity::{webhook, webhook_delivery};
use crate::store::webhooks::{self as queue, Attempt, Next};
use crate::store::{self, feed};

/// The most of a receiver's answer that is read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How often every task looks again without being woken.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Deliveries a worker claims at once.
const CLAIM_BATCH: u64 = 8;

/// Deliveries one instance sends at once.
const MAX_IN_FLIGHT: usize = 32;

/// How deliveries are made.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub policy: ssrf::Policy,
    pub timeout: Duration,
    pub retry_base: Duration,
    pub retry_for: chrono::Duration,
    pub disable_after: chrono::Duration,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        let secs = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX));
        Self {
            policy: ssrf::Policy {
                allow_http: config.webhook_allow_http,
                allow_private_networks: config.webhook_allow_private_networks,
            },
            timeout: Duration::from_secs(config.webhook_timeout),
            retry_base: Duration::from_millis(config.webhook_retry_base_ms),
            retry_for: secs(config.webhook_retry_for),
            disable_after: secs(config.webhook_disable_after),
        }
    }

    /// How long a claim lasts: past the timeout, so that a worker still
    /// waiting for an answer keeps its delivery; a dead worker's claim
    /// expires soon after.
    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.timeout + Duration::from_secs(5))
            .unwrap_or(chrono::Duration::seconds(15))
    }

    /// The delay before attempt `attempts + 1`: the base doubled per attempt
    /// made, at most an hour (or the base, when larger), times a jitter
    /// between 0.75 and 1.25 so that receivers coming back are not hit by
    /// every retry at once.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let cap = Duration::from_secs(3600).max(self.retry_base);
        let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
        let delay = self.retry_base.saturating_mul(1 << exp).min(cap);
        delay.mul_f64(rand::rng().random_range(0.75..1.25))
    }
}

/// The feed and webhook machinery of one app.
#[derive(Clone)]
pub struct Engine(Arc<Inner>);

struct Inner {
    db: DatabaseConnection,
    database_url: String,
    settings: Settings,
    cursor_key: [u8; 32],
    /// Bumped when new feed positions exist (PostgreSQL, from `NOTIFY`).
    positioned: watch::Sender<u64>,
    sequence: Notify,
    queued: Notify,
}

impl Engine {
    /// `secret` keys the feed's cursors (the JWT secret, shared by every
    /// instance, so a cursor from one works on another).
    pub fn new(db: DatabaseConnection, config: &Config, secret: &[u8]) -> Self {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(b"healthcare feed cursor\0");
        hasher.update(secret);
        Self(Arc::new(Inner {
            db,
            database_url: config.database_url.clone(),
            settings: Settings::from_config(config),
            cursor_key: hasher.finalize().into(),
            positioned: watch::Sender::new(0),
            sequence: Notify::new(),
            queued: Notify::new(),
        }))
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub fn cursor_key(&self) -> &[u8; 32] {
        &self.0.cursor_key
    }

    /// What wakes a feed reader: versions written in this process
    /// (SQLite), new positions announced by any instance (PostgreSQL).
    pub fn wake_ups(&self) -> (watch::Receiver<u64>, watch::Receiver<u64>) {
        (feed::announcements(), self.0.positioned.subscribe())
    }

    /// A test message queued: send it now.
    pub fn poke(&self) {
        self.0.queued.notify_one();
    }

    /// Starts the background tasks (on the current runtime; they end with it).
    pub fn start(&self) -> Result<(), String> {
        let client = http_client(&self.0.settings)?;
        if store::is_postgres(&self.0.db) {
            tokio::spawn(listen(self.clone()));
            tokio::spawn(sequencer(self.clone()));
        }
        tokio::spawn(dispatcher(self.clone()));
        tokio::spawn(worker(self.clone(), client));
        Ok(())
    }
}

/// The client every delivery uses: no proxy from the environment, no
/// redirects, a timeout, and names resolved (and checked) by
/// [`ssrf::CheckedResolver`].
fn http_client(settings: &Settings) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .dns_resolver(Arc::new(ssrf::CheckedResolver(settings.policy)))
        .user_agent(concat!("healthcare-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("webhook HTTP client: {e}"))
}

/// PostgreSQL: wakes the sequencer when versions are committed anywhere,
/// and readers when positions are given anywhere.
async fn listen(engine: Engine) {
    use sea_orm::sqlx::postgres::PgListener;
    loop {
        let mut listener = match PgListener::connect(&engine.0.database_url).await {
            Ok(l) => l,
            Err(err) => {
                tracing::warn!(error = %err, "feed listener: cannot connect; retrying");
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
        };
        if let Err(err) = listener
            .listen_all([feed::VERSIONS_CHANNEL, feed::FEED_CHANNEL])
            .await
        {
            tracing::warn!(error = %err, "feed listener: LISTEN failed; retrying");
            tokio::time::sleep(IDLE_POLL).await;
            continue;
        }
        // Anything committed while not listening is caught up now.
        engine.0.sequence.notify_one();
        loop {
            match listener.recv().await {
                Ok(n) if n.channel() == feed::VERSIONS_CHANNEL => engine.0.sequence.notify_one(),
                Ok(_) => engine.0.positioned.send_modify(|n| *n = n.wrapping_add(1)),
                Err(err) => {
                    tracing::warn!(error = %err, "feed listener: connection lost; reconnecting");
                    break;
                }
            }
        }
    }
}

/// PostgreSQL: positions committed versions (one instance at a time).
async fn sequencer(engine: Engine) {
    loop {
        let _ = tokio::time::timeout(IDLE_POLL, engine.0.sequence.notified()).await;
        // Until nothing is left (a pass positions at most a batch).
        loop {
            match feed::sequence(&engine.0.db).await {
                Ok(n) if n > 0 => engine.0.positioned.send_modify(|v| *v = v.wrapping_add(1)),
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "feed sequencer failed; retrying");
                    break;
                }
            }
        }
    }
}

/// Queues deliveries for new feed events.
async fn dispatcher(engine: Engine) {
    let (mut written, mut positioned) = engine.wake_ups();
    loop {
        tokio::select! {
            _ = written.changed() => {}
            _ = positioned.changed() => {}
            () = tokio::time::sleep(IDLE_POLL) => {}
        }
        // Nothing to do without subscriptions (a cheap read, not the
        // write lock the dispatch takes).
        let any = webhook::Entity::find()
            .filter(sea_orm::ColumnTrait::eq(&webhook::Column::Enabled, true))
            .one(&engine.0.db)
            .await;
        if !matches!(any, Ok(Some(_))) {
            continue;
        }
        match queue::dispatch(&engine.0.db).await {
            Ok(n) if n > 0 => engine.0.queued.notify_one(),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "webhook dispatch failed; retrying"),
        }
    }
}

/// When the next pending delivery that nobody holds is due, if any (one in
/// flight comes back when its claim expires).
async fn next_due(db: &DatabaseConnection) -> Option<DateTime<Utc>> {
    use sea_orm::sea_query::Condition;
    use sea_orm::{ColumnTrait, QueryOrder};
    let now = Utc::now();
    webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::State.eq("pending"))
        .filter(
            Condition::any()
                .add(webhook_delivery::Column::LockedUntil.is_null())
                .add(webhook_delivery::Column::LockedUntil.lte(now)),
        )
        .order_by_asc(webhook_delivery::Column::NextAttemptAt)
        .one(db)
        .await
        .ok()
        .flatten()
        .map(|d| d.next_attempt_at)
}

/// Claims due deliveries and sends them, up to [`MAX_IN_FLIGHT`] at once;
/// each is sent on its own, so a slow receiver holds up no other.
async fn worker(engine: Engine, client: reqwest::Client) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut last_gauges = Instant::now() - IDLE_POLL;
    loop {
        if last_gauges.elapsed() >= IDLE_POLL {
            last_gauges = Instant::now();
            if let Ok((depth, oldest)) = queue::queue_stats(&engine.0.db).await {
                crate::metrics::webhook_queue(depth, oldest);
            }
        }
        let free = slots.available_permits();
        if free == 0 {
            // Every slot busy: wait for one to free up.
            if let Ok(permit) = slots.clone().acquire_owned().await {
                drop(permit);
            }
            continue;
        }
        let due = next_due(&engine.0.db).await;
        let now = Utc::now();
        let claimed = match due {
            Some(at) if at <= now => {
                let lease = now + engine.0.settings.lease();
                let n = u64::try_from(free).unwrap_or(1).min(CLAIM_BATCH);
                queue::claim(&engine.0.db, lease, n)
                    .await
                    .unwrap_or_else(|err| {
                        tracing::warn!(error = %err, "claiming webhook deliveries failed");
                        Vec::new()
                    })
            }
            _ => Vec::new(),
        };
        if claimed.is_empty() {
            let wait = due
                .and_then(|at| (at - now).to_std().ok())
                .map_or(IDLE_POLL, |d| d.min(IDLE_POLL))
                .max(Duration::from_millis(5));
            let _ = tokio::time::timeout(wait, engine.0.queued.notified()).await;
            continue;
        }
        for (delivery, hook) in claimed {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                break;
            };
            let (engine, client) = (engine.clone(), client.clone());
            tokio::spawn(async move {
                deliver(&engine, &client, delivery, hook).await;
                drop(permit);
                // A retry it scheduled may be due before the next look.
                engine.poke();
            });
        }
    }
}

/// One attempt at one delivery, and its record.
async fn deliver(
    engine: &Engine,
    client: &reqwest::Client,
    delivery: webhook_delivery::Model,
    hook: webhook::Model,
) {
    let settings = engine.0.settings;
    let db = &engine.0.db;
    let started = Instant::now();
    let at = store::now();
    let attempt = |status_code: Option<u16>, error: Option<String>| Attempt {
        at,
        status_code,
        latency_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        error,
    };
    let is_test = delivery.event_type == queue::TEST_EVENT;
    let outcome = if !hook.enabled && !is_test {
        Err((
            attempt(None, Some("The subscription is disabled.".into())),
            Next::Cancelled,
        ))
    } else {
        match crate::api::events::message_body(db, &delivery, &hook, engine.cursor_key()).await {
            Ok(Some(body)) => Ok(body),
            Ok(None) => Err((
                attempt(None, Some("The record was erased.".into())),
                Next::Cancelled,
            )),
            Err(err) => {
                tracing::warn!(error = %err, delivery = delivery.id, "rendering a webhook message failed");
                Err((
                    attempt(None, Some("Internal error; will retry.".into())),
                    retry(&settings, &delivery),
                ))
            }
        }
    };
    let (result, next) = match outcome {
        Err(done) => done,
        Ok(body) => {
            let (status, error) = send(client, &settings, &hook, &delivery, body).await;
            let result = attempt(status, error.clone());
            let next = if error.is_none() {
                Next::Delivered
            } else {
                retry(&settings, &delivery)
            };
            (result, next)
        }
    };
    crate::metrics::webhook_delivery(match next {
        Next::Delivered => "delivered",
        Next::RetryAt(_) => "retry",
        Next::Failed => "failed",
        Next::Cancelled => "cancelled",
    });
    match queue::finish(db, &delivery, result, next, settings.disable_after).await {
        Ok(true) => tracing::warn!(webhook = hook.id, "webhook disabled after failing too long"),
        Ok(false) => {}
        // The claim expires and the delivery is attempted again.
        Err(err) => {
            tracing::warn!(error = %err, delivery = delivery.id, "recording a webhook attempt failed")
        }
    }
}

/// Retry later, or give up once the retry window is over.
fn retry(settings: &Settings, delivery: &webhook_delivery::Model) -> Next {
    let now = Utc::now();
    if now - delivery.created_at >= settings.retry_for {
        return Next::Failed;
    }
    let delay = chrono::Duration::from_std(settings.backoff(delivery.attempts))
        .unwrap_or(chrono::Duration::hours(1));
    Next::RetryAt(now + delay)
}

/// POSTs a signed message; the status, and what went wrong if it is not a
/// success.
async fn send(
    client: &reqwest::Client,
    settings: &Settings,
    hook: &webhook::Model,
    delivery: &webhook_delivery::Model,
    body: Vec<u8>,
) -> (Option<u16>, Option<String>) {
    let url = match ssrf::check_form(&hook.url, settings.policy) {
        Ok(url) => url,
        Err(refused) => return (None, Some(refused)),
    };
    let id = format!("msg_{}", delivery.id);
    let timestamp = Utc::now().timestamp();
    let signature = match sign::signature(&hook.secret, &id, timestamp, &body) {
        Ok(s) => s,
        Err(err) => return (None, Some(err)),
    };
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let mut resp = match sent {
        Ok(resp) => resp,
        Err(err) => return (None, Some(describe(&err))),
    };
    let status = resp.status();
    // Read (and drop) at most the first 64 KiB of the answer.
    let mut read = 0usize;
    while read < MAX_RESPONSE_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            _ => break,
        }
    }
    let error = if status.is_success() {
        None
    } else if status.is_redirection() {
        Some(format!(
            "The receiver answered {status}; redirects are not followed."
        ))
    } else {
        Some(format!("The receiver answered {status}."))
    };
    (Some(status.as_u16()), error)
}

/// An HTTP failure in one line, with its cause (a refused address says so).
fn describe(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if err.is_timeout() {
        "The receiver did not answer in time.".to_string()
    } else if err.is_connect() {
        "Could not connect to the receiver.".to_string()
    } else {
        "The request failed.".to_string()
    };
    let mut source = err.source();
    let mut depth = 0;
    while let Some(cause) = source {
        if depth < 4 {
            text.push_str(&format!(" {cause}"));
        }
        source = cause.source();
        depth += 1;
    }
    text.chars().take(500).collect()
}
