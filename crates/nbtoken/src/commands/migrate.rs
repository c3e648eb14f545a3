//! `nbtoken migrate plan|apply|finalize`: picks the target (the local store, or a remote
//! NetBox with `--url`), calls `nbtoken_manage::migrate` and renders its report.
//!
//! The exit status is non-zero only after every v1 token was tried, if one failed.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use nbtoken_core::migrate::{PlanItem, TokenInfo};
use nbtoken_core::AllowedIps;
use nbtoken_manage::json::timestamp;
use nbtoken_manage::migrate::{
    apply, finalize, ApplyOutcome, ApplyReport, Caller, FinalizeAction, FinalizeReport, LocalTarget,
    NewSecret, Observer, Plan, SecretSink, Target,
};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::remote::RemoteTarget;
use super::with_store;
use crate::cli::MigrateCommand;
use crate::output::{line, note, print_json, stdout_error};
use crate::settings::{SecretsFile, Settings};

/// Runs a migrate command; with `--url` nothing local is read or created.
pub(crate) async fn migrate(global: &crate::cli::Global, cmd: MigrateCommand) -> Result<()> {
    let remote = match &cmd {
        MigrateCommand::Plan { remote, .. }
        | MigrateCommand::Apply { remote, .. }
        | MigrateCommand::Finalize { remote, .. } => remote.clone(),
    };
    match RemoteTarget::from_args(&remote)? {
        Some(target) => run(&target, cmd).await,
        None => {
            let settings = Settings::load(global, None)?;
            with_store(&settings, async |store| {
                run(&LocalTarget::new(&super::ops(&settings, store)), cmd).await
            })
            .await
        }
    }
}

async fn run(target: &impl Target, cmd: MigrateCommand) -> Result<()> {
    let (command, json) = match &cmd {
        MigrateCommand::Plan { json, .. } => ("plan", *json),
        MigrateCommand::Apply { .. } => ("apply", false),
        MigrateCommand::Finalize { json, .. } => ("finalize", *json),
    };
    let mut cli = Cli { command, bar: None };
    let plan = Plan::read(target, &mut cli).await?;
    match cmd {
        MigrateCommand::Plan { .. } if json => {
            print_json(&Value::Array(plan.items.iter().map(item_json).collect()))
        }
        MigrateCommand::Plan { .. } => print_plan(&plan.items, &target.describe()),
        MigrateCommand::Apply { secrets_file, .. } => {
            let now = OffsetDateTime::now_utc();
            let todo = plan.to_create(now);
            // The destination is opened and checked before anything is created.
            let mut secrets = Secrets::open(secrets_file)?;
            let bar = indicatif::ProgressBar::new(todo as u64);
            if !std::io::stderr().is_terminal() || todo < 10 {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            cli.bar = Some(bar);
            let report = apply(target, &plan, now, &mut secrets, &mut cli).await;
            if let Some(bar) = &cli.bar {
                bar.finish_and_clear();
            }
            render_apply(&report, &secrets, plan.items.len())
        }
        MigrateCommand::Finalize { delete, .. } => {
            let report = finalize(target, &plan, delete, &mut cli).await;
            render_finalize(&report, json)
        }
    }
}

/// What the command says while the operation runs: the partial-view warning, progress,
/// and the warning before its own credential is revoked.
struct Cli {
    command: &'static str,
    bar: Option<indicatif::ProgressBar>,
}

impl Observer for Cli {
    fn caller(&mut self, caller: &Caller, target: &str) {
        warn_if_partial(caller, target, self.command);
    }

    fn creating(&mut self, _v1: &TokenInfo) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn revoking_own(&mut self, v1: &TokenInfo, delete: bool) {
        note!(
            "WARNING: {} looks like the token this command authenticates with; it is {} last, \
             and the token stops working now.",
            who(v1),
            if delete { "deleted" } else { "disabled" }
        );
    }
}

/// Says loudly when the view of the tokens may be partial (`command`: plan, apply, audit…).
pub(crate) fn warn_if_partial(caller: &Caller, where_: &str, command: &str) {
    let who = &caller.username;
    match caller.sees_all {
        Some(true) => {}
        Some(false) => note!(
            "WARNING: {who:?} is not a superuser on {where_}: it sees only the tokens its permissions allow.\n\
             WARNING: other users' v1 tokens are MISSING from this {command}. Use a superuser's token."
        ),
        None => note!(
            "WARNING: cannot tell whether {who:?} sees every token on {where_} (it holds object permissions).\n\
             WARNING: other users' v1 tokens may be MISSING from this {command}. Use a superuser's token."
        ),
    }
}

/// A token's allowed networks as the plan shows them: `null` for no restriction.
fn ips_json(ips: &AllowedIps) -> Value {
    if ips.is_unrestricted() {
        Value::Null
    } else {
        Value::Array(ips.nets().iter().map(|n| json!(n.to_string())).collect())
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
        "last_used_user_agent": v1.last_used_user_agent,
        "expires": v1.expires.map(timestamp),
        "allowed_ips": ips_json(&v1.allowed_ips),
        "write_enabled": v1.write_enabled,
        "enabled": v1.enabled,
        "replacement_id": i.replacement.as_ref().map(|r| r.id),
        "replacement_key": i.replacement.as_ref().map(|r| r.display.clone()),
        "replacement_last_used": i.replacement.as_ref().and_then(|r| r.last_used).map(timestamp),
    })
}

fn print_plan(items: &[PlanItem], where_: &str) -> Result<()> {
    if items.is_empty() {
        return line(format!("no v1 tokens in {where_}: nothing to migrate"));
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
        "last used by",
        "expires",
        "allowed IPs",
        "write",
        "replacement",
    ]);
    for i in items {
        let v = &i.v1;
        let ips: Vec<String> = v.allowed_ips.nets().iter().map(ToString::to_string).collect();
        t.add_row(vec![
            v.id.to_string(),
            v.display.clone(),
            v.username.clone(),
            v.description.clone(),
            timestamp(v.created),
            v.last_used.map(timestamp).unwrap_or_else(|| "never".into()),
            v.last_used_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "-".into()),
            v.last_used_user_agent.clone().unwrap_or_else(|| "-".into()),
            v.expires.map(timestamp).unwrap_or_else(|| "-".into()),
            if ips.is_empty() { "any".into() } else { ips.join(", ") },
            if v.write_enabled { "yes" } else { "no" }.into(),
            match &i.replacement {
                Some(r) => format!("#{} ({})", r.id, r.display),
                None => "none yet".into(),
            },
        ]);
    }
    line(format!("{} v1 token(s) in {where_}", items.len()))?;
    line(t)
}

/// Where new secrets go: a new owner-only file, or standard output; a JSON array either way.
enum Secrets {
    File(SecretsFile),
    Stdout { count: usize },
}

impl Secrets {
    /// Opens and checks the destination. Nothing has been created yet when this fails.
    fn open(path: Option<PathBuf>) -> Result<Self> {
        match path {
            Some(path) => Ok(Secrets::File(SecretsFile::create(&path)?)),
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(b"[").and_then(|()| out.flush()).map_err(stdout_error).context(
                    "cannot write the secrets to standard output; nothing was created (use --secrets-file)",
                )?;
                Ok(Secrets::Stdout { count: 0 })
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Secrets::File(f) => f.path().display().to_string(),
            Secrets::Stdout { .. } => "standard output".into(),
        }
    }
}

/// One secret as the file and standard output show it.
fn secret_json(s: &NewSecret) -> Value {
    json!({
        "v1_id": s.v1_id,
        "user": s.user,
        "replacement_id": s.replacement_id,
        "key": s.key,
        "token": s.token.expose(),
    })
}

impl SecretSink for Secrets {
    fn push(&mut self, secret: &NewSecret) -> std::io::Result<()> {
        let text = secret_json(secret).to_string();
        match self {
            Secrets::File(f) => f.push(&text),
            Secrets::Stdout { count } => {
                let mut out = std::io::stdout().lock();
                write!(out, "{}\n  {text}", if *count == 0 { "" } else { "," })?;
                out.flush()?;
                *count += 1;
                Ok(())
            }
        }
    }

    /// A file that fails leaves standard output to print the secret on; standard output
    /// that fails leaves nothing.
    fn can_hand_over(&self) -> bool {
        matches!(self, Secrets::File(_))
    }

    /// Closes the JSON array on standard output.
    fn finish(&mut self) -> std::io::Result<()> {
        match self {
            Secrets::File(_) => Ok(()),
            Secrets::Stdout { .. } => {
                let mut out = std::io::stdout().lock();
                out.write_all(b"\n]\n")?;
                out.flush()
            }
        }
    }
}

fn who(v1: &TokenInfo) -> String {
    format!("v1 #{} ({}, {})", v1.id, v1.display, v1.username)
}

fn apply_outcome(outcome: &ApplyOutcome) -> String {
    match outcome {
        ApplyOutcome::AlreadyReplaced(id) => {
            let r = id.map(|id| format!(" #{id}")).unwrap_or_default();
            format!("already has a replacement{r}")
        }
        ApplyOutcome::Skipped(decision) => decision.reason().unwrap_or("skipped").to_owned(),
        ApplyOutcome::NotAttempted => "not attempted: the secrets destination failed".to_owned(),
        ApplyOutcome::Failed(e) => format!("FAILED: {e}"),
        ApplyOutcome::Created { id, display } => format!("created replacement #{id} ({display})"),
        ApplyOutcome::Unwritten(id) => {
            format!("created replacement #{id} but its secret could not be written: printed below")
        }
        ApplyOutcome::Withdrawn(id) => format!(
            "FAILED: replacement #{id} created but its secret could not be written, so it was deleted again"
        ),
        ApplyOutcome::WithdrawFailed { id, error } => format!(
            "FAILED: replacement #{id} created but its secret could not be written, and deleting it failed ({error}): delete it"
        ),
        _ => "FAILED".to_owned(),
    }
}

fn render_apply(report: &ApplyReport, secrets: &Secrets, total: usize) -> Result<()> {
    for (v1, outcome) in &report.outcomes {
        note!("{}: {}", who(v1), apply_outcome(outcome));
    }
    note!(
        "{total} v1 token(s): created {} replacement(s){}; {} already had one; {} skipped; {} failed.",
        report.created,
        match secrets {
            Secrets::File(f) => format!(" (secrets in {}, owner-only)", f.path().display()),
            Secrets::Stdout { .. } => String::new(),
        },
        report.already,
        report.skipped,
        report.failed,
    );
    if !report.unwritten.is_empty() {
        note!("The secrets below could not be written to {}; store them now:", secrets.describe());
        print_json(&Value::Array(report.unwritten.iter().map(secret_json).collect()))
            .context("cannot print the secrets that could not be written; delete those replacements")?;
    }
    if let Some(e) = &report.sink_error {
        bail!("cannot write to {}: {e}", secrets.describe());
    }
    if report.failed > 0 {
        bail!(
            "{} v1 token(s) could not be given a replacement; see the report above and run apply again",
            report.failed
        );
    }
    Ok(())
}

fn finalize_action(action: &FinalizeAction, v1: &TokenInfo) -> (String, Option<String>) {
    let text = match action {
        FinalizeAction::Deleted => "deleted",
        FinalizeAction::Disabled => "disabled",
        FinalizeAction::AlreadyDisabled => "already disabled",
        FinalizeAction::Waiting => "waiting: replacement not used yet",
        FinalizeAction::NoReplacement => "no replacement: run `nbtoken migrate apply`",
        FinalizeAction::Failed(e) => {
            let state = if v1.enabled { "enabled" } else { "disabled" };
            return (format!("FAILED, still {state}"), Some(e.clone()));
        }
        _ => "FAILED",
    };
    (text.to_owned(), None)
}

fn render_finalize(report: &FinalizeReport, json: bool) -> Result<()> {
    let rows: Vec<Value> = report
        .entries
        .iter()
        .map(|e| {
            let (action, error) = finalize_action(&e.action, &e.v1);
            json!({
                "id": e.v1.id,
                "user": e.v1.username,
                "display": e.v1.display,
                "replacement_id": e.replacement_id,
                "action": action,
                "error": error,
            })
        })
        .collect();
    if json {
        print_json(&Value::Array(rows))?;
    } else {
        for (e, r) in report.entries.iter().zip(&rows) {
            let error = r["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
            line(format!("{}: {}{error}", who(&e.v1), r["action"].as_str().unwrap_or("")))?;
        }
        let waiting = report.entries.iter().filter(|e| e.action == FinalizeAction::Waiting).count();
        line(format!(
            "{} v1 token(s); {waiting} still waiting for their integration to switch",
            report.entries.len()
        ))?;
    }
    if report.failed > 0 {
        bail!(
            "{} v1 token(s) could not be revoked (listed above); every other outcome above is done",
            report.failed
        );
    }
    Ok(())
}
