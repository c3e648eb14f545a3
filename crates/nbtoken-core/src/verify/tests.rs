//! Decision cases: NetBox's order of checks and nbtoken's additions.

use std::net::IpAddr;

use time::macros::datetime;

use super::*;
use crate::header::AuthHeader;
use crate::secret::SecretString;
use crate::token::{Secret, TokenKey, V1Plaintext};

const P1: &str = "kp7ht*76fiQAhUi5dHfASLlYUE_S^gI^(7J^K5M!LfoH@vl&b_";
const P2: &str = "Nm3slNHlMP)i0uAUXN)&zm7rAzwtDs$Z37&@Qw6c6xolLw=y6d_7NG9(2e)b4uJ+";
const KEY: &str = "eOxiaUBB7417";
const SECRET: &str = "wTbg8d65KYLMH3bHQ9zULCrxTXiNiug1jIm63wnU";
const DIGEST_P1: &str = "3766fc743fb3785f467f2b88cbd5de2de762112800be4ef8526be08b5f5e4239";
const V1: &str = "0123456789abcdef0123456789abcdef01234567";
const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

fn ring(ids: &[u16]) -> PepperRing {
    PepperRing::new(ids.iter().map(|&id| {
        let value = if id == 1 { P1 } else { P2 };
        (PepperId::new(id).unwrap(), SecretString::from(value))
    }))
    .unwrap()
}

fn v2_token() -> StoredToken {
    let key = TokenKey::parse(KEY).unwrap();
    let credential =
        StoredCredential::v2(key, PepperId::new(1).unwrap(), Digest::from_hex(DIGEST_P1).unwrap());
    StoredToken::new(5, 9, credential)
}

fn v1_token() -> StoredToken {
    StoredToken {
        credential: StoredCredential::V1 { plaintext: V1Plaintext::parse(V1).unwrap() },
        ..v2_token()
    }
}

struct Case {
    header: String,
    token: Option<StoredToken>,
    user_active: bool,
    method: &'static str,
    ip: Option<&'static str>,
    peppers: Vec<u16>,
    want_rehash: bool,
}

impl Case {
    fn v2(token: StoredToken) -> Self {
        Case {
            header: format!("Bearer nbt_{KEY}.{SECRET}"),
            token: Some(token),
            user_active: true,
            method: "GET",
            ip: Some("127.0.0.1"),
            peppers: vec![1],
            want_rehash: true,
        }
    }

    fn run(&self) -> Result<Verified, Denial> {
        let header = AuthHeader::parse(self.header.as_bytes()).unwrap().unwrap();
        let peppers = ring(&self.peppers);
        decide(&VerifyInput {
            credential: header.credential(),
            token: self.token.as_ref(),
            user_active: self.user_active,
            access: Access::from_method(self.method),
            client_ip: self.ip.map(|s| s.parse::<IpAddr>().unwrap()),
            now: NOW,
            peppers: &peppers,
            want_rehash: self.want_rehash,
        })
    }
}

/// Runs the case and renders the outcome as `ok` or the denial's detail.
fn check(case: Case, expected: &str) {
    let got = match case.run() {
        Ok(_) => "ok".to_owned(),
        Err(d) => d.detail(),
    };
    assert_eq!(got, expected, "header {:?}", case.header);
}

fn nets(list: &[&str]) -> AllowedIps {
    AllowedIps::new(list.iter().map(|s| s.parse().unwrap()).collect())
}

#[test]
fn valid_tokens() {
    check(Case::v2(v2_token()), "ok");
    check(Case { header: format!("Token nbt_{KEY}.{SECRET}"), ..Case::v2(v2_token()) }, "ok");
    check(Case { header: format!("Token {V1}"), ..Case::v2(v1_token()) }, "ok");
    check(Case { header: format!("Bearer {V1}"), ..Case::v2(v1_token()) }, "ok");
}

#[test]
fn wrong_secret_and_unknown_key_look_the_same() {
    let wrong = format!("Bearer nbt_{KEY}.{}", SECRET.replace('w', "x"));
    check(Case { header: wrong.clone(), ..Case::v2(v2_token()) }, "Invalid v2 token");
    check(Case { header: wrong, token: None, ..Case::v2(v2_token()) }, "Invalid v2 token");
    check(Case { token: None, ..Case::v2(v2_token()) }, "Invalid v2 token");
    check(Case { header: format!("Token {V1}"), token: None, ..Case::v2(v2_token()) }, "Invalid v1 token");
    let other_v1 = "A".repeat(40);
    check(Case { header: format!("Token {other_v1}"), ..Case::v2(v1_token()) }, "Invalid v1 token");
}

#[test]
fn secret_with_repeated_prefix_is_refused() {
    // NetBox 4.6.8 accepts this (it strips `nbt_` twice); nbtoken does not.
    check(
        Case { header: format!("Bearer nbt_{KEY}.nbt_{SECRET}"), ..Case::v2(v2_token()) },
        "Invalid v2 token",
    );
}

#[test]
fn row_of_the_other_version_never_matches() {
    check(Case { header: format!("Token {V1}"), ..Case::v2(v2_token()) }, "Invalid v1 token");
    check(Case::v2(v1_token()), "Invalid v2 token");
}

#[test]
fn allowed_ips() {
    let restricted = StoredToken { allowed_ips: nets(&["10.0.0.0/8", "2001:db8::/32"]), ..v2_token() };
    check(
        Case::v2(restricted.clone()),
        "Source IP 127.0.0.1 is not permitted to authenticate using this token.",
    );
    check(Case { ip: Some("10.9.9.5"), ..Case::v2(restricted.clone()) }, "ok");
    check(Case { ip: Some("::ffff:10.1.2.3"), ..Case::v2(restricted.clone()) }, "ok");
    check(Case { ip: Some("2001:db8::1"), ..Case::v2(restricted.clone()) }, "ok");
    check(
        Case { ip: None, ..Case::v2(restricted) },
        "Client IP address could not be determined for validation. Check that the HTTP server is correctly configured to pass the required header(s).",
    );
    let loopback = StoredToken { allowed_ips: nets(&["127.0.0.0/8"]), ..v2_token() };
    check(Case::v2(loopback), "ok");
}

#[test]
fn netbox_order_of_checks() {
    let disabled_and_ip = StoredToken { enabled: false, allowed_ips: nets(&["10.0.0.0/8"]), ..v2_token() };
    check(
        Case::v2(disabled_and_ip),
        "Source IP 127.0.0.1 is not permitted to authenticate using this token.",
    );
    let disabled_and_expired =
        StoredToken { enabled: false, expires: Some(datetime!(2020-01-01 0:00 UTC)), ..v2_token() };
    check(Case::v2(disabled_and_expired), "Token disabled");
    let expired = StoredToken { expires: Some(NOW), ..v2_token() };
    check(Case { user_active: false, ..Case::v2(expired) }, "Token expired");
    check(Case { user_active: false, ..Case::v2(v2_token()) }, "User inactive");
    let wrong = format!("Bearer nbt_{KEY}.{}", "x".repeat(40));
    check(Case { header: wrong, user_active: false, ..Case::v2(v2_token()) }, "Invalid v2 token");
}

#[test]
fn expiry_boundary() {
    let future = StoredToken { expires: Some(NOW + Duration::seconds(1)), ..v2_token() };
    check(Case::v2(future), "ok");
    let now = StoredToken { expires: Some(NOW), ..v2_token() };
    check(Case::v2(now), "Token expired");
}

#[test]
fn write_permission() {
    let read_only = StoredToken { write_enabled: false, ..v2_token() };
    for method in ["GET", "HEAD", "OPTIONS"] {
        check(Case { method, ..Case::v2(read_only.clone()) }, "ok");
    }
    for method in ["POST", "PUT", "PATCH", "DELETE", "get"] {
        check(Case { method, ..Case::v2(read_only.clone()) }, MSG_PERMISSION_DENIED);
    }
    check(Case { method: "POST", ..Case::v2(v2_token()) }, "ok");
}

#[test]
fn peppers() {
    // A pepper-1 token on a server with peppers 1 and 2 works and is re-hashed under 2.
    let got = Case { peppers: vec![1, 2], ..Case::v2(v2_token()) }.run().unwrap();
    let (id, digest) = got.rehash.expect("older pepper must trigger a re-hash");
    assert_eq!(id.get(), 2);
    assert_eq!(digest.to_hex(), ring(&[2]).current().unwrap().digest(SECRET).to_hex());
    // On the current pepper there is nothing to re-hash.
    assert!(Case::v2(v2_token()).run().unwrap().rehash.is_none());
    // Where no re-hash is wanted (a store that writes none), none is computed.
    let unwanted = Case { peppers: vec![1, 2], want_rehash: false, ..Case::v2(v2_token()) }.run().unwrap();
    assert!(unwanted.rehash.is_none());
    // A pepper-1 token on a server with only pepper 2 is refused as NetBox does.
    check(Case { peppers: vec![2], ..Case::v2(v2_token()) }, "Invalid v2 token");
    // No peppers at all: say so.
    let err = Case { peppers: vec![], ..Case::v2(v2_token()) }.run().unwrap_err();
    assert_eq!(err, Denial::PeppersMissing);
    assert!(err.detail().contains("API_TOKEN_PEPPERS"));
    // v1 does not need peppers.
    check(Case { header: format!("Token {V1}"), peppers: vec![], ..Case::v2(v1_token()) }, "ok");
}

#[test]
fn last_used_is_due_when_null_or_older_than_a_minute() {
    let due = |last: Option<OffsetDateTime>| {
        Case::v2(StoredToken { last_used: last, ..v2_token() }).run().unwrap().touch_last_used
    };
    assert!(due(None));
    assert!(due(Some(NOW - Duration::seconds(61))));
    assert!(!due(Some(NOW - Duration::seconds(60))));
    assert!(!due(Some(NOW - Duration::seconds(5))));
}

#[test]
fn previous_secret_works_until_the_deadline() {
    let new_secret = Secret::generate().unwrap();
    let p1 = ring(&[1]);
    let rotated = |valid_until| StoredToken {
        credential: StoredCredential::V2 {
            key: TokenKey::parse(KEY).unwrap(),
            pepper_id: PepperId::new(1).unwrap(),
            digest: p1.current().unwrap().digest(new_secret.expose()),
            previous: Some(PreviousSecret {
                pepper_id: PepperId::new(1).unwrap(),
                digest: Digest::from_hex(DIGEST_P1).unwrap(),
                valid_until,
            }),
        },
        ..v2_token()
    };
    let old = Case::v2(rotated(NOW + Duration::minutes(5))).run().unwrap();
    assert!(old.used_previous_secret);
    check(Case::v2(rotated(NOW)), "Invalid v2 token");
    let new_header = format!("Bearer nbt_{KEY}.{}", new_secret.expose());
    let new = Case { header: new_header, ..Case::v2(rotated(NOW)) }.run().unwrap();
    assert!(!new.used_previous_secret);
}

#[test]
fn denial_messages_never_carry_secrets() {
    for case in [
        Case { header: format!("Bearer nbt_{KEY}.{}", "s".repeat(40)), ..Case::v2(v2_token()) },
        Case { header: format!("Token {V1}"), token: None, ..Case::v2(v2_token()) },
    ] {
        let detail = case.run().unwrap_err().detail();
        assert!(!detail.contains("ssssssss") && !detail.contains(&V1[..12]), "{detail}");
    }
}

#[test]
fn provisioning_needs_no_write_permission() {
    for (method, path, expected) in [
        ("POST", PROVISION_PATH, Access::Read),
        ("GET", PROVISION_PATH, Access::Read),
        ("POST", "/api/users/tokens/", Access::Write),
        ("DELETE", "/api/users/tokens/provision/x/", Access::Write),
        ("GET", "/api/users/tokens/", Access::Read),
    ] {
        assert_eq!(Access::for_route(method, path), expected, "{method} {path}");
    }
}
