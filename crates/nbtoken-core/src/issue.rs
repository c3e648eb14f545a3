//! Issuing tokens: generate (or accept) a secret, hash it, and check the request.

use std::fmt;

use time::OffsetDateTime;

use crate::pepper::{PepperError, PepperId, PepperRing};
use crate::policy::V1Policy;
use crate::secret::SecretString;
use crate::stored::{AllowedIps, PreviousSecret, StoredCredential};
use crate::token::{Secret, TokenError, TokenKey, TokenVersion, V1Plaintext};

/// Longest description NetBox stores.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// What a new token should look like: what [`issue`] checks and hashes, and the flags
/// stored beside it. The one description of a new token, from the API, the CLI and migration alike.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    /// v1 or v2.
    pub version: TokenVersion,
    /// A chosen value: the v2 secret (40 × `[A-Za-z0-9]`) or the v1 plaintext (imports only).
    pub chosen: Option<SecretString>,
    /// A chosen v2 key (import); generated when `None`.
    pub chosen_key: Option<TokenKey>,
    /// A pepper asked for (v2; ignored for v1); must be configured.
    pub pepper_id: Option<PepperId>,
    /// Free text, at most [`MAX_DESCRIPTION_CHARS`].
    pub description: String,
    /// Expiry; must be in the future.
    pub expires: Option<OffsetDateTime>,
    /// Enabled flag.
    pub enabled: bool,
    /// Write flag.
    pub write_enabled: bool,
    /// Allowed source networks.
    pub allowed_ips: AllowedIps,
}

impl Default for TokenSpec {
    /// An enabled, write-enabled v2 token with a generated value, no expiry and no network limit.
    fn default() -> Self {
        Self {
            version: TokenVersion::V2,
            chosen: None,
            chosen_key: None,
            pepper_id: None,
            description: String::new(),
            expires: None,
            enabled: true,
            write_enabled: true,
            allowed_ips: AllowedIps::default(),
        }
    }
}

/// An issued token: what to store, and the value to show the user once.
#[derive(Debug)]
pub struct Issued {
    /// What the store keeps.
    pub credential: StoredCredential,
    /// What the user must send after the keyword: `nbt_<key>.<secret>` or the v1 plaintext.
    pub token: SecretString,
    /// The bare secret (v2) or plaintext (v1), NetBox's `token` field.
    pub secret: SecretString,
}

/// Why a token cannot be issued. Messages never hold secret text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssueError {
    /// A pepper problem (none configured, unknown id).
    Pepper(PepperError),
    /// A client-chosen value of the wrong shape, or the RNG failed.
    Token(TokenError),
    /// The expiry is not in the future.
    ExpiryInPast {
        /// The server's time, for the message.
        now: OffsetDateTime,
    },
    /// The description is longer than 200 characters.
    DescriptionTooLong(usize),
    /// v1 creation is refused by policy.
    V1NotAllowed,
}

impl fmt::Display for IssueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IssueError::Pepper(PepperError::NoneConfigured) => {
                f.write_str("Unable to save v2 tokens: API_TOKEN_PEPPERS is not defined (set NBTOKEN_PEPPER_<ID> or [peppers]).")
            }
            IssueError::Pepper(PepperError::Unknown(id)) => {
                write!(f, "Invalid pepper ID: {id}. Check configured API_TOKEN_PEPPERS (NBTOKEN_PEPPER_<ID>).")
            }
            IssueError::Pepper(e) => e.fmt(f),
            IssueError::Token(e) => e.fmt(f),
            IssueError::ExpiryInPast { now } => {
                let now = now.to_offset(time::UtcOffset::UTC);
                write!(
                    f,
                    "Expiration time must be in the future. Current server time is {} {:02}:{:02}:{:02} (UTC).",
                    now.date(),
                    now.hour(),
                    now.minute(),
                    now.second()
                )
            }
            IssueError::DescriptionTooLong(n) => {
                write!(f, "Ensure this field has no more than {MAX_DESCRIPTION_CHARS} characters (it has {n}).")
            }
            IssueError::V1NotAllowed => f.write_str(
                "Creating v1 tokens is disabled on this server (v1 policy is 'deny'); create a v2 token instead.",
            ),
        }
    }
}

impl std::error::Error for IssueError {}

impl From<TokenError> for IssueError {
    fn from(e: TokenError) -> Self {
        IssueError::Token(e)
    }
}

impl From<PepperError> for IssueError {
    fn from(e: PepperError) -> Self {
        IssueError::Pepper(e)
    }
}

/// Checks a new token at `now` under the v1 policy and produces what to store and what to show.
pub fn issue(
    req: &TokenSpec,
    now: OffsetDateTime,
    v1_policy: V1Policy,
    peppers: &PepperRing,
) -> Result<Issued, IssueError> {
    let desc_len = req.description.chars().count();
    if desc_len > MAX_DESCRIPTION_CHARS {
        return Err(IssueError::DescriptionTooLong(desc_len));
    }
    if req.expires.is_some_and(|e| e <= now) {
        return Err(IssueError::ExpiryInPast { now });
    }
    match req.version {
        TokenVersion::V1 => {
            if v1_policy == V1Policy::Deny {
                return Err(IssueError::V1NotAllowed);
            }
            let plaintext = match &req.chosen {
                Some(v) => V1Plaintext::parse(v.expose())?,
                None => V1Plaintext::generate()?,
            };
            let shown = plaintext.as_secret().clone();
            Ok(Issued { credential: StoredCredential::V1 { plaintext }, token: shown.clone(), secret: shown })
        }
        TokenVersion::V2 => {
            let pepper = match req.pepper_id {
                Some(id) => peppers.get(id)?,
                None => peppers.current()?,
            };
            let secret = match &req.chosen {
                Some(v) => Secret::parse(v.expose())?,
                None => Secret::generate()?,
            };
            let key = match &req.chosen_key {
                Some(k) => k.clone(),
                None => TokenKey::generate()?,
            };
            let digest = pepper.digest(secret.expose());
            let token = secret.full_token(&key);
            Ok(Issued {
                credential: StoredCredential::v2(key, pepper.id(), digest),
                token,
                secret: SecretString::from(secret.expose()),
            })
        }
    }
}

/// A new secret for an existing v2 token.
#[derive(Debug)]
pub struct Rotated {
    /// Pepper of the new digest (the current one).
    pub pepper_id: PepperId,
    /// Digest of the new secret.
    pub digest: crate::Digest,
    /// The old digest, accepted until the overlap ends (`None` without overlap).
    pub previous: Option<PreviousSecret>,
    /// The new full value `nbt_<key>.<secret>`, to show once.
    pub token: SecretString,
    /// The new bare secret, NetBox's `token` field.
    pub secret: SecretString,
}

/// Why a token cannot be rotated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotateError {
    /// Only v2 tokens have a secret to rotate; a v1 token is migrated instead.
    NotV2,
    /// A negative overlap.
    NegativeOverlap,
    /// No pepper, or the RNG failed.
    Issue(IssueError),
}

impl fmt::Display for RotateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RotateError::NotV2 => {
                f.write_str("only v2 tokens can be rotated; replace v1 tokens with `nbtoken migrate`")
            }
            RotateError::NegativeOverlap => f.write_str("the overlap must not be negative"),
            RotateError::Issue(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RotateError {}

/// Draws a new secret for a v2 token. With a positive `overlap` the old
/// secret keeps working until `now + overlap`, then never again.
pub fn rotate(
    current: &StoredCredential,
    peppers: &PepperRing,
    now: OffsetDateTime,
    overlap: time::Duration,
) -> Result<Rotated, RotateError> {
    let StoredCredential::V2 { key, pepper_id, digest, .. } = current else {
        return Err(RotateError::NotV2);
    };
    if overlap.is_negative() {
        return Err(RotateError::NegativeOverlap);
    }
    let pepper = peppers.current().map_err(|e| RotateError::Issue(e.into()))?;
    let secret = Secret::generate().map_err(|e| RotateError::Issue(e.into()))?;
    let previous = overlap.is_positive().then(|| PreviousSecret {
        pepper_id: *pepper_id,
        digest: digest.clone(),
        valid_until: now + overlap,
    });
    Ok(Rotated {
        pepper_id: pepper.id(),
        digest: pepper.digest(secret.expose()),
        previous,
        token: secret.full_token(key),
        secret: SecretString::from(secret.expose()),
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::header::AuthHeader;
    use crate::verify::{decide, Access, StoredToken, VerifyInput};

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn ring() -> PepperRing {
        PepperRing::new([
            (PepperId::new(1).unwrap(), SecretString::from("a".repeat(50).as_str())),
            (PepperId::new(2).unwrap(), SecretString::from("b".repeat(50).as_str())),
        ])
        .unwrap()
    }

    fn req(version: TokenVersion) -> TokenSpec {
        TokenSpec { version, ..Default::default() }
    }

    #[test]
    fn issued_v2_token_verifies_and_uses_newest_pepper() {
        let peppers = ring();
        let issued = issue(&req(TokenVersion::V2), NOW, V1Policy::Warn, &peppers).unwrap();
        let StoredCredential::V2 { pepper_id, .. } = &issued.credential else { panic!("v2 expected") };
        assert_eq!(pepper_id.get(), 2);
        let header = format!("Bearer {}", issued.token.expose());
        let parsed = AuthHeader::parse(header.as_bytes()).unwrap().unwrap();
        let stored = StoredToken::new(1, 1, issued.credential.clone());
        let ok = decide(&VerifyInput {
            credential: parsed.credential(),
            token: Some(&stored),
            user_active: true,
            access: Access::Write,
            client_ip: None,
            now: NOW,
            peppers: &peppers,
            want_rehash: true,
        });
        assert!(ok.is_ok());
        assert!(issued.token.expose().ends_with(issued.secret.expose()));
    }

    #[test]
    fn requested_pepper_must_exist() {
        let mut r = req(TokenVersion::V2);
        r.pepper_id = Some(PepperId::new(1).unwrap());
        let issued = issue(&r, NOW, V1Policy::Warn, &ring()).unwrap();
        assert!(matches!(issued.credential, StoredCredential::V2 { pepper_id, .. } if pepper_id.get() == 1));
        r.pepper_id = Some(PepperId::new(7).unwrap());
        let err = issue(&r, NOW, V1Policy::Warn, &ring()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid pepper ID: 7. Check configured API_TOKEN_PEPPERS (NBTOKEN_PEPPER_<ID>)."
        );
    }

    #[test]
    fn client_chosen_secret_must_have_the_generated_shape() {
        let mut r = req(TokenVersion::V2);
        r.chosen = Some(SecretString::from("short"));
        assert!(matches!(
            issue(&r, NOW, V1Policy::Warn, &ring()),
            Err(IssueError::Token(TokenError::InvalidSecret { len: 5, .. }))
        ));
        r.chosen = Some(SecretString::from("wTbg8d65KYLMH3bHQ9zULCrxTXiNiug1jIm63wnU"));
        assert_eq!(
            issue(&r, NOW, V1Policy::Warn, &ring()).unwrap().secret.expose(),
            "wTbg8d65KYLMH3bHQ9zULCrxTXiNiug1jIm63wnU"
        );
    }

    #[test]
    fn v1_rules() {
        let mut r = req(TokenVersion::V1);
        assert_eq!(issue(&r, NOW, V1Policy::Warn, &PepperRing::empty()).unwrap().token.len(), 40);
        r.chosen = Some(SecretString::from(format!("nbt_{}", "a".repeat(36)).as_str()));
        assert_eq!(
            issue(&r, NOW, V1Policy::Warn, &ring()).unwrap_err(),
            IssueError::Token(TokenError::V1PlaintextLooksLikeV2)
        );
        r.chosen = None;
        assert_eq!(issue(&r, NOW, V1Policy::Deny, &ring()).unwrap_err(), IssueError::V1NotAllowed);
    }

    #[test]
    fn expiry_and_description_are_checked() {
        let mut r = req(TokenVersion::V2);
        r.expires = Some(NOW);
        let msg = issue(&r, NOW, V1Policy::Warn, &ring()).unwrap_err().to_string();
        assert_eq!(
            msg,
            "Expiration time must be in the future. Current server time is 2026-06-01 12:00:00 (UTC)."
        );
        r.expires = Some(NOW + time::Duration::days(1));
        assert!(issue(&r, NOW, V1Policy::Warn, &ring()).is_ok());
        r.description = "x".repeat(201);
        assert_eq!(issue(&r, NOW, V1Policy::Warn, &ring()).unwrap_err(), IssueError::DescriptionTooLong(201));
    }

    #[test]
    fn no_peppers_names_the_setting() {
        let msg =
            issue(&req(TokenVersion::V2), NOW, V1Policy::Warn, &PepperRing::empty()).unwrap_err().to_string();
        assert!(msg.contains("API_TOKEN_PEPPERS") && msg.contains("NBTOKEN_PEPPER_"), "{msg}");
    }

    #[test]
    fn rotation_keeps_the_old_secret_only_during_the_overlap() {
        let peppers = ring();
        let issued = issue(&req(TokenVersion::V2), NOW, V1Policy::Warn, &peppers).unwrap();
        let old_header = format!("Bearer {}", issued.token.expose());
        let rotated = rotate(&issued.credential, &peppers, NOW, time::Duration::minutes(10)).unwrap();
        let StoredCredential::V2 { key, .. } = &issued.credential else { panic!("v2 expected") };
        let stored = |now_offset: i64, header: &str| {
            let parsed = AuthHeader::parse(header.as_bytes()).unwrap().unwrap();
            let credential = StoredCredential::V2 {
                key: key.clone(),
                pepper_id: rotated.pepper_id,
                digest: rotated.digest.clone(),
                previous: rotated.previous.clone(),
            };
            let token = StoredToken::new(1, 1, credential);
            decide(&VerifyInput {
                credential: parsed.credential(),
                token: Some(&token),
                user_active: true,
                access: Access::Read,
                client_ip: None,
                now: NOW + time::Duration::minutes(now_offset),
                peppers: &peppers,
                want_rehash: true,
            })
            .is_ok()
        };
        let new_header = format!("Bearer {}", rotated.token.expose());
        assert!(stored(0, &new_header));
        assert!(stored(9, &old_header));
        assert!(!stored(10, &old_header));
        assert!(stored(60, &new_header));
        let none = rotate(&issued.credential, &peppers, NOW, time::Duration::ZERO).unwrap();
        assert!(none.previous.is_none());
        let v1 = issue(&req(TokenVersion::V1), NOW, V1Policy::Warn, &peppers).unwrap();
        assert_eq!(
            rotate(&v1.credential, &peppers, NOW, time::Duration::ZERO).unwrap_err(),
            RotateError::NotV2
        );
    }
}
