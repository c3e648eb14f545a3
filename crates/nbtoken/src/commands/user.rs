//! `nbtoken user …`: parses the flags, calls the user operations of `nbtoken_manage` as the
//! operator, and prints the answer.

use anyhow::Result;
use nbtoken_core::SecretString;
use nbtoken_manage::json as api_json;
use nbtoken_manage::{AccountChanges, Inline, NewAccount, Ops};
use nbtoken_store::{AnyStore, UserFilter, UserPatch};
use serde_json::Value;

use super::{base, find_user, ops, ALL, OPERATOR};
use crate::cli::UserCommand;
use crate::output::{line, print_json, users_table};
use crate::settings::{read_password_stdin, Settings};

pub(crate) async fn user(settings: &Settings, store: &AnyStore, cmd: UserCommand) -> Result<()> {
    let ops = ops(settings, store);
    match cmd {
        UserCommand::Create { name, superuser, grant_tokens, password_stdin, json } => {
            let password = if password_stdin { Some(read_password_stdin()?) } else { None };
            let account = NewAccount {
                username: name,
                password,
                is_superuser: superuser,
                // Unset: the operation's default (a superuser may grant tokens).
                can_grant_tokens: grant_tokens.then_some(true),
                ..Default::default()
            };
            let u = ops.create_user(&OPERATOR, account).await?;
            if json {
                print_json(&api_json::user(&base(None), &u, false))?;
            } else {
                line(format!("created user {} (id {})", u.username, u.id))?;
            }
        }
        UserCommand::List { json } => {
            let (_, users) = ops.users(&OPERATOR, UserFilter::default(), ALL).await?;
            if json {
                let b = base(None);
                print_json(&Value::Array(users.iter().map(|u| api_json::user(&b, u, false)).collect()))?;
            } else {
                line(users_table(&users))?;
            }
        }
        UserCommand::SetPassword { name, password_stdin } => {
            let u = find_user(&ops, &name).await?;
            let (pw, generated) = if password_stdin {
                (read_password_stdin()?, false)
            } else {
                (nbtoken_core::password::generate_password()?, true)
            };
            let shown = generated.then(|| pw.expose().to_owned()).map(SecretString::new);
            ops.set_password(&OPERATOR, &u, pw).await?;
            match shown {
                Some(pw) => line(format!("new password for {name} (shown once): {}", pw.expose()))?,
                None => line(format!("password of {name} changed"))?,
            }
        }
        UserCommand::Disable { name } => set_active(&ops, &name, false).await?,
        UserCommand::Enable { name } => set_active(&ops, &name, true).await?,
        UserCommand::Delete { name } => {
            let u = find_user(&ops, &name).await?;
            ops.delete_user(&OPERATOR, u.id).await?;
            line(format!("deleted user {name} and their tokens"))?;
        }
    }
    Ok(())
}

/// `user enable` and `user disable`.
async fn set_active(ops: &Ops<'_, AnyStore, Inline>, name: &str, active: bool) -> Result<()> {
    let u = find_user(ops, name).await?;
    let fields = UserPatch { is_active: Some(active), ..Default::default() };
    let changes = AccountChanges { fields, password: None };
    ops.update_user(&OPERATOR, &u, changes).await?;
    if active {
        line(format!("enabled user {name}"))
    } else {
        line(format!("disabled user {name}: their tokens no longer authenticate"))
    }
}
