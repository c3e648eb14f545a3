//! Change notifications: how one server instance learns that another process changed a token or user.
//!
//! On PostgreSQL, triggers (`migrations/postgres/0002_change_notify.sql`) send
//! a notification for every change that matters to authentication. SQLite has
//! no notifications across processes: triggers there
//! (`migrations/sqlite/0004_change_log.sql`) append to a small change log that
//! the listener polls every [`POLL_INTERVAL`], so a CLI write reaches a
//! running server's cache within a second on either backend.

use std::collections::VecDeque;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use sqlx::sqlite::SqlitePool;
use sqlx::Row;

use crate::postgres::map_err as pg_err;
use crate::sqlite::map_err as sqlite_err;
use crate::Result;

/// The channel the triggers notify on.
pub const CHANNEL: &str = "nbtoken_changes";

/// How often an SQLite listener reads the change log.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

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
    source: Source,
}

/// Where changes come from.
enum Source {
    /// PostgreSQL notifications for one schema.
    Notify { listener: PgListener, schema: String },
    /// SQLite's change log, read after the last row seen.
    Poll { pool: SqlitePool, last: i64, pending: VecDeque<Change> },
}

impl std::fmt::Debug for ChangeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Notify { schema, .. } => {
                f.debug_struct("ChangeListener").field("schema", schema).finish()
            }
            Source::Poll { last, .. } => f.debug_struct("ChangeListener").field("after", last).finish(),
        }
    }
}

impl ChangeListener {
    /// Listens on a connection of its own from `pool`'s options, for changes in `schema`
    /// (the connection's current schema when `None`).
    pub(crate) async fn notified(pool: &PgPool, schema: Option<&str>) -> Result<Self> {
        let mut listener = PgListener::connect_with(pool).await.map_err(pg_err)?;
        listener.listen(CHANNEL).await.map_err(pg_err)?;
        let schema = match schema {
            Some(s) => s.to_owned(),
            None => {
                let row: (String,) =
                    sqlx::query_as("SELECT current_schema()").fetch_one(pool).await.map_err(pg_err)?;
                row.0
            }
        };
        Ok(Self { source: Source::Notify { listener, schema } })
    }

    /// Follows SQLite's change log from its current end.
    pub(crate) async fn polled(pool: &SqlitePool) -> Result<Self> {
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM nbtoken_changes")
            .fetch_one(pool)
            .await
            .map_err(sqlite_err)?;
        Ok(Self { source: Source::Poll { pool: pool.clone(), last, pending: VecDeque::new() } })
    }

    /// The next change for this store. After a lost connection (or, on SQLite,
    /// changes pruned from the log before they were read) it answers
    /// [`Change::Resync`] once and carries on; an error means the database
    /// cannot be reached right now.
    pub async fn recv(&mut self) -> Result<Change> {
        match &mut self.source {
            Source::Notify { listener, schema } => loop {
                match listener.try_recv().await.map_err(pg_err)? {
                    None => return Ok(Change::Resync),
                    Some(n) => {
                        if let Some(change) = parse(n.payload(), schema) {
                            return Ok(change);
                        }
                    }
                }
            },
            Source::Poll { pool, last, pending } => loop {
                if let Some(change) = pending.pop_front() {
                    return Ok(change);
                }
                let rows =
                    sqlx::query("SELECT seq, kind, row_id FROM nbtoken_changes WHERE seq > $1 ORDER BY seq")
                        .bind(*last)
                        .fetch_all(&*pool)
                        .await
                        .map_err(sqlite_err)?;
                if rows.is_empty() {
                    tokio::time::sleep(POLL_INTERVAL).await;
                    continue;
                }
                for row in &rows {
                    let seq: i64 = row.try_get("seq").map_err(sqlite_err)?;
                    // A gap: the rows between were pruned (or never committed); assume the worst.
                    if seq != *last + 1 {
                        pending.push_back(Change::Resync);
                    }
                    *last = seq;
                    let kind: String = row.try_get("kind").map_err(sqlite_err)?;
                    let id: i64 = row.try_get("row_id").map_err(sqlite_err)?;
                    pending.push_back(if kind == "user" { Change::User(id) } else { Change::Token(id) });
                }
            },
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
