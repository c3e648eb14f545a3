//! The suite on PostgreSQL, each test in a schema of its own, plus what only PostgreSQL has.
//!
//! The server comes from `NBTOKEN_TEST_DATABASE_URL`
//! (`postgres://postgres@127.0.0.1:5432/test`). Without it the PostgreSQL
//! tests say on stderr that they are skipped and return; the tests that need
//! no server (URL handling, an unreachable server) always run.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use nbtoken_store::PgStore;
use sqlx::Row;

use super::*;

const URL_VAR: &str = "NBTOKEN_TEST_DATABASE_URL";

/// The test server's URL, or `None` after saying (once, past the output
/// capture, so it shows in a plain `cargo test`) that the tests are skipped.
pub fn database_url() -> Option<String> {
    nbtoken_testkit::database_url("the PostgreSQL store tests")
}

/// A schema name no other test, run or process is using.
pub fn unique_schema() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("nbtoken_test_{:016x}", h.finish())
}

/// A PostgreSQL store in a fresh schema, dropped with the backend.
pub struct PgBackend {
    pub store: PgStore,
    url: String,
    schema: String,
}

impl PgBackend {
    /// `None` (after saying so) when no test server is configured.
    pub async fn new() -> Option<Self> {
        let url = database_url()?;
        let schema = unique_schema();
        let store = PgStore::connect_with_schema(&url, &schema).await.unwrap();
        Some(Self { store, url, schema })
    }
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        nbtoken_testkit::drop_pg_schema(&self.url, &self.schema);
    }
}

impl Backend for PgBackend {
    type D = nbtoken_store::postgres::Postgres;

    fn store(&self) -> &PgStore {
        &self.store
    }

    /// Every row of every table, as PostgreSQL prints it: what a dump would hold.
    async fn stored_bytes(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for table in ["users", "users_token"] {
            let rows = sqlx::query(&format!("SELECT r::text FROM {table} r"))
                .fetch_all(self.store.pool())
                .await
                .unwrap();
            for (i, row) in rows.iter().enumerate() {
                let text: String = row.try_get(0).unwrap();
                out.push((format!("{}.{table} row {i}", self.schema), text.into_bytes()));
            }
        }
        out
    }
}

mount_suite!(PgBackend::new());

mod specific {
    //! Behaviour only PostgreSQL has: connecting, schemas, several instances at once.

    use std::time::{Duration, Instant};

    use nbtoken_store::{AnyStore, Page, PgOptions, StoreError, TokenFilter, Touch, UserFilter};
    use time::OffsetDateTime;

    use super::*;
    use crate::suite::{new_user, v2_token};

    fn assert_unavailable_quickly(result: nbtoken_store::Result<impl std::fmt::Debug>, started: Instant) {
        let err = result.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn unreachable_server_is_unavailable_quickly() {
        let started = Instant::now();
        let url = "postgres://postgres:hunter2hunter2@127.0.0.1:1/test";
        let result =
            PgStore::connect_with(url, PgOptions::new().connect_timeout(Duration::from_secs(2))).await;
        let err = result.as_ref().unwrap_err().to_string();
        assert!(err.contains("127.0.0.1:1") && !err.contains("hunter2"), "{err}");
        assert_unavailable_quickly(result, started);

        // The same through AnyStore with the default timeout.
        let started = Instant::now();
        assert_unavailable_quickly(AnyStore::connect(url).await, started);

        // An address that does not answer at all (or is unreachable) gives up at the timeout.
        let started = Instant::now();
        let options = PgOptions::new().connect_timeout(Duration::from_secs(1));
        assert_unavailable_quickly(
            PgStore::connect_with("postgres://192.0.2.1:5432/x", options).await,
            started,
        );
    }

    #[tokio::test]
    async fn bad_url_and_schema_name_are_config_errors() {
        for (url, schema) in [
            ("mysql://127.0.0.1:1/x", None),
            ("postgres://127.0.0.1:1/x?sslmode=sideways", None),
            ("postgres://127.0.0.1:1/x", Some("Upper")),
            ("postgres://127.0.0.1:1/x", Some("a-b")),
            ("postgres://127.0.0.1:1/x", Some("x\"; DROP SCHEMA public; --")),
            ("postgres://127.0.0.1:1/x", Some("")),
        ] {
            let options = schema.map_or_else(PgOptions::new, |s| PgOptions::new().schema(s));
            let err = PgStore::connect_with(url, options).await.unwrap_err();
            assert!(matches!(err, StoreError::Config(_)), "{url} {schema:?}: {err:?}");
        }
    }

    #[tokio::test]
    async fn any_store_picks_the_backend_by_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("any.sqlite3");
        let bare = AnyStore::connect(path.to_str().unwrap()).await.unwrap();
        assert!(matches!(bare, AnyStore::Sqlite(_)) && bare.backend_name() == "sqlite");
        bare.create_user(new_user("alice")).await.unwrap();
        let url = AnyStore::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        assert!(matches!(url, AnyStore::Sqlite(_)));
        assert!(url.user_by_name("alice").await.unwrap().is_some());
        assert!(matches!(AnyStore::connect("sqlite::memory:").await.unwrap(), AnyStore::Sqlite(_)));
        let err = AnyStore::connect("mysql://root:pw@db/x").await.unwrap_err();
        assert!(matches!(&err, StoreError::Config(m) if m.contains("mysql") && !m.contains("pw")), "{err:?}");

        let Some(b) = PgBackend::new().await else { return };
        // The schema exists and is migrated; a URL can select it by itself.
        let url = format!("{}?options[search_path]={}", b.url, b.schema);
        let any = AnyStore::connect(&url).await.unwrap();
        assert!(matches!(any, AnyStore::Postgres(_)) && any.backend_name() == "postgres");
        let user = any.create_user(new_user("bob")).await.unwrap();
        assert_eq!(b.store.user_by_name("bob").await.unwrap(), Some(user));
        let (total, _) =
            any.list_tokens(&TokenFilter::default(), Page { limit: 1, offset: 0 }).await.unwrap();
        assert_eq!(total, 0);
        any.close().await;
    }

    #[tokio::test]
    async fn unknown_database_is_a_config_error() {
        let Some(url) = database_url() else { return };
        let Some((server, _)) = url.split_once('?').unwrap_or((&url, "")).0.rsplit_once('/') else {
            panic!("{URL_VAR} has no database name");
        };
        let err = PgStore::connect(&format!("{server}/nbtoken_no_such_database")).await.unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    }

    #[tokio::test]
    async fn schemas_keep_stores_apart_and_drop_schema_removes_one() {
        let (Some(a), Some(b)) = (PgBackend::new().await, PgBackend::new().await) else { return };
        let row = sqlx::query("SHOW search_path").fetch_one(a.store.pool()).await.unwrap();
        assert_eq!(row.get::<String, _>(0), a.schema);
        assert_eq!(a.store.schema(), Some(a.schema.as_str()));

        a.store.create_user(new_user("alice")).await.unwrap();
        b.store.create_user(new_user("alice")).await.unwrap();
        let page = Page { limit: 10, offset: 0 };
        assert_eq!(a.store.list_users(&UserFilter::default(), page).await.unwrap().0, 1);

        // Connecting again to an existing schema keeps its rows.
        let again = PgStore::connect_with_schema(&a.url, &a.schema).await.unwrap();
        assert!(again.user_by_name("alice").await.unwrap().is_some());
        again.close().await;

        b.store.drop_schema().await.unwrap();
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(&b.schema)
                .fetch_one(a.store.pool())
                .await
                .unwrap();
        assert!(!exists);
        let err = b.store.ping().await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(a.store.user_by_name("alice").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn closed_pool_is_unavailable() {
        let Some(b) = PgBackend::new().await else { return };
        b.store.close().await;
        let err = b.store.ping().await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }

    async fn next(l: &mut nbtoken_store::ChangeListener) -> nbtoken_store::Change {
        tokio::time::timeout(std::time::Duration::from_secs(5), l.recv()).await.unwrap().unwrap()
    }

    /// Another instance's change arrives as a notification; `last_used` (and `last_used_ip`) writes do not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_are_notified_but_touches_are_not() {
        use nbtoken_store::{Change, TokenPatch, Touch, UserPatch};
        let Some(b) = PgBackend::new().await else { return };
        let user = b.store.create_user(new_user("watched")).await.unwrap();
        let (new, _) = v2_token(user.id, 1);
        let t = b.store.create_token(new).await.unwrap();
        let mut listener = b.store.changes().await.unwrap().expect("PostgreSQL has a change feed");
        // A second store on the same schema stands for another server instance.
        let other = PgStore::connect_with_schema(&b.url, &b.schema).await.unwrap();
        let ip = Some("203.0.113.9".parse().unwrap());
        other
            .apply_touches(&[Touch { ip, ..Touch::at(t.token.id, time::OffsetDateTime::now_utc()) }])
            .await
            .unwrap();
        assert_eq!(other.token(t.token.id).await.unwrap().unwrap().last_used_ip, ip);
        other
            .update_token(t.token.id, TokenPatch { enabled: Some(false), ..Default::default() })
            .await
            .unwrap();
        // The touch came first, but only the disable is announced.
        assert_eq!(next(&mut listener).await, Change::Token(t.token.id));
        other.update_user(user.id, UserPatch { is_active: Some(false), ..Default::default() }).await.unwrap();
        assert_eq!(next(&mut listener).await, Change::User(user.id));
        other.delete_token(t.token.id).await.unwrap();
        assert_eq!(next(&mut listener).await, Change::Token(t.token.id));
        // Another schema's changes are not this store's business.
        let Some(elsewhere) = PgBackend::new().await else { return };
        let u2 = elsewhere.store.create_user(new_user("elsewhere")).await.unwrap();
        elsewhere
            .store
            .update_user(u2.id, UserPatch { is_active: Some(false), ..Default::default() })
            .await
            .unwrap();
        other.update_user(user.id, UserPatch { is_active: Some(true), ..Default::default() }).await.unwrap();
        assert_eq!(next(&mut listener).await, Change::User(user.id));
        // Instances cache users too: every column the API shows or decides on is announced,
        // but not last_login (written at each password check); the next change proves it was skipped.
        let patches = [
            UserPatch { last_login: Some(time::OffsetDateTime::now_utc()), ..Default::default() },
            UserPatch { is_superuser: Some(true), ..Default::default() },
            UserPatch { can_grant_tokens: Some(true), ..Default::default() },
            UserPatch { email: Some("w@example.com".into()), ..Default::default() },
            UserPatch { username: Some("renamed".into()), ..Default::default() },
        ];
        for patch in patches {
            other.update_user(user.id, patch).await.unwrap();
        }
        for _ in 0..4 {
            assert_eq!(next(&mut listener).await, Change::User(user.id));
        }
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(300), listener.recv()).await.is_err(),
            "one notification too many: last_login must not fire"
        );
        other.close().await;
    }

    /// Several instances flush overlapping batches in different orders at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_touch_batches_from_several_instances_do_not_deadlock() {
        let Some(b) = PgBackend::new().await else { return };
        let user = b.store.create_user(new_user("writer")).await.unwrap();
        let mut ids = Vec::new();
        for _ in 0..20 {
            ids.push(b.store.create_token(v2_token(user.id, 1).0).await.unwrap().token.id);
        }
        let mut tasks = Vec::new();
        for instance in 0..4 {
            // A store of its own: another server instance on the same schema.
            let store = PgStore::connect_with_schema(&b.url, &b.schema).await.unwrap();
            let mut order = ids.clone();
            if instance % 2 == 1 {
                order.reverse();
            }
            tasks.push(tokio::spawn(async move {
                for round in 0..10 {
                    let at = OffsetDateTime::now_utc();
                    let batch: Vec<Touch> = order.iter().map(|&token_id| Touch::at(token_id, at)).collect();
                    store.apply_touches(&batch).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
                }
                store.close().await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let (total, rows) =
            b.store.list_tokens(&TokenFilter::default(), Page { limit: 100, offset: 0 }).await.unwrap();
        assert_eq!(total, 20);
        assert!(rows.iter().all(|r| r.token.last_used.is_some()));
    }
}
