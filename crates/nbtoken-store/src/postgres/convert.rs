//! The PostgreSQL boundary: allowed networks, rows into model types, sqlx errors into [`StoreError`].
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
use sqlx::postgres::PgRow;
use sqlx::Row;
use time::{OffsetDateTime, UtcOffset};

use crate::{Result, StoreError, TokenRecord, User};

/// The current time in UTC, truncated to what the database keeps.
pub(super) fn now() -> OffsetDateTime {
    truncate(OffsetDateTime::now_utc())
}

/// `t` in UTC with its sub-microsecond part dropped, as timestamptz keeps it.
pub(super) fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    // A nanosecond value rounded down to whole microseconds stays below 10^9,
    // so `replace_nanosecond` cannot fail; `unwrap_or` only satisfies the type.
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000).unwrap_or(t)
}

/// The bound form of allowed networks: `NULL` when unrestricted, else CIDR
/// strings that the statement casts to `inet[]`.
pub(super) fn allowed_ips_array(ips: &AllowedIps) -> Option<Vec<String>> {
    if ips.is_unrestricted() {
        return None;
    }
    Some(ips.nets().iter().map(IpNet::to_string).collect())
}

fn parse_allowed_ips(items: Option<Vec<String>>, id: i64) -> Result<AllowedIps> {
    let Some(items) = items.filter(|items| !items.is_empty()) else {
        return Ok(AllowedIps::default());
    };
    let nets = items
        .iter()
        .map(|item| {
            // inet's text form leaves out the prefix length of a single host.
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| corrupt("users_token", id, "allowed_ips", "is not an array of networks"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(AllowedIps::new(nets))
}

/// The bound form of a client address: text that the statement casts to `inet`.
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
fn get<'r, T>(row: &'r PgRow, table: &str, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
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

/// Reads a timestamp column and truncates it (a no-op: timestamptz holds microseconds).
fn get_time(row: &PgRow, table: &str, column: &str) -> Result<Option<OffsetDateTime>> {
    Ok(get::<Option<OffsetDateTime>>(row, table, column)?.map(truncate))
}

fn get_required_time(row: &PgRow, table: &str, id: i64, column: &str) -> Result<OffsetDateTime> {
    get_time(row, table, column)?.ok_or_else(|| corrupt(table, id, column, "is missing"))
}

/// The columns [`user_from_row`] reads, qualified with the alias `u`.
pub(super) const USER_COLUMNS: &str = "u.id, u.username, u.password, u.first_name, u.last_name, u.email, \
     u.is_active, u.is_superuser, u.can_grant_tokens, u.date_joined, u.last_login";

/// A `users` row.
pub(super) fn user_from_row(row: &PgRow) -> Result<User> {
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
        date_joined: get_required_time(row, T, id, "date_joined")?,
        last_login: get_time(row, T, "last_login")?,
    })
}

/// The `SELECT … FROM` that [`token_from_row`] reads: tokens joined with their owner.
///
/// `allowed_ips` is read as `text[]` and `last_used_ip` as text (`host()`, the
/// address without a prefix length), so no network type needs a decoder here.
pub(super) const TOKEN_SELECT: &str =
    "SELECT t.id, t.version, t.key, t.pepper_id, t.hmac_digest, t.plaintext, \
     t.user_id, t.description, t.created, t.expires, t.last_used, t.enabled, t.write_enabled, \
     t.allowed_ips::text[] AS allowed_ips, t.prev_pepper_id, t.prev_hmac_digest, t.prev_valid_until, \
     host(t.last_used_ip) AS last_used_ip, \
     u.username AS username, u.is_active AS user_active \
     FROM users_token t JOIN users u ON u.id = t.user_id";

fn pepper_id(raw: i16, id: i64, column: &str) -> Result<PepperId> {
    u16::try_from(raw)
        .ok()
        .and_then(|v| PepperId::new(v).ok())
        .ok_or_else(|| corrupt("users_token", id, column, "is not a pepper id from 0 to 32767"))
}

fn digest(hex: &str, id: i64, column: &str) -> Result<Digest> {
    Digest::from_hex(hex).map_err(|_| corrupt("users_token", id, column, "is not 64 hexadecimal characters"))
}

/// A `users_token` row joined with its owner.
pub(super) fn token_from_row(row: &PgRow) -> Result<TokenRecord> {
    const T: &str = "users_token";
    let id: i64 = get(row, T, "id")?;
    let version: i16 = get(row, T, "version")?;
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
            let pid: Option<i16> = get(row, T, "pepper_id")?;
            let hex: Option<String> = get(row, T, "hmac_digest")?;
            let prev_pid: Option<i16> = get(row, T, "prev_pepper_id")?;
            let prev_hex: Option<String> = get(row, T, "prev_hmac_digest")?;
            let prev_until = get_time(row, T, "prev_valid_until")?;
            let previous = match (prev_pid, prev_hex, prev_until) {
                (None, None, None) => None,
                (Some(p), Some(h), Some(valid_until)) => Some(PreviousSecret {
                    pepper_id: pepper_id(p, id, "prev_pepper_id")?,
                    digest: digest(&h, id, "prev_hmac_digest")?,
                    valid_until,
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
        expires: get_time(row, T, "expires")?,
        last_used: get_time(row, T, "last_used")?,
        allowed_ips: parse_allowed_ips(get(row, T, "allowed_ips")?, id)?,
    };
    Ok(TokenRecord {
        token,
        description: get(row, T, "description")?,
        created: get_required_time(row, T, id, "created")?,
        username: get(row, "users", "username")?,
        user_active: get(row, "users", "user_active")?,
        last_used_ip: parse_ip(get(row, T, "last_used_ip")?, id, "last_used_ip")?,
    })
}

/// A `pepper_usage` aggregate column.
pub(super) fn usage_pepper_id(raw: i16) -> Result<PepperId> {
    u16::try_from(raw)
        .ok()
        .and_then(|v| PepperId::new(v).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("users_token: pepper id {raw} is out of range")))
}

/// Maps an sqlx error to a [`StoreError`].
///
/// Only PostgreSQL's primary message is kept: its `detail` can quote the
/// failing row (a digest, a v1 plaintext), so it is never used.
pub(super) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            match db.kind() {
                ErrorKind::UniqueViolation => match db.constraint() {
                    Some("users_username_key") => StoreError::Conflict("username"),
                    Some("users_token_key_key") => StoreError::Conflict("key"),
                    Some("users_token_plaintext_key") => StoreError::Conflict("plaintext"),
                    _ => StoreError::Database(message),
                },
                // The only foreign key is users_token.user_id.
                ErrorKind::ForeignKeyViolation => StoreError::MissingReference("user"),
                _ => {
                    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                    match_sqlstate(&code, message)
                }
            }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Configuration(_) | sqlx::Error::Tls(_) => StoreError::Config(e.to_string()),
        sqlx::Error::ColumnDecode { index, .. } => {
            StoreError::Corrupt(format!("column {index} cannot be decoded"))
        }
        sqlx::Error::Decode(_) => StoreError::Corrupt("a value cannot be decoded".to_owned()),
        other => StoreError::Database(other.to_string()),
    }
}

/// Sorts the remaining errors by SQLSTATE class.
fn match_sqlstate(code: &str, message: String) -> StoreError {
    match code {
        // connection_exception, insufficient_resources (too many connections,
        // disk full), system_error (I/O), and the server shutting down or starting up.
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("58") => {
            StoreError::Unavailable(message)
        }
        "57P01" | "57P02" | "57P03" => StoreError::Unavailable(message),
        // invalid_authorization_specification, unknown database or schema:
        // the URL or options point at something that is not there.
        c if c.starts_with("28") => StoreError::Config(message),
        "3D000" | "3F000" => StoreError::Config(message),
        // data_corrupted, index_corrupted
        "XX001" | "XX002" => StoreError::Corrupt(message),
        _ => StoreError::Database(message),
    }
}
