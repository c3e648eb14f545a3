//! The rules: stable ids, severities, advice, and the patterns they match.
//!
//! Each pattern is written in the syntax that Rust's `regex` and Go's RE2
//! share, so that the gitleaks export ([`crate::gitleaks`]) uses the very
//! same text the scanner compiles.

use std::fmt;

/// How bad a finding is; `--fail-on` compares against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth fixing when the code is next touched.
    Low,
    /// An integration that stops working when v1 tokens are removed.
    Medium,
    /// A secret in the tree: revoke it.
    High,
}

impl Severity {
    /// The lowercase name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }

    /// Parses `low`, `medium` or `high`.
    pub fn parse(s: &str) -> Option<Severity> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            _ => None,
        }
    }

    /// The SARIF `level` for this severity.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Severity::Low => "note",
            Severity::Medium => "warning",
            Severity::High => "error",
        }
    }

    /// GitHub code scanning's `security-severity` score (0.0–10.0).
    pub fn security_severity(self) -> &'static str {
        match self {
            Severity::Low => "3.0",
            Severity::Medium => "5.5",
            Severity::High => "8.5",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule's match is: a secret (redacted, verifiable) or a code pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchKind {
    /// The match holds a token value; it is redacted and can be verified.
    Secret,
    /// The match is code that builds a header; it holds no secret.
    Pattern,
}

/// One detection rule.
#[derive(Debug)]
pub struct Rule {
    /// Stable id, used in output, `--fail-on`, allowlists and `nbtoken:ignore`.
    pub id: &'static str,
    /// A short name for SARIF's `rules[].name`.
    pub name: &'static str,
    /// How bad a finding is.
    pub severity: Severity,
    /// What the rule finds, in one sentence.
    pub description: &'static str,
    /// What to do about a finding.
    pub hint: &'static str,
    /// Whether the match is a secret or a code pattern.
    pub kind: MatchKind,
    /// The pattern, in the syntax Rust `regex` and Go RE2 share. A secret
    /// rule's first non-empty capture group is the secret.
    pub pattern: &'static str,
    /// Lowercase words one of which must appear in a matching file (gitleaks `keywords`).
    pub keywords: &'static [&'static str],
    /// When set, the rule applies only to paths this pattern matches (gitleaks `path`).
    pub path_pattern: Option<&'static str>,
}

/// A name that says "this holds a token": `token`, `NETBOX_TOKEN`, `api_key`,
/// `apiKey`, `x-api-key`, `Authorization`. It must end the name, so
/// `tokenizer_rev` is not one.
macro_rules! token_name {
    () => {
        r"(?i:[a-z0-9_.-]*(?:token|api[_-]?key|apikey|authorization))"
    };
}

/// The value of a v1 token: 40 characters of `[A-Za-z0-9]` (NetBox generates
/// hex, nbtoken alphanumerics), followed by no further word character.
macro_rules! v1_value {
    () => {
        r"([A-Za-z0-9]{40})\b"
    };
}

/// A v2 token: `nbt_`, a 12-character key, a dot and a 40-character secret.
macro_rules! v2_value {
    () => {
        r"nbt_[A-Za-z0-9]{12}\.[A-Za-z0-9]{40}"
    };
}

/// Where an `Authorization` header is being given a value: `Authorization:`,
/// `"Authorization": "`, `("Authorization", `, `Authorization = '`.
macro_rules! auth_context {
    () => {
        r#"(?i:authorization)["']?[ \t]*[:=,][ \t]*["'`]?"#
    };
}

/// Full v2 tokens anywhere.
pub const V2_TOKEN: Rule = Rule {
    id: "nbtoken-v2-token",
    name: "NetBoxV2Token",
    severity: Severity::High,
    description: "A full NetBox v2 API token (nbt_<key>.<secret>) is in the tree.",
    hint: "Revoke this token (nbtoken token delete, or in NetBox), issue a new one and load it from a secret store or the environment at run time.",
    kind: MatchKind::Secret,
    pattern: concat!("(", v2_value!(), r")\b"),
    keywords: &["nbt_"],
    path_pattern: None,
};

/// v1 token values beside a token-ish name, an `Authorization` header or the `Token` keyword.
pub const V1_TOKEN_LITERAL: Rule = Rule {
    id: "nbtoken-v1-token-literal",
    name: "NetBoxV1TokenLiteral",
    severity: Severity::High,
    description: "A 40-character NetBox v1 token value is assigned to a token-like name or sent with the `Token` keyword.",
    hint: "Revoke this v1 token and replace it with a v2 token sent as `Authorization: Bearer nbt_<key>.<secret>`, loaded from a secret store.",
    kind: MatchKind::Secret,
    pattern: concat!(
        "(?:",
        // NETBOX_TOKEN = "…", token: "…", "Authorization": "Token …", getenv("TOKEN", "…"), and typed
        // declarations (`token: &str = "…"`, `var apiKey string = "…"`); the type must follow `:` or a
        // space so that `tokenizer_rev = …` is not read as `token` typed `izer_rev`.
        token_name!(),
        r#"["']?(?:(?::[ \t]*|[ \t]+)&?(?:'static[ \t]+)?[A-Za-z][A-Za-z0-9_]*)?[ \t]*(?::=|=>|=|:|,)[ \t]*[fFrRbB]?["'`]?(?:Token[ \t]+)?"#,
        // --token 0123…
        r#"|--?(?i:[a-z0-9-]*(?:token|api-?key))[ \t]+["']?"#,
        // Postman: {"key": "netbox_token", "value": "…"}, the two possibly on separate lines
        r#"|"key"[ \t]*:[ \t]*""#,
        token_name!(),
        r#""[ \t]*,\s*"value"[ \t]*:[ \t]*"(?:Token[ \t]+)?"#,
        // Token 0123… (the keyword itself is the context)
        r"|\bToken[ \t]+",
        ")",
        v1_value!(),
    ),
    keywords: &["token", "key", "authorization"],
    path_pattern: None,
};

/// Code that builds a `Token …` header from a variable.
pub const V1_HEADER_CONSTRUCTION: Rule = Rule {
    id: "nbtoken-v1-header-construction",
    name: "NetBoxV1HeaderConstruction",
    severity: Severity::Medium,
    description: "Code builds an `Authorization: Token …` header, the v1 scheme that NetBox is removing.",
    hint: "Use `Authorization: Bearer nbt_<key>.<secret>` with a v2 token from a secret store.",
    kind: MatchKind::Pattern,
    pattern: concat!(
        "(?:",
        // Authorization: Token {{token}} / "Authorization: Token $NETBOX_TOKEN"  nbtoken:ignore
        // (`Token <token>` is left out: that is documentation describing the scheme.)
        auth_context!(),
        r"Token[ \t]+(?:\{|\$[{A-Za-z_]|%[sv(])",
        // A string that is exactly `Token ` and one interpolation: f"Token {t}", `Token ${t}`,  nbtoken:ignore
        // "Token %s", "Token {}", "Token {{ netbox_token }}", or `"Token " + t`.  nbtoken:ignore
        r#"|["'`]Token[ \t]+(?:\{\{?[^{}"'`\n]*\}\}?["'`]|\$\{[^}\n]*\}["'`]|\$[A-Za-z_][A-Za-z0-9_]*["'`]|%[sv]["'`]|%\([A-Za-z_][A-Za-z0-9_]*\)s["'`]|["'`][ \t]*(?:\+|\.\.?[ \t]*[A-Za-z_$]))"#,
        ")",
    ),
    keywords: &["token"],
    path_pattern: None,
};

/// A v2 token sent with the `Token` keyword.
pub const V2_WITH_TOKEN_KEYWORD: Rule = Rule {
    id: "nbtoken-v2-with-token-keyword",
    name: "NetBoxV2WithTokenKeyword",
    severity: Severity::Low,
    description: "A v2 token (nbt_…) is sent with the v1 `Token` keyword.",
    hint: "Send v2 tokens as `Authorization: Bearer nbt_<key>.<secret>`; NetBox reads the version from the value, but `Token` marks the header as v1 to every reader and proxy.",
    kind: MatchKind::Pattern,
    pattern: concat!("(?:", auth_context!(), r#"|["'`])(?i:token)[ \t]+nbt_"#),
    keywords: &["nbt_"],
    path_pattern: None,
};

/// Tokens in `.env` and configuration files.
pub const TOKEN_IN_ENV: Rule = Rule {
    id: "nbtoken-token-in-env",
    name: "NetBoxTokenInEnvFile",
    severity: Severity::High,
    description: "A NetBox token (v1 or v2) is written into a .env or configuration file.",
    hint: "Keep tokens out of committed files: inject NETBOX_TOKEN from a secret store at deploy time, add the file to .gitignore, and revoke this token.",
    kind: MatchKind::Secret,
    pattern: concat!(
        r"(?i:[a-z0-9_.-]*(?:token|api[_-]?key|apikey))",
        r#"["']?[ \t]*[=:][ \t]*["']?((?:"#,
        r"nbt_[A-Za-z0-9]{12}\.",
        r")?[A-Za-z0-9]{40})\b",
    ),
    keywords: &["token", "key"],
    path_pattern: Some(
        r"(?i)(?:^|[/\\])(?:\.env(?:\.[^/\\]*)?|[^/\\]*\.env|\.envrc|[^/\\]*\.(?:ini|cfg|conf|cnf|toml|properties))$",
    ),
};

/// Every rule, in the order they are reported and exported.
pub static RULES: [&Rule; 5] =
    [&V2_TOKEN, &V1_TOKEN_LITERAL, &V1_HEADER_CONSTRUCTION, &V2_WITH_TOKEN_KEYWORD, &TOKEN_IN_ENV];

/// Looks a rule up by its id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().copied().find(|r| r.id == id)
}

/// Names that hold tokens for other services; a 40-character value beside
/// them is not a NetBox token (old GitHub tokens are 40 hex characters).
pub(crate) const OTHER_SERVICES: &str = r"(?i)(?:github|gitlab|\bgh_|slack|npm|pypi|docker|sentry|aws|heroku|stripe|twilio|huggingface|\bhf_|openai|codecov|sonar|circleci|travis|telegram|discord|csrf|xsrf)";

/// A secret whose Shannon entropy (bits per byte, as gitleaks computes it)
/// is at most this is a placeholder (`xxxx…`, `0000…`) and is not reported.
/// Random v1 values score about 3.7 (hex) to 5 (alphanumeric).
pub const MIN_ENTROPY: f64 = 3.0;
