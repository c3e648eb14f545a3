//! A real server on an ephemeral port, on a real SQLite file, with an admin, a v2 and a v1 token.

#![allow(dead_code)]

use std::net::SocketAddr;

use nbtoken_core::{PepperId, PepperRing, SecretString, TokenVersion, V1Policy};
use nbtoken_server::service::{bootstrap_admin, create_token, TokenSpec};
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
        match std::env::var("NBTOKEN_TEST_DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => Some(Backend::Postgres(url)),
            _ => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI is set but NBTOKEN_TEST_DATABASE_URL is not: run ./test.sh, which sets it"
                );
                // Written past the test harness's output capture, so a plain `cargo test` shows it.
                let _ = std::io::Write::write_all(
                    &mut std::io::stderr().lock(),
                    b"skipped: NBTOKEN_TEST_DATABASE_URL not set, PostgreSQL variant not run (./test.sh runs it)\n",
                );
                None
            }
        }
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
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
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

pub fn peppers() -> PepperRing {
    PepperRing::new([(PepperId::new(1).unwrap(), SecretString::from(PEPPER))]).unwrap()
}

impl Server {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = backend.connect(dir.path()).await;
        let backend_kept = backend.clone();
        let hash = nbtoken_core::password::hash_password(ADMIN_PASSWORD).unwrap();
        let (admin, v2) = bootstrap_admin(&store, &peppers(), V1Policy::Allow, Some(hash), "").await.unwrap();
        create_token(
            &store,
            &peppers(),
            V1Policy::Allow,
            admin.id,
            TokenSpec {
                version: TokenVersion::V1,
                chosen: Some(SecretString::from(V1_PLAIN)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = Config::new(addr, peppers());
        configure(&mut config);
        let (tx, rx) = oneshot::channel::<()>();
        let served = store.clone();
        let task = tokio::spawn(async move {
            nbtoken_server::serve(listener, config, served, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Server {
            addr,
            client: reqwest::Client::new(),
            admin_v2: v2.token.expose().to_owned(),
            store,
            shutdown: Some(tx),
            task: Some(task),
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
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
        // Drop cannot await, and the test's pool is driven by the test's runtime, which
        // this thread is blocking: drop the schema over a connection of its own.
        if let (Backend::Postgres(url), AnyStore::Postgres(pg)) = (&self.backend, &self.store) {
            let (url, schema) = (url.clone(), pg.schema().unwrap_or_default().to_owned());
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    rt.block_on(async {
                        if let Ok(cleaner) = PgStore::connect_with_schema(&url, &schema).await {
                            let _ = cleaner.drop_schema().await;
                            cleaner.close().await;
                        }
                    });
                }
            })
            .join();
        }
    }
}
