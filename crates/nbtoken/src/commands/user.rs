//! `nbtoken user …`

use anyhow::{anyhow, bail, Result};
use nbtoken_core::password::hash_password;
use nbtoken_server::json as api_json;
use nbtoken_store::{AnyStore, NewUser, Store, UserFilter, UserPatch};
use serde_json::Value;

use super::{base, find_user, ALL};
use crate::cli::UserCommand;
use crate::output::{line, print_json, users_table};
use crate::settings::read_password_stdin;

pub(crate) async fn user(store: &AnyStore, cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Create { name, superuser, grant_tokens, password_stdin, json } => {
            if !nbtoken_core::password::valid_username(&name) {
                bail!("invalid username {name:?}: use 1 to 150 letters, digits and @ . + - _ (as the API requires)");
            }
            let password_hash = if password_stdin {
                let pw = read_password_stdin()?;
                Some(hash_password(pw.expose()).map_err(|e| anyhow!("{e}"))?)
            } else {
                None
            };
            let u = store
                .create_user(NewUser {
                    username: name.clone(),
                    password_hash,
                    is_active: true,
                    is_superuser: superuser,
                    can_grant_tokens: grant_tokens || superuser,
                    ..Default::default()
                })
                .await
                .map_err(|e| match e {
                    nbtoken_store::StoreError::Conflict(_) => anyhow!("a user named {name:?} already exists"),
                    other => other.into(),
                })?;
            if json {
                print_json(&api_json::user(&base(None), &u, false))?;
            } else {
                line(format!("created user {} (id {})", u.username, u.id))?;
            }
        }
        UserCommand::List { json } => {
            let (_, users) = store.list_users(&UserFilter::default(), ALL).await?;
            if json {
                let b = base(None);
                print_json(&Value::Array(users.iter().map(|u| api_json::user(&b, u, false)).collect()))?;
            } else {
                line(users_table(&users))?;
            }
        }
        UserCommand::SetPassword { name, password_stdin } => {
            let u = find_user(store, &name).await?;
            let (pw, generated) = if password_stdin {
                (read_password_stdin()?, false)
            } else {
                (nbtoken_core::password::generate_password()?, true)
            };
            let hash = hash_password(pw.expose()).map_err(|e| anyhow!("{e}"))?;
            store
                .update_user(u.id, UserPatch { password_hash: Some(Some(hash)), ..Default::default() })
                .await?;
            if generated {
                line(format!("new password for {name} (shown once): {}", pw.expose()))?;
            } else {
                line(format!("password of {name} changed"))?;
            }
        }
        UserCommand::Disable { name } => {
            let u = find_user(store, &name).await?;
            store.update_user(u.id, UserPatch { is_active: Some(false), ..Default::default() }).await?;
            line(format!("disabled user {name}: their tokens no longer authenticate"))?;
        }
        UserCommand::Enable { name } => {
            let u = find_user(store, &name).await?;
            store.update_user(u.id, UserPatch { is_active: Some(true), ..Default::default() }).await?;
            line(format!("enabled user {name}"))?;
        }
    }
    Ok(())
}
