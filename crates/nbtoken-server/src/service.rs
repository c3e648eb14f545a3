//! Operations shared by the REST API and the CLI, so both issue tokens the same way.

use std::fmt;

use nbtoken_core::{
    issue, rotate, AllowedIps, IssueError, IssueRequest, PepperId, PepperRing, RotateError, Rotated,
    SecretString, TokenVersion, V1Policy,
};
use nbtoken_store::{NewToken, NewUser, Store, StoreError, TokenRecord, User};
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

/// Why a token was not rotated.
#[derive(Debug)]
#[non_exhaustive]
pub enum RotateTokenError {
    /// No token has this id.
    NotFound,
    /// The token cannot be rotated (v1, negative overlap, no pepper).
    Rotate(RotateError),
    /// The store failed.
    Store(StoreError),
}

impl fmt::Display for RotateTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RotateTokenError::NotFound => f.write_str("no such token"),
            RotateTokenError::Rotate(e) => e.fmt(f),
            RotateTokenError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RotateTokenError {}

/// Gives token `id` a new secret under the current pepper; the old one stays valid for `overlap`.
/// Returns the stored row and what to show once (`Rotated::token`, `Rotated::secret`).
pub async fn rotate_token<S: Store>(
    store: &S,
    peppers: &PepperRing,
    id: i64,
    overlap: time::Duration,
) -> Result<(TokenRecord, Rotated), RotateTokenError> {
    let current =
        store.token(id).await.map_err(RotateTokenError::Store)?.ok_or(RotateTokenError::NotFound)?;
    let rotated = rotate(&current.token.credential, peppers, OffsetDateTime::now_utc(), overlap)
        .map_err(RotateTokenError::Rotate)?;
    let record = store
        .rotate_token(id, rotated.pepper_id, rotated.digest.clone(), rotated.previous.clone())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => RotateTokenError::NotFound,
            other => RotateTokenError::Store(other),
        })?;
    tracing::info!(token_id = id, overlap_seconds = overlap.whole_seconds(), "token rotated");
    Ok((record, rotated))
}

/// The first superuser, `admin`, with a first v2 token: what a new deployment starts from.
/// `password_hash` is an argon2id PHC string (`None`: no password login).
pub async fn bootstrap_admin<S: Store>(
    store: &S,
    peppers: &PepperRing,
    v1_policy: V1Policy,
    password_hash: Option<String>,
    description: &str,
) -> Result<(User, Created), CreateError> {
    let admin = store
        .create_user(NewUser {
            username: "admin".into(),
            password_hash,
            is_active: true,
            is_superuser: true,
            can_grant_tokens: true,
            ..Default::default()
        })
        .await
        .map_err(CreateError::Store)?;
    let spec = TokenSpec { description: description.to_owned(), ..Default::default() };
    let created = create_token(store, peppers, v1_policy, admin.id, spec).await?;
    Ok((admin, created))
}
