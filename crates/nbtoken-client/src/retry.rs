//! When and how long to wait before sending an idempotent request again.
//!
//! Only GET, HEAD, PUT and DELETE are retried: sending a POST or a PATCH twice
//! could create two tokens or apply a change twice. A retry follows a 429,
//! 502, 503 or 504, or a failed connection; the wait is the server's
//! `Retry-After` (seconds form, capped) or else an exponential backoff with
//! jitter, so that many clients failing together do not return together.

use std::time::Duration;

use rand::TryRngCore;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

/// Retry settings; see [`crate::ClientBuilder`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 turns retries off).
    pub max_attempts: u32,
    /// Backoff before the second attempt; it doubles for each later one.
    pub base_delay: Duration,
    /// Upper bound of the backoff.
    pub max_delay: Duration,
    /// Upper bound of a server's `Retry-After`.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Whether a request with this method may be sent more than once.
    pub fn is_idempotent(method: &Method) -> bool {
        matches!(*method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE)
    }

    /// Whether this status is worth another attempt.
    pub fn is_retryable_status(status: StatusCode) -> bool {
        matches!(status.as_u16(), 429 | 502 | 503 | 504)
    }

    /// How long to wait after failed attempt number `attempt` (1-based):
    /// the server's `Retry-After` if it gave one, else the backoff.
    pub fn delay(&self, attempt: u32, headers: Option<&HeaderMap>) -> Duration {
        headers
            .and_then(retry_after)
            .map(|d| d.min(self.max_retry_after))
            .unwrap_or_else(|| self.backoff(attempt, jitter_fraction()))
    }

    /// "Equal jitter" backoff: half of `base × 2^(attempt-1)` (capped) for
    /// sure, the other half scaled by `jitter` in `[0, 1]`.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exp =
            self.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// `Retry-After` in its delay-seconds form. The HTTP-date form is ignored
/// (the backoff applies), because clocks of client and server disagree.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A number in `[0, 1)` from the OS RNG; 0.5 if the RNG fails (the wait is
/// then merely less spread out).
fn jitter_fraction() -> f64 {
    match rand::rngs::OsRng.try_next_u32() {
        Ok(n) => f64::from(n) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn check(retry_after: Option<&str>, attempt: u32, expected_ms: (u64, u64)) {
        let p = RetryPolicy::default();
        let mut h = HeaderMap::new();
        if let Some(v) = retry_after {
            h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        }
        for _ in 0..20 {
            let d = p.delay(attempt, Some(&h)).as_millis() as u64;
            assert!((expected_ms.0..=expected_ms.1).contains(&d), "{retry_after:?} #{attempt}: {d} ms");
        }
    }

    #[test]
    fn delays() {
        check(Some("1"), 1, (1000, 1000));
        check(Some(" 2 "), 5, (2000, 2000));
        check(Some("3600"), 1, (30_000, 30_000));
        // The date form and garbage fall back to the backoff.
        check(Some("Wed, 21 Oct 2015 07:28:00 GMT"), 1, (125, 250));
        check(Some("-1"), 1, (125, 250));
        check(None, 1, (125, 250));
        check(None, 2, (250, 500));
        check(None, 3, (500, 1000));
        check(None, 10, (4000, 8000));
        check(None, 200, (4000, 8000));
    }

    #[test]
    fn only_idempotent_methods() {
        for (m, yes) in [
            (Method::GET, true),
            (Method::HEAD, true),
            (Method::PUT, true),
            (Method::DELETE, true),
            (Method::POST, false),
            (Method::PATCH, false),
        ] {
            assert_eq!(RetryPolicy::is_idempotent(&m), yes, "{m}");
        }
    }

    #[test]
    fn retryable_statuses() {
        for (s, yes) in
            [(429, true), (502, true), (503, true), (504, true), (500, false), (403, false), (200, false)]
        {
            assert_eq!(RetryPolicy::is_retryable_status(StatusCode::from_u16(s).unwrap()), yes, "{s}");
        }
    }
}
