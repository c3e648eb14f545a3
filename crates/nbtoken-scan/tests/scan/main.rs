//! The scanner on fixture trees (true and false positives per language), the
//! walk (ignore files, binaries, size limit, allowlists), the output formats
//! and the gitleaks export. One test binary for the crate.

#![allow(clippy::unwrap_used, missing_docs)]

mod expected;
mod fail_on;
mod formats;
mod gitleaks;
mod walk;

use std::path::{Path, PathBuf};

/// The fixture tree `name` under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Well-formed, clearly fake tokens, assembled at run time so that this
/// file holds no full token.
pub fn fake_v2(n: u8) -> String {
    let secrets = [
        "4IMRS2Eu5ZCiuXMrE0YBuQnfvXo8OWsB6ZTat6gM",
        "5p2JywAY9da6R0XrebbTs8eOTCBKxoawu8eTRMe6",
        "B4q0REvEfCaRr9MDjV2pJbb1yoNePFVxxJzjljtP",
    ];
    format!("nbt_FakeTest{:04}.{}", n, secrets[usize::from(n) % secrets.len()])
}

/// A v1 value (40 hex characters).
pub const FAKE_V1: &str = "46195777d06cdefd3beee343e21a2e4c8ea2ab61";
