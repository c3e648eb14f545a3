//! Connecting a [`crate::PgStore`]: options, the first connection, the schema and its migrations.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::Connection;

use super::convert::map_err;
use super::Postgres;
use crate::health::{Breaker, ProbeFn};
use crate::sql::{SqlStore, NBTOKEN};
use crate::{Result, StoreError};

/// The schema, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections in the pool unless [`PgOptions::max_connections`] says otherwise.
const MAX_CONNECTIONS: u32 = 10;
/// How long connecting, or waiting for a free connection, may take before the
/// store reports itself unavailable: an authentication service answers
/// quickly or not at all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the circuit breaker's probe waits for a connection and a round trip.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How to connect a [`crate::PgStore`], beyond its URL.
#[derive(Clone, Debug)]
pub struct PgOptions {
    schema: Option<String>,
    max_connections: u32,
    connect_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self { schema: None, max_connections: MAX_CONNECTIONS, connect_timeout: CONNECT_TIMEOUT }
    }
}

impl PgOptions {
    /// The defaults: the URL's own `search_path`, 10 connections, a 5 s timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps every table in `schema` (created if missing), which must be a
    /// lowercase SQL identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes).
    pub fn schema(mut self, schema: &str) -> Self {
        self.schema = Some(schema.to_owned());
        self
    }

    /// Connections in the pool, at least 1.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long to wait for a connection, first and later, before giving up
    /// with [`StoreError::Unavailable`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

impl SqlStore<Postgres> {
    /// Connects to the `postgres://` or `postgresql://` URL and applies the schema.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, PgOptions::new()).await
    }

    /// Connects with every table in `schema` (see [`PgOptions::schema`]).
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<Self> {
        Self::connect_with(url, PgOptions::new().schema(schema)).await
    }

    /// Connects with explicit options and applies the schema.
    ///
    /// Error messages name the host and port, never the URL (it may hold a password).
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<Self> {
        let (mut conn, connect, server) = first_connection(url, &options).await?;
        if let Some(schema) = &options.schema {
            let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema));
            sqlx::query(&sql).execute(&mut conn).await.map_err(map_err)?;
        }
        MIGRATOR.run(&mut conn).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => map_err(e),
            other => StoreError::Database(format!("cannot apply the schema: {other}")),
        })?;
        // Closing politely is a courtesy; the pool opens its own connections.
        let _ = conn.close().await;
        Ok(SqlStore::new(dialect(connect, options, &server), NBTOKEN))
    }

    /// Drops this store's schema with every row in it, then closes the pool.
    ///
    /// For tests and teardown; `Config` if the store was not connected with a
    /// schema (it never drops `public` or whatever the URL chose).
    pub async fn drop_schema(&self) -> Result<()> {
        let Some(schema) = self.schema() else {
            return Err(StoreError::Config("this store was not connected with a schema of its own".into()));
        };
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(schema));
        sqlx::query(&sql).execute(self.pool()).await.map_err(map_err)?;
        self.pool().close().await;
        Ok(())
    }
}

/// Checks the URL and opens one connection of its own: its error says why (refused,
/// authentication, no such database), where a pool would only time out. Answers the
/// connection, the options a pool connects with, and `host:port` for messages.
pub(crate) async fn first_connection(
    url: &str,
    options: &PgOptions,
) -> Result<(PgConnection, PgConnectOptions, String)> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::Config(
            "a PostgreSQL URL starts with postgres:// or postgresql://".to_owned(),
        ));
    }
    let mut connect = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?;
    if let Some(schema) = &options.schema {
        check_schema_name(schema)?;
        connect = connect.options([("search_path", schema.as_str())]);
    }
    let server = format!("{}:{}", connect.get_host(), connect.get_port());
    let conn = tokio::time::timeout(options.connect_timeout, PgConnection::connect_with(&connect))
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!(
                "PostgreSQL at {server} did not answer within {:?}",
                options.connect_timeout
            ))
        })?
        .map_err(|e| match map_err(e) {
            StoreError::Unavailable(e) => {
                StoreError::Unavailable(format!("cannot connect to PostgreSQL at {server}: {e}"))
            }
            StoreError::Database(e) => {
                StoreError::Unavailable(format!("cannot connect to PostgreSQL at {server}: {e}"))
            }
            other => other,
        })?;
    Ok((conn, connect, server))
}

/// The dialect over a lazily connecting pool, with its circuit breaker probing `server`.
pub(crate) fn dialect(connect: PgConnectOptions, options: PgOptions, server: &str) -> Postgres {
    let probe_options = connect.clone();
    let probe_timeout = options.connect_timeout.min(PROBE_TIMEOUT);
    let probe: ProbeFn = Box::new(move || {
        let options = probe_options.clone();
        Box::pin(async move {
            // A connection of its own: the pool's would wait out its acquire timeout.
            let connected = tokio::time::timeout(probe_timeout, async {
                let mut conn = PgConnection::connect_with(&options).await?;
                sqlx::query("SELECT 1").execute(&mut conn).await?;
                conn.close().await
            })
            .await;
            matches!(connected, Ok(Ok(())))
        })
    });
    let breaker = Arc::new(Breaker::new(format!("PostgreSQL at {server}"), probe));
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.connect_timeout)
        .after_release(|conn, _| {
            Box::pin(async move {
                // A transaction dropped mid-way (its caller gave up, e.g. when the
                // breaker opened) only queues its ROLLBACK; the ping sends it now.
                // Left idle, the connection would hold its row locks until someone
                // happened to reuse it. Still inside a transaction: close it.
                conn.ping().await?;
                Ok(!conn.is_in_transaction())
            })
        })
        .connect_lazy_with(connect);
    Postgres { pool, schema: options.schema, breaker }
}

/// Accepts only names that need no quoting anywhere (`search_path` included).
fn check_schema_name(schema: &str) -> Result<()> {
    let mut chars = schema.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && schema.len() <= 63 {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "schema name {schema:?} is not a lowercase SQL identifier ([a-z_][a-z0-9_]*, at most 63 bytes)"
        )))
    }
}

/// `"name"`, for the statements that cannot bind an identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
