//! Verification cost against a bare HMAC-SHA256 of the same 40 bytes, in one run.
//!
//! `cargo bench -p nbtoken-core --bench verify`

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use hmac::{Hmac, Mac};
use nbtoken_core::{
    decide, Access, AuthHeader, Credential, PepperId, PepperRing, Secret, SecretString, StoredCredential,
    StoredToken, TokenKey, VerifyInput,
};
use sha2::Sha256;
use time::OffsetDateTime;

const PEPPER: &str = "kp7ht*76fiQAhUi5dHfASLlYUE_S^gI^(7J^K5M!LfoH@vl&b_";

/// A read from loopback by an active user: the request every case decides.
fn read<'a>(
    ring: &'a PepperRing,
    credential: &'a Credential,
    token: Option<&'a StoredToken>,
    now: OffsetDateTime,
) -> VerifyInput<'a> {
    VerifyInput {
        credential,
        token,
        user_active: true,
        access: Access::Read,
        client_ip: Some(IpAddr::from([127, 0, 0, 1])),
        now,
        peppers: ring,
        want_rehash: true,
    }
}

fn bench(c: &mut Criterion) {
    let ring = PepperRing::new([(PepperId::new(1).unwrap(), SecretString::from(PEPPER))]).unwrap();
    let key = TokenKey::generate().unwrap();
    let secret = Secret::generate().unwrap();
    let (pepper_id, digest) = ring.hash_new(secret.expose()).unwrap();
    let token = StoredToken {
        last_used: Some(OffsetDateTime::now_utc()),
        ..StoredToken::new(1, 1, StoredCredential::v2(key.clone(), pepper_id, digest))
    };
    let header = format!("Bearer {}", secret.full_token(&key).expose());
    let parsed = AuthHeader::parse(header.as_bytes()).unwrap().unwrap();
    let now = OffsetDateTime::now_utc();

    let mut group = c.benchmark_group("verify");
    let keyed = <Hmac<Sha256> as Mac>::new_from_slice(PEPPER.as_bytes()).unwrap();
    group.bench_function("bare_hmac_sha256_40B", |b| {
        b.iter(|| {
            let mut mac = keyed.clone();
            mac.update(black_box(secret.expose().as_bytes()));
            black_box(mac.finalize().into_bytes())
        })
    });
    group.bench_function("decide_v2_valid", |b| {
        b.iter(|| black_box(decide(&read(&ring, black_box(parsed.credential()), Some(&token), now))).is_ok())
    });
    group.bench_function("parse_and_decide_v2_valid", |b| {
        b.iter(|| {
            let parsed = AuthHeader::parse(black_box(header.as_bytes())).unwrap().unwrap();
            decide(&read(&ring, parsed.credential(), Some(&token), now)).is_ok()
        })
    });
    let wrong = format!("Bearer nbt_{}.{}", key.as_str(), "x".repeat(40));
    let wrong = AuthHeader::parse(wrong.as_bytes()).unwrap().unwrap();
    group.bench_function("decide_v2_wrong_secret", |b| {
        b.iter(|| decide(&read(&ring, black_box(wrong.credential()), Some(&token), now)).is_err())
    });
    group.bench_function("decide_v2_unknown_key", |b| {
        b.iter(|| decide(&read(&ring, black_box(parsed.credential()), None, now)).is_err())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
