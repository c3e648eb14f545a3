//! Statements in the store's terms: SQL text with `$n` parameters and the values to bind.
//!
//! Both databases read `$n` (sqlx maps SQLite's `$n` to the n-th argument), so
//! one text serves both. A value is an [`Arg`] of the store's own kinds; each
//! dialect turns it into its driver's type when it runs the statement (a time
//! into SQLite's fixed-width text or PostgreSQL's `timestamptz`, networks into
//! JSON text or `inet[]`). Every value a caller supplies is bound, never
//! spliced into the text: column names come from this crate.

use ipnet::IpNet;
use nbtoken_core::{AllowedIps, PepperId};
use time::OffsetDateTime;

use super::Syntax;
use crate::{Page, TokenFilter, UserFilter};

/// A value to bind, by what it means; each dialect encodes it its own way.
#[derive(Clone, Debug)]
pub enum Arg {
    /// An integer (ids, versions, pepper ids, limits).
    Int(Option<i64>),
    /// Text.
    Text(Option<String>),
    /// A flag.
    Bool(bool),
    /// An instant (stored to the microsecond).
    Time(Option<OffsetDateTime>),
    /// Allowed networks as CIDR strings: `None` for not set, an empty list for `[]`.
    Nets(Option<Vec<String>>),
    /// A list of integers to match any of.
    Ints(Vec<i64>),
    /// A list of texts to match any of.
    Texts(Vec<String>),
}

/// `From<T>` and `From<Option<T>>` for each `T => Kind(to)`: the value (or `NULL`) of that
/// kind, `to` turning a `T` into what the kind holds.
macro_rules! arg_from {
    ($($t:ty => $kind:ident($to:expr)),* $(,)?) => {$(
        impl From<$t> for Arg {
            fn from(v: $t) -> Self {
                Arg::$kind(Some($to(v)))
            }
        }

        impl From<Option<$t>> for Arg {
            fn from(v: Option<$t>) -> Self {
                Arg::$kind(v.map($to))
            }
        }
    )*};
}

arg_from! {
    i64 => Int(std::convert::identity),
    PepperId => Int(|p: PepperId| i64::from(p.get())),
    String => Text(std::convert::identity),
    &str => Text(str::to_owned),
    OffsetDateTime => Time(std::convert::identity),
}

impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl From<&AllowedIps> for Arg {
    /// `NULL` when not set, else the CIDR strings (none for `[]`, which NetBox's REST API stores).
    fn from(ips: &AllowedIps) -> Self {
        Arg::Nets(ips.is_list().then(|| ips.nets().iter().map(IpNet::to_string).collect()))
    }
}

/// SQL text and the values its `$n` parameters stand for.
#[derive(Clone, Debug)]
pub struct Statement {
    sql: String,
    args: Vec<Arg>,
    syntax: Syntax,
}

impl Statement {
    /// A statement of `sql`, whose `$n` parameters the following [`Statement::arg`]s fill in order.
    pub(crate) fn new(syntax: Syntax, sql: impl Into<String>) -> Self {
        Self { sql: sql.into(), args: Vec::new(), syntax }
    }

    /// The text to run.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The values, `$1` first.
    pub fn args(&self) -> &[Arg] {
        &self.args
    }

    /// Adds the value of the next `$n` written in the text.
    pub(crate) fn arg(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Appends text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a parameter for `value` (cast where the database needs it) and binds it.
    pub(crate) fn bind(&mut self, value: impl Into<Arg>) -> &mut Self {
        let value = value.into();
        self.args.push(value);
        let n = self.args.len();
        self.sql.push_str(&format!("${n}"));
        if let Some(Arg::Nets(_)) = self.args.last() {
            self.sql.push_str(self.syntax.nets_cast);
        }
        self
    }

    /// `INSERT INTO table (columns…) VALUES (…)` followed by `rest`.
    pub(crate) fn insert(syntax: Syntax, table: &str, values: Vec<(&str, Arg)>, rest: &str) -> Self {
        let columns: Vec<&str> = values.iter().map(|(c, _)| *c).collect();
        let mut s = Self::new(syntax, format!("INSERT INTO {table} ({}) VALUES (", columns.join(", ")));
        for (i, (_, value)) in values.into_iter().enumerate() {
            if i > 0 {
                s.push(", ");
            }
            s.bind(value);
        }
        s.push(") ").push(rest);
        s
    }

    /// `UPDATE table SET column = value, … WHERE id = $n` for the values that are set;
    /// `None` when none is.
    pub(crate) fn update(
        syntax: Syntax,
        table: &str,
        sets: Vec<(&str, Option<Arg>)>,
        id: i64,
    ) -> Option<Self> {
        let mut s = Self::new(syntax, format!("UPDATE {table} SET "));
        let mut any = false;
        for (column, value) in sets {
            let Some(value) = value else { continue };
            if any {
                s.push(", ");
            }
            s.push(column).push(" = ").bind(value);
            any = true;
        }
        s.push(" WHERE id = ").bind(id);
        any.then_some(s)
    }

    /// ` LIMIT … OFFSET …`.
    pub(crate) fn page(&mut self, page: Page) -> &mut Self {
        self.push(" LIMIT ").bind(i64::from(page.limit));
        self.push(" OFFSET ").bind(i64::try_from(page.offset).unwrap_or(i64::MAX))
    }

    /// The `WHERE` of a user list.
    pub(crate) fn user_filter(&mut self, filter: &UserFilter) -> &mut Self {
        let mut c = Conditions { s: self, any: false };
        c.any_of("u.id", Arg::Ints(filter.ids.clone()));
        c.any_of("u.username", Arg::Texts(filter.usernames.clone()));
        c.equals("u.is_active", filter.is_active.map(Arg::from));
        self
    }

    /// The `WHERE` of a token list.
    pub(crate) fn token_filter(&mut self, filter: &TokenFilter) -> &mut Self {
        let mut c = Conditions { s: self, any: false };
        c.any_of("t.id", Arg::Ints(filter.ids.clone()));
        c.any_of("t.user_id", Arg::Ints(filter.user_ids.clone()));
        c.any_of("u.username", Arg::Texts(filter.usernames.clone()));
        c.equals("t.version", filter.version.map(|v| Arg::from(i64::from(v.as_u8()))));
        c.equals("t.enabled", filter.enabled.map(Arg::from));
        c.equals("t.write_enabled", filter.write_enabled.map(Arg::from));
        c.any_of("t.key", Arg::Texts(filter.keys.clone()));
        match &filter.descriptions {
            None => {}
            // Set to an empty list: no token at all.
            Some(values) if values.is_empty() => {
                c.condition().push("1 = 0");
            }
            Some(values) => c.any_of("t.description", Arg::Texts(values.clone())),
        }
        c.equals("t.pepper_id", filter.pepper_id.map(Arg::from));
        self
    }
}

/// Appends ` WHERE ` before the first condition and ` AND ` before the others.
struct Conditions<'s> {
    s: &'s mut Statement,
    any: bool,
}

impl Conditions<'_> {
    fn condition(&mut self) -> &mut Statement {
        self.s.push(if self.any { " AND " } else { " WHERE " });
        self.any = true;
        self.s
    }

    /// `column` is one of `values` (an [`Arg::Ints`] or [`Arg::Texts`]); nothing when there are none.
    ///
    /// Where the database has arrays the list is bound once (`column = ANY($n)`), so the
    /// statement text does not depend on how many values there are; elsewhere each value
    /// is a parameter of its own (`column IN ($n, …)`).
    fn any_of(&mut self, column: &str, values: Arg) {
        let items: Vec<Arg> = match &values {
            Arg::Ints(v) => v.iter().map(|&i| Arg::from(i)).collect(),
            Arg::Texts(v) => v.iter().map(|t| Arg::from(t.clone())).collect(),
            _ => vec![values.clone()],
        };
        if items.is_empty() {
            return;
        }
        let arrays = self.s.syntax.arrays;
        let s = self.condition();
        if arrays {
            s.push(column).push(" = ANY(").bind(values).push(")");
        } else {
            s.push(column).push(" IN (");
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    s.push(", ");
                }
                s.bind(item);
            }
            s.push(")");
        }
    }

    /// `column = value`; nothing when `value` is `None`.
    fn equals(&mut self, column: &str, value: Option<Arg>) {
        if let Some(value) = value {
            self.condition().push(column).push(" = ").bind(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sql::Dialect;

    const SQLITE: Syntax = crate::sqlite::Sqlite::SYNTAX;
    const PG: Syntax = crate::postgres::Postgres::SYNTAX;

    fn check(syntax: Syntax, filter: TokenFilter, sql: &str, args: usize) {
        let mut s = Statement::new(syntax, "SELECT 1");
        s.token_filter(&filter).page(Page { limit: 5, offset: 0 });
        assert_eq!(s.sql(), sql);
        assert_eq!(s.args().len(), args);
    }

    #[test]
    fn filters_bind_lists_as_the_database_likes() {
        let filter = TokenFilter { ids: vec![1, 2], enabled: Some(true), ..Default::default() };
        check(
            SQLITE,
            filter.clone(),
            "SELECT 1 WHERE t.id IN ($1, $2) AND t.enabled = $3 LIMIT $4 OFFSET $5",
            5,
        );
        check(PG, filter, "SELECT 1 WHERE t.id = ANY($1) AND t.enabled = $2 LIMIT $3 OFFSET $4", 4);
        let none = TokenFilter { descriptions: Some(vec![]), ..Default::default() };
        check(PG, none, "SELECT 1 WHERE 1 = 0 LIMIT $1 OFFSET $2", 2);
    }

    #[test]
    fn updates_set_only_what_is_given_and_cast_networks() {
        let sets =
            vec![("a", None), ("allowed_ips", Some(Arg::Nets(Some(vec![])))), ("b", Some(Arg::from(1)))];
        let s = Statement::update(PG, "t", sets, 7).unwrap();
        assert_eq!(s.sql(), "UPDATE t SET allowed_ips = $1::inet[], b = $2 WHERE id = $3");
        assert!(Statement::update(SQLITE, "t", vec![("a", None)], 7).is_none());
    }
}
