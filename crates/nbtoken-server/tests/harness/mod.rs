//! A real server on an ephemeral port, on a real SQLite file, with an admin, a v2 and a v1 token.

#![allow(dead_code)]

use std::net::SocketAddr;

use nbtoken_core::{PepperId, PepperRing, SecretString, TokenVersion, V1Policy};
use nbtoken_manage::{Actor, Inline, Ops, Quiet, TokenSpec};
use nbtoken_server::Config;
use nbtoken_store::{AnyStore, PgStore};
use reqwest::Method;
use serde_json::Value;
use tokio::sync::oneshot;

/// Every test runs on SQLite, and on PostgreSQL when `NBTOKEN_TEST_DATABASE_URL` is set:
/// `on_every_backend!(a, b)` makes `sqlite::a`, `postgres::a`, … calling `a(Backend)`.
/// (Test files that use it declare `#[macro_use] mod harness;`.)
#[allow(unused_macros)]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                if let Some(b) = super::Backend::postgres() {
                    super::$name(b).await
                }
            })*
        }
    };
}

/// The admin's v1 token, created by the harness.
pub const V1_PLAIN: &str = "0123456789abcdef0123456789abcdef01234567";
/// The admin's password.
pub const ADMIN_PASSWORD: &str = "admin-password-123";
/// The test pepper.
pub const PEPPER: &str = "test-pepper-0123456789-0123456789-0123456789-0123456789";

/// Which database a test server runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    /// A fresh SQLite file in a temporary directory.
    Sqlite,
    /// A fresh schema in the PostgreSQL database at this URL.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL if `NBTOKEN_TEST_DATABASE_URL` is set; otherwise says the test is skipped.
    pub fn postgres() -> Option<Backend> {
        nbtoken_testkit::database_url("the PostgreSQL variant of the server tests").map(Backend::Postgres)
    }

    async fn connect(&self, dir: &std::path::Path) -> AnyStore {
        match self {
            Backend::Sqlite => {
                AnyStore::connect(&format!("sqlite://{}", dir.join("t.sqlite3").display())).await.unwrap()
            }
            Backend::Postgres(url) => {
                let schema = format!(
                    "nbtoken_srv_{}",
                    nbtoken_core::TokenKey::generate().unwrap().as_str().to_lowercase()
                );
                AnyStore::from(PgStore::connect_with_schema(url, &schema).await.unwrap())
            }
        }
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    /// `nbt_<key>.<secret>` of the admin's first v2 token.
    pub admin_v2: String,
    pub store: AnyStore,
    running: Option<Spawned>,
    pub dir: tempfile::TempDir,
    backend: Backend,
}

pub struct TestToken {
    pub id: i64,
    pub key: String,
    pub full: String,
}

impl TestToken {
    pub fn bearer(&self) -> Vec<u8> {
        format!("Bearer {}", self.full).into_bytes()
    }
}

/// The operations on `store` as the CLI runs them (v1 tokens allowed, passwords hashed inline).
pub fn ops<'a, S: nbtoken_store::Store>(store: &'a S, peppers: &'a PepperRing) -> Ops<'a, S, Inline> {
    Ops { store, peppers, v1_policy: V1Policy::Allow, passwords: &Inline, announce: &Quiet }
}

pub fn peppers() -> PepperRing {
    PepperRing::new([(PepperId::new(1).unwrap(), SecretString::from(PEPPER))]).unwrap()
}

/// `nbtoken_server::serve` on an ephemeral loopback port in this process, until stopped.
pub struct Spawned {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Spawned {
    /// Serves `store` with a configuration for `peppers` that `configure` may change.
    pub async fn start(store: AnyStore, peppers: PepperRing, configure: impl FnOnce(&mut Config)) -> Spawned {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = Config::new(addr, peppers);
        configure(&mut config);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            nbtoken_server::serve(listener, config, store, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Spawned { addr, stop: Some(tx), task }
    }

    /// `http://addr`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish, and waits for the server to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.unwrap();
    }

    /// Asks the server to stop and stops waiting for it (for `Drop`, which cannot await).
    fn abort(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

impl Server {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = backend.connect(dir.path()).await;
        let backend_kept = backend.clone();
        let ring = peppers();
        let ops = ops(&store, &ring);
        let (admin, v2) = ops.bootstrap_admin(Some(SecretString::from(ADMIN_PASSWORD)), "").await.unwrap();
        let v1 = TokenSpec {
            version: TokenVersion::V1,
            chosen: Some(SecretString::from(V1_PLAIN)),
            ..Default::default()
        };
        ops.create_token(&Actor::Operator, &admin, v1).await.unwrap();
        let running = Spawned::start(store.clone(), peppers(), configure).await;
        Server {
            addr: running.addr,
            client: reqwest::Client::new(),
            admin_v2: v2.token.expose().to_owned(),
            store,
            running: Some(running),
            dir,
            backend: backend_kept,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn admin_bearer(&self) -> String {
        format!("Bearer {}", self.admin_v2)
    }

    /// `method path` as the admin, for tests that read the whole response (headers included).
    pub async fn admin_response(&self, method: Method, path: &str) -> reqwest::Response {
        self.client
            .request(method, format!("{}{path}", self.base()))
            .header("authorization", self.admin_bearer())
            .send()
            .await
            .unwrap()
    }

    /// Any request; returns status and JSON body (`null` when the body is not JSON).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        auth: Option<&[u8]>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base()));
        if let Some(a) = auth {
            req = req.header("authorization", reqwest::header::HeaderValue::from_bytes(a).unwrap());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.raw(method, path, Some(self.admin_bearer().as_bytes()), body, &[]).await
    }

    /// A request with a raw body string (for malformed JSON).
    pub async fn admin_raw_body(&self, method: Method, path: &str, body: Option<String>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base()))
            .header("authorization", self.admin_bearer())
            .header("content-type", "application/json");
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `POST /api/users/tokens/provision/` (it needs no token) with `body`: status and JSON body.
    pub async fn provision(&self, body: Value) -> (u16, Value) {
        self.raw(Method::POST, "/api/users/tokens/provision/", None, Some(body), &[]).await
    }

    /// Expires token `id`: PATCHes its expiry into the past as admin (allowed on existing
    /// tokens, as in NetBox).
    pub async fn expire(&self, id: i64) {
        let body = serde_json::json!({"expires": "2020-01-01T00:00:00Z"});
        let (status, v) = self.admin(Method::PATCH, &format!("/api/users/tokens/{id}/"), Some(body)).await;
        assert_eq!(status, 200, "{v}");
    }

    /// Creates a token through the API as admin.
    pub async fn create_token(&self, body: Value) -> TestToken {
        let (status, v) = self.admin(Method::POST, "/api/users/tokens/", Some(body)).await;
        assert_eq!(status, 201, "{v}");
        let key = v["key"].as_str().unwrap().to_owned();
        let full = format!("nbt_{key}.{}", v["token"].as_str().unwrap());
        TestToken { id: v["id"].as_i64().unwrap(), key, full }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
        }
        // Drop cannot await, and the test's pool is driven by the test's runtime, which
        // this thread is blocking: drop the schema over a connection of its own.
        if let (Backend::Postgres(url), AnyStore::Postgres(pg)) = (&self.backend, &self.store) {
            nbtoken_testkit::drop_pg_schema(url, pg.schema().unwrap_or_default());
        }
    }
}
