//! A real nbtoken server on 127.0.0.1:0 over a fresh SQLite file, with an
//! admin who has a password, a v2 token and a v1 token.

use std::net::SocketAddr;

use nbtoken_core::{PepperId, PepperRing, SecretString, TokenVersion, V1Policy};
use nbtoken_manage::{Actor, Inline, Ops, Quiet, TokenSpec};
use nbtoken_server::Config;
use nbtoken_store::AnyStore;
use tokio::sync::oneshot;

/// The admin's v1 token.
pub const V1_PLAIN: &str = "0123456789abcdef0123456789abcdef01234567";
/// The admin's password.
pub const ADMIN_PASSWORD: &str = "admin-password-123";
const PEPPER: &str = "client-test-pepper-0123456789-0123456789-0123456789-0123456789";

pub struct Server {
    pub addr: SocketAddr,
    /// `nbt_<key>.<secret>` of the admin's v2 token.
    pub admin_v2: String,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store =
            AnyStore::connect(&format!("sqlite://{}", dir.path().join("t.sqlite3").display())).await.unwrap();
        let peppers = PepperRing::new([(PepperId::new(1).unwrap(), SecretString::from(PEPPER))]).unwrap();
        let ops = Ops {
            store: &store,
            peppers: &peppers,
            v1_policy: V1Policy::Allow,
            passwords: &Inline,
            announce: &Quiet,
        };
        let (admin, v2) = ops.bootstrap_admin(Some(SecretString::from(ADMIN_PASSWORD)), "").await.unwrap();
        let v1_spec = TokenSpec {
            version: TokenVersion::V1,
            chosen: Some(SecretString::from(V1_PLAIN)),
            ..Default::default()
        };
        ops.create_token(&Actor::Operator, &admin, v1_spec).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config::new(addr, peppers);
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = nbtoken_server::serve(listener, config, store, async {
                let _ = rx.await;
            })
            .await;
        });
        Server { addr, admin_v2: v2.token.expose().to_owned(), shutdown: Some(tx), _dir: dir }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client authenticating with `token`.
    pub fn client(&self, token: &str) -> nbtoken_client::Client {
        nbtoken_client::Client::builder(&self.base(), token).build().unwrap()
    }

    /// A client with the admin's v2 token.
    pub fn admin(&self) -> nbtoken_client::Client {
        self.client(&self.admin_v2)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
