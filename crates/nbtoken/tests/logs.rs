//! Structured logs: under `NBTOKEN_LOG_FORMAT=json` every stderr line of `serve` is one JSON
//! object, the client's `X-Request-ID` is echoed and names every line logged for its request,
//! and the authentication decision is one line at debug level, without the token.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;
use std::io::Read;

use std::time::Duration;

use common::{cli_ok, curl, nbtoken, start_serve};
use serde_json::Value;

const PEPPER: &str = "json-log-pepper-0123456789-0123456789-0123456789-0123456789";

/// The request id a log line was written under (from its span), if any.
fn request_id(line: &Value) -> Option<&str> {
    line["spans"].as_array()?.iter().find_map(|s| s["request_id"].as_str())
}

#[test]
fn json_logs_carry_the_request_id_and_never_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = [("NBTOKEN_PEPPER_1", PEPPER), ("NBTOKEN_LOG", "debug"), ("NBTOKEN_LOG_FORMAT", "json")];
    let cli = |args: &[&str], stdin: Option<&str>| {
        let (out, err) = cli_ok(d, &env, args, stdin);
        for line in err.lines() {
            assert!(serde_json::from_str::<Value>(line).is_ok(), "not JSON: {line}");
        }
        out
    };
    cli(&["user", "create", "ops", "--superuser", "--password-stdin"], Some("A long password 1\n"));
    let created: Value =
        serde_json::from_str(&cli(&["token", "create", "--user", "ops", "--json"], None)).unwrap();
    let (key, secret) = (created["key"].as_str().unwrap(), created["token"].as_str().unwrap());
    let bearer = format!("Authorization: Bearer nbt_{key}.{secret}");

    let (mut server, base) = start_serve(nbtoken(d).envs(env));
    let (code, head) = curl(&[
        "-i",
        "-H",
        &bearer,
        "-H",
        "X-Request-ID: req-forward-ok",
        "-H",
        "X-Forwarded-Method: GET",
        &format!("{base}/auth/forward/app/1?secret=in-the-query"),
    ]);
    assert_eq!(code, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("x-request-id: req-forward-ok\r\n"), "not echoed:\n{head}");
    let wrong = format!("Authorization: Bearer nbt_{key}.{}", "x".repeat(40));
    let (code, _) =
        curl(&["-H", &wrong, "-H", "X-Request-ID: req-api-wrong", &format!("{base}/api/users/tokens/")]);
    assert_eq!(code, 403);
    // Without a request id of its own, a request gets one (and it is echoed too).
    let (_, head) = curl(&["-i", &format!("{base}/api/")]);
    assert!(head.to_ascii_lowercase().contains("x-request-id: "), "{head}");
    std::thread::sleep(Duration::from_millis(200));
    server.kill().unwrap();
    let mut stderr = String::new();
    server.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    server.wait().unwrap();

    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines
        .iter()
        .any(|l| l["fields"]["message"].as_str().is_some_and(|m| m.starts_with("listening on"))));
    let decisions = |id: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["fields"]["message"] == "authentication decision" && request_id(l) == Some(id))
            .collect()
    };
    let ok = decisions("req-forward-ok");
    assert_eq!(ok.len(), 1, "{stderr}");
    assert_eq!(ok[0]["level"], "DEBUG");
    assert_eq!(ok[0]["fields"]["result"], "ok");
    assert_eq!(ok[0]["fields"]["version"], 2);
    assert_eq!(ok[0]["fields"]["access"], "read");
    // Forward-auth's own span says what the proxy asked about, without the query.
    let fwd = ok[0]["spans"].as_array().unwrap().iter().find(|s| s["name"] == "forward_auth").unwrap();
    assert_eq!(fwd["original_method"], "GET");
    let wrong = decisions("req-api-wrong");
    assert_eq!(wrong.len(), 1, "{stderr}");
    assert_eq!(wrong[0]["fields"]["result"], "invalid");
    assert_eq!(wrong[0]["fields"]["detail"], "Invalid v2 token");
    // One request line per request, under the same id, with route and status.
    let req_line = lines
        .iter()
        .find(|l| l["fields"]["message"] == "request" && request_id(l) == Some("req-api-wrong"))
        .unwrap_or_else(|| panic!("no request line:\n{stderr}"));
    assert_eq!(req_line["fields"]["status"], 403);
    assert_eq!(req_line["span"]["route"], "/api/users/tokens/");
    assert_eq!(req_line["span"]["method"], "GET");

    for s in [secret, PEPPER, "in-the-query"] {
        assert!(!stderr.contains(s), "{s} was logged:\n{stderr}");
    }
}

/// Issue 16, item 9: a crafted `X-Request-ID` wrote what looked like another request into
/// the text log (`… method=DELETE … status=204`). Only a safe id (`[A-Za-z0-9._-]`, at most
/// 128 characters) is kept, others are replaced by a new one, and text logs quote values.
#[test]
fn a_crafted_request_id_cannot_forge_a_text_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) = start_serve(
        nbtoken(dir.path())
            .env("NBTOKEN_PEPPER_1", PEPPER)
            .env("NBTOKEN_LOG", "info")
            .env("NBTOKEN_LOG_FORMAT", "text"),
    );
    let forged = r#"X-Request-ID: x" method=DELETE route="/api/users/tokens/{id}/"}: nbtoken_server::observe: request status=204 micros=9"#;
    // Refusals are always logged: an anonymous list is a 403.
    let (code, head) = curl(&["-i", "-H", forged, &format!("{base}/api/users/tokens/")]);
    assert_eq!(code, 403, "{head}");
    let replaced = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-request-id: ").map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no request id echoed:\n{head}"));
    assert_eq!(replaced.len(), 36, "a new UUID, not the client's value: {replaced}");
    let (code, _) = curl(&["-H", "X-Request-ID: req-text.1_A", &format!("{base}/api/users/tokens/")]);
    assert_eq!(code, 403);
    std::thread::sleep(Duration::from_millis(200));
    server.kill().unwrap();
    let mut stderr = String::new();
    server.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    server.wait().unwrap();

    for forged_part in ["DELETE", "status=204"] {
        assert!(!stderr.contains(forged_part), "{forged_part:?} in the log:\n{stderr}");
    }
    // The forged line ends in `micros=9`; a real line may hold `micros=95`, so only a line that
    // ends there would be the forgery.
    assert!(
        !stderr.lines().any(|l| l.trim_end().ends_with("micros=9")),
        "forged \"micros=9\" in the log:\n{stderr}"
    );
    let line =
        |id: &str| stderr.lines().find(|l| l.contains(&format!("request_id=\"{id}\""))).map(str::to_owned);
    let replaced_line = line(&replaced).unwrap_or_else(|| panic!("no quoted line for {replaced}:\n{stderr}"));
    assert!(
        replaced_line.contains("method=\"GET\"") && replaced_line.contains("status=403"),
        "{replaced_line}"
    );
    let kept = line("req-text.1_A").unwrap_or_else(|| panic!("no quoted line for the safe id:\n{stderr}"));
    assert!(kept.contains("route=\"/api/users/tokens/\""), "{kept}");
}
