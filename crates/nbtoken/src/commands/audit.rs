//! `nbtoken audit`: the local store, or a remote NetBox with `--url/--token`.

use anyhow::{anyhow, bail, Result};
use nbtoken_core::audit::{audit as run_audit, Finding};
use nbtoken_core::migrate::TokenInfo;
use nbtoken_manage::migrate::{read, Caller, LocalTarget, Observer};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::migrate::warn_if_partial;
use super::remote::RemoteTarget;
use super::{ops, parse_duration, with_store};
use crate::cli::{AuditArgs, Global};
use crate::output::{line, print_json};
use crate::settings::Settings;

pub(crate) async fn audit(global: &Global, args: AuditArgs) -> Result<()> {
    let stale_after = parse_duration(&args.stale_after)?;
    let fail_on = args
        .fail_on
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            Finding::parse(s).ok_or_else(|| {
                let names: Vec<&str> = Finding::ALL.iter().map(|f| f.name()).collect();
                anyhow!("unknown --fail-on condition {s:?}; use one of: {}", names.join(", "))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let infos: Vec<TokenInfo> = match RemoteTarget::from_args(&args.remote)? {
        Some(target) => read(&target, &mut Warn).await?.1,
        None => {
            let settings = Settings::load(global, None)?;
            with_store(&settings, async |store| {
                Ok(read(&LocalTarget::new(&ops(&settings, store)), &mut Warn).await?)
            })
            .await?
            .1
        }
    };
    let report = run_audit(&infos, OffsetDateTime::now_utc(), stale_after);
    if args.json {
        let mut findings = Map::new();
        for (f, ids) in &report.findings {
            findings.insert(f.name().to_owned(), json!(ids));
        }
        let peppers: Map<String, Value> =
            report.per_pepper.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        print_json(&json!({"tokens": report.total, "findings": findings, "per_pepper": peppers}))?;
    } else {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
        t.set_header(["finding", "count", "what it means", "token ids"]);
        for (f, ids) in &report.findings {
            let shown: Vec<String> = ids.iter().take(20).map(ToString::to_string).collect();
            let more = if ids.len() > 20 { format!(" … (+{})", ids.len() - 20) } else { String::new() };
            t.add_row(vec![
                f.name().to_owned(),
                ids.len().to_string(),
                f.describe().to_owned(),
                format!("{}{more}", shown.join(", ")),
            ]);
        }
        line(format!("{} tokens audited", report.total))?;
        line(t)?;
        for (p, n) in &report.per_pepper {
            line(format!("pepper {p}: {n} v2 token(s)"))?;
        }
    }
    let failed: Vec<&str> = report.failing(&fail_on).into_iter().map(Finding::name).collect();
    if !failed.is_empty() {
        bail!("audit failed on: {}", failed.join(", "));
    }
    Ok(())
}

/// Warns when the audit may not see every token.
struct Warn;

impl Observer for Warn {
    fn caller(&mut self, caller: &Caller, target: &str) {
        warn_if_partial(caller, target, "audit");
    }
}
