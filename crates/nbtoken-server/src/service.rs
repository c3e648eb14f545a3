//! Operations shared by the REST API and the CLI, so both issue tokens the same way.

use std::fmt;

use nbtoken_core::{
    issue, AllowedIps, IssueError, IssueRequest, PepperId, PepperRing, SecretString, TokenVersion, V1Policy,
};
use nbtoken_store::{NewToken, Store, StoreError, TokenRecord};
use time::OffsetDateTime;

/// What a new token should look like.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    /// v1 or v2.
    pub version: TokenVersion,
    /// A client-chosen secret (v2) or plaintext (v1).
    pub chosen: Option<SecretString>,
    /// A client-chosen key (v2 import).
    pub chosen_key: Option<nbtoken_core::TokenKey>,
    /// A specific pepper (v2).
    pub pepper_id: Option<PepperId>,
    /// Free text.
    pub description: String,
    /// Expiry, in the future.
    pub expires: Option<OffsetDateTime>,
    /// Enabled flag.
    pub enabled: bool,
    /// Write flag.
    pub write_enabled: bool,
    /// Allowed source networks.
    pub allowed_ips: AllowedIps,
}

impl Default for TokenSpec {
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

/// Why a token was not created.
#[derive(Debug)]
#[non_exhaustive]
pub enum CreateError {
    /// The request itself is not acceptable.
    Issue(IssueError),
    /// The chosen value or key is taken.
    ValueInUse,
    /// The store failed.
    Store(StoreError),
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateError::Issue(e) => e.fmt(f),
            CreateError::ValueInUse => f.write_str("This token value is already in use."),
            CreateError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CreateError {}

/// A created token and the secret to show once (`token` in NetBox's response).
pub struct Created {
    /// The stored row.
    pub record: TokenRecord,
    /// The bare secret (v2) or plaintext (v1).
    pub secret: SecretString,
    /// The full value to send after the keyword.
    pub token: SecretString,
}

/// Issues a token for `owner_id` and stores it.
pub async fn create_token<S: Store>(
    store: &S,
    peppers: &PepperRing,
    v1_policy: V1Policy,
    owner_id: i64,
    spec: TokenSpec,
) -> Result<Created, CreateError> {
    let issued = issue(
        &IssueRequest {
            version: spec.version,
            chosen: spec.chosen,
            chosen_key: spec.chosen_key,
            pepper_id: spec.pepper_id,
            expires: spec.expires,
            description: spec.description.clone(),
            now: OffsetDateTime::now_utc(),
            v1_policy,
        },
        peppers,
    )
    .map_err(CreateError::Issue)?;
    let record = store
        .create_token(NewToken {
            user_id: owner_id,
            credential: issued.credential,
            description: spec.description,
            expires: spec.expires,
            enabled: spec.enabled,
            write_enabled: spec.write_enabled,
            allowed_ips: spec.allowed_ips,
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => CreateError::ValueInUse,
            other => CreateError::Store(other),
        })?;
    tracing::info!(
        token_id = record.token.id,
        user_id = owner_id,
        version = spec.version.as_u8(),
        "token created"
    );
    Ok(Created { record, secret: issued.secret, token: issued.token })
}
