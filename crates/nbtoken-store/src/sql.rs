//! The one SQL implementation of [`crate::Store`], and the small seam where databases differ.
//!
//! [`SqlStore`] holds every query, row conversion ([`record`]) and list
//! filter ([`statement`]) once. What SQLite and PostgreSQL do differently sits
//! behind [`Dialect`], implemented by [`crate::sqlite::Sqlite`] and
//! [`crate::postgres::Postgres`]: how values are bound and rows decoded
//! (timestamp text against `timestamptz`, JSON text against `inet[]`), the
//! [`Syntax`] facts (list parameters, casts, byte-order collation), the batch
//! `last_used` write, transaction isolation for a consistent page, the
//! PostgreSQL circuit breaker around every call, health, and the change feed.
//!
//! A third schema plugs in as data plus, at most, a dialect: [`Tables`] names
//! the tables and says whether nbtoken's own columns exist, and the select
//! lists are built from it. [`crate::NetBoxStore`] is this [`SqlStore`] over
//! the PostgreSQL dialect with [`NETBOX`] (NetBox's `users_user` and
//! `users_token`, joined with nbtoken's own `nbtoken.token_use` for the last
//! use address); it answers the management writes (create, update, rotate,
//! which name nbtoken's own columns) itself, with
//! [`crate::StoreError::ReadOnly`] before any SQL is built, and writes
//! touches by NetBox's rule.

use std::future::Future;
use std::sync::Arc;

use crate::changes::ChangeListener;
use crate::health::Health;
use crate::{Result, StoreError, Touch};

pub(crate) mod driver;
mod operations;
pub mod record;
pub mod statement;
mod tables;

use record::Record;
pub use statement::{Arg, Statement};
pub use tables::{Tables, NBTOKEN, NETBOX};

/// How a database spells the few things SQL does not agree on.
#[derive(Clone, Copy, Debug)]
pub struct Syntax {
    /// A list binds as one array parameter (`= ANY($n)`) instead of one parameter per value.
    pub arrays: bool,
    /// What follows the parameter of a network list so the database takes it as its column type.
    pub nets_cast: &'static str,
    /// What follows a text column in `ORDER BY` to sort by bytes, whatever the database's collation.
    pub byte_order: &'static str,
    /// The select expression of a network list column, read as text.
    pub read_nets: fn(&str) -> String,
    /// The select expression of an address column, read as text without a prefix length.
    pub read_ip: fn(&str) -> String,
}

/// A column read as it is.
pub(crate) fn as_is(column: &str) -> String {
    column.to_owned()
}

pub(crate) mod sealed {
    /// Only this crate's dialects implement [`super::Dialect`].
    pub trait Sealed {}
}

/// What one database does its own way; everything else is [`SqlStore`]'s.
///
/// Statements run on the pool (`tx` is `None`, one statement in its own
/// transaction) or inside a transaction from [`Dialect::begin`].
pub trait Dialect: sealed::Sealed + Send + Sync + 'static {
    /// A row as this database's driver returns it.
    type Row: Record + Send;
    /// An open transaction.
    type Tx: Send;

    /// `"sqlite"` or `"postgres"`, for logs, metrics and health output.
    const NAME: &'static str;
    /// How this database spells lists, casts and byte order.
    const SYNTAX: Syntax;

    /// Starts a transaction; with `snapshot`, a read-only one whose statements all see one
    /// snapshot (a count and its page agree).
    fn begin(&self, snapshot: bool) -> impl Future<Output = Result<Self::Tx>> + Send;
    /// Commits `tx`.
    fn commit(tx: Self::Tx) -> impl Future<Output = Result<()>> + Send;
    /// Every row `statement` returns.
    fn fetch_all(
        &self,
        tx: Option<&mut Self::Tx>,
        statement: &Statement,
    ) -> impl Future<Output = Result<Vec<Self::Row>>> + Send;
    /// The first row `statement` returns, if any (the statements that use it return one row at most).
    fn fetch_optional(
        &self,
        tx: Option<&mut Self::Tx>,
        statement: &Statement,
    ) -> impl Future<Output = Result<Option<Self::Row>>> + Send {
        async move { Ok(self.fetch_all(tx, statement).await?.into_iter().next()) }
    }
    /// Runs `statement`; answers how many rows it changed.
    fn execute(
        &self,
        tx: Option<&mut Self::Tx>,
        statement: &Statement,
    ) -> impl Future<Output = Result<u64>> + Send;
    /// Runs one whole store call (PostgreSQL: through its circuit breaker).
    fn guard<T: Send>(
        &self,
        call: impl Future<Output = Result<T>> + Send,
    ) -> impl Future<Output = Result<T>> + Send;
    /// Moves `last_used` (and `last_used_ip`, where `tables` has it) forward for a batch:
    /// the latest touch per token wins, the first of equal ones, and only if it moves
    /// `last_used` forward. Tokens deleted meanwhile are skipped.
    fn touch_last_used(
        &self,
        tx: &mut Self::Tx,
        tables: &Tables,
        touches: &[Touch],
    ) -> impl Future<Output = Result<()>> + Send;
    /// See [`crate::Store::health`].
    fn health(&self) -> impl Future<Output = Health> + Send;
    /// See [`crate::Store::preflight`].
    fn preflight(&self) -> impl Future<Output = Result<()>> + Send;
    /// See [`crate::Store::close`].
    fn close(&self) -> impl Future<Output = ()> + Send;
    /// See [`crate::Store::changes`].
    fn changes(&self) -> impl Future<Output = Result<Option<ChangeListener>>> + Send;
}

/// A [`crate::Store`] on an SQL database: [`crate::SqliteStore`] or [`crate::PgStore`].
///
/// Cloning is cheap and shares the connection pool.
#[derive(Clone, Debug)]
pub struct SqlStore<D> {
    pub(crate) db: D,
    tables: Tables,
    /// `SELECT … FROM` users, built once from `tables`.
    user_select: Arc<str>,
    /// `SELECT … FROM` tokens joined with their owner, built once from `tables`.
    token_select: Arc<str>,
}

impl<D: Dialect> SqlStore<D> {
    /// A store on `db` whose rows live in `tables`.
    pub(crate) fn new(db: D, tables: Tables) -> Self {
        let user_select = format!("SELECT {} FROM {} u", tables.user_columns(), tables.users).into();
        let token_select = tables.token_select(D::SYNTAX).into();
        Self { db, tables, user_select, token_select }
    }

    /// A statement of `template`, with this store's table names.
    fn statement(&self, template: &str) -> Statement {
        Statement::new(D::SYNTAX, self.tables.sql(template))
    }

    /// The user whose `column` is `$1`.
    fn user_where(&self, column: &str, value: impl Into<Arg>) -> Statement {
        Statement::new(D::SYNTAX, format!("{} WHERE u.{column} = $1", self.user_select)).arg(value)
    }

    /// The token matching `condition` (on `t`, with `$1` for `value`).
    fn token_where(&self, condition: &str, value: impl Into<Arg>) -> Statement {
        Statement::new(D::SYNTAX, format!("{} WHERE {condition}", self.token_select)).arg(value)
    }

    /// The first row `read` returns, converted.
    async fn read_one<T>(
        &self,
        tx: Option<&mut D::Tx>,
        read: &Statement,
        convert: fn(&D::Row) -> Result<T>,
    ) -> Result<Option<T>> {
        self.db.fetch_optional(tx, read).await?.as_ref().map(convert).transpose()
    }

    /// Runs `write`, which must change a row (else `NotFound`), and reads a row back with
    /// `read`, in one transaction.
    async fn write_then_read<T>(
        &self,
        write: Option<&Statement>,
        read: Statement,
        convert: fn(&D::Row) -> Result<T>,
    ) -> Result<T> {
        let mut tx = self.db.begin(false).await?;
        if let Some(write) = write {
            found(self.db.execute(Some(&mut tx), write).await?)?;
        }
        let row = self.read_one(Some(&mut tx), &read, convert).await?.ok_or(StoreError::NotFound)?;
        D::commit(tx).await?;
        Ok(row)
    }

    /// Deletes row `id` of `table` ([`StoreError::NotFound`] when there is none).
    async fn delete(&self, table: &str, id: i64) -> Result<()> {
        let s = Statement::new(D::SYNTAX, format!("DELETE FROM {table} WHERE id = $1")).arg(id);
        self.db.guard(async { found(self.db.execute(None, &s).await?) }).await
    }

    /// Runs `insert` (`… RETURNING id`) and reads the new row back with `read`, in one
    /// transaction; `skipped` when the insert returned no row (`ON CONFLICT DO NOTHING`).
    async fn insert_then_read<T>(
        &self,
        insert: Statement,
        skipped: StoreError,
        read: impl Fn(i64) -> Statement + Send,
        convert: fn(&D::Row) -> Result<T>,
    ) -> Result<T> {
        let mut tx = self.db.begin(false).await?;
        let inserted = self.db.fetch_optional(Some(&mut tx), &insert).await?;
        let id = inserted.as_ref().map(|r| number(r, "id")).transpose()?.ok_or(skipped)?;
        let row = self.read_one(Some(&mut tx), &read(id), convert).await?.ok_or(StoreError::NotFound)?;
        D::commit(tx).await?;
        Ok(row)
    }

    /// Runs one statement of raw SQL without parameters: for this crate's tests, not an API.
    #[doc(hidden)]
    pub async fn execute_sql(&self, sql: &str) -> Result<u64> {
        self.db.execute(None, &Statement::new(D::SYNTAX, sql)).await
    }

    /// The count of rows `count` matches and the page `select` returns, from one snapshot.
    async fn list<T>(
        &self,
        count: Statement,
        select: Statement,
        convert: fn(&D::Row) -> Result<T>,
    ) -> Result<(u64, Vec<T>)> {
        let mut tx = self.db.begin(true).await?;
        let total = match self.db.fetch_optional(Some(&mut tx), &count).await? {
            Some(row) => number(&row, "n")?,
            None => 0,
        };
        let rows = self.db.fetch_all(Some(&mut tx), &select).await?;
        D::commit(tx).await?;
        let items = rows.iter().map(convert).collect::<Result<Vec<_>>>()?;
        Ok((u64::try_from(total).unwrap_or(0), items))
    }
}

/// The number in `column` of a row this crate's own statement computed (an id, a count).
fn number<R: Record>(row: &R, column: &str) -> Result<i64> {
    row.int(column)
        .ok()
        .flatten()
        .ok_or_else(|| StoreError::Database(format!("the database answered no number for {column}")))
}

/// `NotFound` when a statement changed no row.
pub(crate) fn found(rows: u64) -> Result<()> {
    if rows == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}
