//! Migration for a signed-in actor (the web UI): who may run it, and replacing one v1 token.

use nbtoken_core::migrate::{Replacement, TokenInfo};
use nbtoken_core::TokenVersion;
use nbtoken_store::Store;

use super::LocalTarget;
use crate::error::Error;
use crate::passwords::Passwords;
use crate::{Actor, Created, Ops, TokenSpec};

impl<S: Store, P: Passwords> Ops<'_, S, P> {
    /// The local store as a migration target for `actor`: superusers only (the migration
    /// sees and changes every user's tokens), 403 for everyone else.
    pub fn migration_target(&self, actor: &Actor) -> Result<LocalTarget<'_, S, P>, Error> {
        if actor.is_superuser() {
            Ok(LocalTarget::new(self))
        } else {
            Err(Error::Forbidden(crate::Forbidden::Permission))
        }
    }

    /// Creates the v2 replacement of v1 token `id` (core's [`Replacement::of`]: same owner,
    /// expiry, write flag and networks, and the marker that ties the two together), for an
    /// actor who sees that token and may create tokens for its owner.
    pub async fn replace_v1(&self, actor: &Actor, id: i64) -> Result<Created, Error> {
        let current = self.token(actor, id).await?;
        if current.token.version() != TokenVersion::V1 {
            return Err(Error::Refused("Only a v1 token is replaced by a v2 token.".into()));
        }
        let r = Replacement::of(&TokenInfo::from(&current));
        let owner = self.owner(actor, Some(&crate::UserRef::Id(r.user_id))).await?;
        let spec = TokenSpec {
            version: TokenVersion::V2,
            description: r.description,
            expires: r.expires,
            enabled: true,
            write_enabled: r.write_enabled,
            allowed_ips: r.allowed_ips,
            ..Default::default()
        };
        self.create_token(actor, &owner, spec).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use nbtoken_core::TokenVersion;

    use crate::error::{Error, Forbidden};
    use crate::signin::tests::{ops, user, world};
    use crate::{Actor, TokenSpec};

    #[tokio::test]
    async fn v1_tokens_are_replaced_by_those_who_see_them_and_migration_is_for_superusers() {
        let (store, peppers) = world().await;
        let ops = ops(&store, &peppers);
        let owner = user(&store, "alice", false, true).await;
        let (alice, bob) = (Actor::User(owner.clone()), Actor::User(user(&store, "bob", false, true).await));
        let v1 = TokenSpec { version: TokenVersion::V1, description: "ci".into(), ..Default::default() };
        let v1 = ops.create_token(&Actor::Operator, &owner, v1).await.unwrap().record.token.id;

        let made = ops.replace_v1(&alice, v1).await.unwrap();
        assert_eq!(made.record.token.version(), TokenVersion::V2);
        assert_eq!(made.record.token.user_id, owner.id);
        assert_eq!(made.record.description, format!("[replaces v1 #{v1}] ci"));
        // Another user's token does not exist for bob; a v2 token has nothing to replace.
        assert!(matches!(ops.replace_v1(&bob, v1).await, Err(Error::NotFound("Token"))));
        assert!(matches!(ops.replace_v1(&alice, made.record.token.id).await, Err(Error::Refused(_))));

        assert!(matches!(ops.migration_target(&alice), Err(Error::Forbidden(Forbidden::Permission))));
        let root = Actor::User(user(&store, "root", true, true).await);
        assert!(ops.migration_target(&root).is_ok());
    }
}
