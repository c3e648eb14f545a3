//! Allowlists: findings to leave out, by path, by rule and path, or by fingerprint.
//!
//! One entry per line; `#` starts a comment line.
//!
//! ```text
//! docs/examples/                              # every rule, gitignore syntax
//! nbtoken-v1-header-construction:legacy/**    # one rule under a path
//! fingerprint:3f1c0a9be2d47a15                # one finding (also: the bare 16 hex digits)
//! ```
//!
//! Paths are matched relative to the scanned root, with gitignore's rules.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::{rule, Finding, ScanError};

/// The allowlist file a scanned directory may hold.
pub const DEFAULT_ALLOWLIST: &str = ".nbtoken-scan-allow";

/// Parsed allowlist entries.
#[derive(Clone, Debug)]
pub struct Allowlist {
    all_rules: Gitignore,
    per_rule: Vec<(&'static str, Gitignore)>,
    fingerprints: HashSet<String>,
}

impl Default for Allowlist {
    fn default() -> Self {
        Self { all_rules: Gitignore::empty(), per_rule: Vec::new(), fingerprints: HashSet::new() }
    }
}

impl Allowlist {
    /// Reads and parses an allowlist file.
    pub fn load(path: &Path) -> Result<Self, ScanError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScanError::AllowlistIo { path: path.to_owned(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses allowlist text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ScanError> {
        let mut all = GitignoreBuilder::new("");
        let mut per_rule: Vec<(&'static str, GitignoreBuilder)> = Vec::new();
        let mut fingerprints = HashSet::new();
        let err =
            |line: usize, message: String| ScanError::Allowlist { path: origin.to_owned(), line, message };
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(fp) = line.strip_prefix("fingerprint:") {
                let fp = fp.trim();
                if !is_fingerprint(fp) {
                    return Err(err(line_no, format!("{fp:?} is not a fingerprint (16 hex digits)")));
                }
                fingerprints.insert(fp.to_ascii_lowercase());
                continue;
            }
            if is_fingerprint(line) {
                fingerprints.insert(line.to_ascii_lowercase());
                continue;
            }
            let (builder, glob) = match line.split_once(':') {
                Some((id, glob)) if id.starts_with("nbtoken-") => {
                    let Some(r) = rule(id) else {
                        return Err(err(line_no, format!("unknown rule id {id:?}")));
                    };
                    let idx = match per_rule.iter().position(|(rid, _)| *rid == r.id) {
                        Some(idx) => idx,
                        None => {
                            per_rule.push((r.id, GitignoreBuilder::new("")));
                            per_rule.len() - 1
                        }
                    };
                    (&mut per_rule[idx].1, glob.trim())
                }
                _ => (&mut all, line),
            };
            builder.add_line(None, glob).map_err(|e| err(line_no, format!("bad path pattern: {e}")))?;
        }
        let build = |b: GitignoreBuilder, line: usize| b.build().map_err(|e| err(line, e.to_string()));
        Ok(Self {
            all_rules: build(all, 0)?,
            per_rule: per_rule
                .into_iter()
                .map(|(id, b)| build(b, 0).map(|g| (id, g)))
                .collect::<Result<_, _>>()?,
            fingerprints,
        })
    }

    /// Whether this finding, at `relative` (its path below the scanned root), is allowed.
    pub fn allows(&self, finding: &Finding, relative: &Path) -> bool {
        if self.fingerprints.contains(finding.fingerprint()) {
            return true;
        }
        let hit = |g: &Gitignore| {
            !g.is_empty()
                && !relative.as_os_str().is_empty()
                && g.matched_path_or_any_parents(relative, false).is_ignore()
        };
        hit(&self.all_rules) || self.per_rule.iter().any(|(id, g)| *id == finding.rule().id && hit(g))
    }

    /// Whether the allowlist has no entries.
    pub fn is_empty(&self) -> bool {
        self.all_rules.is_empty() && self.per_rule.is_empty() && self.fingerprints.is_empty()
    }
}

fn is_fingerprint(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The allowlist for one root: the configured one, else the root's own file.
pub(crate) fn for_root(configured: Option<&Allowlist>, root: &Path) -> Result<Option<Allowlist>, ScanError> {
    if let Some(a) = configured {
        return Ok(Some(a.clone()));
    }
    let candidate: PathBuf = root.join(DEFAULT_ALLOWLIST);
    if root.is_dir() && candidate.is_file() {
        return Allowlist::load(&candidate).map(Some);
    }
    Ok(None)
}
