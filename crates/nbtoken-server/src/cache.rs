//! A short-lived cache of token rows and their owners, so most requests authenticate
//! (and know their user) without the database.
//!
//! Entries live at most `ttl`. Every change this instance makes drops the
//! affected entries at once; on PostgreSQL a listener drops entries that other
//! instances (or the CLI) changed, as their notifications arrive, and forgets
//! everything when the notification connection drops. The TTL is the backstop
//! for what no notification covers (SQLite changed by another process).
//!
//! A row read from the store is cached only if no invalidation happened while it
//! was being read (a generation counter), so a read that races a change cannot
//! put the old row back for a whole TTL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use nbtoken_store::{Change, Store, TokenRecord, User};
use sha2::{Digest as _, Sha256};

/// Most rows kept; past this, new rows are not cached (no eviction churn under a key-spraying attack).
const MAX_ENTRIES: usize = 200_000;

/// How a row is found: by v2 key, or by the SHA-256 of a v1 plaintext (never the plaintext itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheKey {
    /// A well-formed v2 key (12 ASCII characters), held inline so a lookup allocates nothing.
    V2([u8; nbtoken_core::token::KEY_LEN]),
    /// SHA-256 of a v1 plaintext.
    V1([u8; 32]),
}

impl CacheKey {
    /// The key for a v2 key; `None` unless it is well-formed (no token can have another).
    pub fn v2(key: &str) -> Option<Self> {
        if !nbtoken_core::TokenKey::is_valid(key) {
            return None;
        }
        key.as_bytes().try_into().ok().map(CacheKey::V2)
    }

    /// The key for a v1 plaintext.
    pub fn v1(plaintext: &str) -> Self {
        CacheKey::V1(Sha256::digest(plaintext.as_bytes()).into())
    }
}

struct Entry {
    record: Arc<TokenRecord>,
    fetched: Instant,
}

/// The cache. Cheap to share behind an `Arc`.
pub struct TokenCache {
    ttl: Duration,
    entries: RwLock<HashMap<CacheKey, Entry>>,
    users: RwLock<HashMap<i64, UserEntry>>,
    /// Bumped by every invalidation; see the module documentation.
    generation: AtomicU64,
}

struct UserEntry {
    user: Arc<User>,
    fetched: Instant,
}

impl TokenCache {
    /// A cache whose entries live `ttl`; a zero TTL caches nothing.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
            users: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// The invalidation count, read before a store read whose result will be cached.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A fresh entry, if there is one.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<TokenRecord>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|e| e.fetched.elapsed() < self.ttl).map(|e| e.record.clone())
    }

    /// Remembers a row read from the store after [`Self::generation`] returned `generation`;
    /// if anything was invalidated since, the row may be stale and is not kept.
    pub fn insert(&self, key: CacheKey, record: Arc<TokenRecord>, generation: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if self.generation() != generation || !make_room(&mut entries, self.ttl, |e| e.fetched) {
            return;
        }
        entries.insert(key, Entry { record, fetched: Instant::now() });
    }

    /// Notes on the cached row at `key` (if it is still there) that its token was used at `at`,
    /// as the `last_used` write queued for it will say once written: without it, every request
    /// until the row is read again would find `last_used` old and ask the write queue again.
    /// The row keeps its age, so the store is read as often as before.
    pub fn note_used(&self, key: &CacheKey, at: time::OffsetDateTime) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = entries.get_mut(key) {
            let mut record = TokenRecord::clone(&entry.record);
            record.token.last_used = Some(at);
            entry.record = Arc::new(record);
        }
    }

    /// A fresh copy of a user, if there is one.
    pub fn user(&self, id: i64) -> Option<Arc<User>> {
        let users = self.users.read().unwrap_or_else(|p| p.into_inner());
        users.get(&id).filter(|e| e.fetched.elapsed() < self.ttl).map(|e| e.user.clone())
    }

    /// Remembers a user read from the store, on the terms of [`Self::insert`].
    pub fn insert_user(&self, user: Arc<User>, generation: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut users = self.users.write().unwrap_or_else(|p| p.into_inner());
        if self.generation() != generation || !make_room(&mut users, self.ttl, |e| e.fetched) {
            return;
        }
        users.insert(user.id, UserEntry { user, fetched: Instant::now() });
    }

    /// Drops the entry of one token.
    pub fn invalidate_token(&self, token_id: i64) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, e| e.record.token.id != token_id);
    }

    /// Drops a user and the entries of every token of theirs.
    pub fn invalidate_user(&self, user_id: i64) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, e| e.record.token.user_id != user_id);
        drop(entries);
        self.users.write().unwrap_or_else(|p| p.into_inner()).remove(&user_id);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
        drop(entries);
        self.users.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Applies one change notification.
    pub fn apply(&self, change: Change) {
        match change {
            Change::Token(id) => self.invalidate_token(id),
            Change::User(id) => self.invalidate_user(id),
            Change::Resync => self.clear(),
        }
    }

    /// Token entries held (fresh or not).
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The operations' changes drop what the cache holds of them at once.
impl nbtoken_manage::Announce for TokenCache {
    fn token_changed(&self, id: i64) {
        self.invalidate_token(id);
    }

    fn user_changed(&self, id: i64) {
        self.invalidate_user(id);
    }
}

/// Whether `map` has room for one more entry, after dropping expired ones if it is full.
/// A full map of fresh entries takes nothing new (no eviction churn under a key-spraying attack).
fn make_room<K, V>(map: &mut HashMap<K, V>, ttl: Duration, fetched: impl Fn(&V) -> Instant) -> bool {
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, v| fetched(v).elapsed() < ttl);
    }
    map.len() < MAX_ENTRIES
}

/// Follows the store's change feed (PostgreSQL) for as long as the server runs.
/// On any error the cache is cleared (notifications may have been missed) and
/// the listener is re-established after a pause.
pub async fn follow_changes<S: Store>(store: S, cache: Arc<TokenCache>) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match store.changes().await {
            Ok(None) => return,
            Ok(Some(mut listener)) => {
                // Anything that changed while we were not listening is unknown.
                cache.clear();
                backoff = Duration::from_millis(250);
                loop {
                    match listener.recv().await {
                        Ok(change) => cache.apply(change),
                        Err(e) => {
                            tracing::warn!(error = %e, "change feed lost; cache cleared, reconnecting");
                            cache.clear();
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for changes; cache cleared, retrying");
                cache.clear();
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use nbtoken_core::{PepperId, SecretString, StoredCredential, StoredToken, TokenKey};

    use super::*;

    fn record(id: i64, user_id: i64) -> Arc<TokenRecord> {
        let ring = nbtoken_core::PepperRing::new([(
            PepperId::new(1).unwrap(),
            SecretString::from("p".repeat(50).as_str()),
        )])
        .unwrap();
        let (pepper_id, digest) = ring.hash_new("s").unwrap();
        let credential = StoredCredential::v2(TokenKey::generate().unwrap(), pepper_id, digest);
        Arc::new(TokenRecord {
            token: StoredToken::new(id, user_id, credential),
            description: String::new(),
            created: time::OffsetDateTime::now_utc(),
            username: "u".into(),
            user_active: true,
            last_used_ip: None,
        })
    }

    #[test]
    fn a_noted_use_shows_in_the_cached_row_and_leaves_its_age() {
        let c = TokenCache::new(Duration::from_millis(300));
        let key = CacheKey::v2("AbCdEfGhIjKa").unwrap();
        let at = time::OffsetDateTime::now_utc();
        // Nothing cached: nothing to note, and nothing is added.
        c.note_used(&key, at);
        assert!(c.get(&key).is_none());
        c.insert(key, record(1, 10), 0);
        assert_eq!(c.get(&key).unwrap().token.last_used, None);
        c.note_used(&key, at);
        let row = c.get(&key).unwrap();
        assert_eq!((row.token.last_used, row.token.id, row.username.as_str()), (Some(at), 1, "u"));
        // Noting a use does not make a row fresh again: it expires when it would have.
        std::thread::sleep(Duration::from_millis(350));
        c.note_used(&key, at);
        assert!(c.get(&key).is_none());
    }

    #[test]
    fn entries_expire_and_invalidate() {
        let c = TokenCache::new(Duration::from_secs(60));
        c.insert(CacheKey::v2("AbCdEfGhIjKa").unwrap(), record(1, 10), 0);
        c.insert(CacheKey::v2("AbCdEfGhIjKb").unwrap(), record(2, 10), 0);
        c.insert(CacheKey::v2("AbCdEfGhIjKc").unwrap(), record(3, 11), 0);
        c.insert(CacheKey::v1("plain"), record(4, 12), 0);
        assert!(c.get(&CacheKey::v2("AbCdEfGhIjKa").unwrap()).is_some());
        assert!(c.get(&CacheKey::v1("plain")).is_some());
        assert!(c.get(&CacheKey::v1("other")).is_none());
        // Only well-formed keys have a cache key (no token can have another).
        assert!(CacheKey::v2("short").is_none() && CacheKey::v2("AbCdEfGhIjK!").is_none());
        assert!(CacheKey::v2("AbCdEfGhIjKaX").is_none());
        c.apply(Change::Token(1));
        assert!(c.get(&CacheKey::v2("AbCdEfGhIjKa").unwrap()).is_none());
        c.apply(Change::User(10));
        assert!(c.get(&CacheKey::v2("AbCdEfGhIjKb").unwrap()).is_none());
        assert!(c.get(&CacheKey::v2("AbCdEfGhIjKc").unwrap()).is_some());
        c.apply(Change::Resync);
        assert!(c.is_empty());
    }

    #[test]
    fn ttl_bounds_staleness() {
        let c = TokenCache::new(Duration::from_millis(30));
        c.insert(CacheKey::v2("AbCdEfGhIjKa").unwrap(), record(1, 1), 0);
        assert!(c.get(&CacheKey::v2("AbCdEfGhIjKa").unwrap()).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(c.get(&CacheKey::v2("AbCdEfGhIjKa").unwrap()).is_none());
        let off = TokenCache::new(Duration::ZERO);
        off.insert(CacheKey::v2("AbCdEfGhIjKa").unwrap(), record(1, 1), 0);
        assert!(off.is_empty());
    }

    fn user(id: i64) -> Arc<User> {
        Arc::new(User {
            id,
            username: format!("u{id}"),
            password_hash: None,
            first_name: String::new(),
            last_name: String::new(),
            email: String::new(),
            is_active: true,
            is_superuser: false,
            can_grant_tokens: false,
            date_joined: time::OffsetDateTime::now_utc(),
            last_login: None,
        })
    }

    #[test]
    fn users_are_cached_until_their_user_changes() {
        let c = TokenCache::new(Duration::from_secs(60));
        c.insert_user(user(10), c.generation());
        c.insert_user(user(11), c.generation());
        assert_eq!(c.user(10).unwrap().username, "u10");
        c.apply(Change::User(10));
        assert!(c.user(10).is_none());
        assert!(c.user(11).is_some());
        c.apply(Change::Resync);
        assert!(c.user(11).is_none());
        let off = TokenCache::new(Duration::ZERO);
        off.insert_user(user(1), off.generation());
        assert!(off.user(1).is_none());
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_kept() {
        let c = TokenCache::new(Duration::from_secs(60));
        // Read started, then the token (or its user) changed, then the read finished.
        let before = c.generation();
        c.invalidate_token(1);
        c.insert(CacheKey::v2("AbCdEfGhIjKa").unwrap(), record(1, 10), before);
        assert!(c.get(&CacheKey::v2("AbCdEfGhIjKa").unwrap()).is_none());
        let before = c.generation();
        c.apply(Change::User(10));
        c.insert_user(user(10), before);
        assert!(c.user(10).is_none());
        // Without a change in between, both are kept.
        let now = c.generation();
        c.insert(CacheKey::v2("AbCdEfGhIjKa").unwrap(), record(1, 10), now);
        c.insert_user(user(10), now);
        assert!(c.get(&CacheKey::v2("AbCdEfGhIjKa").unwrap()).is_some() && c.user(10).is_some());
    }
}
