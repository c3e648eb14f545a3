//! A full workflow at the most verbose log level: no secret, pepper, password or v1 plaintext
//! may appear in any log line or error body, and no v2 secret, pepper or password in the database.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{curl, free_port, nbtoken, run};
use serde_json::Value;

const PEPPER: &str = "log-pepper-0123456789-0123456789-0123456789-0123456789";
const PASSWORD: &str = "Correct-horse-battery-staple-9";

#[test]
fn no_secret_reaches_logs_error_bodies_or_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = [("NBTOKEN_PEPPER_1", PEPPER), ("NBTOKEN_V1", "warn"), ("NBTOKEN_LOG", "trace")];
    let cli = |args: &[&str], stdin: Option<&str>| {
        let mut c: Command = nbtoken(d);
        for (k, v) in env {
            c.env(k, v);
        }
        let (ok, out, err) = run(c.args(args), stdin);
        assert!(ok, "{args:?}: {err}");
        (out, err)
    };
    let mut logs = String::new();
    let mut secrets: Vec<String> = vec![PEPPER.into(), PASSWORD.into()];

    let (_, err) =
        cli(&["user", "create", "ops", "--superuser", "--password-stdin"], Some(&format!("{PASSWORD}\n")));
    logs.push_str(&err);
    let (out, err) = cli(&["token", "create", "--user", "ops", "--json"], None);
    logs.push_str(&err);
    let admin: Value = serde_json::from_str(&out).unwrap();
    let admin_bearer =
        format!("Bearer nbt_{}.{}", admin["key"].as_str().unwrap(), admin["token"].as_str().unwrap());
    secrets.push(admin["token"].as_str().unwrap().into());
    let (out, err) = cli(&["token", "create", "--user", "ops", "--version", "1", "--json"], None);
    logs.push_str(&err);
    let v1 = serde_json::from_str::<Value>(&out).unwrap()["token"].as_str().unwrap().to_owned();
    secrets.push(v1.clone());

    let port = free_port();
    let mut server = nbtoken(d)
        .envs(env)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server_err = server.stderr.take().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while curl(&[&format!("{base}/livez")]).0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(20), "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut bodies = String::new();
    // Create a token over REST, use it, and fail in every way.
    let (code, body) = call(
        &mut bodies,
        &[
            "-X",
            "POST",
            "-H",
            &format!("Authorization: {admin_bearer}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"description": "rest"}"#,
            &format!("{base}/api/users/tokens/"),
        ],
    );
    assert_eq!(code, 201, "{body}");
    let rest: Value = serde_json::from_str(&body).unwrap();
    let rest_secret = rest["token"].as_str().unwrap().to_owned();
    let rest_bearer = format!("Bearer nbt_{}.{rest_secret}", rest["key"].as_str().unwrap());
    secrets.push(rest_secret.clone());
    // The creation response is the one place a secret may appear; leave it out of the scan.
    bodies.clear();
    for auth in [
        rest_bearer.clone(),
        format!("Token {v1}"),
        format!("Bearer {v1}"),
        format!("Bearer Bearer nbt_{}.{rest_secret}", rest["key"].as_str().unwrap()),
        format!("Bearer nbt_{}.{}X", rest["key"].as_str().unwrap(), rest_secret),
        format!("Bearer nbt_{}{rest_secret}", rest["key"].as_str().unwrap()),
        format!("Token {v1}x"),
        format!("Bearer \"nbt_{}.{rest_secret}\"", rest["key"].as_str().unwrap()),
    ] {
        call(&mut bodies, &["-H", &format!("Authorization: {auth}"), &format!("{base}/api/users/tokens/")]);
    }
    call(
        &mut bodies,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            &format!(r#"{{"username": "ops", "password": "{PASSWORD}x"}}"#),
            &format!("{base}/api/users/tokens/provision/"),
        ],
    );
    let (code, body) = call(
        &mut bodies,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            &format!(r#"{{"username": "ops", "password": "{PASSWORD}"}}"#),
            &format!("{base}/api/users/tokens/provision/"),
        ],
    );
    assert_eq!(code, 201, "{body}");
    secrets.push(serde_json::from_str::<Value>(&body).unwrap()["token"].as_str().unwrap().to_owned());
    bodies.clear();
    call(
        &mut bodies,
        &[
            "-X",
            "POST",
            "-H",
            &format!("Authorization: {admin_bearer}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            &format!(r#"{{"token": "{}"}}"#, &rest_secret[..20]),
            &format!("{base}/api/users/tokens/"),
        ],
    );
    // Rotation and migration through the CLI while the server runs.
    let (out, err) = cli(&["token", "rotate", &rest["id"].to_string(), "--overlap", "1h", "--json"], None);
    logs.push_str(&err);
    secrets.push(serde_json::from_str::<Value>(&out).unwrap()["token"].as_str().unwrap().to_owned());
    let (out, err) = cli(&["migrate", "apply"], None);
    logs.push_str(&err);
    for r in serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap() {
        let full = r["token"].as_str().unwrap();
        secrets.push(full.rsplit_once('.').unwrap().1.to_owned());
    }
    std::thread::sleep(Duration::from_millis(1200)); // let the last_used batch land
    let _ = server.kill();
    let _ = server.wait();
    server_err.read_to_string(&mut logs).unwrap();

    assert!(logs.lines().count() > 20, "expected verbose logs, got:\n{logs}");
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "logging was not verbose");
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "a secret reached the logs: …{}", &s[s.len() - 4..]);
        assert!(!bodies.contains(s.as_str()), "a secret reached an error body: …{}", &s[s.len() - 4..]);
    }
    // The database keeps digests, the argon2 hash and (by design, until migrated) v1 plaintexts only.
    let mut db = Vec::new();
    for f in std::fs::read_dir(d.join("data")).unwrap() {
        let p = f.unwrap().path();
        if p.to_string_lossy().contains("sqlite3") {
            db.extend(std::fs::read(p).unwrap());
        }
    }
    let db = String::from_utf8_lossy(&db);
    assert!(db.contains(&v1), "the test cannot see the database contents");
    for s in secrets.iter().filter(|s| **s != v1) {
        assert!(!db.contains(s.as_str()), "a secret reached the database: …{}", &s[s.len() - 4..]);
    }
}

/// curl, keeping every response body for the final scan.
fn call(bodies: &mut String, args: &[&str]) -> (u16, String) {
    let (code, body) = curl(args);
    bodies.push_str(&body);
    (code, body)
}
