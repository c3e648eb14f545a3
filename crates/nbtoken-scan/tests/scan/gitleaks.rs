//! The gitleaks export: valid TOML, regexes that compile, and — evaluated the
//! way gitleaks evaluates a rule — the same (file, line) set as the scanner
//! on every fixture tree.

use std::collections::BTreeSet;
use std::path::Path;

use nbtoken_scan::{entropy, gitleaks, scan_paths, ScanConfig, RULES};
use regex::Regex;

use crate::fixture;

struct GlRule {
    id: String,
    regex: Regex,
    path: Option<Regex>,
    entropy: Option<f64>,
    keywords: Vec<String>,
    allow: Vec<Regex>,
}

fn rules() -> Vec<GlRule> {
    let config: toml::Table = toml::from_str(&gitleaks::config()).unwrap();
    assert_eq!(config["extend"]["useDefault"].as_bool(), Some(true));
    let rules = config["rules"].as_array().unwrap();
    assert_eq!(rules.len(), RULES.len());
    rules
        .iter()
        .map(|r| {
            let s = |k: &str| r.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            let id = s("id").unwrap();
            assert!(RULES.iter().any(|x| x.id == id));
            assert!(!s("description").unwrap().is_empty());
            let keywords: Vec<String> =
                r["keywords"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
            assert!(keywords.iter().all(|k| *k == k.to_lowercase()), "gitleaks keywords are lowercase");
            let allow = r
                .get("allowlist")
                .map(|a| {
                    assert_eq!(a["regexTarget"].as_str(), Some("match"));
                    a["regexes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| Regex::new(x.as_str().unwrap()).unwrap())
                        .collect()
                })
                .unwrap_or_default();
            GlRule {
                regex: Regex::new(&s("regex").unwrap()).unwrap(),
                path: s("path").map(|p| Regex::new(&p).unwrap()),
                entropy: r.get("entropy").and_then(|e| e.as_float()),
                keywords,
                allow,
                id,
            }
        })
        .collect()
}

/// gitleaks' steps for one rule on one file: path, keywords, regex, secret
/// (first non-empty group), entropy, allowlist; then `nbtoken:ignore` lines
/// are dropped, as the scanner drops them, to compare like with like.
fn gitleaks_findings(rules: &[GlRule], rel: &str, text: &str) -> BTreeSet<(String, usize)> {
    let mut out = BTreeSet::new();
    let lower = text.to_lowercase();
    for r in rules {
        if r.path.as_ref().is_some_and(|p| !p.is_match(rel)) {
            continue;
        }
        if !r.keywords.iter().any(|k| lower.contains(k.as_str())) {
            continue;
        }
        for caps in r.regex.captures_iter(text) {
            let whole = caps.get(0).unwrap();
            let secret = caps.iter().skip(1).flatten().next().unwrap_or(whole);
            if r.entropy.is_some_and(|e| entropy(secret.as_str().as_bytes()) <= e) {
                continue;
            }
            if r.allow.iter().any(|a| a.is_match(whole.as_str())) {
                continue;
            }
            let at = if secret == whole {
                whole.start() + whole.as_str().find("oken").map_or(0, |i| i - 1)
            } else {
                secret.start()
            };
            let line = text[..at].matches('\n').count() + 1;
            let line_text = text.lines().nth(line - 1).unwrap_or("");
            if let Some((_, rest)) = line_text.split_once("nbtoken:ignore") {
                let ids = rest.trim_start();
                if !ids.starts_with("nbtoken-") || ids.contains(r.id.as_str()) {
                    continue;
                }
            }
            out.insert((rel.to_owned(), line));
        }
    }
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
}

fn check(name: &str) {
    let rules = rules();
    let root = fixture(name);
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    let mut from_gitleaks = BTreeSet::new();
    for rel in &files {
        let text = std::fs::read_to_string(root.join(rel)).unwrap();
        from_gitleaks.extend(gitleaks_findings(&rules, rel, &text));
    }
    let prefix = format!("{}/", root.display());
    let report = scan_paths(&[&root], &ScanConfig::default()).unwrap();
    let from_scanner: BTreeSet<(String, usize)> = report
        .findings
        .iter()
        .map(|f| (f.path().strip_prefix(&prefix).unwrap().to_owned(), f.line()))
        .collect();
    assert_eq!(from_gitleaks, from_scanner, "{name}");
}

#[test]
fn patterns_fit_in_toml_literal_strings() {
    for r in RULES {
        for p in std::iter::once(r.pattern).chain(r.path_pattern) {
            assert!(!p.contains("'''") && !p.contains('\n'), "{}", r.id);
        }
    }
}

#[test]
fn export_parses_and_every_regex_compiles() {
    let rules = rules();
    assert!(rules.iter().any(|r| r.path.is_some()));
    assert!(rules.iter().filter(|r| r.entropy.is_some()).count() >= 3);
}

#[test]
fn exported_rules_find_what_the_scanner_finds() {
    for name in ["python", "go", "js", "rust", "shell", "ansible", "http", "postman", "env", "negatives"] {
        check(name);
    }
}
