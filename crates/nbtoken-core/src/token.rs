//! Token parts — the public key, the v2 secret, the v1 plaintext — and their generation.

use std::fmt;

use rand::rngs::OsRng;
use rand::TryRngCore;
use zeroize::Zeroizing;

use crate::secret::SecretString;

/// The prefix that marks a v2 token value (`nbt_<key>.<secret>`).
pub const TOKEN_PREFIX: &str = "nbt_";
/// Length of a v2 key.
pub const KEY_LEN: usize = 12;
/// Length of a v2 secret and of a v1 plaintext.
pub const SECRET_LEN: usize = 40;

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Token format version, as NetBox stores it in `users_token.version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenVersion {
    /// Legacy: the plaintext is stored and sent as `Token <plaintext>`.
    V1,
    /// Current: `Bearer nbt_<key>.<secret>`, only an HMAC digest is stored.
    V2,
}

impl TokenVersion {
    /// The `Authorization` keyword a client should send with a token of this version.
    pub fn keyword(self) -> &'static str {
        match self {
            TokenVersion::V1 => "Token",
            TokenVersion::V2 => "Bearer",
        }
    }

    /// The integer NetBox stores and serialises (1 or 2).
    pub fn as_u8(self) -> u8 {
        match self {
            TokenVersion::V1 => 1,
            TokenVersion::V2 => 2,
        }
    }

    /// Parses NetBox's integer form.
    pub fn from_u8(v: u8) -> Result<Self, TokenError> {
        match v {
            1 => Ok(TokenVersion::V1),
            2 => Ok(TokenVersion::V2),
            _ => Err(TokenError::UnknownVersion(v)),
        }
    }
}

/// Errors from building or generating token parts. Messages never contain secret text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// A key that is not 12 characters of `[A-Za-z0-9]`.
    InvalidKey {
        /// Length of the rejected key in characters.
        len: usize,
    },
    /// A v2 secret that is not 40 characters of `[A-Za-z0-9]`.
    InvalidSecret {
        /// Length of the rejected secret in characters.
        len: usize,
        /// Whether every character was in `[A-Za-z0-9]`.
        alphanumeric: bool,
    },
    /// A v1 plaintext that is not 40 printable ASCII characters.
    InvalidV1Plaintext {
        /// Length of the rejected value in characters.
        len: usize,
    },
    /// A v1 plaintext starting with `nbt_`: NetBox would read it as a v2 token,
    /// so it could never authenticate.
    V1PlaintextLooksLikeV2,
    /// A full `nbt_<key>.<secret>` value that does not have that shape.
    InvalidFullToken,
    /// A version other than 1 or 2.
    UnknownVersion(u8),
    /// The operating system's random number generator failed.
    Rng,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::InvalidKey { len } => write!(
                f,
                "a token key must be {KEY_LEN} characters of [A-Za-z0-9] (got {len} characters)"
            ),
            TokenError::InvalidSecret { len, alphanumeric } => {
                write!(f, "a v2 token secret must be {SECRET_LEN} characters of [A-Za-z0-9] (got {len} characters")?;
                if !alphanumeric {
                    f.write_str(", some outside [A-Za-z0-9]")?;
                }
                f.write_str(")")
            }
            TokenError::InvalidV1Plaintext { len } => write!(
                f,
                "a v1 token must be {SECRET_LEN} printable ASCII characters without spaces (got {len} characters)"
            ),
            TokenError::V1PlaintextLooksLikeV2 => write!(
                f,
                "a v1 token must not start with '{TOKEN_PREFIX}': it would be read as a v2 token and could never be used"
            ),
            TokenError::InvalidFullToken => write!(
                f,
                "a v2 token must look like {TOKEN_PREFIX}<12-character key>.<40-character secret>"
            ),
            TokenError::UnknownVersion(v) => write!(f, "unknown token version {v} (expected 1 or 2)"),
            TokenError::Rng => f.write_str("the operating system's random number generator failed"),
        }
    }
}

impl std::error::Error for TokenError {}

/// The public half of a v2 token: 12 characters of `[A-Za-z0-9]`, unique, used for lookup.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenKey(String);

impl TokenKey {
    /// Parses a key, refusing anything but 12 characters of `[A-Za-z0-9]`.
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        if Self::is_valid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(TokenError::InvalidKey { len: s.chars().count() })
        }
    }

    /// Whether `s` is a well-formed key, without allocating (the request path asks this).
    pub fn is_valid(s: &str) -> bool {
        s.len() == KEY_LEN && is_alnum(s)
    }

    /// A fresh key from the OS CSPRNG.
    pub fn generate() -> Result<Self, TokenError> {
        Ok(Self(random_alnum(KEY_LEN)?.to_string()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKey({})", self.0)
    }
}

/// The private half of a v2 token: 40 characters of `[A-Za-z0-9]`, shown once, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(SecretString);

impl Secret {
    /// Parses a client-chosen or imported secret. NetBox accepts any string
    /// here; nbtoken insists on the shape it generates, so that a weak secret
    /// cannot be chosen.
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        if s.len() == SECRET_LEN && is_alnum(s) {
            Ok(Self(SecretString::from(s)))
        } else {
            Err(TokenError::InvalidSecret { len: s.chars().count(), alphanumeric: is_alnum(s) })
        }
    }

    /// A fresh secret from the OS CSPRNG (about 238 bits).
    pub fn generate() -> Result<Self, TokenError> {
        let s = random_alnum(SECRET_LEN)?;
        Ok(Self(SecretString::new(s.to_string())))
    }

    /// The secret text; see [`SecretString::expose`].
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The full value a client sends after `Bearer `: `nbt_<key>.<secret>`.
    pub fn full_token(&self, key: &TokenKey) -> SecretString {
        SecretString::new(format!("{TOKEN_PREFIX}{}.{}", key.as_str(), self.expose()))
    }

    /// Splits a full `nbt_<key>.<secret>` value, as a user pastes it for import.
    pub fn parse_full(s: &str) -> Result<(TokenKey, Secret), TokenError> {
        let rest = s.trim().strip_prefix(TOKEN_PREFIX).ok_or(TokenError::InvalidFullToken)?;
        let (key, secret) = rest.split_once('.').ok_or(TokenError::InvalidFullToken)?;
        Ok((TokenKey::parse(key)?, Secret::parse(secret)?))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A legacy v1 token value: 40 printable ASCII characters, stored in plaintext by NetBox.
#[derive(Clone, PartialEq, Eq)]
pub struct V1Plaintext(SecretString);

impl V1Plaintext {
    /// Parses a client-chosen v1 value for creation or import.
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let printable = s.bytes().all(|b| b.is_ascii_graphic());
        if s.len() != SECRET_LEN || !printable {
            return Err(TokenError::InvalidV1Plaintext { len: s.chars().count() });
        }
        if s.starts_with(TOKEN_PREFIX) {
            return Err(TokenError::V1PlaintextLooksLikeV2);
        }
        Ok(Self(SecretString::from(s)))
    }

    /// Wraps a value read back from storage, which is trusted to be what was stored.
    pub fn from_stored(s: String) -> Self {
        Self(SecretString::new(s))
    }

    /// A fresh v1 value from the OS CSPRNG.
    pub fn generate() -> Result<Self, TokenError> {
        let s = random_alnum(SECRET_LEN)?;
        Ok(Self(SecretString::new(s.to_string())))
    }

    /// The plaintext; see [`SecretString::expose`].
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The value as a [`SecretString`].
    pub fn as_secret(&self) -> &SecretString {
        &self.0
    }

    /// NetBox's sanitised form: 34 asterisks and the last six characters.
    pub fn partial(&self) -> String {
        let v = self.expose();
        let tail = &v[v.len().saturating_sub(6)..];
        format!("{}{tail}", "*".repeat(34))
    }
}

impl fmt::Debug for V1Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("V1Plaintext([redacted])")
    }
}

pub(crate) fn is_alnum(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `len` characters drawn uniformly from [`ALPHABET`] with the OS CSPRNG.
///
/// Rejection sampling: bytes of 248 and above are thrown away, because 248 is
/// the largest multiple of 62 below 256, so every character stays equally likely.
pub(crate) fn random_alnum(len: usize) -> Result<Zeroizing<String>, TokenError> {
    let mut out = Zeroizing::new(String::with_capacity(len));
    let mut buf = Zeroizing::new([0u8; 64]);
    while out.len() < len {
        OsRng.try_fill_bytes(&mut buf[..]).map_err(|_| TokenError::Rng)?;
        for &b in buf.iter() {
            if b < 248 && out.len() < len {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_parts_have_the_netbox_shape() {
        let key = TokenKey::generate().unwrap();
        let secret = Secret::generate().unwrap();
        assert!(TokenKey::parse(key.as_str()).is_ok());
        assert!(Secret::parse(secret.expose()).is_ok());
        let v1 = V1Plaintext::generate().unwrap();
        assert!(V1Plaintext::parse(v1.expose()).is_ok());
    }

    #[test]
    fn generation_is_not_constant() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_ne!(TokenKey::generate().unwrap(), TokenKey::generate().unwrap());
    }

    #[test]
    fn generated_characters_cover_the_alphabet() {
        // 200 secrets × 40 chars = 8000 draws; each of the 62 characters is
        // expected ~129 times, so missing one means a broken sampler.
        let mut seen = [0u32; 128];
        for _ in 0..200 {
            for b in Secret::generate().unwrap().expose().bytes() {
                seen[usize::from(b)] += 1;
            }
        }
        for &c in ALPHABET.iter() {
            assert!(seen[usize::from(c)] > 40, "character {} drawn too rarely", char::from(c));
        }
    }

    #[test]
    fn key_parse_rejects_wrong_shapes() {
        for bad in ["", "short", "eOxiaUBB74170", "eOxiaUBB741!", "eOxiaUBB741é"] {
            assert!(TokenKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(TokenKey::parse("eOxiaUBB7417").is_ok());
    }

    #[test]
    fn secret_errors_do_not_echo_the_secret() {
        let err = Secret::parse("tooShortButVerySecret").unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains("tooShortButVerySecret"));
        assert!(msg.contains("got 21 characters"), "{msg}");
        let err = Secret::parse("wTbg8d65KYLMH3bHQ9zULCrxTXiNiug1jIm63wn!").unwrap_err();
        assert!(err.to_string().contains("outside [A-Za-z0-9]"));
    }

    #[test]
    fn v1_plaintext_rules() {
        assert!(V1Plaintext::parse(&"A".repeat(40)).is_ok());
        assert!(V1Plaintext::parse("0123456789abcdef0123456789abcdef01234567").is_ok());
        assert_eq!(
            V1Plaintext::parse(&format!("nbt_{}", "a".repeat(36))),
            Err(TokenError::V1PlaintextLooksLikeV2)
        );
        assert!(V1Plaintext::parse(&"A".repeat(39)).is_err());
        assert!(V1Plaintext::parse(&format!("{} ", "A".repeat(39))).is_err());
    }

    #[test]
    fn v1_partial_matches_netbox() {
        let v = V1Plaintext::parse("0123456789abcdef0123456789abcdef01234567").unwrap();
        assert_eq!(v.partial(), "**********************************234567");
    }

    #[test]
    fn full_token_round_trips() {
        let key = TokenKey::parse("eOxiaUBB7417").unwrap();
        let secret = Secret::parse("wTbg8d65KYLMH3bHQ9zULCrxTXiNiug1jIm63wnU").unwrap();
        let full = secret.full_token(&key);
        let (k2, s2) = Secret::parse_full(full.expose()).unwrap();
        assert_eq!(k2, key);
        assert_eq!(s2, secret);
        assert_eq!(Secret::parse_full("eOxiaUBB7417.x"), Err(TokenError::InvalidFullToken));
    }

    #[test]
    fn debug_output_is_redacted() {
        let s = Secret::parse("wTbg8d65KYLMH3bHQ9zULCrxTXiNiug1jIm63wnU").unwrap();
        assert!(!format!("{s:?}").contains("wTbg"));
        let v = V1Plaintext::parse(&"A".repeat(40)).unwrap();
        assert!(!format!("{v:?}").contains("AAAA"));
    }
}
