//! `nbtoken doctor`: checks a deployment and, with `--url`, a remote server.

use anyhow::{bail, Result};
use nbtoken_core::audit::{missing_peppers, v1_left, v1_policy, Attention};
use nbtoken_core::{SecretString, TokenVersion, V1Policy};
use nbtoken_store::{Page, Store, TokenFilter};

use super::open_store;
use crate::cli::{DoctorArgs, Global};
use crate::output::line;
use crate::settings::{PepperSource, Settings, GENERATED_PEPPERS};

struct Report(Vec<(String, Attention, String)>);

impl Report {
    fn add(&mut self, check: &str, level: Attention, detail: impl Into<String>) {
        self.0.push((check.to_owned(), level, detail.into()));
    }
}

pub(crate) async fn doctor(global: &Global, args: DoctorArgs) -> Result<()> {
    let mut r = Report(Vec::new());
    // With --url the remote is what is checked: nothing local is read or created.
    match &args.remote.url {
        Some(url) => {
            super::remote::doctor_remote(
                url,
                args.remote.token.as_ref().map(SecretString::expose),
                &mut |c, level, d| r.add(c, level, d),
            )
            .await
        }
        None if args.remote.token.is_some() => {
            bail!("--token needs --url (or NBTOKEN_REMOTE_URL): which server should it be checked against?")
        }
        None => match Settings::load(global, None) {
            Ok(settings) => local(&settings, &mut r).await,
            Err(e) => r.add("configuration", Attention::Fail, format!("{e:#}")),
        },
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header(["check", "status", "detail"]);
    for (check, level, detail) in &r.0 {
        let status = match level {
            Attention::Ok => "ok",
            Attention::Warn => "WARN",
            Attention::Fail => "FAIL",
        };
        t.add_row(vec![check.clone(), status.to_owned(), detail.clone()]);
    }
    line(t)?;
    let failed = r.0.iter().filter(|(_, l, _)| *l == Attention::Fail).count();
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    Ok(())
}

async fn local(s: &Settings, r: &mut Report) {
    r.add("configuration", Attention::Ok, "flags, environment and config file are valid");
    match s.pepper_source {
        PepperSource::Configured => {
            let ids: Vec<String> = s.peppers.ids().map(|i| i.to_string()).collect();
            r.add(
                "peppers",
                Attention::Ok,
                format!("configured ids {} (all ≥ 50 characters)", ids.join(", ")),
            );
        }
        PepperSource::DataDir => {
            let path = s.data_dir.join(GENERATED_PEPPERS);
            r.add(
                "peppers",
                Attention::Warn,
                format!(
                    "generated file {}; production should inject NBTOKEN_PEPPER_<ID> from a secret store",
                    path.display()
                ),
            );
            match private(&path) {
                Ok(true) => r.add("pepper file permissions", Attention::Ok, "readable by its owner only"),
                Ok(false) => r.add(
                    "pepper file permissions",
                    Attention::Fail,
                    format!("{} is readable by group or others: chmod 600 it", path.display()),
                ),
                Err(e) => r.add("pepper file permissions", Attention::Fail, e),
            }
        }
        PepperSource::Missing => r.add(
            "peppers",
            Attention::Fail,
            "none configured: v2 tokens can be neither created nor verified (set NBTOKEN_PEPPER_<ID>)",
        ),
    }
    if s.data_dir.exists() {
        match private(&s.data_dir) {
            Ok(true) => {
                r.add("data directory", Attention::Ok, format!("{} is private", s.data_dir.display()))
            }
            Ok(false) => r.add(
                "data directory",
                Attention::Warn,
                format!("{} is readable by others", s.data_dir.display()),
            ),
            Err(e) => r.add("data directory", Attention::Warn, e),
        }
    }
    let policy = match s.v1_policy {
        V1Policy::Allow => "allow: v1 tokens work with no warning; prefer warn, then deny",
        V1Policy::Warn => "warn: v1 requests get Deprecation/Sunset headers",
        V1Policy::Deny => "deny: v1 tokens are refused",
    };
    r.add("v1 policy", v1_policy(s.v1_policy), policy);
    database_file_mode(s, r);
    let store = match open_store(s).await {
        Ok(store) => store,
        Err(e) => {
            r.add("database", Attention::Fail, format!("{e:#}"));
            return;
        }
    };
    // The same check `serve` refuses to start without: reachable, intact, writable.
    match store.preflight().await {
        Ok(()) => r.add("database", Attention::Ok, "reachable, intact, writable, migrations applied"),
        Err(e) => r.add("database", Attention::Fail, e.to_string()),
    }
    let v1 = TokenFilter { version: Some(TokenVersion::V1), enabled: Some(true), ..Default::default() };
    if let Ok((n, _)) = store.list_tokens(&v1, Page { limit: 1, offset: 0 }).await {
        let detail = if n > 0 {
            format!("{n} enabled v1 token(s): see `nbtoken migrate plan`")
        } else {
            "none enabled".to_owned()
        };
        r.add("v1 tokens", v1_left(n), detail);
    }
    if let Ok(usage) = store.pepper_usage().await {
        for (id, tokens) in missing_peppers(usage.iter().map(|u| (u.pepper_id, u.tokens)), &s.peppers) {
            r.add(
                "pepper coverage",
                Attention::Fail,
                format!(
                    "{tokens} token(s) use pepper {id} which is not configured: they cannot authenticate"
                ),
            );
        }
    }
    store.close().await;
}

/// An SQLite database file (and its `-wal`/`-shm` companions) must be readable
/// by its owner only: it holds password hashes and v1 plaintexts.
fn database_file_mode(s: &Settings, r: &mut Report) {
    let Some(file) = nbtoken_store::sqlite::database_file(&s.database_url) else { return };
    if !file.exists() {
        return;
    }
    let mut wide = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut name = file.clone().into_os_string();
        name.push(suffix);
        let path = std::path::PathBuf::from(name);
        match private(&path) {
            Ok(true) => {}
            Ok(false) => wide.push(path.display().to_string()),
            Err(_) if !suffix.is_empty() => {} // no such companion file right now
            Err(e) => return r.add("database file permissions", Attention::Fail, e),
        }
    }
    if wide.is_empty() {
        r.add(
            "database file permissions",
            Attention::Ok,
            format!("{} is readable by its owner only", file.display()),
        );
    } else {
        r.add(
            "database file permissions",
            Attention::Fail,
            format!(
                "{} readable by group or others (it holds password hashes and v1 plaintexts): chmod 600 it",
                wide.join(", ")
            ),
        );
    }
}

#[cfg(unix)]
fn private(path: &std::path::Path) -> Result<bool, String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o077 == 0)
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(not(unix))]
fn private(_: &std::path::Path) -> Result<bool, String> {
    Ok(true)
}
