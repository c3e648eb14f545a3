//! Rows into model types, the same for every backend.
//!
//! Each backend reads its columns into a [`TokenRow`] (decoding its own column
//! types: SQLite's timestamp text and JSON, PostgreSQL's `timestamptz` and
//! `inet[]`), and [`TokenRow::into_record`] checks and assembles them. A value
//! that does not parse becomes [`StoreError::Corrupt`] with a message naming
//! the row and column, never the value (it may be a digest or a v1 plaintext).

use std::net::IpAddr;

use ipnet::IpNet;
use nbtoken_core::{
    AllowedIps, Digest, PepperId, PreviousSecret, StoredCredential, StoredToken, TokenKey, V1Plaintext,
};
use time::{OffsetDateTime, UtcOffset};

use crate::{Result, StoreError, TokenRecord};

const T: &str = "users_token";

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

/// The bound text of a client address (each backend stores or casts it).
pub(crate) fn ip_text(ip: Option<IpAddr>) -> Option<String> {
    ip.map(|ip| ip.to_string())
}

/// The stored strings of allowed networks: `None` when not set (`NULL`), an empty list for `[]`.
pub(crate) fn allowed_ips_strings(ips: &AllowedIps) -> Option<Vec<String>> {
    if !ips.is_list() {
        return None;
    }
    Some(ips.nets().iter().map(IpNet::to_string).collect())
}

/// A pepper id from a `pepper_usage` aggregate.
pub(crate) fn usage_pepper_id(raw: i64) -> Result<PepperId> {
    u16::try_from(raw)
        .ok()
        .and_then(|v| PepperId::new(v).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("users_token: pepper id {raw} is out of range")))
}

/// The columns of one `users_token` row joined with its owner, decoded but not yet checked.
pub(crate) struct TokenRow {
    pub id: i64,
    pub version: i64,
    pub key: Option<String>,
    pub pepper_id: Option<i64>,
    pub hmac_digest: Option<String>,
    pub plaintext: Option<String>,
    pub prev_pepper_id: Option<i64>,
    pub prev_hmac_digest: Option<String>,
    pub prev_valid_until: Option<OffsetDateTime>,
    pub user_id: i64,
    pub description: String,
    pub created: OffsetDateTime,
    pub expires: Option<OffsetDateTime>,
    pub last_used: Option<OffsetDateTime>,
    pub enabled: bool,
    pub write_enabled: bool,
    /// Networks as text (a bare address is one host); `None` for `NULL`, empty for `[]`.
    pub allowed_ips: Option<Vec<String>>,
    pub last_used_ip: Option<String>,
    pub username: String,
    pub user_active: bool,
}

impl TokenRow {
    /// Checks every column against the token model and builds the record.
    pub(crate) fn into_record(self) -> Result<TokenRecord> {
        let id = self.id;
        let version = self.version;
        let missing = |column: &str| corrupt(T, id, column, &format!("is missing on a v{version} token"));
        let credential = match version {
            1 => StoredCredential::V1 {
                plaintext: V1Plaintext::from_stored(self.plaintext.ok_or_else(|| missing("plaintext"))?),
            },
            2 => {
                let key = self.key.ok_or_else(|| missing("key"))?;
                let key = TokenKey::parse(&key)
                    .map_err(|_| corrupt(T, id, "key", "is not 12 characters of [A-Za-z0-9]"))?;
                let previous = match (self.prev_pepper_id, self.prev_hmac_digest, self.prev_valid_until) {
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
                    pepper_id: pepper_id(
                        self.pepper_id.ok_or_else(|| missing("pepper_id"))?,
                        id,
                        "pepper_id",
                    )?,
                    digest: digest(
                        &self.hmac_digest.ok_or_else(|| missing("hmac_digest"))?,
                        id,
                        "hmac_digest",
                    )?,
                    previous,
                }
            }
            other => return Err(corrupt(T, id, "version", &format!("is {other}, not 1 or 2"))),
        };
        let token = StoredToken {
            id,
            user_id: self.user_id,
            credential,
            enabled: self.enabled,
            write_enabled: self.write_enabled,
            expires: self.expires.map(truncate),
            last_used: self.last_used.map(truncate),
            allowed_ips: allowed_ips(self.allowed_ips.as_deref(), id)?,
        };
        Ok(TokenRecord {
            token,
            description: self.description,
            created: truncate(self.created),
            username: self.username,
            user_active: self.user_active,
            last_used_ip: self.last_used_ip.map(|s| parse_ip(&s, id)).transpose()?,
        })
    }
}

fn pepper_id(raw: i64, id: i64, column: &str) -> Result<PepperId> {
    u16::try_from(raw)
        .ok()
        .and_then(|v| PepperId::new(v).ok())
        .ok_or_else(|| corrupt(T, id, column, "is not a pepper id from 0 to 32767"))
}

fn digest(hex: &str, id: i64, column: &str) -> Result<Digest> {
    Digest::from_hex(hex).map_err(|_| corrupt(T, id, column, "is not 64 hexadecimal characters"))
}

fn allowed_ips(items: Option<&[String]>, id: i64) -> Result<AllowedIps> {
    let Some(items) = items else { return Ok(AllowedIps::default()) };
    // NetBox's column is inet[], whose text form leaves out the prefix length of a single host.
    let nets = items
        .iter()
        .map(|item| {
            AllowedIps::parse_net(item)
                .ok_or_else(|| corrupt(T, id, "allowed_ips", "is not an array of networks"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(AllowedIps::new(nets))
}

fn parse_ip(s: &str, id: i64) -> Result<IpAddr> {
    s.trim().parse::<IpAddr>().map_err(|_| corrupt(T, id, "last_used_ip", "is not an IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> TokenRow {
        TokenRow {
            id: 7,
            version: 2,
            key: Some("AbCdEfGhIjKl".into()),
            pepper_id: Some(1),
            hmac_digest: Some("ab".repeat(32)),
            plaintext: None,
            prev_pepper_id: None,
            prev_hmac_digest: None,
            prev_valid_until: None,
            user_id: 1,
            description: String::new(),
            created: OffsetDateTime::UNIX_EPOCH,
            expires: None,
            last_used: None,
            enabled: true,
            write_enabled: true,
            allowed_ips: Some(vec!["10.0.0.0/8".into(), "192.0.2.1".into()]),
            last_used_ip: Some("2001:db8::1".into()),
            username: "u".into(),
            user_active: true,
        }
    }

    fn corrupt_message(r: TokenRow) -> String {
        match r.into_record() {
            Err(StoreError::Corrupt(m)) => m,
            other => panic!("expected Corrupt, got {:?}", other.map(|r| r.token.id)),
        }
    }

    #[test]
    fn a_good_row_becomes_a_record() {
        let r = row().into_record().unwrap();
        assert!(
            matches!(r.token.credential, StoredCredential::V2 { ref key, .. } if key.as_str() == "AbCdEfGhIjKl")
        );
        assert_eq!(r.token.allowed_ips.nets().len(), 2);
        assert_eq!(r.last_used_ip, Some("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn bad_columns_are_named_and_never_quoted() {
        let secret_looking = "s3cr3t-value-0123456789";
        let cases: Vec<(TokenRow, &str)> = vec![
            (TokenRow { key: Some(secret_looking.into()), ..row() }, "key is not 12"),
            (TokenRow { key: None, ..row() }, "key is missing on a v2 token"),
            (TokenRow { hmac_digest: Some(secret_looking.into()), ..row() }, "hmac_digest is not 64"),
            (TokenRow { pepper_id: Some(40_000), ..row() }, "pepper_id is not a pepper id"),
            (TokenRow { prev_pepper_id: Some(1), ..row() }, "prev_* columns are only partly set"),
            (
                TokenRow { allowed_ips: Some(vec![secret_looking.into()]), ..row() },
                "allowed_ips is not an array",
            ),
            (TokenRow { last_used_ip: Some(secret_looking.into()), ..row() }, "last_used_ip is not an IP"),
            (TokenRow { version: 3, ..row() }, "version is 3, not 1 or 2"),
            (TokenRow { version: 1, ..row() }, "plaintext is missing on a v1 token"),
        ];
        for (r, expected) in cases {
            let m = corrupt_message(r);
            assert!(m.starts_with("users_token row 7: ") && m.contains(expected), "{m}");
            assert!(!m.contains(secret_looking), "{m}");
        }
    }
}
