//! Request bodies: JSON objects read field by field, with DRF-style errors.
//!
//! Error bodies name fields, positions and lengths, never a value the client sent: not a
//! string, not an unknown key (a token pasted as a key would come back in the answer, and
//! from there into proxy logs), not the text of a network that does not parse.

use axum::body::Bytes;
use nbtoken_core::AllowedIps;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::{ApiError, ApiResult};
use crate::json::parse_timestamp;

/// Deepest JSON nesting accepted; real requests need 3.
pub const MAX_DEPTH: usize = 16;

/// Parses a body that must be a JSON object.
pub fn parse_object(body: &Bytes) -> ApiResult<Map<String, Value>> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    if nesting(body) > MAX_DEPTH {
        return Err(ApiError::bad_request(format!(
            "JSON parse error - nesting deeper than {MAX_DEPTH} levels"
        )));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::field("__all__", "Invalid data. Expected a dictionary.")),
        Err(e) => Err(ApiError::bad_request(parse_error_message(&e))),
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
pub fn reject_unknown(m: &Map<String, Value>, writable: &[&str], read_only: &[&str]) -> ApiResult<()> {
    let messages: Vec<Value> = m
        .keys()
        .enumerate()
        .filter(|(_, k)| !writable.contains(&k.as_str()) && !read_only.contains(&k.as_str()))
        .map(|(i, k)| {
            let n = k.chars().count();
            let mut msg = format!("Unknown field: key {} of the object ({n} characters).", i + 1);
            if let Some(near) = nearest(k, writable) {
                msg.push_str(&format!(" Did you mean \"{near}\"?"));
            }
            Value::String(msg)
        })
        .collect();
    if messages.is_empty() {
        Ok(())
    } else {
        let mut errors = Map::new();
        errors.insert("__all__".into(), Value::Array(messages));
        Err(ApiError::fields(errors))
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
pub fn opt_bool(m: &Map<String, Value>, k: &str) -> ApiResult<Option<bool>> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if matches!(s.to_ascii_lowercase().as_str(), "true" | "1") => Ok(Some(true)),
        Some(Value::String(s)) if matches!(s.to_ascii_lowercase().as_str(), "false" | "0") => Ok(Some(false)),
        Some(_) => Err(ApiError::field(k, "Must be a valid boolean.")),
    }
}

/// DRF's message for a NUL character in text, which PostgreSQL cannot store.
pub const MSG_NUL: &str = "Null characters are not allowed.";

/// A string field; `null` counts as empty where `null_ok`.
pub fn opt_string(m: &Map<String, Value>, k: &str, max_chars: usize) -> ApiResult<Option<String>> {
    match m.get(k) {
        None => Ok(None),
        // Refused on every backend alike, as DRF's CharField does (PostgreSQL would fail with a 5xx).
        Some(Value::String(s)) if s.contains('\0') => Err(ApiError::field(k, MSG_NUL)),
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if n > max_chars {
                return Err(ApiError::field(
                    k,
                    format!("Ensure this field has no more than {max_chars} characters."),
                ));
            }
            Ok(Some(s.clone()))
        }
        Some(_) => Err(ApiError::field(k, "Not a valid string.")),
    }
}

/// A non-negative integer field.
pub fn opt_int(m: &Map<String, Value>, k: &str) -> ApiResult<Option<i64>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_i64().map(Some).ok_or_else(|| ApiError::field(k, "A valid integer is required."))
        }
        Some(Value::String(s)) => {
            s.trim().parse().map(Some).map_err(|_| ApiError::field(k, "A valid integer is required."))
        }
        Some(_) => Err(ApiError::field(k, "A valid integer is required.")),
    }
}

/// A datetime field; `Some(None)` for an explicit `null` (or empty string).
pub fn opt_datetime(m: &Map<String, Value>, k: &str) -> ApiResult<Option<Option<OffsetDateTime>>> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.is_empty() => Ok(Some(None)),
        Some(Value::String(s)) => parse_timestamp(s).map(|t| Some(Some(t))).ok_or_else(|| {
            ApiError::field(
                k,
                "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
            )
        }),
        Some(_) => Err(ApiError::field(k, "Datetime has wrong format.")),
    }
}

/// `allowed_ips`: a list of networks or addresses (`10.0.0.0/8`, `192.0.2.1`), or `null`.
pub fn opt_allowed_ips(m: &Map<String, Value>, k: &str) -> ApiResult<Option<AllowedIps>> {
    let items = match m.get(k) {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(AllowedIps::default())),
        Some(Value::Array(items)) => items,
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Some(AllowedIps::default())),
        Some(_) => return Err(ApiError::field(k, "Expected a list of IP networks.")),
    };
    let mut texts = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(s) = item else {
            return Err(ApiError::field(k, "Each entry must be a string such as \"10.0.0.0/8\"."));
        };
        texts.push(s.as_str());
    }
    match AllowedIps::parse_list(&texts) {
        Ok(ips) => Ok(Some(ips)),
        Err(None) => Err(ApiError::field(
            k,
            format!("At most {} networks may be given.", nbtoken_core::verify::MAX_ALLOWED_NETWORKS),
        )),
        // Which entry and how long it is, never its text.
        Err(Some(i)) => Err(ApiError::field(
            k,
            format!(
                "Invalid IP network: entry {} ({} characters) is not an address or a network such as \"10.0.0.0/8\".",
                i + 1,
                texts[i].chars().count()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_ignores_brackets_in_strings() {
        assert_eq!(nesting(br#"{"a": "[[[[{{{{"}"#), 1);
        assert_eq!(nesting(br#"{"a": [[{"b": "\"]"}]]}"#), 4);
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_object(&Bytes::from(deep)).unwrap_err().status().is_client_error());
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
