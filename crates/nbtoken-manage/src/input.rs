//! Request input: JSON objects read field by field with DRF's messages, and the fields of
//! users and tokens a client may send, turned into the operations' own types.
//!
//! Error messages name fields, positions and lengths, never a value the client sent: not a
//! string, not an unknown key (a token pasted as a key would come back in the answer, and
//! from there into proxy logs), not the text of a network that does not parse.

use nbtoken_core::{AllowedIps, PepperId, SecretString, TokenVersion};
use nbtoken_store::{TokenPatch, UserPatch};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::{Error, Invalid};
use crate::json::parse_timestamp;
use crate::tokens::{Credentials, TokenChanges, TokenSpec, UserRef, MSG_UNKNOWN_PEPPER};
use crate::users::{AccountChanges, NewAccount};

/// Deepest JSON nesting accepted; real requests need 3.
pub const MAX_DEPTH: usize = 16;

/// Parses a body that must be a JSON object.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Error> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    if nesting(body) > MAX_DEPTH {
        return Err(Error::Refused(format!("JSON parse error - nesting deeper than {MAX_DEPTH} levels")));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::field("__all__", "Invalid data. Expected a dictionary.")),
        Err(e) => Err(Error::Refused(parse_error_message(&e))),
    }
}

/// serde_json's text for a syntax error is one of its fixed messages plus a position; any
/// other error (a data error's text may quote the input) is reduced to the position.
fn parse_error_message(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("JSON parse error - {e}")
        }
        _ => format!("JSON parse error - invalid data at line {} column {}", e.line(), e.column()),
    }
}

/// Bracket depth outside strings, counted before parsing so a deep document costs nothing.
fn nesting(body: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for &b in body {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Rejects fields that are neither writable nor known read-only ones.
///
/// The answer never repeats an unknown key (it is something the client sent, perhaps a
/// secret pasted in the wrong place): `{"__all__": ["…"]}` gives each one's position and
/// length, and the writable field it most resembles, which is a name of ours.
pub fn reject_unknown(m: &Map<String, Value>, writable: &[&str], read_only: &[&str]) -> Result<(), Error> {
    let messages: Vec<String> = m
        .keys()
        .enumerate()
        .filter(|(_, k)| !writable.contains(&k.as_str()) && !read_only.contains(&k.as_str()))
        .map(|(i, k)| {
            let n = k.chars().count();
            let mut msg = format!("Unknown field: key {} of the object ({n} characters).", i + 1);
            if let Some(near) = nearest(k, writable) {
                msg.push_str(&format!(" Did you mean \"{near}\"?"));
            }
            msg
        })
        .collect();
    if messages.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(Invalid::messages("__all__", messages)))
    }
}

/// The field of `known` within two edits of `k` (a typo), if there is one.
fn nearest<'a>(k: &str, known: &[&'a str]) -> Option<&'a str> {
    // Long keys are no typo of a field name; skip the quadratic work on them.
    if k.len() > 40 {
        return None;
    }
    known.iter().map(|f| (edit_distance(k, f), *f)).filter(|(d, _)| *d <= 2).min().map(|(_, f)| f)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(row[j]).min(row[j + 1]) };
            prev = cur;
        }
    }
    row[b.len()]
}

/// A boolean field (JSON true/false; DRF also takes "true"/"false" strings).
pub fn opt_bool(m: &Map<String, Value>, k: &str) -> Result<Option<bool>, Error> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if matches!(s.to_ascii_lowercase().as_str(), "true" | "1") => Ok(Some(true)),
        Some(Value::String(s)) if matches!(s.to_ascii_lowercase().as_str(), "false" | "0") => Ok(Some(false)),
        Some(_) => Err(Error::field(k, "Must be a valid boolean.")),
    }
}

/// DRF's message for a NUL character in text, which PostgreSQL cannot store.
pub const MSG_NUL: &str = "Null characters are not allowed.";

/// A string field; `null` counts as empty where `null_ok`.
pub fn opt_string(m: &Map<String, Value>, k: &str, max_chars: usize) -> Result<Option<String>, Error> {
    match m.get(k) {
        None => Ok(None),
        // Refused on every backend alike, as DRF's CharField does (PostgreSQL would fail with a 5xx).
        Some(Value::String(s)) if s.contains('\0') => Err(Error::field(k, MSG_NUL)),
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if n > max_chars {
                return Err(Error::field(
                    k,
                    format!("Ensure this field has no more than {max_chars} characters."),
                ));
            }
            Ok(Some(s.clone()))
        }
        Some(_) => Err(Error::field(k, "Not a valid string.")),
    }
}

/// A non-negative integer field.
pub fn opt_int(m: &Map<String, Value>, k: &str) -> Result<Option<i64>, Error> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_i64().map(Some).ok_or_else(|| Error::field(k, "A valid integer is required."))
        }
        Some(Value::String(s)) => {
            s.trim().parse().map(Some).map_err(|_| Error::field(k, "A valid integer is required."))
        }
        Some(_) => Err(Error::field(k, "A valid integer is required.")),
    }
}

/// A datetime field; `Some(None)` for an explicit `null` (or empty string).
pub fn opt_datetime(m: &Map<String, Value>, k: &str) -> Result<Option<Option<OffsetDateTime>>, Error> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.is_empty() => Ok(Some(None)),
        Some(Value::String(s)) => parse_timestamp(s).map(|t| Some(Some(t))).ok_or_else(|| {
            Error::field(
                k,
                "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
            )
        }),
        Some(_) => Err(Error::field(k, "Datetime has wrong format.")),
    }
}

/// `allowed_ips`: a list of networks or addresses (`10.0.0.0/8`, `192.0.2.1`), or `null`.
pub fn opt_allowed_ips(m: &Map<String, Value>, k: &str) -> Result<Option<AllowedIps>, Error> {
    let items = match m.get(k) {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(AllowedIps::default())),
        Some(Value::Array(items)) => items,
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Some(AllowedIps::default())),
        Some(_) => return Err(Error::field(k, "Expected a list of IP networks.")),
    };
    let mut texts = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(s) = item else {
            return Err(Error::field(k, "Each entry must be a string such as \"10.0.0.0/8\"."));
        };
        texts.push(s.as_str());
    }
    match AllowedIps::parse_list(&texts) {
        Ok(ips) => Ok(Some(ips)),
        Err(None) => Err(Error::field(
            k,
            format!("At most {} networks may be given.", nbtoken_core::verify::MAX_ALLOWED_NETWORKS),
        )),
        // Which entry and how long it is, never its text.
        Err(Some(i)) => Err(Error::field(
            k,
            format!(
                "Invalid IP network: entry {} ({} characters) is not an address or a network such as \"10.0.0.0/8\".",
                i + 1,
                texts[i].chars().count()
            ),
        )),
    }
}

/// The fields a client may send in a token body.
pub const TOKEN_WRITABLE: &[&str] = &[
    "user",
    "version",
    "token",
    "description",
    "expires",
    "enabled",
    "write_enabled",
    "pepper_id",
    "allowed_ips",
];
/// Fields of the token JSON a client may send back unchanged (ignored, as DRF ignores them).
pub const TOKEN_READ_ONLY: &[&str] =
    &["id", "url", "display_url", "display", "key", "created", "last_used", "last_used_ip"];

/// The fields a client may send in a user body.
pub const USER_WRITABLE: &[&str] = &[
    "username",
    "password",
    "first_name",
    "last_name",
    "email",
    "is_active",
    "is_superuser",
    "can_grant_tokens",
];
/// Fields of the user JSON a client may send back unchanged (ignored).
pub const USER_READ_ONLY: &[&str] = &[
    "id",
    "url",
    "display_url",
    "display",
    "date_joined",
    "last_login",
    "groups",
    "permissions",
    "is_staff",
];

/// The fields of a provisioning body besides `username` and `password`.
pub const PROVISION_WRITABLE: &[&str] =
    &["description", "expires", "enabled", "write_enabled", "allowed_ips", "version"];

/// Longest username, first and last name (Django's).
const MAX_NAME_CHARS: usize = 150;
/// Longest e-mail address (Django's).
const MAX_EMAIL_CHARS: usize = 254;

/// A token body: a JSON object of known fields.
pub fn token_body(body: &[u8]) -> Result<Map<String, Value>, Error> {
    let m = parse_object(body)?;
    reject_unknown(&m, TOKEN_WRITABLE, TOKEN_READ_ONLY)?;
    Ok(m)
}

/// A user body: a JSON object of known fields.
pub fn user_body(body: &[u8]) -> Result<Map<String, Value>, Error> {
    let m = parse_object(body)?;
    reject_unknown(&m, USER_WRITABLE, USER_READ_ONLY)?;
    Ok(m)
}

/// A token body's `user`: an id, `{"id": …}` or `{"username": …}` (`None`: the caller).
pub fn token_owner(m: &Map<String, Value>) -> Result<Option<UserRef>, Error> {
    let who = match m.get("user") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64().map_or(UserRef::Nobody, UserRef::Id),
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => {
            s.trim().parse::<i64>().map_or(UserRef::Nobody, UserRef::Id)
        }
        Some(Value::Object(o)) => {
            match (o.get("id").and_then(Value::as_i64), o.get("username").and_then(Value::as_str)) {
                (Some(id), _) => UserRef::Id(id),
                (None, Some(name)) => UserRef::Name(name.to_owned()),
                _ => UserRef::Nobody,
            }
        }
        Some(_) => return Err(Error::field("user", "Incorrect type. Expected pk value.")),
    };
    Ok(Some(who))
}

/// The fields a new token and a change share.
struct Common {
    description: Option<String>,
    expires: Option<Option<OffsetDateTime>>,
    enabled: Option<bool>,
    write_enabled: Option<bool>,
    allowed_ips: Option<AllowedIps>,
}

fn common(m: &Map<String, Value>) -> Result<Common, Error> {
    Ok(Common {
        description: opt_string(m, "description", nbtoken_core::issue::MAX_DESCRIPTION_CHARS)?,
        expires: opt_datetime(m, "expires")?,
        enabled: opt_bool(m, "enabled")?,
        write_enabled: opt_bool(m, "write_enabled")?,
        allowed_ips: opt_allowed_ips(m, "allowed_ips")?,
    })
}

/// A new token from a body. NetBox 4.7 made `token` read-only: whatever a client sends there
/// is ignored and a random value generated (importing a known value is the CLI's).
pub fn token_spec(m: &Map<String, Value>) -> Result<TokenSpec, Error> {
    let fields = common(m)?;
    let version = match opt_int(m, "version")? {
        None | Some(2) => TokenVersion::V2,
        Some(1) => TokenVersion::V1,
        Some(_) => return Err(Error::field("version", "Not a valid choice: expected 1 or 2.")),
    };
    let pepper_id = match opt_int(m, "pepper_id")? {
        None => None,
        Some(id) => Some(
            u16::try_from(id)
                .ok()
                .and_then(|id| PepperId::new(id).ok())
                .ok_or_else(|| Error::field("pepper_id", MSG_UNKNOWN_PEPPER))?,
        ),
    };
    Ok(TokenSpec {
        version,
        chosen: None,
        chosen_key: None,
        pepper_id,
        description: fields.description.unwrap_or_default(),
        expires: fields.expires.flatten(),
        enabled: fields.enabled.unwrap_or(true),
        write_enabled: fields.write_enabled.unwrap_or(true),
        // NetBox's `TokenSerializer.allowed_ips` defaults to `[]`, not the model's `null`.
        allowed_ips: fields.allowed_ips.unwrap_or_else(AllowedIps::empty_list),
    })
}

/// Changes to a token from a body; `full` (a PUT) puts fields left out back to their defaults.
/// `user` and `token` are read-only once a token exists, so they are ignored, unvalidated, as
/// DRF ignores read-only fields.
pub fn token_changes(m: &Map<String, Value>, full: bool) -> Result<TokenChanges, Error> {
    let pepper_id = opt_int(m, "pepper_id")?;
    let version = opt_int(m, "version")?;
    let f = common(m)?;
    let mut fields = TokenPatch {
        description: f.description,
        expires: f.expires,
        enabled: f.enabled,
        write_enabled: f.write_enabled,
        allowed_ips: f.allowed_ips,
        user_id: None,
    };
    if full {
        fields.description.get_or_insert_with(String::new);
        fields.expires.get_or_insert(None);
        fields.enabled.get_or_insert(true);
        fields.write_enabled.get_or_insert(true);
        fields.allowed_ips.get_or_insert_with(AllowedIps::empty_list);
    }
    Ok(TokenChanges { fields, version, pepper_id })
}

/// A provisioning body: `username`, `password`, and the other fields, whose new token
/// ([`token_spec`]) is read once the password has been checked, as NetBox does.
pub fn provision(body: &[u8]) -> Result<(Credentials, Map<String, Value>), Error> {
    let mut m = parse_object(body)?;
    let username = match m.remove("username") {
        Some(Value::String(s)) => s,
        _ => return Err(Error::field("username", "This field is required.")),
    };
    let password = match m.remove("password") {
        Some(Value::String(s)) => SecretString::new(s),
        _ => return Err(Error::field("password", "This field is required.")),
    };
    reject_unknown(&m, PROVISION_WRITABLE, &[])?;
    if opt_int(&m, "version")?.is_some_and(|v| v != 2) {
        return Err(Error::field("version", "Provisioned tokens are always v2."));
    }
    m.remove("version");
    Ok((Credentials { username, password }, m))
}

/// A new user from a body.
pub fn new_account(m: &Map<String, Value>) -> Result<NewAccount, Error> {
    let username = opt_string(m, "username", MAX_NAME_CHARS)?
        .ok_or_else(|| Error::field("username", "This field is required."))?;
    Ok(NewAccount {
        username,
        password: opt_string(m, "password", crate::passwords::MAX_PASSWORD_CHARS)?.map(SecretString::new),
        first_name: opt_string(m, "first_name", MAX_NAME_CHARS)?.unwrap_or_default(),
        last_name: opt_string(m, "last_name", MAX_NAME_CHARS)?.unwrap_or_default(),
        email: opt_string(m, "email", MAX_EMAIL_CHARS)?.unwrap_or_default(),
        is_active: opt_bool(m, "is_active")?,
        is_superuser: opt_bool(m, "is_superuser")?.unwrap_or(false),
        can_grant_tokens: opt_bool(m, "can_grant_tokens")?,
    })
}

/// Changes to a user from a body (a PUT too: fields left out keep their values).
pub fn account_changes(m: &Map<String, Value>) -> Result<AccountChanges, Error> {
    let username = opt_string(m, "username", MAX_NAME_CHARS)?;
    let password = opt_string(m, "password", crate::passwords::MAX_PASSWORD_CHARS)?.map(SecretString::new);
    let fields = UserPatch {
        username,
        first_name: opt_string(m, "first_name", MAX_NAME_CHARS)?,
        last_name: opt_string(m, "last_name", MAX_NAME_CHARS)?,
        email: opt_string(m, "email", MAX_EMAIL_CHARS)?,
        is_active: opt_bool(m, "is_active")?,
        is_superuser: opt_bool(m, "is_superuser")?,
        can_grant_tokens: opt_bool(m, "can_grant_tokens")?,
        password_hash: None,
        last_login: None,
    };
    Ok(AccountChanges { fields, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_ignores_brackets_in_strings() {
        assert_eq!(nesting(br#"{"a": "[[[[{{{{"}"#), 1);
        assert_eq!(nesting(br#"{"a": [[{"b": "\"]"}]]}"#), 4);
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(matches!(parse_object(deep.as_bytes()), Err(Error::Refused(_))));
    }

    #[test]
    fn allowed_ips_accepts_hosts_and_networks() {
        let m: Map<String, Value> =
            serde_json::from_str(r#"{"a": ["10.0.0.0/8", "192.0.2.1", "2001:db8::/32", "10.0.0.0/8"]}"#)
                .unwrap();
        let ips = opt_allowed_ips(&m, "a").unwrap().unwrap();
        let shown: Vec<String> = ips.nets().iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"]);
        let bad: Map<String, Value> = serde_json::from_str(r#"{"a": ["10.0.0.0/33"]}"#).unwrap();
        assert!(opt_allowed_ips(&bad, "a").is_err());
    }

    #[test]
    fn typos_are_matched_to_field_names() {
        let known = ["write_enabled", "enabled", "description"];
        assert_eq!(nearest("write_enable", &known), Some("write_enabled"));
        assert_eq!(nearest("descripton", &known), Some("description"));
        assert_eq!(nearest("nbt_AbCdEfGhIjKl", &known), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
