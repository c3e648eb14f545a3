//! Failed-authentication counts shared by every instance on one PostgreSQL database.
//!
//! Each server instance keeps its own failure budget as the first, free line;
//! this is the second: instances add their failures here (in batches, off the
//! request path) and read back a sliding estimate over the last window, so N
//! instances do not give an attacker N budgets. A subject found over budget is
//! recorded as a block that every instance reads each second.
//!
//! Windowed counters, one row per subject and window (migration
//! `0005_failure_budgets.sql`): the estimate is the current window's count plus
//! the previous window's weighted by how much of it still lies inside the
//! sliding window. Time is the database's clock, so instances whose clocks
//! disagree still count in the same windows.

use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::Row;

use crate::postgres::map_err;
use crate::{AnyStore, PgStore, Result};

/// The shared failure counters of one database. Cheap to clone (shares the pool).
#[derive(Clone, Debug)]
pub struct FailureCounts {
    pool: PgPool,
    /// The counters table (`nbtoken_failures`; on a NetBox database `nbtoken.failures`).
    failures: &'static str,
    /// The blocks table (`nbtoken_failure_blocks`; on a NetBox database `nbtoken.failure_blocks`).
    blocks: &'static str,
}

/// One subject's failures over the sliding window, after an addition.
#[derive(Clone, Debug, PartialEq)]
pub struct FailureEstimate {
    /// The subject, as given to [`FailureCounts::add`].
    pub subject: String,
    /// Failures over the last window, all instances together (the previous window weighted).
    pub failures: f64,
    /// Time left in the current window.
    pub window_left: Duration,
}

impl PgStore {
    /// The shared failure counters on this store's database.
    pub fn failure_counts(&self) -> FailureCounts {
        FailureCounts {
            pool: self.pool().clone(),
            failures: "nbtoken_failures",
            blocks: "nbtoken_failure_blocks",
        }
    }
}

impl crate::NetBoxStore {
    /// The shared failure counters, in the `nbtoken` schema beside NetBox's tables.
    pub fn failure_counts(&self) -> FailureCounts {
        FailureCounts {
            pool: self.pool().clone(),
            failures: "nbtoken.failures",
            blocks: "nbtoken.failure_blocks",
        }
    }
}

impl AnyStore {
    /// Shared failure counters, where the backend can hold them for several instances (PostgreSQL).
    pub fn failure_counts(&self) -> Option<FailureCounts> {
        match self {
            AnyStore::Sqlite(_) => None,
            AnyStore::Postgres(pg) => Some(pg.failure_counts()),
            AnyStore::NetBox(nb) => Some(nb.failure_counts()),
        }
    }
}

impl FailureCounts {
    /// Adds `failures` to each subject in the current window of `window` (whole seconds, at
    /// least one) and returns each subject's estimate over the sliding window. Subjects must
    /// be distinct.
    pub async fn add(&self, window: Duration, failures: &[(String, u32)]) -> Result<Vec<FailureEstimate>> {
        if failures.is_empty() {
            return Ok(Vec::new());
        }
        let window_secs = i64::try_from(window.as_secs().max(1)).unwrap_or(i64::MAX);
        let subjects: Vec<&str> = failures.iter().map(|(s, _)| s.as_str()).collect();
        let counts: Vec<i32> = failures.iter().map(|(_, n)| i32::try_from(*n).unwrap_or(i32::MAX)).collect();
        let sql = format!(
            "WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now), \
             added AS (SELECT a.subject, a.n, (floor(clock.now / $3) * $3)::int8 AS start, clock.now \
                       FROM unnest($1::text[], $2::int4[]) AS a(subject, n), clock), \
             up AS (INSERT INTO {failures} AS f (subject, window_start, failures) \
                    SELECT subject, start, n FROM added \
                    ON CONFLICT (subject, window_start) DO UPDATE SET failures = f.failures + EXCLUDED.failures \
                    RETURNING f.subject, f.window_start, f.failures) \
             SELECT up.subject, up.failures::int8 AS current, COALESCE(p.failures, 0)::int8 AS previous, \
                    (added.now - added.start)::float8 AS elapsed \
             FROM up JOIN added ON added.subject = up.subject \
             LEFT JOIN {failures} p ON p.subject = up.subject AND p.window_start = up.window_start - $3",
            failures = self.failures
        );
        let rows = sqlx::query(&sql)
            .bind(&subjects)
            .bind(&counts)
            .bind(window_secs)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let window_f = window_secs as f64;
        rows.iter()
            .map(|r| {
                let current: i64 = r.try_get("current").map_err(map_err)?;
                let previous: i64 = r.try_get("previous").map_err(map_err)?;
                let elapsed: f64 = r.try_get("elapsed").map_err(map_err)?;
                let elapsed = elapsed.clamp(0.0, window_f);
                Ok(FailureEstimate {
                    subject: r.try_get("subject").map_err(map_err)?,
                    failures: current as f64 + previous as f64 * (1.0 - elapsed / window_f),
                    window_left: Duration::from_secs_f64(window_f - elapsed),
                })
            })
            .collect()
    }

    /// Records that each subject is refused for the given time, from now (the database's clock).
    /// A longer block already recorded is kept.
    pub async fn block(&self, blocks: &[(String, Duration)]) -> Result<()> {
        if blocks.is_empty() {
            return Ok(());
        }
        let subjects: Vec<&str> = blocks.iter().map(|(s, _)| s.as_str()).collect();
        let secs: Vec<f64> = blocks.iter().map(|(_, d)| d.as_secs_f64()).collect();
        let sql = format!(
            "INSERT INTO {} AS b (subject, until, set_at) \
             SELECT DISTINCT ON (subject) subject, clock_timestamp() + secs * interval '1 second', clock_timestamp() \
             FROM unnest($1::text[], $2::float8[]) AS a(subject, secs) ORDER BY subject, secs DESC \
             ON CONFLICT (subject) DO UPDATE SET until = GREATEST(b.until, EXCLUDED.until), set_at = EXCLUDED.set_at",
            self.blocks
        );
        sqlx::query(&sql).bind(&subjects).bind(&secs).execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    /// Blocks still in force that were recorded in the last `recent` (by any instance), with
    /// the time each has left.
    pub async fn recent_blocks(&self, recent: Duration) -> Result<Vec<(String, Duration)>> {
        let sql = format!(
            "SELECT subject, extract(epoch FROM until - clock_timestamp())::float8 AS left_secs \
             FROM {} \
             WHERE set_at > clock_timestamp() - $1 * interval '1 second' AND until > clock_timestamp()",
            self.blocks
        );
        let rows =
            sqlx::query(&sql).bind(recent.as_secs_f64()).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let left: f64 = r.try_get("left_secs").map_err(map_err)?;
                Ok((r.try_get("subject").map_err(map_err)?, Duration::from_secs_f64(left.max(0.0))))
            })
            .collect()
    }

    /// Deletes windows older than two `window`s and blocks that have ended; returns how many rows went.
    pub async fn prune(&self, window: Duration) -> Result<u64> {
        let window_secs = i64::try_from(window.as_secs().max(1)).unwrap_or(i64::MAX);
        let sql = format!(
            "DELETE FROM {} WHERE window_start < extract(epoch FROM clock_timestamp())::int8 - 2 * $1",
            self.failures
        );
        let counts = sqlx::query(&sql).bind(window_secs).execute(&self.pool).await.map_err(map_err)?;
        let blocks = sqlx::query(&format!("DELETE FROM {} WHERE until < clock_timestamp()", self.blocks))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(counts.rows_affected() + blocks.rows_affected())
    }
}
