//! A secret scanner for NetBox API tokens.
//!
//! Neither gitleaks nor trufflehog knows NetBox tokens, v1 or v2. This crate
//! walks source trees (respecting `.gitignore`), finds full v2 tokens, v1
//! token values beside token-like names, code that builds the v1
//! `Authorization: Token …` header, v2 tokens sent with the `Token` keyword
//! and tokens in `.env` and configuration files, and reports each with a
//! stable rule id, a position, a redacted match and a fix hint — as text,
//! JSON or SARIF 2.1.0. [`gitleaks::config`] exports the same rules for
//! gitleaks.
//!
//! The crate does no network I/O: verifying whether a found token is live is
//! the caller's business ([`Finding::secret`], [`Finding::set_liveness`]).

#![forbid(unsafe_code)]

use std::fmt;
use std::path::PathBuf;

use nbtoken_core::SecretString;

mod allow;
mod detect;
pub mod gitleaks;
pub mod output;
pub mod rules;
mod walk;

pub use allow::{Allowlist, DEFAULT_ALLOWLIST};
pub use detect::{entropy, redact, scan_bytes, IGNORE_MARKER};
pub use rules::{rule, Rule, Severity, RULES};
pub use walk::scan_paths;

/// Default limit on file size: larger files are skipped.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1024 * 1024;

/// How to walk the trees.
#[derive(Clone, Debug)]
pub struct ScanConfig {
    /// Files larger than this many bytes are skipped.
    pub max_file_size: u64,
    /// Honour `.gitignore`, `.ignore` and git's exclude files.
    pub respect_ignore_files: bool,
    /// Worker threads (0: one per CPU).
    pub threads: usize,
    /// An allowlist that applies to every root. Without one, each directory
    /// root's own [`DEFAULT_ALLOWLIST`] file applies, if it has one.
    pub allowlist: Option<Allowlist>,
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self { max_file_size: DEFAULT_MAX_FILE_SIZE, respect_ignore_files: true, threads: 0, allowlist: None }
    }
}

/// Whether a found token authenticates against the server it was checked on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// The server accepted it: revoke it now.
    Live,
    /// The token exists (its secret matched), but the server refused this
    /// request because of a restriction on the token (its allowed source
    /// networks): it works from there, so it counts as live. NetBox checks the
    /// address before `enabled` and the expiry, which therefore cannot be seen
    /// from here. Revoke it now.
    LiveRestricted(Restriction),
    /// The server refused it (unknown, disabled, expired or revoked).
    Dead,
    /// No answer that decides (network error, unexpected status).
    Unknown,
}

/// Why a live token was refused the request that checked it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restriction {
    /// The checking address is outside the token's allowed IPs (NetBox: `Source IP … is not permitted`).
    SourceIp,
}

impl Restriction {
    /// A short name, as JSON shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Restriction::SourceIp => "allowed_ips",
        }
    }

    /// What it means, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Restriction::SourceIp => {
                "the token exists but is restricted to its allowed IPs, which do not include this address \
                 (whether it is enabled and unexpired cannot be seen from here)"
            }
        }
    }
}

impl Liveness {
    /// `true`, `false` or `unknown`, as text and JSON show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Live | Liveness::LiveRestricted(_) => "true",
            Liveness::Dead => "false",
            Liveness::Unknown => "unknown",
        }
    }
}

/// One rule match at one place.
#[derive(Clone)]
pub struct Finding {
    rule: &'static Rule,
    path: String,
    line: usize,
    column: usize,
    end_column: usize,
    redacted: String,
    fingerprint: String,
    secret: Option<SecretString>,
    live: Option<Liveness>,
}

impl Finding {
    /// The rule that matched.
    pub fn rule(&self) -> &'static Rule {
        self.rule
    }

    /// The file, as reached from the scanned root, with `/` separators.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// 1-based line.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column, counted in characters.
    pub fn column(&self) -> usize {
        self.column
    }

    /// The column just past the match on its first line (SARIF's `endColumn`).
    pub fn end_column(&self) -> usize {
        self.end_column
    }

    /// The match with any secret redacted; safe to print.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// A stable identifier of this finding (rule, path and matched text,
    /// hashed), for allowlists and SARIF `partialFingerprints`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The token value, for secret rules; only for verification, never for output.
    pub fn secret(&self) -> Option<&SecretString> {
        self.secret.as_ref()
    }

    /// The verification result, once checked.
    pub fn liveness(&self) -> Option<Liveness> {
        self.live
    }

    /// Records the verification result.
    pub fn set_liveness(&mut self, live: Liveness) {
        self.live = Some(live);
    }
}

impl fmt::Debug for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finding")
            .field("rule", &self.rule.id)
            .field("path", &self.path)
            .field("line", &self.line)
            .field("column", &self.column)
            .field("redacted", &self.redacted)
            .field("live", &self.live)
            .finish()
    }
}

/// Counts from a scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Files read and searched.
    pub files_scanned: u64,
    /// Bytes read and searched.
    pub bytes_scanned: u64,
    /// Files skipped because they contain a NUL byte in their first 8 KiB.
    pub skipped_binary: u64,
    /// Files skipped because they are larger than the limit.
    pub skipped_large: u64,
    /// Findings silenced by an allowlist (inline `nbtoken:ignore` lines are not counted).
    pub suppressed: u64,
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Report {
    /// Findings, sorted by path, line and column.
    pub findings: Vec<Finding>,
    /// Counts.
    pub stats: Stats,
    /// Problems that did not stop the scan (unreadable files, broken links).
    pub warnings: Vec<String>,
}

/// When a scan should fail: `--fail-on`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailOn {
    min_severity: Option<Severity>,
    rules: Vec<&'static str>,
}

impl FailOn {
    /// Fails on any finding (the default).
    pub fn any() -> Self {
        Self { min_severity: Some(Severity::Low), rules: Vec::new() }
    }

    /// Parses `--fail-on` values: `any`, `never`, a severity (`low`,
    /// `medium`, `high`: that or worse), rule ids, or a mix of severities and ids.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Self, ScanError> {
        if values.is_empty() {
            return Ok(Self::any());
        }
        let mut out = Self { min_severity: None, rules: Vec::new() };
        for v in values {
            let v = v.as_ref().trim();
            match v {
                "any" => out.min_severity = Some(Severity::Low),
                "never" | "none" => {}
                _ => {
                    if let Some(s) = Severity::parse(v) {
                        out.min_severity = Some(out.min_severity.map_or(s, |m| m.min(s)));
                    } else if let Some(r) = rule(v) {
                        out.rules.push(r.id);
                    } else {
                        return Err(ScanError::FailOn(v.to_owned()));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether this finding makes the scan fail.
    pub fn fails_on(&self, finding: &Finding) -> bool {
        self.min_severity.is_some_and(|m| finding.rule.severity >= m) || self.rules.contains(&finding.rule.id)
    }
}

/// Errors that stop a scan.
#[derive(Debug)]
#[non_exhaustive]
pub enum ScanError {
    /// A path to scan does not exist.
    NoSuchPath(PathBuf),
    /// An allowlist file cannot be read.
    AllowlistIo {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// An allowlist line cannot be used.
    Allowlist {
        /// The file, or `<inline>`.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A `--fail-on` value that is neither a severity nor a rule id.
    FailOn(String),
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::NoSuchPath(p) => write!(f, "no such file or directory: {}", p.display()),
            ScanError::AllowlistIo { path, source } => {
                write!(f, "cannot read allowlist {}: {source}", path.display())
            }
            ScanError::Allowlist { path, line, message } => write!(f, "{path}:{line}: {message}"),
            ScanError::FailOn(v) => {
                let ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
                write!(
                    f,
                    "invalid --fail-on value {v:?}: use any, never, low, medium, high or a rule id ({})",
                    ids.join(", ")
                )
            }
        }
    }
}

impl std::error::Error for ScanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScanError::AllowlistIo { source, .. } => Some(source),
            _ => None,
        }
    }
}
