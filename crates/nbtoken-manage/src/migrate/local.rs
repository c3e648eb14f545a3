//! The local store as a migration [`Target`], through the operations every front end uses:
//! the operator sees every token, and every change is announced.

use nbtoken_core::migrate::{Replacement, TokenInfo};
use nbtoken_core::{SecretString, TokenVersion};
use nbtoken_store::{Page, Store, TokenFilter};

use super::{Caller, Target, TargetError};
use crate::{Actor, Ops, Passwords, TokenSpec, UserRef};

/// Every row at once.
const ALL: Page = Page { limit: u32::MAX, offset: 0 };

/// Migration on the local store, acting as [`Actor::Operator`].
pub struct LocalTarget<'a, S, P> {
    ops: &'a Ops<'a, S, P>,
}

impl<'a, S: Store, P: Passwords> LocalTarget<'a, S, P> {
    /// Migration through `ops` (its store, peppers and announcements).
    pub fn new(ops: &'a Ops<'a, S, P>) -> Self {
        Self { ops }
    }
}

impl<S: Store, P: Passwords> Target for LocalTarget<'_, S, P> {
    async fn tokens(&self) -> Result<Vec<TokenInfo>, TargetError> {
        let (_, rows) = self.ops.tokens(&Actor::Operator, TokenFilter::default(), ALL).await?;
        let mut tokens: Vec<TokenInfo> = rows.iter().map(TokenInfo::from).collect();
        // What the store recorded beyond `last_used` (beside NetBox: where and by what each
        // token was last used), so every front end shows the same plan.
        let ids: Vec<i64> = tokens.iter().map(|t| t.id).collect();
        let uses: std::collections::HashMap<i64, _> =
            self.ops.store.token_uses(&ids).await?.into_iter().map(|u| (u.token_id, u)).collect();
        for t in &mut tokens {
            if let Some(u) = uses.get(&t.id) {
                t.last_used_ip = u.last_ip.or(t.last_used_ip);
                t.last_used_user_agent.clone_from(&u.last_user_agent);
            }
        }
        Ok(tokens)
    }

    async fn caller(&self) -> Result<Caller, TargetError> {
        Ok(Caller::operator())
    }

    async fn create_replacement(&self, r: &Replacement) -> Result<(TokenInfo, SecretString), TargetError> {
        let owner = self.ops.owner(&Actor::Operator, Some(&UserRef::Id(r.user_id))).await?;
        let spec = TokenSpec {
            version: TokenVersion::V2,
            description: r.description.clone(),
            expires: r.expires,
            enabled: true,
            write_enabled: r.write_enabled,
            allowed_ips: r.allowed_ips.clone(),
            ..Default::default()
        };
        let created = self.ops.create_token(&Actor::Operator, &owner, spec).await?;
        Ok((TokenInfo::from(&created.record), created.token))
    }

    async fn disable(&self, id: i64) -> Result<(), TargetError> {
        self.ops.set_token_enabled(&Actor::Operator, id, false).await?;
        Ok(())
    }

    async fn delete(&self, id: i64) -> Result<(), TargetError> {
        self.ops.delete_token(&Actor::Operator, id).await?;
        Ok(())
    }

    fn describe(&self) -> String {
        "the local store".to_owned()
    }
}
