//! Fuzzes the token API's JSON request bodies: `parse_object` on arbitrary
//! bytes, then every field parser of `nbtoken_manage::input` on every key
//! of the result, and `json::parse_timestamp` on the bytes as text. Nothing
//! may panic, every refusal must be the client's (a 400: invalid input or a
//! refused body), and what is accepted must be what the server can store and
//! show again (timestamps and networks round-trip, strings have no NUL).

#![no_main]

use libfuzzer_sys::fuzz_target;
use nbtoken_manage::input::{
    opt_allowed_ips, opt_bool, opt_datetime, opt_int, opt_string, parse_object, reject_unknown, MAX_DEPTH,
    TOKEN_READ_ONLY as READ_ONLY, TOKEN_WRITABLE as WRITABLE,
};
use nbtoken_manage::json::{parse_timestamp, timestamp};
use nbtoken_manage::Error;
use serde_json::{Map, Value};
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(t) = parse_timestamp(text) {
            check_timestamp(text, t);
        }
    }
    let parsed = parse_object(data);
    // Restated: an empty body is an empty object; otherwise serde_json must
    // read a JSON object no deeper than the limit.
    let expected = if data.is_empty() {
        Some(Map::new())
    } else {
        match serde_json::from_slice::<Value>(data) {
            Ok(v) if depth(&v) <= MAX_DEPTH => v.as_object().cloned(),
            _ => None,
        }
    };
    match parsed {
        Err(e) => {
            client_error(&e);
            assert!(expected.is_none(), "refused a valid object: {e:?}");
        }
        Ok(m) => {
            assert_eq!(Some(&m), expected.as_ref(), "accepted something else than serde_json reads");
            fields(&m);
        }
    }
});

/// Every field parser on every key present and every field the API knows.
fn fields(m: &Map<String, Value>) {
    if let Err(e) = reject_unknown(m, WRITABLE, READ_ONLY) {
        client_error(&e);
        assert!(m.keys().any(|k| !WRITABLE.contains(&k.as_str()) && !READ_ONLY.contains(&k.as_str())));
    }
    let keys: Vec<&str> = m.keys().map(String::as_str).chain(WRITABLE.iter().copied()).collect();
    for k in keys {
        match opt_bool(m, k) {
            Ok(v) => assert_eq!(v.is_some(), m.contains_key(k)),
            Err(e) => client_error(&e),
        }
        for max in [0, 1, 200] {
            match opt_string(m, k, max) {
                Ok(Some(s)) => {
                    assert!(s.chars().count() <= max);
                    assert!(!s.contains('\0'), "a NUL accepted (PostgreSQL cannot store it)");
                    assert_eq!(m.get(k), Some(&Value::String(s)), "a string must be kept as sent");
                }
                Ok(None) => assert!(!m.contains_key(k)),
                Err(e) => client_error(&e),
            }
        }
        match opt_int(m, k) {
            Ok(_) => {}
            Err(e) => client_error(&e),
        }
        match opt_datetime(m, k) {
            Ok(Some(Some(t))) => {
                let text = m.get(k).and_then(Value::as_str).unwrap_or_default();
                check_timestamp(text, t);
            }
            Ok(_) => {}
            Err(e) => client_error(&e),
        }
        match opt_allowed_ips(m, k) {
            Ok(Some(ips)) => {
                let nets = ips.nets();
                assert!(nets.len() <= 100, "{} networks accepted", nets.len());
                for (i, net) in nets.iter().enumerate() {
                    assert!(!nets[..i].contains(net), "duplicate {net} kept");
                    // Stored as text and read back: must give the same network.
                    assert_eq!(net.to_string().parse::<ipnet::IpNet>().ok(), Some(*net));
                }
            }
            Ok(None) => {}
            Err(e) => client_error(&e),
        }
    }
}

/// An accepted timestamp is in UTC, and what the API shows of it parses back
/// to the same instant (to the microsecond, the precision NetBox shows).
fn check_timestamp(text: &str, t: OffsetDateTime) {
    assert!(t.offset().is_utc(), "{text:?} not converted to UTC");
    let shown = timestamp(t);
    let micros = t.replace_nanosecond(t.microsecond() * 1000).ok();
    assert_eq!(parse_timestamp(&shown), micros, "{text:?} is shown as {shown:?}, which does not read back");
}

/// Invalid input and refused bodies are the API's 400s; anything else would be a 5xx or a refusal of another kind.
fn client_error(e: &Error) {
    assert!(matches!(e, Error::Invalid(_) | Error::Refused(_)), "{e:?}");
}

/// Container depth of a JSON value (an object of scalars is 1).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}
