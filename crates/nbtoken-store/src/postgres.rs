//! The PostgreSQL backend: one database shared by several server instances.
//!
//! The schema lives in `migrations/postgres` and is applied when the store
//! connects; the migrator's advisory lock lets instances start together.
//! A store can be confined to one schema ([`PgOptions::schema`]), which is
//! created if missing and set as the `search_path` of every connection, so
//! test runs (or tenants) sharing a database never see each other's rows.
//!
//! Every call goes through a circuit breaker ([`crate::health`]): once a call
//! finds the database unavailable, later calls fail at once with
//! [`StoreError::Unavailable`] (instead of each waiting out the pool timeout)
//! until a background probe reconnects.
//!
//! TLS is not compiled in: `sslmode=prefer` (the default) connects in the
//! clear and `sslmode=require` fails with [`StoreError::Config`].

use std::sync::Arc;

use nbtoken_core::{Digest, PepperId, PreviousSecret, StoredCredential};
use sqlx::postgres::{PgConnection, PgPool, PgQueryResult};
use sqlx::{Postgres, QueryBuilder, Row};

use crate::health::{Breaker, Health};
use crate::{
    NewToken, NewUser, Page, PepperUsage, Result, Store, StoreError, TokenFilter, TokenPatch, TokenRecord,
    Touch, User, UserFilter, UserPatch,
};

mod connect;
mod convert;
mod filter;

pub use connect::PgOptions;

use convert::{
    allowed_ips_array, ip_text, map_err, now, token_from_row, truncate, user_from_row, TOKEN_SELECT,
    USER_COLUMNS,
};
use filter::{pepper_column, push_page, push_token_filter, push_user_filter};

/// A [`Store`] on a PostgreSQL database.
///
/// Cloning is cheap and shares the connection pool.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    schema: Option<String>,
    breaker: Arc<Breaker>,
}

impl PgStore {
    /// The connection pool, for maintenance and tests that need raw SQL.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema this store was confined to, if any.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Closes every connection; later calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.breaker.stop();
        self.pool.close().await;
    }

    /// Whether the database answers: [`Health::Unreachable`] with the start of
    /// the outage while the circuit breaker is open (no round trip then),
    /// otherwise after a `SELECT 1`.
    pub async fn health(&self) -> Health {
        if self.ping().await.is_ok() {
            return Health::Ok;
        }
        // Failed without opening the breaker (the pool was closed, say): down from now.
        Health::Unreachable { since: self.breaker.down_since().unwrap_or_else(now) }
    }

    /// Subscribes to token and user changes made by any instance (or by hand).
    pub async fn listen(&self) -> Result<crate::changes::ChangeListener> {
        crate::changes::ChangeListener::start(self).await
    }
}

/// Maps errors of the change listener the way every other query's errors are mapped.
pub(crate) fn map_listen_err(e: sqlx::Error) -> StoreError {
    map_err(e)
}

async fn fetch_user(conn: &mut PgConnection, id: i64) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await.map_err(map_err)?;
    row.as_ref().map(user_from_row).transpose()
}

async fn fetch_token_by_id(conn: &mut PgConnection, id: i64) -> Result<Option<TokenRecord>> {
    let sql = format!("{TOKEN_SELECT} WHERE t.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await.map_err(map_err)?;
    row.as_ref().map(token_from_row).transpose()
}

fn not_found_if_untouched(result: PgQueryResult) -> Result<()> {
    if result.rows_affected() == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Starts a transaction whose statements all see one snapshot (a count and its page agree).
async fn begin_snapshot(pool: &PgPool) -> Result<sqlx::Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    Ok(tx)
}

impl Store for PgStore {
    async fn create_user(&self, user: NewUser) -> Result<User> {
        self.breaker.call(async {
            let mut tx = self.pool.begin().await.map_err(map_err)?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO users (username, password, first_name, last_name, email, is_active, is_superuser, \
                 can_grant_tokens, date_joined) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(&user.username)
            .bind(&user.password_hash)
            .bind(&user.first_name)
            .bind(&user.last_name)
            .bind(&user.email)
            .bind(user.is_active)
            .bind(user.is_superuser)
            .bind(user.can_grant_tokens)
            .bind(now())
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
            let created = fetch_user(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
            tx.commit().await.map_err(map_err)?;
            Ok(created)
        })
        .await
    }

    async fn user(&self, id: i64) -> Result<Option<User>> {
        self.breaker
            .call(async {
                let mut conn = self.pool.acquire().await.map_err(map_err)?;
                fetch_user(&mut conn, id).await
            })
            .await
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        self.breaker
            .call(async {
                let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.username = $1");
                let row =
                    sqlx::query(&sql).bind(username).fetch_optional(&self.pool).await.map_err(map_err)?;
                row.as_ref().map(user_from_row).transpose()
            })
            .await
    }

    async fn list_users(&self, filter: &UserFilter, page: Page) -> Result<(u64, Vec<User>)> {
        self.breaker
            .call(async {
                let mut tx = begin_snapshot(&self.pool).await?;
                let mut count = QueryBuilder::new("SELECT COUNT(*) FROM users u");
                push_user_filter(&mut count, filter);
                let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await.map_err(map_err)?;

                let mut select = QueryBuilder::new(format!("SELECT {USER_COLUMNS} FROM users u"));
                push_user_filter(&mut select, filter);
                // Byte order, as SQLite sorts, whatever the database's collation.
                select.push(r#" ORDER BY u.username COLLATE "C" ASC, u.id ASC"#);
                push_page(&mut select, page);
                let rows = select.build().fetch_all(&mut *tx).await.map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                let users = rows.iter().map(user_from_row).collect::<Result<Vec<_>>>()?;
                Ok((u64::try_from(total).unwrap_or(0), users))
            })
            .await
    }

    async fn update_user(&self, id: i64, patch: UserPatch) -> Result<User> {
        self.breaker
            .call(async {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let mut qb = QueryBuilder::<Postgres>::new("UPDATE users SET ");
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
                    "last_login" => patch.last_login.map(truncate);
                );
                if changes > 0 {
                    qb.push(" WHERE id = ").push_bind(id);
                    not_found_if_untouched(qb.build().execute(&mut *tx).await.map_err(map_err)?)?;
                }
                let user = fetch_user(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
                tx.commit().await.map_err(map_err)?;
                Ok(user)
            })
            .await
    }

    async fn delete_user(&self, id: i64) -> Result<()> {
        self.breaker
            .call(async {
                let result = sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                not_found_if_untouched(result)
            })
            .await
    }

    async fn create_token(&self, token: NewToken) -> Result<TokenRecord> {
        self.breaker.call(async {
            let (version, key, pepper_id, digest, plaintext, previous) = match &token.credential {
                StoredCredential::V1 { plaintext } => (1_i16, None, None, None, Some(plaintext.expose()), None),
                StoredCredential::V2 { key, pepper_id, digest, previous } => (
                    2,
                    Some(key.as_str()),
                    Some(pepper_column(*pepper_id)),
                    Some(digest.to_hex()),
                    None,
                    previous.as_ref(),
                ),
            };
            let mut tx = self.pool.begin().await.map_err(map_err)?;
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO users_token (version, key, pepper_id, hmac_digest, plaintext, user_id, description, \
                 created, expires, enabled, write_enabled, allowed_ips, prev_pepper_id, prev_hmac_digest, \
                 prev_valid_until) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::inet[], $13, $14, $15) \
                 ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(version)
            .bind(key)
            .bind(pepper_id)
            .bind(digest)
            .bind(plaintext)
            .bind(token.user_id)
            .bind(&token.description)
            .bind(now())
            .bind(token.expires.map(truncate))
            .bind(token.enabled)
            .bind(token.write_enabled)
            .bind(allowed_ips_array(&token.allowed_ips))
            .bind(previous.map(|p| pepper_column(p.pepper_id)))
            .bind(previous.map(|p| p.digest.to_hex()))
            .bind(previous.map(|p| truncate(p.valid_until)))
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            // A taken key or v1 plaintext inserts nothing instead of failing: a unique violation
            // would make PostgreSQL write the key, for v1 the plaintext, into its server log.
            let id: i64 = id.ok_or(StoreError::Conflict(if version == 1 { "plaintext" } else { "key" }))?;
            let record = fetch_token_by_id(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
            tx.commit().await.map_err(map_err)?;
            Ok(record)
        })
        .await
    }

    async fn token(&self, id: i64) -> Result<Option<TokenRecord>> {
        self.breaker
            .call(async {
                let mut conn = self.pool.acquire().await.map_err(map_err)?;
                fetch_token_by_id(&mut conn, id).await
            })
            .await
    }

    async fn token_by_key(&self, key: &str) -> Result<Option<TokenRecord>> {
        self.breaker
            .call(async {
                let sql = format!("{TOKEN_SELECT} WHERE t.version = 2 AND t.key = $1");
                let row = sqlx::query(&sql).bind(key).fetch_optional(&self.pool).await.map_err(map_err)?;
                row.as_ref().map(token_from_row).transpose()
            })
            .await
    }

    async fn token_by_plaintext(&self, plaintext: &str) -> Result<Option<TokenRecord>> {
        self.breaker
            .call(async {
                let sql = format!("{TOKEN_SELECT} WHERE t.version = 1 AND t.plaintext = $1");
                let row =
                    sqlx::query(&sql).bind(plaintext).fetch_optional(&self.pool).await.map_err(map_err)?;
                row.as_ref().map(token_from_row).transpose()
            })
            .await
    }

    async fn list_tokens(&self, filter: &TokenFilter, page: Page) -> Result<(u64, Vec<TokenRecord>)> {
        self.breaker
            .call(async {
                let mut tx = begin_snapshot(&self.pool).await?;
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
            })
            .await
    }

    async fn update_token(&self, id: i64, patch: TokenPatch) -> Result<TokenRecord> {
        self.breaker
            .call(async {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let mut qb = QueryBuilder::<Postgres>::new("UPDATE users_token SET ");
                let mut set = qb.separated(", ");
                let changes = set_columns!(set;
                    "description" => patch.description;
                    "expires" => patch.expires.map(|e| e.map(truncate));
                    "enabled" => patch.enabled;
                    "write_enabled" => patch.write_enabled;
                    "allowed_ips" => patch.allowed_ips.as_ref().map(allowed_ips_array), cast "::inet[]";
                    "user_id" => patch.user_id;
                );
                if changes > 0 {
                    qb.push(" WHERE id = ").push_bind(id);
                    not_found_if_untouched(qb.build().execute(&mut *tx).await.map_err(map_err)?)?;
                }
                let record = fetch_token_by_id(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
                tx.commit().await.map_err(map_err)?;
                Ok(record)
            })
            .await
    }

    async fn delete_token(&self, id: i64) -> Result<()> {
        self.breaker
            .call(async {
                let result = sqlx::query("DELETE FROM users_token WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                not_found_if_untouched(result)
            })
            .await
    }

    async fn rotate_token(
        &self,
        id: i64,
        pepper_id: PepperId,
        digest: Digest,
        previous: Option<PreviousSecret>,
    ) -> Result<TokenRecord> {
        self.breaker
            .call(async {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let result = sqlx::query(
                    "UPDATE users_token SET pepper_id = $1, hmac_digest = $2, prev_pepper_id = $3, \
                 prev_hmac_digest = $4, prev_valid_until = $5 WHERE id = $6 AND version = 2",
                )
                .bind(pepper_column(pepper_id))
                .bind(digest.to_hex())
                .bind(previous.as_ref().map(|p| pepper_column(p.pepper_id)))
                .bind(previous.as_ref().map(|p| p.digest.to_hex()))
                .bind(previous.as_ref().map(|p| truncate(p.valid_until)))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                not_found_if_untouched(result)?;
                let record = fetch_token_by_id(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
                tx.commit().await.map_err(map_err)?;
                Ok(record)
            })
            .await
    }

    async fn apply_touches(&self, touches: &[Touch]) -> Result<()> {
        self.breaker.call(async {
            if touches.is_empty() {
                return Ok(());
            }
            // Several instances flush batches at once: taking the row locks in id
            // order first means two batches never wait on each other in a cycle.
            let mut ids: Vec<i64> = touches.iter().map(|t| t.token_id).collect();
            ids.sort_unstable();
            ids.dedup();
            let touch_ids: Vec<i64> = touches.iter().map(|t| t.token_id).collect();
            let ats: Vec<_> = touches.iter().map(|t| truncate(t.at)).collect();
            let ips: Vec<Option<String>> = touches.iter().map(|t| ip_text(t.ip)).collect();

            let mut tx = self.pool.begin().await.map_err(map_err)?;
            sqlx::query("SELECT id FROM users_token WHERE id = ANY($1) ORDER BY id FOR UPDATE")
                .bind(&ids)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            // One statement for the whole batch: the latest touch per token wins
            // (the first of equal ones, as in SQLite), and only if it moves
            // last_used forward; its address is written with it.
            sqlx::query(
                "UPDATE users_token t SET last_used = v.at, last_used_ip = v.ip::inet \
                 FROM (SELECT DISTINCT ON (id) id, at, ip \
                       FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[]) WITH ORDINALITY AS u (id, at, ip, n) \
                       ORDER BY id, at DESC, n ASC) AS v \
                 WHERE t.id = v.id AND (t.last_used IS NULL OR t.last_used < v.at)",
            )
            .bind(&touch_ids)
            .bind(&ats)
            .bind(&ips)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            for touch in touches {
                if let Some((pepper_id, digest)) = &touch.rehash {
                    // Only forward to a newer pepper: if the token was rotated
                    // (under the current pepper) after this touch was queued, the
                    // rotation wins and the stale re-hash is dropped.
                    sqlx::query(
                        "UPDATE users_token SET pepper_id = $1, hmac_digest = $2 \
                         WHERE id = $3 AND version = 2 AND pepper_id < $1",
                    )
                    .bind(pepper_column(*pepper_id))
                    .bind(digest.to_hex())
                    .bind(touch.token_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
            }
            tx.commit().await.map_err(map_err)
        })
        .await
    }

    async fn pepper_usage(&self) -> Result<Vec<PepperUsage>> {
        self.breaker.call(async {
            // UNION (not UNION ALL): a token whose previous digest uses the same
            // pepper as its current one counts once for it.
            let rows = sqlx::query(
                "SELECT pepper_id, COUNT(*) AS tokens, MAX(last_used) AS last_used FROM ( \
                   SELECT id, pepper_id, last_used FROM users_token WHERE version = 2 AND pepper_id IS NOT NULL \
                   UNION \
                   SELECT id, prev_pepper_id, last_used FROM users_token \
                     WHERE version = 2 AND prev_pepper_id IS NOT NULL AND prev_valid_until > $1 \
                 ) AS used GROUP BY pepper_id ORDER BY pepper_id",
            )
            .bind(now())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
            rows.iter()
                .map(|row| {
                    let pepper_id: i16 = row.try_get("pepper_id").map_err(map_err)?;
                    let tokens: i64 = row.try_get("tokens").map_err(map_err)?;
                    let last_used: Option<time::OffsetDateTime> = row.try_get("last_used").map_err(map_err)?;
                    Ok(PepperUsage {
                        pepper_id: convert::usage_pepper_id(pepper_id)?,
                        tokens: u64::try_from(tokens).unwrap_or(0),
                        last_used: last_used.map(truncate),
                    })
                })
                .collect()
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.breaker
            .call(async {
                sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
                Ok(())
            })
            .await
    }
}
