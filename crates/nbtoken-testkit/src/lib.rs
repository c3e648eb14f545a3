//! Test support shared by the integration tests of every nbtoken crate (a dev-dependency only).
//!
//! The rule for a suite that needs a real component (PostgreSQL, NetBox, nginx, a tmpfs): where
//! the component is missing, the test says so on a visible `skipped: …` line and returns; under
//! `CI` it fails instead, because `./test.sh` provides every component there.

#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The variable that names the PostgreSQL server for tests.
pub const DATABASE_URL_VAR: &str = "NBTOKEN_TEST_DATABASE_URL";

/// Says that `missing` keeps `not_run` from running: a failure under `CI`, otherwise a
/// `skipped:` line written past libtest's output capture, so a plain `cargo test` shows it.
/// Each distinct line is written once per test binary.
pub fn skip(missing: &str, not_run: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI is set but {missing}: run ./test.sh, which provides it");
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let line = format!("skipped: {missing}, {not_run} not run (./test.sh runs it)\n");
    if SAID.lock().unwrap_or_else(|e| e.into_inner()).insert(line.clone()) {
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// The value of the environment variable `var` if it is set and not blank; otherwise
/// [`skip`]s `not_run` and returns `None`.
pub fn env_or_skip(var: &str, not_run: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
        _ => {
            skip(&format!("{var} is not set"), not_run);
            None
        }
    }
}

/// The PostgreSQL test server's URL, or `None` after [`skip`]ping `not_run`.
pub fn database_url(not_run: &str) -> Option<String> {
    env_or_skip(DATABASE_URL_VAR, not_run)
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// A tmpfs of a given size mounted on a fresh temporary directory, unmounted on drop: a real
/// file system that fills up, for full-disk tests.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one of `size` (`mount -o size=…`), or [`skip`]s `not_run` and returns `None`
    /// (mounting needs root).
    pub fn mount(size: &str, not_run: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary directory: {e}"));
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status();
        if status.map(|s| s.success()).unwrap_or(false) {
            return Some(Tmpfs { dir });
        }
        skip("a tmpfs cannot be mounted (needs root and `mount`)", not_run);
        None
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Writes a file in `dir` until the file system is full; returns its path.
pub fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f =
        std::fs::File::create(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    for chunk in [64 * 1024, 4096, 512, 1] {
        let buf = vec![0x5a_u8; chunk];
        while f.write_all(&buf).and_then(|()| f.flush()).is_ok() {}
    }
    path
}

/// Overwrites the last 4 KiB page of the SQLite file at `path` (a leaf of a table or an
/// index) with garbage, after checking it has more than `min_pages` pages, so a corrupt
/// database is what the test then opens.
pub fn damage_last_page(path: &Path, min_pages: usize) {
    let mut bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let pages = bytes.len() / 4096;
    assert!(pages > min_pages, "{pages} pages");
    let last = (pages - 1) * 4096;
    bytes[last..last + 4096].fill(0xff);
    std::fs::write(path, &bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Drops the PostgreSQL schema `schema` at `url`, from anywhere (`Drop` included): over a
/// connection of its own, on a thread with its own runtime, and never for ever.
///
/// The sessions holding locks on that schema's tables are ended first: they are the test's
/// own, and a test's runtime blocked in `Drop` can no longer finish a transaction one of its
/// tasks had open (a server's batched `last_used` write, say), on whose locks `DROP SCHEMA`
/// would otherwise wait for ever. Each try waits at most 5 s for a lock; after 5 tries the
/// schema is left and a warning says so.
pub fn drop_pg_schema(url: &str, schema: &str) {
    use sqlx::Connection;
    if schema.is_empty() {
        return;
    }
    let (url, name) = (url.to_owned(), schema.to_owned());
    let dropped = std::thread::spawn(move || {
        let schema = name;
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&url).await.map_err(|e| e.to_string())?;
            sqlx::query("SET lock_timeout = '5s'").execute(&mut conn).await.map_err(|e| e.to_string())?;
            let drop = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", schema.replace('"', "\"\""));
            let mut last = String::new();
            for _ in 0..5 {
                sqlx::query(
                    "SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
                     JOIN pg_class c ON c.oid = l.relation \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND l.pid <> pg_backend_pid()",
                )
                .bind(&schema)
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
                match sqlx::query(&drop).execute(&mut conn).await {
                    Ok(_) => {
                        let _ = conn.close().await;
                        return Ok(());
                    }
                    Err(e) => last = e.to_string(),
                }
            }
            Err(last)
        })
    })
    .join();
    if !matches!(dropped, Ok(Ok(()))) {
        let _ = writeln!(std::io::stderr(), "warning: could not drop test schema {schema}: {dropped:?}");
    }
}
