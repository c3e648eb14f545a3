//! Property tests: formatting and parsing round-trip, and the parser never panics.

#![allow(clippy::unwrap_used, missing_docs)]

use nbtoken_core::{AuthHeader, Credential, Secret, TokenKey};
use proptest::prelude::*;

fn alnum(len: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".to_vec()),
        len,
    )
    .prop_map(|v| String::from_utf8(v).unwrap())
}

proptest! {
    #[test]
    fn v2_format_then_parse_round_trips(key in alnum(12), secret in alnum(40), bearer in any::<bool>(), ws in "[ \t]{1,3}") {
        let key = TokenKey::parse(&key).unwrap();
        let secret = Secret::parse(&secret).unwrap();
        let kw = if bearer { "Bearer" } else { "token" };
        let header = format!("{kw}{ws}{}", secret.full_token(&key).expose());
        let parsed = AuthHeader::parse(header.as_bytes()).unwrap().unwrap();
        match parsed.credential() {
            Credential::V2 { key: k, secret: s } => {
                prop_assert_eq!(*k, key.as_str());
                prop_assert_eq!(s.expose(), secret.expose());
            }
            Credential::V1 { .. } => prop_assert!(false, "read as v1"),
        }
    }

    #[test]
    fn v1_format_then_parse_round_trips(value in "[!-~]{40}") {
        prop_assume!(!value.starts_with("nbt_"));
        let header = format!("Token {value}");
        let parsed = AuthHeader::parse(header.as_bytes()).unwrap().unwrap();
        match parsed.credential() {
            Credential::V1 { plaintext } => prop_assert_eq!(plaintext.expose(), value.as_str()),
            Credential::V2 { .. } => prop_assert!(false, "read as v2"),
        }
    }

    #[test]
    fn parser_never_panics_on_arbitrary_bytes(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = AuthHeader::parse(&raw);
    }

    #[test]
    fn parser_never_panics_on_keyword_plus_arbitrary_bytes(kw in "(?i)(token|bearer)", raw in proptest::collection::vec(any::<u8>(), 0..120)) {
        let mut header = kw.into_bytes();
        header.push(b' ');
        header.extend_from_slice(b"nbt_");
        header.extend_from_slice(&raw);
        let _ = AuthHeader::parse(&header);
    }

    #[test]
    fn hints_and_errors_never_echo_the_secret(key in alnum(12), secret in alnum(40), junk in "[ .a-z\"]{0,3}") {
        for header in [
            format!("Bearer nbt_{key}.{secret}{junk}"),
            format!("Bearer Bearer nbt_{key}.{secret}"),
            format!("Token nbt_{key}{secret}"),
            format!("Bearer {key}.{secret}"),
        ] {
            let text = match AuthHeader::parse(header.as_bytes()) {
                Ok(Some(h)) => format!("{:?} {}", h, h.hint().map(|h| h.to_string()).unwrap_or_default()),
                Ok(None) => String::new(),
                Err(e) => format!("{e:?} {e} {}", e.hint().map(|h| h.to_string()).unwrap_or_default()),
            };
            prop_assert!(!text.contains(&secret), "{}", text);
        }
    }
}
