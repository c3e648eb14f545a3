//! The audit: what in a token population needs attention.

use std::collections::BTreeMap;

use time::{Duration, OffsetDateTime};

use crate::migrate::TokenInfo;
use crate::token::TokenVersion;
use crate::{PepperId, PepperRing, V1Policy};

/// A condition the audit looks for; `--fail-on` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Finding {
    /// Enabled v1 tokens (stored in plaintext).
    V1,
    /// Enabled tokens never used.
    NeverUsed,
    /// Enabled tokens not used within the stale window.
    Stale,
    /// Enabled tokens without an expiry.
    NoExpiry,
    /// Enabled tokens usable from any address.
    Unrestricted,
    /// Disabled tokens (candidates for deletion).
    Disabled,
    /// Expired tokens that are still enabled.
    Expired,
}

impl Finding {
    /// All findings, in report order.
    pub const ALL: [Finding; 7] = [
        Finding::V1,
        Finding::NeverUsed,
        Finding::Stale,
        Finding::NoExpiry,
        Finding::Unrestricted,
        Finding::Disabled,
        Finding::Expired,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Finding::V1 => "v1",
            Finding::NeverUsed => "never-used",
            Finding::Stale => "stale",
            Finding::NoExpiry => "no-expiry",
            Finding::Unrestricted => "unrestricted",
            Finding::Disabled => "disabled",
            Finding::Expired => "expired",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Finding> {
        Finding::ALL.into_iter().find(|f| f.name() == s.trim())
    }

    /// One line on what it means.
    pub fn describe(self) -> &'static str {
        match self {
            Finding::V1 => "enabled v1 tokens (plaintext in the database): migrate them",
            Finding::NeverUsed => "enabled tokens never used",
            Finding::Stale => "enabled tokens not used recently",
            Finding::NoExpiry => "enabled tokens that never expire",
            Finding::Unrestricted => "enabled tokens usable from any IP address",
            Finding::Disabled => "disabled tokens (delete them when no longer needed)",
            Finding::Expired => "expired tokens still enabled",
        }
    }
}

/// The audit's result: token ids per finding, and v2 tokens per pepper.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Token ids per finding (every finding present, possibly empty).
    pub findings: BTreeMap<Finding, Vec<i64>>,
    /// v2 tokens per pepper id.
    pub per_pepper: BTreeMap<u16, u64>,
    /// Tokens looked at.
    pub total: usize,
}

impl Report {
    /// The conditions of `fail_on` that were found (`--fail-on`), in `fail_on`'s order.
    pub fn failing(&self, fail_on: &[Finding]) -> Vec<Finding> {
        fail_on.iter().copied().filter(|f| self.findings.get(f).is_some_and(|ids| !ids.is_empty())).collect()
    }
}

/// Audits tokens at `now`; "stale" means unused for more than `stale_after`.
pub fn audit(tokens: &[TokenInfo], now: OffsetDateTime, stale_after: Duration) -> Report {
    let mut r = Report { total: tokens.len(), ..Default::default() };
    for f in Finding::ALL {
        r.findings.insert(f, Vec::new());
    }
    let mut hit = |f: Finding, id: i64| r.findings.entry(f).or_default().push(id);
    for t in tokens {
        if let Some(p) = t.pepper_id {
            *r.per_pepper.entry(p.get()).or_default() += 1;
        }
        if !t.enabled {
            hit(Finding::Disabled, t.id);
            continue;
        }
        let expired = t.expires.is_some_and(|e| e <= now);
        if expired {
            hit(Finding::Expired, t.id);
            continue;
        }
        if t.version == TokenVersion::V1 {
            hit(Finding::V1, t.id);
        }
        match t.last_used {
            None => hit(Finding::NeverUsed, t.id),
            Some(u) if now - u > stale_after => hit(Finding::Stale, t.id),
            Some(_) => {}
        }
        if t.expires.is_none() {
            hit(Finding::NoExpiry, t.id);
        }
        if t.allowed_ips.is_unrestricted() {
            hit(Finding::Unrestricted, t.id);
        }
    }
    r
}

/// How much a checked condition of a deployment needs attention (`nbtoken doctor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attention {
    /// As it should be.
    Ok,
    /// Works, but should change.
    Warn,
    /// Broken, or unsafe.
    Fail,
}

/// The v1 policy: `allow` lets v1 tokens work without telling their users to move.
pub fn v1_policy(policy: V1Policy) -> Attention {
    match policy {
        V1Policy::Allow => Attention::Warn,
        V1Policy::Warn | V1Policy::Deny => Attention::Ok,
    }
}

/// Enabled v1 tokens left: each is a plaintext credential in the database, to migrate.
pub fn v1_left(enabled: u64) -> Attention {
    if enabled == 0 {
        Attention::Ok
    } else {
        Attention::Warn
    }
}

/// Whether a remote caller sees every token (`None`: cannot tell): a partial view makes
/// migrate and audit miss other users' tokens.
pub fn scope(sees_all: Option<bool>) -> Attention {
    match sees_all {
        Some(true) => Attention::Ok,
        Some(false) | None => Attention::Warn,
    }
}

/// The peppers that v2 tokens use (id, how many tokens) but that `ring` lacks: those tokens
/// cannot authenticate (a failure).
pub fn missing_peppers(
    usage: impl IntoIterator<Item = (PepperId, u64)>,
    ring: &PepperRing,
) -> Vec<(PepperId, u64)> {
    usage.into_iter().filter(|(id, tokens)| *tokens > 0 && ring.get(*id).is_err()).collect()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::{AllowedIps, PepperId};

    const NOW: OffsetDateTime = datetime!(2026-06-01 0:00 UTC);

    fn tok(id: i64) -> TokenInfo {
        TokenInfo {
            id,
            version: TokenVersion::V2,
            user_id: 1,
            username: "u".into(),
            display: String::new(),
            description: String::new(),
            created: datetime!(2026-01-01 0:00 UTC),
            expires: Some(NOW + Duration::days(30)),
            last_used: Some(NOW - Duration::days(1)),
            last_used_ip: None,
            last_used_user_agent: None,
            enabled: true,
            write_enabled: true,
            allowed_ips: AllowedIps::new(vec!["10.0.0.0/8".parse().unwrap()]),
            pepper_id: Some(PepperId::new(1).unwrap()),
        }
    }

    #[test]
    fn each_condition_is_found() {
        let clean = tok(1);
        let v1 = TokenInfo { version: TokenVersion::V1, pepper_id: None, ..tok(2) };
        let never = TokenInfo { last_used: None, ..tok(3) };
        let stale = TokenInfo { last_used: Some(NOW - Duration::days(91)), ..tok(4) };
        let no_expiry = TokenInfo { expires: None, ..tok(5) };
        let open = TokenInfo { allowed_ips: AllowedIps::default(), ..tok(6) };
        let disabled = TokenInfo { enabled: false, expires: None, ..tok(7) };
        let expired = TokenInfo { expires: Some(NOW), ..tok(8) };
        let r =
            audit(&[clean, v1, never, stale, no_expiry, open, disabled, expired], NOW, Duration::days(90));
        let ids = |f| r.findings[&f].clone();
        assert_eq!(ids(Finding::V1), vec![2]);
        assert_eq!(ids(Finding::NeverUsed), vec![3]);
        assert_eq!(ids(Finding::Stale), vec![4]);
        assert_eq!(ids(Finding::NoExpiry), vec![5]);
        assert_eq!(ids(Finding::Unrestricted), vec![6]);
        assert_eq!(ids(Finding::Disabled), vec![7]);
        assert_eq!(ids(Finding::Expired), vec![8]);
        assert_eq!(r.per_pepper[&1], 7);
        assert_eq!(r.failing(&[Finding::Stale, Finding::V1]), vec![Finding::Stale, Finding::V1]);
        let clean = audit(&[tok(1)], NOW, Duration::days(90));
        assert!(clean.failing(&Finding::ALL).is_empty());
        assert_eq!(r.total, 8);
    }

    #[test]
    fn deployment_checks() {
        assert_eq!(v1_policy(V1Policy::Allow), Attention::Warn);
        assert_eq!(v1_policy(V1Policy::Warn), Attention::Ok);
        assert_eq!(v1_policy(V1Policy::Deny), Attention::Ok);
        assert_eq!((v1_left(0), v1_left(3)), (Attention::Ok, Attention::Warn));
        assert_eq!(
            [scope(Some(true)), scope(Some(false)), scope(None)],
            [Attention::Ok, Attention::Warn, Attention::Warn]
        );
        let id = |n| PepperId::new(n).unwrap();
        let ring = PepperRing::new([(id(1), crate::SecretString::from("p".repeat(50).as_str()))]).unwrap();
        assert_eq!(missing_peppers([(id(1), 4), (id(2), 0), (id(3), 2)], &ring), vec![(id(3), 2)]);
    }

    #[test]
    fn names_round_trip() {
        for f in Finding::ALL {
            assert_eq!(Finding::parse(f.name()), Some(f));
        }
        assert_eq!(Finding::parse("nonsense"), None);
    }
}
