//! The SQLite boundary: timestamps, allowed networks, rows into model types, sqlx errors into [`StoreError`].
//!
//! Everything read from a row is parsed here once. A value that does not
//! parse becomes [`StoreError::Corrupt`] with a message naming the row and
//! column, never the value (it may be a digest or a v1 plaintext).

use std::net::IpAddr;

use ipnet::IpNet;
use nbtoken_core::{
    AllowedIps, Digest, PepperId, PreviousSecret, StoredCredential, StoredToken, TokenKey, V1Plaintext,
};
use sqlx::error::ErrorKind;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::{Result, StoreError, TokenRecord, User};

/// The stored form of a timestamp: fixed width, so text order is time order.
const TIMESTAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// SQLite's own `datetime()` form, accepted when reading rows written by hand.
const SQLITE_DATETIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]");

/// The current time in UTC, truncated to what the database keeps.
pub(super) fn now() -> OffsetDateTime {
    truncate(OffsetDateTime::now_utc())
}

/// `t` in UTC with its sub-microsecond part dropped, so it round-trips exactly.
pub(super) fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    // A nanosecond value rounded down to whole microseconds stays below 10^9,
    // so `replace_nanosecond` cannot fail; `unwrap_or` only satisfies the type.
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000).unwrap_or(t)
}

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

/// The stored text of allowed networks: `NULL` when unrestricted, else a JSON array of CIDR strings.
pub(super) fn allowed_ips_json(ips: &AllowedIps) -> Result<Option<String>> {
    if ips.is_unrestricted() {
        return Ok(None);
    }
    let nets: Vec<String> = ips.nets().iter().map(IpNet::to_string).collect();
    serde_json::to_string(&nets)
        .map(Some)
        .map_err(|e| StoreError::Database(format!("cannot store allowed_ips: {e}")))
}

fn parse_allowed_ips(s: Option<String>, id: i64) -> Result<AllowedIps> {
    let Some(s) = s.filter(|s| !s.trim().is_empty()) else {
        return Ok(AllowedIps::default());
    };
    let bad = || corrupt("users_token", id, "allowed_ips", "is not a JSON array of networks");
    let items: Vec<String> = serde_json::from_str(&s).map_err(|_| bad())?;
    let nets = items
        .iter()
        .map(|item| {
            // NetBox's column is inet[]: a bare address means a single host.
            item.parse::<IpNet>().or_else(|_| item.parse::<IpAddr>().map(IpNet::from)).map_err(|_| bad())
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(AllowedIps::new(nets))
}

/// The stored text of a client address.
pub(super) fn ip_text(ip: Option<IpAddr>) -> Option<String> {
    ip.map(|ip| ip.to_string())
}

fn parse_ip(s: Option<String>, id: i64, column: &str) -> Result<Option<IpAddr>> {
    s.map(|s| {
        s.trim().parse::<IpAddr>().map_err(|_| corrupt("users_token", id, column, "is not an IP address"))
    })
    .transpose()
}

fn corrupt(table: &str, id: i64, column: &str, what: &str) -> StoreError {
    StoreError::Corrupt(format!("{table} row {id}: {column} {what}"))
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

fn pepper_id(raw: i64, id: i64, column: &str) -> Result<PepperId> {
    u16::try_from(raw)
        .ok()
        .and_then(|v| PepperId::new(v).ok())
        .ok_or_else(|| corrupt("users_token", id, column, "is not a pepper id from 0 to 32767"))
}

fn digest(hex: &str, id: i64, column: &str) -> Result<Digest> {
    Digest::from_hex(hex).map_err(|_| corrupt("users_token", id, column, "is not 64 hexadecimal characters"))
}

/// A `users_token` row joined with its owner.
pub(super) fn token_from_row(row: &SqliteRow) -> Result<TokenRecord> {
    const T: &str = "users_token";
    let id: i64 = get(row, T, "id")?;
    let version: i64 = get(row, T, "version")?;
    let missing = |column: &str| corrupt(T, id, column, &format!("is missing on a v{version} token"));
    let credential = match version {
        1 => {
            let plaintext: Option<String> = get(row, T, "plaintext")?;
            StoredCredential::V1 {
                plaintext: V1Plaintext::from_stored(plaintext.ok_or_else(|| missing("plaintext"))?),
            }
        }
        2 => {
            let key: Option<String> = get(row, T, "key")?;
            let key = key.ok_or_else(|| missing("key"))?;
            let key = TokenKey::parse(&key)
                .map_err(|_| corrupt(T, id, "key", "is not 12 characters of [A-Za-z0-9]"))?;
            let pid: Option<i64> = get(row, T, "pepper_id")?;
            let hex: Option<String> = get(row, T, "hmac_digest")?;
            let prev_pid: Option<i64> = get(row, T, "prev_pepper_id")?;
            let prev_hex: Option<String> = get(row, T, "prev_hmac_digest")?;
            let prev_until: Option<String> = get(row, T, "prev_valid_until")?;
            let previous = match (prev_pid, prev_hex, prev_until) {
                (None, None, None) => None,
                (Some(p), Some(h), Some(u)) => Some(PreviousSecret {
                    pepper_id: pepper_id(p, id, "prev_pepper_id")?,
                    digest: digest(&h, id, "prev_hmac_digest")?,
                    valid_until: parse_timestamp(&u, T, id, "prev_valid_until")?,
                }),
                _ => return Err(corrupt(T, id, "prev_*", "columns are only partly set")),
            };
            StoredCredential::V2 {
                key,
                pepper_id: pepper_id(pid.ok_or_else(|| missing("pepper_id"))?, id, "pepper_id")?,
                digest: digest(&hex.ok_or_else(|| missing("hmac_digest"))?, id, "hmac_digest")?,
                previous,
            }
        }
        other => return Err(corrupt(T, id, "version", &format!("is {other}, not 1 or 2"))),
    };
    let token = StoredToken {
        id,
        user_id: get(row, T, "user_id")?,
        credential,
        enabled: get(row, T, "enabled")?,
        write_enabled: get(row, T, "write_enabled")?,
        expires: parse_opt_timestamp(get(row, T, "expires")?, T, id, "expires")?,
        last_used: parse_opt_timestamp(get(row, T, "last_used")?, T, id, "last_used")?,
        allowed_ips: parse_allowed_ips(get(row, T, "allowed_ips")?, id)?,
    };
    Ok(TokenRecord {
        token,
        description: get(row, T, "description")?,
        created: parse_timestamp(&get::<String>(row, T, "created")?, T, id, "created")?,
        username: get(row, "users", "username")?,
        user_active: get(row, "users", "user_active")?,
        last_used_ip: parse_ip(get(row, T, "last_used_ip")?, id, "last_used_ip")?,
    })
}

/// A `pepper_usage` aggregate column.
pub(super) fn usage_pepper_id(raw: i64) -> Result<PepperId> {
    u16::try_from(raw)
        .ok()
        .and_then(|v| PepperId::new(v).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("users_token: pepper id {raw} is out of range")))
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
                        // BUSY, LOCKED, IOERR, FULL, CANTOPEN
                        Some(5 | 6 | 10 | 13 | 14) => StoreError::Unavailable(message),
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
