//! `nbtoken migrate plan|apply|finalize`: the same steps on the local store or a remote NetBox.
//!
//! Every v1 token gets an outcome: one refused token never stops the others,
//! and the exit status is non-zero only after all of them were tried. No
//! secret is created before its destination is open and checked, and each is
//! written (and synced) as soon as it exists.

use std::io::{IsTerminal, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nbtoken_core::migrate::{
    apply_decision, finalize_acts, finalize_decision, plan, replacement_description, Apply, Finalize,
    PlanItem, TokenInfo,
};
use nbtoken_core::{AllowedIps, SecretString, TokenVersion};
use nbtoken_server::json::timestamp;
use nbtoken_server::service::{create_token, TokenSpec};
use nbtoken_store::{AnyStore, Store, TokenFilter, TokenPatch};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::remote::RemoteTarget;
use super::{open_store, ALL};
use crate::cli::MigrateCommand;
use crate::output::{line, note, print_json, stdout_error};
use crate::settings::Settings;

/// Where tokens live: the local store or a remote API. The planner in core does the thinking.
pub(crate) trait Target {
    /// Every token (v1 and v2) the migration needs to see.
    async fn tokens(&self) -> Result<Vec<TokenInfo>>;
    /// Who the commands act as.
    async fn caller(&self) -> Result<Caller>;
    /// Creates the v2 replacement of a v1 token; returns it and its full `nbt_…` value.
    async fn create_replacement(&self, v1: &TokenInfo) -> Result<(TokenInfo, SecretString)>;
    /// Disables a token.
    async fn disable(&self, id: i64) -> Result<()>;
    /// Deletes a token.
    async fn delete(&self, id: i64) -> Result<()>;
    /// Where this is, for messages.
    fn describe(&self) -> String;
}

/// The identity behind a target: whether it sees every token, and which v1
/// token (if any) is the credential the commands themselves authenticate with.
pub(crate) struct Caller {
    /// The authenticated user's id (`None` for the local store).
    pub user_id: Option<i64>,
    /// For messages.
    pub username: String,
    /// `Some(true)`: sees every token; `Some(false)`: only some; `None`: cannot tell.
    pub sees_all: Option<bool>,
    /// The commands' own credential.
    pub own: OwnToken,
}

/// The commands' own credential, as far as it can be recognised in a token list.
#[derive(Clone, Debug)]
pub(crate) enum OwnToken {
    /// Not a token (the local store) or not a v1 token: finalize cannot revoke it.
    NotV1,
    /// A v1 token, recognised by the last six characters NetBox shows in its `display`.
    V1Tail(String),
}

impl OwnToken {
    /// From the token value the commands send (its shape already checked by the client):
    /// the tail of core's sanitised v1 form, as NetBox shows it.
    pub(crate) fn of(token: &str) -> Self {
        match nbtoken_core::V1Plaintext::parse(token) {
            Ok(v1) => {
                let shown = v1.partial();
                OwnToken::V1Tail(shown[shown.len() - 6..].to_owned())
            }
            Err(_) => OwnToken::NotV1,
        }
    }
}

impl Caller {
    /// Whether `t` may be the token the commands authenticate with.
    fn may_be_own(&self, t: &TokenInfo) -> bool {
        match &self.own {
            OwnToken::NotV1 => false,
            OwnToken::V1Tail(tail) => {
                t.version == TokenVersion::V1
                    && self.user_id.is_none_or(|id| id == t.user_id)
                    && t.display.ends_with(tail.as_str())
            }
        }
    }

    /// Says loudly when the view of the tokens may be partial.
    pub(crate) fn warn_if_partial(&self, where_: &str, command: &str) {
        let who = &self.username;
        match self.sees_all {
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

    async fn caller(&self) -> Result<Caller> {
        Ok(Caller {
            user_id: None,
            username: "the local store".into(),
            sees_all: Some(true),
            own: OwnToken::NotV1,
        })
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
                // No restriction stays "not set" (`null`), as before; a list is copied.
                allowed_ips: if v1.allowed_ips.is_empty() {
                    AllowedIps::default()
                } else {
                    AllowedIps::new(v1.allowed_ips.clone())
                },
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
            run(&Local { store: open_store(&settings).await?, settings: &settings }, cmd).await
        }
    }
}

async fn run(target: &impl Target, cmd: MigrateCommand) -> Result<()> {
    match cmd {
        MigrateCommand::Plan { json, .. } => {
            let caller = target.caller().await?;
            caller.warn_if_partial(&target.describe(), "plan");
            let items = plan(&target.tokens().await?);
            if json {
                print_json(&Value::Array(items.iter().map(item_json).collect()))
            } else {
                print_plan(&items, &target.describe())
            }
        }
        MigrateCommand::Apply { secrets_file, .. } => apply(target, secrets_file).await,
        MigrateCommand::Finalize { delete, json, .. } => finalize(target, delete, json).await,
    }
}

/// A token's allowed networks as NetBox shows them: `null` for none.
fn ips_json(ips: &[ipnet::IpNet]) -> Value {
    if ips.is_empty() {
        Value::Null
    } else {
        Value::Array(ips.iter().map(|n| json!(n.to_string())).collect())
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
    line(format!("{} v1 token(s) in {where_}", items.len()))?;
    line(t)
}

/// Where new secrets go: a new owner-only file, kept a valid JSON array after
/// every secret, or standard output.
enum Secrets {
    File { file: std::fs::File, path: PathBuf, end: u64, count: usize },
    Stdout { count: usize },
}

impl Secrets {
    /// Opens and checks the destination. Nothing has been created yet when this fails.
    fn open(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            let mut out = std::io::stdout().lock();
            out.write_all(b"[").and_then(|()| out.flush()).map_err(stdout_error).context(
                "cannot write the secrets to standard output; nothing was created (use --secrets-file)",
            )?;
            return Ok(Secrets::Stdout { count: 0 });
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            bail!("the directory of --secrets-file, {}, does not exist; nothing was created", dir.display());
        }
        if path.exists() {
            bail!(
                "{} exists; choose a new file (secrets are written once and never overwritten); nothing was created",
                path.display()
            );
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts
            .open(path)
            .with_context(|| format!("cannot create {}; nothing was created", path.display()))?;
        // An empty array first: the file is valid JSON at every moment.
        file.write_all(b"[\n]\n")
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}; nothing was created", path.display()))?;
        // The new directory entry must survive a crash too.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(Secrets::File { file, path: path.to_owned(), end: 1, count: 0 })
    }

    /// Writes one secret and makes sure it reached the disk (or the reader).
    fn push(&mut self, entry: &Value) -> std::io::Result<()> {
        let text = entry.to_string();
        match self {
            Secrets::File { file, end, count, .. } => {
                let item = format!("{}\n  {text}", if *count == 0 { "" } else { "," });
                let written = file
                    .seek(SeekFrom::Start(*end))
                    .and_then(|_| file.write_all(format!("{item}\n]\n").as_bytes()))
                    .and_then(|()| file.sync_data());
                if let Err(e) = written {
                    // A partial write (disk full, file size limit) would leave
                    // broken JSON: cut it off, so the secrets already there stay readable.
                    let _ = file
                        .set_len(*end)
                        .and_then(|()| file.seek(SeekFrom::Start(*end)))
                        .and_then(|_| file.write_all(b"\n]\n"))
                        .and_then(|()| file.sync_data());
                    return Err(e);
                }
                *end += item.len() as u64;
                *count += 1;
            }
            Secrets::Stdout { count } => {
                let mut out = std::io::stdout().lock();
                write!(out, "{}\n  {text}", if *count == 0 { "" } else { "," })?;
                out.flush()?;
                *count += 1;
            }
        }
        Ok(())
    }

    /// Closes the JSON array on standard output.
    fn finish(&mut self) -> std::io::Result<()> {
        match self {
            Secrets::File { .. } => Ok(()),
            Secrets::Stdout { .. } => {
                let mut out = std::io::stdout().lock();
                out.write_all(b"\n]\n")?;
                out.flush()
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Secrets::File { path, .. } => path.display().to_string(),
            Secrets::Stdout { .. } => "standard output".into(),
        }
    }
}

fn who(v1: &TokenInfo) -> String {
    format!("v1 #{} ({}, {})", v1.id, v1.display, v1.username)
}

async fn apply(target: &impl Target, secrets_file: Option<PathBuf>) -> Result<()> {
    let caller = target.caller().await?;
    caller.warn_if_partial(&target.describe(), "apply");
    let items = plan(&target.tokens().await?);
    let now = OffsetDateTime::now_utc();
    let decisions: Vec<(&PlanItem, Apply)> = items.iter().map(|i| (i, apply_decision(i, now))).collect();
    let todo = decisions.iter().filter(|(_, d)| *d == Apply::Create).count();
    // The destination is opened and checked before anything is created.
    let mut secrets = Secrets::open(secrets_file.as_deref())?;
    let bar = indicatif::ProgressBar::new(todo as u64);
    if !std::io::stderr().is_terminal() || todo < 10 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut report: Vec<String> = Vec::new();
    let (mut created, mut already, mut skipped, mut failed) = (0, 0, 0, 0);
    // Secrets whose destination failed after they were created: shown so they are not lost.
    let mut unwritten: Vec<Value> = Vec::new();
    let mut broken: Option<String> = None;
    for (item, decision) in &decisions {
        let v1 = &item.v1;
        let outcome = match decision {
            Apply::AlreadyReplaced => {
                already += 1;
                let r = item.replacement.as_ref().map(|r| format!(" #{}", r.id)).unwrap_or_default();
                format!("already has a replacement{r}")
            }
            Apply::SkipDisabled | Apply::SkipExpired => {
                skipped += 1;
                decision.reason().unwrap_or("skipped").to_owned()
            }
            Apply::Create if broken.is_some() => {
                failed += 1;
                "not attempted: the secrets destination failed".to_owned()
            }
            Apply::Create => {
                bar.inc(1);
                match target.create_replacement(v1).await {
                    Err(e) => {
                        failed += 1;
                        format!("FAILED: {e:#}")
                    }
                    Ok((r, full)) => {
                        let entry = json!({
                            "v1_id": v1.id,
                            "user": v1.username,
                            "replacement_id": r.id,
                            "key": r.display,
                            "token": full.expose(),
                        });
                        match secrets.push(&entry) {
                            Ok(()) => {
                                created += 1;
                                format!("created replacement #{} ({})", r.id, r.display)
                            }
                            Err(e) => {
                                failed += 1;
                                broken = Some(format!("cannot write to {}: {e}", secrets.describe()));
                                lost_secret(target, &secrets, &r, entry, &mut unwritten).await
                            }
                        }
                    }
                }
            }
        };
        report.push(format!("{}: {outcome}", who(v1)));
    }
    bar.finish_and_clear();
    if let Err(e) = secrets.finish() {
        broken.get_or_insert_with(|| format!("cannot write to {}: {e}", secrets.describe()));
    }
    for r in &report {
        note!("{r}");
    }
    note!(
        "{} v1 token(s): created {created} replacement(s){}; {already} already had one; {skipped} skipped; {failed} failed.",
        items.len(),
        match &secrets {
            Secrets::File { path, .. } => format!(" (secrets in {}, owner-only)", path.display()),
            Secrets::Stdout { .. } => String::new(),
        }
    );
    if !unwritten.is_empty() {
        note!("The secrets below could not be written to {}; store them now:", secrets.describe());
        print_json(&Value::Array(unwritten))
            .context("cannot print the secrets that could not be written; delete those replacements")?;
    }
    tracing::info!(created, failed, "migration apply finished");
    if let Some(b) = broken {
        bail!("{b}");
    }
    if failed > 0 {
        bail!(
            "{failed} v1 token(s) could not be given a replacement; see the report above and run apply again"
        );
    }
    Ok(())
}

/// A replacement exists but its secret could not be written. To a file: the
/// secret is printed on stdout instead. To stdout: nowhere is left, so the
/// useless replacement is deleted again (a re-run then creates a new one).
async fn lost_secret(
    target: &impl Target,
    secrets: &Secrets,
    r: &TokenInfo,
    entry: Value,
    unwritten: &mut Vec<Value>,
) -> String {
    match secrets {
        Secrets::File { .. } => {
            unwritten.push(entry);
            format!("created replacement #{} but its secret could not be written: printed below", r.id)
        }
        Secrets::Stdout { .. } => match target.delete(r.id).await {
            Ok(()) => format!(
                "FAILED: replacement #{} created but its secret could not be written, so it was deleted again",
                r.id
            ),
            Err(e) => format!(
                "FAILED: replacement #{} created but its secret could not be written, and deleting it failed ({e:#}): delete it",
                r.id
            ),
        },
    }
}

async fn finalize(target: &impl Target, delete: bool, json: bool) -> Result<()> {
    let caller = target.caller().await?;
    caller.warn_if_partial(&target.describe(), "finalize");
    let items = plan(&target.tokens().await?);
    // The token these commands authenticate with goes last: revoking it first
    // would cut the branch the rest of the run sits on.
    let (own, others): (Vec<&PlanItem>, Vec<&PlanItem>) =
        items.iter().partition(|i| caller.may_be_own(&i.v1));
    let mut report = Vec::new();
    let mut failed = 0;
    for i in others.iter().chain(own.iter()) {
        let decision = finalize_decision(i);
        let revoke = finalize_acts(i, delete);
        if revoke && caller.may_be_own(&i.v1) {
            note!(
                "WARNING: {} looks like the token this command authenticates with; it is {} last, \
                 and the token stops working now.",
                who(&i.v1),
                if delete { "deleted" } else { "disabled" }
            );
        }
        let result = if revoke && delete {
            target.delete(i.v1.id).await.map(|()| "deleted".to_owned())
        } else if revoke {
            target.disable(i.v1.id).await.map(|()| "disabled".to_owned())
        } else {
            Ok(match decision {
                Finalize::AlreadyRevoked => "already disabled",
                Finalize::Waiting => "waiting: replacement not used yet",
                Finalize::NoReplacement | Finalize::Revoke => "no replacement: run `nbtoken migrate apply`",
            }
            .to_owned())
        };
        let (action, error) = match result {
            Ok(a) => (a, None),
            Err(e) => {
                failed += 1;
                (
                    format!("FAILED, still {}", if i.v1.enabled { "enabled" } else { "disabled" }),
                    Some(format!("{e:#}")),
                )
            }
        };
        report.push(json!({
            "id": i.v1.id,
            "user": i.v1.username,
            "display": i.v1.display,
            "replacement_id": i.replacement.as_ref().map(|r| r.id),
            "action": action,
            "error": error,
        }));
    }
    report.sort_by_key(|r| r["id"].as_i64());
    if json {
        print_json(&Value::Array(report.clone()))?;
    } else {
        for r in &report {
            let error = r["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
            line(format!(
                "v1 #{} ({}, {}): {}{error}",
                r["id"],
                r["display"].as_str().unwrap_or(""),
                r["user"].as_str().unwrap_or(""),
                r["action"].as_str().unwrap_or("")
            ))?;
        }
        let waiting =
            report.iter().filter(|r| r["action"].as_str().is_some_and(|a| a.starts_with("waiting"))).count();
        line(format!(
            "{} v1 token(s); {waiting} still waiting for their integration to switch",
            report.len()
        ))?;
    }
    if failed > 0 {
        bail!("{failed} v1 token(s) could not be revoked (listed above); every other outcome above is done");
    }
    Ok(())
}
