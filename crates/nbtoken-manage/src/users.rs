//! User accounts: list and read with visibility; create, change, set passwords and delete,
//! for superusers (and the operator) only.

use nbtoken_core::SecretString;
use nbtoken_store::{NewUser, Page, Store, StoreError, User, UserFilter, UserPatch};

use crate::actor::Actor;
use crate::error::Error;
use crate::passwords::{check_new_password, check_username, Passwords};
use crate::Ops;

/// Django's message for a username that is taken.
pub const MSG_USERNAME_TAKEN: &str = "A user with that username already exists.";

/// A user to create.
#[derive(Default)]
pub struct NewAccount {
    /// Unique login name (1–150 letters, digits and `@.+-_`).
    pub username: String,
    /// A password, if password login (provisioning) is allowed.
    pub password: Option<SecretString>,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// E-mail address.
    pub email: String,
    /// Active flag (`None`: active).
    pub is_active: Option<bool>,
    /// Superuser flag.
    pub is_superuser: bool,
    /// May create tokens for other users (`None`: as `is_superuser`).
    pub can_grant_tokens: Option<bool>,
}

/// Changes to a user: the fields to change (`None` leaves one as it is; an inactive user's
/// tokens stop working), and a new password, hashed here (`password_hash` and `last_login`
/// are ignored).
#[derive(Default)]
pub struct AccountChanges {
    /// The fields to change.
    pub fields: UserPatch,
    /// A new password.
    pub password: Option<SecretString>,
}

/// A store conflict on a user row is a taken username.
fn username_conflict(e: StoreError) -> Error {
    match e {
        StoreError::Conflict(_) => Error::field("username", MSG_USERNAME_TAKEN),
        other => Error::Store(other),
    }
}

impl<S: Store, P: Passwords> Ops<'_, S, P> {
    /// User `id`, if the actor sees it (itself, or anyone for a superuser); others are a 404.
    pub async fn user(&self, actor: &Actor, id: i64) -> Result<User, Error> {
        match self.store.user(id).await? {
            Some(u) if actor.sees_user(u.id) => Ok(u),
            _ => Err(Error::NotFound("User")),
        }
    }

    /// The user named `name`, if the actor sees it.
    pub async fn user_named(&self, actor: &Actor, name: &str) -> Result<User, Error> {
        let found = if name.contains('\0') { None } else { self.store.user_by_name(name).await? };
        match found {
            Some(u) if actor.sees_user(u.id) => Ok(u),
            _ => Err(Error::NotFound("User")),
        }
    }

    /// A page of the users `filter` selects among those the actor sees, and how many there are.
    pub async fn users(
        &self,
        actor: &Actor,
        mut filter: UserFilter,
        page: Page,
    ) -> Result<(u64, Vec<User>), Error> {
        actor.scope_users(&mut filter);
        Ok(self.store.list_users(&filter, page).await?)
    }

    /// User `id` for a change: 403 unless the actor manages users, then 404 unless it exists.
    pub async fn user_to_change(&self, actor: &Actor, id: i64) -> Result<User, Error> {
        actor.manages_users()?;
        self.user(actor, id).await
    }

    /// The hash of a new password, once it passes the rules.
    async fn new_password_hash(&self, password: Option<SecretString>) -> Result<Option<String>, Error> {
        let Some(pw) = password else { return Ok(None) };
        check_new_password(pw.expose())?;
        Ok(Some(self.passwords.hash(pw).await.map_err(Error::Busy)?))
    }

    /// Creates a user (superusers only). A superuser may create tokens for others unless
    /// `can_grant_tokens` says otherwise.
    pub async fn create_user(&self, actor: &Actor, account: NewAccount) -> Result<User, Error> {
        actor.manages_users()?;
        check_username(&account.username)?;
        let password_hash = self.new_password_hash(account.password).await?;
        let user = self
            .store
            .create_user(NewUser {
                username: account.username,
                password_hash,
                first_name: account.first_name,
                last_name: account.last_name,
                email: account.email,
                is_active: account.is_active.unwrap_or(true),
                is_superuser: account.is_superuser,
                can_grant_tokens: account.can_grant_tokens.unwrap_or(account.is_superuser),
            })
            .await
            .map_err(username_conflict)?;
        self.user_written(user.id, "user created");
        Ok(user)
    }

    /// Changes a user (superusers only; `target` as read by [`Self::user_to_change`]).
    pub async fn update_user(
        &self,
        actor: &Actor,
        target: &User,
        changes: AccountChanges,
    ) -> Result<User, Error> {
        actor.manages_users()?;
        if let Some(name) = &changes.fields.username {
            check_username(name)?;
        }
        let password_hash = self.new_password_hash(changes.password).await?;
        let patch = UserPatch { password_hash: password_hash.map(Some), last_login: None, ..changes.fields };
        let u = self.store.update_user(target.id, patch).await.map_err(username_conflict)?;
        self.user_written(u.id, "user changed");
        Ok(u)
    }

    /// Sets a user's password (superusers only).
    pub async fn set_password(
        &self,
        actor: &Actor,
        target: &User,
        password: SecretString,
    ) -> Result<User, Error> {
        self.update_user(actor, target, AccountChanges { password: Some(password), ..Default::default() })
            .await
    }

    /// Deletes user `id` and with it every token of theirs (superusers only; not oneself).
    pub async fn delete_user(&self, actor: &Actor, id: i64) -> Result<(), Error> {
        let target = self.user_to_change(actor, id).await?;
        if actor.user_id() == Some(target.id) {
            return Err(Error::Refused("You cannot delete your own account.".into()));
        }
        self.store.delete_user(target.id).await?;
        self.user_written(target.id, "user deleted");
        Ok(())
    }

    /// Tells every cache that user `id` was written, once, and logs `event`.
    fn user_written(&self, id: i64, event: &str) {
        self.announce.user_changed(id);
        tracing::info!(user_id = id, "{event}");
    }
}
