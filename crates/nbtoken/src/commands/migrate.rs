//! `nbtoken migrate plan|apply|finalize`: the same steps on the local store or a remote NetBox.

use std::io::IsTerminal;

use anyhow::{bail, Result};
use nbtoken_core::migrate::{
    finalize_decision, plan, replacement_description, Finalize, PlanItem, TokenInfo,
};
use nbtoken_core::{AllowedIps, SecretString, TokenVersion};
use nbtoken_server::json::timestamp;
use nbtoken_server::service::{create_token, TokenSpec};
use nbtoken_store::{AnyStore, Store, TokenFilter, TokenPatch};
use serde_json::{json, Value};

use super::{open_store, ALL};
use crate::cli::{MigrateCommand, Remote};
use crate::output::print_json;
use crate::settings::{write_private_file, Settings};

/// Where tokens live: the local store or a remote API. The planner in core does the thinking.
pub(crate) trait Target {
    /// Every token (v1 and v2) the migration needs to see.
    async fn tokens(&self) -> Result<Vec<TokenInfo>>;
    /// Creates the v2 replacement of a v1 token; returns it and its full `nbt_…` value.
    async fn create_replacement(&self, v1: &TokenInfo) -> Result<(TokenInfo, SecretString)>;
    /// Disables a token.
    async fn disable(&self, id: i64) -> Result<()>;
    /// Deletes a token.
    async fn delete(&self, id: i64) -> Result<()>;
    /// Where this is, for messages.
    fn describe(&self) -> String;
}

struct Local<'a> {
    store: AnyStore,
    settings: &'a Settings,
}

impl Target for Local<'_> {
    async fn tokens(&self) -> Result<Vec<TokenInfo>> {
        let (_, rows) = self.store.list_tokens(&TokenFilter::default(), ALL).await?;
        Ok(rows.iter().map(TokenInfo::from).collect())
    }

    async fn create_replacement(&self, v1: &TokenInfo) -> Result<(TokenInfo, SecretString)> {
        let created = create_token(
            &self.store,
            &self.settings.peppers,
            self.settings.v1_policy,
            v1.user_id,
            TokenSpec {
                version: TokenVersion::V2,
                description: replacement_description(v1),
                expires: v1.expires,
                enabled: true,
                write_enabled: v1.write_enabled,
                allowed_ips: AllowedIps::new(v1.allowed_ips.clone()),
                ..Default::default()
            },
        )
        .await?;
        Ok((TokenInfo::from(&created.record), created.token))
    }

    async fn disable(&self, id: i64) -> Result<()> {
        self.store.update_token(id, TokenPatch { enabled: Some(false), ..Default::default() }).await?;
        Ok(())
    }

    async fn delete(&self, id: i64) -> Result<()> {
        self.store.delete_token(id).await?;
        Ok(())
    }

    fn describe(&self) -> String {
        "the local store".to_owned()
    }
}

pub(crate) async fn migrate(settings: &Settings, cmd: MigrateCommand) -> Result<()> {
    let remote = match &cmd {
        MigrateCommand::Plan { remote, .. }
        | MigrateCommand::Apply { remote, .. }
        | MigrateCommand::Finalize { remote, .. } => remote.clone(),
    };
    match remote_target(&remote)? {
        Some(target) => run(&target, cmd).await,
        None => run(&Local { store: open_store(settings).await?, settings }, cmd).await,
    }
}

fn remote_target(remote: &Remote) -> Result<Option<super::remote::RemoteTarget>> {
    match (&remote.url, &remote.token) {
        (None, None) => Ok(None),
        (Some(url), Some(token)) => Ok(Some(super::remote::RemoteTarget::new(url, token.expose())?)),
        (Some(_), None) => bail!("--url needs --token (or NBTOKEN_REMOTE_TOKEN)"),
        (None, Some(_)) => bail!("--token needs --url (or NBTOKEN_REMOTE_URL)"),
    }
}

async fn run(target: &impl Target, cmd: MigrateCommand) -> Result<()> {
    match cmd {
        MigrateCommand::Plan { json, .. } => {
            let items = plan(&target.tokens().await?);
            if json {
                print_json(&Value::Array(items.iter().map(item_json).collect()));
            } else {
                print_plan(&items, &target.describe());
            }
            Ok(())
        }
        MigrateCommand::Apply { secrets_file, .. } => apply(target, secrets_file).await,
        MigrateCommand::Finalize { delete, json, .. } => finalize(target, delete, json).await,
    }
}

fn item_json(i: &PlanItem) -> Value {
    let v1 = &i.v1;
    json!({
        "id": v1.id,
        "display": v1.display,
        "user": v1.username,
        "description": v1.description,
        "created": timestamp(v1.created),
        "last_used": v1.last_used.map(timestamp),
        "last_used_ip": v1.last_used_ip.map(|ip| ip.to_string()),
        "expires": v1.expires.map(timestamp),
        "allowed_ips": v1.allowed_ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "write_enabled": v1.write_enabled,
        "enabled": v1.enabled,
        "replacement_id": i.replacement.as_ref().map(|r| r.id),
        "replacement_key": i.replacement.as_ref().map(|r| r.display.clone()),
        "replacement_last_used": i.replacement.as_ref().and_then(|r| r.last_used).map(timestamp),
    })
}

fn print_plan(items: &[PlanItem], where_: &str) {
    if items.is_empty() {
        println!("no v1 tokens in {where_}: nothing to migrate");
        return;
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header([
        "id",
        "token",
        "user",
        "description",
        "created",
        "last used",
        "last used from",
        "expires",
        "allowed IPs",
        "write",
        "replacement",
    ]);
    for i in items {
        let v = &i.v1;
        let ips: Vec<String> = v.allowed_ips.iter().map(ToString::to_string).collect();
        t.add_row(vec![
            v.id.to_string(),
            v.display.clone(),
            v.username.clone(),
            v.description.clone(),
            timestamp(v.created),
            v.last_used.map(timestamp).unwrap_or_else(|| "never".into()),
            v.last_used_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "-".into()),
            v.expires.map(timestamp).unwrap_or_else(|| "-".into()),
            if ips.is_empty() { "any".into() } else { ips.join(", ") },
            if v.write_enabled { "yes" } else { "no" }.into(),
            match &i.replacement {
                Some(r) => format!("#{} ({})", r.id, r.display),
                None => "none yet".into(),
            },
        ]);
    }
    println!("{} v1 token(s) in {where_}", items.len());
    println!("{t}");
}

async fn apply(target: &impl Target, secrets_file: Option<std::path::PathBuf>) -> Result<()> {
    let items = plan(&target.tokens().await?);
    let todo: Vec<&PlanItem> = items.iter().filter(|i| i.replacement.is_none() && i.v1.enabled).collect();
    // Refuse an existing secrets file before creating anything, so no secret is lost.
    if let Some(path) = &secrets_file {
        if path.exists() {
            bail!(
                "{} exists; choose a new file (secrets are written once and never overwritten)",
                path.display()
            );
        }
    }
    let bar = indicatif::ProgressBar::new(todo.len() as u64);
    if !std::io::stderr().is_terminal() || todo.len() < 10 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut out = Vec::new();
    let mut failure = None;
    for item in &todo {
        match target.create_replacement(&item.v1).await {
            Ok((r, full)) => out.push(json!({
                "v1_id": item.v1.id,
                "user": item.v1.username,
                "replacement_id": r.id,
                "key": r.display,
                "token": full.expose(),
            })),
            Err(e) => {
                failure = Some(e.context(format!("creating the replacement of v1 token #{}", item.v1.id)));
                break;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    // Whatever was created is written out, even if a later creation failed.
    let doc = serde_json::to_string_pretty(&Value::Array(out.clone()))?;
    match &secrets_file {
        Some(path) => {
            write_private_file(path, format!("{doc}\n").as_bytes())?;
            eprintln!(
                "created {} replacement(s); their secrets are in {} (owner-only). {} v1 token(s) already had one.",
                out.len(),
                path.display(),
                items.len() - todo.len()
            );
        }
        None => {
            println!("{doc}");
            eprintln!(
                "created {} replacement(s); {} v1 token(s) already had one.",
                out.len(),
                items.len() - todo.len()
            );
        }
    }
    tracing::info!(created = out.len(), "migration apply finished");
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn finalize(target: &impl Target, delete: bool, json: bool) -> Result<()> {
    let items = plan(&target.tokens().await?);
    let mut report = Vec::new();
    for i in &items {
        let decision = finalize_decision(i);
        let action = match decision {
            Finalize::Revoke if delete => {
                target.delete(i.v1.id).await?;
                "deleted"
            }
            Finalize::Revoke => {
                target.disable(i.v1.id).await?;
                "disabled"
            }
            Finalize::AlreadyRevoked if delete && i.replacement.is_some() => {
                target.delete(i.v1.id).await?;
                "deleted"
            }
            Finalize::AlreadyRevoked => "already disabled",
            Finalize::Waiting => "waiting: replacement not used yet",
            Finalize::NoReplacement => "no replacement: run `nbtoken migrate apply`",
        };
        report.push(json!({
            "id": i.v1.id,
            "user": i.v1.username,
            "display": i.v1.display,
            "replacement_id": i.replacement.as_ref().map(|r| r.id),
            "action": action,
        }));
    }
    if json {
        print_json(&Value::Array(report));
    } else {
        for r in &report {
            println!(
                "v1 #{} ({}, {}): {}",
                r["id"],
                r["display"].as_str().unwrap_or(""),
                r["user"].as_str().unwrap_or(""),
                r["action"].as_str().unwrap_or("")
            );
        }
        let waiting =
            report.iter().filter(|r| r["action"].as_str().is_some_and(|a| a.starts_with("waiting"))).count();
        println!("{} v1 token(s); {waiting} still waiting for their integration to switch", report.len());
    }
    Ok(())
}
