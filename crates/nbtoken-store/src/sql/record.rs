//! Rows into model types, once for every backend.
//!
//! A dialect decodes its own column types behind [`Record`] (SQLite's
//! timestamp text and JSON, PostgreSQL's `timestamptz` and `inet[]`);
//! `token_from_row` and `user_from_row` check the values and build the
//! model. A value that does not parse becomes [`StoreError::Corrupt`] with a
//! message naming the row and column, never the value (it may be a digest or
//! a v1 plaintext).

use std::net::IpAddr;

use nbtoken_core::{
    AllowedIps, Digest, PepperId, PreviousSecret, StoredCredential, StoredToken, TokenKey, V1Plaintext,
};
use time::{OffsetDateTime, UtcOffset};

use crate::{PepperUsage, Result, StoreError, TokenRecord, User};

/// Why a column could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// The query did not select it (a bug in this crate).
    NotSelected,
    /// Its value is not what the column should hold; says what is wrong (`"has the wrong type"`).
    Invalid(&'static str),
}

/// A row read column by column in the store's own kinds of value; `None` is `NULL`.
pub trait Record {
    /// An integer column of any width.
    fn int(&self, column: &str) -> Result<Option<i64>, Bad>;
    /// A text column.
    fn text(&self, column: &str) -> Result<Option<String>, Bad>;
    /// A boolean column.
    fn flag(&self, column: &str) -> Result<Option<bool>, Bad>;
    /// A timestamp column.
    fn time(&self, column: &str) -> Result<Option<OffsetDateTime>, Bad>;
    /// Allowed networks as text (a bare address is one host); `None` for `NULL`, empty for `[]`.
    fn nets(&self, column: &str) -> Result<Option<Vec<String>>, Bad>;
}

/// The current time in UTC, truncated to what the databases keep.
pub(crate) fn now() -> OffsetDateTime {
    truncate(OffsetDateTime::now_utc())
}

/// `t` in UTC with its sub-microsecond part dropped (what `timestamptz` and SQLite's text keep), so it round-trips exactly.
pub(crate) fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    // A nanosecond value rounded down to whole microseconds stays below 10^9,
    // so `replace_nanosecond` cannot fail; `unwrap_or` only satisfies the type.
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000).unwrap_or(t)
}

/// A corrupt value in `table` row `id`, named by column and never quoted.
pub(crate) fn corrupt(table: &str, id: i64, column: &str, what: &str) -> StoreError {
    StoreError::Corrupt(format!("{table} row {id}: {column} {what}"))
}

/// One row of `table` being read: every failure names the table, the row's id and the column.
struct Columns<'r, R> {
    row: &'r R,
    table: &'static str,
    id: i64,
}

impl<'r, R: Record> Columns<'r, R> {
    fn new(row: &'r R, table: &'static str) -> Result<Self> {
        let mut columns = Self { row, table, id: -1 };
        columns.id = columns.required(R::int, "id")?;
        Ok(columns)
    }

    fn get<T>(&self, read: fn(&R, &str) -> Result<Option<T>, Bad>, column: &str) -> Result<Option<T>> {
        read(self.row, column).map_err(|bad| match bad {
            Bad::NotSelected => StoreError::Database(format!("query did not select {}.{column}", self.table)),
            Bad::Invalid(what) => corrupt(self.table, self.id, column, what),
        })
    }

    fn required<T>(&self, read: fn(&R, &str) -> Result<Option<T>, Bad>, column: &str) -> Result<T> {
        self.get(read, column)?.ok_or_else(|| corrupt(self.table, self.id, column, "is missing"))
    }

    fn pepper_id(&self, column: &str) -> Result<Option<PepperId>> {
        self.get(R::int, column)?
            .map(|raw| {
                u16::try_from(raw)
                    .ok()
                    .and_then(|v| PepperId::new(v).ok())
                    .ok_or_else(|| corrupt(self.table, self.id, column, "is not a pepper id from 0 to 32767"))
            })
            .transpose()
    }

    fn digest(&self, column: &str) -> Result<Option<Digest>> {
        self.get(R::text, column)?
            .map(|hex| {
                Digest::from_hex(&hex)
                    .map_err(|_| corrupt(self.table, self.id, column, "is not 64 hexadecimal characters"))
            })
            .transpose()
    }

    fn time(&self, column: &str) -> Result<Option<OffsetDateTime>> {
        Ok(self.get(R::time, column)?.map(truncate))
    }
}

/// A `users` row, as [`super::Tables::user_columns`] selects it.
pub(crate) fn user_from_row<R: Record>(row: &R) -> Result<User> {
    let c = Columns::new(row, "users")?;
    Ok(User {
        id: c.id,
        username: c.required(R::text, "username")?,
        password_hash: c.get(R::text, "password")?,
        first_name: c.required(R::text, "first_name")?,
        last_name: c.required(R::text, "last_name")?,
        email: c.required(R::text, "email")?,
        is_active: c.required(R::flag, "is_active")?,
        is_superuser: c.required(R::flag, "is_superuser")?,
        can_grant_tokens: c.required(R::flag, "can_grant_tokens")?,
        date_joined: truncate(c.required(R::time, "date_joined")?),
        last_login: c.time("last_login")?,
    })
}

/// A `users_token` row joined with its owner, as [`super::Tables::token_select`] selects it.
pub(crate) fn token_from_row<R: Record>(row: &R) -> Result<TokenRecord> {
    let c = Columns::new(row, "users_token")?;
    let (id, version) = (c.id, c.required(R::int, "version")?);
    let missing = |column: &str| corrupt(c.table, id, column, &format!("is missing on a v{version} token"));
    let credential = match version {
        1 => StoredCredential::V1 {
            plaintext: V1Plaintext::from_stored(
                c.get(R::text, "plaintext")?.ok_or_else(|| missing("plaintext"))?,
            ),
        },
        2 => {
            let key = c.get(R::text, "key")?.ok_or_else(|| missing("key"))?;
            let key = TokenKey::parse(&key)
                .map_err(|_| corrupt(c.table, id, "key", "is not 12 characters of [A-Za-z0-9]"))?;
            let previous = match (
                c.pepper_id("prev_pepper_id")?,
                c.digest("prev_hmac_digest")?,
                c.time("prev_valid_until")?,
            ) {
                (None, None, None) => None,
                (Some(pepper_id), Some(digest), Some(valid_until)) => {
                    Some(PreviousSecret { pepper_id, digest, valid_until })
                }
                _ => return Err(corrupt(c.table, id, "prev_*", "columns are only partly set")),
            };
            StoredCredential::V2 {
                key,
                pepper_id: c.pepper_id("pepper_id")?.ok_or_else(|| missing("pepper_id"))?,
                digest: c.digest("hmac_digest")?.ok_or_else(|| missing("hmac_digest"))?,
                previous,
            }
        }
        other => return Err(corrupt(c.table, id, "version", &format!("is {other}, not 1 or 2"))),
    };
    let token = StoredToken {
        id,
        user_id: c.required(R::int, "user_id")?,
        credential,
        enabled: c.required(R::flag, "enabled")?,
        write_enabled: c.required(R::flag, "write_enabled")?,
        expires: c.time("expires")?,
        last_used: c.time("last_used")?,
        allowed_ips: allowed_ips(c.get(R::nets, "allowed_ips")?, id)?,
    };
    Ok(TokenRecord {
        token,
        description: c.required(R::text, "description")?,
        created: truncate(c.required(R::time, "created")?),
        username: c.required(R::text, "username")?,
        user_active: c.required(R::flag, "user_active")?,
        last_used_ip: c.get(R::text, "last_used_ip")?.map(|s| parse_ip(&s, id)).transpose()?,
    })
}

/// One row of the `pepper_usage` aggregate (`pepper_id`, `tokens`, `last_used`).
pub(crate) fn usage_from_row<R: Record>(row: &R) -> Result<PepperUsage> {
    let failed = |what: &str| StoreError::Corrupt(format!("users_token: {what}"));
    let raw = row.int("pepper_id").ok().flatten().ok_or_else(|| failed("a pepper id cannot be read"))?;
    let pepper_id = u16::try_from(raw)
        .ok()
        .and_then(|v| PepperId::new(v).ok())
        .ok_or_else(|| failed(&format!("pepper id {raw} is out of range")))?;
    let tokens = row.int("tokens").ok().flatten().ok_or_else(|| failed("a count cannot be read"))?;
    let last_used = row.time("last_used").map_err(|_| failed("a last_used is not a timestamp"))?;
    Ok(PepperUsage {
        pepper_id,
        tokens: u64::try_from(tokens).unwrap_or(0),
        last_used: last_used.map(truncate),
    })
}

fn allowed_ips(items: Option<Vec<String>>, id: i64) -> Result<AllowedIps> {
    let Some(items) = items else { return Ok(AllowedIps::default()) };
    // NetBox's column is inet[], whose text form leaves out the prefix length of a single host.
    let nets = items
        .iter()
        .map(|item| {
            AllowedIps::parse_net(item)
                .ok_or_else(|| corrupt("users_token", id, "allowed_ips", "is not an array of networks"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(AllowedIps::new(nets))
}

fn parse_ip(s: &str, id: i64) -> Result<IpAddr> {
    s.trim().parse::<IpAddr>().map_err(|_| corrupt("users_token", id, "last_used_ip", "is not an IP address"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A value of a [`FakeRow`] column.
    #[derive(Clone)]
    enum V {
        Null,
        Int(i64),
        Text(&'static str),
        Owned(String),
        Flag(bool),
        Time(OffsetDateTime),
        Nets(Vec<&'static str>),
    }

    /// A row as a map, to check the conversion without a database.
    struct FakeRow(HashMap<&'static str, V>);

    impl FakeRow {
        fn with(mut self, column: &'static str, value: V) -> Self {
            self.0.insert(column, value);
            self
        }
    }

    impl FakeRow {
        /// The column's value through `pick`, which answers `None` for a value of another kind.
        fn read<T>(&self, column: &str, pick: impl Fn(&V) -> Option<T>) -> Result<Option<T>, Bad> {
            match self.0.get(column).ok_or(Bad::NotSelected)? {
                V::Null => Ok(None),
                v => pick(v).map(Some).ok_or(Bad::Invalid("has the wrong type")),
            }
        }
    }

    impl Record for FakeRow {
        fn int(&self, column: &str) -> Result<Option<i64>, Bad> {
            self.read(column, |v| if let V::Int(i) = v { Some(*i) } else { None })
        }
        fn text(&self, column: &str) -> Result<Option<String>, Bad> {
            self.read(column, |v| match v {
                V::Text(t) => Some((*t).to_owned()),
                V::Owned(t) => Some(t.clone()),
                _ => None,
            })
        }
        fn flag(&self, column: &str) -> Result<Option<bool>, Bad> {
            self.read(column, |v| if let V::Flag(b) = v { Some(*b) } else { None })
        }
        fn time(&self, column: &str) -> Result<Option<OffsetDateTime>, Bad> {
            self.read(column, |v| if let V::Time(t) = v { Some(*t) } else { None })
        }
        fn nets(&self, column: &str) -> Result<Option<Vec<String>>, Bad> {
            self.read(column, |v| match v {
                V::Nets(n) => Some(n.iter().map(|s| (*s).to_owned()).collect()),
                _ => None,
            })
        }
    }

    fn row() -> FakeRow {
        FakeRow(HashMap::from([
            ("id", V::Int(7)),
            ("version", V::Int(2)),
            ("key", V::Text("AbCdEfGhIjKl")),
            ("pepper_id", V::Int(1)),
            ("hmac_digest", V::Owned("ab".repeat(32))),
            ("plaintext", V::Null),
            ("prev_pepper_id", V::Null),
            ("prev_hmac_digest", V::Null),
            ("prev_valid_until", V::Null),
            ("user_id", V::Int(1)),
            ("description", V::Text("")),
            ("created", V::Time(OffsetDateTime::UNIX_EPOCH)),
            ("expires", V::Null),
            ("last_used", V::Null),
            ("enabled", V::Flag(true)),
            ("write_enabled", V::Flag(true)),
            ("allowed_ips", V::Nets(vec!["10.0.0.0/8", "192.0.2.1"])),
            ("last_used_ip", V::Text("2001:db8::1")),
            ("username", V::Text("u")),
            ("user_active", V::Flag(true)),
        ]))
    }

    fn corrupt_message(r: FakeRow) -> String {
        match token_from_row(&r) {
            Err(StoreError::Corrupt(m)) => m,
            other => panic!("expected Corrupt, got {:?}", other.map(|r| r.token.id)),
        }
    }

    #[test]
    fn a_good_row_becomes_a_record() {
        let r = token_from_row(&row()).unwrap();
        assert!(
            matches!(r.token.credential, StoredCredential::V2 { ref key, .. } if key.as_str() == "AbCdEfGhIjKl")
        );
        assert_eq!(r.token.allowed_ips.nets().len(), 2);
        assert_eq!(r.last_used_ip, Some("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn bad_columns_are_named_and_never_quoted() {
        let secret_looking = "s3cr3t-value-0123456789";
        let cases: Vec<(FakeRow, &str)> = vec![
            (row().with("key", V::Text(secret_looking)), "key is not 12"),
            (row().with("key", V::Null), "key is missing on a v2 token"),
            (row().with("hmac_digest", V::Text(secret_looking)), "hmac_digest is not 64"),
            (row().with("pepper_id", V::Int(40_000)), "pepper_id is not a pepper id"),
            (row().with("prev_pepper_id", V::Int(1)), "prev_* columns are only partly set"),
            (row().with("allowed_ips", V::Nets(vec![secret_looking])), "allowed_ips is not an array"),
            (row().with("last_used_ip", V::Text(secret_looking)), "last_used_ip is not an IP"),
            (row().with("version", V::Int(3)), "version is 3, not 1 or 2"),
            (row().with("version", V::Int(1)), "plaintext is missing on a v1 token"),
            (row().with("enabled", V::Text(secret_looking)), "enabled has the wrong type"),
        ];
        for (r, expected) in cases {
            let m = corrupt_message(r);
            assert!(m.starts_with("users_token row 7: ") && m.contains(expected), "{m}");
            assert!(!m.contains(secret_looking), "{m}");
        }
    }

    #[test]
    fn a_column_the_query_forgot_is_a_database_error() {
        let mut r = row();
        r.0.remove("user_active");
        assert!(
            matches!(token_from_row(&r), Err(StoreError::Database(m)) if m.contains("users_token.user_active"))
        );
    }
}
