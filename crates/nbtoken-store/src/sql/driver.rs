//! What the dialects share at sqlx's boundary: binding the values every driver takes as they
//! are, reading a column, and sorting the driver errors no database explains.

use sqlx::error::BoxDynError;
use sqlx::{Arguments, ColumnIndex, Decode, Encode, Row, Type};

use time::OffsetDateTime;

use super::record::{Bad, Record};
use super::Arg;
use crate::StoreError;

/// Adds an integer, a text or a flag to `args`: the kinds every driver binds as they are.
/// The other kinds (times, networks, lists) each dialect encodes its own way, so they are
/// refused here.
pub(crate) fn add_plain<'q, A>(args: &mut A, arg: &'q Arg) -> Result<(), BoxDynError>
where
    A: Arguments<'q>,
    Option<i64>: Encode<'q, A::Database> + Type<A::Database>,
    Option<String>: Encode<'q, A::Database> + Type<A::Database>,
    bool: Encode<'q, A::Database> + Type<A::Database>,
{
    match arg {
        Arg::Int(v) => args.add(*v),
        Arg::Text(v) => args.add(v.clone()),
        Arg::Bool(v) => args.add(*v),
        Arg::Time(_) | Arg::Nets(_) | Arg::Ints(_) | Arg::Texts(_) => {
            Err("the dialect encodes this kind of value".into())
        }
    }
}

/// Why a value could not be bound, as a [`StoreError`].
pub(crate) fn bind_error(e: BoxDynError) -> StoreError {
    StoreError::Database(format!("cannot bind a value: {e}"))
}

/// Reads a column, telling a column the query did not select from a value of the wrong type.
pub(crate) fn get<'r, T, R>(row: &'r R, column: &str) -> Result<T, Bad>
where
    R: Row,
    T: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    row.try_get(column).map_err(|e| match e {
        sqlx::Error::ColumnNotFound(_) => Bad::NotSelected,
        _ => Bad::Invalid("has the wrong type"),
    })
}

/// A driver's row, reading the kinds of value whose storage differs between databases
/// (integer widths, times, networks). Each is a [`Record`], reading text and flags as they are.
pub trait DriverRow: Row {
    /// An integer column of any width.
    fn int(&self, column: &str) -> Result<Option<i64>, Bad>;
    /// A timestamp column.
    fn time(&self, column: &str) -> Result<Option<OffsetDateTime>, Bad>;
    /// Allowed networks, as [`Record::nets`].
    fn nets(&self, column: &str) -> Result<Option<Vec<String>>, Bad>;
}

impl<R> Record for R
where
    R: DriverRow,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<bool>: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    fn int(&self, column: &str) -> Result<Option<i64>, Bad> {
        DriverRow::int(self, column)
    }

    fn text(&self, column: &str) -> Result<Option<String>, Bad> {
        get(self, column)
    }

    fn flag(&self, column: &str) -> Result<Option<bool>, Bad> {
        get(self, column)
    }

    fn time(&self, column: &str) -> Result<Option<OffsetDateTime>, Bad> {
        DriverRow::time(self, column)
    }

    fn nets(&self, column: &str) -> Result<Option<Vec<String>>, Bad> {
        DriverRow::nets(self, column)
    }
}

/// Maps the sqlx errors that are not the database's own answer (pool, I/O, configuration,
/// decoding) to a [`StoreError`]; each dialect reads its database's errors itself first.
pub(crate) fn driver_error(e: sqlx::Error) -> StoreError {
    match e {
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
