//! Planning the move from v1 to v2 tokens: which v1 tokens need a replacement,
//! which replacement belongs to which v1 token, and when a v1 token may go.
//!
//! The same rules serve the local store and a remote NetBox, so the link
//! between a v1 token and its replacement lives where both can keep it: a
//! marker at the front of the replacement's description, `[replaces v1 #ID]`.

use std::net::IpAddr;

use time::OffsetDateTime;

use crate::issue::MAX_DESCRIPTION_CHARS;
use crate::token::TokenVersion;
use crate::verify::AllowedIps;

/// What the planner needs to know about a token, local or remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// Token id.
    pub id: i64,
    /// Version.
    pub version: TokenVersion,
    /// Owner id.
    pub user_id: i64,
    /// Owner name.
    pub username: String,
    /// Display form (v2 key, or v1 partial): never the secret.
    pub display: String,
    /// Description.
    pub description: String,
    /// Creation time.
    pub created: OffsetDateTime,
    /// Expiry.
    pub expires: Option<OffsetDateTime>,
    /// Last use.
    pub last_used: Option<OffsetDateTime>,
    /// The client address of the last use, where the server records it
    /// (nbtoken does; NetBox does not).
    pub last_used_ip: Option<IpAddr>,
    /// The User-Agent of the last use, where the store records it (nbtoken beside NetBox
    /// does, in its `nbtoken` schema; NetBox's API and nbtoken's own store do not).
    pub last_used_user_agent: Option<String>,
    /// Enabled flag.
    pub enabled: bool,
    /// Write flag.
    pub write_enabled: bool,
    /// Allowed networks, in the form the server keeps (`null` or a list).
    pub allowed_ips: AllowedIps,
    /// Pepper of a v2 token's digest.
    pub pepper_id: Option<crate::PepperId>,
}

/// One v1 token and its replacement, if one exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanItem {
    /// The v1 token.
    pub v1: TokenInfo,
    /// Its v2 replacement.
    pub replacement: Option<TokenInfo>,
}

impl PlanItem {
    /// Whether the replacement has been used since it was made: what finalize waits for.
    pub fn replacement_used(&self) -> bool {
        self.replacement.as_ref().is_some_and(|r| r.last_used.is_some_and(|used| used >= r.created))
    }
}

/// What `finalize` does with one v1 token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finalize {
    /// The replacement has been used since it was created: revoke the v1 token.
    Revoke,
    /// Already disabled: nothing to do.
    AlreadyRevoked,
    /// The replacement has not been used yet: the integration has not switched.
    Waiting,
    /// No replacement exists (run `migrate apply` first).
    NoReplacement,
}

/// What `apply` does with one v1 token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Apply {
    /// No replacement yet, and the token may still be used: create one.
    Create,
    /// A replacement exists already.
    AlreadyReplaced,
    /// Disabled: nothing uses it, so it gets no replacement.
    SkipDisabled,
    /// Expired: a replacement would have to expire in the past, which NetBox refuses.
    SkipExpired,
}

impl Apply {
    /// Why a token is skipped, for the per-token report; `None` for [`Apply::Create`].
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Apply::Create => None,
            Apply::AlreadyReplaced => Some("already has a replacement"),
            Apply::SkipDisabled => Some("skipped: disabled (enable it first if it is still needed)"),
            Apply::SkipExpired => Some("skipped: expired (extend its expiry first if it is still needed)"),
        }
    }
}

/// The marker that ties a replacement to its v1 token.
pub fn marker(v1_id: i64) -> String {
    format!("[replaces v1 #{v1_id}]")
}

/// The v1 id a description's marker names, if it starts with one.
pub fn replaced_id(description: &str) -> Option<i64> {
    let rest = description.strip_prefix("[replaces v1 #")?;
    let (id, _) = rest.split_once(']')?;
    id.parse().ok().filter(|id: &i64| *id > 0)
}

/// The replacement's description: the marker, then the v1 token's own
/// description, cut to NetBox's 200 characters.
pub fn replacement_description(v1: &TokenInfo) -> String {
    let mut d = marker(v1.id);
    if !v1.description.is_empty() {
        d.push(' ');
        d.push_str(&v1.description);
    }
    d.chars().take(MAX_DESCRIPTION_CHARS).collect()
}

/// What the v2 replacement of a v1 token looks like, on the local store and a remote alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// The v1 token's owner.
    pub user_id: i64,
    /// The marker and the v1 token's own description ([`replacement_description`]).
    pub description: String,
    /// The v1 token's expiry.
    pub expires: Option<OffsetDateTime>,
    /// The v1 token's write flag.
    pub write_enabled: bool,
    /// The v1 token's networks; no restriction stays "not set", so that the server
    /// stores what it stores for any unrestricted token.
    pub allowed_ips: AllowedIps,
}

impl Replacement {
    /// The replacement of `v1`: same owner, expiry, write flag and networks, enabled.
    pub fn of(v1: &TokenInfo) -> Self {
        Self {
            user_id: v1.user_id,
            description: replacement_description(v1),
            expires: v1.expires,
            write_enabled: v1.write_enabled,
            allowed_ips: if v1.allowed_ips.is_unrestricted() {
                AllowedIps::default()
            } else {
                v1.allowed_ips.clone()
            },
        }
    }
}

/// Pairs every v1 token with its replacement (the newest, if there are several).
/// A replacement only counts if it belongs to the same user.
pub fn plan(tokens: &[TokenInfo]) -> Vec<PlanItem> {
    let mut items: Vec<PlanItem> = tokens
        .iter()
        .filter(|t| t.version == TokenVersion::V1)
        .map(|v1| {
            let replacement = tokens
                .iter()
                .filter(|t| {
                    t.version == TokenVersion::V2
                        && t.user_id == v1.user_id
                        && replaced_id(&t.description) == Some(v1.id)
                })
                .max_by_key(|t| (t.created, t.id))
                .cloned();
            PlanItem { v1: v1.clone(), replacement }
        })
        .collect();
    items.sort_by_key(|i| i.v1.id);
    items
}

/// What `apply` does with a v1 token at time `now`.
pub fn apply_decision(item: &PlanItem, now: OffsetDateTime) -> Apply {
    if item.replacement.is_some() {
        Apply::AlreadyReplaced
    } else if !item.v1.enabled {
        Apply::SkipDisabled
    } else if item.v1.expires.is_some_and(|e| e <= now) {
        Apply::SkipExpired
    } else {
        Apply::Create
    }
}

/// Whether a v1 token may be revoked: only once its replacement has been used.
pub fn finalize_decision(item: &PlanItem) -> Finalize {
    if !item.v1.enabled {
        return Finalize::AlreadyRevoked;
    }
    match &item.replacement {
        None => Finalize::NoReplacement,
        Some(_) if item.replacement_used() => Finalize::Revoke,
        Some(_) => Finalize::Waiting,
    }
}

/// Whether `finalize` changes this v1 token: it revokes one whose replacement has been
/// used and, with `delete`, also deletes one already disabled that has a replacement
/// (disabled by an earlier finalize, or by hand after the switch).
pub fn finalize_acts(item: &PlanItem, delete: bool) -> bool {
    match finalize_decision(item) {
        Finalize::Revoke => true,
        Finalize::AlreadyRevoked => delete && item.replacement.is_some(),
        Finalize::Waiting | Finalize::NoReplacement => false,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use time::Duration;

    use super::*;

    fn tok(id: i64, version: TokenVersion, user_id: i64, description: &str) -> TokenInfo {
        TokenInfo {
            id,
            version,
            user_id,
            username: format!("u{user_id}"),
            display: String::new(),
            description: description.to_owned(),
            created: datetime!(2026-01-01 0:00 UTC) + Duration::minutes(id),
            expires: None,
            last_used: None,
            last_used_ip: None,
            last_used_user_agent: None,
            enabled: true,
            write_enabled: true,
            allowed_ips: AllowedIps::default(),
            pepper_id: None,
        }
    }

    #[test]
    fn a_replacement_copies_the_v1_token_and_leaves_no_restriction_unset() {
        let mut v1 = tok(7, TokenVersion::V1, 3, "ci");
        v1.write_enabled = false;
        v1.expires = Some(datetime!(2027-01-01 0:00 UTC));
        v1.allowed_ips = AllowedIps::empty_list();
        let r = Replacement::of(&v1);
        assert_eq!((r.user_id, r.write_enabled, r.expires), (3, false, v1.expires));
        assert_eq!(r.description, "[replaces v1 #7] ci");
        assert!(!r.allowed_ips.is_list(), "[] is copied as not set");
        v1.allowed_ips = AllowedIps::new(vec!["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(Replacement::of(&v1).allowed_ips, v1.allowed_ips);
    }

    #[test]
    fn marker_round_trips() {
        assert_eq!(replaced_id(&marker(42)), Some(42));
        assert_eq!(replaced_id("[replaces v1 #42] backup job"), Some(42));
        for bad in ["", "replaces v1 #42", "[replaces v1 #x]", "[replaces v1 #-3]", "x [replaces v1 #4]"] {
            assert_eq!(replaced_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn description_is_cut_to_200_characters() {
        let mut v1 = tok(7, TokenVersion::V1, 1, "");
        assert_eq!(replacement_description(&v1), "[replaces v1 #7]");
        v1.description = "é".repeat(300);
        let d = replacement_description(&v1);
        assert_eq!(d.chars().count(), 200);
        assert_eq!(replaced_id(&d), Some(7));
    }

    #[test]
    fn plan_pairs_by_marker_and_user() {
        let tokens = vec![
            tok(1, TokenVersion::V1, 1, "ci"),
            tok(2, TokenVersion::V1, 2, ""),
            tok(3, TokenVersion::V2, 1, "[replaces v1 #1] ci"),
            tok(4, TokenVersion::V2, 1, "[replaces v1 #2]"), // wrong user: does not count
            tok(5, TokenVersion::V2, 1, "[replaces v1 #1] newer"),
            tok(6, TokenVersion::V2, 3, "unrelated"),
        ];
        let p = plan(&tokens);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].replacement.as_ref().map(|r| r.id), Some(5));
        assert_eq!(p[1].replacement, None);
    }

    #[test]
    fn apply_skips_disabled_and_expired_tokens_and_counts_replaced_ones_apart() {
        let now = datetime!(2026-06-01 0:00 UTC);
        let mut item = PlanItem { v1: tok(1, TokenVersion::V1, 1, ""), replacement: None };
        assert_eq!(apply_decision(&item, now), Apply::Create);
        item.v1.expires = Some(now + Duration::minutes(1));
        assert_eq!(apply_decision(&item, now), Apply::Create);
        item.v1.expires = Some(now);
        assert_eq!(apply_decision(&item, now), Apply::SkipExpired);
        item.v1.expires = None;
        item.v1.enabled = false;
        assert_eq!(apply_decision(&item, now), Apply::SkipDisabled);
        // A disabled token with a replacement counts as replaced; one without does not.
        item.replacement = Some(tok(2, TokenVersion::V2, 1, "[replaces v1 #1]"));
        assert_eq!(apply_decision(&item, now), Apply::AlreadyReplaced);
        assert_eq!(Apply::Create.reason(), None);
        assert!(Apply::SkipExpired.reason().unwrap().contains("expired"));
    }

    #[test]
    fn finalize_waits_for_the_replacement_to_be_used() {
        let v1 = tok(1, TokenVersion::V1, 1, "");
        let mut r = tok(3, TokenVersion::V2, 1, "[replaces v1 #1]");
        let mut item = PlanItem { v1: v1.clone(), replacement: None };
        assert_eq!(finalize_decision(&item), Finalize::NoReplacement);
        item.replacement = Some(r.clone());
        assert_eq!(finalize_decision(&item), Finalize::Waiting);
        r.last_used = Some(r.created + Duration::seconds(5));
        item.replacement = Some(r);
        assert_eq!(finalize_decision(&item), Finalize::Revoke);
        item.v1.enabled = false;
        assert_eq!(finalize_decision(&item), Finalize::AlreadyRevoked);
    }

    #[test]
    fn finalize_acts_on_used_replacements_and_deletes_only_replaced_disabled_tokens() {
        let v1 = tok(1, TokenVersion::V1, 1, "");
        let mut r = tok(3, TokenVersion::V2, 1, "[replaces v1 #1]");
        let mut item = PlanItem { v1, replacement: None };
        assert!(!finalize_acts(&item, false) && !finalize_acts(&item, true));
        item.replacement = Some(r.clone());
        assert!(!finalize_acts(&item, false) && !finalize_acts(&item, true), "waiting");
        r.last_used = Some(r.created + Duration::seconds(5));
        item.replacement = Some(r);
        assert!(finalize_acts(&item, false) && finalize_acts(&item, true));
        item.v1.enabled = false;
        assert!(!finalize_acts(&item, false), "already disabled: nothing to disable");
        assert!(finalize_acts(&item, true), "already disabled with a replacement: --delete deletes it");
        item.replacement = None;
        assert!(!finalize_acts(&item, true), "disabled without a replacement is never deleted");
    }
}
