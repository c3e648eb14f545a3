//! Password rules (what a new password and a username must look like) and the
//! [`Passwords`] seam that hashes and checks them.
//!
//! The server runs argon2 on its bounded workers; the CLI, one command at a time, runs it
//! inline ([`Inline`]).

use std::future::Future;

use nbtoken_core::SecretString;

use crate::error::{Busy, Error, Invalid};

/// Longest password accepted (characters).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Django's message for a username outside its character set.
pub const MSG_BAD_USERNAME: &str =
    "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.";

/// Hashes and checks passwords (argon2id PHC strings).
pub trait Passwords: Send + Sync {
    /// A new argon2id PHC string for `password`.
    fn hash(&self, password: SecretString) -> impl Future<Output = Result<String, Busy>> + Send;
    /// Whether `password` matches the PHC string `phc` (a malformed hash never matches).
    fn verify(&self, password: SecretString, phc: String) -> impl Future<Output = Result<bool, Busy>> + Send;
}

/// argon2 in the calling thread, with `nbtoken_core::password`: for the CLI.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inline;

impl Passwords for Inline {
    async fn hash(&self, password: SecretString) -> Result<String, Busy> {
        nbtoken_core::password::hash_password(password.expose()).map_err(|_| Busy::HashFailed)
    }

    async fn verify(&self, password: SecretString, phc: String) -> Result<bool, Busy> {
        Ok(nbtoken_core::password::verify_password(password.expose(), &phc))
    }
}

/// A username as Django accepts it (1–150 letters, digits and `@.+-_`).
pub fn check_username(name: &str) -> Result<(), Error> {
    if nbtoken_core::password::valid_username(name) {
        Ok(())
    } else {
        Err(Error::field("username", MSG_BAD_USERNAME))
    }
}

/// A new password as NetBox accepts it: DRF's own "not blank" check first (it trims
/// whitespace), then NetBox 4.7's default validators, whose errors NetBox reports as
/// non-field errors: all of them under `__all__`.
pub fn check_new_password(password: &str) -> Result<(), Error> {
    if password.trim().is_empty() {
        return Err(Error::field("password", "This field may not be blank."));
    }
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(Error::field(
            "password",
            format!("Ensure this field has no more than {MAX_PASSWORD_CHARS} characters."),
        ));
    }
    nbtoken_core::password::check_password(password).map_err(|weak| {
        Error::Invalid(Invalid::messages(
            "__all__",
            weak.messages().iter().map(|m| (*m).to_owned()).collect(),
        ))
    })
}
