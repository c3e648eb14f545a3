//! The PostgreSQL backend: one database shared by several server instances.
//!
//! The schema lives in `migrations/postgres` and is applied when the store
//! connects; the migrator's advisory lock lets instances start together.
//! A store can be confined to one schema ([`PgOptions::schema`]), which is
//! created if missing and set as the `search_path` of every connection, so
//! test runs (or tenants) sharing a database never see each other's rows.
//!
//! Every call goes through a circuit breaker ([`crate::health`]): once a call
//! finds the database unavailable, later calls fail at once with
//! [`crate::StoreError::Unavailable`] (instead of each waiting out the pool timeout)
//! until a background probe reconnects.
//!
//! TLS is not compiled in: `sslmode=prefer` (the default) connects in the
//! clear and `sslmode=require` fails with [`crate::StoreError::Config`].

use std::future::Future;
use std::sync::Arc;

use sqlx::postgres::{PgPool, PgRow};

use crate::changes::ChangeListener;
use crate::health::{Breaker, Health};
use crate::sql::record::now;
use crate::sql::{sealed, Dialect, SqlStore, Statement, Syntax, Tables};
use crate::{Result, Touch};

mod connect;
mod convert;

pub use connect::PgOptions;
pub(crate) use connect::{dialect, first_connection, quote_ident};

pub(crate) use convert::map_err;
use convert::query;

/// A [`crate::Store`] on a PostgreSQL database.
///
/// Cloning is cheap and shares the connection pool.
pub type PgStore = SqlStore<Postgres>;

/// The PostgreSQL [`Dialect`]: the pool, the schema it is confined to, and the circuit breaker.
#[derive(Clone, Debug)]
pub struct Postgres {
    pool: PgPool,
    schema: Option<String>,
    breaker: Arc<Breaker>,
}

impl SqlStore<Postgres> {
    /// The connection pool, for this crate's tests that need raw SQL (not an API).
    #[doc(hidden)]
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// The schema this store was confined to, if any.
    pub fn schema(&self) -> Option<&str> {
        self.db.schema.as_deref()
    }
}

impl Postgres {
    async fn ping(&self) -> Result<()> {
        self.breaker
            .call(async {
                sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
                Ok(())
            })
            .await
    }
}

impl sealed::Sealed for Postgres {}

impl Dialect for Postgres {
    type Row = PgRow;
    type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

    const NAME: &'static str = "postgres";
    const SYNTAX: Syntax = Syntax {
        arrays: true,
        nets_cast: "::inet[]",
        // Byte order, as SQLite sorts, whatever the database's collation.
        byte_order: " COLLATE \"C\"",
        // Networks and addresses are read as text (an address by `host()`, without a
        // prefix length), so no network type needs a decoder here.
        read_nets: |column| format!("{column}::text[]"),
        read_ip: |column| format!("host({column})"),
    };

    async fn begin(&self, snapshot: bool) -> Result<Self::Tx> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        if snapshot {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        Ok(tx)
    }

    async fn commit(tx: Self::Tx) -> Result<()> {
        tx.commit().await.map_err(map_err)
    }

    async fn fetch_all(&self, tx: Option<&mut Self::Tx>, statement: &Statement) -> Result<Vec<PgRow>> {
        on_tx_or_pool!(tx, &self.pool, query(statement)?.fetch_all).map_err(map_err)
    }

    async fn execute(&self, tx: Option<&mut Self::Tx>, statement: &Statement) -> Result<u64> {
        on_tx_or_pool!(tx, &self.pool, query(statement)?.execute).map(|r| r.rows_affected()).map_err(map_err)
    }

    async fn guard<T: Send>(&self, call: impl Future<Output = Result<T>> + Send) -> Result<T> {
        self.breaker.call(call).await
    }

    async fn touch_last_used(&self, tx: &mut Self::Tx, tables: &Tables, touches: &[Touch]) -> Result<()> {
        // Several instances flush batches at once: taking the row locks in id
        // order first means two batches never wait on each other in a cycle.
        let mut ids: Vec<i64> = touches.iter().map(|t| t.token_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let touch_ids: Vec<i64> = touches.iter().map(|t| t.token_id).collect();
        let ats: Vec<_> = touches.iter().map(|t| crate::sql::record::truncate(t.at)).collect();
        let ips: Vec<Option<String>> = touches.iter().map(|t| t.ip.map(|ip| ip.to_string())).collect();

        sqlx::query(&tables.sql("SELECT id FROM {tokens} WHERE id = ANY($1) ORDER BY id FOR UPDATE"))
            .bind(&ids)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        // One statement for the whole batch: the latest touch per token wins
        // (the first of equal ones, as in SQLite), and only if it moves
        // last_used forward; its address is written with it.
        let set_ip = if tables.nbtoken_columns { ", last_used_ip = v.ip::inet" } else { "" };
        let sql = tables.sql(&format!(
            "UPDATE {{tokens}} t SET last_used = v.at{set_ip} \
             FROM (SELECT DISTINCT ON (id) id, at, ip \
                   FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[]) WITH ORDINALITY AS u (id, at, ip, n) \
                   ORDER BY id, at DESC, n ASC) AS v \
             WHERE t.id = v.id AND (t.last_used IS NULL OR t.last_used < v.at)"
        ));
        sqlx::query(&sql).bind(&touch_ids).bind(&ats).bind(&ips).execute(&mut **tx).await.map_err(map_err)?;
        Ok(())
    }

    /// Whether the database answers: [`Health::Unreachable`] with the start of
    /// the outage while the circuit breaker is open (no round trip then),
    /// otherwise after a `SELECT 1`.
    async fn health(&self) -> Health {
        if self.ping().await.is_ok() {
            return Health::Ok;
        }
        // Failed without opening the breaker (the pool was closed, say): down from now.
        Health::Unreachable { since: self.breaker.down_since().unwrap_or_else(now) }
    }

    /// A round trip (through the breaker).
    async fn preflight(&self) -> Result<()> {
        self.ping().await
    }

    async fn close(&self) {
        self.breaker.stop();
        self.pool.close().await;
    }

    async fn changes(&self) -> Result<Option<ChangeListener>> {
        ChangeListener::notified(&self.pool, self.schema.as_deref()).await.map(Some)
    }
}
