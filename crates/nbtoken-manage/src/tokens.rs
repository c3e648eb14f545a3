//! The token lifecycle: create (and import), list and read with visibility, change,
//! enable/disable, rotate, delete, and provisioning by username and password.

pub use nbtoken_core::TokenSpec;
use nbtoken_core::{issue, rotate, IssueError, PepperError, Rotated, SecretString, TokenVersion};
use nbtoken_store::{
    NewToken, NewUser, Page, Store, StoreError, TokenFilter, TokenPatch, TokenRecord, User, UserPatch,
};
use time::OffsetDateTime;

use crate::actor::Actor;
use crate::error::{Error, Forbidden};
use crate::passwords::Passwords;
use crate::Ops;

/// A client-chosen value (or key) that another token has already.
pub const MSG_VALUE_IN_USE: &str = "This token value is already in use.";

/// A `pepper_id` no configured pepper has (the id is not repeated: messages never echo values).
pub const MSG_UNKNOWN_PEPPER: &str =
    "Invalid pepper ID. Check configured API_TOKEN_PEPPERS (NBTOKEN_PEPPER_<ID>).";

/// The message of a `version` or `pepper_id` sent for an existing token that differs from its own.
pub const MSG_PEPPER_FIXED: &str = "Cannot be changed on an existing token; rotate it instead.";

/// Changes to an existing token: the fields to change (its owner never changes: `user_id` is
/// ignored), and what a client sent back of its version and pepper, which must be its own.
#[derive(Clone, Debug, Default)]
pub struct TokenChanges {
    /// The fields to change; `None` leaves one as it is.
    pub fields: TokenPatch,
    /// A version sent back: must be the token's own.
    pub version: Option<i64>,
    /// A pepper id sent back: must be the token's own.
    pub pepper_id: Option<i64>,
}

/// Names the owner of a new token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserRef {
    /// By id.
    Id(i64),
    /// By username.
    Name(String),
    /// By something no user can match (a NUL in a name, an id out of range).
    Nobody,
}

/// The credentials of a provisioning request.
pub struct Credentials {
    /// The user's name.
    pub username: String,
    /// The user's password.
    pub password: SecretString,
}

/// An active user whose password was just checked ([`Ops::check_credentials`]): what
/// [`Ops::provision`] issues a token for.
#[derive(Debug)]
pub struct Verified(User);

impl Verified {
    /// The user.
    pub fn user(&self) -> &User {
        &self.0
    }
}

/// A created token and the secret to show once (`token` in NetBox's response).
#[derive(Debug)]
pub struct Created {
    /// The stored row.
    pub record: TokenRecord,
    /// The bare secret (v2) or plaintext (v1).
    pub secret: SecretString,
    /// The full value to send after the keyword.
    pub token: SecretString,
}

/// A refusal of `issue` as the field it concerns.
fn issue_error(e: IssueError) -> Error {
    let field = match &e {
        IssueError::ExpiryInPast { .. } => "expires",
        IssueError::DescriptionTooLong(_) => "description",
        IssueError::Token(_) => "token",
        IssueError::Pepper(PepperError::Unknown(_)) => return Error::field("pepper_id", MSG_UNKNOWN_PEPPER),
        IssueError::V1NotAllowed => "version",
        _ => "__all__",
    };
    Error::field(field, e.to_string())
}

impl<S: Store, P: Passwords> Ops<'_, S, P> {
    /// Token `id`, if the actor sees it: others' tokens do not exist for a non-superuser (404).
    pub async fn token(&self, actor: &Actor, id: i64) -> Result<TokenRecord, Error> {
        match self.store.token(id).await? {
            Some(r) if actor.sees_tokens_of(r.token.user_id) => Ok(r),
            _ => Err(Error::NotFound("Token")),
        }
    }

    /// A page of the tokens `filter` selects among those the actor sees, and how many there are.
    pub async fn tokens(
        &self,
        actor: &Actor,
        mut filter: TokenFilter,
        page: Page,
    ) -> Result<(u64, Vec<TokenRecord>), Error> {
        actor.scope_tokens(&mut filter);
        Ok(self.store.list_tokens(&filter, page).await?)
    }

    /// The owner of a new token: the user `who` names (the actor itself when `None`), if the
    /// actor may create tokens for them.
    pub async fn owner(&self, actor: &Actor, who: Option<&UserRef>) -> Result<User, Error> {
        let owner = match (who, actor.user()) {
            (None, Some(me)) => me.clone(),
            (None, None) => return Err(Error::field("user", "This field is required.")),
            (Some(who), _) => {
                let found = match who {
                    UserRef::Id(id) => self.store.user(*id).await?,
                    // No user has a NUL in its name (and PostgreSQL cannot look one up).
                    UserRef::Name(name) if name.contains('\0') => None,
                    UserRef::Name(name) => self.store.user_by_name(name).await?,
                    UserRef::Nobody => None,
                };
                found.ok_or_else(|| {
                    Error::field("user", "Related object not found using the provided attributes.")
                })?
            }
        };
        if actor.may_manage_for(owner.id) {
            Ok(owner)
        } else {
            Err(Error::Forbidden(Forbidden::TokensForOthers))
        }
    }

    /// Issues a token for `owner` (see [`Self::owner`]) under the v1 policy and stores it.
    pub async fn create_token(&self, actor: &Actor, owner: &User, spec: TokenSpec) -> Result<Created, Error> {
        if !actor.may_manage_for(owner.id) {
            return Err(Error::Forbidden(Forbidden::TokensForOthers));
        }
        let issued =
            issue(&spec, OffsetDateTime::now_utc(), self.v1_policy, self.peppers).map_err(issue_error)?;
        let record = self
            .store
            .create_token(NewToken {
                user_id: owner.id,
                credential: issued.credential,
                description: spec.description,
                expires: spec.expires,
                enabled: spec.enabled,
                write_enabled: spec.write_enabled,
                allowed_ips: spec.allowed_ips,
            })
            .await
            .map_err(|e| match e {
                // A chosen value that exists already; said without echoing it.
                StoreError::Conflict(_) => Error::field("token", MSG_VALUE_IN_USE),
                other => Error::Store(other),
            })?;
        self.announce.token_changed(record.token.id);
        tracing::info!(
            token_id = record.token.id,
            user_id = owner.id,
            version = spec.version.as_u8(),
            "token created"
        );
        Ok(Created { record, secret: issued.secret, token: issued.token })
    }

    /// Changes a token the actor sees (as read by [`Self::token`]). Its owner, version and
    /// pepper never change: a `version` or `pepper_id` sent must be the token's own.
    pub async fn update_token(
        &self,
        actor: &Actor,
        current: &TokenRecord,
        changes: TokenChanges,
    ) -> Result<TokenRecord, Error> {
        if !actor.sees_tokens_of(current.token.user_id) {
            return Err(Error::NotFound("Token"));
        }
        // The token's own pepper id, as a GET shows it, may be sent back (a PUT of the object).
        if let Some(sent) = changes.pepper_id {
            let own = match &current.token.credential {
                nbtoken_core::StoredCredential::V2 { pepper_id, .. } => Some(i64::from(pepper_id.get())),
                nbtoken_core::StoredCredential::V1 { .. } => None,
            };
            if Some(sent) != own {
                return Err(Error::field("pepper_id", MSG_PEPPER_FIXED));
            }
        }
        if changes.version.is_some_and(|v| v != i64::from(current.token.version().as_u8())) {
            return Err(Error::field("version", "The version of an existing token cannot be changed."));
        }
        // A token never changes hands, whoever asks (a grant-able user could otherwise move
        // her own token to a superuser and act as one): NetBox 4.7 makes `user` read-only.
        let patch = TokenPatch { user_id: None, ..changes.fields };
        let r = self.store.update_token(current.token.id, patch).await?;
        self.announce.token_changed(r.token.id);
        tracing::info!(token_id = r.token.id, "token changed");
        Ok(r)
    }

    /// Enables or disables token `id`.
    pub async fn set_token_enabled(
        &self,
        actor: &Actor,
        id: i64,
        enabled: bool,
    ) -> Result<TokenRecord, Error> {
        let current = self.token(actor, id).await?;
        let fields = TokenPatch { enabled: Some(enabled), ..Default::default() };
        self.update_token(actor, &current, TokenChanges { fields, ..Default::default() }).await
    }

    /// Deletes token `id`, if the actor sees it.
    pub async fn delete_token(&self, actor: &Actor, id: i64) -> Result<(), Error> {
        let r = self.token(actor, id).await?;
        self.store.delete_token(r.token.id).await?;
        self.announce.token_changed(r.token.id);
        tracing::info!(token_id = r.token.id, "token deleted");
        Ok(())
    }

    /// Gives token `id` a new secret under the current pepper; the old one stays valid for
    /// `overlap`. Returns the stored row and what to show once (`Rotated::token`, `Rotated::secret`).
    pub async fn rotate_token(
        &self,
        actor: &Actor,
        id: i64,
        overlap: time::Duration,
    ) -> Result<(TokenRecord, Rotated), Error> {
        let current = self.token(actor, id).await?;
        let rotated = rotate(&current.token.credential, self.peppers, OffsetDateTime::now_utc(), overlap)
            .map_err(|e| Error::Refused(e.to_string()))?;
        let record = self
            .store
            .rotate_token(id, rotated.pepper_id, rotated.digest.clone(), rotated.previous.clone())
            .await
            .map_err(|e| match e {
                StoreError::NotFound => Error::NotFound("Token"),
                other => Error::Store(other),
            })?;
        self.announce.token_changed(id);
        tracing::info!(token_id = id, overlap_seconds = overlap.whole_seconds(), "token rotated");
        Ok((record, rotated))
    }

    /// The active user whose username and password these are: provisioning's check.
    ///
    /// An unknown user is checked against a dummy hash, so that both cost the same. Every
    /// refusal is the same [`Forbidden::BadCredentials`]. Counting failures (and refusing
    /// clients with too many) is the caller's: it knows the client.
    pub async fn check_credentials(&self, credentials: Credentials) -> Result<Verified, Error> {
        let Credentials { username, password } = credentials;
        // No user has a NUL in its name (and PostgreSQL cannot look one up): like an unknown user.
        let user = if username.contains('\0') { None } else { self.store.user_by_name(&username).await? };
        let phc = user
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| nbtoken_core::password::dummy_hash().to_owned());
        let ok = self.passwords.verify(password, phc).await.map_err(Error::Busy)?;
        match user {
            Some(u) if ok && u.is_active => Ok(Verified(u)),
            _ => Err(Error::Forbidden(Forbidden::BadCredentials)),
        }
    }

    /// A new token for a user who has just proven their password: records the login, then
    /// issues a v2 token (provisioned tokens are always v2, with a generated value).
    pub async fn provision(&self, verified: Verified, spec: TokenSpec) -> Result<Created, Error> {
        let patch = UserPatch { last_login: Some(OffsetDateTime::now_utc()), ..Default::default() };
        let user = self.store.update_user(verified.0.id, patch).await?;
        self.announce.user_changed(user.id);
        let spec = TokenSpec { version: TokenVersion::V2, chosen: None, chosen_key: None, ..spec };
        self.create_token(&Actor::User(user.clone()), &user, spec).await
    }

    /// Whether a first start should make the first admin ([`Ops::bootstrap_admin`]): the store
    /// has no user yet and manages its own users (NetBox's users are NetBox's to make).
    pub async fn needs_first_admin(&self) -> Result<bool, Error> {
        if self.store.management_refused().is_some() {
            return Ok(false);
        }
        let (count, _) = self.store.list_users(&Default::default(), Page { limit: 1, offset: 0 }).await?;
        Ok(count == 0)
    }

    /// The first superuser, `admin`, with a first v2 token: what a new deployment starts from.
    /// Without a password, `admin` cannot provision tokens with one.
    pub async fn bootstrap_admin(
        &self,
        password: Option<SecretString>,
        description: &str,
    ) -> Result<(User, Created), Error> {
        let password_hash = match password {
            Some(pw) => Some(self.passwords.hash(pw).await.map_err(Error::Busy)?),
            None => None,
        };
        let admin = self
            .store
            .create_user(NewUser {
                username: "admin".into(),
                password_hash,
                is_active: true,
                is_superuser: true,
                can_grant_tokens: true,
                ..Default::default()
            })
            .await?;
        self.announce.user_changed(admin.id);
        let spec = TokenSpec { description: description.to_owned(), ..Default::default() };
        let created = self.create_token(&Actor::Operator, &admin, spec).await?;
        Ok((admin, created))
    }
}
