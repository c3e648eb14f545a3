//! Terminal output: aligned tables for people, JSON for scripts.
//!
//! Nothing here panics on a closed pipe: standard output is written with
//! [`line`], whose [`StdoutClosed`] error ends the command quietly (as grep
//! does under `| head`), and notes go to stderr with [`note!`], which ignores
//! a closed stderr.

use std::fmt;
use std::io::Write;

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use nbtoken_manage::json::timestamp;
use nbtoken_store::{TokenRecord, User};
use serde_json::Value;

/// Standard output was closed by its reader (`nbtoken … | head -1`).
#[derive(Debug)]
pub struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Whether `e` is a closed standard output and nothing else (no context added by a
/// command that had more to say, such as a secret it could not print).
pub fn is_stdout_closed(e: &anyhow::Error) -> bool {
    let outer: &(dyn std::error::Error + 'static) = e.as_ref();
    outer.is::<StdoutClosed>()
}

/// An error writing standard output: [`StdoutClosed`] for a closed pipe.
pub fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        StdoutClosed.into()
    } else {
        anyhow::Error::new(e).context("cannot write to standard output")
    }
}

/// Writes `text` and a newline to standard output, flushed.
pub fn line(text: impl fmt::Display) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").and_then(|()| out.flush()).map_err(stdout_error)
}

/// Writes a line to stderr; a closed stderr is ignored rather than a panic.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use note;

/// Prints JSON, pretty.
pub fn print_json(v: &Value) -> anyhow::Result<()> {
    line(serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()))
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(header.iter().copied());
    t
}

fn opt_time(t: Option<time::OffsetDateTime>) -> String {
    t.map(timestamp).unwrap_or_else(|| "-".to_owned())
}

/// Users as a table.
pub fn users_table(users: &[User]) -> String {
    let mut t = table(&["id", "username", "active", "superuser", "grant tokens", "last login"]);
    for u in users {
        t.add_row(vec![
            u.id.to_string(),
            u.username.clone(),
            yes(u.is_active),
            yes(u.is_superuser),
            yes(u.can_grant_tokens),
            opt_time(u.last_login),
        ]);
    }
    t.to_string()
}

/// Tokens as a table (never with secrets: v1 tokens show NetBox's partial form).
pub fn tokens_table(rows: &[TokenRecord]) -> String {
    let mut t = table(&[
        "id",
        "v",
        "key / partial",
        "user",
        "enabled",
        "write",
        "expires",
        "last used",
        "allowed IPs",
        "description",
    ]);
    for r in rows {
        let tok = &r.token;
        let display = match &tok.credential {
            nbtoken_core::StoredCredential::V1 { plaintext } => plaintext.partial(),
            nbtoken_core::StoredCredential::V2 { key, .. } => key.as_str().to_owned(),
        };
        let ips: Vec<String> = tok.allowed_ips.nets().iter().map(ToString::to_string).collect();
        t.add_row(vec![
            tok.id.to_string(),
            tok.version().as_u8().to_string(),
            display,
            r.username.clone(),
            yes(tok.enabled),
            yes(tok.write_enabled),
            opt_time(tok.expires),
            opt_time(tok.last_used),
            if ips.is_empty() { "any".to_owned() } else { ips.join(", ") },
            r.description.clone(),
        ]);
    }
    t.to_string()
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}
