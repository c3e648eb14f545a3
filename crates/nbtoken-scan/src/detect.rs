//! Finding rule matches in one file's bytes: positions, redaction, fingerprints, inline ignores.

use std::collections::HashMap;
use std::sync::LazyLock;

use nbtoken_core::SecretString;
use regex::bytes::{Regex, RegexSet};
use sha2::{Digest, Sha256};

use crate::rules::{
    MatchKind, Rule, MIN_ENTROPY, OTHER_SERVICES, RULES, TOKEN_IN_ENV, V1_TOKEN_LITERAL, V2_TOKEN,
};
use crate::Finding;

/// The marker that silences findings on its line (`nbtoken:ignore`, or
/// `nbtoken:ignore rule-id[,rule-id]` for some rules only).
pub const IGNORE_MARKER: &str = "nbtoken:ignore";

struct Compiled {
    rules: Vec<CompiledRule>,
    /// Any rule keyword (gitleaks' prefilter); stops at the first, skips most files fast.
    keywords: Regex,
    /// Every rule's pattern, so one pass over a file says which rules to run.
    set: RegexSet,
    other_services: Regex,
    redact_runs: regex::Regex,
}

struct CompiledRule {
    rule: &'static Rule,
    regex: Regex,
    path: Option<regex::Regex>,
}

// Invariant for the `expect`s below: the patterns are constants, and a test
// (`every_rule_compiles`) compiles each of them.
#[allow(clippy::expect_used)]
static COMPILED: LazyLock<Compiled> = LazyLock::new(|| {
    let rules = RULES
        .iter()
        .map(|&rule| CompiledRule {
            rule,
            regex: Regex::new(&format!("(?-u){}", rule.pattern)).expect("rule pattern compiles"),
            path: rule.path_pattern.map(|p| regex::Regex::new(p).expect("path pattern compiles")),
        })
        .collect();
    let mut keywords: Vec<String> =
        RULES.iter().flat_map(|r| r.keywords.iter().map(|k| regex::escape(k))).collect();
    keywords.sort_unstable();
    keywords.dedup();
    let keywords = Regex::new(&format!("(?i-u){}", keywords.join("|"))).expect("keyword pattern compiles");
    let set =
        RegexSet::new(RULES.iter().map(|r| format!("(?-u){}", r.pattern))).expect("rule patterns compile");
    Compiled {
        rules,
        keywords,
        set,
        other_services: Regex::new(&format!("(?-u){OTHER_SERVICES}")).expect("service pattern compiles"),
        redact_runs: regex::Regex::new(r"[A-Za-z0-9]{20,}").expect("redaction pattern compiles"),
    }
});

/// Scans one file's contents. `path` is the path as reported (with `/`
/// separators); it also decides which path-restricted rules apply.
pub fn scan_bytes(path: &str, text: &[u8]) -> Vec<Finding> {
    let compiled = &*COMPILED;
    // Every match of a rule contains one of its keywords, so these two
    // prefilters only save time: most files stop at one of them.
    if !compiled.keywords.is_match(text) {
        return Vec::new();
    }
    let matched = compiled.set.matches(text);
    if !matched.matched_any() {
        return Vec::new();
    }
    let mut raw: Vec<Raw> = Vec::new();
    for (i, c) in compiled.rules.iter().enumerate() {
        if !matched.matched(i) {
            continue;
        }
        if let Some(p) = &c.path {
            if !p.is_match(path) {
                continue;
            }
        }
        for caps in c.regex.captures_iter(text) {
            // Invariant: group 0 is always present in a match.
            let Some(whole) = caps.get(0) else { continue };
            match c.rule.kind {
                MatchKind::Secret => {
                    let Some(secret) = caps.iter().skip(1).flatten().next() else { continue };
                    if entropy(secret.as_bytes()) <= MIN_ENTROPY {
                        continue;
                    }
                    let name = &text[whole.start()..secret.start()];
                    if c.rule.id != V2_TOKEN.id && compiled.other_services.is_match(name) {
                        continue;
                    }
                    raw.push(Raw {
                        rule: c.rule,
                        start: secret.start(),
                        end: secret.end(),
                        whole: whole.range(),
                    });
                }
                MatchKind::Pattern => {
                    // Point at the keyword, not at the `Authorization` or quote before it.
                    let m = whole.as_bytes();
                    let at = find_ci(m, b"token").unwrap_or(0);
                    raw.push(Raw {
                        rule: c.rule,
                        start: whole.start() + at,
                        end: whole.end(),
                        whole: whole.range(),
                    });
                }
            }
        }
    }
    if raw.is_empty() {
        return Vec::new();
    }
    dedup_secrets(&mut raw);
    let lines = LineIndex::new(text);
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let (line_no, line_start, line_end) = lines.locate(r.start);
        if ignored_inline(&text[line_start..line_end], r.rule.id) {
            continue;
        }
        let column = char_count(&text[line_start..r.start]) + 1;
        let span_end = r.end.min(line_end);
        let end_column = column + char_count(&text[r.start..span_end]);
        let span = &text[r.start..r.end];
        let (redacted, secret) = match r.rule.kind {
            MatchKind::Secret => {
                let s = String::from_utf8_lossy(span).into_owned();
                (redact(&s), Some(SecretString::new(s)))
            }
            MatchKind::Pattern => {
                // The closing quote that ended the match adds nothing to read.
                let s = String::from_utf8_lossy(span);
                let s = s.trim_end_matches(['"', '\'', '`']).trim_end();
                (compiled.redact_runs.replace_all(s, "[redacted]").into_owned(), None)
            }
        };
        out.push(Finding {
            rule: r.rule,
            path: path.to_owned(),
            line: line_no,
            column,
            end_column,
            redacted,
            fingerprint: fingerprint(r.rule, path, &text[r.whole.clone()]),
            secret,
            live: None,
        });
    }
    out.sort_by(|a, b| (a.line, a.column, a.rule.id).cmp(&(b.line, b.column, b.rule.id)));
    out
}

/// Shows what identifies a token without revealing it: a v2 token's first
/// four key characters (the key is public; NetBox lists tokens by it), a v1
/// value's last four (NetBox shows v1 tokens by their tail).
pub fn redact(value: &str) -> String {
    match value.strip_prefix(nbtoken_core::TOKEN_PREFIX) {
        Some(rest) => {
            let head: String = rest.chars().take(4).collect();
            format!("{}{head}…", nbtoken_core::TOKEN_PREFIX)
        }
        None => {
            let n = value.chars().count();
            let tail: String = value.chars().skip(n.saturating_sub(4)).collect();
            format!("…{tail}")
        }
    }
}

/// Shannon entropy in bits per byte, computed as gitleaks computes it, so
/// that the exported rules skip the same placeholders.
pub fn entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0usize; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let len = bytes.len() as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / len).map(|p| -p * p.log2()).sum()
}

struct Raw {
    rule: &'static Rule,
    start: usize,
    end: usize,
    whole: std::ops::Range<usize>,
}

/// One secret is one finding: where several secret rules match the same
/// value, the most specific wins (a token in a `.env` file, then a full v2
/// token, then a v1 literal).
fn dedup_secrets(raw: &mut Vec<Raw>) {
    let rank = |r: &Rule| match r.id {
        id if id == TOKEN_IN_ENV.id => 0,
        id if id == V2_TOKEN.id => 1,
        id if id == V1_TOKEN_LITERAL.id => 2,
        _ => 3,
    };
    let mut best: HashMap<(usize, usize), usize> = HashMap::new();
    for (i, r) in raw.iter().enumerate() {
        if r.rule.kind != MatchKind::Secret {
            continue;
        }
        best.entry((r.start, r.end))
            .and_modify(|b| {
                if rank(r.rule) < rank(raw[*b].rule) {
                    *b = i;
                }
            })
            .or_insert(i);
    }
    let mut i = 0;
    raw.retain(|r| {
        let keep = r.rule.kind != MatchKind::Secret || best.get(&(r.start, r.end)) == Some(&i);
        i += 1;
        keep
    });
}

/// Whether the line carries `nbtoken:ignore` for this rule.
fn ignored_inline(line: &[u8], rule_id: &str) -> bool {
    let Some(at) = find_ci(line, IGNORE_MARKER.as_bytes()) else { return false };
    let rest = &line[at + IGNORE_MARKER.len()..];
    let rest = String::from_utf8_lossy(rest);
    let ids: Vec<&str> = rest
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .take_while(|w| w.starts_with("nbtoken-"))
        .collect();
    ids.is_empty() || ids.contains(&rule_id)
}

fn fingerprint(rule: &Rule, path: &str, matched: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"nbtoken-scan/1\0");
    h.update(rule.id.as_bytes());
    h.update(b"\0");
    h.update(path.as_bytes());
    h.update(b"\0");
    h.update(matched);
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn find_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle))
}

/// Characters in UTF-8 text (bytes that do not continue a character); other
/// encodings count one per byte.
fn char_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| (b & 0xC0) != 0x80).count()
}

/// Line starts, built only for files that have findings.
struct LineIndex<'a> {
    text: &'a [u8],
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a [u8]) -> Self {
        let mut starts = vec![0];
        starts.extend(text.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i + 1));
        Self { text, starts }
    }

    /// The 1-based line of `offset`, and that line's byte range without its line break.
    fn locate(&self, offset: usize) -> (usize, usize, usize) {
        let idx = self.starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let start = self.starts[idx];
        let mut end = self.starts.get(idx + 1).map_or(self.text.len(), |&n| n - 1);
        if end > start && self.text[end - 1] == b'\r' {
            end -= 1;
        }
        (idx + 1, start, end)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_rule_compiles() {
        assert_eq!(COMPILED.rules.len(), RULES.len());
        assert_eq!(COMPILED.set.len(), RULES.len());
    }

    #[test]
    fn redaction_keeps_at_most_four_characters() {
        // Built at run time: full tokens are kept out of non-test paths.
        let v2 = format!("nbt_{}.{}", "AbCdEfGhIjKl", "s".repeat(40));
        assert_eq!(redact(&v2), "nbt_AbCd…");
        assert_eq!(redact("0123456789abcdef0123456789abcdef01234567"), "…4567");
    }

    #[test]
    fn entropy_separates_placeholders_from_values() {
        assert!(entropy(&[b'x'; 40]) <= MIN_ENTROPY);
        assert!(entropy(b"0123456789abcdef0123456789abcdef01234567") > MIN_ENTROPY);
    }

    #[test]
    fn inline_ignore_with_and_without_rule_ids() {
        assert!(ignored_inline(b"x = 1  # nbtoken:ignore", "nbtoken-v2-token"));
        assert!(ignored_inline(b"x = 1  # nbtoken:ignore nbtoken-v2-token", "nbtoken-v2-token"));
        assert!(!ignored_inline(b"x = 1  # nbtoken:ignore nbtoken-v2-token", "nbtoken-token-in-env"));
        assert!(ignored_inline(b"x // NBTOKEN:IGNORE nbtoken-a,nbtoken-b", "nbtoken-b"));
        assert!(!ignored_inline(b"x = 1", "nbtoken-v2-token"));
    }

    #[test]
    fn columns_count_characters() {
        let idx = LineIndex::new("ab\r\né x\n".as_bytes());
        assert_eq!(idx.locate(0), (1, 0, 2));
        assert_eq!(idx.locate(5), (2, 4, 8));
        assert_eq!(char_count("é ".as_bytes()), 2);
    }
}
