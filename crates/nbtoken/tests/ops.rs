//! Getting off v1 and rotating what protects tokens, end to end through the real binary and `serve`.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{curl, nbtoken, run, serve_with};
use serde_json::Value;

const P1: &str = "pepper-one-0123456789-0123456789-0123456789-0123456789";
const P2: &str = "pepper-two-0123456789-0123456789-0123456789-0123456789";
/// The environment of a setup with one pepper.
const ONE_PEPPER: [(&str, &str); 1] = [("NBTOKEN_PEPPER_1", P1)];

fn with(dir: &Path, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut c: Command = nbtoken(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    run(c.args(args), stdin)
}

fn ok_json(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Value {
    let (ok, out, err) = with(dir, env, args, None);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// Creates the user `svc` and a v2 token of it: the token's JSON.
fn svc_token(dir: &Path, env: &[(&str, &str)]) -> Value {
    assert!(with(dir, env, &["user", "create", "svc"], None).0);
    ok_json(dir, env, &["token", "create", "--user", "svc", "--json"])
}

fn get(addr: &str, auth: &str, path: &str) -> u16 {
    curl(&["-H", &format!("Authorization: {auth}"), &format!("http://{addr}{path}")]).0
}

#[test]
fn full_local_migration_plan_apply_use_finalize() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = [("NBTOKEN_PEPPER_1", P1), ("NBTOKEN_V1", "allow")];
    for name in ["alice", "bob"] {
        assert!(with(d, &env, &["user", "create", name], None).0);
    }
    let mut v1 = Vec::new();
    for (user, extra) in
        [("alice", vec!["--read-only"]), ("alice", vec!["--allowed-ip", "127.0.0.0/8"]), ("bob", vec![])]
    {
        let mut args =
            vec!["token", "create", "--user", user, "--version", "1", "--description", "legacy", "--json"];
        args.extend(extra);
        let t = ok_json(d, &env, &args);
        v1.push((t["id"].as_i64().unwrap(), t["token"].as_str().unwrap().to_owned()));
    }

    let plan = ok_json(d, &env, &["migrate", "plan", "--json"]);
    assert_eq!(plan.as_array().unwrap().len(), 3);
    assert!(plan.as_array().unwrap().iter().all(|i| i["replacement_id"].is_null()));
    assert!(plan.as_array().unwrap().iter().all(|i| i["last_used_ip"].is_null()));
    assert!(!plan.to_string().contains(&v1[0].1), "plan leaks a v1 plaintext");

    let secrets = d.join("secrets.json");
    let (ok, _, err) =
        with(d, &env, &["migrate", "apply", "--secrets-file", secrets.to_str().unwrap()], None);
    assert!(ok, "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o077, 0);
    }
    let created: Value = serde_json::from_str(&std::fs::read_to_string(&secrets).unwrap()).unwrap();
    let created = created.as_array().unwrap().clone();
    assert_eq!(created.len(), 3);

    // Re-running creates nothing new and refuses to overwrite the secrets file.
    let again = ok_json(d, &env, &["migrate", "apply"]);
    assert_eq!(again.as_array().unwrap().len(), 0);
    let (ok, _, err) =
        with(d, &env, &["migrate", "apply", "--secrets-file", secrets.to_str().unwrap()], None);
    assert!(!ok && err.contains("exists"), "{err}");

    // Replacements keep the owner, write flag and allowed IPs.
    let plan = ok_json(d, &env, &["migrate", "plan", "--json"]);
    for item in plan.as_array().unwrap() {
        let rid = item["replacement_id"].as_i64().expect("replacement recorded");
        let r = ok_json(d, &env, &["token", "show", &rid.to_string(), "--json"]);
        assert_eq!(r["user"]["username"], item["user"]);
        assert_eq!(r["write_enabled"], item["write_enabled"]);
        assert_eq!(
            r["allowed_ips"].as_array().map(|a| a.len()).unwrap_or(0),
            // `null` for no restriction, as NetBox shows it.
            item["allowed_ips"].as_array().map(|a| a.len()).unwrap_or(0)
        );
        assert!(r["description"].as_str().unwrap().starts_with(&format!("[replaces v1 #{}]", item["id"])));
    }

    // alice's two integrations switch; bob's does not.
    let served = serve_with(d, &env);
    for c in created.iter().filter(|c| c["user"] == "alice") {
        assert_eq!(
            get(&served.addr, &format!("Bearer {}", c["token"].as_str().unwrap()), "/api/status/"),
            200
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(1500)); // last_used is written in the background
    let report = ok_json(d, &env, &["migrate", "finalize", "--json"]);
    let actions: Vec<(&str, &str)> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["user"].as_str().unwrap(), r["action"].as_str().unwrap()))
        .collect();
    assert_eq!(actions.iter().filter(|(u, a)| *u == "alice" && *a == "disabled").count(), 2, "{actions:?}");
    assert!(actions.iter().any(|(u, a)| *u == "bob" && a.starts_with("waiting")), "{actions:?}");

    // The revoked v1 tokens stop working; bob's still works until his integration switches.
    assert_eq!(get(&served.addr, &format!("Token {}", v1[0].1), "/api/status/"), 403);
    assert_eq!(get(&served.addr, &format!("Token {}", v1[2].1), "/api/status/"), 200);
    // The plan shows where bob's v1 token is still used from (written in the background).
    let bob_v1 = v1[2].0;
    let from = |plan: &Value| {
        plan.as_array().unwrap().iter().find(|i| i["id"] == bob_v1).unwrap()["last_used_ip"].clone()
    };
    let mut seen = Value::Null;
    for _ in 0..25 {
        seen = from(&ok_json(d, &env, &["migrate", "plan", "--json"]));
        if !seen.is_null() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(seen, "127.0.0.1");
    let (ok, table, err) = with(d, &env, &["migrate", "plan"], None);
    assert!(ok && table.contains("last used from") && table.contains("127.0.0.1"), "{table}{err}");
    let audit = with(d, &env, &["audit", "--fail-on", "v1"], None);
    assert!(!audit.0, "audit must fail while a v1 token is enabled");
    assert!(audit.2.contains("v1"), "{}", audit.2);
}

#[test]
fn pepper_rotation_keeps_every_token_valid() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let one = [("NBTOKEN_PEPPER_1", P1)];
    let both = [("NBTOKEN_PEPPER_1", P1), ("NBTOKEN_PEPPER_2", P2)];
    let only_two = [("NBTOKEN_PEPPER_2", P2)];
    assert!(with(d, &one, &["user", "create", "svc"], None).0);
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let t = ok_json(d, &one, &["token", "create", "--user", "svc", "--json"]);
        assert_eq!(t["pepper_id"], 1);
        tokens.push((
            t["id"].as_i64().unwrap(),
            format!("Bearer nbt_{}.{}", t["key"].as_str().unwrap(), t["token"].as_str().unwrap()),
        ));
    }
    // Add pepper 2: everything still works, and use moves tokens onto it.
    {
        let served = serve_with(d, &both);
        for (_, h) in &tokens[..2] {
            assert_eq!(get(&served.addr, h, "/api/status/"), 200);
        }
        std::thread::sleep(std::time::Duration::from_millis(1500));
    }
    let status = ok_json(d, &both, &["pepper", "status", "--json"]);
    let count = |id: u64| {
        status.as_array().unwrap().iter().find(|r| r["pepper_id"] == id).unwrap()["tokens"].as_u64().unwrap()
    };
    assert_eq!((count(1), count(2)), (1, 2), "{status}");
    // Retiring pepper 1 is refused while a token depends on it, then disables exactly that one.
    let (ok, _, err) = with(d, &both, &["pepper", "retire", "1"], None);
    assert!(!ok && err.contains("1 token(s) still depend on pepper 1"), "{err}");
    let (ok, out, err) = with(d, &both, &["pepper", "retire", "1", "--disable-tokens"], None);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("disabled token {}", tokens[2].0)), "{out}");
    // With only pepper 2 left, the re-hashed tokens work.
    let served = serve_with(d, &only_two);
    for (_, h) in &tokens[..2] {
        assert_eq!(get(&served.addr, h, "/api/status/"), 200);
    }
    assert_eq!(get(&served.addr, &tokens[2].1, "/api/status/"), 403);
}

#[test]
fn rotate_with_and_without_overlap_and_import() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = svc_token(d, &ONE_PEPPER);
    let id = t["id"].as_i64().unwrap().to_string();
    let key = t["key"].as_str().unwrap().to_owned();
    let old = format!("Bearer nbt_{key}.{}", t["token"].as_str().unwrap());

    let r = ok_json(d, &ONE_PEPPER, &["token", "rotate", &id, "--overlap", "1h", "--json"]);
    assert_eq!(r["key"], key.as_str());
    let new = format!("Bearer nbt_{key}.{}", r["token"].as_str().unwrap());
    assert_ne!(new, old);
    assert!(r["previous_valid_until"].is_string());
    {
        let served = serve_with(d, &ONE_PEPPER);
        assert_eq!(get(&served.addr, &old, "/api/status/"), 200);
        assert_eq!(get(&served.addr, &new, "/api/status/"), 200);
    }
    let r2 = ok_json(d, &ONE_PEPPER, &["token", "rotate", &id, "--json"]);
    let newest = format!("Bearer nbt_{key}.{}", r2["token"].as_str().unwrap());
    let (ok, _, err) = with(d, &ONE_PEPPER, &["token", "rotate", &id, "--overlap", "soon"], None);
    assert!(!ok && err.contains("invalid duration"), "{err}");

    // Import a known value (from the NetBox vectors) as a v2 token.
    let vector = "nbt_eOxiaUBB7417.wTbg8d65KYLMH3bHQ9zULCrxTXiNiug1jIm63wnU";
    let (ok, out, err) = with(d, &ONE_PEPPER, &["token", "import", "--user", "svc", "--json"], Some(vector));
    assert!(ok, "{err}");
    let imported: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(imported["key"], "eOxiaUBB7417");
    let (ok, _, err) = with(d, &ONE_PEPPER, &["token", "import", "--user", "svc"], Some(vector));
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = with(d, &ONE_PEPPER, &["token", "import", "--user", "svc"], Some("nbt_short.secret"));
    assert!(!ok && !err.contains("secret\n") && err.contains("12 characters"), "{err}");

    let served = serve_with(d, &ONE_PEPPER);
    assert_eq!(
        get(&served.addr, &old, "/api/status/"),
        403,
        "old secret must die with a rotation without overlap"
    );
    assert_eq!(get(&served.addr, &new, "/api/status/"), 403);
    assert_eq!(get(&served.addr, &newest, "/api/status/"), 200);
    assert_eq!(get(&served.addr, &format!("Bearer {vector}"), "/api/status/"), 200);
}

#[test]
fn audit_reports_and_fails_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    svc_token(d, &ONE_PEPPER);
    ok_json(
        d,
        &ONE_PEPPER,
        &[
            "token",
            "create",
            "--user",
            "svc",
            "--expires",
            "2099-01-01T00:00:00Z",
            "--allowed-ip",
            "10.0.0.0/8",
            "--json",
        ],
    );
    let report = ok_json(d, &ONE_PEPPER, &["audit", "--json"]);
    assert_eq!(report["tokens"], 2);
    assert_eq!(report["findings"]["never-used"].as_array().unwrap().len(), 2);
    assert_eq!(report["findings"]["no-expiry"].as_array().unwrap().len(), 1);
    assert_eq!(report["findings"]["v1"].as_array().unwrap().len(), 0);
    assert_eq!(report["per_pepper"]["1"], 2);
    assert!(with(d, &ONE_PEPPER, &["audit", "--fail-on", "v1,disabled"], None).0);
    let (ok, _, err) = with(d, &ONE_PEPPER, &["audit", "--fail-on", "no-expiry"], None);
    assert!(!ok && err.contains("no-expiry"), "{err}");
    let (ok, _, err) = with(d, &ONE_PEPPER, &["audit", "--fail-on", "bogus"], None);
    assert!(!ok && err.contains("unknown --fail-on"), "{err}");
}

#[test]
fn doctor_flags_missing_peppers_and_passes_a_good_setup() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, out, _) = with(d, &[], &["doctor"], None);
    assert!(!ok, "no peppers must fail the doctor");
    assert!(out.contains("peppers") && out.contains("FAIL"), "{out}");
    let (ok, out, err) = with(d, &[("NBTOKEN_PEPPER_1", P1), ("NBTOKEN_V1", "deny")], &["doctor"], None);
    assert!(ok, "{out}{err}");
    assert!(out.contains("configured ids 1"), "{out}");
    assert!(!out.contains(P1), "doctor printed a pepper");
}

#[test]
fn remote_migration_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let served = serve_with(d, &ONE_PEPPER);
    let admin = served.first_start.as_ref().unwrap().token.clone();
    let url = format!("http://{}", served.addr);
    assert!(with(d, &ONE_PEPPER, &["user", "create", "carol"], None).0);
    let mut v1 = Vec::new();
    for _ in 0..3 {
        let t = ok_json(d, &ONE_PEPPER, &["token", "create", "--user", "carol", "--version", "1", "--json"]);
        v1.push(t["token"].as_str().unwrap().to_owned());
    }
    let remote = ["--url", url.as_str(), "--token", admin.as_str()];
    let cmd =
        |sub: &[&str]| -> Vec<String> { sub.iter().chain(remote.iter()).map(|s| s.to_string()).collect() };

    // One v1 token is in use: the remote plan shows from where (nbtoken's extra field).
    assert_eq!(get(&served.addr, &format!("Token {}", v1[0]), "/api/status/"), 200);
    let plan_args = cmd(&["migrate", "plan", "--json"]);
    let plan_args: Vec<&str> = plan_args.iter().map(String::as_str).collect();
    let mut plan = Value::Null;
    for _ in 0..25 {
        plan = ok_json(d, &[], &plan_args);
        if plan.as_array().unwrap().iter().any(|i| !i["last_used_ip"].is_null()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(plan.as_array().unwrap().len(), 3);
    let from: Vec<&Value> = plan.as_array().unwrap().iter().map(|i| &i["last_used_ip"]).collect();
    assert_eq!(from.iter().filter(|ip| **ip == "127.0.0.1").count(), 1, "{plan}");
    assert_eq!(from.iter().filter(|ip| ip.is_null()).count(), 2, "{plan}");
    let applied = ok_json(d, &[], &cmd(&["migrate", "apply"]).iter().map(String::as_str).collect::<Vec<_>>());
    let applied = applied.as_array().unwrap().clone();
    assert_eq!(applied.len(), 3);
    let again = ok_json(d, &[], &cmd(&["migrate", "apply"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(again.as_array().unwrap().len(), 0, "re-running must not duplicate replacements");

    // One integration switches.
    assert_eq!(
        get(&served.addr, &format!("Bearer {}", applied[0]["token"].as_str().unwrap()), "/api/status/"),
        200
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let report = ok_json(
        d,
        &[],
        &cmd(&["migrate", "finalize", "--json"]).iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let actions: Vec<&str> =
        report.as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "disabled").count(), 1, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| a.starts_with("waiting")).count(), 2, "{actions:?}");
    let revoked = report.as_array().unwrap().iter().find(|r| r["action"] == "disabled").unwrap()["id"]
        .as_i64()
        .unwrap();
    let (_, shown, _) = with(d, &ONE_PEPPER, &["token", "show", &revoked.to_string(), "--json"], None);
    assert_eq!(serde_json::from_str::<Value>(&shown).unwrap()["enabled"], false);

    // A malformed remote token is refused before anything is sent, without echoing it.
    let (ok, _, err) =
        with(d, &[], &["migrate", "plan", "--url", &url, "--token", "Bearer nbt_abc.def"], None);
    assert!(!ok && !err.contains("nbt_abc.def"), "{err}");

    // doctor --url checks reachability, version and the token, naming the header it used.
    let (ok, out, err) = with(d, &ONE_PEPPER, &["doctor", "--url", &url, "--token", &admin], None);
    assert!(ok, "{out}{err}");
    assert!(out.contains("API-Version 4.7") && out.contains("Authorization: Bearer"), "{out}");
    assert!(!out.contains(&admin), "doctor printed the token");
    let (ok, out, _) = with(
        d,
        &ONE_PEPPER,
        &["doctor", "--url", &url, "--token", &format!("nbt_AAAAAAAAAAAA.{}", "b".repeat(40))],
        None,
    );
    assert!(!ok && out.contains("Invalid v2 token"), "{out}");
}
