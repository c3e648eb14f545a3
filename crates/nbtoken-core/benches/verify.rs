//! Verification cost against a bare HMAC-SHA256 of the same 40 bytes, in one run.
//!
//! `cargo bench -p nbtoken-core --bench verify`

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use hmac::{Hmac, Mac};
use nbtoken_core::{
    decide, Access, AllowedIps, AuthHeader, PepperId, PepperRing, Secret, SecretString, StoredCredential,
    StoredToken, TokenKey, VerifyInput,
};
use sha2::Sha256;
use time::OffsetDateTime;

const PEPPER: &str = "kp7ht*76fiQAhUi5dHfASLlYUE_S^gI^(7J^K5M!LfoH@vl&b_";

fn bench(c: &mut Criterion) {
    let ring = PepperRing::new([(PepperId::new(1).unwrap(), SecretString::from(PEPPER))]).unwrap();
    let key = TokenKey::generate().unwrap();
    let secret = Secret::generate().unwrap();
    let (pepper_id, digest) = ring.hash_new(secret.expose()).unwrap();
    let token = StoredToken {
        id: 1,
        user_id: 1,
        credential: StoredCredential::V2 { key: key.clone(), pepper_id, digest, previous: None },
        enabled: true,
        write_enabled: true,
        expires: None,
        last_used: Some(OffsetDateTime::now_utc()),
        allowed_ips: AllowedIps::default(),
    };
    let header = format!("Bearer {}", secret.full_token(&key).expose());
    let parsed = AuthHeader::parse(header.as_bytes()).unwrap().unwrap();
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
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
        b.iter(|| {
            black_box(decide(&VerifyInput {
                credential: black_box(parsed.credential()),
                token: Some(&token),
                user_active: true,
                access: Access::Read,
                client_ip: Some(ip),
                now,
                peppers: &ring,
            }))
            .is_ok()
        })
    });
    group.bench_function("parse_and_decide_v2_valid", |b| {
        b.iter(|| {
            let parsed = AuthHeader::parse(black_box(header.as_bytes())).unwrap().unwrap();
            decide(&VerifyInput {
                credential: parsed.credential(),
                token: Some(&token),
                user_active: true,
                access: Access::Read,
                client_ip: Some(ip),
                now,
                peppers: &ring,
            })
            .is_ok()
        })
    });
    let wrong = format!("Bearer nbt_{}.{}", key.as_str(), "x".repeat(40));
    let wrong = AuthHeader::parse(wrong.as_bytes()).unwrap().unwrap();
    group.bench_function("decide_v2_wrong_secret", |b| {
        b.iter(|| {
            decide(&VerifyInput {
                credential: black_box(wrong.credential()),
                token: Some(&token),
                user_active: true,
                access: Access::Read,
                client_ip: Some(ip),
                now,
                peppers: &ring,
            })
            .is_err()
        })
    });
    group.bench_function("decide_v2_unknown_key", |b| {
        b.iter(|| {
            decide(&VerifyInput {
                credential: black_box(parsed.credential()),
                token: None,
                user_active: true,
                access: Access::Read,
                client_ip: Some(ip),
                now,
                peppers: &ring,
            })
            .is_err()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
