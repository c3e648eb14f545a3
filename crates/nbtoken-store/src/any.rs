//! [`AnyStore`]: the backend chosen at run time from a database URL and a [`StoreKind`].

use nbtoken_core::{Digest, PepperId, PreviousSecret};

use crate::{
    NetBoxOptions, NetBoxStore, NewToken, NewUser, Page, PepperUsage, PgStore, Result, SqliteStore, Store,
    StoreError, TokenFilter, TokenPatch, TokenRecord, Touch, User, UserFilter, UserPatch,
};

/// A store of any backend, chosen by [`AnyStore::connect`] from the URL's scheme (and by
/// [`AnyStore::connect_as`] from a [`StoreKind`]).
///
/// Cloning is cheap and shares the backend's connection pool.
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// An SQLite database file (or memory).
    Sqlite(SqliteStore),
    /// A PostgreSQL database.
    Postgres(PgStore),
    /// NetBox's own database (read-only for management).
    NetBox(NetBoxStore),
}

/// Whose tables a store serves (`NBTOKEN_STORE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreKind {
    /// nbtoken's own schema, on SQLite or PostgreSQL (the default).
    #[default]
    Nbtoken,
    /// NetBox's own tables in NetBox's PostgreSQL database.
    NetBox {
        /// Re-hash tokens under the newest pepper in NetBox's rows (`NBTOKEN_REHASH=on`).
        rehash: bool,
    },
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

    /// Connects to the store of `kind`: as [`AnyStore::connect`] for nbtoken's own schema,
    /// a [`NetBoxStore`] (which needs a PostgreSQL URL) for NetBox's.
    pub async fn connect_as(url: &str, kind: StoreKind) -> Result<Self> {
        match kind {
            StoreKind::Nbtoken => Self::connect(url).await,
            StoreKind::NetBox { rehash } => match backend_of(url)? {
                Backend::Postgres => {
                    NetBoxStore::connect(url, NetBoxOptions::new().rehash(rehash)).await.map(Self::NetBox)
                }
                Backend::Sqlite => Err(StoreError::Config(
                    "NBTOKEN_STORE=netbox needs the PostgreSQL URL of NetBox's database \
                     (postgres://…), not an SQLite file"
                        .to_owned(),
                )),
            },
        }
    }
}

/// `From` each backend's store, into the variant that holds it.
macro_rules! from_backend {
    ($($variant:ident($store:ty)),* $(,)?) => {$(
        impl From<$store> for AnyStore {
            fn from(store: $store) -> Self {
                Self::$variant(store)
            }
        }
    )*};
}

from_backend!(Sqlite(SqliteStore), Postgres(PgStore), NetBox(NetBoxStore));

/// Calls the same method on whichever backend `self` holds.
macro_rules! delegate {
    (sync $self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call,
            AnyStore::Postgres($store) => $call,
            AnyStore::NetBox($store) => $call,
        }
    };
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call.await,
            AnyStore::Postgres($store) => $call.await,
            AnyStore::NetBox($store) => $call.await,
        }
    };
}

/// `Store for AnyStore`, every listed (async) method a `delegate!` to the same method of
/// the backend: the list is the trait's, so a method the trait gains must be added here.
macro_rules! delegate_store {
    ($(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) $(-> $ret:ty)?;)*) => {
        impl Store for AnyStore {
            $(
                async fn $name(&self $(, $arg: $ty)*) $(-> $ret)? {
                    delegate!(self, s => s.$name($($arg),*))
                }
            )*

            fn backend_name(&self) -> &'static str {
                delegate!(sync self, s => s.backend_name())
            }

            fn management_refused(&self) -> Option<&'static str> {
                delegate!(sync self, s => s.management_refused())
            }

            fn rehashes(&self) -> bool {
                delegate!(sync self, s => s.rehashes())
            }
        }
    };
}

delegate_store! {
    fn create_user(&self, user: NewUser) -> Result<User>;
    fn user(&self, id: i64) -> Result<Option<User>>;
    fn user_by_name(&self, username: &str) -> Result<Option<User>>;
    fn list_users(&self, filter: &UserFilter, page: Page) -> Result<(u64, Vec<User>)>;
    fn update_user(&self, id: i64, patch: UserPatch) -> Result<User>;
    fn delete_user(&self, id: i64) -> Result<()>;
    fn create_token(&self, token: NewToken) -> Result<TokenRecord>;
    fn token(&self, id: i64) -> Result<Option<TokenRecord>>;
    fn token_by_key(&self, key: &str) -> Result<Option<TokenRecord>>;
    fn token_by_plaintext(&self, plaintext: &str) -> Result<Option<TokenRecord>>;
    fn list_tokens(&self, filter: &TokenFilter, page: Page) -> Result<(u64, Vec<TokenRecord>)>;
    fn update_token(&self, id: i64, patch: TokenPatch) -> Result<TokenRecord>;
    fn delete_token(&self, id: i64) -> Result<()>;
    fn rotate_token(&self, id: i64, pepper_id: PepperId, digest: Digest, previous: Option<PreviousSecret>)
        -> Result<TokenRecord>;
    fn apply_touches(&self, touches: &[Touch]) -> Result<()>;
    fn add_v1_uses(&self, counts: &[crate::DayUses]) -> Result<()>;
    fn v1_uses_per_day(&self, days: u32, token_id: Option<i64>) -> Result<Vec<crate::DayUses>>;
    fn pepper_usage(&self) -> Result<Vec<PepperUsage>>;
    fn ping(&self) -> Result<()>;
    fn token_uses(&self, ids: &[i64]) -> Result<Vec<crate::netbox::TokenUse>>;
    fn health(&self) -> crate::Health;
    fn preflight(&self) -> Result<()>;
    fn close(&self);
    fn changes(&self) -> Result<Option<crate::ChangeListener>>;
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
