//! `nbtoken token …`: parses the flags, calls the token operations of `nbtoken_manage` as the
//! operator, and prints the answer.

use std::io::Read;

use anyhow::{anyhow, bail, Context, Result};
use nbtoken_core::{Secret, SecretString, TokenVersion};
use nbtoken_manage::json as api_json;
use nbtoken_manage::tokens::MSG_VALUE_IN_USE;
use nbtoken_manage::{Created, Error, TokenSpec};
use nbtoken_store::{AnyStore, TokenFilter};
use serde_json::{json, Value};

use super::{base, find_user, not_found, ops, parse_duration, parse_expires, parse_nets, ALL, OPERATOR};
use crate::cli::{NewTokenOptions, TokenCommand, TokenCreateArgs, TokenImportArgs};
use crate::output::{line, print_json, tokens_table};
use crate::settings::Settings;

pub(crate) async fn token(settings: &Settings, store: &AnyStore, cmd: TokenCommand) -> Result<()> {
    let b = base(Some(settings));
    let ops = ops(settings, store);
    match cmd {
        TokenCommand::Create(args) => create(settings, store, args).await,
        TokenCommand::Import(args) => import(settings, store, args).await,
        TokenCommand::List { user, version, json } => {
            let mut filter = TokenFilter::default();
            if let Some(name) = user {
                filter.user_ids = vec![find_user(&ops, &name).await?.id];
            }
            if let Some(v) = version {
                filter.version = Some(TokenVersion::from_u8(v)?);
            }
            let (_, rows) = ops.tokens(&OPERATOR, filter, ALL).await?;
            if json {
                print_json(&Value::Array(rows.iter().map(|r| api_json::token(&b, r, false)).collect()))?;
            } else {
                line(tokens_table(&rows))?;
            }
            Ok(())
        }
        TokenCommand::Show { id, json } => {
            let r = ops.token(&OPERATOR, id).await.map_err(|e| not_found(e, id))?;
            if json {
                print_json(&api_json::token(&b, &r, false))?;
            } else {
                line(tokens_table(std::slice::from_ref(&r)))?;
            }
            Ok(())
        }
        TokenCommand::Disable { id } | TokenCommand::Enable { id } => {
            let enabled = matches!(cmd, TokenCommand::Enable { .. });
            ops.set_token_enabled(&OPERATOR, id, enabled).await.map_err(|e| not_found(e, id))?;
            line(format!("{} token {id}", if enabled { "enabled" } else { "disabled" }))?;
            Ok(())
        }
        TokenCommand::Delete { id } => {
            ops.delete_token(&OPERATOR, id).await.map_err(|e| not_found(e, id))?;
            line(format!("deleted token {id}"))?;
            Ok(())
        }
        TokenCommand::Rotate { id, overlap, json } => {
            let overlap = parse_duration(&overlap)?;
            let (record, r) = ops.rotate_token(&OPERATOR, id, overlap).await.map_err(|e| not_found(e, id))?;
            if json {
                let mut v = api_json::token_with_secret(&b, &record, &r.secret);
                if let Value::Object(o) = &mut v {
                    o.insert(
                        "previous_valid_until".into(),
                        r.previous
                            .as_ref()
                            .map(|p| json!(api_json::timestamp(p.valid_until)))
                            .unwrap_or(Value::Null),
                    );
                }
                print_json(&v)?;
            } else {
                line(format!("rotated token {id} (new value shown once; store it now):"))?;
                line(format!("Authorization: Bearer {}", r.token.expose()))?;
                match &r.previous {
                    Some(p) => line(format!(
                        "the old secret keeps working until {}",
                        api_json::timestamp(p.valid_until)
                    ))?,
                    None => line("the old secret no longer works")?,
                }
            }
            Ok(())
        }
    }
}

fn print_created(settings: &Settings, created: &Created, owner: &str, json: bool) -> Result<()> {
    let id = created.record.token.id;
    let printed = if json {
        print_json(&api_json::token_with_secret(&base(Some(settings)), &created.record, &created.secret))
    } else {
        let keyword = created.record.token.version().keyword();
        line(format!("created token {id} for {owner} (shown once; store it now):"))
            .and_then(|()| line(format!("Authorization: {keyword} {}", created.token.expose())))
    };
    // The secret is shown only here: when it cannot be, the token is useless, and the user must know.
    printed.with_context(|| {
        format!("token {id} was created but its secret could not be printed: delete it (nbtoken token delete {id})")
    })
}

/// The [`TokenSpec`] of the settings `token create` and `token import` share.
fn spec(o: &NewTokenOptions, version: TokenVersion) -> Result<TokenSpec> {
    Ok(TokenSpec {
        version,
        description: o.description.clone(),
        expires: parse_expires(o.expires.as_deref())?,
        write_enabled: !o.read_only,
        allowed_ips: parse_nets(&o.allowed_ips)?,
        ..Default::default()
    })
}

async fn create(settings: &Settings, store: &AnyStore, args: TokenCreateArgs) -> Result<()> {
    let ops = ops(settings, store);
    let o = &args.options;
    let owner = find_user(&ops, &o.user).await?;
    let spec = spec(o, TokenVersion::from_u8(args.version)?)?;
    let created = ops.create_token(&OPERATOR, &owner, spec).await?;
    print_created(settings, &created, &owner.username, o.json)
}

/// Reads `nbt_<key>.<secret>` (or `Bearer nbt_…`) from stdin and stores it as a v2 token.
async fn import(settings: &Settings, store: &AnyStore, args: TokenImportArgs) -> Result<()> {
    let ops = ops(settings, store);
    let o = &args.options;
    let owner = find_user(&ops, &o.user).await?;
    let mut input = String::new();
    std::io::stdin().take(4096).read_to_string(&mut input).context("cannot read the token from stdin")?;
    let input = SecretString::new(input);
    let value = input.expose().trim();
    let value = value.strip_prefix("Bearer ").map(str::trim).unwrap_or(value);
    if value.is_empty() {
        bail!("no token on stdin: pipe in nbt_<key>.<secret>");
    }
    let (key, secret) = Secret::parse_full(value).context("cannot import")?;
    let spec = TokenSpec {
        chosen: Some(SecretString::from(secret.expose())),
        chosen_key: Some(key),
        ..spec(o, TokenVersion::V2)?
    };
    let created = ops.create_token(&OPERATOR, &owner, spec).await.map_err(|e| match e {
        Error::Invalid(i) if i.of("token").is_some_and(|m| m.iter().any(|m| m == MSG_VALUE_IN_USE)) => {
            anyhow!("a token with this key already exists")
        }
        other => other.into(),
    })?;
    if o.json {
        print_created(settings, &created, &owner.username, true)?;
    } else {
        line(format!(
            "imported token {} for {} (key {})",
            created.record.token.id,
            owner.username,
            nbtoken_core::migrate::TokenInfo::from(&created.record).display
        ))?;
    }
    Ok(())
}
