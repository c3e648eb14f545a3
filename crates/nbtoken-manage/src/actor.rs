//! Who is acting, and the rules of who may see and change what.
//!
//! As in NetBox, a token or user the actor may not see does not exist for it (404, not 403),
//! so that ids cannot be probed; what it may see but not change is refused (403).

use nbtoken_store::{TokenFilter, User, UserFilter};

use crate::error::{Error, Forbidden};

/// Who asks for an operation.
#[derive(Clone, Debug)]
pub enum Actor {
    /// The operator at the local CLI, with direct access to the database: may do everything a
    /// superuser may, and has no account of its own.
    Operator,
    /// An authenticated API caller, with its account as currently stored.
    User(User),
}

impl Actor {
    /// Superusers (and the operator) see and manage every user and token.
    pub fn is_superuser(&self) -> bool {
        match self {
            Actor::Operator => true,
            Actor::User(u) => u.is_superuser,
        }
    }

    /// The actor's own account id (`None` for the operator).
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Actor::Operator => None,
            Actor::User(u) => Some(u.id),
        }
    }

    /// The actor's account (`None` for the operator).
    pub fn user(&self) -> Option<&User> {
        match self {
            Actor::Operator => None,
            Actor::User(u) => Some(u),
        }
    }

    /// Whether the actor sees the tokens of user `owner_id`: its own, or every one for a superuser.
    pub fn sees_tokens_of(&self, owner_id: i64) -> bool {
        self.is_superuser() || self.user_id() == Some(owner_id)
    }

    /// Whether the actor sees user `id`: itself, or every user for a superuser.
    pub fn sees_user(&self, id: i64) -> bool {
        self.is_superuser() || self.user_id() == Some(id)
    }

    /// Whether the actor may create tokens for user `owner_id`: its own, or anyone's with
    /// `can_grant_tokens` or as a superuser.
    pub fn may_manage_for(&self, owner_id: i64) -> bool {
        match self {
            Actor::Operator => true,
            Actor::User(u) => u.is_superuser || u.can_grant_tokens || u.id == owner_id,
        }
    }

    /// Only superusers manage accounts (create, change, delete): 403 for everyone else.
    pub fn manages_users(&self) -> Result<(), Error> {
        if self.is_superuser() {
            Ok(())
        } else {
            Err(Error::Forbidden(Forbidden::Permission))
        }
    }

    /// Narrows a token listing to what the actor sees: a non-superuser asking for other
    /// users' tokens gets an empty page, not an error.
    pub fn scope_tokens(&self, filter: &mut TokenFilter) {
        if let (false, Some(me)) = (self.is_superuser(), self.user_id()) {
            if !filter.user_ids.is_empty() && !filter.user_ids.contains(&me) {
                filter.ids = vec![-1];
            }
            filter.user_ids = vec![me];
        }
    }

    /// Narrows a user listing to what the actor sees (itself, for a non-superuser).
    pub fn scope_users(&self, filter: &mut UserFilter) {
        if let (false, Some(me)) = (self.is_superuser(), self.user_id()) {
            if !filter.ids.is_empty() && !filter.ids.contains(&me) {
                filter.ids = vec![-1];
            } else {
                filter.ids = vec![me];
            }
        }
    }
}
