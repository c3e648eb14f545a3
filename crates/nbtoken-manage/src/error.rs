//! The one error of every operation: what went wrong, in words a front end can show as they are.
//!
//! Messages are NetBox's (DRF's) where NetBox has one, so the API answers with them unchanged
//! and the CLI prints the same words. None of them repeats a value the caller sent.

use std::fmt;

use nbtoken_store::StoreError;

/// Why an operation did not happen.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Input refused field by field: DRF's `{"field": ["message", …]}`.
    Invalid(Invalid),
    /// A request refused as a whole (DRF's 400 `{"detail": …}`): a body that is not JSON,
    /// deleting one's own account.
    Refused(String),
    /// No such object, or one the actor may not see: the name of its kind (`Token`, `User`).
    NotFound(&'static str),
    /// The actor may not do this.
    Forbidden(Forbidden),
    /// The password workers are busy or failed; trying again later may work.
    Busy(Busy),
    /// The store failed.
    Store(StoreError),
}

impl Error {
    /// A refusal of one field with one message.
    pub fn field(name: &str, message: impl Into<String>) -> Self {
        Error::Invalid(Invalid::field(name, message))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(i) => i.fmt(f),
            Error::Refused(m) => f.write_str(m),
            Error::NotFound(what) => write!(f, "No {what} matches the given query."),
            Error::Forbidden(r) => r.fmt(f),
            Error::Busy(b) => b.fmt(f),
            Error::Store(e) => e.fmt(f),
        }
    }
}

// No `source()`: `Display` already says what the store said, and a source would print it twice.
impl std::error::Error for Error {}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

impl From<Invalid> for Error {
    fn from(i: Invalid) -> Self {
        Error::Invalid(i)
    }
}

/// Field errors in the order found: each field (`__all__` for the object as a whole) with its messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Invalid(Vec<(String, Vec<String>)>);

impl Invalid {
    /// One field, one message.
    pub fn field(name: &str, message: impl Into<String>) -> Self {
        Self(vec![(name.to_owned(), vec![message.into()])])
    }

    /// One field with several messages (Django's password validators report each one).
    pub fn messages(name: &str, messages: Vec<String>) -> Self {
        Self(vec![(name.to_owned(), messages)])
    }

    /// Each field and its messages.
    pub fn entries(&self) -> &[(String, Vec<String>)] {
        &self.0
    }

    /// The messages of one field.
    pub fn of(&self, name: &str) -> Option<&[String]> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, m)| m.as_slice())
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, messages) in &self.0 {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            if name != "__all__" {
                write!(f, "{name}: ")?;
            }
            f.write_str(&messages.join(" "))?;
        }
        Ok(())
    }
}

/// Why the actor may not do what it asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Forbidden {
    /// DRF's general refusal (user management by a non-superuser).
    Permission,
    /// A token for another user, without `can_grant_tokens`.
    TokensForOthers,
    /// Provisioning with a wrong username or password, or for an inactive user.
    BadCredentials,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Forbidden::Permission => nbtoken_core::verify::MSG_PERMISSION_DENIED,
            Forbidden::TokensForOthers => {
                "This user does not have permission to create tokens for other users."
            }
            Forbidden::BadCredentials => "Invalid username/password",
        })
    }
}

/// Why password work could not be done now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Busy {
    /// Every worker is busy and the queue is full; retry in a second.
    QueueFull,
    /// A password check failed to run.
    CheckFailed,
    /// A password could not be hashed.
    HashFailed,
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Busy::QueueFull => "Too many password checks in progress; retry shortly.",
            Busy::CheckFailed => "Password check failed; try again.",
            Busy::HashFailed => "Password hashing failed; try again.",
        })
    }
}
