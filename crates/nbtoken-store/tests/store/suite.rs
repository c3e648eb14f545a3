//! The storage tests every backend must pass, generic over [`Backend`].

use ipnet::IpNet;
use nbtoken_core::{
    AllowedIps, Digest, PepperId, PepperRing, PreviousSecret, Secret, SecretString, StoredCredential,
    TokenKey, TokenVersion, V1Plaintext,
};
use nbtoken_store::{
    DayUses, NewToken, NewUser, Page, PepperUsage, Store, StoreError, TokenFilter, TokenPatch, TokenRecord,
    Touch, UserFilter, UserPatch,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::Backend;

// ---- helpers ---------------------------------------------------------------

/// An active user with this name and no password.
pub fn new_user(username: &str) -> NewUser {
    NewUser { username: username.to_owned(), is_active: true, ..Default::default() }
}

fn ring(pepper: u16) -> PepperRing {
    let id = PepperId::new(pepper).unwrap();
    PepperRing::new([(id, SecretString::new(format!("test-pepper-{pepper}-").repeat(8)))]).unwrap()
}

/// A digest of a fresh secret under pepper `pepper`.
fn fresh_digest(pepper: u16) -> (PepperId, Digest, Secret) {
    let secret = Secret::generate().unwrap();
    let (id, digest) = ring(pepper).hash_new(secret.expose()).unwrap();
    (id, digest, secret)
}

/// A new v2 token for `user_id` hashed under pepper `pepper`, and its secret.
pub fn v2_token(user_id: i64, pepper: u16) -> (NewToken, Secret) {
    let (pepper_id, digest, secret) = fresh_digest(pepper);
    (token(user_id, StoredCredential::v2(TokenKey::generate().unwrap(), pepper_id, digest)), secret)
}

/// A new v1 token for `user_id`, and its plaintext.
fn v1_token(user_id: i64) -> (NewToken, String) {
    let plaintext = V1Plaintext::generate().unwrap();
    let text = plaintext.expose().to_owned();
    (token(user_id, StoredCredential::V1 { plaintext }), text)
}

fn token(user_id: i64, credential: StoredCredential) -> NewToken {
    NewToken {
        user_id,
        credential,
        description: String::new(),
        expires: None,
        enabled: true,
        write_enabled: true,
        allowed_ips: AllowedIps::default(),
    }
}

fn key_of(t: &NewToken) -> String {
    match &t.credential {
        StoredCredential::V2 { key, .. } => key.as_str().to_owned(),
        StoredCredential::V1 { .. } => panic!("not a v2 token"),
    }
}

/// `(pepper id, digest hex, previous (pepper id, digest hex, valid until))` of a v2 record.
type V2Parts = (u16, String, Option<(u16, String, OffsetDateTime)>);

fn v2_parts(r: &TokenRecord) -> V2Parts {
    match &r.token.credential {
        StoredCredential::V2 { pepper_id, digest, previous, .. } => (
            pepper_id.get(),
            digest.to_hex(),
            previous.as_ref().map(|p| (p.pepper_id.get(), p.digest.to_hex(), p.valid_until)),
        ),
        StoredCredential::V1 { .. } => panic!("token {} is not v2", r.token.id),
    }
}

const ALL: Page = Page { limit: 1000, offset: 0 };

fn micros(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000).unwrap()
}

/// Lists tokens and checks the total and the ids of the page, in order.
async fn check_tokens<S: Store>(s: &S, filter: TokenFilter, page: Page, total: u64, ids: &[i64]) {
    let (count, rows) = s.list_tokens(&filter, page).await.unwrap();
    let got: Vec<i64> = rows.iter().map(|r| r.token.id).collect();
    assert_eq!((count, got.as_slice()), (total, ids), "{filter:?} {page:?}");
}

/// Lists users and checks the total and the usernames of the page, in order.
async fn check_users<S: Store>(s: &S, filter: UserFilter, page: Page, total: u64, names: &[&str]) {
    let (count, rows) = s.list_users(&filter, page).await.unwrap();
    let got: Vec<&str> = rows.iter().map(|u| u.username.as_str()).collect();
    assert_eq!((count, got.as_slice()), (total, names), "{filter:?} {page:?}");
}

// ---- users -----------------------------------------------------------------

pub async fn ping<B: Backend>(b: &B) {
    b.store().ping().await.unwrap();
}

pub async fn user_crud<B: Backend>(b: &B) {
    let s = b.store();
    let before = micros(OffsetDateTime::now_utc());
    let created = s
        .create_user(NewUser {
            username: "alice".into(),
            password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
            first_name: "Alice".into(),
            last_name: "Liddell".into(),
            email: "alice@example.org".into(),
            is_active: true,
            is_superuser: false,
            can_grant_tokens: true,
        })
        .await
        .unwrap();
    assert_eq!(created.username, "alice");
    assert_eq!(created.first_name, "Alice");
    assert_eq!(created.email, "alice@example.org");
    assert!(created.is_active && created.can_grant_tokens && !created.is_superuser);
    assert!(created.date_joined >= before && created.date_joined <= OffsetDateTime::now_utc());
    assert_eq!(created.date_joined.offset(), time::UtcOffset::UTC);
    assert_eq!(created.last_login, None);

    assert_eq!(s.user(created.id).await.unwrap(), Some(created.clone()));
    assert_eq!(s.user_by_name("alice").await.unwrap(), Some(created.clone()));
    assert_eq!(s.user_by_name("ALICE").await.unwrap(), None);
    assert_eq!(s.user(created.id + 1000).await.unwrap(), None);

    // Nanoseconds are truncated to microseconds, so the round trip compares equal.
    let login = datetime!(2025-03-04 05:06:07.123456789 UTC);
    let updated = s
        .update_user(
            created.id,
            UserPatch {
                username: Some("alice2".into()),
                password_hash: Some(None),
                is_superuser: Some(true),
                last_login: Some(login),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.username, "alice2");
    assert_eq!(updated.password_hash, None);
    assert!(updated.is_superuser);
    assert_eq!(updated.last_login, Some(datetime!(2025-03-04 05:06:07.123456 UTC)));
    // Fields not in the patch stay.
    assert_eq!(updated.first_name, "Alice");
    assert!(updated.can_grant_tokens);
    assert_eq!(updated.date_joined, created.date_joined);
    assert_eq!(s.user(created.id).await.unwrap(), Some(updated.clone()));

    // An empty patch returns the row unchanged.
    assert_eq!(s.update_user(created.id, UserPatch::default()).await.unwrap(), updated);

    s.delete_user(created.id).await.unwrap();
    assert_eq!(s.user(created.id).await.unwrap(), None);
    assert!(matches!(s.delete_user(created.id).await, Err(StoreError::NotFound)));
    assert!(matches!(s.update_user(created.id, UserPatch::default()).await, Err(StoreError::NotFound)));
    let patch = UserPatch { email: Some("x@example.org".into()), ..Default::default() };
    assert!(matches!(s.update_user(created.id, patch).await, Err(StoreError::NotFound)));
}

pub async fn username_conflict<B: Backend>(b: &B) {
    let s = b.store();
    s.create_user(new_user("alice")).await.unwrap();
    let bob = s.create_user(new_user("bob")).await.unwrap();
    assert!(matches!(s.create_user(new_user("alice")).await, Err(StoreError::Conflict("username"))));
    let patch = UserPatch { username: Some("alice".into()), ..Default::default() };
    assert!(matches!(s.update_user(bob.id, patch).await, Err(StoreError::Conflict("username"))));
    assert_eq!(s.user(bob.id).await.unwrap().unwrap().username, "bob");
}

pub async fn list_users_filters_and_pages<B: Backend>(b: &B) {
    let s = b.store();
    let mut ids = Vec::new();
    for name in ["carol", "alice", "dave", "bob"] {
        ids.push(s.create_user(new_user(name)).await.unwrap().id);
    }
    s.update_user(ids[2], UserPatch { is_active: Some(false), ..Default::default() }).await.unwrap();

    check_users(s, UserFilter::default(), ALL, 4, &["alice", "bob", "carol", "dave"]).await;
    check_users(s, UserFilter::default(), Page { limit: 2, offset: 1 }, 4, &["bob", "carol"]).await;
    check_users(s, UserFilter::default(), Page { limit: 2, offset: 10 }, 4, &[]).await;
    check_users(s, UserFilter::default(), Page { limit: 0, offset: 0 }, 4, &[]).await;
    check_users(s, UserFilter { ids: vec![ids[0], ids[3]], ..Default::default() }, ALL, 2, &["bob", "carol"])
        .await;
    let names =
        UserFilter { usernames: vec!["dave".into(), "alice".into(), "nobody".into()], ..Default::default() };
    check_users(s, names, ALL, 2, &["alice", "dave"]).await;
    check_users(s, UserFilter { is_active: Some(false), ..Default::default() }, ALL, 1, &["dave"]).await;
    let both = UserFilter { ids: vec![ids[0], ids[2]], is_active: Some(true), ..Default::default() };
    check_users(s, both, ALL, 1, &["carol"]).await;
}

// ---- tokens: creation and lookup ----------------------------------------------

pub async fn token_v1_create_and_lookup<B: Backend>(b: &B) {
    let s = b.store();
    let user = s.create_user(new_user("alice")).await.unwrap();
    let (mut new, plaintext) = v1_token(user.id);
    new.description = "legacy".into();
    new.write_enabled = false;
    let before = micros(OffsetDateTime::now_utc());
    let rec = s.create_token(new).await.unwrap();
    assert_eq!(rec.token.version(), TokenVersion::V1);
    assert_eq!(rec.token.user_id, user.id);
    assert_eq!(rec.username, "alice");
    assert!(rec.user_active);
    assert_eq!(rec.description, "legacy");
    assert!(rec.token.enabled && !rec.token.write_enabled);
    assert!(rec.created >= before);
    assert_eq!(rec.token.last_used, None);
    match &rec.token.credential {
        StoredCredential::V1 { plaintext: stored } => assert_eq!(stored.expose(), plaintext),
        StoredCredential::V2 { .. } => panic!("expected v1"),
    }

    let found = s.token_by_plaintext(&plaintext).await.unwrap().unwrap();
    assert_eq!(found.token.id, rec.token.id);
    assert_eq!(found.created, rec.created);
    assert!(s.token_by_plaintext(&"x".repeat(40)).await.unwrap().is_none());
    // A v1 plaintext is not a key.
    assert!(s.token_by_key(&plaintext[..12]).await.unwrap().is_none());
    assert_eq!(s.token(rec.token.id).await.unwrap().unwrap().token.id, rec.token.id);
}

pub async fn token_v2_create_and_lookup<B: Backend>(b: &B) {
    let s = b.store();
    let user = s.create_user(new_user("alice")).await.unwrap();
    let (mut new, _secret) = v2_token(user.id, 3);
    let key = key_of(&new);
    let expires = datetime!(2031-01-02 03:04:05.678901234 +02:00);
    new.expires = Some(expires);
    new.description = "ci runner".into();
    let nets: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "2001:db8::1/64".parse().unwrap()];
    new.allowed_ips = AllowedIps::new(nets.clone());
    let digest_hex = match &new.credential {
        StoredCredential::V2 { digest, .. } => digest.to_hex(),
        StoredCredential::V1 { .. } => unreachable!(),
    };
    let rec = s.create_token(new).await.unwrap();
    assert_eq!(rec.token.version(), TokenVersion::V2);
    assert_eq!(v2_parts(&rec), (3, digest_hex, None));
    // Stored in UTC, truncated to microseconds, the same instant.
    let stored_expires = rec.token.expires.unwrap();
    assert_eq!(stored_expires, datetime!(2031-01-02 01:04:05.678901 UTC));
    assert_eq!(stored_expires.offset(), time::UtcOffset::UTC);
    // Host bits are kept as given, like NetBox's inet[].
    assert_eq!(rec.token.allowed_ips.nets(), nets.as_slice());
    assert_eq!(rec.description, "ci runner");

    let found = s.token_by_key(&key).await.unwrap().unwrap();
    assert_eq!(found.token.id, rec.token.id);
    assert_eq!(v2_parts(&found), v2_parts(&rec));
    assert_eq!(found.token.expires, rec.token.expires);
    assert_eq!(found.token.allowed_ips, rec.token.allowed_ips);
    assert!(s.token_by_key("AAAAAAAAAAAA").await.unwrap().is_none());
    assert!(s.token(rec.token.id + 1000).await.unwrap().is_none());

    // An inactive owner shows in the record.
    s.update_user(user.id, UserPatch { is_active: Some(false), ..Default::default() }).await.unwrap();
    assert!(!s.token_by_key(&key).await.unwrap().unwrap().user_active);
}

pub async fn duplicate_key_and_plaintext_conflict<B: Backend>(b: &B) {
    let s = b.store();
    let user = s.create_user(new_user("alice")).await.unwrap();
    let (first, _) = v2_token(user.id, 1);
    let key = TokenKey::parse(&key_of(&first)).unwrap();
    s.create_token(first).await.unwrap();
    let (pepper_id, digest, _) = fresh_digest(1);
    let dup = token(user.id, StoredCredential::V2 { key, pepper_id, digest, previous: None });
    assert!(matches!(s.create_token(dup).await, Err(StoreError::Conflict("key"))));

    let (v1, plaintext) = v1_token(user.id);
    s.create_token(v1).await.unwrap();
    let dup = token(user.id, StoredCredential::V1 { plaintext: V1Plaintext::parse(&plaintext).unwrap() });
    assert!(matches!(s.create_token(dup).await, Err(StoreError::Conflict("plaintext"))));

    let (total, _) = s.list_tokens(&TokenFilter::default(), ALL).await.unwrap();
    assert_eq!(total, 2);
}

pub async fn unknown_user_is_missing_reference<B: Backend>(b: &B) {
    let s = b.store();
    let (new, _) = v2_token(424242, 1);
    assert!(matches!(s.create_token(new).await, Err(StoreError::MissingReference("user"))));
    let user = s.create_user(new_user("alice")).await.unwrap();
    let rec = s.create_token(v1_token(user.id).0).await.unwrap();
    let patch = TokenPatch { user_id: Some(424242), ..Default::default() };
    assert!(matches!(s.update_token(rec.token.id, patch).await, Err(StoreError::MissingReference("user"))));
    assert_eq!(s.token(rec.token.id).await.unwrap().unwrap().token.user_id, user.id);
}

/// Inserts a raw token row; `cols` is `(version, key, pepper_id, hmac_digest, plaintext)` as SQL literals.
async fn raw_token<B: Backend>(
    b: &B,
    user_id: i64,
    cols: (&str, &str, &str, &str, &str),
) -> Result<u64, String> {
    let (version, key, pepper_id, digest, plaintext) = cols;
    b.exec(&format!(
        "INSERT INTO users_token (version, key, pepper_id, hmac_digest, plaintext, user_id, description, created, \
         enabled, write_enabled) VALUES ({version}, {key}, {pepper_id}, {digest}, {plaintext}, {user_id}, '', \
         '2024-01-01T00:00:00.000000Z', TRUE, TRUE)"
    ))
    .await
}

pub async fn check_constraint_enforces_version_fields<B: Backend>(b: &B) {
    let user = b.store().create_user(new_user("alice")).await.unwrap();
    let digest = format!("'{}'", "ab".repeat(32));
    let plain = format!("'{}'", "P".repeat(40));
    // Well-formed rows go in, so the rejections below are the constraint's doing.
    raw_token(b, user.id, ("2", "'AAAAAAAAAAAA'", "1", &digest, "NULL")).await.unwrap();
    raw_token(b, user.id, ("1", "NULL", "NULL", "NULL", &plain)).await.unwrap();

    let bad = [
        (
            "v2 with plaintext",
            ("2", "'BBBBBBBBBBBB'", "1", digest.as_str(), "'QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ'"),
        ),
        ("v2 without digest", ("2", "'CCCCCCCCCCCC'", "1", "NULL", "NULL")),
        ("v2 without pepper", ("2", "'DDDDDDDDDDDD'", "NULL", digest.as_str(), "NULL")),
        ("v1 without plaintext", ("1", "NULL", "NULL", "NULL", "NULL")),
        (
            "v1 with key",
            ("1", "'EEEEEEEEEEEE'", "NULL", "NULL", "'RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR'"),
        ),
        ("version 3", ("3", "'FFFFFFFFFFFF'", "1", digest.as_str(), "NULL")),
    ];
    for (what, cols) in bad {
        let err = raw_token(b, user.id, cols).await.unwrap_err();
        assert!(err.contains("enforce_version_dependent_fields"), "{what}: {err}");
    }
    let (total, _) = b.store().list_tokens(&TokenFilter::default(), ALL).await.unwrap();
    assert_eq!(total, 2);
}

// ---- tokens: listing -----------------------------------------------------------

pub async fn list_tokens_filters_pages_and_counts<B: Backend>(b: &B) {
    let s = b.store();
    let alice = s.create_user(new_user("alice")).await.unwrap();
    let bob = s.create_user(new_user("bob")).await.unwrap();
    let (a1, _) = v2_token(alice.id, 1);
    let a1_key = key_of(&a1);
    let a1 = s.create_token(a1).await.unwrap().token.id;
    let (a2, _) = v2_token(alice.id, 2);
    let a2_key = key_of(&a2);
    let a2 = s.create_token(a2).await.unwrap().token.id;
    let a3 = s.create_token(v1_token(alice.id).0).await.unwrap().token.id;
    let (mut b1, _) = v2_token(bob.id, 2);
    b1.enabled = false;
    b1.write_enabled = false;
    let b1 = s.create_token(b1).await.unwrap().token.id;
    // Distinct creation times, oldest first, so the order is by `created`.
    for (i, id) in [a1, a2, a3, b1].iter().enumerate() {
        b.exec(&format!(
            "UPDATE users_token SET created = '2024-01-0{}T00:00:00.000000Z' WHERE id = {id}",
            i + 1
        ))
        .await
        .unwrap();
    }
    let newest_first = [b1, a3, a2, a1];

    check_tokens(s, TokenFilter::default(), ALL, 4, &newest_first).await;
    check_tokens(s, TokenFilter::default(), Page { limit: 2, offset: 0 }, 4, &[b1, a3]).await;
    check_tokens(s, TokenFilter::default(), Page { limit: 2, offset: 2 }, 4, &[a2, a1]).await;
    check_tokens(s, TokenFilter::default(), Page { limit: 2, offset: 3 }, 4, &[a1]).await;
    check_tokens(s, TokenFilter::default(), Page { limit: 2, offset: 9 }, 4, &[]).await;

    let f = |f: TokenFilter| f;
    check_tokens(s, f(TokenFilter { ids: vec![a1, b1, 999_999], ..Default::default() }), ALL, 2, &[b1, a1])
        .await;
    check_tokens(s, f(TokenFilter { user_ids: vec![alice.id], ..Default::default() }), ALL, 3, &[a3, a2, a1])
        .await;
    check_tokens(s, f(TokenFilter { usernames: vec!["bob".into()], ..Default::default() }), ALL, 1, &[b1])
        .await;
    let v1 = TokenFilter { version: Some(TokenVersion::V1), ..Default::default() };
    check_tokens(s, v1, ALL, 1, &[a3]).await;
    let v2 = TokenFilter { version: Some(TokenVersion::V2), ..Default::default() };
    check_tokens(s, v2, ALL, 3, &[b1, a2, a1]).await;
    check_tokens(s, f(TokenFilter { enabled: Some(false), ..Default::default() }), ALL, 1, &[b1]).await;
    check_tokens(
        s,
        f(TokenFilter { write_enabled: Some(true), ..Default::default() }),
        ALL,
        3,
        &[a3, a2, a1],
    )
    .await;
    check_tokens(
        s,
        f(TokenFilter { keys: vec![a2_key, a1_key.clone()], ..Default::default() }),
        ALL,
        2,
        &[a2, a1],
    )
    .await;
    let p2 = TokenFilter { pepper_id: Some(PepperId::new(2).unwrap()), ..Default::default() };
    check_tokens(s, p2, ALL, 2, &[b1, a2]).await;
    let combined = TokenFilter {
        usernames: vec!["alice".into()],
        version: Some(TokenVersion::V2),
        pepper_id: Some(PepperId::new(1).unwrap()),
        keys: vec![a1_key],
        ..Default::default()
    };
    check_tokens(s, combined.clone(), ALL, 1, &[a1]).await;
    check_tokens(s, combined, Page { limit: 1, offset: 1 }, 1, &[]).await;
    let none = TokenFilter { user_ids: vec![bob.id], enabled: Some(true), ..Default::default() };
    check_tokens(s, none, ALL, 0, &[]).await;
}

/// `?description=` as NetBox filters it: exact, case-sensitive, several values OR'ed, and an
/// empty list (only `null` asked) matching nothing.
pub async fn list_tokens_by_description<B: Backend>(b: &B) {
    let s = b.store();
    let alice = s.create_user(new_user("alice")).await.unwrap();
    let mut ids = Vec::new();
    for d in ["ro", "RO", "ro runner", "", "null", "it's 'quoted'"] {
        let (mut t, _) = v2_token(alice.id, 1);
        t.description = d.into();
        ids.push(s.create_token(t).await.unwrap().token.id);
    }
    let by = |d: Option<Vec<&str>>| TokenFilter {
        descriptions: d.map(|d| d.into_iter().map(str::to_owned).collect()),
        ..Default::default()
    };
    let sorted = |mut v: Vec<i64>| {
        v.sort_unstable();
        v
    };
    let cases: Vec<(Option<Vec<&str>>, Vec<i64>)> = vec![
        (None, ids.clone()),
        (Some(vec!["ro"]), vec![ids[0]]),
        (Some(vec!["RO", "ro runner", "absent"]), vec![ids[1], ids[2]]),
        (Some(vec![""]), vec![ids[3]]),
        (Some(vec!["null"]), vec![ids[4]]),
        (Some(vec!["it's 'quoted'"]), vec![ids[5]]),
        (Some(vec!["r"]), vec![]),
        (Some(vec![]), vec![]),
    ];
    for (descriptions, expected) in cases {
        let f = by(descriptions.clone());
        let (total, rows) = s.list_tokens(&f, ALL).await.unwrap();
        let got = sorted(rows.iter().map(|r| r.token.id).collect());
        assert_eq!((total, got), (expected.len() as u64, sorted(expected)), "{descriptions:?}");
    }
    // Combined with another filter: both hold.
    let f = TokenFilter { descriptions: Some(vec!["ro".into()]), enabled: Some(false), ..Default::default() };
    assert_eq!(s.list_tokens(&f, ALL).await.unwrap().0, 0);
}

/// An unrestricted token is stored as it was made: not set (`NULL`, as NetBox's model and
/// nbshell) or an empty list (`[]`, what NetBox's REST API stores), through creation,
/// reads and patches.
pub async fn allowed_ips_keeps_null_apart_from_an_empty_list<B: Backend>(b: &B) {
    let s = b.store();
    let alice = s.create_user(new_user("alice")).await.unwrap();
    let (null_one, _) = v2_token(alice.id, 1);
    let null_one = s.create_token(null_one).await.unwrap();
    let (mut listed, _) = v2_token(alice.id, 1);
    listed.allowed_ips = AllowedIps::empty_list();
    let listed = s.create_token(listed).await.unwrap();
    assert!(!null_one.token.allowed_ips.is_list() && null_one.token.allowed_ips.is_unrestricted());
    assert!(listed.token.allowed_ips.is_list() && listed.token.allowed_ips.is_unrestricted());
    let read = |id| async move { s.token(id).await.unwrap().unwrap().token.allowed_ips };
    assert_eq!(read(null_one.token.id).await, AllowedIps::default());
    assert_eq!(read(listed.token.id).await, AllowedIps::empty_list());
    // A patch that leaves allowed_ips alone keeps each form; one that sets it stores the new form.
    let describe = TokenPatch { description: Some("x".into()), ..Default::default() };
    s.update_token(null_one.token.id, describe.clone()).await.unwrap();
    s.update_token(listed.token.id, describe).await.unwrap();
    assert_eq!(read(null_one.token.id).await, AllowedIps::default());
    assert_eq!(read(listed.token.id).await, AllowedIps::empty_list());
    let to = |ips: AllowedIps| TokenPatch { allowed_ips: Some(ips), ..Default::default() };
    s.update_token(null_one.token.id, to(AllowedIps::empty_list())).await.unwrap();
    s.update_token(listed.token.id, to(AllowedIps::default())).await.unwrap();
    assert_eq!(read(null_one.token.id).await, AllowedIps::empty_list());
    assert_eq!(read(listed.token.id).await, AllowedIps::default());
}

pub async fn list_tokens_orders_newest_first_then_id<B: Backend>(b: &B) {
    let s = b.store();
    let user = s.create_user(new_user("alice")).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(s.create_token(v2_token(user.id, 1).0).await.unwrap().token.id);
    }
    // Two share a timestamp (ties break by id, descending); one is newest
    // although created first; microseconds matter.
    let created = [
        "2024-05-01T12:00:00.000002Z",
        "2024-05-01T12:00:00.000001Z",
        "2024-05-01T12:00:00.000001Z",
        "2024-05-01T11:59:59.999999Z",
    ];
    for (id, at) in ids.iter().zip(created) {
        b.exec(&format!("UPDATE users_token SET created = '{at}' WHERE id = {id}")).await.unwrap();
    }
    check_tokens(s, TokenFilter::default(), ALL, 4, &[ids[0], ids[2], ids[1], ids[3]]).await;
    let rec = s.token(ids[0]).await.unwrap().unwrap();
    assert_eq!(rec.created, datetime!(2024-05-01 12:00:00.000002 UTC));
}

// ---- tokens: changes -------------------------------------------------------------

pub async fn update_token_patch_semantics<B: Backend>(b: &B) {
    let s = b.store();
    let alice = s.create_user(new_user("alice")).await.unwrap();
    let bob = s.create_user(NewUser { is_active: false, ..new_user("bob") }).await.unwrap();
    let (mut new, _) = v2_token(alice.id, 1);
    new.description = "original".into();
    new.expires = Some(datetime!(2030-01-01 00:00 UTC));
    new.allowed_ips = AllowedIps::new(vec!["192.0.2.0/24".parse().unwrap()]);
    let rec = s.create_token(new).await.unwrap();
    let id = rec.token.id;

    // An empty patch changes nothing.
    let same = s.update_token(id, TokenPatch::default()).await.unwrap();
    assert_eq!(same.description, "original");
    assert_eq!(same.token.expires, rec.token.expires);

    let later = datetime!(2032-06-07 08:09:10.111111 UTC);
    let patched = s
        .update_token(
            id,
            TokenPatch {
                description: Some("renamed".into()),
                expires: Some(Some(later)),
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.description, "renamed");
    assert_eq!(patched.token.expires, Some(later));
    assert!(!patched.token.enabled);
    // Untouched fields stay, including the credential and creation time.
    assert!(patched.token.write_enabled);
    assert_eq!(patched.token.allowed_ips, rec.token.allowed_ips);
    assert_eq!(patched.created, rec.created);
    assert_eq!(v2_parts(&patched), v2_parts(&rec));

    // `Some(None)` clears the expiry; `None` leaves it.
    let cleared = s
        .update_token(
            id,
            TokenPatch {
                expires: Some(None),
                write_enabled: Some(false),
                allowed_ips: Some(AllowedIps::default()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.token.expires, None);
    assert!(!cleared.token.write_enabled);
    assert!(cleared.token.allowed_ips.is_unrestricted());
    assert_eq!(cleared.description, "renamed");
    assert!(!cleared.token.enabled);

    // A new owner shows in the joined fields.
    let moved = s.update_token(id, TokenPatch { user_id: Some(bob.id), ..Default::default() }).await.unwrap();
    assert_eq!((moved.token.user_id, moved.username.as_str(), moved.user_active), (bob.id, "bob", false));
    assert_eq!(s.token(id).await.unwrap().unwrap().username, "bob");

    assert!(matches!(s.update_token(id + 1000, TokenPatch::default()).await, Err(StoreError::NotFound)));
    let patch = TokenPatch { enabled: Some(true), ..Default::default() };
    assert!(matches!(s.update_token(id + 1000, patch).await, Err(StoreError::NotFound)));
}

pub async fn delete_token_and_cascade_on_user_delete<B: Backend>(b: &B) {
    let s = b.store();
    let alice = s.create_user(new_user("alice")).await.unwrap();
    let bob = s.create_user(new_user("bob")).await.unwrap();
    let a1 = s.create_token(v2_token(alice.id, 1).0).await.unwrap().token.id;
    let a2 = s.create_token(v1_token(alice.id).0).await.unwrap().token.id;
    let b1 = s.create_token(v2_token(bob.id, 1).0).await.unwrap().token.id;

    s.delete_token(a1).await.unwrap();
    assert!(s.token(a1).await.unwrap().is_none());
    assert!(matches!(s.delete_token(a1).await, Err(StoreError::NotFound)));

    s.delete_user(alice.id).await.unwrap();
    assert!(s.token(a2).await.unwrap().is_none());
    check_tokens(s, TokenFilter::default(), ALL, 1, &[b1]).await;
}

pub async fn apply_touches_never_moves_last_used_backwards<B: Backend>(b: &B) {
    let s = b.store();
    let user = s.create_user(new_user("alice")).await.unwrap();
    let t1 = s.create_token(v2_token(user.id, 1).0).await.unwrap().token.id;
    let t2 = s.create_token(v1_token(user.id).0).await.unwrap().token.id;
    let at = datetime!(2025-01-01 12:00:00.123456789 UTC);
    let touch = Touch::at;

    s.apply_touches(&[touch(t1, at), touch(t2, at - Duration::hours(1))]).await.unwrap();
    assert_eq!(s.token(t1).await.unwrap().unwrap().token.last_used, Some(micros(at)));
    assert_eq!(s.token(t2).await.unwrap().unwrap().token.last_used, Some(micros(at - Duration::hours(1))));

    // Older touches (in a later batch, or later in the same batch) lose.
    s.apply_touches(&[touch(t1, at - Duration::seconds(1))]).await.unwrap();
    assert_eq!(s.token(t1).await.unwrap().unwrap().token.last_used, Some(micros(at)));
    s.apply_touches(&[touch(t2, at + Duration::minutes(5)), touch(t2, at)]).await.unwrap();
    assert_eq!(s.token(t2).await.unwrap().unwrap().token.last_used, Some(micros(at + Duration::minutes(5))));
    // A later time in another offset is compared as an instant.
    let later = datetime!(2025-01-01 14:00:00 +01:00);
    s.apply_touches(&[touch(t1, later)]).await.unwrap();
    assert_eq!(s.token(t1).await.unwrap().unwrap().token.last_used, Some(datetime!(2025-01-01 13:00 UTC)));

    s.apply_touches(&[]).await.unwrap();
}

pub async fn apply_touches_record_the_client_ip<B: Backend>(b: &B) {
    let s = b.store();
    let user = s.create_user(new_user("alice")).await.unwrap();
    let v1 = s.create_token(v1_token(user.id).0).await.unwrap();
    let v2 = s.create_token(v2_token(user.id, 1).0).await.unwrap().token.id;
    assert_eq!(v1.last_used_ip, None);
    let v1 = v1.token.id;
    let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
    let touch = |token_id, at, addr: &str| Touch { ip: ip(addr), ..Touch::at(token_id, at) };
    let recorded = |id| async move {
        let r = s.token(id).await.unwrap().unwrap();
        (r.token.last_used, r.last_used_ip)
    };
    let at = datetime!(2025-03-03 03:03:03.5 UTC);

    s.apply_touches(&[touch(v1, at, "192.0.2.10"), touch(v2, at, "2001:db8::7")]).await.unwrap();
    assert_eq!(recorded(v1).await, (Some(at), ip("192.0.2.10")));
    assert_eq!(recorded(v2).await, (Some(at), ip("2001:db8::7")));

    // An older touch (in a later batch) changes neither the time nor the address.
    s.apply_touches(&[touch(v1, at - Duration::minutes(5), "198.51.100.1")]).await.unwrap();
    assert_eq!(recorded(v1).await, (Some(at), ip("192.0.2.10")));
    // Nor does a touch at the same instant.
    s.apply_touches(&[touch(v1, at, "198.51.100.2")]).await.unwrap();
    assert_eq!(recorded(v1).await, (Some(at), ip("192.0.2.10")));

    // Within one batch the latest touch's address wins, whatever the order.
    let later = at + Duration::minutes(2);
    s.apply_touches(&[
        touch(v1, later, "198.51.100.3"),
        touch(v1, at + Duration::minutes(1), "198.51.100.4"),
        touch(v2, at + Duration::minutes(1), "2001:db8::8"),
        touch(v2, later, "::ffff:192.0.2.1"),
    ])
    .await
    .unwrap();
    assert_eq!(recorded(v1).await, (Some(later), ip("198.51.100.3")));
    assert_eq!(recorded(v2).await, (Some(later), ip("::ffff:192.0.2.1")));

    // A newer touch without an address clears it: the address is of the last use.
    let latest = later + Duration::minutes(1);
    s.apply_touches(&[Touch::at(v1, latest)]).await.unwrap();
    assert_eq!(recorded(v1).await, (Some(latest), None));

    // Listings carry it too.
    let (_, rows) = s.list_tokens(&TokenFilter { ids: vec![v2], ..Default::default() }, ALL).await.unwrap();
    assert_eq!(rows[0].last_used_ip, ip("::ffff:192.0.2.1"));
}

pub async fn apply_touches_rehash_and_skips_deleted<B: Backend>(b: &B) {
    let s = b.store();
    let user = s.create_user(new_user("alice")).await.unwrap();
    let (new, secret) = v2_token(user.id, 1);
    let t1 = s.create_token(new).await.unwrap();
    let (_, v1_text) = v1_token(user.id);
    let v1 = s
        .create_token(token(
            user.id,
            StoredCredential::V1 { plaintext: V1Plaintext::parse(&v1_text).unwrap() },
        ))
        .await
        .unwrap();
    let gone = s.create_token(v2_token(user.id, 1).0).await.unwrap().token.id;
    s.delete_token(gone).await.unwrap();

    let (p2, d2) = ring(2).hash_new(secret.expose()).unwrap();
    let at = datetime!(2025-02-02 02:02:02 UTC);
    let rehash = |token_id| Touch { rehash: Some((p2, d2.clone())), ..Touch::at(token_id, at) };
    s.apply_touches(&[rehash(gone), rehash(t1.token.id), rehash(v1.token.id), Touch::at(987_654, at)])
        .await
        .unwrap();
    let r1 = s.token(t1.token.id).await.unwrap().unwrap();
    assert_eq!(v2_parts(&r1), (2, d2.to_hex(), None));
    assert_eq!(r1.token.last_used, Some(at));
    // A v1 row gets its last_used but never a digest.
    let rv1 = s.token(v1.token.id).await.unwrap().unwrap();
    assert_eq!(rv1.token.last_used, Some(at));
    assert!(
        matches!(&rv1.token.credential, StoredCredential::V1 { plaintext } if plaintext.expose() == v1_text)
    );
    assert!(s.token(gone).await.unwrap().is_none());

    // A stale re-hash to an older pepper does not undo a newer digest.
    let (p1, d1) = ring(1).hash_new(secret.expose()).unwrap();
    s.apply_touches(&[Touch { rehash: Some((p1, d1)), ..Touch::at(t1.token.id, at) }]).await.unwrap();
    assert_eq!(v2_parts(&s.token(t1.token.id).await.unwrap().unwrap()), (2, d2.to_hex(), None));
}

pub async fn rotate_token_sets_and_clears_previous<B: Backend>(b: &B) {
    let s = b.store();
    let user = s.create_user(new_user("alice")).await.unwrap();
    let rec = s.create_token(v2_token(user.id, 1).0).await.unwrap();
    let (old_pepper, old_hex, _) = v2_parts(&rec);
    let old_digest = Digest::from_hex(&old_hex).unwrap();
    let (p2, d2, _) = fresh_digest(2);
    let until = datetime!(2030-01-01 00:00:00.5 UTC);
    let previous = PreviousSecret {
        pepper_id: PepperId::new(old_pepper).unwrap(),
        digest: old_digest,
        valid_until: until,
    };
    let rotated = s.rotate_token(rec.token.id, p2, d2.clone(), Some(previous)).await.unwrap();
    assert_eq!(v2_parts(&rotated), (2, d2.to_hex(), Some((old_pepper, old_hex.clone(), until))));
    let again = s.token(rec.token.id).await.unwrap().unwrap();
    assert_eq!(v2_parts(&again), v2_parts(&rotated));
    // Same key and record, just a new secret.
    assert_eq!(again.token.id, rec.token.id);
    assert_eq!(again.created, rec.created);

    let (p3, d3, _) = fresh_digest(3);
    let cleared = s.rotate_token(rec.token.id, p3, d3.clone(), None).await.unwrap();
    assert_eq!(v2_parts(&cleared), (3, d3.to_hex(), None));

    let v1 = s.create_token(v1_token(user.id).0).await.unwrap();
    let (p, d, _) = fresh_digest(1);
    assert!(matches!(s.rotate_token(v1.token.id, p, d.clone(), None).await, Err(StoreError::NotFound)));
    assert!(matches!(
        s.token(v1.token.id).await.unwrap().unwrap().token.credential,
        StoredCredential::V1 { .. }
    ));
    assert!(matches!(s.rotate_token(999_999, p, d, None).await, Err(StoreError::NotFound)));
}

pub async fn pepper_usage_counts_current_and_overlapping_peppers<B: Backend>(b: &B) {
    let s = b.store();
    assert_eq!(s.pepper_usage().await.unwrap(), vec![]);
    let user = s.create_user(new_user("alice")).await.unwrap();
    let create = |pepper| async move { s.create_token(v2_token(user.id, pepper).0).await.unwrap().token.id };
    let a = create(1).await;
    let _b = create(1).await;
    let c = create(2).await;
    let d = create(2).await;
    let e = create(2).await;
    let g = create(3).await;
    s.create_token(v1_token(user.id).0).await.unwrap();

    let now = OffsetDateTime::now_utc();
    let prev = |pepper: u16, valid_until| PreviousSecret {
        pepper_id: PepperId::new(pepper).unwrap(),
        digest: fresh_digest(pepper).1,
        valid_until,
    };
    let rotate = |id, pepper: u16, previous| async move {
        let (p, digest, _) = fresh_digest(pepper);
        s.rotate_token(id, p, digest, Some(previous)).await.unwrap();
    };
    // d still accepts its old pepper-1 secret; e's overlap is over; g's old
    // digest uses the same pepper as its new one.
    rotate(d, 2, prev(1, now + Duration::days(1))).await;
    rotate(e, 2, prev(1, now - Duration::seconds(1))).await;
    rotate(g, 3, prev(3, now + Duration::days(1))).await;

    let t1 = datetime!(2025-01-01 00:00 UTC);
    let t2 = datetime!(2025-06-01 00:00 UTC);
    let t3 = datetime!(2025-03-01 00:00 UTC);
    let touch = Touch::at;
    s.apply_touches(&[touch(a, t1), touch(c, t3), touch(d, t2)]).await.unwrap();

    let usage = |pepper, tokens, last_used| PepperUsage {
        pepper_id: PepperId::new(pepper).unwrap(),
        tokens,
        last_used,
    };
    assert_eq!(
        s.pepper_usage().await.unwrap(),
        vec![usage(1, 3, Some(t2)), usage(2, 3, Some(t2)), usage(3, 1, None)]
    );
}

// ---- secrets and corruption -------------------------------------------------------

pub async fn no_v2_secret_reaches_storage<B: Backend>(b: &B) {
    let s = b.store();
    let user = s.create_user(new_user("alice")).await.unwrap();
    let mut secrets = Vec::new();
    let mut digests = Vec::new();
    for pepper in [1, 2, 2, 3, 3] {
        let (new, secret) = v2_token(user.id, pepper);
        let rec = s.create_token(new).await.unwrap();
        digests.push(v2_parts(&rec).1);
        secrets.push(secret.expose().to_owned());
        // Rotation: the new secret is never stored either, nor the old one.
        let (p, d, rotated_secret) = fresh_digest(pepper + 1);
        s.rotate_token(rec.token.id, p, d.clone(), None).await.unwrap();
        digests.push(d.to_hex());
        secrets.push(rotated_secret.expose().to_owned());
    }
    let (_, v1_text) = v1_token(user.id);
    s.create_token(token(user.id, StoredCredential::V1 { plaintext: V1Plaintext::parse(&v1_text).unwrap() }))
        .await
        .unwrap();

    let blobs = b.stored_bytes().await;
    assert!(!blobs.is_empty());
    let contains = |needle: &str| {
        blobs.iter().any(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
    };
    // The test sees the data: current digests and the v1 plaintext (v1's very problem) are there.
    assert!(contains(&digests[9]), "the latest digest is not in the stored bytes");
    assert!(contains(&v1_text), "the v1 plaintext is not in the stored bytes");
    for (i, secret) in secrets.iter().enumerate() {
        assert!(!contains(secret), "v2 secret #{i} found in the stored bytes");
        assert!(!contains(&secret[..20]), "half of v2 secret #{i} found in the stored bytes");
    }
}

pub async fn malformed_digest_is_corrupt_without_the_value<B: Backend>(b: &B) {
    let user = b.store().create_user(new_user("alice")).await.unwrap();
    let poison = "zzSECRETISHVALUEzz";
    raw_token(b, user.id, ("2", "'CorruptKey01'", "1", &format!("'{poison}'"), "NULL")).await.unwrap();

    let check = |err: StoreError| {
        let (debug, display) = (format!("{err:?}"), err.to_string());
        assert!(matches!(err, StoreError::Corrupt(_)), "{debug}");
        assert!(!debug.contains(poison) && !display.contains(poison), "{debug}");
        assert!(display.contains("hmac_digest"), "{display}");
    };
    check(b.store().token_by_key("CorruptKey01").await.unwrap_err());
    check(b.store().list_tokens(&TokenFilter::default(), ALL).await.unwrap_err());

    // A bad key is reported the same way, without the key's text.
    let digest = "ab".repeat(32);
    raw_token(b, user.id, ("2", "'bad key!'", "1", &format!("'{digest}'"), "NULL")).await.unwrap();
    let err = b.store().token_by_key("bad key!").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("key") && !m.contains("bad key!")),
        "{err:?}"
    );
}

pub async fn v1_uses_add_up_per_day_and_go_with_their_token<B: Backend>(b: &B) {
    let s = b.store();
    let user = s.create_user(new_user("alice")).await.unwrap();
    let t1 = s.create_token(v1_token(user.id).0).await.unwrap().token.id;
    let t2 = s.create_token(v1_token(user.id).0).await.unwrap().token.id;
    let today = OffsetDateTime::now_utc().date();
    let yesterday = today.previous_day().unwrap();
    let long_ago = today - Duration::days(i64::from(nbtoken_store::USE_DAYS_KEPT) + 100);
    let uses = |token_id, day, uses| DayUses { token_id, day, uses };
    let totals = |rows: Vec<DayUses>| rows.into_iter().map(|d| (d.day, d.uses)).collect::<Vec<_>>();

    assert_eq!(s.v1_uses_per_day(30, None).await.unwrap(), vec![]);
    s.add_v1_uses(&[
        uses(t1, today, 3),
        uses(t2, today, 2),
        uses(t1, yesterday, 4),
        uses(t1, today, 1),
        uses(t1, long_ago, 7),
        uses(t2 + 1000, today, 5), // a token deleted meanwhile: skipped
    ])
    .await
    .unwrap();
    assert_eq!(totals(s.v1_uses_per_day(30, None).await.unwrap()), [(yesterday, 4), (today, 6)]);
    assert_eq!(totals(s.v1_uses_per_day(1, None).await.unwrap()), [(today, 6)]);
    assert_eq!(s.v1_uses_per_day(0, None).await.unwrap(), vec![]);
    // Days older than the ones kept are dropped as counts are added.
    assert_eq!(totals(s.v1_uses_per_day(10_000, None).await.unwrap()), [(yesterday, 4), (today, 6)]);
    let of_t1 = s.v1_uses_per_day(30, Some(t1)).await.unwrap();
    assert_eq!(of_t1, [uses(t1, yesterday, 4), uses(t1, today, 4)]);
    assert_eq!(totals(s.v1_uses_per_day(30, Some(t2)).await.unwrap()), [(today, 2)]);

    // Later batches add to a day's count.
    s.add_v1_uses(&[uses(t2, today, 3)]).await.unwrap();
    s.add_v1_uses(&[]).await.unwrap();
    assert_eq!(totals(s.v1_uses_per_day(30, Some(t2)).await.unwrap()), [(today, 5)]);

    // A deleted token's counts go with it.
    s.delete_token(t1).await.unwrap();
    assert_eq!(totals(s.v1_uses_per_day(30, None).await.unwrap()), [(today, 5)]);
    assert_eq!(s.v1_uses_per_day(30, Some(t1)).await.unwrap(), vec![]);
}
