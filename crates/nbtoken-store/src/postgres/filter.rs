//! SQL for the list filters and pages, built with bound parameters only.
//!
//! Column names come from this file; every value a caller supplies is bound.
//! A list of values is bound once, as an array (`column = ANY($n)`), so the
//! statement text does not depend on how many values there are.

use sqlx::postgres::PgHasArrayType;
use sqlx::{Postgres, QueryBuilder};

use crate::{Page, TokenFilter, UserFilter};

/// Appends ` WHERE ` before the first condition and ` AND ` before the others.
struct Conditions {
    any: bool,
}

impl Conditions {
    fn new() -> Self {
        Self { any: false }
    }

    fn next(&mut self, qb: &mut QueryBuilder<'_, Postgres>) {
        qb.push(if self.any { " AND " } else { " WHERE " });
        self.any = true;
    }

    /// `column = ANY(array)`; nothing when `values` is empty.
    fn any_of<'a, T>(&mut self, qb: &mut QueryBuilder<'a, Postgres>, column: &str, values: &'a [T])
    where
        T: PgHasArrayType,
        &'a [T]: sqlx::Encode<'a, Postgres> + sqlx::Type<Postgres> + Send,
    {
        if values.is_empty() {
            return;
        }
        self.next(qb);
        qb.push(column).push(" = ANY(").push_bind(values).push(")");
    }

    /// `column` one of `values` when the filter is set: no row at all when it is set to an
    /// empty list, nothing added when it is `None`.
    fn one_of_or_none<'a>(
        &mut self,
        qb: &mut QueryBuilder<'a, Postgres>,
        column: &str,
        values: &'a Option<Vec<String>>,
    ) {
        match values {
            None => {}
            Some(values) if values.is_empty() => {
                self.next(qb);
                qb.push("1 = 0");
            }
            Some(values) => self.any_of(qb, column, values),
        }
    }

    /// `column = value`; nothing when `value` is `None`.
    fn equals<'a, T>(&mut self, qb: &mut QueryBuilder<'a, Postgres>, column: &str, value: Option<T>)
    where
        T: sqlx::Encode<'a, Postgres> + sqlx::Type<Postgres> + Send + 'a,
    {
        if let Some(value) = value {
            self.next(qb);
            qb.push(column).push(" = ").push_bind(value);
        }
    }
}

pub(super) fn push_page(qb: &mut QueryBuilder<'_, Postgres>, page: Page) {
    qb.push(" LIMIT ").push_bind(i64::from(page.limit));
    qb.push(" OFFSET ").push_bind(i64::try_from(page.offset).unwrap_or(i64::MAX));
}

pub(super) fn push_user_filter<'a>(qb: &mut QueryBuilder<'a, Postgres>, filter: &'a UserFilter) {
    let mut c = Conditions::new();
    c.any_of(qb, "u.id", &filter.ids);
    c.any_of(qb, "u.username", &filter.usernames);
    c.equals(qb, "u.is_active", filter.is_active);
}

pub(super) fn push_token_filter<'a>(qb: &mut QueryBuilder<'a, Postgres>, filter: &'a TokenFilter) {
    let mut c = Conditions::new();
    c.any_of(qb, "t.id", &filter.ids);
    c.any_of(qb, "t.user_id", &filter.user_ids);
    c.any_of(qb, "u.username", &filter.usernames);
    c.equals(qb, "t.version", filter.version.map(|v| i16::from(v.as_u8())));
    c.equals(qb, "t.enabled", filter.enabled);
    c.equals(qb, "t.write_enabled", filter.write_enabled);
    c.any_of(qb, "t.key", &filter.keys);
    c.one_of_or_none(qb, "t.description", &filter.descriptions);
    c.equals(qb, "t.pepper_id", filter.pepper_id.map(pepper_column));
}

/// A pepper id as its `smallint` column value (ids are at most 32767).
pub(super) fn pepper_column(id: nbtoken_core::PepperId) -> i16 {
    i16::try_from(id.get()).unwrap_or(i16::MAX)
}
