//! `nbtoken pepper …`

use anyhow::{bail, Result};
use nbtoken_core::migrate::TokenInfo;
use nbtoken_core::PepperId;
use nbtoken_manage::json::timestamp;
use nbtoken_store::{AnyStore, Store, TokenFilter};
use serde_json::{json, Value};

use super::ALL;
use crate::cli::PepperCommand;
use crate::output::{line, print_json};
use crate::settings::Settings;

pub(crate) fn generate() -> Result<()> {
    let v = nbtoken_core::pepper::generate_value()?;
    line(v.expose())?;
    Ok(())
}

pub(crate) async fn pepper(settings: &Settings, store: &AnyStore, cmd: PepperCommand) -> Result<()> {
    match cmd {
        PepperCommand::Generate => generate(),
        PepperCommand::Status { json } => status(settings, store, json).await,
        PepperCommand::Retire { id, disable_tokens } => retire(settings, store, id, disable_tokens).await,
    }
}

async fn status(settings: &Settings, store: &AnyStore, json: bool) -> Result<()> {
    let usage = store.pepper_usage().await?;
    let current = settings.peppers.current().ok().map(|p| p.id());
    let mut ids: Vec<PepperId> = settings.peppers.ids().chain(usage.iter().map(|u| u.pepper_id)).collect();
    ids.sort();
    ids.dedup();
    let rows: Vec<Value> = ids
        .iter()
        .map(|id| {
            let u = usage.iter().find(|u| u.pepper_id == *id);
            json!({
                "pepper_id": id.get(),
                "configured": settings.peppers.get(*id).is_ok(),
                "current": current == Some(*id),
                "tokens": u.map(|u| u.tokens).unwrap_or(0),
                "last_used": u.and_then(|u| u.last_used).map(timestamp),
            })
        })
        .collect();
    if json {
        print_json(&Value::Array(rows))?;
        return Ok(());
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header(["pepper", "configured", "current", "tokens", "last used"]);
    for r in &rows {
        t.add_row(vec![
            r["pepper_id"].to_string(),
            if r["configured"] == true { "yes" } else { "MISSING" }.to_owned(),
            if r["current"] == true { "yes" } else { "" }.to_owned(),
            r["tokens"].to_string(),
            r["last_used"].as_str().unwrap_or("-").to_owned(),
        ]);
    }
    line(t)?;
    if rows.iter().any(|r| r["configured"] == false && r["tokens"] != 0) {
        line("tokens on a missing pepper cannot authenticate: configure it again or re-issue them")?;
    }
    Ok(())
}

async fn retire(settings: &Settings, store: &AnyStore, id: u16, disable_tokens: bool) -> Result<()> {
    let id = PepperId::new(id)?;
    if settings.peppers.current().ok().map(|p| p.id()) == Some(id) {
        bail!("pepper {id} is the current pepper (it hashes new tokens); add a newer one first");
    }
    let filter = TokenFilter { pepper_id: Some(id), enabled: Some(true), ..Default::default() };
    let (count, rows) = store.list_tokens(&filter, ALL).await?;
    let usage = store.pepper_usage().await?;
    let total = usage.iter().find(|u| u.pepper_id == id).map(|u| u.tokens).unwrap_or(0);
    if total == 0 {
        line(format!("no token depends on pepper {id}: remove NBTOKEN_PEPPER_{id} (or its [peppers] entry) and restart"))?;
        return Ok(());
    }
    if !disable_tokens {
        bail!(
            "{total} token(s) still depend on pepper {id} ({count} enabled). They move to the newest pepper when next used; \
             wait, or run with --disable-tokens to disable exactly those tokens"
        );
    }
    let ops = super::ops(settings, store);
    for r in &rows {
        ops.set_token_enabled(&super::OPERATOR, r.token.id, false).await?;
        line(format!("disabled token {} ({}, user {})", r.token.id, TokenInfo::from(r).display, r.username))?;
    }
    line(format!(
        "{} token(s) disabled; pepper {id} can now be removed (NBTOKEN_PEPPER_{id} / [peppers]) once no overlap depends on it",
        rows.len()
    ))?;
    Ok(())
}
