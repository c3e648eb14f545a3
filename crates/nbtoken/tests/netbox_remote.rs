//! Every remote command against a real NetBox 4.7 (issue 13, items 1-11), plus the
//! local cases of the same items (closed pipes, messages, URLs) that need no NetBox.
//!
//! The NetBox tests share one NetBox per test binary and take turns (a lock): each
//! starts from a NetBox without v1 tokens or replacements, and makes its own users.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};

use common::netbox::{netbox_named, NetBox};
use serde_json::{json, Value};

static LOCK: Mutex<()> = Mutex::new(());

/// This module's own NetBox (migration acts on every v1 token there), for one test at a time,
/// with no v1 tokens and no replacements left.
fn setup() -> Option<(MutexGuard<'static, ()>, &'static NetBox)> {
    let nb = netbox_named("migration")?;
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    nb.sql("DELETE FROM users_token WHERE version = 1 OR description LIKE '[replaces v1 #%'");
    Some((guard, nb))
}

/// `nbtoken` run in `dir` (no `--data-dir`: nothing local may be created), pointed at `url` with `token`.
fn remote_cmd(dir: &Path, url: &str, token: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nbtoken"));
    isolate(&mut c, dir, url, token);
    c.args(args);
    c
}

/// Only the remote's variables, in `dir`.
fn isolate(c: &mut Command, dir: &Path, url: &str, token: &str) {
    for (k, _) in std::env::vars() {
        if k.starts_with("NBTOKEN_") {
            c.env_remove(k);
        }
    }
    c.current_dir(dir)
        .env("NBTOKEN_LOG", "warn")
        .env("NBTOKEN_REMOTE_URL", url)
        .env("NBTOKEN_REMOTE_TOKEN", token);
}

/// Runs a command: (exit code, stdout, stderr).
fn exec(c: &mut Command) -> (i32, String, String) {
    let out = c.stdin(Stdio::null()).output().unwrap();
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

fn remote(dir: &Path, nb: &NetBox, token: &str, args: &[&str]) -> (i32, String, String) {
    exec(&mut remote_cmd(dir, &nb.url, token, args))
}

/// Runs a command whose standard output is closed before it writes anything.
fn with_stdout_closed(c: &mut Command) -> (i32, String) {
    let mut child = c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    (out.status.code().unwrap_or(-1), stderr)
}

/// The outcome apply or finalize reported for v1 token `id` (`v1 #ID (…): OUTCOME`).
fn outcome(report: &str, id: i64) -> String {
    let prefix = format!("v1 #{id} (");
    let line = report
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for #{id}:\n{report}"));
    line.split_once("): ").unwrap().1.to_owned()
}

/// The replacements NetBox holds for v1 token `id`.
fn replacements(nb: &NetBox, id: i64) -> Vec<i64> {
    let ids = nb.sql(&format!(
        "SELECT id FROM users_token WHERE version = 2 AND description LIKE '[replaces v1 #{id}]%' ORDER BY id"
    ));
    ids.lines().map(|l| l.trim().parse().unwrap()).collect()
}

/// Whether a token value authenticates on NetBox, and as whom.
fn whoami(nb: &NetBox, token: &str) -> Option<String> {
    let (status, body) = nb.api("GET", "/api/authentication-check/", Some(token), None);
    (status == 200).then(|| body["username"].as_str().unwrap().to_owned())
}

fn expire(nb: &NetBox, id: i64) {
    nb.sql(&format!("UPDATE users_token SET expires = now() - interval '1 day' WHERE id = {id}"));
}

fn disable(nb: &NetBox, id: i64) {
    nb.sql(&format!("UPDATE users_token SET enabled = false WHERE id = {id}"));
}

/// Creates a user through NetBox's API (superuser by SQL, which the API cannot grant); returns its id.
fn user(nb: &NetBox, name: &str, superuser: bool) -> i64 {
    let body = json!({"username": name, "password": "User-Password-0123456789"});
    let (status, body) = nb.api("POST", "/api/users/users/", Some(&nb.admin_token), Some(&body));
    assert_eq!(status, 201, "creating user {name}: {body}");
    let id = body["id"].as_i64().unwrap();
    if superuser {
        nb.sql(&format!("UPDATE users_user SET is_superuser = true WHERE id = {id}"));
    }
    id
}

/// Gives `user` object permissions on tokens through NetBox's API.
fn grant_tokens(nb: &NetBox, name: &str, user: i64, actions: &[&str]) {
    let (status, body) = nb.api(
        "POST",
        "/api/users/permissions/",
        Some(&nb.admin_token),
        Some(&json!({"name": name, "object_types": ["users.token"], "actions": actions, "users": [user]})),
    );
    assert_eq!(status, 201, "{body}");
}

// Items 1 and 6: apply goes through every v1 token; expired and disabled ones are skipped
// with their reason; the "already had one" count counts only tokens that have one.
#[test]
fn apply_goes_past_expired_and_disabled_tokens_and_migrates_the_rest() {
    let Some((_turn, nb)) = setup() else { return };
    let dir = tempfile::tempdir().unwrap();
    let alice = user(nb, "apply-alice", false);
    let bob = user(nb, "apply-bob", false);
    // The expired one first: NetBox refused it with 400 and apply stopped there, on every re-run.
    let expired = nb.create_token(alice, 1, json!({"description": "old job"}));
    expire(nb, expired.id);
    let ci = nb.create_token(alice, 1, json!({"description": "ci"}));
    let off = nb.create_token(bob, 1, json!({}));
    disable(nb, off.id);
    let fenced = nb.create_token(bob, 1, json!({"allowed_ips": ["127.0.0.0/8"], "write_enabled": false}));

    let secrets = dir.path().join("secrets.json");
    let (code, out, err) = remote(
        dir.path(),
        nb,
        &nb.admin_token,
        &["migrate", "apply", "--secrets-file", secrets.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(outcome(&err, expired.id).starts_with("skipped: expired"), "{err}");
    assert!(outcome(&err, off.id).starts_with("skipped: disabled"), "{err}");
    assert!(outcome(&err, ci.id).starts_with("created replacement #"), "{err}");
    assert!(outcome(&err, fenced.id).starts_with("created replacement #"), "{err}");
    assert!(err.contains("created 2 replacement(s)") && err.contains("0 already had one"), "{err}");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&secrets).unwrap()).unwrap();
    let written = written.as_array().unwrap();
    assert_eq!(written.len(), 2);
    for w in written {
        let user = if w["v1_id"] == ci.id { "apply-alice" } else { "apply-bob" };
        let token = w["token"].as_str().unwrap();
        // From 127.0.0.1, inside the fenced token's 127.0.0.0/8.
        assert_eq!(whoami(nb, token).as_deref(), Some(user), "{w}");
    }
    assert!(replacements(nb, expired.id).is_empty() && replacements(nb, off.id).is_empty());

    // The replacements carry what their v1 tokens had, allowed_ips as NetBox shows it.
    for v1 in [&ci, &fenced] {
        let [r] = replacements(nb, v1.id)[..] else { panic!("one replacement of #{}", v1.id) };
        let (_, old) = nb.token(v1.id);
        let (_, new) = nb.token(r);
        assert_eq!(new["write_enabled"], old["write_enabled"]);
        assert_eq!(new["user"]["id"], old["user"]["id"]);
        assert_eq!(new["allowed_ips"], old["allowed_ips"], "#{} → #{r}", v1.id);
    }

    // A re-run creates nothing; the disabled token without a replacement is not "already had one".
    let (code, out, err) = remote(dir.path(), nb, &nb.admin_token, &["migrate", "apply"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([]));
    assert!(err.contains("created 0 replacement(s); 2 already had one; 2 skipped; 0 failed"), "{err}");
}

// Items 1 and 10: a token NetBox refuses to replace (here: 403, no permission to create
// tokens for others) does not stop the tokens after it; the exit status says so at the end.
// A token that is not a superuser's is said loudly to give a partial view.
#[test]
fn apply_continues_past_refusals_and_warns_about_a_non_superuser_token() {
    let Some((_turn, nb)) = setup() else { return };
    let dir = tempfile::tempdir().unwrap();
    let carol = user(nb, "perm-carol", false);
    let dave = user(nb, "perm-dave", false);
    grant_tokens(nb, "carol may see and add tokens", carol, &["view", "add"]);
    let carol_token = nb.create_token(carol, 2, json!({})).value;
    let c1 = nb.create_token(carol, 1, json!({}));
    let d1 = nb.create_token(dave, 1, json!({}));
    let c2 = nb.create_token(carol, 1, json!({}));

    let (code, out, err) = remote(dir.path(), nb, &carol_token, &["migrate", "apply"]);
    assert_ne!(code, 0, "a refused token must fail the run: {err}");
    assert!(err.contains("WARNING") && err.contains("\"perm-carol\" is not a superuser"), "{err}");
    assert!(outcome(&err, c1.id).starts_with("created"), "{err}");
    let refused = outcome(&err, d1.id);
    assert!(refused.starts_with("FAILED") && refused.contains("403"), "{err}");
    assert!(outcome(&err, c2.id).starts_with("created"), "the token after the refused one: {err}");
    assert!(err.contains("1 failed"), "{err}");
    let secrets: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(secrets.as_array().unwrap().len(), 2, "{out}");
    for s in secrets.as_array().unwrap() {
        assert_eq!(whoami(nb, s["token"].as_str().unwrap()).as_deref(), Some("perm-carol"));
    }

    // A user without any permission: NetBox answers an empty list, which looks like
    // "nothing to migrate" while v1 tokens remain. Said loudly.
    let eve = user(nb, "perm-eve", false);
    let eve_token = nb.create_token(eve, 2, json!({})).value;
    for cmd in [&["migrate", "plan"][..], &["migrate", "finalize"], &["audit"]] {
        let (_, out, err) = remote(dir.path(), nb, &eve_token, cmd);
        assert!(err.contains("WARNING: \"perm-eve\" is not a superuser"), "{cmd:?}: {out}{err}");
        assert!(err.contains("MISSING"), "{cmd:?}: {err}");
    }
}

// Item 2: no secret is created before its destination is open and checked.
#[test]
fn apply_opens_the_secrets_destination_before_creating_anything() {
    let Some((_turn, nb)) = setup() else { return };
    let dir = tempfile::tempdir().unwrap();
    let gina = user(nb, "secrets-gina", false);
    let first = nb.create_token(gina, 1, json!({}));

    let missing = dir.path().join("no-such-dir/secrets.json");
    let (code, _, err) = remote(
        dir.path(),
        nb,
        &nb.admin_token,
        &["migrate", "apply", "--secrets-file", missing.to_str().unwrap()],
    );
    assert_ne!(code, 0);
    assert!(err.contains("does not exist") && err.contains("nothing was created"), "{err}");
    assert!(
        replacements(nb, first.id).is_empty(),
        "a replacement was created without a place for its secret"
    );

    // Standard output closed: nothing is created either.
    let (code, err) =
        with_stdout_closed(&mut remote_cmd(dir.path(), &nb.url, &nb.admin_token, &["migrate", "apply"]));
    assert_ne!(code, 0);
    assert!(err.contains("nothing was created"), "{err}");
    assert!(replacements(nb, first.id).is_empty());
}

// Item 2: each secret is written (and synced) as it is created; when the file stops taking
// them, the one created is printed instead and nothing more is created. No secret is lost.
#[test]
fn apply_prints_the_secret_it_could_not_write_and_stops_creating() {
    let Some((_turn, nb)) = setup() else { return };
    let dir = tempfile::tempdir().unwrap();
    let hank = user(nb, "secrets-hank", false);
    let v1: Vec<i64> = (0..12).map(|_| nb.create_token(hank, 1, json!({})).id).collect();
    let secrets = dir.path().join("secrets.json");
    // A real write failure: a 1 KiB file size limit (bash counts `ulimit -f` in KiB), with
    // SIGXFSZ ignored so the write fails with EFBIG instead of killing the process.
    let mut bash = Command::new("bash");
    isolate(&mut bash, dir.path(), &nb.url, &nb.admin_token);
    bash.args(["-c", r#"trap '' XFSZ; ulimit -f 1; exec "$0" "$@""#, env!("CARGO_BIN_EXE_nbtoken")]).args([
        "migrate",
        "apply",
        "--secrets-file",
        secrets.to_str().unwrap(),
    ]);
    let (code, out, err) = exec(&mut bash);
    assert_ne!(code, 0, "{err}");
    let in_file: Value = serde_json::from_str(&std::fs::read_to_string(&secrets).unwrap())
        .unwrap_or_else(|e| panic!("the secrets file must stay valid JSON: {e}"));
    let in_file = in_file.as_array().unwrap().clone();
    let printed: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let printed = printed.as_array().unwrap().clone();
    assert!(!in_file.is_empty() && in_file.len() < 11, "{} in the file", in_file.len());
    assert_eq!(printed.len(), 1, "{out}");
    assert!(err.contains("could not be written"), "{err}");
    let not_attempted = v1.iter().filter(|id| outcome(&err, **id).starts_with("not attempted")).count();
    assert_eq!(in_file.len() + printed.len() + not_attempted, 12, "{err}");
    for s in in_file.iter().chain(&printed) {
        assert_eq!(whoami(nb, s["token"].as_str().unwrap()).as_deref(), Some("secrets-hank"), "{s}");
    }
    // The rest is created by a re-run; every v1 token ends with exactly one replacement.
    let more = dir.path().join("more.json");
    let (code, _, err) = remote(
        dir.path(),
        nb,
        &nb.admin_token,
        &["migrate", "apply", "--secrets-file", more.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let more: Value = serde_json::from_str(&std::fs::read_to_string(&more).unwrap()).unwrap();
    assert_eq!(more.as_array().unwrap().len(), not_attempted);
    assert!(v1.iter().all(|id| replacements(nb, *id).len() == 1));
}

// Item 3: finalize run with the v1 token it retires acts on that token last, with a warning.
#[test]
fn finalize_with_its_own_v1_token_revokes_that_token_last() {
    let Some((_turn, nb)) = setup() else { return };
    let dir = tempfile::tempdir().unwrap();
    let frank = user(nb, "final-frank", true);
    let ivy = user(nb, "final-ivy", false);
    // Frank's own credential has the lowest id: finalize used to disable it first.
    let own = nb.create_token(frank, 1, json!({}));
    let other = nb.create_token(frank, 1, json!({}));
    let ivys = nb.create_token(ivy, 1, json!({}));
    let (code, out, err) = remote(dir.path(), nb, &nb.admin_token, &["migrate", "apply"]);
    assert_eq!(code, 0, "{err}");
    // Every integration switches: each replacement is used once.
    for s in serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap() {
        assert!(whoami(nb, s["token"].as_str().unwrap()).is_some());
    }
    let (code, out, err) = remote(dir.path(), nb, &own.value, &["migrate", "finalize", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains(&format!("WARNING: v1 #{}", own.id)) && err.contains("last"), "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let actions: BTreeMap<i64, String> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["action"].as_str().unwrap().to_owned()))
        .collect();
    for t in [&own, &other, &ivys] {
        assert_eq!(actions[&t.id], "disabled", "{report}");
        assert_eq!(nb.token(t.id).1["enabled"], false);
    }
    assert!(whoami(nb, &own.value).is_none());
}

// Item 4: an IP-restricted token that exists is live, and the restriction is named.
#[test]
fn scan_verify_reports_an_ip_restricted_token_as_live() {
    let Some((_turn, nb)) = setup() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sam = user(nb, "scan-sam", false);
    let fenced = nb.create_token(sam, 2, json!({"allowed_ips": ["10.0.0.0/8"]}));
    let open = nb.create_token(sam, 2, json!({}));
    let revoked = nb.create_token(sam, 2, json!({}));
    disable(nb, revoked.id);
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(
        src.join("deploy.env"),
        format!(
            "NETBOX_TOKEN_A={}\nNETBOX_TOKEN_B={}\nNETBOX_TOKEN_C={}\n",
            fenced.value, open.value, revoked.value
        ),
    )
    .unwrap();
    let mut c =
        remote_cmd(dir.path(), &nb.url, "", &["scan", "src", "--format", "json", "--verify", &nb.url]);
    let (code, out, err) = exec(&mut c);
    assert_eq!(code, 1, "findings: {err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let live_of = |t: &common::netbox::Created| {
        let key4 = &t.json["key"].as_str().unwrap()[..4];
        let f = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["match"].as_str().unwrap().contains(key4))
            .unwrap_or_else(|| panic!("{key4} not found: {report}"));
        (f["live"].clone(), f.get("live_restriction").cloned().unwrap_or(Value::Null))
    };
    assert_eq!(live_of(&fenced), (json!(true), json!("allowed_ips")), "{out}");
    assert_eq!(live_of(&open), (json!(true), Value::Null));
    assert_eq!(live_of(&revoked), (json!(false), Value::Null));
    let mut c = remote_cmd(dir.path(), &nb.url, "", &["scan", "src", "--verify", &nb.url]);
    let (_, text, _) = exec(&mut c);
    assert!(text.contains("live: true, the token exists but is restricted to its allowed IPs"), "{text}");
}

// Item 5: audit has a remote mode; no command creates ./nbtoken-data when pointed at a remote.
#[test]
fn audit_doctor_and_migrate_against_netbox_create_nothing_local() {
    let Some((_turn, nb)) = setup() else { return };
    let dir = tempfile::tempdir().unwrap();
    let una = user(nb, "audit-una", false);
    let v1 = nb.create_token(una, 1, json!({}));
    let (code, out, err) = remote(dir.path(), nb, &nb.admin_token, &["audit", "--fail-on", "v1", "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("audit failed on: v1"), "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["findings"]["v1"], json!([v1.id]), "{report}");
    for args in [&["migrate", "plan"][..], &["migrate", "apply"], &["migrate", "finalize"], &["doctor"]] {
        let mut c = remote_cmd(dir.path(), &nb.url, &nb.admin_token, args);
        if args == ["doctor"] {
            c.args(["--url", &nb.url]);
        }
        exec(&mut c);
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "remote commands created {left:?}");
}

// Items 8 and 9: doctor --url checks the remote only: reachability, version, the token,
// the v1 tokens left and whether the token sees every token; each message said once.
#[test]
fn doctor_url_checks_the_remote_only() {
    let Some((_turn, nb)) = setup() else { return };
    let dir = tempfile::tempdir().unwrap();
    let vera = user(nb, "doctor-vera", false);
    for _ in 0..3 {
        nb.create_token(vera, 1, json!({}));
    }
    let (code, out, err) = remote(dir.path(), nb, &nb.admin_token, &["doctor", "--url", &nb.url]);
    assert_eq!(code, 0, "{out}{err}");
    for want in [
        "API-Version 4.7",
        "NetBox 4.7.3",
        "authenticates as \"nbadmin\"",
        "3 enabled v1 token(s)",
        "sees every user's tokens",
    ] {
        assert!(out.contains(want), "{want:?} missing:\n{out}");
    }
    for local in ["pepper", "database", "data directory", "v1 policy"] {
        assert!(!out.contains(local), "local check {local:?} with --url:\n{out}");
    }
    let vera_token = nb.create_token(vera, 2, json!({})).value;
    let (_, out, _) = remote(dir.path(), nb, &vera_token, &["doctor", "--url", &nb.url]);
    assert!(out.contains("\"doctor-vera\" is not a superuser"), "{out}");

    let (code, out, err) = remote(dir.path(), nb, "garbage", &["doctor", "--url", &nb.url]);
    assert_ne!(code, 0);
    let all = format!("{out}{err}");
    assert_eq!(all.matches("malformed API token").count(), 1, "{all}");
    assert!(!all.contains("give --token"), "{all}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "doctor --url created local files");
}

// Item 7: no command panics on a closed pipe (`| head -1`), against NetBox and locally.
#[test]
fn closed_stdout_ends_commands_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pepper = ("NBTOKEN_PEPPER_1", "pepper-one-0123456789-0123456789-0123456789-0123456789");
    let (ok, _, err) = common::run(common::nbtoken(d).args(["user", "create", "pipe"]), None);
    assert!(ok, "{err}");
    for _ in 0..3 {
        let mut c = common::nbtoken(d);
        c.env(pepper.0, pepper.1).env("NBTOKEN_V1", "allow");
        let (ok, _, err) = common::run(c.args(["token", "create", "--user", "pipe", "--version", "1"]), None);
        assert!(ok, "{err}");
    }
    for args in [
        &["migrate", "plan"][..],
        &["migrate", "plan", "--json"],
        &["token", "list"],
        &["user", "list", "--json"],
        &["audit"],
        &["doctor"],
        &["pepper", "status"],
        &["scan", "."],
        &["completions", "bash"],
        &["--help"],
    ] {
        let mut c = common::nbtoken(d);
        c.env(pepper.0, pepper.1);
        let (code, err) = with_stdout_closed(c.args(args));
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(code, 101, "{args:?}: {err}");
    }
    // A secret that cannot be shown is an error that says what to do, not silence.
    let mut c = common::nbtoken(d);
    c.env(pepper.0, pepper.1);
    let (code, err) = with_stdout_closed(c.args(["token", "create", "--user", "pipe"]));
    assert_ne!(code, 0);
    assert!(err.contains("could not be printed: delete it"), "{err}");

    let Some((_turn, nb)) = setup() else { return };
    let wes = user(nb, "pipe-wes", false);
    for _ in 0..3 {
        nb.create_token(wes, 1, json!({}));
    }
    for args in [&["migrate", "plan"][..], &["migrate", "plan", "--json"], &["audit"]] {
        let (code, err) = with_stdout_closed(&mut remote_cmd(d, &nb.url, &nb.admin_token, args));
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

// Item 8: an error is said once, and never contradicted.
#[test]
fn a_malformed_remote_token_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there, and nothing is sent: the token is refused first.
    for args in [&["migrate", "plan"][..], &["audit"], &["doctor", "--url", "http://127.0.0.1:9"]] {
        let (code, out, err) = exec(&mut remote_cmd(dir.path(), "http://127.0.0.1:9", "garbage", args));
        assert_ne!(code, 0, "{args:?}");
        let all = format!("{out}{err}");
        assert_eq!(all.matches("malformed API token").count(), 1, "{args:?}: {all}");
        // No sentence twice (`…: X: X`).
        let parts: Vec<&str> = err.trim().split(": ").collect();
        for (i, p) in parts.iter().enumerate() {
            assert!(!parts[i + 1..].contains(p), "{args:?} repeats {p:?}: {err}");
        }
        assert!(!all.contains("give --token"), "{all}");
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

// Item 11: `token import --json` prints URLs with the configured listen address, or none.
#[test]
fn token_import_json_urls_name_the_configured_address_or_no_host() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pepper = ("NBTOKEN_PEPPER_1", "pepper-one-0123456789-0123456789-0123456789-0123456789");
    assert!(common::run(common::nbtoken(d).args(["user", "create", "imp"]), None).0);
    let value = |i: u8| format!("nbt_importkey{i:03}.{}", "s".repeat(37) + &format!("{i:03}"));
    let mut c = common::nbtoken(d);
    c.env(pepper.0, pepper.1).env("NBTOKEN_BIND", "127.0.0.1:9999");
    let (ok, out, err) = common::run(c.args(["token", "import", "--user", "imp", "--json"]), Some(&value(1)));
    assert!(ok, "{err}");
    let t: Value = serde_json::from_str(&out).unwrap();
    assert!(t["url"].as_str().unwrap().starts_with("http://127.0.0.1:9999/api/users/tokens/"), "{t}");
    let mut c = common::nbtoken(d);
    c.env(pepper.0, pepper.1);
    let (ok, out, err) = common::run(c.args(["token", "import", "--user", "imp", "--json"]), Some(&value(2)));
    assert!(ok, "{err}");
    let t: Value = serde_json::from_str(&out).unwrap();
    assert!(t["url"].as_str().unwrap().starts_with("/api/users/tokens/"), "not a guessed host: {t}");
}

/// `curl -i`: (status, headers lower-cased, JSON body).
fn curl_i(args: &[&str]) -> (u16, String, Value) {
    let out = Command::new("curl").args(["-s", "-i"]).args(args).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), serde_json::from_str(body).unwrap_or(Value::Null))
}

// NetBox 4.7: the REST `token` field is read-only (a client's value is ignored), and the
// API version is 4.7 — on nbtoken as on NetBox itself.
#[test]
fn rest_token_field_is_ignored_and_the_api_version_is_4_7() {
    let dir = tempfile::tempdir().unwrap();
    let served = common::serve(dir.path());
    let admin = served.first_start.as_ref().map(|f| f.token.clone()).unwrap_or_else(|| {
        let line = served.stdout_lines.iter().find(|l| l.trim_start().starts_with("token:")).unwrap();
        line.split_whitespace().last().unwrap().to_owned()
    });
    let mut servers = vec![(format!("http://{}", served.addr), admin)];
    let guard = setup();
    if let Some((_, nb)) = &guard {
        servers.push((nb.url.clone(), nb.admin_token.clone()));
    }
    let chosen = "Chosen0123456789Chosen0123456789Chosen01";
    for (url, admin) in servers {
        let auth = format!("Authorization: Bearer {admin}");
        let (status, head, me) = curl_i(&["-H", &auth, &format!("{url}/api/authentication-check/")]);
        assert_eq!(status, 200, "{url}: {me}");
        assert!(head.contains("api-version: 4.7\r\n"), "{url}: {head}");
        let (_, _, st) = curl_i(&["-H", &auth, &format!("{url}/api/status/")]);
        assert_eq!(st["netbox-version"], "4.7.3", "{url}: {st}");
        for version in [1, 2] {
            let body = json!({"user": me["id"], "version": version, "token": chosen}).to_string();
            let (status, _, t) = curl_i(&[
                "-X",
                "POST",
                "-H",
                &auth,
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body,
                &format!("{url}/api/users/tokens/"),
            ]);
            assert_eq!(status, 201, "{url} v{version}: {t}");
            let secret = t["token"].as_str().unwrap();
            assert_eq!(secret.len(), 40, "{url}: {t}");
            assert_ne!(secret, chosen, "{url} v{version} stored the client's value");
        }
    }
}

/// `nbtoken` on the local data directory of `dir` with `env`; the parsed `--json` output.
fn local_json(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Value {
    let mut c = common::nbtoken(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    let (ok, out, err) = common::run(c.args(args), None);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

// Items 1, 3, 5, 6 and 9 against a running nbtoken, the other server the remote commands serve.
#[test]
fn remote_commands_against_nbtoken_serve() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = [
        ("NBTOKEN_PEPPER_1", "pepper-one-0123456789-0123456789-0123456789-0123456789"),
        ("NBTOKEN_V1", "allow"),
    ];
    let served = common::serve_with(d, &env);
    let admin = served.first_start.as_ref().map(|f| f.token.clone()).unwrap_or_else(|| {
        let line = served.stdout_lines.iter().find(|l| l.trim_start().starts_with("token:")).unwrap();
        line.split_whitespace().last().unwrap().to_owned()
    });
    let url = format!("http://{}", served.addr);
    local_json(d, &env, &["user", "create", "frank", "--superuser", "--json"]);
    local_json(d, &env, &["user", "create", "alice", "--json"]);
    let v1 = |user: &str, extra: &[&str]| {
        let mut args = vec!["token", "create", "--user", user, "--version", "1", "--json"];
        args.extend(extra);
        let t = local_json(d, &env, &args);
        (t["id"].as_i64().unwrap(), t["token"].as_str().unwrap().to_owned())
    };
    let (own, own_value) = v1("frank", &[]);
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let soon = soon.format(&time::format_description::well_known::Rfc3339).unwrap();
    let (expired, _) = v1("alice", &["--expires", &soon]);
    let (off, _) = v1("alice", &[]);
    assert!(common::run(common::nbtoken(d).args(["token", "disable", &off.to_string()]), None).0);
    let (ci, _) = v1("alice", &[]);
    std::thread::sleep(std::time::Duration::from_millis(2500));

    let work = tempfile::tempdir().unwrap();
    let (code, out, err) = exec(&mut remote_cmd(work.path(), &url, &admin, &["migrate", "apply"]));
    assert_eq!(code, 0, "{err}");
    assert!(outcome(&err, expired).starts_with("skipped: expired"), "{err}");
    assert!(outcome(&err, off).starts_with("skipped: disabled"), "{err}");
    assert!(outcome(&err, ci).starts_with("created") && outcome(&err, own).starts_with("created"), "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    for c in created.as_array().unwrap() {
        let (status, _) = common::curl(&[
            "-H",
            &format!("Authorization: Bearer {}", c["token"].as_str().unwrap()),
            &format!("{url}/api/status/"),
        ]);
        assert_eq!(status, 200);
    }
    let (code, _, err) = exec(&mut remote_cmd(work.path(), &url, &admin, &["migrate", "apply"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 already had one; 2 skipped"), "{err}");
    std::thread::sleep(std::time::Duration::from_millis(1500)); // last_used is written in the background

    // finalize with frank's own v1 token: everything else first, his token last.
    let (code, out, err) = exec(&mut remote_cmd(work.path(), &url, &own_value, &["migrate", "finalize"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains(&format!("WARNING: v1 #{own}")), "{err}");
    assert_eq!(outcome(&out, own), "disabled", "{out}");
    assert_eq!(outcome(&out, ci), "disabled", "{out}");

    let (code, _, err) =
        exec(&mut remote_cmd(work.path(), &url, &admin, &["audit", "--fail-on", "v1,expired"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("audit failed on: expired"), "only the expired v1 token is left enabled: {err}");
    let (code, out, err) = exec(&mut remote_cmd(work.path(), &url, &admin, &["doctor", "--url", &url]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("API-Version 4.7") && out.contains("sees every user's tokens"), "{out}");
    assert!(!out.contains("pepper"), "{out}");
    assert!(std::fs::read_dir(work.path()).unwrap().next().is_none(), "remote commands created local files");
}

// The whole path an operator walks, against the real NetBox: plan lists the v1 tokens, apply
// replaces them, finalize waits for a replacement to be used, disables the v1 token whose
// replacement was seen and leaves the other; `finalize --delete` deletes once the last is used.
#[test]
fn plan_apply_finalize_and_finalize_delete_walk_the_whole_migration() {
    let Some((_turn, nb)) = setup() else { return };
    let dir = tempfile::tempdir().unwrap();
    let walt = user(nb, "flow-walt", false);
    let used = nb.create_token(walt, 1, json!({"description": "cron"}));
    let idle = nb.create_token(walt, 1, json!({"description": "backup"}));

    let (code, out, err) = remote(dir.path(), nb, &nb.admin_token, &["migrate", "plan", "--json"]);
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    let planned: Vec<i64> = plan.as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert!(planned.contains(&used.id) && planned.contains(&idle.id), "{plan}");

    let (code, out, err) = remote(dir.path(), nb, &nb.admin_token, &["migrate", "apply"]);
    assert_eq!(code, 0, "{err}");
    let secrets: Value = serde_json::from_str(&out).unwrap();
    let secret_of = |v1: i64| {
        secrets.as_array().unwrap().iter().find(|s| s["v1_id"] == v1).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Re-running creates nothing twice.
    let (code, _, err) = remote(dir.path(), nb, &nb.admin_token, &["migrate", "apply"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("created 0 replacement(s)") && err.contains("2 already had one"), "{err}");
    assert_eq!(replacements(nb, used.id).len(), 1);

    // Only the cron job switched to its new token.
    assert_eq!(whoami(nb, &secret_of(used.id)).as_deref(), Some("flow-walt"));
    let (code, _, err) = remote(dir.path(), nb, &nb.admin_token, &["migrate", "finalize"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(nb.token(used.id).1["enabled"], false, "the v1 token whose replacement was used is disabled");
    assert_eq!(nb.token(idle.id).1["enabled"], true, "the one whose replacement is unused is left alone");
    assert!(whoami(nb, &used.value).is_none() && whoami(nb, &idle.value).is_some());

    // The backup job switches too; --delete removes both v1 tokens from NetBox.
    assert!(whoami(nb, &secret_of(idle.id)).is_some());
    let (code, _, err) = remote(dir.path(), nb, &nb.admin_token, &["migrate", "finalize", "--delete"]);
    assert_eq!(code, 0, "{err}");
    for v1 in [&used, &idle] {
        assert_eq!(nb.token(v1.id).0, 404, "v1 #{} is deleted", v1.id);
    }
    assert!(whoami(nb, &secret_of(used.id)).is_some() && whoami(nb, &secret_of(idle.id)).is_some());
}
