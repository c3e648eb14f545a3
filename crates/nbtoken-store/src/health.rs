//! Store health: what `/healthz` and `doctor` report, and the state behind it.
//!
//! A PostgreSQL store that finds the database down opens a circuit breaker
//! (`Breaker`): every later call fails at once with
//! [`StoreError::Unavailable`] instead of waiting out the pool timeout, while a
//! background probe reconnects every [`PROBE_INTERVAL`] and closes the breaker
//! when the database answers again. An SQLite store probes writes
//! (`WriteProbe`): at most one tiny committed write per
//! [`WRITE_PROBE_INTERVAL`], so a full disk or a read-only file shows up as
//! [`Health::CannotWrite`] even though reads (and `SELECT 1`) still work.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::{Result, StoreError};

/// How often an open breaker tries to reach the database again.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// How often an SQLite store commits a write probe at most; health checks in
/// between get the last probe's answer.
pub const WRITE_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// What a health check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Reads and writes work.
    Ok,
    /// The database does not answer, and has not since `since`.
    Unreachable {
        /// When the store first found it down (this outage).
        since: OffsetDateTime,
    },
    /// The database answers but cannot commit a write (disk full, read-only
    /// file or file system), and could not since `since`.
    CannotWrite {
        /// When a write first failed (this outage).
        since: OffsetDateTime,
    },
}

/// A probe: a fresh connection and a round trip; `true` when the database answered.
pub(crate) type ProbeFn = Box<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// A circuit breaker for a database that is either reachable or not.
///
/// Closed, calls go through; a call that finds the database unavailable opens
/// it, and so does a call still waiting after [`SUSPECT_AFTER`] when a probe
/// (one at a time) cannot reach the database: the waiting calls then fail at
/// once too. Open, calls fail at once and one background task probes every
/// [`PROBE_INTERVAL`] until the database answers, then closes it.
pub(crate) struct Breaker {
    open: AtomicBool,
    probing: AtomicBool,
    stopped: AtomicBool,
    down_since: Mutex<Option<OffsetDateTime>>,
    /// `true` while open, for calls waiting on a database that went away.
    opened: tokio::sync::watch::Sender<bool>,
    /// Names the database in errors (`PostgreSQL at host:port`), never with a password.
    what: String,
    probe: ProbeFn,
}

/// How long a call may wait before the breaker checks, with a probe, whether the database is there at all.
pub const SUSPECT_AFTER: Duration = Duration::from_millis(500);

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker").field("what", &self.what).field("down_since", &self.down_since()).finish()
    }
}

impl Breaker {
    /// A closed breaker for the database `what` names, reconnecting with `probe`.
    pub(crate) fn new(what: String, probe: ProbeFn) -> Self {
        Self {
            open: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            down_since: Mutex::new(None),
            opened: tokio::sync::watch::Sender::new(false),
            what,
            probe,
        }
    }

    /// Since when the database is known down, if it is.
    pub(crate) fn down_since(&self) -> Option<OffsetDateTime> {
        if self.open.load(Ordering::Acquire) {
            *self.down_since.lock().unwrap_or_else(PoisonError::into_inner)
        } else {
            None
        }
    }

    /// Runs `op` unless the breaker is open; opens it if `op` finds the
    /// database unavailable. An `op` still waiting after [`SUSPECT_AFTER`]
    /// starts a probe, and is given up (an `Unavailable` error) as soon as the
    /// breaker opens.
    pub(crate) async fn call<T>(self: &Arc<Self>, op: impl Future<Output = Result<T>>) -> Result<T> {
        if let Some(since) = self.down_since() {
            return Err(self.fail_fast(since));
        }
        let mut opened = self.opened.subscribe();
        let gone = async {
            tokio::time::sleep(SUSPECT_AFTER).await;
            self.start_probing();
            // An error means the breaker is gone, which cannot happen while `self` lives.
            let _ = opened.wait_for(|open| *open).await;
        };
        let result = tokio::select! {
            result = op => result,
            () = gone => {
                let since = self.down_since().unwrap_or_else(crate::sql::record::now);
                return Err(self.fail_fast(since));
            }
        };
        if let Err(StoreError::Unavailable(_)) = &result {
            self.trip();
        }
        result
    }

    fn fail_fast(&self, since: OffsetDateTime) -> StoreError {
        let since = since.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        StoreError::Unavailable(format!(
            "{} is down since {since} (failing fast until it answers)",
            self.what
        ))
    }

    /// Opens the breaker (keeping the first `since` of this outage) and starts
    /// the probe loop unless it runs already.
    pub(crate) fn trip(self: &Arc<Self>) {
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        self.open_now();
        self.start_probing();
    }

    fn open_now(&self) {
        {
            let mut since = self.down_since.lock().unwrap_or_else(PoisonError::into_inner);
            if since.is_none() {
                *since = Some(crate::sql::record::now());
            }
        }
        self.open.store(true, Ordering::Release);
        self.opened.send_replace(true);
    }

    /// Probes until the database answers, opening the breaker at the first
    /// failed probe and closing it at the first good one; one loop at a time.
    fn start_probing(self: &Arc<Self>) {
        if self.stopped.load(Ordering::Acquire) || self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        // The loop holds only a weak reference: it ends with the last store clone.
        let weak = Arc::downgrade(self);
        // Only called from inside a store future, so a runtime is running.
        tokio::spawn(async move {
            loop {
                let Some(me) = weak.upgrade() else { return };
                if me.stopped.load(Ordering::Acquire) {
                    me.probing.store(false, Ordering::Release);
                    return;
                }
                let probe = (me.probe)();
                drop(me);
                let up = probe.await;
                let Some(me) = weak.upgrade() else { return };
                if up {
                    me.close();
                    return;
                }
                me.open_now();
                drop(me);
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
        });
    }

    /// Marks the database reachable again.
    fn close(&self) {
        *self.down_since.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.open.store(false, Ordering::Release);
        self.opened.send_replace(false);
        self.probing.store(false, Ordering::Release);
    }

    /// Stops probing for good (the store was closed).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }
}

/// The state of an SQLite store's write probe.
#[derive(Debug, Default)]
pub(crate) struct WriteProbe {
    state: tokio::sync::Mutex<ProbeState>,
}

#[derive(Debug, Default)]
struct ProbeState {
    last: Option<Instant>,
    failing_since: Option<OffsetDateTime>,
}

impl WriteProbe {
    /// Runs `probe` unless one ran within [`WRITE_PROBE_INTERVAL`], and
    /// answers since when writes fail, if they do.
    pub(crate) async fn check<F>(&self, probe: F) -> Option<OffsetDateTime>
    where
        F: Future<Output = Result<()>>,
    {
        let mut state = self.state.lock().await;
        if state.last.is_none_or(|t| t.elapsed() >= WRITE_PROBE_INTERVAL) {
            let ok = probe.await.is_ok();
            state.record(ok);
        }
        state.failing_since
    }

    /// Records the outcome of a probe run outside [`WriteProbe::check`].
    pub(crate) async fn record(&self, ok: bool) {
        self.state.lock().await.record(ok);
    }
}

impl ProbeState {
    fn record(&mut self, ok: bool) {
        self.last = Some(Instant::now());
        if ok {
            self.failing_since = None;
        } else {
            self.failing_since.get_or_insert_with(crate::sql::record::now);
        }
    }
}
