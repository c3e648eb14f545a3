//! The PostgreSQL boundary: values into native types, rows through [`DriverRow`], sqlx errors into [`StoreError`].
//!
//! A value that does not decode is reported as [`Bad::Invalid`], which the
//! shared conversion turns into [`StoreError::Corrupt`] naming the row and
//! column, never the value (it may be a digest or a v1 plaintext).

use sqlx::error::ErrorKind;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Arguments, Column, Row, TypeInfo};
use time::OffsetDateTime;

use crate::sql::driver::{add_plain, bind_error, driver_error, get, DriverRow};
use crate::sql::record::{truncate, Bad};
use crate::sql::{Arg, Statement};
use crate::{Result, StoreError};

/// `statement` with its values in PostgreSQL's native types: `timestamptz`, and allowed
/// networks as text the statement casts to `inet[]`.
pub(super) fn query(statement: &Statement) -> Result<sqlx::query::Query<'_, sqlx::Postgres, PgArguments>> {
    let mut args = PgArguments::default();
    for arg in statement.args() {
        let added = match arg {
            Arg::Int(_) | Arg::Text(_) | Arg::Bool(_) => add_plain(&mut args, arg),
            Arg::Time(v) => args.add(v.map(truncate)),
            Arg::Nets(v) => args.add(v.clone()),
            Arg::Ints(v) => args.add(v.clone()),
            Arg::Texts(v) => args.add(v.clone()),
        };
        added.map_err(bind_error)?;
    }
    Ok(sqlx::query_with(statement.sql(), args))
}

impl DriverRow for PgRow {
    /// Versions and pepper ids are `smallint`, ids `bigint`, counts `bigint`.
    fn int(&self, column: &str) -> Result<Option<i64>, Bad> {
        let width = self.try_column(column).map_err(|_| Bad::NotSelected)?.type_info().name().to_owned();
        match width.as_str() {
            "INT2" => Ok(get::<Option<i16>, _>(self, column)?.map(i64::from)),
            "INT4" => Ok(get::<Option<i32>, _>(self, column)?.map(i64::from)),
            _ => get(self, column),
        }
    }

    fn time(&self, column: &str) -> Result<Option<OffsetDateTime>, Bad> {
        get(self, column)
    }

    fn nets(&self, column: &str) -> Result<Option<Vec<String>>, Bad> {
        get(self, column)
    }
}

/// Maps an sqlx error to a [`StoreError`].
///
/// Only PostgreSQL's primary message is kept: its `detail` can quote the
/// failing row (a digest, a v1 plaintext), so it is never used.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
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
        sqlx::Error::Tls(_) => StoreError::Config(e.to_string()),
        other => driver_error(other),
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
