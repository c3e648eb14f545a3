//! Each fixture tree against its `EXPECTED` file: exactly these (file, line, rule), nothing else.

use std::collections::BTreeSet;

use nbtoken_scan::{scan_paths, ScanConfig};

use crate::fixture;

fn check(name: &str) {
    let root = fixture(name);
    let expected: BTreeSet<(String, usize, String)> = std::fs::read_to_string(root.join("EXPECTED"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (loc, rule) = l.split_once(' ').unwrap();
            let (file, line) = loc.rsplit_once(':').unwrap();
            (file.to_owned(), line.parse().unwrap(), rule.trim().to_owned())
        })
        .collect();
    let report = scan_paths(&[&root], &ScanConfig::default()).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let prefix = format!("{}/", root.display());
    let found: BTreeSet<(String, usize, String)> = report
        .findings
        .iter()
        .map(|f| {
            let rel = f.path().strip_prefix(&prefix).unwrap_or(f.path()).to_owned();
            (rel, f.line(), f.rule().id.to_owned())
        })
        .collect();
    let missing: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{name}: missing {missing:#?}\nunexpected {extra:#?}");
    assert_eq!(found.len(), report.findings.len(), "{name}: duplicate findings");
}

#[test]
fn python() {
    check("python");
}

#[test]
fn go() {
    check("go");
}

#[test]
fn js_and_ts() {
    check("js");
}

#[test]
fn rust() {
    check("rust");
}

#[test]
fn shell_and_curl() {
    check("shell");
}

#[test]
fn ansible_yaml() {
    check("ansible");
}

#[test]
fn http_files() {
    check("http");
}

#[test]
fn postman_collection() {
    check("postman");
}

#[test]
fn env_and_config_files() {
    check("env");
}

#[test]
fn false_positives_in_changelogs_lock_files_and_prose() {
    check("negatives");
}

#[test]
fn allowlist_file_in_the_root() {
    check("allowlist");
}
