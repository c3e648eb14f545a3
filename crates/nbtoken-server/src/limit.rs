//! Rate limiting of failed authentication, per client address and per v2 key.
//!
//! Failures (unknown tokens, wrong secrets, malformed headers, wrong provision
//! passwords) draw from a per-client budget; a client that exhausts it is
//! refused with `429` and `Retry-After` *before* any token is checked, so a
//! guess made while blocked can never succeed. A budget per v2 key stops a
//! distributed attack on one key. Successful requests draw nothing, and one
//! client's failures never slow another client. Limits are per instance.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Failure budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitConfig {
    /// Failed attempts allowed per client address per minute (0: no limit).
    pub per_ip_per_minute: u32,
    /// Failed attempts allowed per v2 key per minute, from all clients together (0: no limit).
    pub per_key_per_minute: u32,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self { per_ip_per_minute: 30, per_key_per_minute: 60 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Subject {
    Ip(IpAddr),
    Key(String),
}

/// The limiter. Shared by all requests of one instance.
pub struct FailureLimiter {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_key: Option<DefaultKeyedRateLimiter<String>>,
    blocked: Mutex<HashMap<Subject, Instant>>,
    clock: DefaultClock,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::dashmap(Quota::per_minute(n)))
}

impl FailureLimiter {
    /// A limiter with these budgets.
    pub fn new(config: LimitConfig) -> Self {
        Self {
            per_ip: limiter(config.per_ip_per_minute),
            per_key: limiter(config.per_key_per_minute),
            blocked: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    /// How long this client (or this key) must still wait, if it is blocked.
    pub fn blocked_for(&self, ip: IpAddr, key: Option<&str>) -> Option<Duration> {
        let blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        if blocked.is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut subjects = vec![Subject::Ip(ip)];
        if let Some(k) = key {
            subjects.push(Subject::Key(k.to_owned()));
        }
        subjects
            .iter()
            .filter_map(|s| blocked.get(s))
            .filter(|until| **until > now)
            .map(|until| *until - now)
            .max()
    }

    /// Counts one failure; returns how long the client (or key) is now blocked, if it is.
    pub fn record_failure(&self, ip: IpAddr, key: Option<&str>) -> Option<Duration> {
        let mut wait = None;
        if let Some(l) = &self.per_ip {
            if let Err(not_until) = l.check_key(&ip) {
                let w = not_until.wait_time_from(self.clock.now());
                self.block(Subject::Ip(ip), w);
                wait = Some(w);
            }
        }
        if let (Some(l), Some(k)) = (&self.per_key, key) {
            let k = k.to_owned();
            if let Err(not_until) = l.check_key(&k) {
                let w = not_until.wait_time_from(self.clock.now());
                self.block(Subject::Key(k), w);
                wait = Some(wait.map_or(w, |x: Duration| x.max(w)));
            }
        }
        wait
    }

    fn block(&self, subject: Subject, wait: Duration) {
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        blocked.insert(subject, Instant::now() + wait.max(Duration::from_secs(1)));
    }

    /// Forgets expired blocks and idle budgets; call now and then.
    pub fn prune(&self) {
        let now = Instant::now();
        self.blocked.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, until| *until > now);
        if let Some(l) = &self.per_ip {
            l.retain_recent();
        }
        if let Some(l) = &self.per_key {
            l.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_client_is_blocked_after_its_budget_and_others_are_not() {
        let l = FailureLimiter::new(LimitConfig { per_ip_per_minute: 3, per_key_per_minute: 0 });
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(l.record_failure(a, None), None);
            assert_eq!(l.blocked_for(a, None), None);
        }
        let wait = l.record_failure(a, None).expect("fourth failure blocks");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(21), "{wait:?}");
        assert!(l.blocked_for(a, None).is_some());
        assert_eq!(l.blocked_for(ip("192.0.2.2"), None), None);
    }

    #[test]
    fn a_key_is_blocked_whatever_the_client() {
        let l = FailureLimiter::new(LimitConfig { per_ip_per_minute: 0, per_key_per_minute: 2 });
        assert_eq!(l.record_failure(ip("192.0.2.1"), Some("k")), None);
        assert_eq!(l.record_failure(ip("192.0.2.2"), Some("k")), None);
        assert!(l.record_failure(ip("192.0.2.3"), Some("k")).is_some());
        assert!(l.blocked_for(ip("198.51.100.9"), Some("k")).is_some());
        assert_eq!(l.blocked_for(ip("198.51.100.9"), Some("other")), None);
    }

    #[test]
    fn zero_disables() {
        let l = FailureLimiter::new(LimitConfig { per_ip_per_minute: 0, per_key_per_minute: 0 });
        for _ in 0..1000 {
            assert_eq!(l.record_failure(ip("192.0.2.1"), Some("k")), None);
        }
        l.prune();
    }
}
