//! Account rules that are not about passwords: what a username may be (Django's rules).
//!
//! Password rules and hashing are [`crate::password`]'s.

/// Longest username (Django's `User.username`).
pub const MAX_USERNAME_CHARS: usize = 150;

/// Whether `name` is a username Django accepts: 1 to 150 letters, digits and `@ . + - _`.
pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_USERNAME_CHARS
        && name.chars().all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_rules_match_django() {
        for ok in ["admin", "a", "jane.doe@example.com", "x+y-z_1", "Zoë", &"u".repeat(150)] {
            assert!(valid_username(ok), "{ok:?}");
        }
        for bad in ["", "has space", "semi;colon", "slash/", "quote'", &"u".repeat(151)] {
            assert!(!valid_username(bad), "{bad:?}");
        }
    }
}
