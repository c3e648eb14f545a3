//! `--fail-on`: severities, rule ids, `any` and `never`.

use nbtoken_scan::{scan_bytes, FailOn, Finding};

fn header_finding() -> Finding {
    let found = scan_bytes("app.py", b"h = {\"Authorization\": f\"Token {TOKEN}\"}\n");
    assert_eq!(found.len(), 1);
    found.into_iter().next().unwrap()
}

fn check(values: &[&str], fails: bool) {
    let f = header_finding();
    assert_eq!(FailOn::parse(values).unwrap().fails_on(&f), fails, "{values:?}");
}

#[test]
fn severities_rule_ids_any_and_never() {
    // The finding is nbtoken-v1-header-construction, severity medium.
    check(&[], true);
    check(&["any"], true);
    check(&["never"], false);
    check(&["low"], true);
    check(&["medium"], true);
    check(&["high"], false);
    check(&["nbtoken-v1-header-construction"], true);
    check(&["nbtoken-v2-token"], false);
    check(&["high", "nbtoken-v1-header-construction"], true);
    assert!(FailOn::parse(&["critical"]).is_err());
}
