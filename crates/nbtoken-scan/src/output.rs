//! Reports as human text, JSON, and SARIF 2.1.0 for code-scanning uploads.
//!
//! JSON is written by hand with `serde_json::json!`: the types do not derive
//! `Serialize`, so what reaches the output is exactly what is listed here,
//! and a secret cannot slip in through a new field.

use std::io::{self, Write};

use serde_json::{json, Value};

use crate::{Finding, Report, RULES};

/// Where SARIF's `$schema` points.
pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
/// The tool's home, for SARIF's `informationUri`.
pub const INFORMATION_URI: &str = "https://example.invalid/nbtoken";
/// The key of our fingerprint in SARIF `partialFingerprints`.
pub const FINGERPRINT_KEY: &str = "nbtokenFindingHash/v1";

/// Writes one block per finding (`path:line:column: rule [severity] match`,
/// then the hint) and a summary line.
pub fn text(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    for f in &report.findings {
        let r = f.rule();
        write!(out, "{}:{}:{}: {} [{}] {}", f.path(), f.line(), f.column(), r.id, r.severity, f.redacted())?;
        match f.liveness() {
            Some(crate::Liveness::LiveRestricted(r)) => write!(out, " (live: true, {})", r.describe())?,
            Some(live) => write!(out, " (live: {})", live.as_str())?,
            None => {}
        }
        writeln!(out)?;
        writeln!(out, "    {}", r.description)?;
        writeln!(out, "    fix: {}", r.hint)?;
    }
    writeln!(out, "{}", summary(report))
}

/// One line: how many findings of each severity, in how many files.
pub fn summary(report: &Report) -> String {
    let count = |s| report.findings.iter().filter(|f| f.rule().severity == s).count();
    let s = &report.stats;
    let mut line = if report.findings.is_empty() {
        "no NetBox tokens or v1 token headers found".to_owned()
    } else {
        format!(
            "{} finding{} ({} high, {} medium, {} low)",
            report.findings.len(),
            if report.findings.len() == 1 { "" } else { "s" },
            count(crate::Severity::High),
            count(crate::Severity::Medium),
            count(crate::Severity::Low)
        )
    };
    line.push_str(&format!("; {} files scanned", s.files_scanned));
    if s.skipped_binary + s.skipped_large > 0 {
        line.push_str(&format!(", {} binary and {} large skipped", s.skipped_binary, s.skipped_large));
    }
    if s.suppressed > 0 {
        line.push_str(&format!(", {} allowlisted", s.suppressed));
    }
    line
}

fn finding_json(f: &Finding) -> Value {
    let r = f.rule();
    let mut v = json!({
        "rule": r.id,
        "severity": r.severity.as_str(),
        "path": f.path(),
        "line": f.line(),
        "column": f.column(),
        "end_column": f.end_column(),
        "match": f.redacted(),
        "description": r.description,
        "hint": r.hint,
        "fingerprint": f.fingerprint(),
    });
    if let Some(live) = f.liveness() {
        v["live"] = match live {
            crate::Liveness::Live | crate::Liveness::LiveRestricted(_) => Value::Bool(true),
            crate::Liveness::Dead => Value::Bool(false),
            crate::Liveness::Unknown => Value::String("unknown".into()),
        };
        if let crate::Liveness::LiveRestricted(r) = live {
            v["live_restriction"] = Value::String(r.as_str().into());
        }
    }
    v
}

/// The report as one JSON document: `{"findings": [...], "stats": {...}, "warnings": [...]}`.
pub fn json(report: &Report) -> Value {
    let s = &report.stats;
    json!({
        "findings": report.findings.iter().map(finding_json).collect::<Vec<_>>(),
        "stats": {
            "files_scanned": s.files_scanned,
            "bytes_scanned": s.bytes_scanned,
            "skipped_binary": s.skipped_binary,
            "skipped_large": s.skipped_large,
            "suppressed": s.suppressed,
        },
        "warnings": report.warnings,
    })
}

/// The report as a SARIF 2.1.0 log with one run.
pub fn sarif(report: &Report) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": { "text": r.description },
                "fullDescription": { "text": r.description },
                "help": { "text": r.hint, "markdown": r.hint },
                "defaultConfiguration": { "level": r.severity.sarif_level() },
                "properties": {
                    "security-severity": r.severity.security_severity(),
                    "tags": ["security", "secret", "netbox"],
                    "precision": "high",
                },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let r = f.rule();
            let index = RULES.iter().position(|x| x.id == r.id).unwrap_or(0);
            let mut result = json!({
                "ruleId": r.id,
                "ruleIndex": index,
                "level": r.severity.sarif_level(),
                "message": { "text": format!("{} Found {}. Fix: {}", r.description, f.redacted(), r.hint) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(f.path()) },
                        "region": {
                            "startLine": f.line(),
                            "startColumn": f.column(),
                            "endColumn": f.end_column(),
                        },
                    },
                }],
                "partialFingerprints": { FINGERPRINT_KEY: f.fingerprint() },
            });
            if let Some(live) = f.liveness() {
                result["properties"] = json!({ "live": live.as_str() });
                if let crate::Liveness::LiveRestricted(r) = live {
                    result["properties"]["liveRestriction"] = json!(r.as_str());
                }
            }
            result
        })
        .collect();
    json!({
        "version": "2.1.0",
        "$schema": SARIF_SCHEMA,
        "runs": [{
            "tool": {
                "driver": {
                    "name": "nbtoken-scan",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": INFORMATION_URI,
                    "rules": rules,
                },
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

/// A URI for a path (relative paths stay relative references, absolute ones
/// become `file://` URIs), with bytes outside RFC 3986's unreserved set and
/// `/` percent-encoded.
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 7);
    if path.starts_with('/') {
        out.push_str("file://");
    }
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::uri;

    #[test]
    fn uris_are_percent_encoded() {
        assert_eq!(uri("src/my file#1.py"), "src/my%20file%231.py");
        assert_eq!(uri("a/é"), "a/%C3%A9");
        assert_eq!(uri("/tmp/a.py"), "file:///tmp/a.py");
    }
}
