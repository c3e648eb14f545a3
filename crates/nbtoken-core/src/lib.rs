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
//! - [`stored`] is the stored-token model ([`StoredToken`]) the store fills and the decision reads.
//! - [`policy`] is the operator's [`V1Policy`].
//! - [`verify`] makes the whole authentication decision: the header stage
//!   ([`verify::read_header`]) and the row stage ([`decide`]).
//! - [`account`] holds the username rules, [`password`] the password rules and hashing.

#![forbid(unsafe_code)]

pub mod account;
pub mod audit;
pub mod digest;
pub mod header;
pub mod issue;
pub mod migrate;
pub mod password;
pub mod pepper;
pub mod policy;
pub mod secret;
pub mod stored;
pub mod token;
pub mod verify;

pub use digest::{Digest, DigestError};
pub use header::{AuthHeader, Credential, HeaderError, Hint};
pub use issue::{issue, rotate, IssueError, Issued, RotateError, Rotated, TokenSpec};
pub use pepper::{Pepper, PepperError, PepperId, PepperRing};
pub use policy::V1Policy;
pub use secret::{SecretStr, SecretString};
pub use stored::{AllowedIps, PreviousSecret, StoredCredential, StoredToken};
pub use token::{Secret, TokenError, TokenKey, TokenVersion, V1Plaintext, TOKEN_PREFIX};
pub use verify::{decide, Access, Denial, Verified, VerifyInput};
