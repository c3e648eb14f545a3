//! Deferred `last_used` and re-hash writes: requests queue them, one task writes them in batches.
//!
//! A request never waits for this write. Within one batch a token is written
//! once; across batches the core's 60-second rule (and the `recent` map here,
//! which covers the time before the row is re-read) keep writes to at most
//! one per token per minute.
//!
//! Every successful v1 authentication is also counted here, per token and UTC
//! day, in memory ([`Toucher::count_v1_use`]); the writer adds the counts to the
//! store with each batch (the Migration page's "v1 uses per day"). Counting
//! takes one short lock and wakes the writer only when the map was empty.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nbtoken_store::{DayUses, Store, Touch};
use time::{Date, OffsetDateTime};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::cache::TokenCache;
use crate::metrics::Metrics;
use crate::AppStore;

const FLUSH_EVERY: Duration = Duration::from_millis(500);
const QUEUE: usize = 10_000;
/// (token, day) pairs counted between two flushes at most; more are dropped, as a full queue drops.
const COUNTED_MAX: usize = 100_000;

/// v1 uses counted since the last flush, and the writer's wake-up for them.
#[derive(Default)]
struct V1Counts {
    counts: Mutex<HashMap<(i64, Date), u64>>,
    pending: Notify,
}

impl V1Counts {
    /// Takes every count (leaving none), as the store adds them.
    fn take(&self) -> Vec<DayUses> {
        let counts = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()));
        counts.into_iter().map(|((token_id, day), uses)| DayUses { token_id, day, uses }).collect()
    }
}

/// The sending side, held by the server state.
pub struct Toucher {
    tx: Mutex<Option<mpsc::Sender<Touch>>>,
    recent: Mutex<HashMap<i64, OffsetDateTime>>,
    v1: Arc<V1Counts>,
}

impl Toucher {
    /// Starts the writer task.
    pub fn start(store: AppStore, cache: Arc<TokenCache>, metrics: Arc<Metrics>) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let v1 = Arc::new(V1Counts::default());
        let handle = tokio::spawn(writer(store, cache, metrics, rx, v1.clone()));
        (Self { tx: Mutex::new(Some(tx)), recent: Mutex::new(HashMap::new()), v1 }, handle)
    }

    /// Counts one successful v1 authentication of `token_id` at `at` (on its UTC day); the
    /// writer adds the counts to the store with its next batch. Never waits on the store.
    pub fn count_v1_use(&self, token_id: i64, at: OffsetDateTime) {
        let day = at.to_offset(time::UtcOffset::UTC).date();
        let was_empty = {
            let mut counts = self.v1.counts.lock().unwrap_or_else(|p| p.into_inner());
            let was_empty = counts.is_empty();
            if counts.len() < COUNTED_MAX || counts.contains_key(&(token_id, day)) {
                *counts.entry((token_id, day)).or_default() += 1;
            }
            was_empty
        };
        if was_empty {
            // A stored permit: the writer wakes even if it is busy flushing right now.
            self.v1.pending.notify_one();
        }
    }

    /// Whether a write for `token_id` at `at` is due, asked before a [`Touch`] is built so a
    /// request that needs none allocates nothing: always with a re-hash; otherwise unless this
    /// token was queued in the last minute (a due write is then remembered as queued).
    pub fn due(&self, token_id: i64, at: OffsetDateTime, rehash: bool) -> bool {
        if rehash {
            return true;
        }
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(prev) = recent.get(&token_id) {
            if at - *prev <= nbtoken_core::verify::LAST_USED_RESOLUTION {
                return false;
            }
        }
        if recent.len() > 100_000 {
            recent.clear();
        }
        recent.insert(token_id, at);
        true
    }

    /// Queues a write that [`Toucher::due`] said is due. Drops it if the queue is full:
    /// `last_used` is advisory and must never slow a request.
    pub fn queue(&self, touch: Touch) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = tx.as_ref() {
            if tx.try_send(touch).is_err() {
                tracing::warn!("last_used queue full; dropping one update");
            }
        }
    }

    /// Stops accepting writes; the writer flushes what is queued and ends.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

async fn writer(
    store: AppStore,
    cache: Arc<TokenCache>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Touch>,
    v1: Arc<V1Counts>,
) {
    let mut batch: Vec<Touch> = Vec::new();
    loop {
        // A touch or a first v1 count starts a batch: counts alone wake the writer too, since
        // within a minute a token's uses queue no touch.
        tokio::select! {
            first = rx.recv() => {
                let Some(first) = first else { break };
                batch.push(first);
            }
            () = v1.pending.notified() => {}
        }
        tokio::time::sleep(FLUSH_EVERY).await;
        while let Ok(t) = rx.try_recv() {
            batch.push(t);
        }
        flush(&store, &cache, &metrics, &mut batch).await;
        add_v1_uses(&store, &metrics, &v1).await;
    }
    flush(&store, &cache, &metrics, &mut batch).await;
    add_v1_uses(&store, &metrics, &v1).await;
}

/// Adds the v1 uses counted since the last call to the store. Counts the store refuses are
/// dropped with a warning: like `last_used`, they are advisory.
async fn add_v1_uses(store: &AppStore, metrics: &Metrics, v1: &V1Counts) {
    let counts = v1.take();
    if counts.is_empty() {
        return;
    }
    if let Err(e) = store.add_v1_uses(&counts).await {
        metrics.store_error();
        tracing::warn!(error = %e, count = counts.len(), "could not write v1 use counts");
    }
}

async fn flush(store: &AppStore, cache: &TokenCache, metrics: &Metrics, batch: &mut Vec<Touch>) {
    if batch.is_empty() {
        return;
    }
    // Keep the latest touch per token (its time and address), with any re-hash it carries.
    let mut by_token: HashMap<i64, Touch> = HashMap::new();
    for t in batch.drain(..) {
        match by_token.get_mut(&t.token_id) {
            Some(existing) => {
                if t.at > existing.at {
                    existing.at = t.at;
                    existing.ip = t.ip;
                    existing.user_agent = t.user_agent;
                }
                if t.rehash.is_some() {
                    existing.rehash = t.rehash;
                    existing.rehash_from = t.rehash_from;
                }
            }
            None => {
                by_token.insert(t.token_id, t);
            }
        }
    }
    let touches: Vec<Touch> = by_token.into_values().collect();
    match store.apply_touches(&touches).await {
        Ok(()) => metrics.last_used_writes(touches.len()),
        Err(e) => {
            metrics.store_error();
            tracing::warn!(error = %e, count = touches.len(), "could not write last_used");
        }
    }
    // A re-hashed row must be read again, or the old digest would keep asking for a re-hash.
    for t in touches.iter().filter(|t| t.rehash.is_some()) {
        cache.invalidate_token(t.token_id);
    }
}
