//! A string that holds secret material: redacted when printed, zeroized when dropped.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Secret text (a token secret, a v1 plaintext, a pepper).
///
/// `Debug` and `Display` print `[redacted]`; the memory is zeroized on drop;
/// equality is constant-time. The value is reachable only through
/// [`SecretString::expose`], so every place that reads it is greppable.
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a value; the caller gives up its copy.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// Reads the secret. Call sites are the only places a secret can leak from.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (not secret: the client chose it, and it shows on the wire).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Secret text read in place, where it arrived (the `Authorization` header of a request).
///
/// Like [`SecretString`], `Debug` and `Display` print `[redacted]`, equality is constant-time and
/// the value is reachable only through [`SecretStr::expose`]. It copies nothing: parsing a
/// header makes no second copy of the secret, so there is none to zeroize (the request's own
/// buffer is the HTTP server's).
#[derive(Clone, Copy)]
pub struct SecretStr<'a>(&'a str);

impl<'a> SecretStr<'a> {
    /// Wraps a value read in place.
    pub fn new(value: &'a str) -> Self {
        Self(value)
    }

    /// Reads the secret. Call sites are the only places a secret can leak from.
    pub fn expose(&self) -> &'a str {
        self.0
    }

    /// Constant-time equality with a stored secret (the length aside, as for [`SecretString`]).
    pub fn ct_eq(&self, other: &SecretString) -> bool {
        self.0.as_bytes().ct_eq(other.expose().as_bytes()).into()
    }
}

impl fmt::Debug for SecretStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self::new(value.to_owned())
    }
}

impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        // `ct_eq` on slices of unequal length returns early, which only
        // reveals the length; the content is compared in constant time.
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for SecretString {}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = SecretString::from("hunter2-hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(s)), "Some([redacted])");
    }

    #[test]
    fn borrowed_secrets_are_redacted_and_compare_by_content() {
        let s = SecretStr::new("hunter2-hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(format!("{:?}", Some(s)), "Some([redacted])");
        assert!(s.ct_eq(&SecretString::from("hunter2-hunter2")));
        assert!(!s.ct_eq(&SecretString::from("hunter2-hunter3")));
        assert!(!s.ct_eq(&SecretString::from("hunter2")));
        assert_eq!(s.expose(), "hunter2-hunter2");
    }

    #[test]
    fn equality_compares_content() {
        assert_eq!(SecretString::from("abc"), SecretString::from("abc"));
        assert_ne!(SecretString::from("abc"), SecretString::from("abd"));
        assert_ne!(SecretString::from("abc"), SecretString::from("abcd"));
    }
}
