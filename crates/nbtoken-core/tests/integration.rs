//! The core's integration tests, one binary: property tests of the token scheme and
//! NetBox's recorded digest vectors.

#![allow(clippy::unwrap_used, missing_docs)]

mod properties;
mod vectors;
