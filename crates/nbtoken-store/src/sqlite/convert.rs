//! The SQLite boundary: timestamps as text, networks as JSON, rows through [`DriverRow`], sqlx errors into [`StoreError`].
//!
//! A value that does not decode is reported as [`Bad::Invalid`], which the
//! shared conversion turns into [`StoreError::Corrupt`] naming the row and
//! column, never the value (it may be a digest or a v1 plaintext).

use sqlx::error::ErrorKind;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::Arguments;
use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::sql::driver::{add_plain, bind_error, driver_error, get, DriverRow};
use crate::sql::record::{truncate, Bad};
use crate::sql::{Arg, Statement};
use crate::{Result, StoreError};

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

fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| PrimitiveDateTime::parse(s, SQLITE_DATETIME).map(PrimitiveDateTime::assume_utc))
        .map(truncate)
        .ok()
}

/// `statement` with its values in SQLite's forms: timestamps as fixed-width text, allowed
/// networks as a JSON array of CIDR strings (`NULL` when not set, `[]` for the empty list).
pub(super) fn query(
    statement: &Statement,
) -> Result<sqlx::query::Query<'_, sqlx::Sqlite, SqliteArguments<'_>>> {
    let mut args = SqliteArguments::default();
    for arg in statement.args() {
        let added = match arg {
            Arg::Int(_) | Arg::Text(_) | Arg::Bool(_) => add_plain(&mut args, arg),
            Arg::Time(v) => args.add(v.map(timestamp).transpose()?),
            Arg::Nets(v) => args.add(
                v.as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|e| StoreError::Database(format!("cannot store allowed_ips: {e}")))?,
            ),
            // The statement builder spells lists out as one parameter per value here.
            Arg::Ints(_) | Arg::Texts(_) => {
                return Err(StoreError::Database("a list parameter reached SQLite".to_owned()))
            }
        };
        added.map_err(bind_error)?;
    }
    Ok(sqlx::query_with(statement.sql(), args))
}

impl DriverRow for SqliteRow {
    fn int(&self, column: &str) -> Result<Option<i64>, Bad> {
        get(self, column)
    }

    fn time(&self, column: &str) -> Result<Option<OffsetDateTime>, Bad> {
        get::<Option<String>, _>(self, column)?
            .map(|s| parse_timestamp(&s).ok_or(Bad::Invalid("is not a timestamp")))
            .transpose()
    }

    fn nets(&self, column: &str) -> Result<Option<Vec<String>>, Bad> {
        match get::<Option<String>, _>(self, column)?.filter(|s| !s.trim().is_empty()) {
            None => Ok(None),
            Some(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|_| Bad::Invalid("is not a JSON array of networks")),
        }
    }
}

/// Maps an sqlx error to a [`StoreError`]; SQLite's messages name constraints and columns, never values.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
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
        other => driver_error(other),
    }
}
