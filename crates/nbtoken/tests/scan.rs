//! `nbtoken scan` through the real binary: exit codes, formats, no secret in
//! any output, the gitleaks export, and `--verify` against a real server.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::{nbtoken, run, serve};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../nbtoken-scan/tests/fixtures")
}

/// Runs `nbtoken scan ARGS` and returns (exit code, stdout, stderr).
fn scan(args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = nbtoken(dir.path());
    c.arg("scan").args(args);
    let out = c.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn fixture(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

#[test]
fn exit_codes_follow_fail_on() {
    let python = fixture("python");
    let negatives = fixture("negatives");
    // Default: any finding fails.
    assert_eq!(scan(&[&python]).0, 1);
    assert_eq!(scan(&[&negatives]).0, 0);
    assert_eq!(scan(&["--fail-on", "never", &python]).0, 0);
    // The rust fixture has high and medium findings; js has high ones.
    let rust = fixture("rust");
    assert_eq!(scan(&["--fail-on", "high", &rust]).0, 1);
    assert_eq!(scan(&["--fail-on", "nbtoken-v2-token,nbtoken-token-in-env", &rust]).0, 0);
    assert_eq!(scan(&["--fail-on", "nbtoken-v1-header-construction", &rust]).0, 1);
    // Errors are 2, not 1.
    let (code, _, err) = scan(&["--fail-on", "critical", &python]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid --fail-on value \"critical\""), "{err}");
    let (code, _, err) = scan(&["/nonexistent/nbtoken-scan-test"]);
    assert_eq!(code, 2);
    assert!(err.contains("no such file or directory"), "{err}");
}

#[test]
fn text_json_and_sarif_outputs() {
    let http = fixture("http");
    let (code, text, _) = scan(&[&http]);
    assert_eq!(code, 1);
    assert!(text.contains("netbox.http:13:23: nbtoken-v2-token [high] nbt_Fake…"), "{text}");
    assert!(text.contains("fix: "), "{text}");

    let (code, out, err) = scan(&["--format", "json", &http]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    let rules: Vec<&str> =
        v["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert_eq!(
        rules,
        [
            "nbtoken-v1-header-construction",
            "nbtoken-v1-token-literal",
            "nbtoken-v2-token",
            "nbtoken-v2-with-token-keyword",
            "nbtoken-v2-token"
        ]
    );
    assert!(err.contains("5 findings"), "{err}");

    let (code, out, _) = scan(&["--format", "sarif", "--fail-on", "never", &http]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], "2.1.0");
    assert_eq!(v["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap().len(), 5);
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    let loc = &results[0]["locations"][0]["physicalLocation"];
    assert!(loc["artifactLocation"]["uri"].as_str().unwrap().ends_with("/http/netbox.http"));
    assert_eq!(loc["region"]["startLine"], 5);
    assert_eq!(loc["region"]["startColumn"], 16);
}

#[test]
fn no_output_format_contains_a_full_secret() {
    let root = fixtures();
    let report = nbtoken_scan::scan_paths(&[&root], &nbtoken_scan::ScanConfig::default()).unwrap();
    let secrets: Vec<String> =
        report.findings.iter().filter_map(|f| f.secret()).map(|s| s.expose().to_owned()).collect();
    assert!(secrets.len() >= 20, "{}", secrets.len());
    let root = root.display().to_string();
    for format in ["text", "json", "sarif"] {
        let (code, out, err) = scan(&["--format", format, &root]);
        assert_eq!(code, 1, "{err}");
        for s in &secrets {
            let secret_half = s.split_once('.').map_or(s.as_str(), |(_, b)| b);
            assert!(!out.contains(secret_half) && !err.contains(secret_half), "{format} shows a secret");
        }
    }
}

#[test]
fn allowlist_flag_and_gitleaks_export() {
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow");
    std::fs::write(&allow, "client.py\n").unwrap();
    let python = fixture("python");
    let (code, out, _) = scan(&["--allowlist", allow.to_str().unwrap(), &python]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("11 allowlisted"), "{out}");

    let (code, out, _) = scan(&["--export-gitleaks"]);
    assert_eq!(code, 0);
    let config: toml::Table = toml::from_str(&out).unwrap();
    let ids: Vec<&str> =
        config["rules"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.contains(&"nbtoken-v2-token"));
}

fn create_token(data: &Path, version: &str) -> (i64, String) {
    let (ok, out, err) =
        run(nbtoken(data).args(["token", "create", "--user", "admin", "--version", version, "--json"]), None);
    assert!(ok, "{err}");
    let t: Value = serde_json::from_str(&out).unwrap();
    let secret = t["token"].as_str().unwrap();
    let full = match t["key"].as_str() {
        Some(key) if version == "2" => format!("nbt_{key}.{secret}"),
        _ => secret.to_owned(),
    };
    (t["id"].as_i64().unwrap(), full)
}

#[test]
fn verify_marks_live_and_dead_tokens_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let served = serve(d);
    let url = format!("http://{}", served.addr);
    let (_, live_v2) = create_token(d, "2");
    let (_, live_v1) = create_token(d, "1");
    let (gone_id, gone_v2) = create_token(d, "2");
    let (ok, _, err) = run(nbtoken(d).args(["token", "delete", &gone_id.to_string()]), None);
    assert!(ok, "{err}");

    let tree = d.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("a.py"), format!("TOKEN = \"{live_v2}\"\n")).unwrap();
    std::fs::write(tree.join("b.py"), format!("NETBOX_TOKEN = \"{live_v1}\"\n")).unwrap();
    std::fs::write(tree.join("c.py"), format!("OLD = \"{gone_v2}\"\n")).unwrap();
    std::fs::write(tree.join("d.py"), "h = {\"Authorization\": f\"Token {TOKEN}\"}\n").unwrap();

    let tree_s = tree.display().to_string();
    let (code, out, err) = scan(&["--format", "json", "--verify", &url, &tree_s]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("WARNING: --verify sends each of the 3 token(s) found to"), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let live: Vec<(String, Value)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let file = f["path"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
            (file, f.get("live").cloned().unwrap_or(Value::Null))
        })
        .collect();
    assert_eq!(
        live,
        [
            ("a.py".to_owned(), Value::Bool(true)),
            ("b.py".to_owned(), Value::Bool(true)),
            ("c.py".to_owned(), Value::Bool(false)),
            ("d.py".to_owned(), Value::Null),
        ]
    );
    for secret in [&live_v2, &live_v1, &gone_v2] {
        assert!(!out.contains(secret.as_str()) && !err.contains(secret.as_str()));
    }

    // The text format shows the result beside each finding.
    let (_, text, _) = scan(&["--verify", &url, &tree_s]);
    assert!(text.contains("(live: true)") && text.contains("(live: false)"), "{text}");

    // A server that does not answer decides nothing.
    drop(served);
    let closed = format!("http://127.0.0.1:{}", common::free_port());
    let (code, out, _) = scan(&["--format", "json", "--verify", &closed, &tree_s]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["findings"][0]["live"], "unknown");
}

#[test]
fn scan_needs_no_configuration_or_database() {
    // No data directory, no pepper: scanning must not try to open the store.
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_nbtoken"));
    c.current_dir(dir.path()).args(["scan"]).env("NBTOKEN_DATA_DIR", dir.path().join("absent"));
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.path().join("absent").exists());
}
