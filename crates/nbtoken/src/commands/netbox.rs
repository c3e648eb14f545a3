//! `nbtoken netbox …`: what nbtoken adds to a NetBox database, shown, installed and removed.

use anyhow::{bail, Context, Result};
use nbtoken_store::netbox::{NetBoxAdmin, NetBoxStatus, SCHEMA};

use crate::cli::{Global, NetboxCommand};
use crate::settings::Settings;

/// Runs one `nbtoken netbox` command on the database the settings name.
pub async fn netbox(global: &Global, command: NetboxCommand) -> Result<()> {
    let settings = Settings::load(global, None)?;
    let url = &settings.database_url;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        bail!(
            "`nbtoken netbox` works on NetBox's PostgreSQL database: set NBTOKEN_DATABASE_URL \
             (or --database) to its postgres:// URL"
        );
    }
    let mut admin = NetBoxAdmin::connect(url).await.context("cannot open NetBox's database")?;
    let done = match command {
        NetboxCommand::Status => admin.status().await.map(|s| render(&s)),
        NetboxCommand::InstallTriggers => admin.install_triggers().await.map(|()| {
            "Installed change triggers on users_token and users_user: changes made in NetBox \
             now reach every nbtoken instance within a second."
                .to_owned()
        }),
        NetboxCommand::UninstallTriggers => admin
            .uninstall_triggers()
            .await
            .map(|()| "Removed the change triggers (if any); the cache TTL now bounds staleness.".to_owned()),
        NetboxCommand::Uninstall => admin.uninstall().await.map(|()| {
            format!(
                "Removed the change triggers and the `{SCHEMA}` schema; NetBox's own tables are untouched."
            )
        }),
    };
    admin.close().await;
    // Through `output::line`, as every command: a closed pipe ends quietly, never a panic.
    crate::output::line(done.context("NetBox database")?.trim_end())
}

/// The status as a few aligned lines.
fn render(s: &NetBoxStatus) -> String {
    let mut out = format!("NetBox tables:    schema {}\n", s.netbox_schema);
    out.push_str(&match s.schema_version {
        Some(v) => format!("nbtoken schema:   installed ({SCHEMA}.*, version {v})\n"),
        None => "nbtoken schema:   not installed (created when nbtoken serves this database)\n".to_owned(),
    });
    out.push_str(match s.triggers {
        0 => "change triggers:  not installed (the cache TTL bounds staleness)\n",
        2 => "change triggers:  installed on users_token and users_user\n",
        _ => "change triggers:  partly installed: run `nbtoken netbox install-triggers` again\n",
    });
    out.push_str("tokens:\n");
    if s.tokens.is_empty() {
        out.push_str("  none\n");
    }
    for t in &s.tokens {
        let label = match t.pepper_id {
            Some(p) => format!("v{} pepper {}", t.version, p.get()),
            None => format!("v{}", t.version),
        };
        out.push_str(&format!("  {label:<16} {}\n", t.tokens));
    }
    if let Some(n) = s.v1_uses {
        out.push_str(&format!("v1 uses recorded: {n}\n"));
    }
    out
}
