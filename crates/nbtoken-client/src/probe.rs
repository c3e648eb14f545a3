//! Whether a token still works: one request, its answer read the way NetBox answers.

use crate::models::User;
use crate::{Client, ClientError};

/// What the server's answer says about a token.
#[derive(Debug)]
#[non_exhaustive]
pub enum Liveness {
    /// The server accepted it.
    Live,
    /// The token exists (and, for v2, its secret matched), but this request came from
    /// outside its allowed networks: it works from there. NetBox checks the address before
    /// `enabled` and the expiry, which therefore cannot be seen from here.
    LiveElsewhere,
    /// The server refused it (unknown, disabled, expired or revoked).
    Dead,
    /// No answer that decides (network error, unexpected status).
    Unknown(ClientError),
}

impl Liveness {
    /// Reads the answer to `GET /api/authentication-check/`: an answer means live,
    /// NetBox's "Source IP … is not permitted" refusal live elsewhere, 401/403 dead.
    pub fn of(answer: Result<User, ClientError>) -> Liveness {
        match answer {
            Ok(_) => Liveness::Live,
            // NetBox checks the source address right after finding the token (and, for v2,
            // its secret), so this refusal names a token that exists.
            Err(e) if e.status() == Some(403) && e.detail().is_some_and(|d| d.starts_with("Source IP")) => {
                Liveness::LiveElsewhere
            }
            Err(e) if matches!(e.status(), Some(401 | 403)) => Liveness::Dead,
            Err(e) => Liveness::Unknown(e),
        }
    }
}

impl Client {
    /// Asks the server whether this client's token works.
    pub async fn liveness(&self) -> Liveness {
        Liveness::of(self.whoami().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: Option<u16>, detail: &str, expected: &str) {
        let answer = match status {
            None => Err(ClientError::Transport("connection refused".into())),
            Some(status) => Err(ClientError::Http { status, detail: Some(detail.into()), hint: None }),
        };
        let got = format!("{:?}", Liveness::of(answer));
        assert!(got.starts_with(expected), "{status:?} {detail:?}: {got}");
    }

    #[test]
    fn answers() {
        check(
            Some(403),
            "Source IP 192.0.2.1 is not permitted to authenticate using this token.",
            "LiveElsewhere",
        );
        check(Some(403), "Invalid v2 token", "Dead");
        check(Some(401), "", "Dead");
        check(Some(500), "", "Unknown");
        check(None, "", "Unknown");
        let me: User = serde_json::from_value(serde_json::json!({"id": 1, "username": "a"})).unwrap();
        assert!(matches!(Liveness::of(Ok(me)), Liveness::Live));
    }
}
