//! The commands: each takes validated settings and calls the crates.

use anyhow::{anyhow, Context, Result};
use nbtoken_server::json::BaseUrl;
use nbtoken_store::{AnyStore, Page, Store, User};

use crate::cli::{Cli, Command, PepperCommand};
use crate::settings::Settings;

mod audit;
mod doctor;
mod migrate;
mod pepper;
mod remote;
mod scan;
mod serve;
mod token;
mod user;

/// Every row, for listings that show them all.
pub(crate) const ALL: Page = Page { limit: u32::MAX, offset: 0 };

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let mut settings = Settings::load(&cli.global, args.bind.as_deref())?;
            serve::serve(&cli.global, args.bind.as_deref(), &mut settings).await
        }
        Command::Pepper(PepperCommand::Generate) => pepper::generate(),
        Command::Scan(args) => scan::scan(args).await,
        Command::Doctor(args) => doctor::doctor(&cli.global, args).await,
        // Pointed at a remote, these read and create nothing local.
        Command::Migrate(cmd) => migrate::migrate(&cli.global, cmd).await,
        Command::Audit(args) => audit::audit(&cli.global, args).await,
        command => {
            let settings = Settings::load(&cli.global, None)?;
            let store = open_store(&settings).await?;
            match command {
                Command::User(cmd) => user::user(&store, cmd).await,
                Command::Token(cmd) => token::token(&settings, &store, cmd).await,
                Command::Pepper(cmd) => pepper::pepper(&settings, &store, cmd).await,
                _ => Err(anyhow!("unreachable command dispatch")),
            }
        }
    }
}

/// Opens the configured database, creating the data directory for the embedded default.
pub(crate) async fn open_store(settings: &Settings) -> Result<AnyStore> {
    if settings.database_url.starts_with("sqlite:") {
        settings.ensure_data_dir()?;
    }
    AnyStore::connect(&settings.database_url).await.context("cannot open the database")
}

pub(crate) async fn find_user(store: &AnyStore, name: &str) -> Result<User> {
    store.user_by_name(name).await?.ok_or_else(|| anyhow!("no user named {name:?}"))
}

/// The base for URLs in JSON output: the configured listen address (`--bind`,
/// `NBTOKEN_BIND` or `bind`), or no host at all (`/api/users/tokens/7/`)
/// rather than a guess that may name the wrong port.
pub(crate) fn base(settings: Option<&Settings>) -> BaseUrl {
    match settings.filter(|s| s.bind_configured) {
        Some(s) => BaseUrl::new(format!("http://{}", s.bind)),
        None => BaseUrl::new(""),
    }
}

pub(crate) fn not_found(e: nbtoken_store::StoreError, id: i64) -> anyhow::Error {
    match e {
        nbtoken_store::StoreError::NotFound => anyhow!("no token with id {id}"),
        other => other.into(),
    }
}

/// Parses a duration such as `10m`, `24h`, `7d` or `0`.
pub(crate) fn parse_duration(s: &str) -> Result<time::Duration> {
    if s.trim() == "0" {
        return Ok(time::Duration::ZERO);
    }
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| anyhow!("invalid duration {s:?}: {e} (use e.g. 10m, 24h, 7d)"))?;
    time::Duration::try_from(d).map_err(|_| anyhow!("duration {s:?} is too long"))
}

/// Parses `--allowed-ip` values.
pub(crate) fn parse_nets(values: &[String]) -> Result<nbtoken_core::AllowedIps> {
    nbtoken_core::AllowedIps::parse_list(values).map_err(|e| match e {
        Some(i) => anyhow!("invalid --allowed-ip {:?}: expected a CIDR such as 10.0.0.0/8", values[i]),
        None => anyhow!("at most {} --allowed-ip values", nbtoken_core::verify::MAX_ALLOWED_NETWORKS),
    })
}

/// Parses `--expires`.
pub(crate) fn parse_expires(value: Option<&str>) -> Result<Option<time::OffsetDateTime>> {
    value
        .map(|s| {
            nbtoken_server::json::parse_timestamp(s)
                .ok_or_else(|| anyhow!("invalid --expires {s:?}: use RFC 3339, e.g. 2027-01-01T00:00:00Z"))
        })
        .transpose()
}
