//! [`NetBoxStore`]: NetBox's own users and tokens, served from NetBox's database; their management stays NetBox's.
//!
//! Reads go through the one [`SqlStore`] over the PostgreSQL dialect with
//! NetBox's tables ([`NETBOX`]): `users_token` and `users_user` exactly as
//! NetBox 4.5+ defines them (`allowed_ips cidr[]`, `version`, `key`,
//! `pepper_id`, `hmac_digest`). NetBox has no previous secret and no
//! grant-token permission, and a user's Django password hash never leaves the
//! database (nbtoken checks no Django hash).
//!
//! Writes: creating, changing, rotating or deleting tokens and users fails
//! with [`StoreError::ReadOnly`] ([`MANAGED_BY_NETBOX`]). What a use writes
//! follows NetBox: `last_used` moves only when it is unset or more than 60 s
//! older than the use, and not while NetBox's maintenance mode is on (NetBox
//! 4.7.3 `netbox/api/authentication.py`). A re-hash under a newer pepper
//! (only with [`NetBoxOptions::rehash`]) is written only while the row still
//! holds the digest the request verified ([`Touch::rehash_from`]).
//!
//! NetBox's tables are never created, altered or migrated. What nbtoken keeps
//! beyond NetBox (who used each token, v1 use counts, the shared failure
//! budgets) lives in a schema of its own, [`SCHEMA`], created at connect;
//! optional change-notify triggers and removal are in [`NetBoxAdmin`].

use std::net::IpAddr;

use nbtoken_core::{Digest, PepperId, PreviousSecret};
use sqlx::postgres::PgPool;
use sqlx::{Connection, Row};
use time::OffsetDateTime;

use crate::changes::ChangeListener;
use crate::health::Health;
use crate::postgres::{dialect, first_connection, map_err, PgOptions, Postgres};
use crate::sql::record::truncate;
use crate::sql::{Dialect, SqlStore, NETBOX};
use crate::{
    NewToken, NewUser, Page, PepperUsage, Result, Store, StoreError, TokenFilter, TokenPatch, TokenRecord,
    Touch, User, UserFilter, UserPatch,
};

mod admin;

pub use admin::{NetBoxAdmin, NetBoxStatus, TokenCount};

/// The schema nbtoken keeps its own tables in, beside NetBox's.
pub const SCHEMA: &str = "nbtoken";

/// Why a management write fails on a NetBox database.
pub const MANAGED_BY_NETBOX: &str = "this nbtoken serves NetBox's database: token and user management \
     stays NetBox's (use NetBox's UI or REST API; for `nbtoken migrate apply`, add `--url` with \
     NetBox's URL)";

/// The longest User-Agent kept; longer ones are cut (they are only shown to operators).
pub use crate::USER_AGENT_MAX;

/// How to connect a [`NetBoxStore`].
#[derive(Clone, Debug, Default)]
pub struct NetBoxOptions {
    pg: PgOptions,
    rehash: bool,
}

impl NetBoxOptions {
    /// The defaults: PostgreSQL's defaults, no re-hashing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a token verified under an older pepper is re-hashed under the newest one by
    /// writing `hmac_digest` and `pepper_id` to NetBox's row (`NBTOKEN_REHASH=on`).
    pub fn rehash(mut self, on: bool) -> Self {
        self.rehash = on;
        self
    }

    /// The connection pool's options.
    pub fn pg(mut self, pg: PgOptions) -> Self {
        self.pg = pg;
        self
    }
}

/// What nbtoken recorded about one token's uses (in `nbtoken.token_use`): where and by what
/// it was last used, and for a v1 token how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenUse {
    /// The token.
    pub token_id: i64,
    /// The latest recorded use.
    pub last_seen: OffsetDateTime,
    /// Its client address.
    pub last_ip: Option<IpAddr>,
    /// Its `User-Agent`.
    pub last_user_agent: Option<String>,
    /// Recorded uses (one per `last_used` write the server queued, at most one a minute).
    pub uses: u64,
    /// Recorded uses as a v1 token.
    pub v1_uses: u64,
    /// The latest recorded v1 use, its address and `User-Agent`.
    pub v1_last: Option<(OffsetDateTime, Option<IpAddr>, Option<String>)>,
}

/// A [`Store`] on a NetBox 4.5+ database. Cloning is cheap and shares the pool.
#[derive(Clone, Debug)]
pub struct NetBoxStore {
    inner: SqlStore<Postgres>,
    rehash: bool,
    /// The schema NetBox's tables are in (the one change notifications name).
    netbox_schema: String,
    /// Whether NetBox keeps its dynamic configuration (maintenance mode) in this database.
    config_revisions: bool,
}

impl NetBoxStore {
    /// Connects to NetBox's database, checks that NetBox's tables are there ("not a NetBox
    /// 4.5+ database" naming what is missing, else) and creates or updates the `nbtoken` schema.
    pub async fn connect(url: &str, options: NetBoxOptions) -> Result<Self> {
        let (mut conn, connect, server) = first_connection(url, &options.pg).await?;
        let found = admin::check_netbox(&mut conn).await?;
        admin::migrate(&mut conn).await?;
        // Closing politely is a courtesy; the pool opens its own connections.
        let _ = conn.close().await;
        Ok(Self {
            inner: SqlStore::new(dialect(connect, options.pg, &server), NETBOX),
            rehash: options.rehash,
            netbox_schema: found.schema,
            config_revisions: found.config_revisions,
        })
    }

    /// The connection pool, for the failure budgets and this crate's tests (not an API).
    #[doc(hidden)]
    pub fn pool(&self) -> &PgPool {
        self.inner.pool()
    }

    /// Whether re-hashes are written.
    pub fn rehashes(&self) -> bool {
        self.rehash
    }

    /// What nbtoken recorded about the uses of these tokens (those it saw used), by token id.
    pub async fn token_uses(&self, ids: &[i64]) -> Result<Vec<TokenUse>> {
        let sql = format!(
            "SELECT token_id, last_seen, host(last_ip) AS last_ip, last_user_agent, uses, v1_uses, \
             v1_last_seen, host(v1_last_ip) AS v1_last_ip, v1_last_user_agent \
             FROM {SCHEMA}.token_use WHERE token_id = ANY($1) ORDER BY token_id"
        );
        let rows = self
            .inner
            .db
            .guard(async { sqlx::query(&sql).bind(ids).fetch_all(self.pool()).await.map_err(map_err) })
            .await?;
        let ip = |s: Option<String>| s.and_then(|s| s.parse::<IpAddr>().ok());
        rows.iter()
            .map(|r| {
                let uses: i64 = r.try_get("uses").map_err(map_err)?;
                let v1_uses: i64 = r.try_get("v1_uses").map_err(map_err)?;
                let v1_seen: Option<OffsetDateTime> = r.try_get("v1_last_seen").map_err(map_err)?;
                Ok(TokenUse {
                    token_id: r.try_get("token_id").map_err(map_err)?,
                    last_seen: r.try_get("last_seen").map_err(map_err)?,
                    last_ip: ip(r.try_get("last_ip").map_err(map_err)?),
                    last_user_agent: r.try_get("last_user_agent").map_err(map_err)?,
                    uses: u64::try_from(uses).unwrap_or(0),
                    v1_uses: u64::try_from(v1_uses).unwrap_or(0),
                    v1_last: match v1_seen {
                        Some(at) => Some((
                            at,
                            ip(r.try_get("v1_last_ip").map_err(map_err)?),
                            r.try_get("v1_last_user_agent").map_err(map_err)?,
                        )),
                        None => None,
                    },
                })
            })
            .collect()
    }

    /// The condition that holds unless NetBox's maintenance mode is on: NetBox then takes its
    /// database as read-only and writes no `last_used`, so nbtoken writes none either.
    fn not_in_maintenance(&self) -> &'static str {
        if self.config_revisions {
            "NOT COALESCE((SELECT (c.data->>'MAINTENANCE_MODE')::boolean FROM core_configrevision c \
             WHERE c.active LIMIT 1), FALSE)"
        } else {
            "TRUE"
        }
    }

    async fn write_touches(&self, touches: &[Touch]) -> Result<()> {
        let mut ids: Vec<i64> = touches.iter().map(|t| t.token_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let touch_ids: Vec<i64> = touches.iter().map(|t| t.token_id).collect();
        let ats: Vec<_> = touches.iter().map(|t| truncate(t.at)).collect();
        let ips: Vec<Option<String>> = touches.iter().map(|t| t.ip.map(|ip| ip.to_string())).collect();
        let agents: Vec<Option<String>> = touches
            .iter()
            .map(|t| t.user_agent.as_ref().map(|ua| ua.chars().take(USER_AGENT_MAX).collect()))
            .collect();

        let mut tx = self.inner.db.begin(false).await?;
        // Several instances flush at once: taking the row locks in id order first means two
        // batches never wait on each other in a cycle.
        sqlx::query("SELECT id FROM users_token WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        // NetBox's rule (api/authentication.py): `if not token.last_used or (timezone.now() -
        // token.last_used).total_seconds() > 60`, and not in maintenance mode. The latest touch
        // per token stands for the batch; every touch counts as a use in nbtoken's own table.
        let sql = format!(
            "WITH batch AS ( \
               SELECT DISTINCT ON (id) id, at, ip, ua, COUNT(*) OVER (PARTITION BY id) AS n \
               FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], $4::text[]) \
                 WITH ORDINALITY AS u (id, at, ip, ua, k) \
               ORDER BY id, at DESC, k ASC), \
             moved AS ( \
               UPDATE users_token t SET last_used = b.at FROM batch b \
               WHERE t.id = b.id AND (t.last_used IS NULL OR b.at - t.last_used > interval '60 seconds') \
                 AND {maintenance} RETURNING t.id) \
             INSERT INTO {SCHEMA}.token_use AS x (token_id, last_seen, last_ip, last_user_agent, uses, \
               v1_uses, v1_last_seen, v1_last_ip, v1_last_user_agent) \
             SELECT b.id, b.at, b.ip::inet, b.ua, b.n, \
               CASE WHEN t.version = 1 THEN b.n ELSE 0 END, \
               CASE WHEN t.version = 1 THEN b.at END, \
               CASE WHEN t.version = 1 THEN b.ip::inet END, \
               CASE WHEN t.version = 1 THEN b.ua END \
             FROM batch b JOIN users_token t ON t.id = b.id \
             ON CONFLICT (token_id) DO UPDATE SET \
               last_ip = CASE WHEN EXCLUDED.last_seen >= x.last_seen THEN EXCLUDED.last_ip ELSE x.last_ip END, \
               last_user_agent = CASE WHEN EXCLUDED.last_seen >= x.last_seen \
                 THEN EXCLUDED.last_user_agent ELSE x.last_user_agent END, \
               last_seen = GREATEST(x.last_seen, EXCLUDED.last_seen), \
               uses = x.uses + EXCLUDED.uses, \
               v1_uses = x.v1_uses + EXCLUDED.v1_uses, \
               v1_last_ip = CASE WHEN EXCLUDED.v1_last_seen >= x.v1_last_seen OR x.v1_last_seen IS NULL \
                 THEN COALESCE(EXCLUDED.v1_last_ip, x.v1_last_ip) ELSE x.v1_last_ip END, \
               v1_last_user_agent = CASE WHEN EXCLUDED.v1_last_seen >= x.v1_last_seen OR x.v1_last_seen IS NULL \
                 THEN COALESCE(EXCLUDED.v1_last_user_agent, x.v1_last_user_agent) ELSE x.v1_last_user_agent END, \
               v1_last_seen = GREATEST(x.v1_last_seen, EXCLUDED.v1_last_seen)",
            maintenance = self.not_in_maintenance(),
        );
        sqlx::query(&sql)
            .bind(&touch_ids)
            .bind(&ats)
            .bind(&ips)
            .bind(&agents)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if self.rehash {
            for touch in touches {
                let (Some((pepper_id, digest)), Some(from)) = (&touch.rehash, &touch.rehash_from) else {
                    continue;
                };
                // Only over the digest the request verified: a token regenerated in NetBox
                // meanwhile keeps NetBox's new digest.
                let sql = format!(
                    "UPDATE users_token SET pepper_id = $1, hmac_digest = $2 \
                     WHERE id = $3 AND version = 2 AND hmac_digest = $4 AND pepper_id < $1 AND {}",
                    self.not_in_maintenance()
                );
                sqlx::query(&sql)
                    .bind(i32::from(pepper_id.get()))
                    .bind(digest.to_hex())
                    .bind(touch.token_id)
                    .bind(from.to_hex())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
        }
        Postgres::commit(tx).await
    }
}

/// The answer of every management write.
fn read_only<T>() -> Result<T> {
    Err(StoreError::ReadOnly(MANAGED_BY_NETBOX))
}

impl Store for NetBoxStore {
    async fn create_user(&self, _user: NewUser) -> Result<User> {
        read_only()
    }

    async fn user(&self, id: i64) -> Result<Option<User>> {
        self.inner.user(id).await
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        self.inner.user_by_name(username).await
    }

    async fn list_users(&self, filter: &UserFilter, page: Page) -> Result<(u64, Vec<User>)> {
        self.inner.list_users(filter, page).await
    }

    async fn update_user(&self, _id: i64, _patch: UserPatch) -> Result<User> {
        read_only()
    }

    async fn delete_user(&self, _id: i64) -> Result<()> {
        read_only()
    }

    async fn create_token(&self, _token: NewToken) -> Result<TokenRecord> {
        read_only()
    }

    async fn token(&self, id: i64) -> Result<Option<TokenRecord>> {
        self.inner.token(id).await
    }

    async fn token_by_key(&self, key: &str) -> Result<Option<TokenRecord>> {
        self.inner.token_by_key(key).await
    }

    async fn token_by_plaintext(&self, plaintext: &str) -> Result<Option<TokenRecord>> {
        self.inner.token_by_plaintext(plaintext).await
    }

    async fn list_tokens(&self, filter: &TokenFilter, page: Page) -> Result<(u64, Vec<TokenRecord>)> {
        self.inner.list_tokens(filter, page).await
    }

    async fn update_token(&self, _id: i64, _patch: TokenPatch) -> Result<TokenRecord> {
        read_only()
    }

    async fn delete_token(&self, _id: i64) -> Result<()> {
        read_only()
    }

    async fn rotate_token(
        &self,
        _id: i64,
        _pepper_id: PepperId,
        _digest: Digest,
        _previous: Option<PreviousSecret>,
    ) -> Result<TokenRecord> {
        read_only()
    }

    async fn apply_touches(&self, touches: &[Touch]) -> Result<()> {
        if touches.is_empty() {
            return Ok(());
        }
        self.inner.db.guard(self.write_touches(touches)).await
    }

    /// Counts go to `nbtoken.v1_use_days`, even in NetBox's maintenance mode: they are
    /// nbtoken's own table, not NetBox's.
    async fn add_v1_uses(&self, counts: &[crate::DayUses]) -> Result<()> {
        self.inner.add_v1_uses(counts).await
    }

    async fn v1_uses_per_day(&self, days: u32, token_id: Option<i64>) -> Result<Vec<crate::DayUses>> {
        self.inner.v1_uses_per_day(days, token_id).await
    }

    async fn pepper_usage(&self) -> Result<Vec<PepperUsage>> {
        self.inner.pepper_usage().await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    fn management_refused(&self) -> Option<&'static str> {
        Some(MANAGED_BY_NETBOX)
    }

    fn rehashes(&self) -> bool {
        NetBoxStore::rehashes(self)
    }

    async fn token_uses(&self, ids: &[i64]) -> Result<Vec<TokenUse>> {
        NetBoxStore::token_uses(self, ids).await
    }

    fn backend_name(&self) -> &'static str {
        "netbox"
    }

    async fn health(&self) -> Health {
        self.inner.health().await
    }

    async fn preflight(&self) -> Result<()> {
        self.inner.preflight().await
    }

    async fn close(&self) {
        self.inner.close().await;
    }

    /// NetBox's notifications once `nbtoken netbox install-triggers` has added them;
    /// `None` without them (the server's cache TTL then bounds how stale a row can be).
    async fn changes(&self) -> Result<Option<ChangeListener>> {
        let installed = self.inner.db.guard(admin::triggers_installed(self.pool())).await?;
        if installed < 2 {
            return Ok(None);
        }
        ChangeListener::notified(self.pool(), Some(&self.netbox_schema)).await.map(Some)
    }
}
