//! Web UI sessions: kept in this process's memory, with an idle and an absolute expiry.
//!
//! A session id is 32 bytes from the OS CSPRNG, sent to the browser once as a cookie and
//! kept here only as its SHA-256: the table is looked up by that hash, so neither a timing
//! difference of the lookup nor a dump of the table gives an id away. Each session has its
//! own CSRF token, compared in constant time.
//!
//! Known limit: sessions live in one instance's memory. Several instances behind a load
//! balancer need sticky sessions (or a user signs in again on each instance), and a restart
//! signs everyone out. A configuration reload keeps them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use rand::rngs::OsRng;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "nbtoken_session";
/// The sign-in form's CSRF cookie (double submit: there is no session yet).
pub const SIGNIN_COOKIE: &str = "nbtoken_signin";
/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, however busy.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);
/// Most sessions kept at once; past this, the oldest ends first.
const MAX_SESSIONS: usize = 100_000;

/// 32 random bytes from the OS, as 64 hex digits (`None` if the OS cannot give any).
pub fn random_token() -> Option<String> {
    let mut buf = [0u8; 32];
    OsRng.try_fill_bytes(&mut buf).ok()?;
    Some(hex::encode(buf))
}

/// Whether two tokens are equal, in constant time.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.user_id)
            .field("csrf", &"[redacted]")
            .finish_non_exhaustive()
    }
}

fn id_hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// One signed-in browser. (`Debug` leaves the CSRF token out.)
#[derive(Clone)]
pub struct Session {
    /// Whose session it is.
    pub user_id: i64,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    started: Instant,
    seen: Instant,
}

/// Every session of this instance.
#[derive(Default)]
pub struct Sessions {
    table: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new session for `user_id`: its id (for the cookie, never kept here) and itself.
    pub fn start(&self, user_id: i64) -> Option<(String, Session)> {
        let id = random_token()?;
        let now = Instant::now();
        let session = Session { user_id, csrf: random_token()?, started: now, seen: now };
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.retain(|_, s| live(s, now));
        if table.len() >= MAX_SESSIONS {
            if let Some(oldest) = table.iter().min_by_key(|(_, s)| s.started).map(|(k, _)| *k) {
                table.remove(&oldest);
            }
        }
        table.insert(id_hash(&id), session.clone());
        Some((id, session))
    }

    /// The live session of this id, its idle clock restarted; an expired one is dropped.
    pub fn get(&self, id: &str) -> Option<Session> {
        let key = id_hash(id);
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        match table.get_mut(&key) {
            Some(s) if live(s, now) => {
                s.seen = now;
                Some(s.clone())
            }
            Some(_) => {
                table.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session of this id (sign-out): its cookie no longer works anywhere.
    pub fn end(&self, id: &str) {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).remove(&id_hash(id));
    }

    /// How many sessions are kept.
    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no session is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn live(s: &Session, now: Instant) -> bool {
    now.duration_since(s.seen) < IDLE && now.duration_since(s.started) < ABSOLUTE
}

/// The value of cookie `name` in the request, if it is one of ours in shape (64 hex digits).
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, for `/ui` only, Secure over HTTPS.
/// `None` for the value ends the cookie.
pub fn set_cookie(name: &str, value: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(v) => format!("{name}={v}; Path=/ui; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{name}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_by_id_and_end_on_sign_out() {
        let sessions = Sessions::new();
        let (id, s) = sessions.start(7).unwrap();
        assert_eq!(sessions.get(&id).unwrap().user_id, 7);
        assert!(same_token(&sessions.get(&id).unwrap().csrf, &s.csrf));
        assert!(sessions.get(&random_token().unwrap()).is_none());
        sessions.end(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn cookies_are_read_only_in_the_shape_of_ours() {
        let mut h = HeaderMap::new();
        let id = "a".repeat(64);
        h.insert(header::COOKIE, format!("x=1; {COOKIE}={id}").parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some(id.as_str()));
        h.insert(header::COOKIE, format!("{COOKIE}=<script>").parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), None);
    }
}
