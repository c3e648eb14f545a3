//! The walk: ignore files, binaries, the size limit, VCS directories, explicit files, allowlists.

use std::path::Path;

use nbtoken_scan::{scan_paths, Allowlist, ScanConfig, ScanError};

use crate::{fake_v2, FAKE_V1};

fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn found(root: &Path, config: &ScanConfig) -> Vec<String> {
    let report = scan_paths(&[root], config).unwrap();
    let prefix = format!("{}/", root.display());
    report
        .findings
        .iter()
        .map(|f| format!("{}:{}", f.path().strip_prefix(&prefix).unwrap_or(f.path()), f.rule().id))
        .collect()
}

#[test]
fn gitignored_binary_large_and_vcs_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let line = format!("token = \"{}\"\n", fake_v2(1));
    write(d, "seen.py", line.as_bytes());
    write(d, ".gitignore", b"ignored.py\nbuild/\n");
    write(d, "ignored.py", line.as_bytes());
    write(d, "build/out.py", line.as_bytes());
    write(d, ".git/config", line.as_bytes());
    let mut binary = b"\x7fELF\x00\x01".to_vec();
    binary.extend_from_slice(line.as_bytes());
    write(d, "tool.bin", &binary);
    let mut large = vec![b'#'; 2 * 1024 * 1024];
    large.extend_from_slice(line.as_bytes());
    write(d, "dump.sql", &large);

    let report = scan_paths(&[d], &ScanConfig::default()).unwrap();
    let paths: Vec<&str> = report.findings.iter().map(|f| f.path()).collect();
    assert_eq!(paths, [format!("{}/seen.py", d.display())]);
    assert_eq!(report.stats.skipped_binary, 1);
    assert_eq!(report.stats.skipped_large, 1);

    // Without ignore files, the ignored ones are read too; binaries and the limit still apply.
    let all = ScanConfig { respect_ignore_files: false, ..ScanConfig::default() };
    assert_eq!(found(d, &all).len(), 3);
    // A larger limit reads the large file.
    let big = ScanConfig { max_file_size: 4 * 1024 * 1024, ..ScanConfig::default() };
    assert_eq!(found(d, &big).len(), 2);
}

#[test]
fn a_file_named_on_the_command_line_is_scanned_even_if_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, ".gitignore", b"secret.env\n");
    write(d, "secret.env", format!("NETBOX_TOKEN={FAKE_V1}\n").as_bytes());
    let report = scan_paths(&[d.join("secret.env")], &ScanConfig::default()).unwrap();
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].rule().id, "nbtoken-token-in-env");
    assert_eq!(report.findings[0].path(), format!("{}/secret.env", d.display()));
}

#[test]
fn a_missing_path_is_an_error() {
    let err = scan_paths(&[Path::new("/nonexistent/nbtoken-scan")], &ScanConfig::default()).unwrap_err();
    assert!(matches!(err, ScanError::NoSuchPath(_)), "{err}");
}

#[test]
fn allowlist_by_path_rule_and_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "a.py",
        format!("TOKEN = \"{FAKE_V1}\"\nh = {{\"Authorization\": f\"Token {{TOKEN}}\"}}\n").as_bytes(),
    );
    write(d, "b.py", format!("TOKEN = \"{FAKE_V1}\"\n").as_bytes());
    write(d, "vendor/c.py", format!("TOKEN = \"{FAKE_V1}\"\n").as_bytes());
    let before = scan_paths(&[d], &ScanConfig::default()).unwrap();
    assert_eq!(before.findings.len(), 4);
    let b_fp = before.findings.iter().find(|f| f.path().ends_with("/b.py")).unwrap().fingerprint().to_owned();

    let text = format!("# comment\nvendor/\nnbtoken-v1-header-construction:*.py\nfingerprint:{b_fp}\n");
    let allow = Allowlist::parse(&text, "test").unwrap();
    let config = ScanConfig { allowlist: Some(allow), ..ScanConfig::default() };
    let report = scan_paths(&[d], &config).unwrap();
    let left: Vec<String> = report.findings.iter().map(|f| format!("{}:{}", f.line(), f.rule().id)).collect();
    assert_eq!(left, ["1:nbtoken-v1-token-literal"]);
    assert!(report.findings[0].path().ends_with("/a.py"));
    assert_eq!(report.stats.suppressed, 3);

    // The same list as the root's own file, found without being named.
    write(d, nbtoken_scan::DEFAULT_ALLOWLIST, text.as_bytes());
    assert_eq!(scan_paths(&[d], &ScanConfig::default()).unwrap().findings.len(), 1);
}

#[test]
fn allowlist_errors_name_the_line() {
    let err = Allowlist::parse("docs/\nnbtoken-no-such-rule:x\n", "allow.txt").unwrap_err();
    assert_eq!(err.to_string(), "allow.txt:2: unknown rule id \"nbtoken-no-such-rule\"");
    let err = Allowlist::parse("fingerprint:xyz\n", "allow.txt").unwrap_err();
    assert!(err.to_string().starts_with("allow.txt:1:"), "{err}");
}

#[test]
fn fingerprints_are_stable_and_do_not_depend_on_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "a.py", format!("TOKEN = \"{FAKE_V1}\"\n").as_bytes());
    let first = scan_paths(&[d], &ScanConfig::default()).unwrap().findings[0].fingerprint().to_owned();
    write(d, "a.py", format!("import os\n\nTOKEN = \"{FAKE_V1}\"\n").as_bytes());
    let moved = scan_paths(&[d], &ScanConfig::default()).unwrap().findings[0].clone();
    assert_eq!(moved.line(), 3);
    assert_eq!(moved.fingerprint(), first);
    assert_eq!(first.len(), 16);
}

#[test]
fn columns_are_characters_and_non_utf8_files_are_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = fake_v2(2);
    write(d, "u.py", format!("# é\nx = \"ééé {token}\"\n").as_bytes());
    let mut latin1 = b"# caf\xe9\nx = '".to_vec();
    latin1.extend_from_slice(token.as_bytes());
    latin1.extend_from_slice(b"'\n");
    write(d, "l.py", &latin1);
    let report = scan_paths(&[d], &ScanConfig::default()).unwrap();
    let pos: Vec<(String, usize, usize, usize)> = report
        .findings
        .iter()
        .map(|f| (f.path().rsplit('/').next().unwrap().to_owned(), f.line(), f.column(), f.end_column()))
        .collect();
    assert_eq!(pos, [("l.py".to_owned(), 2, 6, 6 + 57), ("u.py".to_owned(), 2, 10, 10 + 57)]);
}
