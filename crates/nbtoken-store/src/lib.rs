//! Persistence for nbtoken: the [`Store`] trait and its backends.
//!
//! Rows come back as core types ([`nbtoken_core::StoredToken`]), parsed once
//! at this boundary: a digest that is not 64 hex characters or a v1 row
//! without a plaintext is reported as [`StoreError::Corrupt`], never passed on.
//! A v2 secret never reaches this crate: only its digest does.
//!
//! Backends: [`SqliteStore`] (embedded default) and [`PgStore`] (several
//! server instances on one database) are one [`SqlStore`] over two dialects
//! (see [`sql`] for the seam); [`NetBoxStore`] reads NetBox's own tables
//! through the PostgreSQL one and leaves their management to NetBox; and
//! [`AnyStore`] picks one of them from a database URL and a [`StoreKind`] at
//! run time. A server needs nothing beyond the [`Store`]
//! trait: health, preflight, closing and the change feed are on it too.

#![forbid(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::net::IpAddr;

use nbtoken_core::{AllowedIps, Digest, PepperId, PreviousSecret, StoredCredential, StoredToken};
use time::OffsetDateTime;

/// Runs a sqlx query method (`query.fetch_all`) inside the transaction if there is one, else on
/// the pool: how each dialect runs the statements [`sql::SqlStore`] builds.
macro_rules! on_tx_or_pool {
    ($tx:expr, $pool:expr, $query:ident ( $($arg:expr),* ) ? . $method:ident) => {{
        let query = $query($($arg),*)?;
        match $tx {
            Some(tx) => query.$method(&mut **tx).await,
            None => query.$method($pool).await,
        }
    }};
}

mod any;
pub mod budget;
pub mod changes;
pub mod health;
pub mod netbox;
pub mod postgres;
pub mod sql;
pub mod sqlite;

pub use any::{AnyStore, StoreKind};
pub use budget::{FailureCounts, FailureEstimate};
pub use changes::{Change, ChangeListener};
pub use health::Health;
pub use netbox::{NetBoxOptions, NetBoxStore};
pub use postgres::{PgOptions, PgStore};
pub use sql::SqlStore;
pub use sqlite::SqliteStore;

/// Errors from a store. Messages never contain secret material.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The row does not exist.
    NotFound,
    /// A unique value is taken; the string names the field (`username`, `key`, `plaintext`).
    Conflict(&'static str),
    /// A referenced row (such as the token's user) does not exist.
    MissingReference(&'static str),
    /// The database cannot be reached or answered with an I/O error.
    Unavailable(String),
    /// A row does not satisfy the invariants the schema should have enforced,
    /// or the database file itself is damaged (or empty).
    Corrupt(String),
    /// The database URL or options are not usable.
    Config(String),
    /// Any other database error (its text, which never holds secrets).
    Database(String),
    /// The store does not do this write: the text says why and what to use instead
    /// (on a NetBox database, token and user management stays NetBox's).
    ReadOnly(&'static str),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound => f.write_str("not found"),
            StoreError::Conflict(field) => write!(f, "a row with this {field} already exists"),
            StoreError::MissingReference(what) => write!(f, "the referenced {what} does not exist"),
            StoreError::Unavailable(e) => write!(f, "database unavailable: {e}"),
            StoreError::Corrupt(e) => write!(f, "the database is corrupt: {e}"),
            StoreError::Config(e) => write!(f, "database configuration: {e}"),
            StoreError::Database(e) => write!(f, "database error: {e}"),
            StoreError::ReadOnly(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for StoreError {}

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A user account. (`Debug` shows whether a password hash is set, never the hash.)
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Unique login name.
    pub username: String,
    /// argon2id PHC string; `None` means password login is disabled.
    pub password_hash: Option<String>,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// E-mail address.
    pub email: String,
    /// Inactive users cannot authenticate.
    pub is_active: bool,
    /// Superusers manage users and every token.
    pub is_superuser: bool,
    /// May create tokens for other users.
    pub can_grant_tokens: bool,
    /// When the account was created.
    pub date_joined: OffsetDateTime,
    /// Last password login (provision).
    pub last_login: Option<OffsetDateTime>,
}

/// A user to create. (`Debug` leaves the password hash out.)
#[derive(Clone, Default)]
pub struct NewUser {
    /// Unique login name.
    pub username: String,
    /// argon2id PHC string, if password login is allowed.
    pub password_hash: Option<String>,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// E-mail address.
    pub email: String,
    /// Active flag.
    pub is_active: bool,
    /// Superuser flag.
    pub is_superuser: bool,
    /// Grant-token permission.
    pub can_grant_tokens: bool,
}

/// Changes to a user; `None` leaves a field as it is. (`Debug` leaves the password hash out.)
#[derive(Clone, Default)]
pub struct UserPatch {
    /// New username.
    pub username: Option<String>,
    /// New password hash (`Some(None)` disables password login).
    pub password_hash: Option<Option<String>>,
    /// New first name.
    pub first_name: Option<String>,
    /// New last name.
    pub last_name: Option<String>,
    /// New e-mail.
    pub email: Option<String>,
    /// New active flag.
    pub is_active: Option<bool>,
    /// New superuser flag.
    pub is_superuser: Option<bool>,
    /// New grant-token permission.
    pub can_grant_tokens: Option<bool>,
    /// New last-login time.
    pub last_login: Option<OffsetDateTime>,
}

/// What `Debug` shows of a password hash: whether there is one.
fn hash_shown(hash: Option<&String>) -> &'static str {
    if hash.is_some() {
        "[set]"
    } else {
        "[none]"
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &hash_shown(self.password_hash.as_ref()))
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("email", &self.email)
            .field("is_active", &self.is_active)
            .field("is_superuser", &self.is_superuser)
            .field("can_grant_tokens", &self.can_grant_tokens)
            .field("date_joined", &self.date_joined)
            .field("last_login", &self.last_login)
            .finish()
    }
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password_hash", &hash_shown(self.password_hash.as_ref()))
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("email", &self.email)
            .field("is_active", &self.is_active)
            .field("is_superuser", &self.is_superuser)
            .field("can_grant_tokens", &self.can_grant_tokens)
            .finish()
    }
}

impl fmt::Debug for UserPatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserPatch")
            .field("username", &self.username)
            .field("password_hash", &self.password_hash.as_ref().map(|h| hash_shown(h.as_ref())))
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("email", &self.email)
            .field("is_active", &self.is_active)
            .field("is_superuser", &self.is_superuser)
            .field("can_grant_tokens", &self.can_grant_tokens)
            .field("last_login", &self.last_login)
            .finish()
    }
}

/// Filters for listing users; all that are set must hold.
#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    /// Only these ids.
    pub ids: Vec<i64>,
    /// Only these usernames (exact).
    pub usernames: Vec<String>,
    /// Only active (true) or inactive (false) users.
    pub is_active: Option<bool>,
}

/// A window of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Rows to return at most.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

/// A token row with what the API shows beside it.
#[derive(Clone, Debug)]
pub struct TokenRecord {
    /// The fields the verification decision reads.
    pub token: StoredToken,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created: OffsetDateTime,
    /// Owner's username.
    pub username: String,
    /// Whether the owner is active.
    pub user_active: bool,
    /// The client address of the last recorded use (written with `last_used`).
    pub last_used_ip: Option<IpAddr>,
}

impl From<&TokenRecord> for nbtoken_core::migrate::TokenInfo {
    /// The token as the migration planner and the audit see it: the display form, never a secret.
    fn from(r: &TokenRecord) -> Self {
        let t = &r.token;
        let (display, pepper_id) = match &t.credential {
            StoredCredential::V1 { plaintext } => (plaintext.partial(), None),
            StoredCredential::V2 { key, pepper_id, .. } => (key.as_str().to_owned(), Some(*pepper_id)),
        };
        Self {
            id: t.id,
            version: t.version(),
            user_id: t.user_id,
            username: r.username.clone(),
            display,
            description: r.description.clone(),
            created: r.created,
            expires: t.expires,
            last_used: t.last_used,
            last_used_ip: r.last_used_ip,
            last_used_user_agent: None,
            enabled: t.enabled,
            write_enabled: t.write_enabled,
            allowed_ips: t.allowed_ips.clone(),
            pepper_id,
        }
    }
}

/// A token to create. For v2 the digest is stored, never the secret.
#[derive(Clone, Debug)]
pub struct NewToken {
    /// Owner.
    pub user_id: i64,
    /// v1 plaintext or v2 key/pepper/digest (`previous` must be `None`).
    pub credential: StoredCredential,
    /// Free text (at most 200 characters, checked by the caller).
    pub description: String,
    /// Expiry.
    pub expires: Option<OffsetDateTime>,
    /// Enabled flag.
    pub enabled: bool,
    /// Write flag.
    pub write_enabled: bool,
    /// Source networks allowed.
    pub allowed_ips: AllowedIps,
}

/// Changes to a token; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct TokenPatch {
    /// New description.
    pub description: Option<String>,
    /// New expiry (`Some(None)` removes it).
    pub expires: Option<Option<OffsetDateTime>>,
    /// New enabled flag.
    pub enabled: Option<bool>,
    /// New write flag.
    pub write_enabled: Option<bool>,
    /// New allowed networks.
    pub allowed_ips: Option<AllowedIps>,
    /// New owner.
    pub user_id: Option<i64>,
}

/// Filters for listing tokens; all that are set must hold.
#[derive(Clone, Debug, Default)]
pub struct TokenFilter {
    /// Only these ids.
    pub ids: Vec<i64>,
    /// Only tokens of these users.
    pub user_ids: Vec<i64>,
    /// Only tokens of users with these usernames.
    pub usernames: Vec<String>,
    /// Only this version.
    pub version: Option<nbtoken_core::TokenVersion>,
    /// Only enabled (true) or disabled (false) tokens.
    pub enabled: Option<bool>,
    /// Only write-enabled (true) or read-only (false) tokens.
    pub write_enabled: Option<bool>,
    /// Only these v2 keys.
    pub keys: Vec<String>,
    /// Only tokens hashed with this pepper.
    pub pepper_id: Option<PepperId>,
    /// Only tokens whose description is exactly one of these (case-sensitive, as NetBox's
    /// `?description=`). `None`: any description; `Some` of an empty list: no token at all.
    pub descriptions: Option<Vec<String>>,
}

/// The most characters of a User-Agent a store keeps (and a [`Touch`] carries).
pub const USER_AGENT_MAX: usize = 512;

/// A deferred write after a successful authentication.
#[derive(Clone, Debug)]
pub struct Touch {
    /// The token.
    pub token_id: i64,
    /// The new `last_used`.
    pub at: OffsetDateTime,
    /// The client address, stored as `last_used_ip` whenever `at` moves `last_used` forward.
    pub ip: Option<IpAddr>,
    /// A digest under a newer pepper to store instead of the old one.
    pub rehash: Option<(PepperId, Digest)>,
    /// The digest the re-hash replaces, as the request read it. A store that guards
    /// re-hashes ([`NetBoxStore`]) writes one only while the row still holds this digest,
    /// so a change made meanwhile by another program is never overwritten.
    pub rehash_from: Option<Digest>,
    /// The client's `User-Agent`, kept where the store records who used a token.
    pub user_agent: Option<String>,
}

impl Touch {
    /// A use of `token_id` at `at` and nothing more: no address, no re-hash, no `User-Agent`.
    pub fn at(token_id: i64, at: OffsetDateTime) -> Touch {
        Touch { token_id, at, ip: None, rehash: None, rehash_from: None, user_agent: None }
    }
}

/// How many v2 tokens depend on one pepper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PepperUsage {
    /// The pepper id.
    pub pepper_id: PepperId,
    /// v2 tokens whose digest (or previous digest in an overlap) uses it.
    pub tokens: u64,
    /// The latest `last_used` among them.
    pub last_used: Option<OffsetDateTime>,
}

/// How many times one v1 token authenticated on one UTC day (counted by the server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayUses {
    /// The token.
    pub token_id: i64,
    /// The UTC day.
    pub day: time::Date,
    /// Successful authentications that day.
    pub uses: u64,
}

/// Days of per-day v1 use counts a store keeps: older ones are dropped as counts are added.
pub const USE_DAYS_KEPT: u32 = 400;

/// Persistence for users and tokens. Every backend passes the same test suite.
///
/// Futures are `Send` so the server can hold a store in shared state.
pub trait Store: Send + Sync + 'static {
    /// Creates a user. `Conflict("username")` if the name is taken.
    fn create_user(&self, user: NewUser) -> impl Future<Output = Result<User>> + Send;
    /// A user by id.
    fn user(&self, id: i64) -> impl Future<Output = Result<Option<User>>> + Send;
    /// A user by username.
    fn user_by_name(&self, username: &str) -> impl Future<Output = Result<Option<User>>> + Send;
    /// Matching users ordered by username, and how many match in all.
    fn list_users(
        &self,
        filter: &UserFilter,
        page: Page,
    ) -> impl Future<Output = Result<(u64, Vec<User>)>> + Send;
    /// Changes a user. `NotFound` if it does not exist.
    fn update_user(&self, id: i64, patch: UserPatch) -> impl Future<Output = Result<User>> + Send;
    /// Deletes a user and, by cascade, their tokens. `NotFound` if absent.
    fn delete_user(&self, id: i64) -> impl Future<Output = Result<()>> + Send;

    /// Creates a token. `Conflict("key")` / `Conflict("plaintext")` on a duplicate,
    /// `MissingReference("user")` for an unknown user.
    fn create_token(&self, token: NewToken) -> impl Future<Output = Result<TokenRecord>> + Send;
    /// A token by id.
    fn token(&self, id: i64) -> impl Future<Output = Result<Option<TokenRecord>>> + Send;
    /// The v2 token with this key (the authentication lookup).
    fn token_by_key(&self, key: &str) -> impl Future<Output = Result<Option<TokenRecord>>> + Send;
    /// The v1 token with this plaintext (the authentication lookup).
    fn token_by_plaintext(&self, plaintext: &str)
        -> impl Future<Output = Result<Option<TokenRecord>>> + Send;
    /// Matching tokens, newest first (`created` desc, then id desc), and how many match in all.
    fn list_tokens(
        &self,
        filter: &TokenFilter,
        page: Page,
    ) -> impl Future<Output = Result<(u64, Vec<TokenRecord>)>> + Send;
    /// Changes a token. `NotFound` if it does not exist.
    fn update_token(&self, id: i64, patch: TokenPatch) -> impl Future<Output = Result<TokenRecord>> + Send;
    /// Deletes a token. `NotFound` if absent.
    fn delete_token(&self, id: i64) -> impl Future<Output = Result<()>> + Send;
    /// Replaces a v2 token's digest (rotation), keeping the old one as `previous`
    /// until its deadline. `NotFound` if absent or not v2.
    fn rotate_token(
        &self,
        id: i64,
        pepper_id: PepperId,
        digest: Digest,
        previous: Option<PreviousSecret>,
    ) -> impl Future<Output = Result<TokenRecord>> + Send;
    /// Applies deferred `last_used` and re-hash writes in one transaction.
    /// A `last_used` never moves backwards; `last_used_ip` is written with it
    /// (the address of the latest touch), and only when `last_used` moves
    /// forward. Tokens deleted meanwhile are skipped.
    fn apply_touches(&self, touches: &[Touch]) -> impl Future<Output = Result<()>> + Send;
    /// Adds per-day v1 use counts (`uses = uses + n` for each token and day; a token deleted
    /// meanwhile is skipped) and drops the counts older than [`USE_DAYS_KEPT`] days.
    fn add_v1_uses(&self, counts: &[DayUses]) -> impl Future<Output = Result<()>> + Send;
    /// The v1 uses per UTC day of the last `days` days (today included), of every token that
    /// still exists or only of `token_id`: ascending by day, days without a use left out
    /// (each [`DayUses::token_id`] is that token's, or 0 for the total).
    fn v1_uses_per_day(
        &self,
        days: u32,
        token_id: Option<i64>,
    ) -> impl Future<Output = Result<Vec<DayUses>>> + Send;
    /// Per pepper id, how many v2 tokens use it and when one was last used.
    fn pepper_usage(&self) -> impl Future<Output = Result<Vec<PepperUsage>>> + Send;
    /// Cheap round trip, for health checks.
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;

    /// `"sqlite"`, `"postgres"` or `"netbox"`, for logs, metrics and health output.
    fn backend_name(&self) -> &'static str;

    /// Why this store refuses to create, change or delete users and tokens, if it does (a store
    /// on NetBox's tables leaves their management to NetBox); `None` for nbtoken's own.
    fn management_refused(&self) -> Option<&'static str> {
        None
    }

    /// Whether the store writes re-hashes under a newer pepper (a server asks for none
    /// otherwise: each would be dropped). nbtoken's own store always does.
    fn rehashes(&self) -> bool {
        true
    }

    /// What the store recorded about these tokens' uses beyond `last_used` (where and by what
    /// they were last used, v1 use counts); a store that records none answers none.
    fn token_uses(&self, _ids: &[i64]) -> impl Future<Output = Result<Vec<netbox::TokenUse>>> + Send {
        async { Ok(Vec::new()) }
    }
    /// Whether the database answers and, on SQLite, can write (a write probe
    /// run at most every [`health::WRITE_PROBE_INTERVAL`]); on PostgreSQL,
    /// since when it has been down while the store's circuit breaker is open.
    /// For `/healthz`: cheap enough for every health request.
    fn health(&self) -> impl Future<Output = Health> + Send;
    /// What a server checks before it starts (and before a first-start
    /// bootstrap): on SQLite, that the file passes `PRAGMA quick_check` and a
    /// write commits; on PostgreSQL, that a round trip works. Errors say what
    /// is wrong with which file or server.
    fn preflight(&self) -> impl Future<Output = Result<()>> + Send;
    /// Closes every connection; later calls fail with [`StoreError::Unavailable`].
    fn close(&self) -> impl Future<Output = ()> + Send;
    /// A feed of the changes any process (another instance, the CLI, a
    /// hand-written statement) makes to tokens and users: PostgreSQL's
    /// notifications, SQLite's polled change log. `Ok(None)` from a backend
    /// without one: rely on a short cache TTL there.
    fn changes(&self) -> impl Future<Output = Result<Option<ChangeListener>>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_password_hash() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_owned();
        let user = User {
            id: 1,
            username: "ann".into(),
            password_hash: Some(hash.clone()),
            first_name: String::new(),
            last_name: String::new(),
            email: String::new(),
            is_active: true,
            is_superuser: false,
            can_grant_tokens: false,
            date_joined: OffsetDateTime::UNIX_EPOCH,
            last_login: None,
        };
        let new = NewUser { username: "ann".into(), password_hash: Some(hash.clone()), ..Default::default() };
        let patch = UserPatch { password_hash: Some(Some(hash.clone())), ..Default::default() };
        for shown in [format!("{user:?}"), format!("{new:?}"), format!("{patch:?}")] {
            assert!(!shown.contains("argon2") && !shown.contains("aGFzaGhhc2hoYXNo"), "{shown}");
            assert!(
                shown.contains("[set]") && shown.contains("ann") || shown.starts_with("UserPatch"),
                "{shown}"
            );
        }
        assert!(format!("{patch:?}").contains("Some(\"[set]\")"));
    }
}
