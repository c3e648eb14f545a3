//! The rules as a gitleaks configuration, for teams that already run gitleaks.
//!
//! The regexes are the scanner's own pattern text (written in the syntax Go's
//! RE2 and Rust's `regex` share); `entropy` skips the same placeholders the
//! scanner skips, `path` restricts the `.env` rule as the scanner does, and
//! each rule's allowlist drops names that belong to other services.

use crate::rules::{MatchKind, MIN_ENTROPY, OTHER_SERVICES, RULES};

/// A gitleaks TOML configuration that adds the nbtoken rules to gitleaks'
/// default ones (`[extend] useDefault = true`).
pub fn config() -> String {
    let mut out = String::new();
    out.push_str(concat!(
        "# NetBox API token rules for gitleaks, exported by `nbtoken scan --export-gitleaks` ",
        env!("CARGO_PKG_VERSION"),
        ".\n",
        "# Use with: gitleaks detect --config <this file>\n",
        "# gitleaks does not read `nbtoken:ignore`; mark lines with `gitleaks:allow` instead.\n",
        "title = \"nbtoken: NetBox API tokens\"\n\n",
        "[extend]\nuseDefault = true\n",
    ));
    for r in RULES {
        out.push_str("\n[[rules]]\n");
        out.push_str(&format!("id = {}\n", basic(r.id)));
        out.push_str(&format!("description = {}\n", basic(&format!("{} Fix: {}", r.description, r.hint))));
        out.push_str(&format!("regex = {}\n", literal(r.pattern)));
        if let Some(p) = r.path_pattern {
            out.push_str(&format!("path = {}\n", literal(p)));
        }
        if r.kind == MatchKind::Secret {
            out.push_str(&format!("entropy = {MIN_ENTROPY:.1}\n"));
        }
        let keywords: Vec<String> = r.keywords.iter().map(|k| basic(k)).collect();
        out.push_str(&format!("keywords = [{}]\n", keywords.join(", ")));
        out.push_str(&format!("tags = [\"netbox\", \"nbtoken\", {}]\n", basic(r.severity.as_str())));
        if r.kind == MatchKind::Secret && r.id != crate::rules::V2_TOKEN.id {
            out.push_str("\n[rules.allowlist]\n");
            out.push_str("description = \"Names of other services' tokens (old GitHub tokens are 40 hex characters too)\"\n");
            out.push_str("regexTarget = \"match\"\n");
            out.push_str(&format!("regexes = [{}]\n", literal(OTHER_SERVICES)));
        }
    }
    out
}

/// A TOML basic string.
fn basic(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML multi-line literal string, as gitleaks writes regexes (no escaping needed).
fn literal(s: &str) -> String {
    // Invariant: no pattern contains `'''` or a line break (checked by a test).
    format!("'''{s}'''")
}
