//! [`AnyStore`]: the backend chosen at run time from a database URL.

use nbtoken_core::{Digest, PepperId, PreviousSecret};

use crate::{
    NewToken, NewUser, Page, PepperUsage, PgStore, Result, SqliteStore, Store, StoreError, TokenFilter,
    TokenPatch, TokenRecord, Touch, User, UserFilter, UserPatch,
};

/// A store of either backend, chosen by [`AnyStore::connect`] from the URL's scheme.
///
/// Cloning is cheap and shares the backend's connection pool.
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// An SQLite database file (or memory).
    Sqlite(SqliteStore),
    /// A PostgreSQL database.
    Postgres(PgStore),
}

/// The backend a database URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// `postgres://…` / `postgresql://…` → PostgreSQL; `sqlite:…` or a bare path → SQLite.
fn backend_of(url: &str) -> Result<Backend> {
    if url.trim().is_empty() {
        return Err(StoreError::Config("the database URL is empty".to_owned()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Backend::Postgres);
    }
    if url.starts_with("sqlite:") {
        return Ok(Backend::Sqlite);
    }
    // Some other `scheme://`: name only the scheme, since the rest may hold a password.
    if let Some((scheme, _)) = url.split_once("://") {
        let is_scheme = scheme.len() > 1
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if is_scheme {
            return Err(StoreError::Config(format!(
                "unsupported database URL scheme `{scheme}`: use postgres://…, postgresql://…, \
                 sqlite://… or a file path for SQLite"
            )));
        }
    }
    Ok(Backend::Sqlite)
}

impl AnyStore {
    /// A feed of changes made by other instances, where the backend has one
    /// (PostgreSQL). `Ok(None)` for SQLite: rely on a short cache TTL there.
    pub async fn listen(&self) -> Result<Option<crate::ChangeListener>> {
        match self {
            AnyStore::Sqlite(_) => Ok(None),
            AnyStore::Postgres(pg) => pg.listen().await.map(Some),
        }
    }

    /// Connects to the database `url` names and applies its schema.
    ///
    /// `postgres://` and `postgresql://` URLs open a [`PgStore`]; `sqlite:` URLs
    /// and bare file paths open a [`SqliteStore`]; any other `scheme://` is a
    /// [`StoreError::Config`].
    pub async fn connect(url: &str) -> Result<Self> {
        match backend_of(url)? {
            Backend::Postgres => PgStore::connect(url).await.map(Self::Postgres),
            Backend::Sqlite => SqliteStore::connect(url).await.map(Self::Sqlite),
        }
    }

    /// `"sqlite"` or `"postgres"`, for logs, metrics and health output.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Whether the database answers and, on SQLite, can write (a write probe
    /// run at most every [`crate::health::WRITE_PROBE_INTERVAL`]); on
    /// PostgreSQL, since when it has been down while the store's circuit
    /// breaker is open. For `/healthz`: cheap enough for every health request.
    pub async fn health(&self) -> crate::Health {
        match self {
            Self::Sqlite(s) => s.health().await,
            Self::Postgres(s) => s.health().await,
        }
    }

    /// What a server checks before it starts (and before a first-start
    /// bootstrap): on SQLite, that the file passes `PRAGMA quick_check` and a
    /// write commits; on PostgreSQL, that a round trip works. Errors say what
    /// is wrong with which file or server.
    pub async fn preflight(&self) -> Result<()> {
        match self {
            Self::Sqlite(s) => s.preflight().await,
            Self::Postgres(s) => s.ping().await,
        }
    }

    /// Closes every connection; later calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}

impl From<SqliteStore> for AnyStore {
    fn from(store: SqliteStore) -> Self {
        Self::Sqlite(store)
    }
}

impl From<PgStore> for AnyStore {
    fn from(store: PgStore) -> Self {
        Self::Postgres(store)
    }
}

/// Calls the same method on whichever backend `self` holds.
macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call.await,
            AnyStore::Postgres($store) => $call.await,
        }
    };
}

impl Store for AnyStore {
    async fn create_user(&self, user: NewUser) -> Result<User> {
        delegate!(self, s => s.create_user(user))
    }

    async fn user(&self, id: i64) -> Result<Option<User>> {
        delegate!(self, s => s.user(id))
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        delegate!(self, s => s.user_by_name(username))
    }

    async fn list_users(&self, filter: &UserFilter, page: Page) -> Result<(u64, Vec<User>)> {
        delegate!(self, s => s.list_users(filter, page))
    }

    async fn update_user(&self, id: i64, patch: UserPatch) -> Result<User> {
        delegate!(self, s => s.update_user(id, patch))
    }

    async fn delete_user(&self, id: i64) -> Result<()> {
        delegate!(self, s => s.delete_user(id))
    }

    async fn create_token(&self, token: NewToken) -> Result<TokenRecord> {
        delegate!(self, s => s.create_token(token))
    }

    async fn token(&self, id: i64) -> Result<Option<TokenRecord>> {
        delegate!(self, s => s.token(id))
    }

    async fn token_by_key(&self, key: &str) -> Result<Option<TokenRecord>> {
        delegate!(self, s => s.token_by_key(key))
    }

    async fn token_by_plaintext(&self, plaintext: &str) -> Result<Option<TokenRecord>> {
        delegate!(self, s => s.token_by_plaintext(plaintext))
    }

    async fn list_tokens(&self, filter: &TokenFilter, page: Page) -> Result<(u64, Vec<TokenRecord>)> {
        delegate!(self, s => s.list_tokens(filter, page))
    }

    async fn update_token(&self, id: i64, patch: TokenPatch) -> Result<TokenRecord> {
        delegate!(self, s => s.update_token(id, patch))
    }

    async fn delete_token(&self, id: i64) -> Result<()> {
        delegate!(self, s => s.delete_token(id))
    }

    async fn rotate_token(
        &self,
        id: i64,
        pepper_id: PepperId,
        digest: Digest,
        previous: Option<PreviousSecret>,
    ) -> Result<TokenRecord> {
        delegate!(self, s => s.rotate_token(id, pepper_id, digest, previous))
    }

    async fn apply_touches(&self, touches: &[Touch]) -> Result<()> {
        delegate!(self, s => s.apply_touches(touches))
    }

    async fn pepper_usage(&self) -> Result<Vec<PepperUsage>> {
        delegate!(self, s => s.pepper_usage())
    }

    async fn ping(&self) -> Result<()> {
        delegate!(self, s => s.ping())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, expected: std::result::Result<Backend, &str>) {
        match (backend_of(url), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{url}"),
            (Err(StoreError::Config(msg)), Err(part)) => {
                assert!(msg.contains(part), "{url}: {msg}");
                assert!(!msg.contains("secret"), "{url}: the message repeats the URL: {msg}");
            }
            (got, want) => panic!("{url}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn backend_is_chosen_by_scheme() {
        check("postgres://u:secret@db/nbtoken", Ok(Backend::Postgres));
        check("postgresql://db:5432/nbtoken?sslmode=disable", Ok(Backend::Postgres));
        check("sqlite://data/nbtoken.sqlite3?mode=rwc", Ok(Backend::Sqlite));
        check("sqlite::memory:", Ok(Backend::Sqlite));
        check("/var/lib/nbtoken/db.sqlite3", Ok(Backend::Sqlite));
        check("nbtoken.sqlite3", Ok(Backend::Sqlite));
        check("C:\\data\\nbtoken.sqlite3", Ok(Backend::Sqlite));
        check("mysql://u:secret@db/nbtoken", Err("unsupported database URL scheme `mysql`"));
        check("Postgres://u:secret@db/x", Err("`Postgres`"));
        check("", Err("empty"));
        check("   ", Err("empty"));
    }
}
