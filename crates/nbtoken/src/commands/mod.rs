//! The commands: each takes validated settings and calls the crates.

use anyhow::{anyhow, Context, Result};
use nbtoken_manage::json::BaseUrl;
use nbtoken_manage::{Actor, Inline, Ops, Quiet};
use nbtoken_store::{AnyStore, Page, Store};

use crate::cli::{Cli, Command, PepperCommand};
use crate::settings::Settings;

mod audit;
mod doctor;
mod migrate;
mod netbox;
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
        Command::Netbox(cmd) => netbox::netbox(&cli.global, cmd).await,
        command => {
            let settings = Settings::load(&cli.global, None)?;
            with_store(&settings, async |store| match command {
                Command::User(cmd) => user::user(&settings, store, cmd).await,
                Command::Token(cmd) => token::token(&settings, store, cmd).await,
                Command::Pepper(cmd) => pepper::pepper(&settings, store, cmd).await,
                _ => Err(anyhow!("unreachable command dispatch")),
            })
            .await
        }
    }
}

/// Runs `work` on the configured database ([`open_store`]) and closes it after, whatever
/// `work` answered: closing is what folds SQLite's write-ahead log back into the database file
/// and removes it; a process that just exits may leave it for the next one to replay.
pub(crate) async fn with_store<T>(
    settings: &Settings,
    work: impl AsyncFnOnce(&AnyStore) -> Result<T>,
) -> Result<T> {
    let store = open_store(settings).await?;
    let done = work(&store).await;
    store.close().await;
    done
}

/// Opens the configured database, creating the data directory for the embedded default.
/// Whoever opens it closes it ([`Store::close`]) before the process ends, as [`with_store`] does.
pub(crate) async fn open_store(settings: &Settings) -> Result<AnyStore> {
    if settings.database_url.starts_with("sqlite:") {
        settings.ensure_data_dir()?;
    }
    AnyStore::connect_as(&settings.database_url, settings.store).await.context("cannot open the database")
}

/// The operator at this terminal: with the database at hand, it may do what a superuser may.
pub(crate) const OPERATOR: Actor = Actor::Operator;

/// The operations on `store`, hashing passwords inline; other processes learn of the changes
/// through the store's change feed or their cache's TTL.
pub(crate) fn ops<'a>(settings: &'a Settings, store: &'a AnyStore) -> Ops<'a, AnyStore, Inline> {
    Ops {
        store,
        peppers: &settings.peppers,
        v1_policy: settings.v1_policy,
        passwords: &Inline,
        announce: &Quiet,
    }
}

/// The user named `name`, or the CLI's words for none.
pub(crate) async fn find_user(ops: &Ops<'_, AnyStore, Inline>, name: &str) -> Result<nbtoken_store::User> {
    match ops.user_named(&OPERATOR, name).await {
        Ok(u) => Ok(u),
        Err(nbtoken_manage::Error::NotFound(_)) => Err(anyhow!("no user named {name:?}")),
        Err(e) => Err(e.into()),
    }
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

/// An operation's error on token `id`, with the CLI's words for a missing one.
pub(crate) fn not_found(e: nbtoken_manage::Error, id: i64) -> anyhow::Error {
    match e {
        nbtoken_manage::Error::NotFound(_) => anyhow!("no token with id {id}"),
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
            nbtoken_manage::json::parse_timestamp(s)
                .ok_or_else(|| anyhow!("invalid --expires {s:?}: use RFC 3339, e.g. 2027-01-01T00:00:00Z"))
        })
        .transpose()
}
