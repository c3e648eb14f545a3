//! The `nbtoken` binary end to end: first start, admin commands, and curl against `serve`.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use serde_json::Value;

use std::process::Command;

use common::{curl, nbtoken, run, serve};
#[test]
fn first_start_writes_a_working_token_to_a_private_file_and_curl_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    // stdout is a pipe, as under systemd or Docker: only the file's path is printed, never the secrets.
    let first = served.first_start.as_ref().expect("first start names its credentials file");
    let token = first.token.clone();
    assert!(token.starts_with("nbt_"));
    assert_eq!(first.path, dir.path().join("data/first-start-admin.txt"));
    let printed = served.stdout_lines.join("\n");
    assert!(!printed.contains(&token) && !printed.contains(&first.password), "{printed}");
    assert!(!printed.contains("nbt_"), "{printed}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "credentials file mode {mode:o}");
    }
    let (code, body) = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("http://{}/api/users/tokens/", served.addr),
    ]);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["count"], 1);
    assert_eq!(v["results"][0]["user"]["username"], "admin");
    let (code, _) = curl(&[&format!("http://{}/api/users/tokens/", served.addr)]);
    assert_eq!(code, 403);
    // The generated pepper file is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("data/peppers.toml")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "pepper file readable by others: {mode:o}");
    }
    drop(served);
    // A second start keeps the same pepper and database: the token still works, and no new admin is made.
    let again = serve(dir.path());
    assert!(again.first_start.is_none() && again.stdout_lines.is_empty(), "{:?}", again.stdout_lines);
    let (code, _) = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("http://{}/api/status/", again.addr),
    ]);
    assert_eq!(code, 200);
}

#[test]
fn admin_commands_and_json_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Peppers injected through the environment, as production should.
    let pepper = "env-pepper-0123456789-0123456789-0123456789-0123456789";
    let with_pepper = |c: &mut Command| {
        c.env("NBTOKEN_PEPPER_3", pepper);
    };
    let mut c = nbtoken(d);
    c.args(["user", "create", "alice", "--password-stdin", "--json"]);
    let (ok, out, err) = run(&mut c, Some("Alice-password-1\n"));
    assert!(ok, "{err}");
    let alice: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(alice["username"], "alice");
    assert!(alice["id"].as_i64().is_some());

    let (ok, _, err) = run(nbtoken(d).args(["user", "create", "alice"]), None);
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");

    let mut c = nbtoken(d);
    with_pepper(&mut c);
    c.args([
        "token",
        "create",
        "--user",
        "alice",
        "--read-only",
        "--allowed-ip",
        "10.0.0.0/8",
        "--description",
        "ci",
        "--expires",
        "2099-01-01T00:00:00Z",
        "--json",
    ]);
    let (ok, out, err) = run(&mut c, None);
    assert!(ok, "{err}");
    let t: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(t["pepper_id"], 3);
    assert_eq!(t["write_enabled"], false);
    assert_eq!(t["allowed_ips"], serde_json::json!(["10.0.0.0/8"]));
    assert_eq!(t["expires"], "2099-01-01T00:00:00Z");
    let secret = t["token"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 40);
    let id = t["id"].as_i64().unwrap().to_string();

    // The secret is shown once: list and show never print it.
    let (ok, list, _) = run(nbtoken(d).args(["token", "list"]), None);
    assert!(ok);
    assert!(list.contains(t["key"].as_str().unwrap()));
    assert!(!list.contains(&secret));
    let (ok, shown, _) = run(nbtoken(d).args(["token", "show", &id, "--json"]), None);
    assert!(ok);
    assert!(!shown.contains(&secret));
    assert!(serde_json::from_str::<Value>(&shown).unwrap()["token"].is_null());

    let (ok, _, _) = run(nbtoken(d).args(["token", "disable", &id]), None);
    assert!(ok);
    let (_, shown, _) = run(nbtoken(d).args(["token", "show", &id, "--json"]), None);
    assert_eq!(serde_json::from_str::<Value>(&shown).unwrap()["enabled"], false);

    // Without any pepper, v2 creation names the missing setting.
    let (ok, _, err) = run(nbtoken(d).args(["token", "create", "--user", "alice"]), None);
    assert!(!ok);
    assert!(err.contains("NBTOKEN_PEPPER_"), "{err}");

    // Bad input: clear errors, non-zero exit, no panic.
    for args in [
        vec!["token", "create", "--user", "nobody"],
        vec!["token", "create", "--user", "alice", "--allowed-ip", "10.0.0.0/99"],
        vec!["token", "create", "--user", "alice", "--expires", "tomorrow"],
        vec!["token", "create", "--user", "alice", "--version", "3"],
        vec!["token", "show", "999"],
        vec!["token", "delete", "999"],
    ] {
        let mut c = nbtoken(d);
        with_pepper(&mut c);
        let (ok, _, err) = run(c.args(&args), None);
        assert!(!ok, "{args:?} succeeded");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.is_empty(), "{args:?}: no error message");
    }

    let (ok, out, _) = run(nbtoken(d).args(["user", "list", "--json"]), None);
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().len(), 1);
    let (ok, out, _) = run(nbtoken(d).args(["pepper", "generate"]), None);
    assert!(ok);
    assert_eq!(out.trim().len(), 64);
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = nbtoken(d);
    c.env("NBTOKEN_PEPPER_1", "too-short-pepper").args(["token", "list"]);
    let (ok, _, err) = run(&mut c, None);
    assert!(!ok);
    assert!(err.contains("pepper 1") && err.contains("at least 50"), "{err}");
    assert!(!err.contains("too-short-pepper"), "pepper value leaked: {err}");
    let cfg = d.join("bad.toml");
    std::fs::write(&cfg, "bindd = \"127.0.0.1:1\"\n").unwrap();
    let (ok, _, err) = run(nbtoken(d).arg("--config").arg(&cfg).args(["user", "list"]), None);
    assert!(!ok);
    assert!(err.contains("bindd"), "{err}");
    let mut c = nbtoken(d);
    c.env("NBTOKEN_V1", "sometimes").args(["user", "list"]);
    let (ok, _, err) = run(&mut c, None);
    assert!(!ok);
    assert!(err.contains("allow, warn or deny"), "{err}");
}

/// The CLI refuses what the API refuses, in the same words (NetBox 4.7.3's default
/// validators), on `user create` and `user set-password`; a generated password passes.
#[test]
fn cli_password_rule_is_the_apis() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        ("abc", "This password is too short. It must contain at least 12 characters. Password must have at least one numeral."),
        ("abcdefghijk1", "Password must have at least one uppercase letter."),
        ("ABCDEFGHIJK1", "Password must have at least one lowercase letter."),
        ("Abcdefghij1", "This password is too short. It must contain at least 12 characters."),
    ];
    for (pw, words) in cases {
        let (ok, _, err) =
            run(nbtoken(d).args(["user", "create", "weak", "--password-stdin"]), Some(&format!("{pw}\n")));
        assert!(!ok && err.contains(words), "{pw:?}: {err}");
        assert!(!err.contains(pw) || pw == "abc", "the password is not echoed: {err}");
    }
    let (ok, _, err) =
        run(nbtoken(d).args(["user", "create", "bob", "--password-stdin"]), Some("Abcdefghijk1\n"));
    assert!(ok, "{err}");
    let (ok, _, err) =
        run(nbtoken(d).args(["user", "set-password", "bob", "--password-stdin"]), Some("abcdefghijk1\n"));
    assert!(!ok && err.contains("Password must have at least one uppercase letter."), "{err}");
    // Without --password-stdin a password is generated (and printed once); it always passes.
    for _ in 0..20 {
        let (ok, out, err) = run(nbtoken(d).args(["user", "set-password", "bob"]), None);
        assert!(ok, "{err}");
        let pw = out.trim().rsplit(' ').next().unwrap();
        let has = |f: fn(&char) -> bool| pw.chars().any(|c| f(&c));
        assert!(
            pw.len() >= 12
                && has(char::is_ascii_digit)
                && has(char::is_ascii_uppercase)
                && has(char::is_ascii_lowercase),
            "{out}"
        );
    }
}
