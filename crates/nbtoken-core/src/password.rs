//! Password hashing for user accounts (argon2id, PHC strings).

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// A password could not be hashed (the RNG or the parameters failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordError;

impl std::fmt::Display for PasswordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("password hashing failed")
    }
}

impl std::error::Error for PasswordError {}

/// Shortest password accepted (Django's `MinimumLengthValidator` default), by the API and the CLI alike.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Longest username (Django's `User.username`).
pub const MAX_USERNAME_CHARS: usize = 150;

/// A random password for a new or reset account: 24 characters of `[A-Za-z0-9]` from the OS CSPRNG (~143 bits).
pub fn generate_password() -> Result<crate::SecretString, crate::TokenError> {
    crate::token::random_alnum(24).map(|s| crate::SecretString::new(s.to_string()))
}

/// Whether `password` is long enough.
pub fn password_long_enough(password: &str) -> bool {
    password.chars().count() >= MIN_PASSWORD_CHARS
}

/// Whether `name` is a username Django accepts: 1 to 150 letters, digits and `@ . + - _`.
pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_USERNAME_CHARS
        && name.chars().all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
}

/// Hashes a password with argon2id (default parameters) and a random salt.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError)
}

/// Checks a password against a stored PHC string; a malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A PHC string that matches no password, for spending the same time on an
/// unknown username as on a known one.
pub fn dummy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3pYLV0bSRVrN4GqNB2Ri3NXyk8ZOlS4RzXdfYiC0Uv0"
}

#[cfg(test)]
mod tests {
    #[test]
    fn account_rules_match_django() {
        for ok in ["admin", "a", "jane.doe@example.com", "x+y-z_1", "Zoë", &"u".repeat(150)] {
            assert!(valid_username(ok), "{ok:?}");
        }
        for bad in ["", "has space", "semi;colon", "slash/", "quote'", &"u".repeat(151)] {
            assert!(!valid_username(bad), "{bad:?}");
        }
        assert!(password_long_enough("12345678") && password_long_enough("ééééééé€"));
        assert!(!password_long_enough("1234567") && !password_long_enough(""));
        let (a, b) = (generate_password().unwrap(), generate_password().unwrap());
        assert_eq!(a.expose().len(), 24);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()) && a.expose() != b.expose());
    }

    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a phc string"));
        assert!(!verify_password("x", dummy_hash()));
    }
}
