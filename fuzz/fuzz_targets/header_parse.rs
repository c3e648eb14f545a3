//! Fuzzes `AuthHeader::parse` on arbitrary bytes: it must never panic, must
//! agree with a plain restatement of NetBox's rules, and must never put the
//! presented secret into a hint or a `Debug` rendering.

#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nbtoken_core::header::Keyword;
use nbtoken_core::{AuthHeader, Credential, Hint, TOKEN_PREFIX};

/// Secrets shorter than this are too likely to occur in fixed text by chance.
const MIN_CHECKED_CHARS: usize = 8;

fuzz_target!(|raw: &[u8]| {
    let words = py_split(raw);
    match AuthHeader::parse(raw) {
        Ok(None) => {
            // Anonymous: no words, or a first word that is not a keyword.
            assert!(words.first().is_none_or(|w| keyword(w).is_none()), "anonymous but keyword present");
        }
        Err(err) => {
            assert!(words.first().and_then(|w| keyword(w)).is_some(), "error without a keyword: {err:?}");
            // Errors carry only a hint, never the value; the value here is
            // whatever followed the keyword.
            if let (Some(hint), Some(value)) = (err.hint(), words.get(1)) {
                if let Ok(value) = std::str::from_utf8(value) {
                    check_hint_hides(hint, value);
                }
            }
        }
        Ok(Some(h)) => {
            assert_eq!(words.len(), 2, "accepted a header of {} words", words.len());
            assert_eq!(Some(h.keyword()), keyword(words[0]));
            // Safe: a header was accepted, so its value is UTF-8.
            let value = std::str::from_utf8(words[1]).expect("accepted value is UTF-8");
            let secret = match h.credential() {
                Credential::V1 { plaintext } => {
                    assert!(!value.starts_with(TOKEN_PREFIX), "v2 value read as v1");
                    assert_eq!(plaintext.expose(), value);
                    plaintext.expose()
                }
                Credential::V2 { key, secret } => {
                    assert!(!key.contains('.'), "v2 key contains a dot: {key:?}");
                    assert_eq!(format!("{TOKEN_PREFIX}{key}.{}", secret.expose()), value);
                    secret.expose()
                }
            };
            if let Some(hint) = h.hint() {
                check_hint_hides(hint, secret);
            }
            check_debug_hides(&h, secret);
        }
    }
});

/// Splits like Python's `bytes.split()`, independently of the crate.
fn py_split(raw: &[u8]) -> Vec<&[u8]> {
    raw.split(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)).filter(|w| !w.is_empty()).collect()
}

fn keyword(word: &[u8]) -> Option<Keyword> {
    if word.eq_ignore_ascii_case(b"token") {
        Some(Keyword::Token)
    } else if word.eq_ignore_ascii_case(b"bearer") {
        Some(Keyword::Bearer)
    } else {
        None
    }
}

/// A hint's text must not contain the secret. The text is fixed wording
/// plus lengths, so a secret made only of characters from that wording
/// could appear in it by chance (and the fuzzer's comparison tracing would
/// steer towards that); such secrets are skipped. Any secret with one
/// character outside the wording that still shows up is a real leak.
fn check_hint_hides(hint: Hint, secret: &str) {
    if secret.chars().count() < MIN_CHECKED_CHARS || secret.chars().all(|c| hint_charset().contains(&c)) {
        return;
    }
    let text = hint.to_string();
    assert!(!text.contains(secret), "hint {hint:?} shows the secret: {text:?}");
}

/// `Debug` of a parsed header prints the key but must redact the secret. The
/// key and the struct's own wording are ASCII or come from the input, so the
/// check applies to secrets with a character found in neither.
fn check_debug_hides(h: &AuthHeader, secret: &str) {
    if secret.chars().count() < MIN_CHECKED_CHARS {
        return;
    }
    let key = match h.credential() {
        Credential::V2 { key, .. } => key,
        Credential::V1 { .. } => "",
    };
    if secret.chars().all(|c| c.is_ascii() || key.contains(c)) {
        return;
    }
    let dbg = format!("{h:?}");
    assert!(!dbg.contains(secret), "Debug shows the secret: {dbg}");
}

/// Every character the known hints' wording uses (lengths render as digits).
fn hint_charset() -> &'static BTreeSet<char> {
    static SET: OnceLock<BTreeSet<char>> = OnceLock::new();
    SET.get_or_init(|| {
        let hints = [
            Hint::DoubledKeyword,
            Hint::MissingValue,
            Hint::ExtraWords,
            Hint::Quoted,
            Hint::V2WithTokenKeyword,
            Hint::V1WithBearerKeyword,
            Hint::MissingPrefix,
            Hint::PrefixRepeated,
            Hint::MissingDot,
            Hint::KeyShape { len: 0 },
            Hint::SecretShape { len: 0 },
            Hint::V1Length { len: 0 },
            Hint::NotUtf8,
        ];
        hints.iter().flat_map(|h| h.to_string().chars().collect::<Vec<_>>()).chain('0'..='9').collect()
    })
}
