//! The SQLite boundary: timestamp and JSON text, rows into model types, sqlx errors into [`StoreError`].
//!
//! Columns are decoded here and checked by [`TokenRow::into_record`], which the
//! backends share. A value that does not decode becomes
//! [`StoreError::Corrupt`] with a message naming the row and column, never the
//! value (it may be a digest or a v1 plaintext).

use nbtoken_core::{AllowedIps, PepperId};
use sqlx::error::ErrorKind;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::row::{allowed_ips_strings, corrupt, truncate, TokenRow};
pub(super) use crate::row::{ip_text, now};
use crate::{Result, StoreError, TokenRecord, User};

/// The stored form of a timestamp: fixed width, so text order is time order.
const TIMESTAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// SQLite's own `datetime()` form, accepted when reading rows written by hand.
const SQLITE_DATETIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]");

/// The stored text of a timestamp.
pub(super) fn timestamp(t: OffsetDateTime) -> Result<String> {
    truncate(t)
        .format(TIMESTAMP)
        .map_err(|e| StoreError::Database(format!("cannot store the timestamp {t}: {e}")))
}

/// The stored text of an optional timestamp.
pub(super) fn opt_timestamp(t: Option<OffsetDateTime>) -> Result<Option<String>> {
    t.map(timestamp).transpose()
}

fn parse_timestamp(s: &str, table: &str, id: i64, column: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| PrimitiveDateTime::parse(s, SQLITE_DATETIME).map(PrimitiveDateTime::assume_utc))
        .map(truncate)
        .map_err(|_| corrupt(table, id, column, "is not a timestamp"))
}

fn parse_opt_timestamp(
    s: Option<String>,
    table: &str,
    id: i64,
    column: &str,
) -> Result<Option<OffsetDateTime>> {
    s.map(|s| parse_timestamp(&s, table, id, column)).transpose()
}

/// The stored text of allowed networks: `NULL` when not set, else a JSON array of CIDR strings
/// (`[]` for the empty list NetBox's REST API stores).
pub(super) fn allowed_ips_json(ips: &AllowedIps) -> Result<Option<String>> {
    allowed_ips_strings(ips)
        .map(|nets| serde_json::to_string(&nets))
        .transpose()
        .map_err(|e| StoreError::Database(format!("cannot store allowed_ips: {e}")))
}

fn parse_allowed_ips_json(s: Option<String>, id: i64) -> Result<Option<Vec<String>>> {
    match s.filter(|s| !s.trim().is_empty()) {
        None => Ok(None),
        Some(s) => serde_json::from_str(&s)
            .map(Some)
            .map_err(|_| corrupt("users_token", id, "allowed_ips", "is not a JSON array of networks")),
    }
}

/// Reads a column, turning a decode failure into `Corrupt` without the value.
fn get<'r, T>(row: &'r SqliteRow, table: &str, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(column).map_err(|e| match e {
        sqlx::Error::ColumnNotFound(_) => {
            StoreError::Database(format!("query did not select {table}.{column}"))
        }
        _ => {
            let id: i64 = row.try_get("id").unwrap_or(-1);
            corrupt(table, id, column, "has the wrong type")
        }
    })
}

/// The columns [`user_from_row`] reads, qualified with the alias `u`.
pub(super) const USER_COLUMNS: &str = "u.id, u.username, u.password, u.first_name, u.last_name, u.email, \
     u.is_active, u.is_superuser, u.can_grant_tokens, u.date_joined, u.last_login";

/// A `users` row.
pub(super) fn user_from_row(row: &SqliteRow) -> Result<User> {
    const T: &str = "users";
    let id: i64 = get(row, T, "id")?;
    Ok(User {
        id,
        username: get(row, T, "username")?,
        password_hash: get(row, T, "password")?,
        first_name: get(row, T, "first_name")?,
        last_name: get(row, T, "last_name")?,
        email: get(row, T, "email")?,
        is_active: get(row, T, "is_active")?,
        is_superuser: get(row, T, "is_superuser")?,
        can_grant_tokens: get(row, T, "can_grant_tokens")?,
        date_joined: parse_timestamp(&get::<String>(row, T, "date_joined")?, T, id, "date_joined")?,
        last_login: parse_opt_timestamp(get(row, T, "last_login")?, T, id, "last_login")?,
    })
}

/// The `SELECT … FROM` that [`token_from_row`] reads: tokens joined with their owner.
pub(super) const TOKEN_SELECT: &str =
    "SELECT t.id, t.version, t.key, t.pepper_id, t.hmac_digest, t.plaintext, \
     t.user_id, t.description, t.created, t.expires, t.last_used, t.enabled, t.write_enabled, \
     t.allowed_ips, t.prev_pepper_id, t.prev_hmac_digest, t.prev_valid_until, t.last_used_ip, \
     u.username AS username, u.is_active AS user_active \
     FROM users_token t JOIN users u ON u.id = t.user_id";

/// A `users_token` row joined with its owner.
pub(super) fn token_from_row(row: &SqliteRow) -> Result<TokenRecord> {
    const T: &str = "users_token";
    let id: i64 = get(row, T, "id")?;
    let time = |column: &str| -> Result<Option<OffsetDateTime>> {
        parse_opt_timestamp(get(row, T, column)?, T, id, column)
    };
    TokenRow {
        id,
        version: get(row, T, "version")?,
        key: get(row, T, "key")?,
        pepper_id: get(row, T, "pepper_id")?,
        hmac_digest: get(row, T, "hmac_digest")?,
        plaintext: get(row, T, "plaintext")?,
        prev_pepper_id: get(row, T, "prev_pepper_id")?,
        prev_hmac_digest: get(row, T, "prev_hmac_digest")?,
        prev_valid_until: time("prev_valid_until")?,
        user_id: get(row, T, "user_id")?,
        description: get(row, T, "description")?,
        created: parse_timestamp(&get::<String>(row, T, "created")?, T, id, "created")?,
        expires: time("expires")?,
        last_used: time("last_used")?,
        enabled: get(row, T, "enabled")?,
        write_enabled: get(row, T, "write_enabled")?,
        allowed_ips: parse_allowed_ips_json(get(row, T, "allowed_ips")?, id)?,
        last_used_ip: get(row, T, "last_used_ip")?,
        username: get(row, "users", "username")?,
        user_active: get(row, "users", "user_active")?,
    }
    .into_record()
}

/// A `pepper_usage` aggregate column.
pub(super) fn usage_pepper_id(raw: i64) -> Result<PepperId> {
    crate::row::usage_pepper_id(raw)
}

/// A `MAX(last_used)` aggregate.
pub(super) fn usage_last_used(raw: Option<String>) -> Result<Option<OffsetDateTime>> {
    raw.map(|s| {
        parse_timestamp(&s, "users_token", -1, "last_used")
            .map_err(|_| StoreError::Corrupt("users_token: a last_used is not a timestamp".to_owned()))
    })
    .transpose()
}

/// Maps an sqlx error to a [`StoreError`]; SQLite's messages name constraints and columns, never values.
pub(super) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            match db.kind() {
                ErrorKind::UniqueViolation => {
                    // "UNIQUE constraint failed: users_token.key"
                    if message.contains("users.username") {
                        StoreError::Conflict("username")
                    } else if message.contains("users_token.key") {
                        StoreError::Conflict("key")
                    } else if message.contains("users_token.plaintext") {
                        StoreError::Conflict("plaintext")
                    } else {
                        StoreError::Database(message)
                    }
                }
                // The only foreign key is users_token.user_id.
                ErrorKind::ForeignKeyViolation => StoreError::MissingReference("user"),
                _ => {
                    // Primary result code: the low byte of the extended one.
                    let primary = db.code().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff);
                    match primary {
                        // BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN: the database
                        // cannot serve this now (a read-only file or a full disk is
                        // the operator's to fix, and `/healthz` says so).
                        Some(5 | 6 | 8 | 10 | 13 | 14) => StoreError::Unavailable(message),
                        // CORRUPT, NOTADB
                        Some(11 | 26) => StoreError::Corrupt(message),
                        _ => StoreError::Database(message),
                    }
                }
            }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Configuration(_) => StoreError::Config(e.to_string()),
        sqlx::Error::ColumnDecode { index, .. } => {
            StoreError::Corrupt(format!("column {index} cannot be decoded"))
        }
        sqlx::Error::Decode(_) => StoreError::Corrupt("a value cannot be decoded".to_owned()),
        other => StoreError::Database(other.to_string()),
    }
}
