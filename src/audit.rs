//! The durable audit writer. A request that discloses patient data waits
//! until its event is committed before it answers (group commit: events
//! that arrive while a batch is being written go into the next batch, so a
//! busy server writes many per transaction, and none are written by the
//! request itself). A change writes its event in its own transaction
//! instead (`store::Write`). Which operations record what is declared on
//! each route (`api::audited`).

use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};

use crate::domain::audit::Event;
use crate::store;

const QUEUE: usize = 10_000;
const BATCH: usize = 1_000;

/// The event could not be committed: the audit store is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the audit trail is unavailable")]
pub struct AuditUnavailable;

struct Pending {
    event: Event,
    committed: oneshot::Sender<Result<(), AuditUnavailable>>,
}

/// The sending side of the trail; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: Option<mpsc::Sender<Pending>>,
}

impl AuditLog {
    /// Starts the writer task on the current runtime. It stops once every
    /// `AuditLog` is dropped, after writing what is queued.
    pub fn start(db: DatabaseConnection) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(db, rx));
        Self { tx: Some(tx) }
    }

    /// A trail that records nothing, for describing the API offline.
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Records `event` and returns once it is committed.
    pub async fn commit(&self, event: Event) -> Result<(), AuditUnavailable> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        let (committed, done) = oneshot::channel();
        tx.send(Pending { event, committed })
            .await
            .map_err(|_| AuditUnavailable)?;
        done.await.unwrap_or(Err(AuditUnavailable))
    }
}

async fn write_loop(db: DatabaseConnection, mut rx: mpsc::Receiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let outcome = write(&db, &batch).await;
        for pending in batch.drain(..) {
            let _ = pending.committed.send(outcome);
        }
    }
}

async fn write(db: &DatabaseConnection, batch: &[Pending]) -> Result<(), AuditUnavailable> {
    let events: Vec<Event> = batch.iter().map(|p| p.event.clone()).collect();
    // A batch is committed whole or not at all.
    let result = store::audit::commit_batch(db, &events);
    match tokio::time::timeout(WRITE_TIMEOUT, result).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => {
            tracing::error!(error = %err, events = events.len(), "writing audit events failed; their requests are refused");
            Err(AuditUnavailable)
        }
        Err(_) => {
            tracing::error!(
                events = events.len(),
                "writing audit events timed out; their requests are refused"
            );
            Err(AuditUnavailable)
        }
    }
}

/// A batch that takes longer than this is given up (its requests answer
/// 503) rather than holding every disclosure behind it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
