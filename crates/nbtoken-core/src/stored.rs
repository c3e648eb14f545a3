//! The stored-token model: what a token row holds, as the decision and the store see it.
//!
//! NetBox's `users_token` row, typed: the version-dependent credential (a v1 plaintext, or a
//! v2 key with its pepper id and digest, and the previous secret during a rotation overlap),
//! the flags, the expiry and the networks the token may be used from. The store parses rows
//! into these types at its boundary; [`crate::verify::decide`] reads them.

use std::net::IpAddr;

use ipnet::IpNet;
use time::OffsetDateTime;

use crate::digest::Digest;
use crate::pepper::PepperId;
use crate::token::{TokenKey, TokenVersion, V1Plaintext};

/// The networks a token may be used from; empty means anywhere.
///
/// Like NetBox's nullable `allowed_ips` array, "anywhere" has two forms that mean the same:
/// not set (`null`, the [`Default`]: tokens made outside the REST API) and an empty list
/// (`[]`: what NetBox's REST API stores when a client sends none), kept apart only so that
/// a token reads back as NetBox would show it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedIps {
    nets: Vec<IpNet>,
    listed: bool,
}

/// Most networks one token may be limited to (the API refuses longer lists).
pub const MAX_ALLOWED_NETWORKS: usize = 100;

impl AllowedIps {
    /// One entry as NetBox's `inet[]` column takes it: a network in CIDR form, or a bare
    /// address (one host). Surrounding whitespace is ignored.
    pub fn parse_net(s: &str) -> Option<IpNet> {
        let s = s.trim();
        s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
    }

    /// A list of entries, each read by [`Self::parse_net`], duplicates dropped, at most
    /// [`MAX_ALLOWED_NETWORKS`]. `Err(Some(i))`: entry `i` is not a network; `Err(None)`: too many.
    pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Self, Option<usize>> {
        if items.len() > MAX_ALLOWED_NETWORKS {
            return Err(None);
        }
        let mut nets = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let net = Self::parse_net(item.as_ref()).ok_or(Some(i))?;
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
        Ok(Self::new(nets))
    }

    /// Wraps a list of networks (host bits are kept as given, as NetBox stores them); an
    /// empty list is the `[]` form of "anywhere".
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets, listed: true }
    }

    /// No restriction as an empty list, `[]`: what NetBox's REST API stores by default.
    pub fn empty_list() -> Self {
        Self::new(Vec::new())
    }

    /// The networks.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// Whether no restriction is set (`null` or `[]`).
    pub fn is_unrestricted(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether this is a list (`[]` or networks) rather than not set (`null`).
    pub fn is_list(&self) -> bool {
        self.listed
    }

    /// Whether `ip` may use the token. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.1`) is checked as the IPv4 address it carries.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.is_empty() || self.nets.iter().any(|net| net.contains(&ip))
    }
}

/// An earlier secret of a rotated token, accepted until a deadline.
#[derive(Clone, Debug)]
pub struct PreviousSecret {
    /// Pepper of the old digest.
    pub pepper_id: PepperId,
    /// Digest of the old secret.
    pub digest: Digest,
    /// After this instant the old secret is refused.
    pub valid_until: OffsetDateTime,
}

/// The version-dependent part of a stored token (NetBox's
/// `enforce_version_dependent_fields` constraint, as a type).
#[derive(Clone, Debug)]
pub enum StoredCredential {
    /// v1: the plaintext itself.
    V1 {
        /// The stored plaintext.
        plaintext: V1Plaintext,
    },
    /// v2: key, pepper id and digest.
    V2 {
        /// The public key.
        key: TokenKey,
        /// Pepper the digest was made with.
        pepper_id: PepperId,
        /// HMAC-SHA256 of the secret.
        digest: Digest,
        /// The previous secret during a rotation overlap.
        previous: Option<PreviousSecret>,
    },
}

impl StoredCredential {
    /// A v2 credential outside any rotation overlap (no previous secret).
    pub fn v2(key: TokenKey, pepper_id: PepperId, digest: Digest) -> StoredCredential {
        StoredCredential::V2 { key, pepper_id, digest, previous: None }
    }
}

/// The fields of a stored token the decision reads.
#[derive(Clone, Debug)]
pub struct StoredToken {
    /// Row id.
    pub id: i64,
    /// Owner's id.
    pub user_id: i64,
    /// v1 plaintext or v2 key/pepper/digest.
    pub credential: StoredCredential,
    /// Disabled tokens are refused.
    pub enabled: bool,
    /// Read-only tokens are refused for writes.
    pub write_enabled: bool,
    /// Refused from this instant on.
    pub expires: Option<OffsetDateTime>,
    /// Last successful use.
    pub last_used: Option<OffsetDateTime>,
    /// Source networks allowed.
    pub allowed_ips: AllowedIps,
}

impl StoredToken {
    /// Token `id` of user `user_id` as [`crate::TokenSpec::default`] issues it: enabled,
    /// write-enabled, no expiry, never used, usable from any address.
    pub fn new(id: i64, user_id: i64, credential: StoredCredential) -> StoredToken {
        StoredToken {
            id,
            user_id,
            credential,
            enabled: true,
            write_enabled: true,
            expires: None,
            last_used: None,
            allowed_ips: AllowedIps::default(),
        }
    }

    /// The token's version.
    pub fn version(&self) -> TokenVersion {
        match self.credential {
            StoredCredential::V1 { .. } => TokenVersion::V1,
            StoredCredential::V2 { .. } => TokenVersion::V2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_lists_parse_as_netbox_stores_them() {
        let ips =
            AllowedIps::parse_list(&[" 10.0.0.0/8", "192.0.2.7", "10.0.0.0/8", "2001:db8::/32"]).unwrap();
        let shown: Vec<String> = ips.nets().iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        assert_eq!(AllowedIps::parse_list(&["10.0.0.0/8", "10.0.0.0/33"]).unwrap_err(), Some(1));
        assert_eq!(AllowedIps::parse_list(&["example.com"]).unwrap_err(), Some(0));
        let many: Vec<String> =
            (0..=MAX_ALLOWED_NETWORKS).map(|i| format!("10.0.{}.0/24", i % 256)).collect();
        assert_eq!(AllowedIps::parse_list(&many).unwrap_err(), None);
        assert!(AllowedIps::parse_list::<&str>(&[]).unwrap().is_unrestricted());
    }
}
