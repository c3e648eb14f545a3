//! The digests in `tests/data/v2_digests.json` were computed the way NetBox
//! computes them; every one must come out byte-identical here.

#![allow(clippy::unwrap_used, missing_docs)]

use nbtoken_core::{
    decide, Access, AuthHeader, Digest, PepperId, PepperRing, SecretString, StoredCredential, StoredToken,
    TokenKey, VerifyInput,
};
use serde_json::Value;
use time::OffsetDateTime;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/v2_digests.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ring(v: &Value) -> PepperRing {
    let peppers = v["peppers"].as_object().unwrap();
    PepperRing::new(
        peppers.iter().map(|(id, p)| (PepperId::parse(id).unwrap(), SecretString::from(p.as_str().unwrap()))),
    )
    .unwrap()
}

#[test]
fn every_vector_digest_is_reproduced() {
    let v = vectors();
    let ring = ring(&v);
    let tokens = v["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 12);
    for t in tokens {
        let id = PepperId::new(u16::try_from(t["pepper_id"].as_u64().unwrap()).unwrap()).unwrap();
        let digest = ring.get(id).unwrap().digest(t["secret"].as_str().unwrap());
        assert_eq!(digest.to_hex(), t["hmac_digest"].as_str().unwrap(), "token {}", t["key"]);
    }
}

#[test]
fn every_vector_header_authenticates_against_its_stored_row() {
    let v = vectors();
    let ring = ring(&v);
    for (i, t) in v["tokens"].as_array().unwrap().iter().enumerate() {
        let header = AuthHeader::parse(t["header"].as_str().unwrap().as_bytes()).unwrap().unwrap();
        let credential = StoredCredential::v2(
            TokenKey::parse(t["key"].as_str().unwrap()).unwrap(),
            PepperId::new(u16::try_from(t["pepper_id"].as_u64().unwrap()).unwrap()).unwrap(),
            Digest::from_hex(t["hmac_digest"].as_str().unwrap()).unwrap(),
        );
        let token = StoredToken::new(i64::try_from(i).unwrap(), 1, credential);
        let verified = decide(&VerifyInput {
            credential: header.credential(),
            token: Some(&token),
            user_active: true,
            access: Access::Write,
            client_ip: None,
            now: OffsetDateTime::now_utc(),
            peppers: &ring,
            want_rehash: true,
        })
        .unwrap();
        // Pepper 7 is the newest: tokens on 1 and 2 are due for a re-hash.
        assert_eq!(verified.rehash.is_some(), t["pepper_id"] != 7, "token {}", t["key"]);
    }
}
