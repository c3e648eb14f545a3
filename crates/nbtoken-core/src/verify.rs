//! The authentication decision: presented credential + stored row → principal or denial.
//!
//! The whole decision has two stages, both here and both pure: [`read_header`] turns the
//! `Authorization` headers and the v1 policy into a credential or a refusal before anything
//! is looked up, and [`decide`] judges the credential against the row the caller fetched.
//!
//! The order of checks is NetBox's: lookup and digest, allowed IPs, enabled,
//! expiry, user active; then the token's write permission against what the
//! request needs. The function is pure: the caller fetched the row, knows the
//! client address and the time, and applies the side effects it is told about
//! (`last_used`, re-hash).

use std::fmt;
use std::net::IpAddr;

use time::{Duration, OffsetDateTime};

use crate::digest::Digest;
use crate::header::Credential;
use crate::pepper::{PepperId, PepperRing};
use crate::token::TokenVersion;

mod header_stage;

pub use header_stage::{read_header, HeaderDecision, HeaderRefusal, Presented, MSG_V1_DENIED};
// The stored-token model has its own module; these paths stay for the crates that name them.
pub use crate::stored::{AllowedIps, PreviousSecret, StoredCredential, StoredToken, MAX_ALLOWED_NETWORKS};

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

/// NetBox's token provisioning endpoint. Its handler authenticates by username and
/// password, so a token sent along needs no write permission there.
pub const PROVISION_PATH: &str = "/api/users/tokens/provision/";

impl Access {
    /// NetBox's rule: GET, HEAD and OPTIONS read, every other method writes.
    pub fn from_method(method: &str) -> Self {
        match method {
            "GET" | "HEAD" | "OPTIONS" => Access::Read,
            _ => Access::Write,
        }
    }

    /// What a request for `path` needs from a token: [`Access::from_method`], except on
    /// [`PROVISION_PATH`], which only reads whatever the method.
    pub fn for_route(method: &str, path: &str) -> Self {
        if path == PROVISION_PATH {
            Access::Read
        } else {
            Access::from_method(method)
        }
    }
}

/// Everything the decision looks at.
#[derive(Clone, Copy, Debug)]
pub struct VerifyInput<'a> {
    /// What the client presented.
    pub credential: &'a Credential<'a>,
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
    /// Whether a token verified under an older pepper is to be re-hashed under the current
    /// one ([`Verified::rehash`]); `false` where the store writes no re-hash, which then costs
    /// no second HMAC.
    pub want_rehash: bool,
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
                StoredCredential::V1 { plaintext: stored } => plaintext.ct_eq(stored.as_secret()),
                StoredCredential::V2 { .. } => false,
            });
            (token.ok_or(Denial::InvalidToken(version))?, None, false)
        }
        Credential::V2 { key, secret } => {
            let current = input.peppers.current().map_err(|_| Denial::PeppersMissing)?;
            let stored = input.token.and_then(|t| match &t.credential {
                StoredCredential::V2 { key: k, pepper_id, digest, previous } if k.as_str() == *key => {
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
                let rehash = (input.want_rehash && pepper_id != current.id())
                    .then(|| (current.id(), current.digest(secret.expose())));
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
