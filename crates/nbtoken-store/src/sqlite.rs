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

use nbtoken_core::{Digest, PepperId, PreviousSecret, StoredCredential};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection};
use time::OffsetDateTime;

use crate::health::{Health, WriteProbe};
use crate::{
    NewToken, NewUser, Page, PepperUsage, Result, Store, StoreError, TokenFilter, TokenPatch, TokenRecord,
    Touch, User, UserFilter, UserPatch,
};

mod convert;
mod filter;

use convert::{
    allowed_ips_json, ip_text, map_err, now, opt_timestamp, timestamp, token_from_row, user_from_row,
    TOKEN_SELECT, USER_COLUMNS,
};
use filter::{push_page, push_token_filter, push_user_filter};

/// The schema, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Connections in the pool. SQLite has one writer at a time; the rest serve reads.
const MAX_CONNECTIONS: u32 = 8;
/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free connection before the store reports itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`Store`] on an SQLite database file.
///
/// Cloning is cheap and shares the connection pool.
#[derive(Clone, Debug)]
pub struct SqliteStore {
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

impl SqliteStore {
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
        Ok(Self { pool, path, write_probe: Arc::default(), read_failing_since: Arc::default() })
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

    /// Checks what a server should not start without: the file is intact
    /// (`PRAGMA quick_check`) and a write commits. The errors say which and
    /// name the file.
    pub async fn preflight(&self) -> Result<()> {
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

    /// Commits a tiny write now (the health check's probe, not rate-limited).
    pub async fn check_writable(&self) -> Result<()> {
        let result = self.probe_write().await;
        self.write_probe.record(result.is_ok()).await;
        result
    }

    async fn probe_write(&self) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO nbtoken_health (id, probed_at) VALUES (1, ?) \
             ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
        )
        .bind(timestamp(now())?)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    /// Whether the database reads and, by a write probe run at most every
    /// [`crate::health::WRITE_PROBE_INTERVAL`], writes.
    pub async fn health(&self) -> Health {
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

    /// The connection pool, for maintenance and tests that need raw SQL.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Copies the write-ahead log into the database file and empties it.
    ///
    /// Afterwards the main file alone holds every committed row (for backups).
    pub async fn checkpoint(&self) -> Result<()> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    /// Closes every connection; later calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
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

async fn fetch_user(conn: &mut SqliteConnection, id: i64) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await.map_err(map_err)?;
    row.as_ref().map(user_from_row).transpose()
}

async fn fetch_token(
    conn: &mut SqliteConnection,
    column: &str,
    value: TokenLookup<'_>,
) -> Result<Option<TokenRecord>> {
    let sql = format!("{TOKEN_SELECT} WHERE {column} = ?");
    let query = sqlx::query(&sql);
    let query = match value {
        TokenLookup::Id(id) => query.bind(id),
        TokenLookup::Text(s) => query.bind(s),
    };
    let row = query.fetch_optional(conn).await.map_err(map_err)?;
    row.as_ref().map(token_from_row).transpose()
}

/// A value to find a token by.
#[derive(Clone, Copy)]
enum TokenLookup<'a> {
    Id(i64),
    Text(&'a str),
}

fn not_found_if_untouched(result: sqlx::sqlite::SqliteQueryResult) -> Result<()> {
    if result.rows_affected() == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

impl Store for SqliteStore {
    async fn create_user(&self, user: NewUser) -> Result<User> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let result = sqlx::query(
            "INSERT INTO users (username, password, first_name, last_name, email, is_active, is_superuser, \
             can_grant_tokens, date_joined) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(&user.first_name)
        .bind(&user.last_name)
        .bind(&user.email)
        .bind(user.is_active)
        .bind(user.is_superuser)
        .bind(user.can_grant_tokens)
        .bind(timestamp(now())?)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let created = fetch_user(&mut tx, result.last_insert_rowid()).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(map_err)?;
        Ok(created)
    }

    async fn user(&self, id: i64) -> Result<Option<User>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        fetch_user(&mut conn, id).await
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.username = ?");
        let row = sqlx::query(&sql).bind(username).fetch_optional(&self.pool).await.map_err(map_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self, filter: &UserFilter, page: Page) -> Result<(u64, Vec<User>)> {
        // One read transaction: the count and the page see the same snapshot.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let mut count = QueryBuilder::new("SELECT COUNT(*) FROM users u");
        push_user_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await.map_err(map_err)?;

        let mut select = QueryBuilder::new(format!("SELECT {USER_COLUMNS} FROM users u"));
        push_user_filter(&mut select, filter);
        select.push(" ORDER BY u.username ASC, u.id ASC");
        push_page(&mut select, page);
        let rows = select.build().fetch_all(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        let users = rows.iter().map(user_from_row).collect::<Result<Vec<_>>>()?;
        Ok((u64::try_from(total).unwrap_or(0), users))
    }

    async fn update_user(&self, id: i64, patch: UserPatch) -> Result<User> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let last_login = opt_timestamp(patch.last_login)?;
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE users SET ");
        let mut set = qb.separated(", ");
        let changes = set_columns!(set;
            "username" => patch.username;
            "password" => patch.password_hash;
            "first_name" => patch.first_name;
            "last_name" => patch.last_name;
            "email" => patch.email;
            "is_active" => patch.is_active;
            "is_superuser" => patch.is_superuser;
            "can_grant_tokens" => patch.can_grant_tokens;
            "last_login" => last_login;
        );
        if changes > 0 {
            qb.push(" WHERE id = ").push_bind(id);
            not_found_if_untouched(qb.build().execute(&mut *tx).await.map_err(map_err)?)?;
        }
        let user = fetch_user(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(map_err)?;
        Ok(user)
    }

    async fn delete_user(&self, id: i64) -> Result<()> {
        let result = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        not_found_if_untouched(result)
    }

    async fn create_token(&self, token: NewToken) -> Result<TokenRecord> {
        let (version, key, pepper_id, digest, plaintext, previous) = match &token.credential {
            StoredCredential::V1 { plaintext } => (1_i64, None, None, None, Some(plaintext.expose()), None),
            StoredCredential::V2 { key, pepper_id, digest, previous } => (
                2,
                Some(key.as_str()),
                Some(i64::from(pepper_id.get())),
                Some(digest.to_hex()),
                None,
                previous.as_ref(),
            ),
        };
        let prev_until = opt_timestamp(previous.map(|p| p.valid_until))?;
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let result = sqlx::query(
            "INSERT INTO users_token (version, key, pepper_id, hmac_digest, plaintext, user_id, description, \
             created, expires, enabled, write_enabled, allowed_ips, prev_pepper_id, prev_hmac_digest, \
             prev_valid_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(version)
        .bind(key)
        .bind(pepper_id)
        .bind(digest)
        .bind(plaintext)
        .bind(token.user_id)
        .bind(&token.description)
        .bind(timestamp(now())?)
        .bind(opt_timestamp(token.expires)?)
        .bind(token.enabled)
        .bind(token.write_enabled)
        .bind(allowed_ips_json(&token.allowed_ips)?)
        .bind(previous.map(|p| i64::from(p.pepper_id.get())))
        .bind(previous.map(|p| p.digest.to_hex()))
        .bind(prev_until)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let record = fetch_token(&mut tx, "t.id", TokenLookup::Id(result.last_insert_rowid()))
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    async fn token(&self, id: i64) -> Result<Option<TokenRecord>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        fetch_token(&mut conn, "t.id", TokenLookup::Id(id)).await
    }

    async fn token_by_key(&self, key: &str) -> Result<Option<TokenRecord>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        fetch_token(&mut conn, "t.version = 2 AND t.key", TokenLookup::Text(key)).await
    }

    async fn token_by_plaintext(&self, plaintext: &str) -> Result<Option<TokenRecord>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        fetch_token(&mut conn, "t.version = 1 AND t.plaintext", TokenLookup::Text(plaintext)).await
    }

    async fn list_tokens(&self, filter: &TokenFilter, page: Page) -> Result<(u64, Vec<TokenRecord>)> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let mut count =
            QueryBuilder::new("SELECT COUNT(*) FROM users_token t JOIN users u ON u.id = t.user_id");
        push_token_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await.map_err(map_err)?;

        let mut select = QueryBuilder::new(TOKEN_SELECT);
        push_token_filter(&mut select, filter);
        select.push(" ORDER BY t.created DESC, t.id DESC");
        push_page(&mut select, page);
        let rows = select.build().fetch_all(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        let tokens = rows.iter().map(token_from_row).collect::<Result<Vec<_>>>()?;
        Ok((u64::try_from(total).unwrap_or(0), tokens))
    }

    async fn update_token(&self, id: i64, patch: TokenPatch) -> Result<TokenRecord> {
        let expires = patch.expires.map(opt_timestamp).transpose()?;
        let allowed_ips = patch.allowed_ips.as_ref().map(allowed_ips_json).transpose()?;
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE users_token SET ");
        let mut set = qb.separated(", ");
        let changes = set_columns!(set;
            "description" => patch.description;
            "expires" => expires;
            "enabled" => patch.enabled;
            "write_enabled" => patch.write_enabled;
            "allowed_ips" => allowed_ips;
            "user_id" => patch.user_id;
        );
        if changes > 0 {
            qb.push(" WHERE id = ").push_bind(id);
            not_found_if_untouched(qb.build().execute(&mut *tx).await.map_err(map_err)?)?;
        }
        let record = fetch_token(&mut tx, "t.id", TokenLookup::Id(id)).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    async fn delete_token(&self, id: i64) -> Result<()> {
        let result = sqlx::query("DELETE FROM users_token WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        not_found_if_untouched(result)
    }

    async fn rotate_token(
        &self,
        id: i64,
        pepper_id: PepperId,
        digest: Digest,
        previous: Option<PreviousSecret>,
    ) -> Result<TokenRecord> {
        let prev_until = opt_timestamp(previous.as_ref().map(|p| p.valid_until))?;
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let result = sqlx::query(
            "UPDATE users_token SET pepper_id = ?, hmac_digest = ?, prev_pepper_id = ?, prev_hmac_digest = ?, \
             prev_valid_until = ? WHERE id = ? AND version = 2",
        )
        .bind(i64::from(pepper_id.get()))
        .bind(digest.to_hex())
        .bind(previous.as_ref().map(|p| i64::from(p.pepper_id.get())))
        .bind(previous.as_ref().map(|p| p.digest.to_hex()))
        .bind(prev_until)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        not_found_if_untouched(result)?;
        let record = fetch_token(&mut tx, "t.id", TokenLookup::Id(id)).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    async fn apply_touches(&self, touches: &[Touch]) -> Result<()> {
        if touches.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        for touch in touches {
            // Text comparison is time comparison: every timestamp has the same width.
            // The address goes with the time: only a touch that moves
            // last_used forward writes it, so the latest touch's address wins.
            sqlx::query(
                "UPDATE users_token SET last_used = ?1, last_used_ip = ?3 \
                 WHERE id = ?2 AND (last_used IS NULL OR last_used < ?1)",
            )
            .bind(timestamp(touch.at)?)
            .bind(touch.token_id)
            .bind(ip_text(touch.ip))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            if let Some((pepper_id, digest)) = &touch.rehash {
                // Only forward to a newer pepper: if the token was rotated
                // (under the current pepper) after this touch was queued, the
                // rotation wins and the stale re-hash is dropped.
                sqlx::query(
                    "UPDATE users_token SET pepper_id = ?1, hmac_digest = ?2 \
                     WHERE id = ?3 AND version = 2 AND pepper_id < ?1",
                )
                .bind(i64::from(pepper_id.get()))
                .bind(digest.to_hex())
                .bind(touch.token_id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
        }
        tx.commit().await.map_err(map_err)
    }

    async fn pepper_usage(&self) -> Result<Vec<PepperUsage>> {
        // UNION (not UNION ALL): a token whose previous digest uses the same
        // pepper as its current one counts once for it.
        let rows = sqlx::query(
            "SELECT pepper_id, COUNT(*) AS tokens, MAX(last_used) AS last_used FROM ( \
               SELECT id, pepper_id, last_used FROM users_token WHERE version = 2 AND pepper_id IS NOT NULL \
               UNION \
               SELECT id, prev_pepper_id, last_used FROM users_token \
                 WHERE version = 2 AND prev_pepper_id IS NOT NULL AND prev_valid_until > ? \
             ) GROUP BY pepper_id ORDER BY pepper_id",
        )
        .bind(timestamp(now())?)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let pepper_id: i64 = row.try_get("pepper_id").map_err(map_err)?;
                let tokens: i64 = row.try_get("tokens").map_err(map_err)?;
                let last_used: Option<String> = row.try_get("last_used").map_err(map_err)?;
                Ok(PepperUsage {
                    pepper_id: convert::usage_pepper_id(pepper_id)?,
                    tokens: u64::try_from(tokens).unwrap_or(0),
                    last_used: convert::usage_last_used(last_used)?,
                })
            })
            .collect()
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }
}
