//! The token a client sends: checked before anything goes on the wire, and
//! turned into the `Authorization` header NetBox expects for its version.
//!
//! NetBox infers the version from the value (`nbt_` → v2), not from the
//! keyword, but it documents `Bearer` for v2 and `Token` for v1, and nbtoken's
//! server flags the other pairings. The client therefore picks the keyword from
//! the value, as pynetbox does, and refuses values that could never
//! authenticate so that a typo costs no round trip and leaves no failed
//! attempt in the server's logs or rate limiter.

use std::fmt;

use nbtoken_core::{Secret, SecretString, TokenError, TokenKey, TokenVersion, V1Plaintext, TOKEN_PREFIX};
use reqwest::header::HeaderValue;

/// The keyword placed before the token in the `Authorization` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer nbt_<key>.<secret>`, for v2 tokens.
    Bearer,
    /// `Authorization: Token <plaintext>`, for legacy v1 tokens.
    Token,
}

impl Scheme {
    /// The keyword as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Bearer => "Bearer",
            Scheme::Token => "Token",
        }
    }
}

/// Why a token value was refused before any request was made. The text
/// describes shapes and lengths only, never the value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenProblem {
    /// The value is empty.
    Empty,
    /// The value starts with the header keyword (`Bearer nbt_…`, `Token abc…`).
    KeywordIncluded(Scheme),
    /// The value contains a space, tab or line break (a trailing newline from
    /// a file or an environment variable, most often).
    Whitespace,
    /// The value is wrapped in quotes.
    Quoted,
    /// The value looks like `<key>.<secret>` without the `nbt_` prefix.
    MissingPrefix,
    /// `nbt_` appears more than once at the front.
    PrefixRepeated,
    /// An `nbt_…` value that is not `nbt_<12 alnum>.<40 alnum>`.
    V2(TokenError),
    /// A value without `nbt_` that is not 40 printable ASCII characters.
    V1(TokenError),
}

impl fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenProblem::Empty => f.write_str("the token is empty"),
            TokenProblem::KeywordIncluded(s) => write!(
                f,
                "the token starts with the keyword '{}'; pass the token alone, the client adds the keyword itself",
                s.as_str()
            ),
            TokenProblem::Whitespace => f.write_str(
                "the token contains whitespace (a trailing newline from a file or environment variable?); remove it",
            ),
            TokenProblem::Quoted => f.write_str("the token is wrapped in quotes; remove them"),
            TokenProblem::MissingPrefix => f.write_str(
                "this looks like a v2 token without its 'nbt_' prefix; a v2 token is nbt_<key>.<secret>",
            ),
            TokenProblem::PrefixRepeated => {
                f.write_str("'nbt_' belongs once, at the front of the token: nbt_<key>.<secret>")
            }
            TokenProblem::V2(e) | TokenProblem::V1(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TokenProblem {}

/// A token value that has the shape of a v2 or a v1 token.
///
/// `Debug` is redacted; the value leaves this type only as a sensitive header.
#[derive(Clone)]
pub struct ApiToken {
    value: SecretString,
    version: TokenVersion,
}

impl ApiToken {
    /// Checks a token value: `nbt_<12 alnum>.<40 alnum>` is v2, 40 printable
    /// ASCII characters without the `nbt_` prefix is v1, anything else is refused.
    pub fn parse(value: SecretString) -> Result<ApiToken, TokenProblem> {
        let version = classify(value.expose())?;
        Ok(ApiToken { value, version })
    }

    /// The token's version, read from its shape.
    pub fn version(&self) -> TokenVersion {
        self.version
    }

    /// The keyword this token is sent with.
    pub fn scheme(&self) -> Scheme {
        match self.version {
            TokenVersion::V2 => Scheme::Bearer,
            TokenVersion::V1 => Scheme::Token,
        }
    }

    /// The `Authorization` header value, marked sensitive so that it is left
    /// out of reqwest's and hyper's debug output.
    pub(crate) fn header_value(&self) -> HeaderValue {
        let text = format!("{} {}", self.scheme().as_str(), self.value.expose());
        // Invariant: `classify` admits only printable ASCII, which is always a
        // valid header value; the fallback is never reached.
        let mut v = HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""));
        v.set_sensitive(true);
        v
    }

    /// The value, for scrubbing it out of error text.
    pub(crate) fn expose(&self) -> &str {
        self.value.expose()
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken").field("version", &self.version).field("value", &"[redacted]").finish()
    }
}

fn is_quote(c: char) -> bool {
    matches!(c, '"' | '\'' | '`' | '\u{201c}' | '\u{201d}' | '\u{2018}' | '\u{2019}')
}

/// Decides the version of a value or says what is wrong with it. The order
/// matters: the most specific explanation of a copy-paste mistake wins over
/// the generic "wrong length".
fn classify(v: &str) -> Result<TokenVersion, TokenProblem> {
    if v.is_empty() {
        return Err(TokenProblem::Empty);
    }
    let first = v.split(|c: char| c.is_whitespace()).next().unwrap_or("");
    if first.len() < v.len() {
        let word = first.trim_matches(is_quote);
        if word.eq_ignore_ascii_case("bearer") {
            return Err(TokenProblem::KeywordIncluded(Scheme::Bearer));
        }
        if word.eq_ignore_ascii_case("token") {
            return Err(TokenProblem::KeywordIncluded(Scheme::Token));
        }
    }
    if v.chars().any(char::is_whitespace) {
        return Err(TokenProblem::Whitespace);
    }
    if v.starts_with(is_quote) || v.ends_with(is_quote) {
        return Err(TokenProblem::Quoted);
    }
    if let Some(rest) = v.strip_prefix(TOKEN_PREFIX) {
        if rest.starts_with(TOKEN_PREFIX) {
            return Err(TokenProblem::PrefixRepeated);
        }
        return Secret::parse_full(v).map(|_| TokenVersion::V2).map_err(TokenProblem::V2);
    }
    if let Some((key, secret)) = v.split_once('.') {
        // Core's key and secret shapes, only without the prefix.
        if TokenKey::is_valid(key) && Secret::parse(secret).is_ok() {
            return Err(TokenProblem::MissingPrefix);
        }
    }
    V1Plaintext::parse(v).map(|_| TokenVersion::V1).map_err(TokenProblem::V1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "eOxiaUBB7417";
    const SECRET: &str = "wTbg8d65KYLMH3bHQ9zULCrxTXiNiug1jIm63wnU";
    const V1: &str = "0123456789abcdef0123456789abcdef01234567";

    fn v2() -> String {
        format!("nbt_{KEY}.{SECRET}")
    }

    /// `expected` is the header keyword for an accepted value, or a fragment
    /// of the refusal message. Every refusal is also checked not to echo the value.
    fn check(input: &str, expected: &str) {
        match ApiToken::parse(SecretString::from(input)) {
            Ok(t) => {
                assert_eq!(t.scheme().as_str(), expected, "{input:?} accepted with the wrong keyword");
                let header = t.header_value();
                assert!(header.is_sensitive());
                assert_eq!(header.to_str().unwrap(), format!("{expected} {input}"));
                assert!(!format!("{t:?}").contains(input));
            }
            Err(problem) => {
                let msg = problem.to_string();
                assert!(msg.contains(expected), "{input:?}: {msg:?} does not contain {expected:?}");
                if input.len() > 8 {
                    assert!(!msg.contains(input), "{input:?} echoed in {msg:?}");
                }
            }
        }
    }

    #[test]
    fn header_choice() {
        check(&v2(), "Bearer");
        check(V1, "Token");
        check(&"A".repeat(40), "Token");
        // Printable punctuation is allowed in v1 values, which NetBox stores as is.
        check("!#$%&()*+,-/:;<=>?@[]^_{|}~0123456789abc", "Token");
        // A v1 value may contain a dot; without the key/secret shape it is v1.
        check("0123456789.abcdef0123456789abcdef0123456", "Token");
        check("0123456789ab.cdef0123456789abcdef0123456", "Token");
    }

    #[test]
    fn malformed_values() {
        check("", "empty");
        check(&format!("Bearer {}", v2()), "keyword 'Bearer'");
        check(&format!("bearer {}", v2()), "keyword 'Bearer'");
        check(&format!("Token {V1}"), "keyword 'Token'");
        check(&format!("TOKEN\t{V1}"), "keyword 'Token'");
        check(&format!("{}\n", v2()), "whitespace");
        check(&format!(" {V1}"), "whitespace");
        check(&format!("{}\r\n", V1), "whitespace");
        check(&format!("\"{}\"", v2()), "quotes");
        check(&format!("'{V1}'"), "quotes");
        check(&format!("\u{201c}{}\u{201d}", v2()), "quotes");
        check(&format!("{KEY}.{SECRET}"), "without its 'nbt_' prefix");
        check(&format!("nbt_nbt_{KEY}.{SECRET}"), "belongs once");
        check(&format!("nbt_{KEY}{SECRET}"), "nbt_<12-character key>.<40-character secret>");
        check(&format!("nbt_{KEY}."), "got 0 characters");
        check(&format!("nbt_{KEY}.{}", &SECRET[..39]), "got 39 characters");
        check(&format!("nbt_{KEY}.{SECRET}x"), "got 41 characters");
        check(&format!("nbt_{}.{SECRET}", &KEY[..11]), "got 11 characters");
        check(&format!("nbt_{KEY}.{}!", &SECRET[..39]), "outside [A-Za-z0-9]");
        check(&V1[..39], "got 39 characters");
        check(&format!("{V1}8"), "got 41 characters");
        check(&format!("{}é", &V1[..39]), "printable ASCII");
        check(&format!("nbt_{}", &V1[..36]), "nbt_<12-character key>");
    }

    #[test]
    fn debug_is_redacted() {
        let t = ApiToken::parse(SecretString::new(v2())).unwrap();
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(SECRET) && !dbg.contains(KEY), "{dbg}");
        assert_eq!(t.version(), TokenVersion::V2);
    }
}
