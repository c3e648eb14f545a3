//! Deferred `last_used` and re-hash writes: requests queue them, one task writes them in batches.
//!
//! A request never waits for this write. Within one batch a token is written
//! once; across batches the core's 60-second rule (and the `recent` map here,
//! which covers the time before the row is re-read) keep writes to at most
//! one per token per minute.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nbtoken_store::{Store, Touch};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cache::TokenCache;
use crate::metrics::Metrics;
use crate::AppStore;

const FLUSH_EVERY: Duration = Duration::from_millis(500);
const QUEUE: usize = 10_000;

/// The sending side, held by the server state.
pub struct Toucher {
    tx: Mutex<Option<mpsc::Sender<Touch>>>,
    recent: Mutex<HashMap<i64, OffsetDateTime>>,
}

impl Toucher {
    /// Starts the writer task.
    pub fn start(store: AppStore, cache: Arc<TokenCache>, metrics: Arc<Metrics>) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = tokio::spawn(writer(store, cache, metrics, rx));
        (Self { tx: Mutex::new(Some(tx)), recent: Mutex::new(HashMap::new()) }, handle)
    }

    /// Queues a write unless this token was queued in the last minute (and no re-hash is due).
    /// Drops the write if the queue is full: `last_used` is advisory and must never slow a request.
    pub fn queue(&self, touch: Touch) {
        if touch.rehash.is_none() {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(prev) = recent.get(&touch.token_id) {
                if touch.at - *prev <= nbtoken_core::verify::LAST_USED_RESOLUTION {
                    return;
                }
            }
            if recent.len() > 100_000 {
                recent.clear();
            }
            recent.insert(touch.token_id, touch.at);
        }
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
) {
    let mut batch: Vec<Touch> = Vec::new();
    loop {
        let first = rx.recv().await;
        let Some(first) = first else { break };
        batch.push(first);
        tokio::time::sleep(FLUSH_EVERY).await;
        while let Ok(t) = rx.try_recv() {
            batch.push(t);
        }
        flush(&store, &cache, &metrics, &mut batch).await;
    }
    flush(&store, &cache, &metrics, &mut batch).await;
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
