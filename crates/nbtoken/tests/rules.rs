//! Every rule of the operations layer answers the same through both front ends: the same
//! action through the CLI (as the operator, on the database) and through the API (as the
//! first-start superuser) is accepted or refused alike, in the same words.

use std::path::Path;

use serde_json::{json, Value};

use crate::common::{curl, nbtoken, run, serve_with, Served};

const PEPPER: &str = "rules-pepper-0123456789-0123456789-0123456789-0123456789";

/// A running server and the CLI on its database.
struct Both {
    dir: tempfile::TempDir,
    env: Vec<(&'static str, &'static str)>,
    served: Served,
    admin: String,
}

impl Both {
    /// Serves with a pepper, no token cache (CLI writes reach the server at once) and `extra`.
    fn start(extra: &[(&'static str, &'static str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![("NBTOKEN_PEPPER_1", PEPPER), ("NBTOKEN_CACHE_TTL", "0")];
        env.extend_from_slice(extra);
        let served = serve_with(dir.path(), &env);
        let admin = format!("Bearer {}", served.first_start.as_ref().unwrap().token);
        Both { dir, env, served, admin }
    }

    fn d(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `nbtoken ARGS` on the server's database: success, stdout, stderr.
    fn cli(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut c = nbtoken(self.d());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        run(c.args(args), stdin)
    }

    /// Like [`Self::cli`], for a command that must succeed and print JSON.
    fn cli_json(&self, args: &[&str]) -> Value {
        let (ok, out, err) = self.cli(args, None);
        assert!(ok, "{args:?}: {err}");
        serde_json::from_str(&out).unwrap()
    }

    /// Calls the API as `auth`: status and JSON body (`null` when there is none).
    fn call(&self, auth: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("http://{}{path}", self.served.addr);
        let auth = format!("Authorization: {auth}");
        let mut args = vec!["-X", method, "-H", &auth, "-H", "Content-Type: application/json"];
        let body = body.map(|b| b.to_string());
        if let Some(b) = &body {
            args.extend(["--data-binary", b.as_str()]);
        }
        args.push(&url);
        let (status, text) = curl(&args);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Calls the API as the first-start superuser.
    fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(&self.admin, method, path, body)
    }

    /// Whether `auth` authenticates (`/api/status/` answers 200).
    fn works(&self, auth: &str) -> bool {
        self.call(auth, "GET", "/api/status/", None).0 == 200
    }
}

/// The `Authorization` value of a creation answer (v2: `nbt_<key>.<secret>`).
fn bearer(created: &Value) -> String {
    format!("Bearer nbt_{}.{}", created["key"].as_str().unwrap(), created["token"].as_str().unwrap())
}

/// The messages of one field of a 400 answer, joined.
fn messages(body: &Value, field: &str) -> String {
    body[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_superuser_may_grant_tokens_by_default() {
    let b = Both::start(&[]);
    let cli = b.cli_json(&["user", "create", "su-cli", "--superuser", "--json"]);
    let (st, api) =
        b.api("POST", "/api/users/users/", Some(json!({"username": "su-api", "is_superuser": true})));
    assert_eq!(st, 201, "{api}");
    assert_eq!(cli["can_grant_tokens"], true);
    assert_eq!(api["can_grant_tokens"], true);
    // A plain user may not, unless told so.
    let cli = b.cli_json(&["user", "create", "plain-cli", "--json"]);
    let (_, api) = b.api("POST", "/api/users/users/", Some(json!({"username": "plain-api"})));
    assert_eq!(
        (cli["can_grant_tokens"].clone(), api["can_grant_tokens"].clone()),
        (json!(false), json!(false))
    );
}

#[test]
fn a_weak_password_is_refused_in_the_same_words() {
    let b = Both::start(&[]);
    let words = "Password must have at least one uppercase letter.";
    let (ok, _, err) = b.cli(&["user", "create", "weak", "--password-stdin"], Some("abcdefghijk1\n"));
    assert!(!ok && err.contains(words), "{err}");
    let (st, body) =
        b.api("POST", "/api/users/users/", Some(json!({"username": "weak", "password": "abcdefghijk1"})));
    assert_eq!(st, 400);
    assert_eq!(messages(&body, "__all__"), words);
    // Neither created the user.
    assert_eq!(b.api("GET", "/api/users/users/?username=weak", None).1["count"], 0);
}

#[test]
fn a_bad_username_is_refused_in_the_same_words() {
    let b = Both::start(&[]);
    let words = "Enter a valid username.";
    let (ok, _, err) = b.cli(&["user", "create", "bad name"], None);
    assert!(!ok && err.contains(words), "{err}");
    let (st, body) = b.api("POST", "/api/users/users/", Some(json!({"username": "bad name"})));
    assert_eq!(st, 400);
    assert!(messages(&body, "username").contains(words), "{body}");
}

#[test]
fn v1_tokens_cannot_be_created_under_the_deny_policy() {
    let b = Both::start(&[("NBTOKEN_V1", "deny")]);
    let words = "Creating v1 tokens is disabled on this server";
    let (ok, _, err) = b.cli(&["token", "create", "--user", "admin", "--version", "1"], None);
    assert!(!ok && err.contains(words), "{err}");
    let (st, body) = b.api("POST", "/api/users/tokens/", Some(json!({"version": 1})));
    assert_eq!(st, 400);
    assert!(messages(&body, "version").contains(words), "{body}");
}

#[test]
fn a_description_over_200_characters_is_refused() {
    let b = Both::start(&[]);
    let words = "Ensure this field has no more than 200 characters";
    let long = "d".repeat(201);
    let (ok, _, err) = b.cli(&["token", "create", "--user", "admin", "--description", &long], None);
    assert!(!ok && err.contains(words), "{err}");
    let (st, body) = b.api("POST", "/api/users/tokens/", Some(json!({"description": long})));
    assert_eq!(st, 400);
    assert!(messages(&body, "description").contains(words), "{body}");
    // 200 is fine on both.
    let ok200 = "d".repeat(200);
    assert!(b.cli(&["token", "create", "--user", "admin", "--description", &ok200], None).0);
    assert_eq!(b.api("POST", "/api/users/tokens/", Some(json!({"description": ok200}))).0, 201);
}

#[test]
fn an_expiry_in_the_past_is_refused() {
    let b = Both::start(&[]);
    let words = "Expiration time must be in the future.";
    let past = "2001-01-01T00:00:00Z";
    let (ok, _, err) = b.cli(&["token", "create", "--user", "admin", "--expires", past], None);
    assert!(!ok && err.contains(words), "{err}");
    let (st, body) = b.api("POST", "/api/users/tokens/", Some(json!({"expires": past})));
    assert_eq!(st, 400);
    assert!(messages(&body, "expires").contains(words), "{body}");
}

/// A user made through the CLI and one made through the API, each with a working token.
fn two_users_with_tokens(b: &Both) -> [(i64, String); 2] {
    let cli = b.cli_json(&["user", "create", "via-cli", "--json"]);
    let cli_token = b.cli_json(&["token", "create", "--user", "via-cli", "--json"]);
    let (_, api) = b.api("POST", "/api/users/users/", Some(json!({"username": "via-api"})));
    let (st, api_token) = b.api("POST", "/api/users/tokens/", Some(json!({"user": api["id"]})));
    assert_eq!(st, 201, "{api_token}");
    let both = [
        (cli["id"].as_i64().unwrap(), bearer(&cli_token)),
        (api["id"].as_i64().unwrap(), bearer(&api_token)),
    ];
    for (_, t) in &both {
        assert!(b.works(t));
    }
    both
}

#[test]
fn deleting_a_user_deletes_their_tokens() {
    let b = Both::start(&[]);
    let [(_, by_cli), (api_id, by_api)] = two_users_with_tokens(&b);
    assert!(b.cli(&["user", "delete", "via-cli"], None).0);
    assert_eq!(b.api("DELETE", &format!("/api/users/users/{api_id}/"), None).0, 204);
    for t in [by_cli, by_api] {
        assert!(!b.works(&t));
    }
    // Their rows are gone: only the admin's first token is left.
    let (_, list) = b.api("GET", "/api/users/tokens/", None);
    assert_eq!(list["count"], 1, "{list}");
    // Nobody deletes their own account, but the operator has none.
    let (st, body) = b.api("DELETE", "/api/users/users/1/", None);
    assert_eq!(st, 400, "{body}");
}

#[test]
fn a_disabled_users_tokens_stop_working() {
    let b = Both::start(&[]);
    let [(_, by_cli), (api_id, by_api)] = two_users_with_tokens(&b);
    assert!(b.cli(&["user", "disable", "via-cli"], None).0);
    let (st, body) =
        b.api("PATCH", &format!("/api/users/users/{api_id}/"), Some(json!({"is_active": false})));
    assert_eq!(st, 200, "{body}");
    assert!(!b.works(&by_cli) && !b.works(&by_api));
    assert!(b.cli(&["user", "enable", "via-cli"], None).0);
    assert!(b.works(&by_cli));
}
