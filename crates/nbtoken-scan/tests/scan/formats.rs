//! Text, JSON and SARIF output: shapes, positions, and no secret in any of them.

use nbtoken_scan::output::{self, FINGERPRINT_KEY, SARIF_SCHEMA};
use nbtoken_scan::{scan_paths, Liveness, Report, ScanConfig, RULES};
use serde_json::Value;

use crate::fixture;

fn python_report() -> Report {
    scan_paths(&[fixture("python")], &ScanConfig::default()).unwrap()
}

/// Every secret in the python fixture, read back from the file.
fn secrets_in(report: &Report) -> Vec<String> {
    report.findings.iter().filter_map(|f| f.secret().map(|s| s.expose().to_owned())).collect()
}

fn all_formats(report: &Report) -> Vec<(&'static str, String)> {
    let mut text = Vec::new();
    output::text(report, &mut text).unwrap();
    vec![
        ("text", String::from_utf8(text).unwrap()),
        ("json", output::json(report).to_string()),
        ("sarif", output::sarif(report).to_string()),
        ("debug", format!("{report:?}")),
    ]
}

#[test]
fn no_format_shows_a_full_secret() {
    let report = python_report();
    let secrets = secrets_in(&report);
    assert_eq!(secrets.len(), 5, "{secrets:?}");
    for (format, out) in all_formats(&report) {
        for s in &secrets {
            assert!(!out.contains(s.as_str()), "{format} output contains a secret");
            // Not even the secret half of a v2 token.
            if let Some((_, secret)) = s.split_once('.') {
                assert!(!out.contains(secret), "{format} output contains a v2 secret");
            }
        }
    }
}

#[test]
fn text_shows_position_rule_redacted_match_and_hint() {
    let report = python_report();
    let mut out = Vec::new();
    output::text(&report, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let path = format!("{}/client.py", fixture("python").display());
    // `v2 = pynetbox.api(NETBOX_URL, token="nbt_…` — the token starts at column 38.
    assert!(out.contains(&format!("{path}:33:38: nbtoken-v2-token [high] nbt_Fake…\n")), "{out}");
    assert!(out.contains(&format!("{path}:8:10: nbtoken-v1-token-literal [high] …4567\n")), "{out}");
    assert!(
        out.contains(&format!("{path}:11:24: nbtoken-v1-header-construction [medium] Token {{TOKEN}}\n")),
        "{out}"
    );
    assert!(out.contains(
        "    fix: Use `Authorization: Bearer nbt_<key>.<secret>` with a v2 token from a secret store.\n"
    ));
    assert!(out.trim_end().ends_with("11 findings (5 high, 5 medium, 1 low); 3 files scanned"), "{out}");
}

#[test]
fn json_lists_findings_with_every_field() {
    let mut report = python_report();
    report.findings[0].set_liveness(Liveness::Dead);
    let v = output::json(&report);
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 11);
    let f = &findings[0];
    for key in [
        "rule",
        "severity",
        "path",
        "line",
        "column",
        "end_column",
        "match",
        "description",
        "hint",
        "fingerprint",
    ] {
        assert!(!f[key].is_null(), "missing {key} in {f}");
    }
    assert_eq!(f["rule"], "nbtoken-v1-token-literal");
    assert_eq!(f["line"], 8);
    assert_eq!(f["live"], false);
    assert!(findings[1].get("live").is_none());
    assert_eq!(v["stats"]["files_scanned"], 3);
}

#[test]
fn sarif_has_the_2_1_0_shape() {
    let mut report = python_report();
    report.findings[0].set_liveness(Liveness::Unknown);
    let v = output::sarif(&report);
    assert_eq!(v["version"], "2.1.0");
    assert_eq!(v["$schema"], SARIF_SCHEMA);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert_eq!(driver["name"], "nbtoken-scan");
    assert!(driver["informationUri"].as_str().unwrap().starts_with("https://"));
    let rules = driver["rules"].as_array().unwrap();
    assert_eq!(rules.len(), RULES.len());
    for (r, rule) in rules.iter().zip(RULES) {
        assert_eq!(r["id"], rule.id);
        assert!(r["shortDescription"]["text"].is_string());
        assert!(r["help"]["text"].is_string());
        assert!(["note", "warning", "error"].contains(&r["defaultConfiguration"]["level"].as_str().unwrap()));
        let score: f64 = r["properties"]["security-severity"].as_str().unwrap().parse().unwrap();
        assert!((0.0..=10.0).contains(&score));
    }
    let results = runs[0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 11);
    for res in results {
        let id = res["ruleId"].as_str().unwrap();
        let index = res["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], id);
        assert!(["note", "warning", "error"].contains(&res["level"].as_str().unwrap()));
        assert!(res["message"]["text"].as_str().unwrap().contains("Fix:"));
        let loc = &res["locations"][0]["physicalLocation"];
        let uri = loc["artifactLocation"]["uri"].as_str().unwrap();
        assert!(uri.starts_with("file:///") && uri.ends_with("/client.py"), "{uri}");
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
        assert!(loc["region"]["startColumn"].as_u64().unwrap() >= 1);
        assert!(loc["region"]["endColumn"].as_u64() > loc["region"]["startColumn"].as_u64());
        assert_eq!(res["partialFingerprints"][FINGERPRINT_KEY].as_str().unwrap().len(), 16);
    }
    assert_eq!(results[0]["properties"]["live"], "unknown");
    let first: &Value = &results[0];
    assert_eq!(first["level"], "error");
}
