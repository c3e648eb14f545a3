//! Terminal output: aligned tables for people, JSON for scripts.

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use nbtoken_server::json::timestamp;
use nbtoken_store::{TokenRecord, User};
use serde_json::Value;

/// Prints JSON, pretty.
pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
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
