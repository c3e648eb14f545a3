//! Rate limiting of failed authentication, per client address and per v2 key.
//!
//! Failures (unknown tokens, wrong secrets, malformed headers, wrong provision
//! passwords) draw from a per-client budget; a client that exhausts it is
//! refused with `429` and `Retry-After` *before* any token is checked, so a
//! guess made while blocked can never succeed. A budget per v2 key stops a
//! distributed attack on one key. Successful requests draw nothing, and one
//! client's failures never slow another client.
//!
//! Each instance's own budget is the first line, and costs nothing: no request
//! waits for anything but memory. On PostgreSQL the budgets are also shared by
//! every instance ([`FailureLimiter::shared_through`]): a background task adds
//! this instance's failures to counters in the database in batches, blocks a
//! subject whose failures over the last minute, all instances together, exceed
//! its budget, and reads the blocks other instances recorded every second. So
//! N instances no longer give an attacker N budgets; the price is a window of
//! about a second (and a database round trip) in which another instance has
//! not heard yet. If the database cannot be reached the local budgets still hold.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use nbtoken_store::FailureCounts;

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

impl Subject {
    /// The subject's name in the shared counters (a v2 key is a public value).
    fn shared_name(&self) -> String {
        match self {
            Subject::Ip(ip) => format!("ip:{ip}"),
            Subject::Key(k) => format!("key:{k}"),
        }
    }

    fn from_shared_name(name: &str) -> Option<Subject> {
        if let Some(ip) = name.strip_prefix("ip:") {
            return ip.parse().ok().map(Subject::Ip);
        }
        name.strip_prefix("key:")
            .filter(|k| nbtoken_core::TokenKey::is_valid(k))
            .map(|k| Subject::Key(k.to_owned()))
    }
}

/// The window of the shared counters: budgets are per minute.
const WINDOW: Duration = Duration::from_secs(60);
/// How often the blocks other instances recorded are read.
const POLL: Duration = Duration::from_secs(1);
/// Most subjects waiting to be counted in the database; past this, new ones count only locally.
const MAX_PENDING: usize = 100_000;
/// Longest wait for one round trip of the sharing task.
const SHARED_TIMEOUT: Duration = Duration::from_secs(2);

/// The subjects blocked, and until when.
///
/// Every authenticated request asks whether its client is blocked, and nearly always none is:
/// `any` answers that from a flag that is written only when a block is added or the last one
/// pruned, so the answer costs no lock, and no cache line moves between the cores serving
/// requests. It is set under the lock, before the lock is released, so a reader that sees it
/// unset has read the map as it was before the block, as it would have under the lock.
#[derive(Default)]
struct Blocked {
    map: Mutex<HashMap<Subject, Instant>>,
    any: AtomicBool,
}

impl Blocked {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Subject, Instant>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Failures counted here and not yet added to the shared counters.
#[derive(Default)]
struct Pending {
    failures: Mutex<HashMap<Subject, u32>>,
    wake: tokio::sync::Notify,
}

/// The limiter. Shared by all requests of one instance.
pub struct FailureLimiter {
    config: LimitConfig,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_key: Option<DefaultKeyedRateLimiter<String>>,
    blocked: Arc<Blocked>,
    clock: DefaultClock,
    /// Set when budgets are shared through the database.
    pending: Option<Arc<Pending>>,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::dashmap(Quota::per_minute(n)))
}

impl FailureLimiter {
    /// A limiter with these budgets, for this instance alone.
    pub fn new(config: LimitConfig) -> Self {
        Self {
            config,
            per_ip: limiter(config.per_ip_per_minute),
            per_key: limiter(config.per_key_per_minute),
            blocked: Arc::new(Blocked::default()),
            clock: DefaultClock::default(),
            pending: None,
        }
    }

    /// Shares the budgets with every instance on the same database, through `counts`
    /// (`None`, as on SQLite, or no budget at all: this instance alone). Spawns the
    /// sharing task, which ends once the limiter is dropped; call it inside a tokio runtime.
    pub fn shared_through(mut self, counts: Option<FailureCounts>) -> Self {
        let limited = self.config.per_ip_per_minute > 0 || self.config.per_key_per_minute > 0;
        if let (Some(counts), true) = (counts, limited) {
            let pending = Arc::new(Pending::default());
            tokio::spawn(share(Arc::downgrade(&pending), Arc::downgrade(&self.blocked), counts, self.config));
            self.pending = Some(pending);
        }
        self
    }

    /// How long this client (or this key) must still wait, if it is blocked.
    pub fn blocked_for(&self, ip: IpAddr, key: Option<&str>) -> Option<Duration> {
        if !self.blocked.any.load(Ordering::Acquire) {
            return None;
        }
        let blocked = self.blocked.lock();
        let now = Instant::now();
        let left = |s: &Subject| blocked.get(s).filter(|until| **until > now).map(|until| *until - now);
        let by_ip = left(&Subject::Ip(ip));
        let by_key = key.and_then(|k| left(&Subject::Key(k.to_owned())));
        by_ip.max(by_key)
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
            self.share(Subject::Ip(ip));
        }
        if let (Some(l), Some(k)) = (&self.per_key, key) {
            let k = k.to_owned();
            if let Err(not_until) = l.check_key(&k) {
                let w = not_until.wait_time_from(self.clock.now());
                self.block(Subject::Key(k.clone()), w);
                wait = Some(wait.map_or(w, |x: Duration| x.max(w)));
            }
            self.share(Subject::Key(k));
        }
        wait
    }

    /// Queues one failure for the shared counters, if budgets are shared.
    fn share(&self, subject: Subject) {
        let Some(p) = &self.pending else { return };
        let mut failures = p.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() < MAX_PENDING || failures.contains_key(&subject) {
            *failures.entry(subject).or_insert(0) += 1;
            drop(failures);
            p.wake.notify_one();
        }
    }

    fn block(&self, subject: Subject, wait: Duration) {
        block(&self.blocked, subject, wait);
    }

    /// Forgets expired blocks and idle budgets; call now and then.
    pub fn prune(&self) {
        let now = Instant::now();
        let mut blocked = self.blocked.lock();
        blocked.retain(|_, until| *until > now);
        if blocked.is_empty() {
            self.blocked.any.store(false, Ordering::Release);
        }
        drop(blocked);
        if let Some(l) = &self.per_ip {
            l.retain_recent();
        }
        if let Some(l) = &self.per_key {
            l.retain_recent();
        }
    }
}

/// Blocks `subject` for `wait` (at least a second) from now, unless it is blocked for longer already.
fn block(blocked: &Blocked, subject: Subject, wait: Duration) {
    let until = Instant::now() + wait.max(Duration::from_secs(1));
    let mut map = blocked.lock();
    let entry = map.entry(subject).or_insert(until);
    *entry = (*entry).max(until);
    blocked.any.store(true, Ordering::Release);
}

/// The sharing task: adds queued failures to the shared counters as they come (one batch
/// per round trip), blocks subjects over budget here and for every instance, reads the
/// blocks other instances recorded each [`POLL`], and prunes old counters each [`WINDOW`].
/// Ends within a [`POLL`] of the limiter being dropped.
async fn share(pending: Weak<Pending>, blocked: Weak<Blocked>, counts: FailureCounts, config: LimitConfig) {
    let mut last_poll = Instant::now();
    let mut last_prune = Instant::now();
    let mut last_warning: Option<Instant> = None;
    let mut warn = |what: &str, e: &dyn std::fmt::Display| {
        // Once a minute at most: the local budgets still hold meanwhile.
        if last_warning.is_none_or(|t| t.elapsed() >= WINDOW) {
            last_warning = Some(Instant::now());
            tracing::warn!(error = %e, "shared failure budgets: cannot {what}; local budgets only until it works");
        }
    };
    loop {
        let batch: Vec<(Subject, u32)> = {
            let Some(p) = pending.upgrade() else { return };
            let _ = tokio::time::timeout(POLL, p.wake.notified()).await;
            let mut failures = p.failures.lock().unwrap_or_else(|p| p.into_inner());
            failures.drain().collect()
        };
        let Some(blocked) = blocked.upgrade() else { return };
        if !batch.is_empty() {
            let named: Vec<(String, u32)> = batch.iter().map(|(s, n)| (s.shared_name(), *n)).collect();
            match tokio::time::timeout(SHARED_TIMEOUT, counts.add(WINDOW, &named)).await {
                Ok(Ok(estimates)) => {
                    let mut over = Vec::new();
                    for e in estimates {
                        let Some(subject) = Subject::from_shared_name(&e.subject) else { continue };
                        let budget = match subject {
                            Subject::Ip(_) => config.per_ip_per_minute,
                            Subject::Key(_) => config.per_key_per_minute,
                        };
                        if budget > 0 && e.failures > f64::from(budget) {
                            let wait = e.window_left.max(Duration::from_secs(1));
                            block(&blocked, subject, wait);
                            over.push((e.subject, wait));
                        }
                    }
                    if let Ok(Err(e)) = tokio::time::timeout(SHARED_TIMEOUT, counts.block(&over)).await {
                        warn("record a block", &e);
                    }
                }
                Ok(Err(e)) => warn("count failures", &e),
                Err(_) => warn("count failures", &"timed out"),
            }
        }
        if last_poll.elapsed() >= POLL {
            last_poll = Instant::now();
            // A little more than the poll interval, so a block recorded during the last read is not missed.
            match tokio::time::timeout(SHARED_TIMEOUT, counts.recent_blocks(POLL * 3)).await {
                Ok(Ok(blocks)) => {
                    for (name, left) in blocks {
                        if let Some(subject) = Subject::from_shared_name(&name) {
                            block(&blocked, subject, left);
                        }
                    }
                }
                Ok(Err(e)) => warn("read blocks", &e),
                Err(_) => warn("read blocks", &"timed out"),
            }
        }
        if last_prune.elapsed() >= WINDOW {
            last_prune = Instant::now();
            if let Ok(Err(e)) = tokio::time::timeout(SHARED_TIMEOUT, counts.prune(WINDOW)).await {
                warn("prune counters", &e);
            }
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
    fn the_lock_free_answer_follows_the_blocks() {
        let l = FailureLimiter::new(LimitConfig { per_ip_per_minute: 1, per_key_per_minute: 0 });
        let a = ip("192.0.2.1");
        assert!(!l.blocked.any.load(Ordering::Acquire));
        assert_eq!(l.record_failure(a, None), None);
        // A failure within the budget blocks nobody: the answer still takes no lock.
        assert!(!l.blocked.any.load(Ordering::Acquire));
        assert!(l.record_failure(a, None).is_some());
        assert!(l.blocked.any.load(Ordering::Acquire));
        assert!(l.blocked_for(a, None).is_some());
        // Pruning keeps a block that has not run out, and the flag with it.
        l.prune();
        assert!(l.blocked.any.load(Ordering::Acquire) && l.blocked_for(a, None).is_some());
        // Once the last block has run out and is pruned, the flag is down again.
        l.blocked.lock().insert(Subject::Ip(a), Instant::now());
        l.prune();
        assert!(!l.blocked.any.load(Ordering::Acquire));
        assert_eq!(l.blocked_for(a, None), None);
        // Blocks recorded by other instances raise it too.
        block(&l.blocked, Subject::Key("AbCdEfGhIjKl".into()), Duration::from_secs(5));
        assert!(l.blocked_for(ip("192.0.2.9"), Some("AbCdEfGhIjKl")).is_some());
        assert_eq!(l.blocked_for(ip("192.0.2.9"), Some("AbCdEfGhIjKm")), None);
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
    fn shared_names_round_trip_and_refuse_anything_else() {
        for s in [
            Subject::Ip(ip("192.0.2.1")),
            Subject::Ip(ip("2001:db8::1")),
            Subject::Key("AbCdEfGhIjKl".into()),
        ] {
            assert_eq!(Subject::from_shared_name(&s.shared_name()), Some(s));
        }
        for bad in ["ip:nonsense", "key:short", "key:AbCdEfGhIjK!", "other:1", ""] {
            assert_eq!(Subject::from_shared_name(bad), None, "{bad}");
        }
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
