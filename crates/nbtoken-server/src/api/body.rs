//! Request bodies: JSON objects read field by field, with DRF-style errors.

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
        Err(e) => Err(ApiError::bad_request(format!("JSON parse error - {e}"))),
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
pub fn reject_unknown(m: &Map<String, Value>, writable: &[&str], read_only: &[&str]) -> ApiResult<()> {
    let mut errors = Map::new();
    for k in m.keys() {
        if !writable.contains(&k.as_str()) && !read_only.contains(&k.as_str()) {
            errors.insert(k.clone(), Value::Array(vec![Value::String("Unknown field.".into())]));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::fields(errors))
    }
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
        Err(Some(i)) => {
            Err(ApiError::field(k, format!("Invalid IP network: {}", truncate(texts[i].trim(), 60))))
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
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
}
