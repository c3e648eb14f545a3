//! The store test suite, mounted once per backend.
//!
//! The tests live in `store/suite.rs` and are generic over [`Backend`]: a
//! store plus the two things only the backend can do (run raw SQL, show the
//! bytes it keeps). Each backend module below mounts every test with `mount!`:
//! SQLite here, PostgreSQL in `store/postgres.rs` (when `NBTOKEN_TEST_DATABASE_URL`
//! names a server). `store/netbox.rs` tests the read-only store on a copy of a
//! real NetBox database.

#![allow(clippy::unwrap_used)]

#[path = "store/suite.rs"]
mod suite;

use std::path::PathBuf;

use nbtoken_store::sql::Dialect;
use nbtoken_store::{SqlStore, SqliteStore, Store};

/// What the suite needs from a backend beyond the [`Store`] trait.
// Only this test binary implements it, so `Send` bounds on the futures are not needed.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// The database of the store under test.
    type D: Dialect;
    /// The store.
    fn store(&self) -> &SqlStore<Self::D>;
    /// Runs one raw SQL statement (portable SQL only), returning rows affected or the database's message.
    async fn exec(&self, sql: &str) -> Result<u64, String> {
        self.store().execute_sql(sql).await.map_err(|e| e.to_string())
    }
    /// Every byte the backend keeps rows in, labelled, as raw as possible.
    async fn stored_bytes(&self) -> Vec<(String, Vec<u8>)>;
}

/// Mounts suite tests for one backend: `mount!(constructor => test, test, …)`,
/// where the constructor is a future of `Option<impl Backend>`.
macro_rules! mount {
    ($new:expr => $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                // `None`: the backend is not available here and said so.
                let Some(backend) = $new.await else { return };
                crate::suite::$name(&backend).await;
            }
        )*
    };
}

/// Every suite test, in one list so each backend mounts the same set.
macro_rules! mount_suite {
    ($new:expr) => {
        mount!($new =>
            ping,
            user_crud,
            username_conflict,
            list_users_filters_and_pages,
            token_v1_create_and_lookup,
            token_v2_create_and_lookup,
            duplicate_key_and_plaintext_conflict,
            unknown_user_is_missing_reference,
            check_constraint_enforces_version_fields,
            list_tokens_filters_pages_and_counts,
            list_tokens_by_description,
            allowed_ips_keeps_null_apart_from_an_empty_list,
            list_tokens_orders_newest_first_then_id,
            update_token_patch_semantics,
            delete_token_and_cascade_on_user_delete,
            apply_touches_never_moves_last_used_backwards,
            apply_touches_record_the_client_ip,
            apply_touches_rehash_and_skips_deleted,
            v1_uses_add_up_per_day_and_go_with_their_token,
            rotate_token_sets_and_clears_previous,
            pepper_usage_counts_current_and_overlapping_peppers,
            no_v2_secret_reaches_storage,
            malformed_digest_is_corrupt_without_the_value,
        );
    };
}

mod sqlite {
    use super::*;

    /// An SQLite store on a real file in a fresh temporary directory.
    pub struct SqliteBackend {
        pub store: SqliteStore,
        pub path: PathBuf,
        _dir: tempfile::TempDir,
    }

    impl SqliteBackend {
        pub async fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("nbtoken.sqlite3");
            let store = SqliteStore::connect(&format!("sqlite://{}?mode=rwc", path.display())).await.unwrap();
            Self { store, path, _dir: dir }
        }

        fn read(&self, suffix: &str) -> Option<(String, Vec<u8>)> {
            let mut name = self.path.clone().into_os_string();
            name.push(suffix);
            let path = PathBuf::from(name);
            std::fs::read(&path).ok().map(|bytes| (path.display().to_string(), bytes))
        }
    }

    impl Backend for SqliteBackend {
        type D = nbtoken_store::sqlite::Sqlite;

        fn store(&self) -> &SqliteStore {
            &self.store
        }

        /// The main file and the write-ahead log as they are, then the main
        /// file again after a checkpoint has moved the log into it.
        async fn stored_bytes(&self) -> Vec<(String, Vec<u8>)> {
            let mut out: Vec<_> = ["", "-wal", "-shm"].iter().filter_map(|s| self.read(s)).collect();
            self.store.checkpoint().await.unwrap();
            out.extend(self.read(""));
            out
        }
    }

    mount_suite!(async { Some(SqliteBackend::new().await) });

    mod specific {
        //! Behaviour only SQLite has: URLs, pragmas, files, concurrent writers.

        use std::time::Duration;

        use nbtoken_core::PepperId;
        use nbtoken_store::{NewUser, Page, StoreError, TokenFilter, Touch};
        use time::OffsetDateTime;

        use super::*;
        use crate::suite::{new_user, v2_token};

        /// A pragma's value as text (some are numbers, some are words).
        async fn pragma(store: &SqliteStore, name: &str) -> String {
            use sqlx::Row;
            let row = sqlx::query(&format!("PRAGMA {name}")).fetch_one(store.pool()).await.unwrap();
            row.try_get::<i64, _>(0).map(|n| n.to_string()).or_else(|_| row.try_get::<String, _>(0)).unwrap()
        }

        #[tokio::test]
        async fn connect_sets_wal_foreign_keys_busy_timeout_and_synchronous() {
            let b = SqliteBackend::new().await;
            assert_eq!(pragma(&b.store, "journal_mode").await, "wal");
            assert_eq!(pragma(&b.store, "foreign_keys").await, "1");
            assert_eq!(pragma(&b.store, "busy_timeout").await, "5000");
            // FULL: a commit the store acknowledges is on disk.
            assert_eq!(pragma(&b.store, "synchronous").await, "2");
        }

        #[tokio::test]
        async fn bare_path_and_url_without_mode_create_the_file_and_reopen_keeps_rows() {
            let dir = tempfile::tempdir().unwrap();
            let bare = dir.path().join("bare.sqlite3");
            let store = SqliteStore::connect(bare.to_str().unwrap()).await.unwrap();
            store.create_user(new_user("alice")).await.unwrap();
            store.close().await;
            assert!(bare.exists());

            // Reopening applies the (already applied) migrations again without harm.
            let store = SqliteStore::open_file(&bare).await.unwrap();
            assert!(store.user_by_name("alice").await.unwrap().is_some());
            store.close().await;

            let url_path = dir.path().join("url.sqlite3");
            let store = SqliteStore::connect(&format!("sqlite://{}", url_path.display())).await.unwrap();
            store.ping().await.unwrap();
            assert!(url_path.exists());
        }

        #[tokio::test]
        async fn in_memory_url_keeps_its_rows_across_the_pool() {
            let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
            for name in ["a", "b", "c"] {
                store.create_user(new_user(name)).await.unwrap();
            }
            let (total, _) =
                store.list_users(&Default::default(), Page { limit: 10, offset: 0 }).await.unwrap();
            assert_eq!(total, 3);
        }

        #[tokio::test]
        async fn invalid_url_is_a_config_error() {
            let err = SqliteStore::connect("sqlite://x?mode=sideways").await.unwrap_err();
            assert!(matches!(err, StoreError::Config(_)), "{err:?}");
        }

        #[tokio::test]
        async fn closed_pool_is_unavailable() {
            let b = SqliteBackend::new().await;
            b.store.close().await;
            let err = b.store.ping().await.unwrap_err();
            assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        }

        async fn next(l: &mut nbtoken_store::ChangeListener) -> nbtoken_store::Change {
            tokio::time::timeout(Duration::from_secs(1), l.recv())
                .await
                .expect("no change within 1 s")
                .unwrap()
        }

        /// Another process's change (a CLI write) reaches a listener within a second, as on
        /// PostgreSQL; `last_used` (and `last_used_ip`) writes and `last_login` do not.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn changes_from_another_process_arrive_within_a_second() {
            use nbtoken_store::{Change, TokenPatch, UserPatch};
            let b = SqliteBackend::new().await;
            let user = b.store.create_user(new_user("watched")).await.unwrap();
            let t = b.store.create_token(v2_token(user.id, 1).0).await.unwrap();
            let mut listener = b.store.changes().await.unwrap().expect("SQLite has a change feed");
            // A second store on the same file stands for the CLI.
            let other = SqliteStore::open_file(&b.path).await.unwrap();
            let touch = Touch::at(t.token.id, OffsetDateTime::now_utc());
            other.apply_touches(&[touch]).await.unwrap();
            other
                .update_user(
                    user.id,
                    UserPatch { last_login: Some(OffsetDateTime::now_utc()), ..Default::default() },
                )
                .await
                .unwrap();
            other
                .update_token(t.token.id, TokenPatch { enabled: Some(false), ..Default::default() })
                .await
                .unwrap();
            // The touch and the login came first, but only the disable is announced.
            assert_eq!(next(&mut listener).await, Change::Token(t.token.id));
            other
                .update_user(user.id, UserPatch { is_superuser: Some(true), ..Default::default() })
                .await
                .unwrap();
            assert_eq!(next(&mut listener).await, Change::User(user.id));
            other.delete_token(t.token.id).await.unwrap();
            assert_eq!(next(&mut listener).await, Change::Token(t.token.id));
            other.delete_user(user.id).await.unwrap();
            assert_eq!(next(&mut listener).await, Change::User(user.id));
            assert!(
                tokio::time::timeout(Duration::from_millis(700), listener.recv()).await.is_err(),
                "one change too many"
            );

            // More changes than the log keeps between two reads: the listener says it lost track.
            b.exec(
                "INSERT INTO nbtoken_changes (kind, row_id) \
                 WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1100) \
                 SELECT 'token', x FROM n",
            )
            .await
            .unwrap();
            assert_eq!(next(&mut listener).await, Change::Resync);
            let (kept,) = (b.exec("DELETE FROM nbtoken_changes").await.unwrap(),);
            assert_eq!(kept, 1000, "the log keeps the latest 1000 changes");
            other.close().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_writers_wait_instead_of_failing() {
            let b = SqliteBackend::new().await;
            let user = b.store.create_user(NewUser { is_active: true, ..new_user("writer") }).await.unwrap();
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let store = b.store.clone();
                tasks.push(tokio::spawn(async move {
                    let mut ids = Vec::new();
                    for _ in 0..10 {
                        let (token, _) = v2_token(user.id, 1);
                        let rec = store.create_token(token).await.unwrap();
                        store
                            .apply_touches(&[Touch::at(rec.token.id, OffsetDateTime::now_utc())])
                            .await
                            .unwrap();
                        ids.push(rec.token.id);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    ids
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            assert_eq!(all.len(), 80);
            let filter = TokenFilter { pepper_id: Some(PepperId::new(1).unwrap()), ..Default::default() };
            let (total, rows) = b.store.list_tokens(&filter, Page { limit: 100, offset: 0 }).await.unwrap();
            assert_eq!(total, 80);
            assert!(rows.iter().all(|r| r.token.last_used.is_some()));
        }
    }
}

// After the macros, which it uses.
#[path = "store/postgres.rs"]
mod postgres;

/// NetBox's own database (`NBTOKEN_TEST_NETBOX`): not the suite, which manages its own rows.
#[path = "store/netbox.rs"]
mod netbox;

/// Damaged, full and read-only SQLite files (not part of the per-backend suite).
#[path = "sqlite_files.rs"]
mod sqlite_files;
