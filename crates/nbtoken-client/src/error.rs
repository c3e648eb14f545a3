//! The client's error type. No message ever contains the token.

use std::fmt;

use crate::auth::TokenProblem;

/// Everything that can go wrong talking to a NetBox-compatible API.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// The token cannot be a NetBox token; nothing was sent.
    MalformedToken(TokenProblem),
    /// The server answered with a status other than 2xx.
    Http {
        /// The HTTP status code.
        status: u16,
        /// The server's `detail` (or its field errors, as `field: message; …`).
        detail: Option<String>,
        /// nbtoken's `hint` beside the detail, when the server sent one.
        hint: Option<String>,
    },
    /// The request did not complete: connection refused, TLS failure, timeout.
    Transport(String),
    /// The answer was not what a NetBox-compatible API sends.
    Decode(String),
    /// The base URL cannot be used.
    InvalidUrl(String),
    /// A token was created but the server did not return its secret (NetBox
    /// up to 4.5.9 answers `"token": null`, issue #22081). The token exists
    /// and cannot be used: delete it and create another.
    MissingSecret {
        /// The id of the created token.
        token_id: i64,
    },
}

impl ClientError {
    /// The HTTP status, for [`ClientError::Http`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's `detail`, for [`ClientError::Http`].
    pub fn detail(&self) -> Option<&str> {
        match self {
            ClientError::Http { detail, .. } => detail.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::MalformedToken(p) => write!(f, "malformed API token, nothing was sent: {p}"),
            ClientError::Http { status, detail, hint } => {
                let reason = reqwest::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                write!(f, "the server answered {status}")?;
                if !reason.is_empty() {
                    write!(f, " {reason}")?;
                }
                if let Some(d) = detail {
                    write!(f, ": {d}")?;
                }
                if let Some(h) = hint {
                    write!(f, " (hint: {h})")?;
                }
                Ok(())
            }
            ClientError::Transport(m) => write!(f, "request failed: {m}"),
            ClientError::Decode(m) => write!(f, "unexpected answer from the server: {m}"),
            ClientError::InvalidUrl(m) => write!(f, "invalid base URL: {m}"),
            ClientError::MissingSecret { token_id } => write!(
                f,
                "token {token_id} was created but the server did not return its secret \
                 (NetBox up to 4.5.9 has this bug); delete it and create another"
            ),
        }
    }
}

// No `source()`: `Display` already includes the token problem, and a source
// would print it twice in a chain (`malformed API token…: X: X`).
impl std::error::Error for ClientError {}

impl From<TokenProblem> for ClientError {
    fn from(p: TokenProblem) -> Self {
        ClientError::MalformedToken(p)
    }
}

/// Builds [`ClientError::Http`] from an error body: NetBox's `{"detail": …}`
/// (plus nbtoken's `hint`), DRF's `{"field": ["msg", …]}`, or a list of messages.
pub(crate) fn http_error(status: u16, body: &[u8]) -> ClientError {
    let (detail, hint) = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => (detail_of(&v), v.get("hint").and_then(|h| h.as_str()).map(str::to_owned)),
        Err(_) => (None, None),
    };
    ClientError::Http { status, detail, hint }
}

fn messages(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(items) => items.iter().flat_map(messages).collect(),
        serde_json::Value::Object(m) => m
            .iter()
            .flat_map(|(k, v)| messages(v).into_iter().map(move |msg| format!("{k}: {msg}")))
            .collect(),
        _ => Vec::new(),
    }
}

fn detail_of(v: &serde_json::Value) -> Option<String> {
    if let Some(d) = v.get("detail").and_then(|d| d.as_str()) {
        return Some(d.to_owned());
    }
    let all = messages(v);
    (!all.is_empty()).then(|| all.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str, expected: &str) {
        let e = http_error(400, body.as_bytes());
        assert_eq!(e.to_string(), expected, "{body}");
    }

    #[test]
    fn error_bodies() {
        check(r#"{"detail": "Invalid v2 token"}"#, "the server answered 400 Bad Request: Invalid v2 token");
        check(
            r#"{"detail": "Invalid v2 token", "hint": "the key part has 11 characters"}"#,
            "the server answered 400 Bad Request: Invalid v2 token (hint: the key part has 11 characters)",
        );
        check(
            r#"{"description": ["Too long.", "Bad."]}"#,
            "the server answered 400 Bad Request: description: Too long.; description: Bad.",
        );
        check(
            r#"["'start' and 'offset' are mutually exclusive."]"#,
            "the server answered 400 Bad Request: 'start' and 'offset' are mutually exclusive.",
        );
        check(
            r#"{"allowed_ips": {"0": ["bad"]}}"#,
            "the server answered 400 Bad Request: allowed_ips: 0: bad",
        );
        check("<html>Bad Gateway</html>", "the server answered 400 Bad Request");
        check("", "the server answered 400 Bad Request");
    }
}
