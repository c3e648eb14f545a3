//! The SQLite backend: the embedded default, one file beside the server.
//!
//! The database runs in WAL mode with foreign keys on, so readers never wait
//! for the writer and deleting a user deletes their tokens, and with
//! `synchronous=FULL`, so a commit the store reports is on disk. The schema
//! lives in `migrations/sqlite` and is applied when the store connects.
//!
//! A file the store creates is `0600` (it holds password hashes and v1
//! plaintexts). An empty existing file is refused, never taken for a new
//! database. A connection that comes back to the pool still inside a
//! transaction (a failed `COMMIT` whose `ROLLBACK` failed too, as on a full
//! disk) is closed, never reused: reusing it would nest later writes in a
//! transaction that is never committed, acknowledged but never saved, while
//! it holds the write lock.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::Connection;
use time::OffsetDateTime;

use crate::changes::ChangeListener;
use crate::health::{Health, WriteProbe};
use crate::sql::record::now;
use crate::sql::{as_is, sealed, Dialect, SqlStore, Statement, Syntax, Tables, NBTOKEN};
use crate::{Result, StoreError, Touch};

mod convert;

pub(crate) use convert::map_err;
use convert::{query, timestamp};

/// The schema, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Connections in the pool. SQLite has one writer at a time; the rest serve reads.
const MAX_CONNECTIONS: u32 = 8;
/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free connection before the store reports itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`crate::Store`] on an SQLite database file.
///
/// Cloning is cheap and shares the connection pool.
pub type SqliteStore = SqlStore<Sqlite>;

/// The SQLite [`Dialect`]: the pool, the file, and the write probe behind [`Health`].
#[derive(Clone, Debug)]
pub struct Sqlite {
    pool: SqlitePool,
    /// The database file (`None` in memory), for messages and checks.
    path: Option<PathBuf>,
    write_probe: Arc<WriteProbe>,
    read_failing_since: Arc<Mutex<Option<OffsetDateTime>>>,
}

/// The database file an SQLite URL or bare path names, if it names one
/// (`None` for `sqlite::memory:` and for PostgreSQL URLs).
pub fn database_file(url: &str) -> Option<PathBuf> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return None;
    }
    if url.starts_with("sqlite:") {
        if names_memory(url) {
            return None;
        }
        let options = SqliteConnectOptions::from_str(url).ok()?;
        return Some(options.get_filename().to_path_buf());
    }
    Some(PathBuf::from(url))
}

/// Whether an `sqlite:` URL names an in-memory database.
fn names_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

impl SqlStore<Sqlite> {
    /// Opens (creating it if missing) the database at `url` and applies the schema.
    ///
    /// `url` is an sqlx SQLite URL (`sqlite://path/to/db.sqlite3?mode=rwc`,
    /// `sqlite::memory:`) or a bare file path. The file is created unless the
    /// URL asks for a `mode=` itself.
    pub async fn connect(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            let mut options = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("invalid SQLite URL: {e}")))?;
            if !url.contains("mode=") {
                options = options.create_if_missing(true);
            }
            let in_memory = names_memory(url);
            // `mode=ro` / `mode=rw` never create the file; without a mode, or with `rwc`, we do.
            let creates = !url.contains("mode=") || url.contains("mode=rwc");
            Self::open(options, in_memory, creates).await
        } else {
            Self::open_file(Path::new(url)).await
        }
    }

    /// Opens (creating it if missing) the database file at `path` and applies the schema.
    pub async fn open_file(path: &Path) -> Result<Self> {
        Self::open(SqliteConnectOptions::new().filename(path).create_if_missing(true), false, true).await
    }

    async fn open(options: SqliteConnectOptions, in_memory: bool, creates: bool) -> Result<Self> {
        let path = (!in_memory).then(|| options.get_filename().to_path_buf());
        let created = match &path {
            Some(path) => prepare_file(path, creates)?,
            None => false,
        };
        let opened = Self::open_pool(options, in_memory, path.as_deref()).await;
        if let (Err(_), true, Some(path)) = (&opened, created, &path) {
            // Leave no empty file behind: the next start would refuse it.
            if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(path);
            }
        }
        let pool = opened?;
        let db = Sqlite { pool, path, write_probe: Arc::default(), read_failing_since: Arc::default() };
        Ok(SqlStore::new(db, NBTOKEN))
    }

    async fn open_pool(
        options: SqliteConnectOptions,
        in_memory: bool,
        path: Option<&Path>,
    ) -> Result<SqlitePool> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full);
        let mut pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_release(|conn, _| {
                Box::pin(async move {
                    // A dropped transaction queued its ROLLBACK on the connection's
                    // worker; the ping runs after it. Still inside a transaction
                    // means the ROLLBACK failed: close the connection (which rolls
                    // back) rather than nest the next caller's writes in it.
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            });
        if in_memory {
            // An in-memory database lives as long as one connection to it:
            // keep one open for the life of the pool.
            pool = pool.min_connections(1).idle_timeout(None).max_lifetime(None);
        }
        let named = |e: StoreError| match (path, e) {
            (Some(p), StoreError::Corrupt(e)) => StoreError::Corrupt(format!(
                "{}: {e} (restore it from a backup; nbtoken will not start on it)",
                p.display()
            )),
            (Some(p), StoreError::Unavailable(e)) => StoreError::Unavailable(format!(
                "cannot open {}: {e} (check that the file and its directory are writable by this user \
                 and the file system is mounted read-write and not full)",
                p.display()
            )),
            (_, e) => e,
        };
        let pool = pool.connect_with(options).await.map_err(map_err).map_err(named)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(e) => map_err(e),
                other => StoreError::Database(format!("cannot apply the schema: {other}")),
            })
            .map_err(named)?;
        Ok(pool)
    }

    /// Commits a tiny write now (the health check's probe, not rate-limited).
    pub async fn check_writable(&self) -> Result<()> {
        self.db.check_writable().await
    }

    /// The connection pool, for this crate's tests that need raw SQL (not an API).
    #[doc(hidden)]
    pub fn pool(&self) -> &SqlitePool {
        &self.db.pool
    }

    /// Copies the write-ahead log into the database file and empties it.
    ///
    /// Afterwards the main file alone holds every committed row (for backups).
    pub async fn checkpoint(&self) -> Result<()> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.db.pool).await.map_err(map_err)?;
        Ok(())
    }
}

/// Before SQLite opens `path`: an existing empty file is refused (SQLite would
/// take it for a new database, and the server for a first start); a missing
/// one is created `0600` when the store may create it, so the `-wal` and
/// `-shm` files SQLite adds beside it get the same mode.
///
/// Answers whether it created the file.
fn prepare_file(path: &Path, creates: bool) -> Result<bool> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == 0 => Err(StoreError::Corrupt(format!(
            "{} is empty (0 bytes): not a database nbtoken wrote, or a truncated one. \
             Refusing to open it as a new database (a first start would create a new admin): \
             restore it from a backup, or delete it to start afresh",
            path.display()
        ))),
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && creates => Ok(create_private(path)),
        // Anything else (no such file without create, no permission…) SQLite reports itself.
        Err(_) => Ok(false),
    }
}

/// Creates `path` empty with mode `0600`; `false` if it did not (it appeared
/// meanwhile, or its directory is missing: SQLite's own error says so).
#[cfg(unix)]
fn create_private(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).is_ok()
}

#[cfg(not(unix))]
fn create_private(_: &Path) -> bool {
    false
}

impl Sqlite {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    /// Commits a tiny write now and records the outcome for [`Health`].
    async fn check_writable(&self) -> Result<()> {
        let result = self.probe_write().await;
        self.write_probe.record(result.is_ok()).await;
        result
    }

    async fn probe_write(&self) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO nbtoken_health (id, probed_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
        )
        .bind(timestamp(now())?)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }
}

impl sealed::Sealed for Sqlite {}

impl Dialect for Sqlite {
    type Row = SqliteRow;
    type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

    const NAME: &'static str = "sqlite";
    const SYNTAX: Syntax = Syntax {
        arrays: false,
        nets_cast: "",
        // SQLite compares text by bytes unless told otherwise.
        byte_order: "",
        read_nets: as_is,
        read_ip: as_is,
    };

    async fn begin(&self, _snapshot: bool) -> Result<Self::Tx> {
        // A read transaction sees one snapshot in WAL mode already.
        self.pool.begin().await.map_err(map_err)
    }

    async fn commit(tx: Self::Tx) -> Result<()> {
        tx.commit().await.map_err(map_err)
    }

    async fn fetch_all(&self, tx: Option<&mut Self::Tx>, statement: &Statement) -> Result<Vec<SqliteRow>> {
        on_tx_or_pool!(tx, &self.pool, query(statement)?.fetch_all).map_err(map_err)
    }

    async fn execute(&self, tx: Option<&mut Self::Tx>, statement: &Statement) -> Result<u64> {
        on_tx_or_pool!(tx, &self.pool, query(statement)?.execute).map(|r| r.rows_affected()).map_err(map_err)
    }

    async fn guard<T: Send>(&self, call: impl std::future::Future<Output = Result<T>> + Send) -> Result<T> {
        call.await
    }

    async fn touch_last_used(&self, tx: &mut Self::Tx, tables: &Tables, touches: &[Touch]) -> Result<()> {
        // Text comparison is time comparison: every timestamp has the same width.
        // The address goes with the time: only a touch that moves last_used
        // forward writes it, so the latest touch's address wins.
        let template = if tables.nbtoken_columns {
            "UPDATE {tokens} SET last_used = $1, last_used_ip = $3 \
             WHERE id = $2 AND (last_used IS NULL OR last_used < $1)"
        } else {
            "UPDATE {tokens} SET last_used = $1 WHERE id = $2 AND (last_used IS NULL OR last_used < $1)"
        };
        for touch in touches {
            let mut s = Statement::new(Self::SYNTAX, tables.sql(template)).arg(touch.at).arg(touch.token_id);
            if tables.nbtoken_columns {
                s = s.arg(touch.ip.map(|ip| ip.to_string()));
            }
            self.execute(Some(tx), &s).await?;
        }
        Ok(())
    }

    /// Whether the database reads and, by a write probe run at most every
    /// [`crate::health::WRITE_PROBE_INTERVAL`], writes.
    async fn health(&self) -> Health {
        let read = self.ping().await;
        let since = {
            let mut failing = self.read_failing_since.lock().unwrap_or_else(PoisonError::into_inner);
            match read {
                Ok(()) => {
                    *failing = None;
                    None
                }
                Err(_) => Some(*failing.get_or_insert_with(now)),
            }
        };
        if let Some(since) = since {
            return Health::Unreachable { since };
        }
        match self.write_probe.check(self.probe_write()).await {
            None => Health::Ok,
            Some(since) => Health::CannotWrite { since },
        }
    }

    /// Checks what a server should not start without: the file is intact
    /// (`PRAGMA quick_check`) and a write commits. The errors say which and
    /// name the file.
    async fn preflight(&self) -> Result<()> {
        let file = self
            .path
            .as_ref()
            .map_or_else(|| "the in-memory database".to_owned(), |p| p.display().to_string());
        let findings: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| match map_err(e) {
                StoreError::Corrupt(e) => {
                    StoreError::Corrupt(format!("{file}: {e} (restore it from a backup)"))
                }
                other => other,
            })?;
        if findings.iter().any(|f| f != "ok") {
            return Err(StoreError::Corrupt(format!(
                "{file} failed its integrity check ({} problem(s), first: {}); restore it from a backup",
                findings.len(),
                findings.first().map(String::as_str).unwrap_or_default()
            )));
        }
        self.check_writable().await.map_err(|e| {
            StoreError::Unavailable(format!(
                "{file} cannot be written ({e}): check that the file and its directory are writable, \
                 the file system is mounted read-write and is not full"
            ))
        })
    }

    async fn close(&self) {
        // The write-ahead log is folded into the file first. The last connection to close
        // would do that and delete the log, but connections of the pool closing at the same
        // time can each find another still open and leave it to that one, and a process that
        // exits then leaves its last writes in the log only. After this the file alone is the
        // database, whatever log file remains (empty). Best effort: a close reports nothing.
        if self.path.is_some() {
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await;
        }
        self.pool.close().await;
    }

    /// The change log the triggers of `0004_change_log.sql` write, polled.
    async fn changes(&self) -> Result<Option<ChangeListener>> {
        ChangeListener::polled(&self.pool).await.map(Some)
    }
}
