//! The operations layer: every rule about who may see, change or delete which
//! user or token, and every operation on them (token lifecycle, users,
//! provisioning, migration). The HTTP API, the CLI and the web UI parse their
//! input, call an operation here and render its result; none of them decides a
//! rule of its own. Each change announces itself once, so every cache learns of it.
//!
//! An operation is a method of [`Ops`] taking the [`Actor`] that asks; it answers with
//! a value or an [`Error`] whose messages are NetBox's, so every front end says the same.

#![forbid(unsafe_code)]

use nbtoken_core::{PepperRing, V1Policy};

pub mod actor;
pub mod announce;
pub mod error;
pub mod input;
pub mod json;
pub mod migrate;
pub mod passwords;
pub mod signin;
pub mod tokens;
pub mod users;

pub use actor::Actor;
pub use announce::{Announce, Quiet};
pub use error::{Busy, Error, Forbidden, Invalid};
pub use passwords::{Inline, Passwords};
pub use tokens::{Created, Credentials, TokenChanges, TokenSpec, UserRef, Verified};
pub use users::{AccountChanges, NewAccount};

/// What every operation works with: the store, the peppers and v1 policy, the password
/// hasher, and whom to tell of changes.
pub struct Ops<'a, S, P> {
    /// Persistence.
    pub store: &'a S,
    /// Peppers for v2 tokens.
    pub peppers: &'a PepperRing,
    /// Whether v1 tokens may be created.
    pub v1_policy: V1Policy,
    /// Hashes and checks passwords.
    pub passwords: &'a P,
    /// Told of every change.
    pub announce: &'a dyn Announce,
}

#[cfg(test)]
mod tests;
