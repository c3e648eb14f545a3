//! [`Store`] on [`SqlStore`]: every operation once, as statements any [`Dialect`] runs.

use std::sync::atomic::{AtomicI64, Ordering};

use nbtoken_core::{Digest, PepperId, PreviousSecret, StoredCredential};
use time::{Date, OffsetDateTime};

use super::record::{now, token_from_row, truncate, usage_from_row, user_from_row, Record};
use super::{Arg, Dialect, SqlStore, Statement};
use crate::changes::ChangeListener;
use crate::health::Health;
use crate::{
    DayUses, NewToken, NewUser, Page, PepperUsage, Result, Store, StoreError, TokenFilter, TokenPatch,
    TokenRecord, Touch, User, UserFilter, UserPatch,
};

impl<D: Dialect> Store for SqlStore<D> {
    async fn create_user(&self, user: NewUser) -> Result<User> {
        let insert = Statement::insert(
            D::SYNTAX,
            self.tables.users,
            vec![
                ("username", user.username.into()),
                ("password", user.password_hash.into()),
                ("first_name", user.first_name.into()),
                ("last_name", user.last_name.into()),
                ("email", user.email.into()),
                ("is_active", user.is_active.into()),
                ("is_superuser", user.is_superuser.into()),
                ("can_grant_tokens", user.can_grant_tokens.into()),
                ("date_joined", now().into()),
            ],
            "RETURNING id",
        );
        let read = |id| self.user_where("id", id);
        self.db.guard(self.insert_then_read(insert, StoreError::NotFound, read, user_from_row)).await
    }

    async fn user(&self, id: i64) -> Result<Option<User>> {
        self.db.guard(self.read_one(None, &self.user_where("id", id), user_from_row)).await
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        self.db.guard(self.read_one(None, &self.user_where("username", username), user_from_row)).await
    }

    async fn list_users(&self, filter: &UserFilter, page: Page) -> Result<(u64, Vec<User>)> {
        let mut count = self.statement("SELECT COUNT(*) AS n FROM {users} u");
        count.user_filter(filter);
        let mut select = Statement::new(D::SYNTAX, self.user_select.to_string());
        select.user_filter(filter);
        select.push(&format!(" ORDER BY u.username{} ASC, u.id ASC", D::SYNTAX.byte_order)).page(page);
        self.db.guard(self.list(count, select, user_from_row)).await
    }

    async fn update_user(&self, id: i64, patch: UserPatch) -> Result<User> {
        let sets = vec![
            ("username", patch.username.map(Arg::from)),
            ("password", patch.password_hash.map(Arg::from)),
            ("first_name", patch.first_name.map(Arg::from)),
            ("last_name", patch.last_name.map(Arg::from)),
            ("email", patch.email.map(Arg::from)),
            ("is_active", patch.is_active.map(Arg::from)),
            ("is_superuser", patch.is_superuser.map(Arg::from)),
            ("can_grant_tokens", patch.can_grant_tokens.map(Arg::from)),
            ("last_login", patch.last_login.map(|t| Arg::from(truncate(t)))),
        ];
        let update = Statement::update(D::SYNTAX, self.tables.users, sets, id);
        let read = self.user_where("id", id);
        self.db.guard(self.write_then_read(update.as_ref(), read, user_from_row)).await
    }

    async fn delete_user(&self, id: i64) -> Result<()> {
        self.delete(self.tables.users, id).await
    }

    async fn create_token(&self, token: NewToken) -> Result<TokenRecord> {
        let (version, key, pepper_id, digest, plaintext, previous) = match &token.credential {
            StoredCredential::V1 { plaintext } => (1_i64, None, None, None, Some(plaintext.expose()), None),
            StoredCredential::V2 { key, pepper_id, digest, previous } => {
                (2, Some(key.as_str()), Some(*pepper_id), Some(digest.to_hex()), None, previous.as_ref())
            }
        };
        // A taken key or v1 plaintext inserts nothing instead of failing: a unique violation
        // would make PostgreSQL write the key, for v1 the plaintext, into its server log.
        let insert = Statement::insert(
            D::SYNTAX,
            self.tables.tokens,
            vec![
                ("version", version.into()),
                ("key", key.into()),
                ("pepper_id", pepper_id.into()),
                ("hmac_digest", digest.into()),
                ("plaintext", plaintext.into()),
                ("user_id", token.user_id.into()),
                ("description", token.description.into()),
                ("created", now().into()),
                ("expires", token.expires.map(truncate).into()),
                ("enabled", token.enabled.into()),
                ("write_enabled", token.write_enabled.into()),
                ("allowed_ips", (&token.allowed_ips).into()),
                ("prev_pepper_id", previous.map(|p| p.pepper_id).into()),
                ("prev_hmac_digest", previous.map(|p| p.digest.to_hex()).into()),
                ("prev_valid_until", previous.map(|p| truncate(p.valid_until)).into()),
            ],
            "ON CONFLICT DO NOTHING RETURNING id",
        );
        let skipped = StoreError::Conflict(if version == 1 { "plaintext" } else { "key" });
        let read = |id| self.token_where("t.id = $1", id);
        self.db.guard(self.insert_then_read(insert, skipped, read, token_from_row)).await
    }

    async fn token(&self, id: i64) -> Result<Option<TokenRecord>> {
        self.db.guard(self.read_one(None, &self.token_where("t.id = $1", id), token_from_row)).await
    }

    async fn token_by_key(&self, key: &str) -> Result<Option<TokenRecord>> {
        let read = self.token_where("t.version = 2 AND t.key = $1", key);
        self.db.guard(self.read_one(None, &read, token_from_row)).await
    }

    async fn token_by_plaintext(&self, plaintext: &str) -> Result<Option<TokenRecord>> {
        let read = self.token_where("t.version = 1 AND t.plaintext = $1", plaintext);
        self.db.guard(self.read_one(None, &read, token_from_row)).await
    }

    async fn list_tokens(&self, filter: &TokenFilter, page: Page) -> Result<(u64, Vec<TokenRecord>)> {
        let mut count =
            self.statement("SELECT COUNT(*) AS n FROM {tokens} t JOIN {users} u ON u.id = t.user_id");
        count.token_filter(filter);
        let mut select = Statement::new(D::SYNTAX, self.token_select.to_string());
        select.token_filter(filter);
        select.push(" ORDER BY t.created DESC, t.id DESC").page(page);
        self.db.guard(self.list(count, select, token_from_row)).await
    }

    async fn update_token(&self, id: i64, patch: TokenPatch) -> Result<TokenRecord> {
        let sets = vec![
            ("description", patch.description.map(Arg::from)),
            ("expires", patch.expires.map(|e| Arg::from(e.map(truncate)))),
            ("enabled", patch.enabled.map(Arg::from)),
            ("write_enabled", patch.write_enabled.map(Arg::from)),
            ("allowed_ips", patch.allowed_ips.as_ref().map(Arg::from)),
            ("user_id", patch.user_id.map(Arg::from)),
        ];
        let update = Statement::update(D::SYNTAX, self.tables.tokens, sets, id);
        let read = self.token_where("t.id = $1", id);
        self.db.guard(self.write_then_read(update.as_ref(), read, token_from_row)).await
    }

    async fn delete_token(&self, id: i64) -> Result<()> {
        self.delete(self.tables.tokens, id).await
    }

    async fn rotate_token(
        &self,
        id: i64,
        pepper_id: PepperId,
        digest: Digest,
        previous: Option<PreviousSecret>,
    ) -> Result<TokenRecord> {
        let s = self
            .statement(
                "UPDATE {tokens} SET pepper_id = $1, hmac_digest = $2, prev_pepper_id = $3, \
                 prev_hmac_digest = $4, prev_valid_until = $5 WHERE id = $6 AND version = 2",
            )
            .arg(pepper_id)
            .arg(digest.to_hex())
            .arg(previous.as_ref().map(|p| p.pepper_id))
            .arg(previous.as_ref().map(|p| p.digest.to_hex()))
            .arg(previous.as_ref().map(|p| truncate(p.valid_until)))
            .arg(id);
        let read = self.token_where("t.id = $1", id);
        self.db.guard(self.write_then_read(Some(&s), read, token_from_row)).await
    }

    async fn apply_touches(&self, touches: &[Touch]) -> Result<()> {
        if touches.is_empty() {
            return Ok(());
        }
        self.db
            .guard(async {
                let mut tx = self.db.begin(false).await?;
                self.db.touch_last_used(&mut tx, &self.tables, touches).await?;
                for touch in touches {
                    let Some((pepper_id, digest)) = &touch.rehash else { continue };
                    // Only forward to a newer pepper: if the token was rotated (under the
                    // current pepper) after this touch was queued, the rotation wins and the
                    // stale re-hash is dropped.
                    let s = self
                        .statement(
                            "UPDATE {tokens} SET pepper_id = $1, hmac_digest = $2 \
                             WHERE id = $3 AND version = 2 AND pepper_id < $1",
                        )
                        .arg(*pepper_id)
                        .arg(digest.to_hex())
                        .arg(touch.token_id);
                    self.db.execute(Some(&mut tx), &s).await?;
                }
                D::commit(tx).await
            })
            .await
    }

    async fn add_v1_uses(&self, counts: &[DayUses]) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        let today = day_number(OffsetDateTime::now_utc().date());
        let cutoff = today - i64::from(crate::USE_DAYS_KEPT);
        // NetBox's schema has no foreign key to cascade a deleted token's rows: a join prunes
        // them, once a day per process (readers join on the tokens table meanwhile).
        let prune_orphans =
            !self.tables.nbtoken_columns && ORPHANS_PRUNED.swap(today, Ordering::Relaxed) != today;
        self.db
            .guard(async {
                let mut tx = self.db.begin(false).await?;
                for c in counts.iter().filter(|c| c.uses > 0) {
                    // A token deleted since its use inserts nothing (and breaks no foreign key).
                    let s = self
                        .statement(
                            "INSERT INTO {use_days} AS d (token_id, day, uses) \
                             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM {tokens} t WHERE t.id = $1) \
                             ON CONFLICT (token_id, day) DO UPDATE SET uses = d.uses + EXCLUDED.uses",
                        )
                        .arg(c.token_id)
                        .arg(day_number(c.day))
                        .arg(i64::try_from(c.uses).unwrap_or(i64::MAX));
                    self.db.execute(Some(&mut tx), &s).await?;
                }
                let s = self.statement("DELETE FROM {use_days} WHERE day < $1").arg(cutoff);
                self.db.execute(Some(&mut tx), &s).await?;
                if prune_orphans {
                    let s = self.statement(
                        "DELETE FROM {use_days} d WHERE NOT EXISTS \
                         (SELECT 1 FROM {tokens} t WHERE t.id = d.token_id)",
                    );
                    self.db.execute(Some(&mut tx), &s).await?;
                }
                D::commit(tx).await
            })
            .await
    }

    async fn v1_uses_per_day(&self, days: u32, token_id: Option<i64>) -> Result<Vec<DayUses>> {
        if days == 0 {
            return Ok(Vec::new());
        }
        let first = day_number(OffsetDateTime::now_utc().date()) - i64::from(days) + 1;
        let mut s = self
            .statement(
                "SELECT d.day AS day, CAST(SUM(d.uses) AS BIGINT) AS uses FROM {use_days} d \
                 JOIN {tokens} t ON t.id = d.token_id WHERE d.day >= $1",
            )
            .arg(first);
        if let Some(id) = token_id {
            s.push(" AND d.token_id = ").bind(id);
        }
        s.push(" GROUP BY d.day ORDER BY d.day");
        let rows = self.db.guard(self.db.fetch_all(None, &s)).await?;
        rows.iter()
            .map(|row| {
                let failed = |what: &str| StoreError::Corrupt(format!("v1_use_days: {what}"));
                let day = row.int("day").ok().flatten().ok_or_else(|| failed("a day cannot be read"))?;
                let uses = row.int("uses").ok().flatten().ok_or_else(|| failed("a count cannot be read"))?;
                Ok(DayUses {
                    token_id: token_id.unwrap_or(0),
                    day: date_of(day).ok_or_else(|| failed(&format!("day {day} is out of range")))?,
                    uses: u64::try_from(uses).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn pepper_usage(&self) -> Result<Vec<PepperUsage>> {
        // UNION (not UNION ALL): a token whose previous digest uses the same
        // pepper as its current one counts once for it. Without nbtoken's columns
        // there is no previous digest to count.
        let s = if self.tables.nbtoken_columns {
            self.statement(
                "SELECT pepper_id, COUNT(*) AS tokens, MAX(last_used) AS last_used FROM ( \
                   SELECT id, pepper_id, last_used FROM {tokens} WHERE version = 2 AND pepper_id IS NOT NULL \
                   UNION \
                   SELECT id, prev_pepper_id, last_used FROM {tokens} \
                     WHERE version = 2 AND prev_pepper_id IS NOT NULL AND prev_valid_until > $1 \
                 ) AS used GROUP BY pepper_id ORDER BY pepper_id",
            )
            .arg(now())
        } else {
            self.statement(
                "SELECT pepper_id, COUNT(*) AS tokens, MAX(last_used) AS last_used FROM {tokens} \
                 WHERE version = 2 AND pepper_id IS NOT NULL GROUP BY pepper_id ORDER BY pepper_id",
            )
        };
        self.db.guard(async { self.db.fetch_all(None, &s).await?.iter().map(usage_from_row).collect() }).await
    }

    async fn ping(&self) -> Result<()> {
        let s = self.statement("SELECT 1");
        self.db.guard(async { self.db.execute(None, &s).await.map(drop) }).await
    }

    fn backend_name(&self) -> &'static str {
        D::NAME
    }

    async fn health(&self) -> Health {
        self.db.health().await
    }

    async fn preflight(&self) -> Result<()> {
        self.db.preflight().await
    }

    async fn close(&self) {
        self.db.close().await;
    }

    async fn changes(&self) -> Result<Option<ChangeListener>> {
        self.db.changes().await
    }
}

/// The UTC day on which a NetBox store last pruned the counts of deleted tokens (see `add_v1_uses`).
static ORPHANS_PRUNED: AtomicI64 = AtomicI64::new(i64::MIN);

/// A day as `v1_use_days` stores it: days since 1970-01-01.
fn day_number(day: Date) -> i64 {
    i64::from(day.to_julian_day() - OffsetDateTime::UNIX_EPOCH.date().to_julian_day())
}

/// The day `day_number` gave, if it is one `time` can hold.
fn date_of(number: i64) -> Option<Date> {
    let julian = number.checked_add(i64::from(OffsetDateTime::UNIX_EPOCH.date().to_julian_day()))?;
    Date::from_julian_day(i32::try_from(julian).ok()?).ok()
}
