//! The harness itself: a test that ends while its runtime holds a transaction open (the
//! server's batched `last_used` write, say) still drops its PostgreSQL schema, and does not
//! wait for ever on that transaction's locks (a hang once seen in CI).

#![allow(clippy::unwrap_used, missing_docs)]

use nbtoken_store::AnyStore;
use sqlx::{Connection, PgConnection};

use crate::harness::{Backend, Server};

#[tokio::test]
async fn a_server_dropped_while_its_runtime_holds_a_lock_still_drops_its_schema() {
    let Some(backend) = Backend::postgres() else { return };
    let Backend::Postgres(url) = backend.clone() else { unreachable!() };
    let server = Server::start(backend).await;
    let AnyStore::Postgres(pg) = &server.store else { unreachable!() };
    let schema = pg.schema().unwrap().to_owned();
    // A transaction driven by this (current-thread) runtime, holding row locks in the schema:
    // while `Drop` blocks the runtime, nothing can commit or roll it back.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    let touched = sqlx::query(&format!("UPDATE \"{schema}\".users_token SET last_used = now()"))
        .execute(&mut *tx)
        .await
        .unwrap();
    assert!(touched.rows_affected() > 0, "the lock must be on a real row");
    drop(server);
    let mut check = PgConnection::connect(&url).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
        .bind(&schema)
        .fetch_one(&mut check)
        .await
        .unwrap();
    assert_eq!(left, 0, "schema {schema} was not dropped");
    drop(tx);
}
