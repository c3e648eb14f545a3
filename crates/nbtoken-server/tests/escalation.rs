//! Privilege escalation through PATCH and PUT: every writable (and read-only) field of the token
//! and user endpoints, sent by an owner, by a user who may grant tokens and by a superuser, for a
//! change the API must not make. Each case checks the answer *and* that the object is unchanged.
//!
//! The regression this was written for: `PATCH /api/users/tokens/{id}/ {"user": N}` moved a
//! token to another owner, so a user with grant ability moved her own token to a superuser and
//! then acted as that superuser. NetBox makes `user` read-only on update (4.7.3,
//! `users/api/serializers_/tokens.py`, `TokenSerializer.get_fields`): the value is ignored.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::harness;

on_every_backend!(token_changes_that_must_not_happen, user_changes_that_must_not_happen);

use harness::{Backend, Server, TestToken};
use reqwest::Method;
use serde_json::{json, Value};

/// Who sends the request.
#[derive(Clone, Copy, Debug)]
enum Actor {
    /// `olive`: a plain user.
    Owner,
    /// `olive`'s read-only token.
    OwnerReadOnly,
    /// `grace`: may create tokens for others (`can_grant_tokens`).
    Granter,
    /// `admin`: a superuser.
    Superuser,
}

/// Whose object the request is about.
#[derive(Clone, Copy, Debug)]
enum Target {
    Olive,
    Grace,
    Admin,
}

struct World {
    s: Server,
    olive_id: i64,
    grace_id: i64,
    admin_id: i64,
    olive: TestToken,
    olive_ro: TestToken,
    grace: TestToken,
}

impl World {
    async fn new(b: Backend) -> World {
        let s = Server::start(b).await;
        let (_, olive) = s
            .admin(
                Method::POST,
                "/api/users/users/",
                Some(json!({"username": "olive", "password": "Olive-Password-123"})),
            )
            .await;
        let (_, grace) = s
            .admin(
                Method::POST,
                "/api/users/users/",
                Some(json!({"username": "grace", "can_grant_tokens": true})),
            )
            .await;
        let (olive_id, grace_id) = (olive["id"].as_i64().unwrap(), grace["id"].as_i64().unwrap());
        let (_, me) = s.admin(Method::GET, "/api/users/users/?username=admin", None).await;
        let admin_id = me["results"][0]["id"].as_i64().unwrap();
        let olive_t = s.create_token(json!({"user": olive_id, "description": "olive's"})).await;
        let olive_ro =
            s.create_token(json!({"user": olive_id, "write_enabled": false, "description": "ro"})).await;
        let grace_t = s.create_token(json!({"user": grace_id, "description": "grace's"})).await;
        World { s, olive_id, grace_id, admin_id, olive: olive_t, olive_ro, grace: grace_t }
    }

    fn auth(&self, a: Actor) -> Vec<u8> {
        match a {
            Actor::Owner => self.olive.bearer(),
            Actor::OwnerReadOnly => self.olive_ro.bearer(),
            Actor::Granter => self.grace.bearer(),
            Actor::Superuser => self.s.admin_bearer().into_bytes(),
        }
    }

    fn user_id(&self, t: Target) -> i64 {
        match t {
            Target::Olive => self.olive_id,
            Target::Grace => self.grace_id,
            Target::Admin => self.admin_id,
        }
    }

    fn token(&self, t: Target) -> &TestToken {
        match t {
            Target::Olive => &self.olive,
            Target::Grace => &self.grace,
            Target::Admin => panic!("no admin token in these cases"),
        }
    }

    /// What must not change about a token: everything but `last_used` (and its address), which use moves.
    async fn token_state(&self, id: i64) -> Value {
        let (st, mut v) = self.s.admin(Method::GET, &format!("/api/users/tokens/{id}/"), None).await;
        assert_eq!(st, 200, "{v}");
        v.as_object_mut().unwrap().remove("last_used");
        v.as_object_mut().unwrap().remove("last_used_ip");
        v
    }

    async fn user_state(&self, id: i64) -> Value {
        let (st, v) = self.s.admin(Method::GET, &format!("/api/users/users/{id}/"), None).await;
        assert_eq!(st, 200, "{v}");
        v
    }

    /// The user a token authenticates as (the only user a plain user can list is herself).
    async fn whoami(&self, t: &TestToken) -> (u16, Value) {
        let (st, v) = self.s.raw(Method::GET, "/api/users/users/", Some(&t.bearer()), None, &[]).await;
        (st, v["results"][0]["username"].clone())
    }
}

/// A PUT carries the whole object: the current representation with the hostile field laid over it.
fn put_body(current: &Value, change: &Value) -> Value {
    let mut body = current.clone();
    let m = body.as_object_mut().unwrap();
    for k in ["url", "display_url", "display"] {
        m.remove(k);
    }
    for (k, v) in change.as_object().unwrap() {
        m.insert(k.clone(), v.clone());
    }
    body
}

async fn token_changes_that_must_not_happen(b: Backend) {
    let w = World::new(b).await;
    let (olive, grace, admin) = (w.olive_id, w.grace_id, w.admin_id);
    use Actor::*;
    use Target::{Grace as GraceT, Olive as OliveT};
    // (who, whose token, body, status). Every row is a change the API must not make.
    let cases: Vec<(Actor, Target, Value, u16)> = vec![
        // The escalation: `user` is read-only on update and ignored, whoever sends it, in any form.
        (Granter, GraceT, json!({"user": admin}), 200),
        (Owner, OliveT, json!({"user": admin}), 200),
        (Granter, GraceT, json!({"user": {"id": admin}}), 200),
        (Granter, GraceT, json!({"user": {"username": "admin"}}), 200),
        (Granter, GraceT, json!({"user": admin.to_string()}), 200),
        (Granter, GraceT, json!({"user": olive}), 200),
        (Superuser, OliveT, json!({"user": grace}), 200),
        (Superuser, GraceT, json!({"user": admin}), 200),
        // Not even validated, as DRF skips read-only fields.
        (Granter, GraceT, json!({"user": 999_999}), 200),
        (Granter, GraceT, json!({"user": [1, 2]}), 200),
        // Read-only fields are ignored.
        (Owner, OliveT, json!({"id": 1}), 200),
        (Owner, OliveT, json!({"key": "AAAAAAAAAAAA"}), 200),
        (Owner, OliveT, json!({"created": "2001-01-01T00:00:00Z"}), 200),
        (Superuser, GraceT, json!({"key": "AAAAAAAAAAAA", "id": 1}), 200),
        // The secret is read-only (ignored); the pepper and the version are fixed (refused).
        // Rotation is the way to a new secret.
        (Owner, OliveT, json!({"token": "A".repeat(40)}), 200),
        (Superuser, OliveT, json!({"token": "A".repeat(40)}), 200),
        (Granter, GraceT, json!({"token": "A".repeat(40), "user": admin}), 200),
        (Owner, OliveT, json!({"pepper_id": 2}), 400),
        (Superuser, GraceT, json!({"pepper_id": 0}), 400),
        (Owner, OliveT, json!({"version": 1}), 400),
        (Superuser, GraceT, json!({"version": 1}), 400),
        // Bad values change nothing.
        (Owner, OliveT, json!({"description": "x".repeat(201)}), 400),
        (Owner, OliveT, json!({"expires": "soon", "description": "changed"}), 400),
        (Owner, OliveT, json!({"allowed_ips": ["10.0.0.0/99"], "description": "changed"}), 400),
        (Owner, OliveT, json!({"enabled": "perhaps", "description": "changed"}), 400),
        (Owner, OliveT, json!({"write_enabled": 7, "description": "changed"}), 400),
        // Another user's token: not visible, so not changeable, to a plain user or a granter.
        (Owner, GraceT, json!({"description": "mine now"}), 404),
        (Owner, GraceT, json!({"enabled": false}), 404),
        (Granter, OliveT, json!({"description": "mine now"}), 404),
        (Granter, OliveT, json!({"write_enabled": false}), 404),
        (Granter, OliveT, json!({"allowed_ips": ["192.0.2.1"]}), 404),
        (Granter, OliveT, json!({"expires": "2099-01-01T00:00:00Z"}), 404),
        (Granter, OliveT, json!({"enabled": false}), 404),
        // A read-only token cannot write, not even to make itself (or another) writable.
        (OwnerReadOnly, OliveT, json!({"write_enabled": true}), 403),
        (OwnerReadOnly, OliveT, json!({"description": "changed"}), 403),
    ];
    for (actor, target, change, status) in cases {
        for method in [Method::PATCH, Method::PUT] {
            let t = w.token(target);
            let path = format!("/api/users/tokens/{}/", t.id);
            let before = w.token_state(t.id).await;
            let body = if method == Method::PUT { put_body(&before, &change) } else { change.clone() };
            let (st, resp) = w.s.raw(method.clone(), &path, Some(&w.auth(actor)), Some(body), &[]).await;
            let what = format!("{actor:?} {method} {target:?}'s token with {change}: {resp}");
            assert_eq!(st, status, "{what}");
            assert_eq!(w.token_state(t.id).await, before, "changed by {what}");
            if st == 200 {
                // The answer shows the owner the token still has.
                assert_eq!(resp["user"]["id"], before["user"]["id"], "{what}");
            }
        }
    }
    // Every token still authenticates as its own owner, with its own secret.
    assert_eq!(w.whoami(&w.olive).await, (200, json!("olive")));
    assert_eq!(w.whoami(&w.grace).await, (200, json!("grace")));
    // And grace's token has gained nothing: managing users is still refused.
    let (st, _) =
        w.s.raw(
            Method::POST,
            "/api/users/users/",
            Some(&w.grace.bearer()),
            Some(json!({"username": "eve"})),
            &[],
        )
        .await;
    assert_eq!(st, 403);
    let sent = format!("Bearer nbt_{}.{}", w.olive.key, "A".repeat(40));
    let (st, _) = w.s.raw(Method::GET, "/api/users/users/", Some(sent.as_bytes()), None, &[]).await;
    assert_eq!(st, 403, "a secret sent in a PATCH became the token's secret");
    // Controls: the same endpoint does make the changes it should, so the comparison above can see one.
    let path = format!("/api/users/tokens/{}/", w.olive.id);
    let before = w.token_state(w.olive.id).await;
    let (st, _) =
        w.s.raw(Method::PATCH, &path, Some(&w.olive.bearer()), Some(json!({"description": "renamed"})), &[])
            .await;
    assert_eq!(st, 200);
    assert_ne!(w.token_state(w.olive.id).await, before);
    // A PUT of the object as a GET shows it (its own pepper id included) is accepted.
    let current = w.token_state(w.olive.id).await;
    let (st, resp) =
        w.s.raw(Method::PUT, &path, Some(&w.olive.bearer()), Some(put_body(&current, &json!({}))), &[]).await;
    assert_eq!(st, 200, "{resp}");
    assert_eq!(w.token_state(w.olive.id).await, current);
}

async fn user_changes_that_must_not_happen(b: Backend) {
    let w = World::new(b).await;
    use Actor::*;
    use Target::{Admin as AdminT, Grace as GraceT, Olive as OliveT};
    let every_field = [
        json!({"username": "renamed"}),
        json!({"password": "New-Password-1234"}),
        json!({"first_name": "Eve"}),
        json!({"last_name": "Eve"}),
        json!({"email": "eve@example.com"}),
        json!({"is_active": false}),
        json!({"is_superuser": true}),
        json!({"can_grant_tokens": true}),
    ];
    let mut cases: Vec<(Actor, Target, Value, u16)> = Vec::new();
    // Only superusers manage users: not the user herself, not a granter, for any field.
    for change in &every_field {
        cases.push((Owner, OliveT, change.clone(), 403));
        cases.push((Owner, AdminT, change.clone(), 403));
        cases.push((Granter, GraceT, change.clone(), 403));
        cases.push((Granter, OliveT, change.clone(), 403));
        cases.push((Granter, AdminT, change.clone(), 403));
        cases.push((OwnerReadOnly, OliveT, change.clone(), 403));
    }
    // A superuser: read-only fields are ignored, bad values are refused, and nothing changes.
    for (change, status) in [
        (json!({"id": 1}), 200),
        (json!({"date_joined": "2001-01-01T00:00:00Z"}), 200),
        (json!({"last_login": "2001-01-01T00:00:00Z"}), 200),
        (json!({"groups": [1], "permissions": [1], "is_staff": true}), 200),
        (json!({"username": "admin"}), 400),
        (json!({"username": "not valid!"}), 400),
        (json!({"username": ""}), 400),
        (json!({"username": "x".repeat(151)}), 400),
        (json!({"password": "short"}), 400),
        (json!({"is_superuser": "perhaps"}), 400),
        (json!({"can_grant_tokens": 3}), 400),
        (json!({"is_active": null}), 400),
        (json!({"email": "e".repeat(255)}), 400),
        (json!({"first_name": "a\u{0}b"}), 400),
        (json!({"is_superuser": true, "username": "not valid!"}), 400),
    ] {
        cases.push((Superuser, OliveT, change, status));
    }
    for (actor, target, change, status) in cases {
        for method in [Method::PATCH, Method::PUT] {
            let id = w.user_id(target);
            let path = format!("/api/users/users/{id}/");
            let before = w.user_state(id).await;
            let (st, resp) =
                w.s.raw(method.clone(), &path, Some(&w.auth(actor)), Some(change.clone()), &[]).await;
            let what = format!("{actor:?} {method} {target:?} with {change}: {resp}");
            assert_eq!(st, status, "{what}");
            assert_eq!(w.user_state(id).await, before, "changed by {what}");
        }
    }
    // The password did not change either (it is not shown): olive's old one still provisions.
    let (st, _) = w.s.provision(json!({"username": "olive", "password": "Olive-Password-123"})).await;
    assert_eq!(st, 201);
    // Control: a superuser's change is made.
    let before = w.user_state(w.olive_id).await;
    let path = format!("/api/users/users/{}/", w.olive_id);
    let (st, _) = w.s.admin(Method::PATCH, &path, Some(json!({"first_name": "Olive"}))).await;
    assert_eq!(st, 200);
    assert_ne!(w.user_state(w.olive_id).await, before);
}
