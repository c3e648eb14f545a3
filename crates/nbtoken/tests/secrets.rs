//! A full workflow at the most verbose log level: no secret, pepper, password or v1 plaintext
//! may appear in any log line or error body, and no v2 secret, pepper or password in the database.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::io::Read;
use std::time::Duration;

use common::{cli_ok, curl, curl_json, nbtoken, start_serve};
use serde_json::Value;

const PEPPER: &str = "log-pepper-0123456789-0123456789-0123456789-0123456789";
const PASSWORD: &str = "Correct-horse-battery-staple-9";

#[test]
fn no_secret_reaches_logs_error_bodies_or_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = [("NBTOKEN_PEPPER_1", PEPPER), ("NBTOKEN_V1", "warn"), ("NBTOKEN_LOG", "trace")];
    let cli = |args: &[&str], stdin: Option<&str>| cli_ok(d, &env, args, stdin);
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

    let (mut server, base) = start_serve(nbtoken(d).envs(env));
    let mut server_err = server.stderr.take().unwrap();
    let mut bodies = String::new();
    // Create a token over REST, use it, and fail in every way.
    let tokens = format!("{base}/api/users/tokens/");
    let (code, body) = post(&mut bodies, &tokens, Some(admin_bearer.as_str()), r#"{"description": "rest"}"#);
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
        call(&mut bodies, &["-H", &format!("Authorization: {auth}"), &tokens]);
    }
    let provision = format!("{base}/api/users/tokens/provision/");
    post(&mut bodies, &provision, None, &format!(r#"{{"username": "ops", "password": "{PASSWORD}x"}}"#));
    let (code, body) =
        post(&mut bodies, &provision, None, &format!(r#"{{"username": "ops", "password": "{PASSWORD}"}}"#));
    assert_eq!(code, 201, "{body}");
    secrets.push(serde_json::from_str::<Value>(&body).unwrap()["token"].as_str().unwrap().to_owned());
    bodies.clear();
    post(
        &mut bodies,
        &tokens,
        Some(admin_bearer.as_str()),
        &format!(r#"{{"token": "{}"}}"#, &rest_secret[..20]),
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
    keep(bodies, curl(args))
}

/// A JSON POST, keeping the response body for the final scan.
fn post(bodies: &mut String, url: &str, auth: Option<&str>, body: &str) -> (u16, String) {
    keep(bodies, curl_json("POST", url, auth, body))
}

fn keep(bodies: &mut String, (code, body): (u16, String)) -> (u16, String) {
    bodies.push_str(&body);
    (code, body)
}
