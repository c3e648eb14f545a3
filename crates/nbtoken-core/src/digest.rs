//! The stored HMAC-SHA256 digest of a v2 secret.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// An HMAC-SHA256 digest, stored by NetBox as 64 lowercase hex characters.
///
/// Compared in constant time, zeroized on drop and redacted in `Debug`:
/// a digest is not the secret, but together with a leaked pepper it allows
/// an offline search, so it is treated with the same care.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Digest([u8; 32]);

/// A stored digest that is not 64 hex characters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DigestError {
    /// Not 64 characters of `[0-9a-fA-F]`.
    Malformed,
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a stored token digest must be 64 hexadecimal characters")
    }
}

impl std::error::Error for DigestError {}

impl Digest {
    /// Wraps raw HMAC output.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses NetBox's stored form (64 hex characters; upper case is accepted).
    pub fn from_hex(s: &str) -> Result<Self, DigestError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| DigestError::Malformed)?;
        Ok(Self(out))
    }

    /// NetBox's stored form: 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &Digest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_is_lowercase() {
        let hexs = "3766fc743fb3785f467f2b88cbd5de2de762112800be4ef8526be08b5f5e4239";
        let d = Digest::from_hex(hexs).unwrap();
        assert_eq!(d.to_hex(), hexs);
        let upper = Digest::from_hex(&hexs.to_uppercase()).unwrap();
        assert!(upper.ct_eq(&d));
    }

    #[test]
    fn malformed_hex_is_refused() {
        for bad in ["", "00", &"g".repeat(64), &"0".repeat(63), &"0".repeat(66)] {
            assert_eq!(Digest::from_hex(bad).unwrap_err(), DigestError::Malformed, "{bad:?}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let d = Digest::from_bytes([0xab; 32]);
        assert_eq!(format!("{d:?}"), "Digest([redacted])");
    }
}
