//! Header parsing cases, including every header case of the recorded NetBox 4.6.8 run.

use super::*;

const KEY: &str = "eOxiaUBB7417";
const SECRET: &str = "wTbg8d65KYLMH3bHQ9zULCrxTXiNiug1jIm63wnU";
const V1: &str = "0123456789abcdef0123456789abcdef01234567";

/// Renders a parse result in one line: `anonymous`, `v1 <plaintext>`,
/// `v2 <key> <secret>` or `error <detail>`, then ` | <hint debug>` if any.
fn render(raw: &[u8]) -> String {
    match AuthHeader::parse(raw) {
        Ok(None) => "anonymous".to_owned(),
        Ok(Some(h)) => {
            let body = match h.credential() {
                Credential::V1 { plaintext } => format!("v1 {}", plaintext.expose()),
                Credential::V2 { key, secret } => format!("v2 {key} {}", secret.expose()),
            };
            match h.hint() {
                Some(hint) => format!("{body} | {hint:?}"),
                None => body,
            }
        }
        Err(e) => match e.hint() {
            Some(hint) => format!("error {} | {hint:?}", e.detail()),
            None => format!("error {}", e.detail()),
        },
    }
}

fn check(raw: &str, expected: &str) {
    assert_eq!(render(raw.as_bytes()), expected, "header {raw:?}");
}

#[test]
fn anonymous_cases() {
    check("", "anonymous");
    check("   ", "anonymous");
    check("Basic dXNlcjpwYXNz", "anonymous");
    check("Digest a b c", "anonymous");
    check("Tokens x", "anonymous");
}

#[test]
fn valid_v2_and_v1() {
    check(&format!("Bearer nbt_{KEY}.{SECRET}"), &format!("v2 {KEY} {SECRET}"));
    check(&format!("bearer nbt_{KEY}.{SECRET}"), &format!("v2 {KEY} {SECRET}"));
    check(&format!("BEARER  nbt_{KEY}.{SECRET}"), &format!("v2 {KEY} {SECRET}"));
    check(&format!("Token {V1}"), &format!("v1 {V1}"));
    check(&format!("\tToken\t{V1}\r\n"), &format!("v1 {V1}"));
}

#[test]
fn keyword_does_not_decide_the_version() {
    check(&format!("Token nbt_{KEY}.{SECRET}"), &format!("v2 {KEY} {SECRET} | V2WithTokenKeyword"));
    check(&format!("Bearer {V1}"), &format!("v1 {V1} | V1WithBearerKeyword"));
}

#[test]
fn wrong_number_of_parts() {
    check("Bearer", &format!("error {MSG_WRONG_FORM} | MissingValue"));
    check("Token", &format!("error {MSG_WRONG_FORM} | MissingValue"));
    check(&format!("Bearer Bearer nbt_{KEY}.{SECRET}"), &format!("error {MSG_WRONG_FORM} | DoubledKeyword"));
    check(&format!("Bearer token nbt_{KEY}.{SECRET}"), &format!("error {MSG_WRONG_FORM} | DoubledKeyword"));
    check(&format!("Bearer nbt_{KEY}.{SECRET} extra"), &format!("error {MSG_WRONG_FORM} | ExtraWords"));
}

#[test]
fn vertical_tab_and_form_feed_split_like_python() {
    check(&format!("Bearer\x0bnbt_{KEY}.{SECRET}"), &format!("v2 {KEY} {SECRET}"));
    check(&format!("Bearer\x0cnbt_{KEY}.{SECRET}"), &format!("v2 {KEY} {SECRET}"));
}

#[test]
fn non_utf8_value() {
    let mut raw = b"Bearer nbt_".to_vec();
    raw.extend_from_slice(&[0xff, 0xfe, b'.', b'a']);
    assert_eq!(render(&raw), format!("error {MSG_INVALID_CHARACTERS} | NotUtf8"));
    let mut raw = b"Token ".to_vec();
    raw.extend_from_slice(&[0xc3, 0x28]);
    assert_eq!(render(&raw), format!("error {MSG_INVALID_CHARACTERS} | NotUtf8"));
}

#[test]
fn v2_without_dot() {
    check(&format!("Bearer nbt_{KEY}{SECRET}"), &format!("error {MSG_NO_DOT} | MissingDot"));
    check(&format!("Bearer nbt_nbt_{KEY}{SECRET}"), &format!("error {MSG_NO_DOT} | PrefixRepeated"));
}

#[test]
fn v2_split_at_first_dot_only() {
    check(&format!("Bearer nbt_{KEY}.{SECRET}."), &format!("v2 {KEY} {SECRET}. | SecretShape {{ len: 41 }}"));
    check(&format!("Bearer nbt_{KEY}."), &format!("v2 {KEY}  | SecretShape {{ len: 0 }}"));
    check(&format!("Bearer nbt_.{SECRET}"), &format!("v2  {SECRET} | KeyShape {{ len: 0 }}"));
}

#[test]
fn prefix_is_stripped_once_from_the_front_only() {
    // NetBox strips `nbt_` again from the secret and accepts this; nbtoken
    // keeps the secret as sent, so it will not match the stored digest.
    check(&format!("Bearer nbt_{KEY}.nbt_{SECRET}"), &format!("v2 {KEY} nbt_{SECRET} | PrefixRepeated"));
}

#[test]
fn v2_without_prefix_is_read_as_v1() {
    check(&format!("Bearer {KEY}.{SECRET}"), &format!("v1 {KEY}.{SECRET} | MissingPrefix"));
}

#[test]
fn quoted_values() {
    check(&format!("Bearer \"nbt_{KEY}.{SECRET}\""), &format!("v1 \"nbt_{KEY}.{SECRET}\" | Quoted"));
    check(&format!("Token '{V1}'"), &format!("v1 '{V1}' | Quoted"));
}

#[test]
fn v1_wrong_length() {
    check("Token abc", "v1 abc | V1Length { len: 3 }");
}

#[test]
fn hints_never_contain_the_secret() {
    let cases = [
        format!("Bearer nbt_{KEY}.{SECRET}x"),
        format!("Token nbt_{KEY}.{SECRET}"),
        format!("Bearer Bearer nbt_{KEY}.{SECRET}"),
        format!("Bearer nbt_{KEY}{SECRET}"),
        format!("Bearer {V1}"),
    ];
    for raw in cases {
        let text = match AuthHeader::parse(raw.as_bytes()) {
            Ok(Some(h)) => h.hint().map(|h| h.to_string()).unwrap_or_default(),
            Ok(None) => String::new(),
            Err(e) => format!("{e} {}", e.hint().map(|h| h.to_string()).unwrap_or_default()),
        };
        assert!(!text.contains(&SECRET[..10]), "{text}");
        assert!(!text.contains(&V1[..10]), "{text}");
    }
}
