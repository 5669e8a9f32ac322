//! Brute-force protection for login, register and refresh: a rate per
//! client IP for every attempt, and a budget of password checks per account.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use poem::Request;

use crate::error::ApiError;

/// Keyed limiters prune idle keys once they hold this many.
const PRUNE_AT: usize = 100_000;

pub struct RateLimits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_account: DefaultKeyedRateLimiter<String>,
    trusted_proxies: Vec<IpAddr>,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn too_many(not_until: &governor::NotUntil<governor::clock::QuantaInstant>) -> ApiError {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    ApiError::too_many_requests(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
}

impl RateLimits {
    pub fn new(
        per_ip_per_minute: u32,
        per_account_per_hour: u32,
        trusted_proxies: Vec<IpAddr>,
    ) -> Self {
        // GCRA allows a burst and then a steady rate; half of the hourly
        // budget as burst and half as refill keeps every 60-minute window at
        // or under `per_account_per_hour`.
        let half = (per_account_per_hour / 2).max(1);
        let per_account = Quota::with_period(Duration::from_secs(3600) / half)
            .unwrap_or_else(|| Quota::per_hour(nonzero(half)))
            .allow_burst(nonzero(half));
        Self {
            per_ip: RateLimiter::keyed(Quota::per_minute(nonzero(per_ip_per_minute))),
            per_account: RateLimiter::keyed(per_account),
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
        if self.per_ip.len() > PRUNE_AT {
            self.per_ip.retain_recent();
        }
        self.per_ip.check_key(&ip).map_err(|not_until| {
            tracing::warn!(%ip, "rate limit reached for authentication endpoints");
            too_many(&not_until)
        })
    }

    /// Counts one password check against the account, before it happens;
    /// 429 once the hourly budget is spent. Counting every check (not only
    /// failures, which are known only afterwards) is what bounds the guesses
    /// an attacker gets to the budget (ASVS 2.2.1).
    pub fn check_account(&self, account: &str) -> Result<(), ApiError> {
        if self.per_account.len() > PRUNE_AT {
            self.per_account.retain_recent();
        }
        self.per_account
            .check_key(&account.to_lowercase())
            .map_err(|not_until| {
                tracing::warn!("password-check budget of an account spent");
                too_many(&not_until)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_gets_no_more_password_checks_than_its_budget() {
        let limits = RateLimits::new(1000, 10, vec![]);
        let allowed = (0..20)
            .filter(|_| limits.check_account("Bob").is_ok())
            .count();
        assert_eq!(allowed, 5, "the burst is half the hourly budget");
        assert!(
            limits.check_account("bob").is_err(),
            "case does not open a new budget"
        );
        assert!(limits.check_account("alice").is_ok());
    }
}
