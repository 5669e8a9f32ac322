//! `Idempotency-Key` on POST and PATCH: the first request with a key runs
//! and its change records the outcome in its own transaction; the same
//! request again replays that outcome from the version it made; a different
//! request with the key is a 422, one sent while the first still runs a
//! 409. See `store::idempotency`.

use sea_orm::DatabaseConnection;

use super::audited::AuditNote;
use super::body::BodyDigest;
use super::security::Caller;
use crate::domain::IdempotencyKey;
use crate::domain::audit::{Action, Resource};
use crate::error::ApiError;
use crate::store::idempotency::{self, Claim};
use crate::store::{Write, history};

/// One request that may carry an `Idempotency-Key`.
pub struct Once<'a> {
    pub db: &'a DatabaseConnection,
    pub caller: &'a Caller,
    pub key: Option<IdempotencyKey>,
    /// The operation and the record it targets (0 for a create): with the
    /// body, what makes two requests "the same request".
    pub operation: &'static str,
    pub target: i64,
    pub body: BodyDigest,
    /// For the audit trail: a replay discloses the record again.
    pub request: &'a poem::Request,
}

impl<'a> Once<'a> {
    fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        hash.update(self.operation.as_bytes());
        hash.update(self.target.to_be_bytes());
        hash.update(self.body.0);
        hex::encode(hash.finalize())
    }

    fn principal(&self) -> String {
        let principal = &self.caller.principal;
        match principal.client_id {
            Some(client) => format!("u{}:c{client}", principal.user_id),
            None => format!("u{}", principal.user_id),
        }
    }

    /// Runs `change` (given what it must record, answered with `status`)
    /// at most once per key. Returns its row (`T`, as the change's version
    /// keeps it) and whether this is a replay.
    pub async fn run<T, Fut>(
        self,
        status: u16,
        change: impl FnOnce(Write<'a>) -> Fut,
    ) -> Result<(T, Option<bool>), ApiError>
    where
        T: serde::de::DeserializeOwned,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let write = self.caller.write(status);
        let Some(key) = &self.key else {
            return Ok((change(write).await?, None));
        };
        let claim = idempotency::claim(
            self.db,
            &self.principal(),
            key.as_str(),
            &self.fingerprint(),
        )
        .await?;
        let claim = match claim {
            Claim::Claimed(id) => id,
            Claim::Replay(outcome) => {
                if let Some(note) = self.request.extensions().get::<AuditNote>() {
                    note.set_action(Action::Read);
                }
                let resource = Resource::ALL
                    .into_iter()
                    .find(|r| r.as_str() == outcome.resource)
                    .ok_or_else(|| ApiError::internal("replaying", "unknown resource"))?;
                let version = history::get(self.db, resource, outcome.resource_id, outcome.version)
                    .await?
                    .ok_or_else(|| ApiError::not_found("Record"))?;
                return Ok((history::row(&version)?, Some(true)));
            }
            Claim::Running => {
                return Err(ApiError::conflict(
                    Default::default(),
                    "A request with this Idempotency-Key is still being processed; retry shortly.",
                ));
            }
            Claim::Mismatch => {
                return Err(ApiError::unprocessable(
                    "This Idempotency-Key was already used with a different request.",
                ));
            }
        };
        let result = change(Write {
            claim: Some(claim),
            ..write
        })
        .await;
        // A failed change committed nothing under the claim: release it so
        // the key can be used again, with the same or a corrected request.
        if result.is_err()
            && let Err(err) = idempotency::release(self.db, claim).await
        {
            tracing::warn!(error = %err, "releasing an idempotency claim failed; it expires with its lease");
        }
        Ok((result?, None))
    }
}
