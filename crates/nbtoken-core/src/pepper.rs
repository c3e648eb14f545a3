//! Server-side peppers: the HMAC keys that turn a v2 secret into its stored digest.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::digest::Digest;
use crate::secret::SecretString;

type HmacSha256 = Hmac<Sha256>;

/// Minimum pepper length in characters, as NetBox requires.
pub const MIN_PEPPER_CHARS: usize = 50;

/// The largest pepper id: NetBox stores `pepper_id` in a `PositiveSmallIntegerField`.
pub const MAX_PEPPER_ID: u16 = 32767;

/// A pepper's identifier, stored beside each v2 digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PepperId(u16);

impl PepperId {
    /// Accepts 0 to 32767, the range of NetBox's `pepper_id` column.
    pub fn new(id: u16) -> Result<Self, PepperError> {
        if id <= MAX_PEPPER_ID {
            Ok(Self(id))
        } else {
            Err(PepperError::IdOutOfRange(id.to_string()))
        }
    }

    /// Parses an id written as text (a config key or an env var suffix).
    pub fn parse(s: &str) -> Result<Self, PepperError> {
        let id: u16 = s.trim().parse().map_err(|_| PepperError::IdOutOfRange(s.to_owned()))?;
        Self::new(id)
    }

    /// The numeric id.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for PepperId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Errors about peppers. They name the pepper id, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PepperError {
    /// A pepper shorter than [`MIN_PEPPER_CHARS`].
    TooShort {
        /// The pepper's id.
        id: PepperId,
        /// Its length in characters.
        len: usize,
    },
    /// An id that is not an integer from 0 to 32767.
    IdOutOfRange(String),
    /// The same id given twice.
    Duplicate(PepperId),
    /// No peppers at all: v2 tokens can be neither created nor verified.
    NoneConfigured,
    /// A token names a pepper id that is not configured.
    Unknown(PepperId),
}

impl fmt::Display for PepperError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PepperError::TooShort { id, len } => write!(
                f,
                "pepper {id} is {len} characters long; peppers must be at least {MIN_PEPPER_CHARS} characters (generate one with `nbtoken pepper generate`)"
            ),
            PepperError::IdOutOfRange(id) => {
                write!(f, "pepper id {id:?} is not an integer from 0 to {MAX_PEPPER_ID}")
            }
            PepperError::Duplicate(id) => write!(f, "pepper {id} is configured twice"),
            PepperError::NoneConfigured => f.write_str(
                "no peppers are configured: v2 tokens need at least one (set NBTOKEN_PEPPER_<ID> or [peppers] in the config file; NetBox calls this API_TOKEN_PEPPERS)",
            ),
            PepperError::Unknown(id) => {
                write!(f, "pepper {id} is not configured (check NBTOKEN_PEPPER_<ID> / [peppers])")
            }
        }
    }
}

impl std::error::Error for PepperError {}

/// One pepper: at least 50 characters of secret text.
///
/// It keeps the HMAC state after absorbing the key, so that a verification
/// clones that state instead of deriving the key pads again.
#[derive(Clone)]
pub struct Pepper {
    id: PepperId,
    // Kept only so the value is zeroized on drop and can be re-derived; the
    // hot path uses `keyed`. The `hmac` crate does not zeroize its own state,
    // which holds the key pads (documented in SECURITY notes).
    _value: SecretString,
    keyed: HmacSha256,
}

impl Pepper {
    /// Builds a pepper, refusing one shorter than 50 characters.
    pub fn new(id: PepperId, value: SecretString) -> Result<Self, PepperError> {
        let len = value.expose().chars().count();
        if len < MIN_PEPPER_CHARS {
            return Err(PepperError::TooShort { id, len });
        }
        // HMAC accepts keys of any length, so this cannot fail.
        let keyed = <HmacSha256 as Mac>::new_from_slice(value.expose().as_bytes())
            .map_err(|_| PepperError::TooShort { id, len })?;
        Ok(Self { id, _value: value, keyed })
    }

    /// The pepper's id.
    pub fn id(&self) -> PepperId {
        self.id
    }

    /// HMAC-SHA256(key = pepper, message = secret), as NetBox computes it.
    pub fn digest(&self, secret: &str) -> Digest {
        let mut mac = self.keyed.clone();
        mac.update(secret.as_bytes());
        Digest::from_bytes(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pepper").field("id", &self.id).field("value", &"[redacted]").finish()
    }
}

/// A new random pepper value: 64 characters of `[A-Za-z0-9]` from the OS CSPRNG (about 381 bits).
pub fn generate_value() -> Result<SecretString, crate::token::TokenError> {
    crate::token::random_alnum(64).map(|s| SecretString::new(s.to_string()))
}

/// All configured peppers. The highest id hashes new tokens; every id verifies.
#[derive(Clone, Debug, Default)]
pub struct PepperRing {
    peppers: BTreeMap<PepperId, Pepper>,
}

impl PepperRing {
    /// An empty ring: v2 tokens can then be neither created nor verified.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Builds a ring from `(id, value)` pairs, refusing short peppers and duplicate ids.
    pub fn new(entries: impl IntoIterator<Item = (PepperId, SecretString)>) -> Result<Self, PepperError> {
        let mut peppers = BTreeMap::new();
        for (id, value) in entries {
            let pepper = Pepper::new(id, value)?;
            if peppers.insert(id, pepper).is_some() {
                return Err(PepperError::Duplicate(id));
            }
        }
        Ok(Self { peppers })
    }

    /// The pepper that hashes new tokens: the one with the highest id.
    pub fn current(&self) -> Result<&Pepper, PepperError> {
        self.peppers.values().next_back().ok_or(PepperError::NoneConfigured)
    }

    /// The pepper with this id.
    pub fn get(&self, id: PepperId) -> Result<&Pepper, PepperError> {
        if self.peppers.is_empty() {
            return Err(PepperError::NoneConfigured);
        }
        self.peppers.get(&id).ok_or(PepperError::Unknown(id))
    }

    /// Configured ids, lowest first.
    pub fn ids(&self) -> impl Iterator<Item = PepperId> + '_ {
        self.peppers.keys().copied()
    }

    /// Whether no pepper is configured.
    pub fn is_empty(&self) -> bool {
        self.peppers.is_empty()
    }

    /// Digest of `secret` under the current pepper, with that pepper's id.
    pub fn hash_new(&self, secret: &str) -> Result<(PepperId, Digest), PepperError> {
        let p = self.current()?;
        Ok((p.id(), p.digest(secret)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pepper(s: &str) -> SecretString {
        SecretString::from(s)
    }

    const LONG: &str = "0123456789012345678901234567890123456789012345678901234567890";

    #[test]
    fn short_pepper_is_refused_naming_only_the_id() {
        let secret_value = "short-pepper-value-that-must-not-leak";
        let err = PepperRing::new([(PepperId::new(3).unwrap(), pepper(secret_value))]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("pepper 3"), "{msg}");
        assert!(msg.contains("at least 50"), "{msg}");
        assert!(!msg.contains(secret_value));
    }

    #[test]
    fn length_counts_characters_like_python() {
        // 50 two-byte characters: 100 bytes but 50 characters, accepted;
        // 49 of them are refused even though that is 98 bytes.
        assert!(Pepper::new(PepperId::new(1).unwrap(), pepper(&"é".repeat(50))).is_ok());
        assert!(Pepper::new(PepperId::new(1).unwrap(), pepper(&"é".repeat(49))).is_err());
    }

    #[test]
    fn newest_pepper_hashes_and_all_verify() {
        let ring = PepperRing::new([
            (PepperId::new(2).unwrap(), pepper(LONG)),
            (PepperId::new(10).unwrap(), pepper(&LONG.replace('0', "x"))),
            (PepperId::new(7).unwrap(), pepper(&LONG.replace('1', "y"))),
        ])
        .unwrap();
        assert_eq!(ring.current().unwrap().id().get(), 10);
        assert_eq!(ring.ids().map(PepperId::get).collect::<Vec<_>>(), vec![2, 7, 10]);
        assert!(ring.get(PepperId::new(2).unwrap()).is_ok());
        assert_eq!(
            ring.get(PepperId::new(3).unwrap()).unwrap_err(),
            PepperError::Unknown(PepperId::new(3).unwrap())
        );
    }

    #[test]
    fn empty_ring_says_peppers_are_missing() {
        let ring = PepperRing::empty();
        let err = ring.hash_new("x").unwrap_err();
        assert_eq!(err, PepperError::NoneConfigured);
        assert!(err.to_string().contains("API_TOKEN_PEPPERS"));
        assert!(err.to_string().contains("NBTOKEN_PEPPER_"));
    }

    #[test]
    fn duplicate_and_out_of_range_ids_are_refused() {
        let id = PepperId::new(1).unwrap();
        assert_eq!(
            PepperRing::new([(id, pepper(LONG)), (id, pepper(LONG))]).unwrap_err(),
            PepperError::Duplicate(id)
        );
        assert!(PepperId::new(32768).is_err());
        assert!(PepperId::parse("-1").is_err());
        assert!(PepperId::parse("abc").is_err());
        assert_eq!(PepperId::parse("42").unwrap().get(), 42);
    }

    #[test]
    fn generated_pepper_is_accepted() {
        let v = generate_value().unwrap();
        assert_eq!(v.len(), 64);
        assert!(Pepper::new(PepperId::new(1).unwrap(), v).is_ok());
    }

    #[test]
    fn debug_is_redacted() {
        let p = Pepper::new(PepperId::new(1).unwrap(), pepper(LONG)).unwrap();
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("0123456789"), "{dbg}");
    }
}
