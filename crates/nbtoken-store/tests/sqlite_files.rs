//! SQLite on a full disk, on a real 2 MiB tmpfs: a write that the store
//! acknowledges is on disk, a write it refused is not, no connection is left
//! inside a failed transaction (holding the write lock), the store says it
//! cannot write while the disk is full, and writes work again by themselves
//! once space returns.
//!
//! Mounting a tmpfs needs root: without it the test says it is skipped (and
//! fails when `CI` is set).

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use nbtoken_store::{NewToken, Page, SqliteStore, Store, StoreError, TokenFilter, TokenPatch};
use nbtoken_testkit::{damage_last_page, fill, Tmpfs};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::suite;

/// A new v2 token of `user_id` described as `description`.
fn v2_token(user_id: i64, description: String) -> NewToken {
    NewToken { description, ..suite::v2_token(user_id, 1).0 }
}

/// Every token description in the store.
async fn descriptions(store: &SqliteStore) -> Vec<String> {
    let (_, rows) =
        store.list_tokens(&TokenFilter::default(), Page { limit: u32::MAX, offset: 0 }).await.unwrap();
    rows.into_iter().map(|r| r.description).collect()
}

/// An outside writer (as the CLI would be) can take the write lock: no
/// connection of the store sits inside a transaction.
async fn outside_writer_gets_the_lock(path: &Path) -> Result<(), String> {
    let mut conn = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .unwrap()
        .busy_timeout(Duration::from_millis(500))
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let r = sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.map_err(|e| e.to_string());
    if r.is_ok() {
        sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
    }
    let _ = conn.close().await;
    r.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_never_acknowledges_a_lost_write_and_recovers_by_itself() {
    let Some(fs) = Tmpfs::mount("2m", "the full-disk SQLite test") else { return };
    let path = fs.path().join("nbtoken.sqlite3");
    let store = SqliteStore::open_file(&path).await.unwrap();
    let user = store.create_user(suite::new_user("ann")).await.unwrap();
    let victim = store.create_token(v2_token(user.id, "victim".into())).await.unwrap();
    let filler = fill(fs.path());

    // Writes on a full disk: each one either succeeds for good or fails.
    let mut acked = vec!["victim".to_owned()];
    let mut refused = Vec::new();
    let padding = "x".repeat(180);
    for i in 0..300 {
        if refused.len() >= 5 {
            break;
        }
        let description = format!("full-{i}-{padding}");
        match store.create_token(v2_token(user.id, description.clone())).await {
            Ok(r) => {
                assert_eq!(r.description, description);
                acked.push(description);
            }
            Err(StoreError::Unavailable(_)) => refused.push(description),
            Err(e) => panic!("a write on a full disk failed with {e:?}, not Unavailable"),
        }
    }
    assert!(!refused.is_empty(), "the disk never filled up: the test proves nothing");
    let revoked =
        store.update_token(victim.token.id, TokenPatch { enabled: Some(false), ..Default::default() }).await;
    let health = store.check_writable().await;
    assert!(health.is_err(), "the store says it can write on a full disk");
    outside_writer_gets_the_lock(&path)
        .await
        .expect("a connection holds the write lock after a failed write");

    // Space returns: writes succeed again without a restart.
    std::fs::remove_file(&filler).unwrap();
    for i in 0..20 {
        let description = format!("after-{i}");
        let r = store.create_token(v2_token(user.id, description.clone())).await;
        assert!(r.is_ok(), "write {i} after space returned failed: {r:?}");
        acked.push(description);
    }
    let revoked_after =
        store.update_token(victim.token.id, TokenPatch { enabled: Some(false), ..Default::default() }).await;
    assert!(!revoked_after.unwrap().token.enabled);
    store.check_writable().await.expect("the store still says it cannot write after space returned");
    outside_writer_gets_the_lock(&path).await.expect("a connection holds the write lock after recovery");
    eprintln!(
        "{} writes acknowledged, {} refused on the full disk; revocation: {}",
        acked.len(),
        refused.len(),
        if revoked.is_ok() { "acknowledged" } else { "refused" }
    );

    // Restart: every acknowledged write is there, no refused one is.
    store.close().await;
    let reopened = SqliteStore::open_file(&path).await.unwrap();
    let found = descriptions(&reopened).await;
    for d in &acked {
        assert!(found.contains(d), "acknowledged write {:.12}… is missing after a restart", d);
    }
    for d in &refused {
        assert!(!found.contains(d), "refused write {:.12}… is in the database", d);
    }
    let victim_now = reopened.token(victim.token.id).await.unwrap().unwrap();
    assert!(!victim_now.token.enabled, "an acknowledged revocation was lost");
    reopened.close().await;
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_database_file_is_private_wherever_it_is() {
    let dir = tempfile::tempdir().unwrap();
    // Outside any data directory, with the usual umask (022): SQLite alone makes 0644.
    let bare = dir.path().join("bare.sqlite3");
    let plain = dir.path().join("plain.sqlite3");
    let rwc = dir.path().join("rwc.sqlite3");
    let stores = [
        SqliteStore::open_file(&bare).await.unwrap(),
        SqliteStore::connect(&format!("sqlite://{}", plain.display())).await.unwrap(),
        SqliteStore::connect(&format!("sqlite://{}?mode=rwc", rwc.display())).await.unwrap(),
    ];
    for (store, path) in stores.iter().zip([&bare, &plain, &rwc]) {
        store.create_user(suite::new_user("ann")).await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            let file = PathBuf::from(name);
            assert_eq!(mode(&file), 0o600, "{} is {:o}", file.display(), mode(&file));
        }
        store.close().await;
    }
}

#[tokio::test]
async fn an_empty_file_is_refused_never_taken_for_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nbtoken.sqlite3");
    std::fs::write(&path, b"").unwrap();
    for url in [path.display().to_string(), format!("sqlite://{}?mode=rwc", path.display())] {
        let err = SqliteStore::connect(&url).await.unwrap_err();
        let StoreError::Corrupt(message) = &err else { panic!("{err:?}") };
        assert!(
            message.contains("empty (0 bytes)") && message.contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "the empty file was written to");
    }
}

#[tokio::test]
async fn a_damaged_page_refuses_preflight_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nbtoken.sqlite3");
    let store = SqliteStore::open_file(&path).await.unwrap();
    let user = store.create_user(suite::new_user("ann")).await.unwrap();
    for i in 0..200 {
        store.create_token(v2_token(user.id, format!("token {i} {}", "d".repeat(150)))).await.unwrap();
    }
    store.preflight().await.unwrap();
    store.checkpoint().await.unwrap();
    store.close().await;

    // Overwrite the last page (a leaf of tokens or of an index) with garbage.
    damage_last_page(&path, 10);

    let err = match SqliteStore::open_file(&path).await {
        Err(e) => e,
        Ok(store) => {
            let e = store.preflight().await.unwrap_err();
            store.close().await;
            e
        }
    };
    let StoreError::Corrupt(message) = &err else { panic!("{err:?}") };
    assert!(message.contains(&path.display().to_string()) && message.contains("backup"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_refuses_preflight_and_reports_it_cannot_write() {
    let Some(fs) = Tmpfs::mount("4m", "the SQLite file-system test") else { return };
    let path = fs.path().join("nbtoken.sqlite3");
    let store = SqliteStore::open_file(&path).await.unwrap();
    store.create_user(suite::new_user("ann")).await.unwrap();
    store.close().await;
    // Root ignores file modes: see the same files through a read-only bind mount.
    let view = tempfile::tempdir().unwrap();
    let mount =
        |args: &[&str], at: &Path| Command::new("mount").args(args).arg(at).status().unwrap().success();
    assert!(mount(&["--bind", fs.path().to_str().unwrap()], view.path()));
    let bound = Unmount(view.path().to_path_buf());
    assert!(mount(&["-o", "remount,ro,bind"], view.path()));
    let read_only = view.path().join("nbtoken.sqlite3");
    let err = match SqliteStore::open_file(&read_only).await {
        Err(e) => e,
        Ok(store) => {
            assert!(matches!(store.health().await, nbtoken_store::Health::CannotWrite { .. }));
            let e = store.preflight().await.unwrap_err();
            store.close().await;
            e
        }
    };
    drop(bound);
    let message = err.to_string();
    assert!(message.contains(&read_only.display().to_string()), "{message}");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    eprintln!("read-only: {message}");
}

/// Unmounts a mount point on drop.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
