//! The PostgreSQL boundary: rows into model types, sqlx errors into [`StoreError`].
//!
//! Columns are decoded here and checked by [`TokenRow::into_record`], which the
//! backends share. A value that does not decode becomes
//! [`StoreError::Corrupt`] with a message naming the row and column, never the
//! value (it may be a digest or a v1 plaintext).

use nbtoken_core::{AllowedIps, PepperId};
use sqlx::error::ErrorKind;
use sqlx::postgres::PgRow;
use sqlx::Row;
use time::OffsetDateTime;

use crate::row::{allowed_ips_strings, corrupt, TokenRow};
pub(super) use crate::row::{ip_text, now, truncate};
use crate::{Result, StoreError, TokenRecord, User};

/// The bound form of allowed networks: `NULL` when not set, else CIDR strings
/// (none for `[]`) that the statement casts to `inet[]`.
pub(super) fn allowed_ips_array(ips: &AllowedIps) -> Option<Vec<String>> {
    allowed_ips_strings(ips)
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

/// A `users_token` row joined with its owner.
pub(super) fn token_from_row(row: &PgRow) -> Result<TokenRecord> {
    const T: &str = "users_token";
    let small =
        |column: &str| -> Result<Option<i64>> { Ok(get::<Option<i16>>(row, T, column)?.map(i64::from)) };
    let id: i64 = get(row, T, "id")?;
    TokenRow {
        id,
        version: i64::from(get::<i16>(row, T, "version")?),
        key: get(row, T, "key")?,
        pepper_id: small("pepper_id")?,
        hmac_digest: get(row, T, "hmac_digest")?,
        plaintext: get(row, T, "plaintext")?,
        prev_pepper_id: small("prev_pepper_id")?,
        prev_hmac_digest: get(row, T, "prev_hmac_digest")?,
        prev_valid_until: get_time(row, T, "prev_valid_until")?,
        user_id: get(row, T, "user_id")?,
        description: get(row, T, "description")?,
        created: get_required_time(row, T, id, "created")?,
        expires: get_time(row, T, "expires")?,
        last_used: get_time(row, T, "last_used")?,
        enabled: get(row, T, "enabled")?,
        write_enabled: get(row, T, "write_enabled")?,
        allowed_ips: get::<Option<Vec<String>>>(row, T, "allowed_ips")?,
        last_used_ip: get(row, T, "last_used_ip")?,
        username: get(row, "users", "username")?,
        user_active: get(row, "users", "user_active")?,
    }
    .into_record()
}

/// A `pepper_usage` aggregate column.
pub(super) fn usage_pepper_id(raw: i16) -> Result<PepperId> {
    crate::row::usage_pepper_id(i64::from(raw))
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
