//! The real NetBox of the test suite works, and stores what nbtoken computes.
//!
//! These are the ground truth the other `netbox_*` suites stand on: a superuser token
//! authenticates, tokens made through NetBox's REST API work with the keyword their
//! version calls for, and the digest NetBox stored for a v2 token is byte-identical to
//! nbtoken's HMAC of the same secret under the same pepper.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use common::netbox::{netbox, PEPPER, PEPPER_ID};
use nbtoken_core::{PepperId, PepperRing, SecretString};
use serde_json::json;

#[test]
fn netbox_authenticates_its_own_tokens_and_stores_nbtokens_digest() {
    let Some(nb) = netbox() else { return };

    let (status, me) = nb.api("GET", "/api/authentication-check/", Some(&nb.admin_token), None);
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], nb.admin_username.as_str());

    let (status, body) = nb.api("GET", "/api/status/", None, None);
    assert_eq!(status, 403, "NetBox requires a token for /api/status/ by default: {body}");

    let user = nb.create_user("harness-user", false);
    let v2 = nb.create_token(user, 2, json!({"description": "harness v2"}));
    let v1 = nb.create_token(user, 1, json!({"description": "harness v1"}));
    assert!(v2.value.starts_with("nbt_") && v2.value.len() == 4 + 12 + 1 + 40, "{}", v2.json);
    assert_eq!(v1.value.len(), 40, "{}", v1.json);
    for t in [&v2, &v1] {
        let (status, me) = nb.api("GET", "/api/authentication-check/", Some(&t.value), None);
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["id"], user);
    }

    // The digest NetBox stored is the one nbtoken computes.
    let row = nb.sql(&format!(
        "SELECT key || ' ' || pepper_id || ' ' || hmac_digest FROM users_token WHERE id = {}",
        v2.id
    ));
    let mut parts = row.split(' ');
    let (key, pepper_id, digest) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let (want_key, secret) = v2.value.trim_start_matches("nbt_").split_once('.').unwrap();
    assert_eq!(key, want_key);
    assert_eq!(pepper_id, PEPPER_ID.to_string());
    let ring = PepperRing::new([(PepperId::new(PEPPER_ID).unwrap(), SecretString::from(PEPPER))]).unwrap();
    assert_eq!(ring.get(PepperId::new(PEPPER_ID).unwrap()).unwrap().digest(secret).to_hex(), digest);

    // NetBox keeps v1 plaintexts and never a v2 secret.
    let stored = nb.sql(&format!(
        "SELECT coalesce(plaintext, '-') FROM users_token WHERE id IN ({}, {}) ORDER BY version",
        v1.id, v2.id
    ));
    assert_eq!(stored.lines().collect::<Vec<_>>(), [v1.value.as_str(), "-"]);
}
