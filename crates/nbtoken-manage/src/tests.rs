//! The rules of the operations, for each kind of actor, against an in-memory SQLite store.

#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use nbtoken_core::{PepperId, PepperRing, SecretString, TokenVersion, V1Policy};
use nbtoken_store::{
    NewUser, Page, SqliteStore, Store, TokenFilter, TokenPatch, User, UserFilter, UserPatch,
};
use time::{Duration, OffsetDateTime};

use crate::signin::tests::{account, world, Plain};
use crate::{
    AccountChanges, Actor, Announce, Credentials, Error, Forbidden, NewAccount, Ops, TokenChanges, TokenSpec,
    UserRef,
};

/// Every announcement, in order.
#[derive(Default)]
struct Heard(Mutex<Vec<String>>);

impl Announce for Heard {
    fn token_changed(&self, id: i64) {
        self.0.lock().unwrap().push(format!("token {id}"));
    }

    fn user_changed(&self, id: i64) {
        self.0.lock().unwrap().push(format!("user {id}"));
    }
}

struct World {
    store: SqliteStore,
    peppers: PepperRing,
    heard: Heard,
    v1_policy: V1Policy,
}

impl World {
    async fn new() -> Self {
        let (store, peppers) = world().await;
        World { store, peppers, heard: Heard::default(), v1_policy: V1Policy::Allow }
    }

    fn ops(&self) -> Ops<'_, SqliteStore, Plain> {
        Ops {
            store: &self.store,
            peppers: &self.peppers,
            v1_policy: self.v1_policy,
            passwords: &Plain,
            announce: &self.heard,
        }
    }

    async fn user(&self, name: &str, superuser: bool, grant: bool) -> User {
        let new = NewUser { is_superuser: superuser, can_grant_tokens: grant, ..account(name) };
        self.store.create_user(new).await.unwrap()
    }

    /// An active user who is neither a superuser nor may grant tokens.
    async fn plain(&self, name: &str) -> User {
        self.user(name, false, false).await
    }

    async fn token_of(&self, owner: &User) -> i64 {
        self.ops().create_token(&Actor::Operator, owner, TokenSpec::default()).await.unwrap().record.token.id
    }
}

const ALL: Page = Page { limit: 1000, offset: 0 };

fn field(e: Error) -> String {
    match e {
        Error::Invalid(i) => i.entries().iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>().join(","),
        other => panic!("not a field error: {other:?}"),
    }
}

#[tokio::test]
async fn others_tokens_do_not_exist_for_a_plain_user() {
    let w = World::new().await;
    let (alice, bob, root) =
        (w.plain("alice").await, w.plain("bob").await, w.user("root", true, false).await);
    let (a, b) = (w.token_of(&alice).await, w.token_of(&bob).await);
    let ops = w.ops();
    let as_alice = Actor::User(alice.clone());
    assert!(ops.token(&as_alice, a).await.is_ok());
    assert!(matches!(ops.token(&as_alice, b).await, Err(Error::NotFound("Token"))));
    assert!(matches!(ops.delete_token(&as_alice, b).await, Err(Error::NotFound("Token"))));
    let current = ops.token(&Actor::Operator, b).await.unwrap();
    assert!(matches!(
        ops.update_token(&as_alice, &current, TokenChanges::default()).await,
        Err(Error::NotFound("Token"))
    ));
    for who in [Actor::User(root), Actor::Operator] {
        assert!(ops.token(&who, b).await.is_ok());
        assert_eq!(ops.tokens(&who, TokenFilter::default(), ALL).await.unwrap().0, 2);
    }
    // A listing shows only one's own; asking for another's gives an empty page.
    let (n, rows) = ops.tokens(&as_alice, TokenFilter::default(), ALL).await.unwrap();
    assert_eq!((n, rows[0].token.id), (1, a));
    let theirs = TokenFilter { user_ids: vec![bob.id], ..Default::default() };
    assert_eq!(ops.tokens(&as_alice, theirs, ALL).await.unwrap().0, 0);
}

#[tokio::test]
async fn tokens_for_others_need_can_grant_tokens() {
    let w = World::new().await;
    let (alice, bob, grace) =
        (w.plain("alice").await, w.plain("bob").await, w.user("grace", false, true).await);
    let ops = w.ops();
    let bob_ref = UserRef::Name("bob".into());
    let refused = ops.owner(&Actor::User(alice.clone()), Some(&bob_ref)).await;
    assert!(matches!(refused, Err(Error::Forbidden(Forbidden::TokensForOthers))));
    let refused = ops.create_token(&Actor::User(alice.clone()), &bob, TokenSpec::default()).await;
    assert!(matches!(refused, Err(Error::Forbidden(Forbidden::TokensForOthers))));
    assert_eq!(ops.owner(&Actor::User(grace.clone()), Some(&bob_ref)).await.unwrap().id, bob.id);
    assert_eq!(ops.owner(&Actor::User(alice.clone()), None).await.unwrap().id, alice.id);
    assert_eq!(field(ops.owner(&Actor::Operator, None).await.unwrap_err()), "user");
    assert_eq!(field(ops.owner(&Actor::Operator, Some(&UserRef::Nobody)).await.unwrap_err()), "user");
    assert_eq!(
        field(ops.owner(&Actor::Operator, Some(&UserRef::Name("x\0".into()))).await.unwrap_err()),
        "user"
    );
}

#[tokio::test]
async fn issuing_rules_name_their_field() {
    let mut w = World::new().await;
    w.v1_policy = V1Policy::Deny;
    let alice = w.plain("alice").await;
    let ops = w.ops();
    let me = Actor::User(alice.clone());
    let v1 = TokenSpec { version: TokenVersion::V1, ..Default::default() };
    assert_eq!(field(ops.create_token(&me, &alice, v1).await.unwrap_err()), "version");
    let long = TokenSpec { description: "x".repeat(201), ..Default::default() };
    assert_eq!(field(ops.create_token(&me, &alice, long).await.unwrap_err()), "description");
    let past =
        TokenSpec { expires: Some(OffsetDateTime::now_utc() - Duration::hours(1)), ..Default::default() };
    assert_eq!(field(ops.create_token(&me, &alice, past).await.unwrap_err()), "expires");
    let unknown = TokenSpec { pepper_id: Some(PepperId::new(9).unwrap()), ..Default::default() };
    assert_eq!(field(ops.create_token(&me, &alice, unknown).await.unwrap_err()), "pepper_id");
    assert!(w.heard.0.lock().unwrap().is_empty(), "a refusal announced a change");
}

#[tokio::test]
async fn a_token_keeps_its_owner_version_and_pepper() {
    let w = World::new().await;
    let alice = w.user("alice", false, true).await;
    let id = w.token_of(&alice).await;
    let ops = w.ops();
    let me = Actor::User(alice.clone());
    let current = ops.token(&me, id).await.unwrap();
    let v1 = TokenChanges { version: Some(1), ..Default::default() };
    assert_eq!(field(ops.update_token(&me, &current, v1).await.unwrap_err()), "version");
    let other_pepper = TokenChanges { pepper_id: Some(2), ..Default::default() };
    assert_eq!(field(ops.update_token(&me, &current, other_pepper).await.unwrap_err()), "pepper_id");
    // Its own version and pepper may be sent back; an owner sent is ignored.
    let fields = TokenPatch { enabled: Some(false), user_id: Some(9), ..Default::default() };
    let same = TokenChanges { fields, version: Some(2), pepper_id: Some(1) };
    let changed = ops.update_token(&me, &current, same).await.unwrap();
    assert!(!changed.token.enabled && changed.token.user_id == alice.id);
}

#[tokio::test]
async fn every_write_announces_itself_once() {
    let w = World::new().await;
    let alice = w.plain("alice").await;
    let ops = w.ops();
    let id = w.token_of(&alice).await;
    ops.set_token_enabled(&Actor::Operator, id, false).await.unwrap();
    ops.rotate_token(&Actor::Operator, id, Duration::ZERO).await.unwrap();
    ops.delete_token(&Actor::Operator, id).await.unwrap();
    let bob = ops
        .create_user(&Actor::Operator, NewAccount { username: "bob".into(), ..Default::default() })
        .await
        .unwrap();
    ops.update_user(
        &Actor::Operator,
        &bob,
        AccountChanges { fields: UserPatch { is_active: Some(false), ..Default::default() }, password: None },
    )
    .await
    .unwrap();
    ops.delete_user(&Actor::Operator, bob.id).await.unwrap();
    let heard = w.heard.0.lock().unwrap().clone();
    let t = format!("token {id}");
    let u = format!("user {}", bob.id);
    assert_eq!(heard, [&t, &t, &t, &t, &u, &u, &u].map(String::clone));
}

#[tokio::test]
async fn only_superusers_manage_users() {
    let w = World::new().await;
    let (alice, root) = (w.user("alice", false, true).await, w.user("root", true, false).await);
    let ops = w.ops();
    let plain = Actor::User(alice.clone());
    let new = || NewAccount { username: "carol".into(), ..Default::default() };
    assert!(matches!(ops.create_user(&plain, new()).await, Err(Error::Forbidden(Forbidden::Permission))));
    assert!(matches!(
        ops.user_to_change(&plain, alice.id).await,
        Err(Error::Forbidden(Forbidden::Permission))
    ));
    assert!(matches!(ops.delete_user(&plain, root.id).await, Err(Error::Forbidden(Forbidden::Permission))));
    // Seeing: oneself only, and others are a 404.
    assert!(ops.user(&plain, alice.id).await.is_ok());
    assert!(matches!(ops.user(&plain, root.id).await, Err(Error::NotFound("User"))));
    assert_eq!(ops.users(&plain, UserFilter::default(), ALL).await.unwrap().0, 1);
    let su = Actor::User(root.clone());
    assert_eq!(ops.users(&su, UserFilter::default(), ALL).await.unwrap().0, 2);
    assert!(ops.create_user(&su, new()).await.is_ok());
    assert!(matches!(ops.delete_user(&su, root.id).await, Err(Error::Refused(_))), "deleted itself");
    assert!(matches!(ops.delete_user(&su, 9999).await, Err(Error::NotFound("User"))));
}

#[tokio::test]
async fn a_superuser_may_grant_tokens_unless_told_otherwise() {
    let w = World::new().await;
    let ops = w.ops();
    let make = |name: &str, su: bool, grant: Option<bool>| NewAccount {
        username: name.into(),
        is_superuser: su,
        can_grant_tokens: grant,
        ..Default::default()
    };
    assert!(ops.create_user(&Actor::Operator, make("a", true, None)).await.unwrap().can_grant_tokens);
    assert!(!ops.create_user(&Actor::Operator, make("b", false, None)).await.unwrap().can_grant_tokens);
    assert!(!ops.create_user(&Actor::Operator, make("c", true, Some(false))).await.unwrap().can_grant_tokens);
    assert!(ops.create_user(&Actor::Operator, make("d", false, Some(true))).await.unwrap().can_grant_tokens);
}

#[tokio::test]
async fn usernames_and_passwords_follow_netbox() {
    let w = World::new().await;
    let ops = w.ops();
    let with = |name: &str, pw: Option<&str>| NewAccount {
        username: name.into(),
        password: pw.map(SecretString::from),
        ..Default::default()
    };
    assert_eq!(
        field(ops.create_user(&Actor::Operator, with("bad name", None)).await.unwrap_err()),
        "username"
    );
    assert_eq!(
        field(ops.create_user(&Actor::Operator, with("ok", Some("  "))).await.unwrap_err()),
        "password"
    );
    let weak = ops.create_user(&Actor::Operator, with("ok", Some("abc"))).await.unwrap_err();
    assert_eq!(weak.to_string(), "This password is too short. It must contain at least 12 characters. Password must have at least one numeral.");
    let u = ops.create_user(&Actor::Operator, with("ok", Some("Correct-horse-1"))).await.unwrap();
    assert_eq!(field(ops.create_user(&Actor::Operator, with("ok", None)).await.unwrap_err()), "username");
    let weak = ops.set_password(&Actor::Operator, &u, SecretString::from("abcdefghijk1")).await.unwrap_err();
    assert_eq!(field(weak), "__all__");
}

#[tokio::test]
async fn deleting_a_user_deletes_their_tokens() {
    let w = World::new().await;
    let alice = w.plain("alice").await;
    let id = w.token_of(&alice).await;
    w.ops().delete_user(&Actor::Operator, alice.id).await.unwrap();
    assert!(w.store.token(id).await.unwrap().is_none());
}

#[tokio::test]
async fn provisioning_needs_an_active_user_and_their_password() {
    let w = World::new().await;
    let alice = w.plain("alice").await;
    let ops = w.ops();
    let ask = |name: &str, pw: &str| Credentials { username: name.into(), password: SecretString::from(pw) };
    for (name, pw) in [("alice", "wrong"), ("nobody", "Correct-horse-1"), ("al\0ice", "Correct-horse-1")] {
        let refused = ops.check_credentials(ask(name, pw)).await;
        assert!(matches!(refused, Err(Error::Forbidden(Forbidden::BadCredentials))));
    }
    let verified = ops.check_credentials(ask("alice", "Correct-horse-1")).await.unwrap();
    let v1 = TokenSpec { version: TokenVersion::V1, ..Default::default() };
    let made = ops.provision(verified, v1).await.unwrap();
    assert_eq!(made.record.token.version(), TokenVersion::V2, "provisioned tokens are always v2");
    assert!(w.store.user(alice.id).await.unwrap().unwrap().last_login.is_some());
    let fields = UserPatch { is_active: Some(false), ..Default::default() };
    ops.update_user(&Actor::Operator, &alice, AccountChanges { fields, password: None }).await.unwrap();
    let refused = ops.check_credentials(ask("alice", "Correct-horse-1")).await;
    assert!(matches!(refused, Err(Error::Forbidden(Forbidden::BadCredentials))));
}
