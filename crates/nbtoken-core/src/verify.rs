//! The authentication decision: presented credential + stored row → principal or denial.
//!
//! The order of checks is NetBox's: lookup and digest, allowed IPs, enabled,
//! expiry, user active; then the token's write permission against what the
//! request needs. The function is pure: the caller fetched the row, knows the
//! client address and the time, and applies the side effects it is told about
//! (`last_used`, re-hash).

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use time::{Duration, OffsetDateTime};

use crate::digest::Digest;
use crate::header::Credential;
use crate::pepper::{PepperId, PepperRing};
use crate::token::{TokenKey, TokenVersion, V1Plaintext};

/// How long `last_used` may lag before it is written again (NetBox: 60 s).
pub const LAST_USED_RESOLUTION: Duration = Duration::seconds(60);

/// NetBox's message when a token's write permission is missing.
pub const MSG_PERMISSION_DENIED: &str = "You do not have permission to perform this action.";

/// What the request needs from the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reading: any enabled token will do.
    Read,
    /// Changing something: the token must be write-enabled.
    Write,
}

impl Access {
    /// NetBox's rule: GET, HEAD and OPTIONS read, every other method writes.
    pub fn from_method(method: &str) -> Self {
        match method {
            "GET" | "HEAD" | "OPTIONS" => Access::Read,
            _ => Access::Write,
        }
    }
}

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
    /// The token's version.
    pub fn version(&self) -> TokenVersion {
        match self.credential {
            StoredCredential::V1 { .. } => TokenVersion::V1,
            StoredCredential::V2 { .. } => TokenVersion::V2,
        }
    }
}

/// Everything the decision looks at.
#[derive(Clone, Copy, Debug)]
pub struct VerifyInput<'a> {
    /// What the client presented.
    pub credential: &'a Credential,
    /// The row found by v1 plaintext or v2 key, if any.
    pub token: Option<&'a StoredToken>,
    /// Whether the token's owner is active (ignored when `token` is `None`).
    pub user_active: bool,
    /// What the request needs.
    pub access: Access,
    /// The client address, if it could be determined.
    pub client_ip: Option<IpAddr>,
    /// The current time.
    pub now: OffsetDateTime,
    /// The configured peppers.
    pub peppers: &'a PepperRing,
}

/// A successful authentication and the side effects the caller owes.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The token's row id.
    pub token_id: i64,
    /// The authenticated user.
    pub user_id: i64,
    /// The token's version.
    pub version: TokenVersion,
    /// Whether the token may write.
    pub write_enabled: bool,
    /// `last_used` is null or older than 60 s: write it (without making the request wait).
    pub touch_last_used: bool,
    /// The digest was made with an older pepper: store this one instead.
    pub rehash: Option<(PepperId, Digest)>,
    /// The secret matched the previous secret of a rotated token.
    pub used_previous_secret: bool,
}

/// Why a request is refused. [`Denial::detail`] is NetBox's message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denial {
    /// No token matches (unknown key, wrong secret, unknown v1 plaintext).
    InvalidToken(TokenVersion),
    /// v2 tokens cannot be verified: no pepper is configured.
    PeppersMissing,
    /// The token is IP-restricted and the client address is unknown.
    ClientIpUnknown,
    /// The client address is outside the token's allowed networks.
    IpNotPermitted(IpAddr),
    /// The token is disabled.
    Disabled,
    /// The token has expired.
    Expired,
    /// The token's owner is inactive.
    UserInactive,
    /// A write with a read-only token.
    WriteNotPermitted,
}

impl Denial {
    /// NetBox's exact message for the `detail` field.
    pub fn detail(&self) -> String {
        match self {
            Denial::InvalidToken(v) => format!("Invalid v{} token", v.as_u8()),
            Denial::PeppersMissing => {
                "Unable to verify v2 tokens: no peppers are configured on this server (API_TOKEN_PEPPERS / NBTOKEN_PEPPER_<ID>)".to_owned()
            }
            Denial::ClientIpUnknown => "Client IP address could not be determined for validation. Check that the HTTP server is correctly configured to pass the required header(s).".to_owned(),
            Denial::IpNotPermitted(ip) => {
                format!("Source IP {} is not permitted to authenticate using this token.", ip.to_canonical())
            }
            Denial::Disabled => "Token disabled".to_owned(),
            Denial::Expired => "Token expired".to_owned(),
            Denial::UserInactive => "User inactive".to_owned(),
            Denial::WriteNotPermitted => MSG_PERMISSION_DENIED.to_owned(),
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail())
    }
}

impl std::error::Error for Denial {}

/// Decides whether the request is authenticated and allowed.
///
/// For v2 the work is one HMAC and one constant-time comparison whether or
/// not the key exists, so response time does not reveal which keys do.
pub fn decide(input: &VerifyInput<'_>) -> Result<Verified, Denial> {
    let version = input.credential.version();
    let (token, rehash, used_previous_secret) = match input.credential {
        Credential::V1 { plaintext } => {
            let token = input.token.filter(|t| match &t.credential {
                StoredCredential::V1 { plaintext: stored } => stored.as_secret() == plaintext,
                StoredCredential::V2 { .. } => false,
            });
            (token.ok_or(Denial::InvalidToken(version))?, None, false)
        }
        Credential::V2 { key, secret } => {
            let current = input.peppers.current().map_err(|_| Denial::PeppersMissing)?;
            let stored = input.token.and_then(|t| match &t.credential {
                StoredCredential::V2 { key: k, pepper_id, digest, previous } if k.as_str() == key => {
                    Some((t, *pepper_id, digest, previous))
                }
                _ => None,
            });
            let Some((token, pepper_id, digest, previous)) = stored else {
                // Same work as a wrong secret: one HMAC, one comparison.
                let _ = current.digest(secret.expose()).ct_eq(&Digest::from_bytes([0; 32]));
                return Err(Denial::InvalidToken(version));
            };
            let matches = |pid: PepperId, d: &Digest| match input.peppers.get(pid) {
                Ok(p) => p.digest(secret.expose()).ct_eq(d),
                Err(_) => {
                    let _ = current.digest(secret.expose()).ct_eq(d);
                    false
                }
            };
            if matches(pepper_id, digest) {
                let rehash =
                    (pepper_id != current.id()).then(|| (current.id(), current.digest(secret.expose())));
                (token, rehash, false)
            } else if previous
                .as_ref()
                .is_some_and(|p| input.now < p.valid_until && matches(p.pepper_id, &p.digest))
            {
                (token, None, true)
            } else {
                return Err(Denial::InvalidToken(version));
            }
        }
    };

    if !token.allowed_ips.is_unrestricted() {
        let ip = input.client_ip.ok_or(Denial::ClientIpUnknown)?;
        if !token.allowed_ips.permits(ip) {
            return Err(Denial::IpNotPermitted(ip));
        }
    }
    if !token.enabled {
        return Err(Denial::Disabled);
    }
    if token.expires.is_some_and(|e| input.now >= e) {
        return Err(Denial::Expired);
    }
    if !input.user_active {
        return Err(Denial::UserInactive);
    }
    if input.access == Access::Write && !token.write_enabled {
        return Err(Denial::WriteNotPermitted);
    }
    Ok(Verified {
        token_id: token.id,
        user_id: token.user_id,
        version,
        write_enabled: token.write_enabled,
        touch_last_used: token.last_used.is_none_or(|t| input.now - t > LAST_USED_RESOLUTION),
        rehash,
        used_previous_secret,
    })
}

#[cfg(test)]
mod tests;
