//! Fuzzes pepper configuration: `PepperId::parse` and `PepperRing::new` on
//! arbitrary `(id text, value)` pairs. They must never panic, must agree with
//! a plain restatement of the rules, and no error may contain a pepper value.

#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use nbtoken_core::pepper::{MAX_PEPPER_ID, MIN_PEPPER_CHARS};
use nbtoken_core::{PepperError, PepperId, PepperRing, SecretString};

/// Values shorter than this are too likely to occur in fixed text by chance.
const MIN_CHECKED_CHARS: usize = 8;

fuzz_target!(|entries: Vec<(String, String)>| {
    let mut valid = Vec::new();
    for (text, value) in &entries {
        match PepperId::parse(text) {
            Ok(id) => {
                assert!(id.get() <= MAX_PEPPER_ID);
                assert_eq!(text.trim().parse::<u16>(), Ok(id.get()), "accepted id {text:?}");
                valid.push((id, value.as_str()));
            }
            Err(err) => {
                assert!(matches!(err, PepperError::IdOutOfRange(_)), "{err:?}");
                let accepted = text.trim().parse::<u16>().is_ok_and(|n| n <= MAX_PEPPER_ID);
                assert!(!accepted, "refused id {text:?}");
                check_hides(&err, &entries);
            }
        }
    }

    let expected = expected_outcome(&valid);
    let ring = PepperRing::new(valid.iter().map(|(id, v)| (*id, SecretString::from(*v))));
    match (ring, expected) {
        (Err(err), Err(want)) => {
            assert_eq!(err, want);
            check_hides(&err, &entries);
        }
        (Ok(ring), Ok(ids)) => {
            assert_eq!(ring.ids().collect::<Vec<_>>(), ids);
            match ids.last() {
                Some(&max) => {
                    assert_eq!(ring.current().map(|p| p.id()).ok(), Some(max));
                    let (id, _digest) = ring.hash_new("fuzz").expect("ring has a pepper");
                    assert_eq!(id, max);
                }
                None => assert_eq!(ring.current().err(), Some(PepperError::NoneConfigured)),
            }
            let dbg = format!("{ring:?}");
            for (_, value) in &entries {
                if checkable(value, &entries) {
                    assert!(!dbg.contains(value.as_str()), "ring Debug shows a pepper: {dbg}");
                }
            }
        }
        (got, want) => panic!("PepperRing::new gave {got:?}, expected {want:?}"),
    }
});

/// The rules restated: entries are checked in order; the first one shorter
/// than the minimum (in characters) or repeating an id is the error.
fn expected_outcome(valid: &[(PepperId, &str)]) -> Result<Vec<PepperId>, PepperError> {
    let mut seen = BTreeSet::new();
    for &(id, value) in valid {
        let len = value.chars().count();
        if len < MIN_PEPPER_CHARS {
            return Err(PepperError::TooShort { id, len });
        }
        if !seen.insert(id) {
            return Err(PepperError::Duplicate(id));
        }
    }
    Ok(seen.into_iter().collect())
}

/// No pepper value shows up in the error's `Display` or `Debug`.
fn check_hides(err: &PepperError, entries: &[(String, String)]) {
    let (text, dbg) = (err.to_string(), format!("{err:?}"));
    for (_, value) in entries {
        if checkable(value, entries) {
            assert!(!text.contains(value.as_str()), "error shows a pepper value: {text}");
            assert!(!dbg.contains(value.as_str()), "error Debug shows a pepper value: {dbg}");
        }
    }
}

/// Error wording is ASCII and an out-of-range error echoes the id text, so a
/// value made only of ASCII and id-text characters could appear by chance.
/// A value with any other character that still shows up is a real leak.
fn checkable(value: &str, entries: &[(String, String)]) -> bool {
    value.chars().count() >= MIN_CHECKED_CHARS
        && value.chars().any(|c| !c.is_ascii() && !entries.iter().any(|(id, _)| id.contains(c)))
}
