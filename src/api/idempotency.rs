//! `Idempotency-Key` on POST and PATCH: the first request with a key runs
//! and its change records the outcome in its own transaction; the same
//! request again replays that outcome; a different request with the key is
//! a 422, one sent while the first still runs a 409. See
//! `store::idempotency`.

use sea_orm::DatabaseConnection;

use super::body::BodyDigest;
use super::security::Caller;
use crate::domain::IdempotencyKey;
use crate::error::ApiError;
use crate::store::idempotency::{self, Claim, Outcome};

/// What to do with a request.
pub enum Begin {
    /// Run it; pass the claim (if any) to its change.
    Run(Option<i64>),
    /// Answer with the first response.
    Replay(Outcome),
}

/// Claims `key` for this caller's `operation` with this body.
pub async fn begin(
    db: &DatabaseConnection,
    caller: &Caller,
    key: Option<IdempotencyKey>,
    operation: &str,
    target: i64,
    body: BodyDigest,
) -> Result<Begin, ApiError> {
    let Some(key) = key else {
        return Ok(Begin::Run(None));
    };
    let principal = match caller.principal.client_id {
        Some(client) => format!("u{}:c{client}", caller.principal.user_id),
        None => format!("u{}", caller.principal.user_id),
    };
    let fingerprint = {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        hash.update(operation.as_bytes());
        hash.update(target.to_be_bytes());
        hash.update(body.0);
        hex::encode(hash.finalize())
    };
    match idempotency::claim(db, &principal, key.as_str(), &fingerprint).await? {
        Claim::Claimed(id) => Ok(Begin::Run(Some(id))),
        Claim::Replay(outcome) => Ok(Begin::Replay(outcome)),
        Claim::Running => Err(ApiError::conflict(
            Default::default(),
            "A request with this Idempotency-Key is still being processed; retry shortly.",
        )),
        Claim::Mismatch => Err(ApiError::unprocessable(
            "This Idempotency-Key was already used with a different request.",
        )),
    }
}

/// Runs the request's change; when it fails (nothing was committed under
/// the claim), the claim is released so the key can be used again.
pub async fn run<T>(
    db: &DatabaseConnection,
    claim: Option<i64>,
    change: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let result = change.await;
    if let (Err(_), Some(claim)) = (&result, claim)
        && let Err(err) = idempotency::release(db, claim).await
    {
        tracing::warn!(error = %err, "releasing an idempotency claim failed; it expires with its lease");
    }
    result
}
