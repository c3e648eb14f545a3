//! Password hashing for user accounts (argon2id, PHC strings).

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

// Username rules live in `account`; this path stays for the crates that name it.
pub use crate::account::{valid_username, MAX_USERNAME_CHARS};

/// A password could not be hashed (the RNG or the parameters failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordError;

impl std::fmt::Display for PasswordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("password hashing failed")
    }
}

impl std::error::Error for PasswordError {}

/// Shortest password accepted, by the API and the CLI alike: NetBox 4.7's default
/// `AUTH_PASSWORD_VALIDATORS` set Django's `MinimumLengthValidator` to 12.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Django's `MinimumLengthValidator` message for [`MIN_PASSWORD_CHARS`].
pub const MSG_PASSWORD_TOO_SHORT: &str =
    "This password is too short. It must contain at least 12 characters.";
/// NetBox's `AlphanumericPasswordValidator` messages; it reports only the first that applies.
pub const MSG_PASSWORD_NO_DIGIT: &str = "Password must have at least one numeral.";
/// See [`MSG_PASSWORD_NO_DIGIT`].
pub const MSG_PASSWORD_NO_UPPER: &str = "Password must have at least one uppercase letter.";
/// See [`MSG_PASSWORD_NO_DIGIT`].
pub const MSG_PASSWORD_NO_LOWER: &str = "Password must have at least one lowercase letter.";

/// A password NetBox 4.7's default validators refuse, with every reason in NetBox's words and order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeakPassword(Vec<&'static str>);

impl WeakPassword {
    /// The reasons, as NetBox lists them (length first, then the first missing character class).
    pub fn messages(&self) -> &[&'static str] {
        &self.0
    }
}

impl std::fmt::Display for WeakPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

impl std::error::Error for WeakPassword {}

/// Applies NetBox 4.7's default password rules: at least [`MIN_PASSWORD_CHARS`] characters
/// (Unicode scalar values, as Python counts), a digit, an uppercase and a lowercase letter.
/// Django runs every validator and reports each one's error; NetBox's
/// `AlphanumericPasswordValidator` stops at its first missing class.
pub fn check_password(password: &str) -> Result<(), WeakPassword> {
    let mut problems = Vec::new();
    if password.chars().count() < MIN_PASSWORD_CHARS {
        problems.push(MSG_PASSWORD_TOO_SHORT);
    }
    if !password.chars().any(char::is_numeric) {
        problems.push(MSG_PASSWORD_NO_DIGIT);
    } else if !password.chars().any(char::is_uppercase) {
        problems.push(MSG_PASSWORD_NO_UPPER);
    } else if !password.chars().any(char::is_lowercase) {
        problems.push(MSG_PASSWORD_NO_LOWER);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(WeakPassword(problems))
    }
}

/// A random password for a new or reset account: 24 characters of `[A-Za-z0-9]` from the OS
/// CSPRNG (~143 bits), drawn again until it passes [`check_password`] (about one draw in 30
/// lacks a digit or a case).
pub fn generate_password() -> Result<crate::SecretString, crate::TokenError> {
    loop {
        let candidate = crate::token::random_alnum(24)?;
        if check_password(&candidate).is_ok() {
            return Ok(crate::SecretString::new(candidate.to_string()));
        }
    }
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
    fn generated_passwords_pass_the_rules() {
        let (a, b) = (generate_password().unwrap(), generate_password().unwrap());
        assert_eq!(a.expose().len(), 24);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()) && a.expose() != b.expose());
        for _ in 0..200 {
            assert_eq!(check_password(generate_password().unwrap().expose()), Ok(()));
        }
    }

    fn check(password: &str, expected: &[&str]) {
        let got = check_password(password).err().map(|e| e.messages().to_vec()).unwrap_or_default();
        assert_eq!(got, expected, "{password:?}");
    }

    #[test]
    fn password_rules_match_netbox_4_7_defaults() {
        check("Abcdefghijk1", &[]);
        check("ÉÉÉÉÉÉÉÉÉÉé٣", &[]); // twelve characters, not bytes; Unicode digits and cases count
        check("Abcdefghij1", &[MSG_PASSWORD_TOO_SHORT]);
        check("abc", &[MSG_PASSWORD_TOO_SHORT, MSG_PASSWORD_NO_DIGIT]);
        check("", &[MSG_PASSWORD_TOO_SHORT, MSG_PASSWORD_NO_DIGIT]);
        // The alphanumeric validator names only the first class missing.
        check("abcdefghijkl", &[MSG_PASSWORD_NO_DIGIT]);
        check("abcdefghijk1", &[MSG_PASSWORD_NO_UPPER]);
        check("ABCDEFGHIJK1", &[MSG_PASSWORD_NO_LOWER]);
        check("123456789012", &[MSG_PASSWORD_NO_UPPER]);
        check("admin-password-123", &[MSG_PASSWORD_NO_UPPER]);
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
