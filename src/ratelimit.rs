//! Brute-force protection for login, register and refresh: a rate per
//! client IP for every attempt, and a budget of failed logins per account.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use poem::Request;

use crate::error::ApiError;

pub struct RateLimits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    failures: DefaultKeyedRateLimiter<String>,
    /// Accounts whose failure budget is spent, and until when.
    locked: Mutex<HashMap<String, Instant>>,
    trusted_proxies: Vec<IpAddr>,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn retry_after(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl RateLimits {
    pub fn new(
        per_ip_per_minute: u32,
        failures_per_hour: u32,
        trusted_proxies: Vec<IpAddr>,
    ) -> Self {
        // GCRA allows a burst and then a steady rate; half of the hourly
        // budget as burst and half as refill keeps any 60-minute window at or
        // under `failures_per_hour`.
        let half = (failures_per_hour / 2).max(1);
        let period = Duration::from_secs(3600) / half;
        let failures = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_hour(nonzero(half)))
            .allow_burst(nonzero(half));
        Self {
            per_ip: RateLimiter::keyed(Quota::per_minute(nonzero(per_ip_per_minute))),
            failures: RateLimiter::keyed(failures),
            locked: Mutex::new(HashMap::new()),
            trusted_proxies,
        }
    }

    /// The client's address: the socket peer, or — when the peer is a
    /// trusted proxy — the last address in `X-Forwarded-For` that is not one.
    pub fn client_ip(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
        if !self.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        Some(
            forwarded
                .into_iter()
                .rev()
                .find(|ip| !self.trusted_proxies.contains(ip))
                .unwrap_or(peer),
        )
    }

    /// Counts one attempt from this client; 429 when it has made too many.
    pub fn check_ip(&self, req: &Request) -> Result<(), ApiError> {
        let Some(ip) = self.client_ip(req) else {
            return Ok(());
        };
        self.per_ip.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            tracing::warn!(%ip, "rate limit reached for authentication endpoints");
            ApiError::too_many_requests(retry_after(wait))
        })?;
        if self.per_ip.len() > 100_000 {
            self.per_ip.retain_recent();
        }
        Ok(())
    }

    /// 429 while the account's failed-login budget is spent.
    pub fn check_account(&self, account: &str) -> Result<(), ApiError> {
        let locked = self.locked.lock().unwrap_or_else(|e| e.into_inner());
        match locked.get(&account.to_lowercase()) {
            Some(until) if *until > Instant::now() => Err(ApiError::too_many_requests(
                retry_after(until.saturating_duration_since(Instant::now())),
            )),
            _ => Ok(()),
        }
    }

    /// Records a failed login for the account, locking it once its budget is spent.
    pub fn record_failure(&self, account: &str) {
        let key = account.to_lowercase();
        if let Err(not_until) = self.failures.check_key(&key) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut locked = self.locked.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if locked.len() > 100_000 {
                locked.retain(|_, until| *until > now);
            }
            locked.insert(key, now + wait);
        }
        if self.failures.len() > 100_000 {
            self.failures.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_locked_after_its_failure_budget() {
        let limits = RateLimits::new(1000, 10, vec![]);
        for _ in 0..5 {
            assert!(limits.check_account("bob").is_ok());
            limits.record_failure("Bob");
        }
        limits.record_failure("bob");
        assert!(limits.check_account("bob").is_err());
        assert!(limits.check_account("alice").is_ok());
    }
}
