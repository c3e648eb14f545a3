//! NetBox's JSON shapes for users and tokens, and its timestamps, written by hand (core types
//! do not derive `Serialize`): the API answers with them, the CLI prints them with `--json`.

use nbtoken_core::{SecretString, StoredCredential, TokenVersion};
use nbtoken_store::{TokenRecord, User};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// Scheme and host (and path prefix) of the absolute URLs NetBox returns (`url`, `next`,
/// `previous`, `Location`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl(String);

/// Longest host a request may name for its absolute URLs.
const MAX_HOST_LEN: usize = 255;

impl BaseUrl {
    /// A fixed base such as `http://127.0.0.1:8080` (a trailing `/` is dropped).
    pub fn new(base: impl Into<String>) -> Self {
        Self(base.into().trim_end_matches('/').to_owned())
    }

    /// Parses `NBTOKEN_PUBLIC_URL`: `http://` or `https://`, a host (and port), and an
    /// optional path prefix; no query, fragment or user information.
    pub fn parse_public(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (scheme, rest) = text
            .split_once("://")
            .filter(|(s, _)| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
            .ok_or("expected an http:// or https:// URL, such as https://netbox.example.com")?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if !valid_host(host) {
            return Err("expected a host name or address (and port) after the scheme".to_owned());
        }
        if !path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-._~%".contains(&b)) {
            return Err("the path prefix may hold only letters, digits and / - . _ ~ %".to_owned());
        }
        Ok(Self::new(format!("{}://{host}{path}", scheme.to_ascii_lowercase())))
    }

    /// Absolute URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

/// A host name or address with an optional port: letters, digits and `-.:[]_`.
pub fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= MAX_HOST_LEN
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
}

/// NetBox's timestamp format: ISO 8601 in UTC with `Z`, microseconds when non-zero.
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let micros = t.microsecond();
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if micros == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{micros:06}Z")
    }
}

fn opt_timestamp(t: Option<OffsetDateTime>) -> Value {
    t.map(|t| Value::String(timestamp(t))).unwrap_or(Value::Null)
}

/// Parses a timestamp as NetBox accepts it: RFC 3339, or a naive ISO time taken as UTC.
///
/// As in Django, the year is four digits without a sign and the instant falls in years
/// 1–9999 in UTC, so that it can be stored and shown again; `None` otherwise. (`time` reads
/// `-2026` as a year, and converting `9999-12-31T23:59:59-01:00` to UTC would panic.)
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    if !s.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let t = parse_any_timestamp(s)?.checked_to_offset(UtcOffset::UTC)?;
    (1..=9999).contains(&t.year()).then_some(t)
}

fn parse_any_timestamp(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let fmts = [
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]"),
    ];
    fmts.iter().find_map(|f| PrimitiveDateTime::parse(s, f).ok()).map(|p| p.assume_utc())
}

/// The nested user shape inside a token.
pub fn nested_user(base: &BaseUrl, id: i64, username: &str) -> Value {
    json!({
        "id": id,
        "url": base.url(&format!("/api/users/users/{id}/")),
        "display": username,
        "username": username,
    })
}

/// A token as NetBox 4.7 serialises it, `token` null (only a creation answer holds the secret).
pub fn token(base: &BaseUrl, r: &TokenRecord, brief: bool) -> Value {
    let t = &r.token;
    let id = t.id;
    let (version, key, pepper_id, display) = match &t.credential {
        StoredCredential::V1 { plaintext } => {
            (TokenVersion::V1, Value::Null, Value::Null, plaintext.partial())
        }
        StoredCredential::V2 { key, pepper_id, .. } => (
            TokenVersion::V2,
            Value::String(key.as_str().to_owned()),
            json!(pepper_id.get()),
            key.as_str().to_owned(),
        ),
    };
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("url".into(), json!(base.url(&format!("/api/users/tokens/{id}/"))));
    if brief {
        // NetBox's brief fields, in its order.
        m.insert("display".into(), json!(display));
        m.insert("version".into(), json!(version.as_u8()));
        m.insert("key".into(), key);
        m.insert("enabled".into(), json!(t.enabled));
        m.insert("write_enabled".into(), json!(t.write_enabled));
        m.insert("description".into(), json!(r.description));
        return Value::Object(m);
    }
    m.insert("display_url".into(), json!(base.url(&format!("/users/tokens/{id}/"))));
    m.insert("display".into(), json!(display));
    m.insert("version".into(), json!(version.as_u8()));
    m.insert("key".into(), key);
    m.insert("user".into(), nested_user(base, t.user_id, &r.username));
    m.insert("description".into(), json!(r.description));
    m.insert("created".into(), json!(timestamp(r.created)));
    m.insert("expires".into(), opt_timestamp(t.expires));
    m.insert("last_used".into(), opt_timestamp(t.last_used));
    // nbtoken extension: the client address of the last recorded use.
    m.insert("last_used_ip".into(), r.last_used_ip.map(|ip| json!(ip.to_string())).unwrap_or(Value::Null));
    m.insert("enabled".into(), json!(t.enabled));
    m.insert("write_enabled".into(), json!(t.write_enabled));
    m.insert("pepper_id".into(), pepper_id);
    // `null` (not set) and `[]` both mean unrestricted; each token reads back as it was stored.
    let ips: Vec<Value> = t.allowed_ips.nets().iter().map(|n| json!(n.to_string())).collect();
    m.insert("allowed_ips".into(), if t.allowed_ips.is_list() { Value::Array(ips) } else { Value::Null });
    // NetBox 4.7 sends the field on every read, null: the secret is never stored, so never shown again.
    m.insert("token".into(), Value::Null);
    Value::Object(m)
}

/// NetBox's user `display`: `username (First Last)` when a name is set.
fn user_display(u: &User) -> String {
    let full = format!("{} {}", u.first_name, u.last_name);
    let full = full.trim();
    if full.is_empty() {
        u.username.clone()
    } else {
        format!("{} ({full})", u.username)
    }
}

/// A token's full JSON with the secret shown once, as NetBox answers a creation: `token`
/// holds the bare secret (v2) or the plaintext (v1).
pub fn token_with_secret(base: &BaseUrl, r: &TokenRecord, secret: &SecretString) -> Value {
    let mut v = token(base, r, false);
    if let Value::Object(o) = &mut v {
        o.insert("token".into(), Value::String(secret.expose().to_owned()));
    }
    v
}

/// A user as NetBox serialises it.
pub fn user(base: &BaseUrl, u: &User, brief: bool) -> Value {
    let id = u.id;
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("url".into(), json!(base.url(&format!("/api/users/users/{id}/"))));
    if brief {
        m.insert("display".into(), json!(user_display(u)));
        m.insert("username".into(), json!(u.username));
        return Value::Object(m);
    }
    m.insert("display_url".into(), json!(base.url(&format!("/users/users/{id}/"))));
    m.insert("display".into(), json!(user_display(u)));
    m.insert("username".into(), json!(u.username));
    m.insert("first_name".into(), json!(u.first_name));
    m.insert("last_name".into(), json!(u.last_name));
    m.insert("email".into(), json!(u.email));
    m.insert("is_active".into(), json!(u.is_active));
    m.insert("is_superuser".into(), json!(u.is_superuser));
    m.insert("date_joined".into(), json!(timestamp(u.date_joined)));
    m.insert("last_login".into(), opt_timestamp(u.last_login));
    m.insert("groups".into(), json!([]));
    m.insert("permissions".into(), json!([]));
    m.insert("can_grant_tokens".into(), json!(u.can_grant_tokens));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn timestamps_look_like_django_rest_framework() {
        assert_eq!(timestamp(datetime!(2026-01-02 03:04:05 UTC)), "2026-01-02T03:04:05Z");
        assert_eq!(timestamp(datetime!(2026-01-02 03:04:05.000123 UTC)), "2026-01-02T03:04:05.000123Z");
        assert_eq!(timestamp(datetime!(2026-01-02 03:04:05 +02:00)), "2026-01-02T01:04:05Z");
    }

    #[test]
    fn timestamp_parsing() {
        let t = datetime!(2026-01-02 03:04:05 UTC);
        for s in [
            "2026-01-02T03:04:05Z",
            "2026-01-02T05:04:05+02:00",
            "2026-01-02T03:04:05",
            "2026-01-02 03:04:05",
        ] {
            assert_eq!(parse_timestamp(s), Some(t), "{s}");
        }
        assert_eq!(parse_timestamp("tomorrow"), None);
        assert_eq!(parse_timestamp("2026-13-02T03:04:05Z"), None);
        assert_eq!(parse_timestamp("9999-12-31T23:59:59Z"), Some(datetime!(9999-12-31 23:59:59 UTC)));
    }

    #[test]
    fn timestamps_outside_years_1_to_9999_in_utc_are_refused_not_a_panic() {
        // Found by the `token_body` fuzz target: a signed year, and an offset that
        // moves the instant out of range (which used to panic in `to_offset`).
        for s in [
            "-2026-01-02T03:04:11.11",
            "+2026-01-02T03:04:11",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
        ] {
            assert_eq!(parse_timestamp(s), None, "{s}");
        }
    }
}
