//! The pure heart of nbtoken: NetBox's API token scheme, with no I/O and no async.
//!
//! Everything here takes values and returns values, so it can be fuzzed and
//! property-tested in microseconds. The crate knows nothing of HTTP or SQL:
//! the server hands it the raw `Authorization` header bytes, the stored token
//! row, the client address and the time, and gets back a decision.
//!
//! - [`header`] parses an `Authorization` header exactly as NetBox 4.5+ does
//!   and diagnoses the usual mistakes.
//! - [`token`] holds the token parts ([`TokenKey`], [`Secret`],
//!   [`V1Plaintext`]) and their generation from the OS CSPRNG.
//! - [`pepper`] holds the server-side peppers and computes digests.
//! - [`verify`] makes the authentication decision.

#![forbid(unsafe_code)]

pub mod audit;
pub mod digest;
pub mod header;
pub mod issue;
pub mod migrate;
pub mod password;
pub mod pepper;
pub mod secret;
pub mod token;
pub mod verify;

pub use digest::{Digest, DigestError};
pub use header::{AuthHeader, Credential, HeaderError, Hint};
pub use issue::{issue, rotate, IssueError, IssueRequest, Issued, RotateError, Rotated, V1Policy};
pub use pepper::{Pepper, PepperError, PepperId, PepperRing};
pub use secret::SecretString;
pub use token::{Secret, TokenError, TokenKey, TokenVersion, V1Plaintext, TOKEN_PREFIX};
pub use verify::{
    decide, Access, AllowedIps, Denial, PreviousSecret, StoredCredential, StoredToken, Verified, VerifyInput,
};
