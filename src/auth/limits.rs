//! Brute-force protection for every request that checks a password or
//! presents a credential (login, the OAuth token endpoint, register,
//! refresh, password change): a rate per client IP, and a budget of failed
//! password checks per account.
//!
//! The account budget counts failures only, so an owner who logs in does
//! not spend it. ASVS 2.2.1's cap holds: at most `budget` failed guesses in
//! any hour from addresses the account has not logged in from. An address
//! that logged in successfully in the last 30 days keeps an allowance of its
//! own of the same size, so that someone guessing from elsewhere cannot
//! lock the owner out.
//!
//! Both are GCRA limits (a burst, then a steady rate; with half the budget
//! as burst and half as hourly refill, no 60-minute window ever holds more
//! than the budget), kept by a [`LimitStore`]: in this process, or shared by
//! every instance (see `store::limits`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where limit state lives.
pub trait LimitStore: Send + Sync + 'static {
    /// Applies one GCRA step to `key`: with `consume`, counts an event;
    /// without, only asks whether one would be allowed. `Err(wait)` when
    /// it is not (and nothing is counted).
    fn gcra(
        &self,
        key: &str,
        emission: Duration,
        burst: u32,
        consume: bool,
    ) -> impl std::future::Future<Output = Result<Result<(), Duration>, LimitError>> + Send;

    /// Remembers `key` for `ttl`.
    fn remember(
        &self,
        key: &str,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<(), LimitError>> + Send;

    /// Whether `key` is remembered.
    fn remembered(
        &self,
        key: &str,
    ) -> impl std::future::Future<Output = Result<bool, LimitError>> + Send;
}

#[derive(Debug, thiserror::Error)]
#[error("rate-limit store: {0}")]
pub struct LimitError(pub String);

/// How long a successful login makes its address known for the account.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);

/// Refused: retry after this many seconds (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited(pub u64);

fn limited(wait: Duration) -> Limited {
    Limited((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
}

pub struct Limits<S> {
    store: S,
    per_ip_per_minute: u32,
    failures_per_hour: u32,
}

impl<S: LimitStore> Limits<S> {
    pub fn new(store: S, per_ip_per_minute: u32, failures_per_hour: u32) -> Self {
        Self {
            store,
            per_ip_per_minute: per_ip_per_minute.max(1),
            failures_per_hour: failures_per_hour.max(2),
        }
    }

    /// (emission interval, burst) of the account budget: half as burst,
    /// half refilled over the hour.
    fn account_quota(&self) -> (Duration, u32) {
        let half = self.failures_per_hour / 2;
        (HOUR / half, half)
    }

    /// Counts one attempt from `ip`; refused once it has made too many.
    pub async fn check_ip(&self, ip: Option<IpAddr>) -> Result<Result<(), Limited>, LimitError> {
        let Some(ip) = ip else {
            return Ok(Ok(()));
        };
        let emission = Duration::from_secs(60) / self.per_ip_per_minute;
        let outcome = self
            .store
            .gcra(&format!("ip:{ip}"), emission, self.per_ip_per_minute, true)
            .await?;
        if outcome.is_err() {
            tracing::warn!(%ip, "rate limit reached for authentication requests");
        }
        Ok(outcome.map_err(limited))
    }

    /// The budget key of `account` (its comparison key) for a request from
    /// `ip`: its own allowance when `ip` logged in to it recently.
    async fn budget_key(&self, account: &str, ip: Option<IpAddr>) -> Result<String, LimitError> {
        if let Some(ip) = ip
            && self
                .store
                .remembered(&format!("known:{account}:{ip}"))
                .await?
        {
            return Ok(format!("fail:{account}:{ip}"));
        }
        Ok(format!("fail:{account}"))
    }

    /// Whether a password check for `account` from `ip` may happen now.
    pub async fn check_account(
        &self,
        account: &str,
        ip: Option<IpAddr>,
    ) -> Result<Result<(), Limited>, LimitError> {
        let key = self.budget_key(account, ip).await?;
        let (emission, burst) = self.account_quota();
        let outcome = self.store.gcra(&key, emission, burst, false).await?;
        if outcome.is_err() {
            tracing::warn!("failed-login budget of an account spent");
        }
        Ok(outcome.map_err(limited))
    }

    /// Counts a failed password check against the account.
    pub async fn record_failure(
        &self,
        account: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), LimitError> {
        let key = self.budget_key(account, ip).await?;
        let (emission, burst) = self.account_quota();
        // Refused only if concurrent failures spent the budget meanwhile:
        // it is spent either way.
        let _ = self.store.gcra(&key, emission, burst, true).await?;
        Ok(())
    }

    /// A successful login: `ip` becomes known to the account.
    pub async fn record_success(
        &self,
        account: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), LimitError> {
        match ip {
            Some(ip) => {
                self.store
                    .remember(&format!("known:{account}:{ip}"), KNOWN_FOR)
                    .await
            }
            None => Ok(()),
        }
    }
}

/// Limit state in this process: for a single instance (the SQLite default).
#[derive(Clone, Default)]
pub struct MemoryLimits(Arc<Mutex<MemoryState>>);

#[derive(Default)]
struct MemoryState {
    /// key → theoretical arrival time
    tat: HashMap<String, Instant>,
    /// key → remembered until
    known: HashMap<String, Instant>,
}

/// Idle keys are dropped once the maps hold this many.
const PRUNE_AT: usize = 100_000;

impl LimitStore for MemoryLimits {
    async fn gcra(
        &self,
        key: &str,
        emission: Duration,
        burst: u32,
        consume: bool,
    ) -> Result<Result<(), Duration>, LimitError> {
        let now = Instant::now();
        let tolerance = emission * burst.saturating_sub(1);
        let mut state = self
            .0
            .lock()
            .map_err(|_| LimitError("limit state poisoned".into()))?;
        if state.tat.len() > PRUNE_AT {
            state.tat.retain(|_, tat| *tat > now);
        }
        let tat = state.tat.get(key).copied().unwrap_or(now).max(now);
        if tat.duration_since(now) > tolerance {
            return Ok(Err(tat.duration_since(now) - tolerance));
        }
        if consume {
            state.tat.insert(key.to_string(), tat + emission);
        }
        Ok(Ok(()))
    }

    async fn remember(&self, key: &str, ttl: Duration) -> Result<(), LimitError> {
        let now = Instant::now();
        let mut state = self
            .0
            .lock()
            .map_err(|_| LimitError("limit state poisoned".into()))?;
        if state.known.len() > PRUNE_AT {
            state.known.retain(|_, until| *until > now);
        }
        state.known.insert(key.to_string(), now + ttl);
        Ok(())
    }

    async fn remembered(&self, key: &str) -> Result<bool, LimitError> {
        let state = self
            .0
            .lock()
            .map_err(|_| LimitError("limit state poisoned".into()))?;
        Ok(state
            .known
            .get(key)
            .is_some_and(|until| *until > Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[tokio::test]
    async fn an_account_gets_no_more_failures_than_its_budget() {
        let limits = Limits::new(MemoryLimits::default(), 1000, 10);
        let mut allowed = 0;
        for _ in 0..20 {
            if limits
                .check_account("bob", ip("10.0.0.1"))
                .await
                .unwrap()
                .is_ok()
            {
                allowed += 1;
                limits.record_failure("bob", ip("10.0.0.1")).await.unwrap();
            }
        }
        assert_eq!(allowed, 5, "the burst is half the hourly budget");
        assert!(
            limits
                .check_account("alice", ip("10.0.0.1"))
                .await
                .unwrap()
                .is_ok()
        );
    }

    #[tokio::test]
    async fn checks_without_failures_spend_nothing() {
        let limits = Limits::new(MemoryLimits::default(), 1000, 4);
        for _ in 0..50 {
            assert!(
                limits
                    .check_account("bob", ip("10.0.0.1"))
                    .await
                    .unwrap()
                    .is_ok()
            );
        }
    }

    #[tokio::test]
    async fn a_guesser_elsewhere_cannot_lock_out_a_known_address() {
        let limits = Limits::new(MemoryLimits::default(), 1000, 4);
        limits.record_success("bob", ip("10.0.0.1")).await.unwrap();
        for _ in 0..10 {
            limits.record_failure("bob", ip("192.0.2.9")).await.unwrap();
        }
        assert!(
            limits
                .check_account("bob", ip("192.0.2.9"))
                .await
                .unwrap()
                .is_err()
        );
        assert!(
            limits
                .check_account("bob", ip("192.0.2.10"))
                .await
                .unwrap()
                .is_err()
        );
        assert!(
            limits
                .check_account("bob", ip("10.0.0.1"))
                .await
                .unwrap()
                .is_ok(),
            "the owner's address keeps its own allowance"
        );
    }
}
