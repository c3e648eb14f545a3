//! Change notifications: how one server instance learns that another changed a token or user.
//!
//! PostgreSQL triggers (`migrations/postgres/0002_change_notify.sql`) send a
//! notification for every change that matters to authentication. SQLite has
//! no such feed across processes; callers rely on their cache TTL there.

use sqlx::postgres::PgListener;

use crate::postgres::map_listen_err;
use crate::{PgStore, Result};

/// The channel the triggers notify on.
pub const CHANNEL: &str = "nbtoken_changes";

/// A change worth dropping cached rows for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A token changed or was deleted.
    Token(i64),
    /// A user changed (active flag) or was deleted.
    User(i64),
    /// The connection dropped; notifications may have been missed, so forget everything.
    Resync,
}

/// A subscription to [`Change`]s.
pub struct ChangeListener {
    listener: PgListener,
    schema: String,
}

impl std::fmt::Debug for ChangeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeListener").field("schema", &self.schema).finish()
    }
}

impl ChangeListener {
    pub(crate) async fn start(store: &PgStore) -> Result<Self> {
        let mut listener = PgListener::connect_with(store.pool()).await.map_err(map_listen_err)?;
        listener.listen(CHANNEL).await.map_err(map_listen_err)?;
        let schema = match store.schema() {
            Some(s) => s.to_owned(),
            None => {
                let row: (String,) = sqlx::query_as("SELECT current_schema()")
                    .fetch_one(store.pool())
                    .await
                    .map_err(map_listen_err)?;
                row.0
            }
        };
        Ok(Self { listener, schema })
    }

    /// The next change for this store's schema. After a lost connection it
    /// answers [`Change::Resync`] once and reconnects on the next call; an
    /// error means the database cannot be reached right now.
    pub async fn recv(&mut self) -> Result<Change> {
        loop {
            match self.listener.try_recv().await.map_err(map_listen_err)? {
                None => return Ok(Change::Resync),
                Some(n) => {
                    if let Some(change) = parse(n.payload(), &self.schema) {
                        return Ok(change);
                    }
                }
            }
        }
    }
}

fn parse(payload: &str, schema: &str) -> Option<Change> {
    let rest = payload.strip_prefix(schema)?.strip_prefix(':')?;
    let (kind, id) = rest.split_once(':')?;
    let id = id.parse().ok()?;
    match kind {
        "token" => Some(Change::Token(id)),
        "user" => Some(Change::User(id)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_filtered_by_schema() {
        assert_eq!(parse("public:token:5", "public"), Some(Change::Token(5)));
        assert_eq!(parse("public:user:7", "public"), Some(Change::User(7)));
        assert_eq!(parse("other:token:5", "public"), None);
        assert_eq!(parse("publicx:token:5", "public"), None);
        assert_eq!(parse("public:token:x", "public"), None);
        assert_eq!(parse("public:group:1", "public"), None);
    }
}
