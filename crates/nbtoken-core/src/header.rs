//! Parsing of the `Authorization` header, byte for byte as NetBox 4.5+ does it,
//! plus a diagnosis of the mistakes people make.
//!
//! NetBox's rules (`netbox/netbox/api/authentication.py`): split the header on
//! ASCII whitespace; no parts → anonymous; a first part other than `Token` or
//! `Bearer` (any case) → anonymous; not exactly two parts → error; a value that
//! is not UTF-8 → error; a value starting with `nbt_` is v2 and is split at
//! its first `.` into key and secret, anything else is a v1 plaintext. The
//! keyword never decides the version.
//!
//! Compatibility comes first: whatever NetBox accepts is accepted here, and
//! NetBox's message is the `detail` a client sees. The [`Hint`] travels beside
//! it and never contains secret material.

use std::fmt;

use crate::secret::SecretStr;
use crate::token::{is_alnum, KEY_LEN, SECRET_LEN, TOKEN_PREFIX};

/// NetBox's message for a header with the wrong number of parts.
pub const MSG_WRONG_FORM: &str =
    "Invalid authorization header: Must be in the form \"Bearer <key>.<token>\" or \"Token <token>\"";
/// NetBox's message for a value that is not UTF-8.
pub const MSG_INVALID_CHARACTERS: &str = "Invalid authorization header: Token contains invalid characters";
/// NetBox's message for a v2 value without a dot.
pub const MSG_NO_DOT: &str = "Invalid authorization header: Could not parse key from v2 token. Did you mean to use 'Token' instead of 'Bearer'?";

/// The keyword the client used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyword {
    /// `Token` (any case), NetBox's v1 keyword.
    Token,
    /// `Bearer` (any case), NetBox's v2 keyword.
    Bearer,
}

/// A credential read from the header, in place (nothing is copied). Key and secret are as
/// presented: they are checked against the store, not against the token alphabet, because
/// NetBox does not check them either.
#[derive(Clone, Copy, Debug)]
pub enum Credential<'a> {
    /// A v1 plaintext.
    V1 {
        /// The presented plaintext.
        plaintext: SecretStr<'a>,
    },
    /// A v2 key and secret (the `nbt_` prefix removed once, from the front).
    V2 {
        /// The presented key, public.
        key: &'a str,
        /// The presented secret.
        secret: SecretStr<'a>,
    },
}

impl Credential<'_> {
    /// The version the value announces.
    pub fn version(&self) -> crate::TokenVersion {
        match self {
            Credential::V1 { .. } => crate::TokenVersion::V1,
            Credential::V2 { .. } => crate::TokenVersion::V2,
        }
    }
}

/// A parsed `Authorization` header (borrowing the header's value).
#[derive(Clone, Copy, Debug)]
pub struct AuthHeader<'a> {
    keyword: Keyword,
    credential: Credential<'a>,
    hint: Option<Hint>,
}

/// A header NetBox refuses before looking anything up.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// Not exactly keyword and value.
    WrongForm {
        /// What probably went wrong.
        hint: Option<Hint>,
    },
    /// The value is not valid UTF-8.
    InvalidCharacters,
    /// A v2 value (`nbt_…`) without a dot between key and secret.
    NoDot {
        /// What probably went wrong.
        hint: Option<Hint>,
    },
}

impl HeaderError {
    /// NetBox's exact message, for the `detail` field.
    pub fn detail(&self) -> &'static str {
        match self {
            HeaderError::WrongForm { .. } => MSG_WRONG_FORM,
            HeaderError::InvalidCharacters => MSG_INVALID_CHARACTERS,
            HeaderError::NoDot { .. } => MSG_NO_DOT,
        }
    }

    /// What the client should do, where it can be told.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            HeaderError::WrongForm { hint } | HeaderError::NoDot { hint } => *hint,
            HeaderError::InvalidCharacters => Some(Hint::NotUtf8),
        }
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.detail())
    }
}

impl std::error::Error for HeaderError {}

/// A diagnosis of a likely mistake. Its text never contains secret material:
/// only lengths, keywords and shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hint {
    /// `Bearer Bearer nbt_…` or `Token Token …`.
    DoubledKeyword,
    /// A keyword and nothing after it.
    MissingValue,
    /// More than one word after the keyword.
    ExtraWords,
    /// The value is wrapped in quotes.
    Quoted,
    /// A v2 token sent with the `Token` keyword (accepted, as NetBox does).
    V2WithTokenKeyword,
    /// A v1 token sent with the `Bearer` keyword (accepted, as NetBox does).
    V1WithBearerKeyword,
    /// A value shaped `<key>.<secret>` without the `nbt_` prefix.
    MissingPrefix,
    /// `nbt_` repeated, at the front or before the secret.
    PrefixRepeated,
    /// A v2 value with no `.` between key and secret.
    MissingDot,
    /// A v2 key that is not 12 characters of `[A-Za-z0-9]`.
    KeyShape {
        /// Characters in the presented key.
        len: usize,
    },
    /// A v2 secret that is not 40 characters of `[A-Za-z0-9]`.
    SecretShape {
        /// Characters in the presented secret.
        len: usize,
    },
    /// A v1 value that is not 40 characters.
    V1Length {
        /// Characters in the presented value.
        len: usize,
    },
    /// The header contains bytes that are not UTF-8.
    NotUtf8,
    /// More than one `Authorization` header was sent.
    DuplicateHeader,
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hint::DoubledKeyword => f.write_str(
                "the keyword appears twice; send exactly one: 'Authorization: Bearer nbt_<key>.<secret>'",
            ),
            Hint::MissingValue => f.write_str("the keyword is not followed by a token"),
            Hint::ExtraWords => f.write_str(
                "the token must be a single word after the keyword; remove spaces or trailing text",
            ),
            Hint::Quoted => f.write_str("remove the quotes around the token"),
            Hint::V2WithTokenKeyword => f.write_str(
                "a v2 token (nbt_…) was sent with the 'Token' keyword; it works, but send it as 'Bearer nbt_<key>.<secret>'",
            ),
            Hint::V1WithBearerKeyword => f.write_str(
                "a v1 token was sent with the 'Bearer' keyword; it works, but v1 tokens are deprecated: replace it with a v2 token",
            ),
            Hint::MissingPrefix => f.write_str(
                "this looks like a v2 token without its 'nbt_' prefix; send 'Bearer nbt_<key>.<secret>'",
            ),
            Hint::PrefixRepeated => {
                f.write_str("'nbt_' belongs once, at the front of the token: 'nbt_<key>.<secret>'")
            }
            Hint::MissingDot => f.write_str(
                "a v2 token is 'nbt_<key>.<secret>' with a '.' between the 12-character key and the 40-character secret",
            ),
            Hint::KeyShape { len } => write!(
                f,
                "the key part has {len} characters; v2 keys are {KEY_LEN} characters of [A-Za-z0-9] (was the token copied whole?)"
            ),
            Hint::SecretShape { len } => write!(
                f,
                "the secret part has {len} characters; v2 secrets are {SECRET_LEN} characters of [A-Za-z0-9] (was the token copied whole?)"
            ),
            Hint::V1Length { len } => write!(
                f,
                "the token has {len} characters; v1 tokens are {SECRET_LEN} (was it copied whole?)"
            ),
            Hint::NotUtf8 => f.write_str(
                "the header contains bytes that are not UTF-8 (typographic quotes or a copy-paste artefact?)",
            ),
            Hint::DuplicateHeader => f.write_str("send exactly one Authorization header"),
        }
    }
}

/// ASCII whitespace as Python's `bytes.split()` sees it (includes vertical tab,
/// which Rust's `is_ascii_whitespace` does not).
fn is_py_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn keyword(word: &[u8]) -> Option<Keyword> {
    if word.eq_ignore_ascii_case(b"token") {
        Some(Keyword::Token)
    } else if word.eq_ignore_ascii_case(b"bearer") {
        Some(Keyword::Bearer)
    } else {
        None
    }
}

impl<'a> AuthHeader<'a> {
    /// Parses the raw header value. `Ok(None)` means the request is anonymous
    /// (no header, an empty one, or another scheme such as `Basic`).
    pub fn parse(raw: &'a [u8]) -> Result<Option<AuthHeader<'a>>, HeaderError> {
        let mut words = raw.split(|&b| is_py_whitespace(b)).filter(|w| !w.is_empty());
        let Some(first) = words.next() else { return Ok(None) };
        let Some(kw) = keyword(first) else { return Ok(None) };
        let value = words.next();
        let extra = words.next();
        let value = match (value, extra) {
            (Some(v), None) => v,
            (None, _) => return Err(HeaderError::WrongForm { hint: Some(Hint::MissingValue) }),
            (Some(v), Some(_)) => {
                let hint = if keyword(v).is_some() { Hint::DoubledKeyword } else { Hint::ExtraWords };
                return Err(HeaderError::WrongForm { hint: Some(hint) });
            }
        };
        let value = std::str::from_utf8(value).map_err(|_| HeaderError::InvalidCharacters)?;

        let Some(rest) = value.strip_prefix(TOKEN_PREFIX) else {
            let hint = diagnose_v1(kw, value);
            let credential = Credential::V1 { plaintext: SecretStr::new(value) };
            return Ok(Some(AuthHeader { keyword: kw, credential, hint }));
        };
        let Some((key, secret)) = rest.split_once('.') else {
            let hint = if rest.starts_with(TOKEN_PREFIX) { Hint::PrefixRepeated } else { Hint::MissingDot };
            return Err(HeaderError::NoDot { hint: Some(hint) });
        };
        let hint = diagnose_v2(kw, key, secret);
        let credential = Credential::V2 { key, secret: SecretStr::new(secret) };
        Ok(Some(AuthHeader { keyword: kw, credential, hint }))
    }

    /// The keyword used.
    pub fn keyword(&self) -> Keyword {
        self.keyword
    }

    /// The credential presented.
    pub fn credential(&self) -> &Credential<'a> {
        &self.credential
    }

    /// Takes the credential out.
    pub fn into_credential(self) -> Credential<'a> {
        self.credential
    }

    /// A diagnosis of a likely mistake, if any. A header can be accepted and
    /// still carry a hint (a v2 token sent with `Token`).
    pub fn hint(&self) -> Option<Hint> {
        self.hint
    }
}

fn is_quoted(value: &str) -> bool {
    let quote = |c: char| matches!(c, '"' | '\'' | '\u{201c}' | '\u{201d}' | '\u{2018}' | '\u{2019}');
    value.starts_with(quote) || value.ends_with(quote)
}

fn diagnose_v1(kw: Keyword, value: &str) -> Option<Hint> {
    if is_quoted(value) {
        return Some(Hint::Quoted);
    }
    if let Some((key, secret)) = value.split_once('.') {
        if key.len() == KEY_LEN && secret.len() == SECRET_LEN && is_alnum(key) && is_alnum(secret) {
            return Some(Hint::MissingPrefix);
        }
    }
    let len = value.chars().count();
    if len != SECRET_LEN {
        return Some(Hint::V1Length { len });
    }
    (kw == Keyword::Bearer).then_some(Hint::V1WithBearerKeyword)
}

fn diagnose_v2(kw: Keyword, key: &str, secret: &str) -> Option<Hint> {
    if key.starts_with(TOKEN_PREFIX) || secret.starts_with(TOKEN_PREFIX) {
        return Some(Hint::PrefixRepeated);
    }
    if is_quoted(secret) {
        return Some(Hint::Quoted);
    }
    if key.len() != KEY_LEN || !is_alnum(key) {
        return Some(Hint::KeyShape { len: key.chars().count() });
    }
    if secret.len() != SECRET_LEN || !is_alnum(secret) {
        return Some(Hint::SecretShape { len: secret.chars().count() });
    }
    (kw == Keyword::Token).then_some(Hint::V2WithTokenKeyword)
}

#[cfg(test)]
mod tests;
