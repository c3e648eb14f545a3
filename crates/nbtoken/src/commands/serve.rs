//! `nbtoken serve`: bind the port, first-start bootstrap, then the server.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use nbtoken_store::{AnyStore, Store};

use super::open_store;
use crate::cli::Global;
use crate::settings::{write_private_file, PepperSource, Settings};

/// Where the first start writes the admin's password and token when stdout is not a terminal.
pub(crate) const FIRST_START_FILE: &str = "first-start-admin.txt";

pub(crate) async fn serve(global: &Global, bind_flag: Option<&str>, settings: &mut Settings) -> Result<()> {
    // The port first: a server that cannot listen must not create (and announce) an admin.
    let listener = tokio::net::TcpListener::bind(settings.bind)
        .await
        .with_context(|| format!("cannot listen on {}", settings.bind))?;
    let store = open_store(settings).await?;
    check_store(&store).await?;
    let on_netbox = store.management_refused().is_some();
    if settings.pepper_source == PepperSource::Missing && on_netbox {
        anyhow::bail!(
            "NBTOKEN_STORE=netbox needs NetBox's peppers: set NBTOKEN_PEPPER_<ID> to each entry of NetBox's \
             API_TOKEN_PEPPERS (the same ids and values), or put them in the pepper file"
        );
    }
    if settings.pepper_source == PepperSource::Missing {
        let path = settings.generate_pepper_file()?;
        tracing::warn!(
            path = %path.display(),
            "no peppers configured: generated one into the data directory; production should inject peppers with NBTOKEN_PEPPER_<ID>"
        );
    }
    if super::ops(settings, &store).needs_first_admin().await? {
        bootstrap_admin(settings, &store).await?;
    }
    let (reloads, received) = tokio::sync::mpsc::channel(1);
    tokio::spawn(reload_on_sighup(global.clone(), bind_flag.map(str::to_owned), reloads));
    let config = settings.server_config();
    let owned = store.clone();
    let served = nbtoken_server::serve_with_reloads(
        listener,
        config,
        store,
        nbtoken_server::shutdown_signal(),
        received,
    )
    .await;
    // Queued writes are flushed; closing folds SQLite's write-ahead log into the file. A
    // connection still held by a request past the shutdown grace must not hold the exit up.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), owned.close()).await;
    served
}

/// On each SIGHUP, reads the configuration again (config file, pepper file, environment)
/// and hands it to the running server; a configuration that does not load is reported
/// and the running one kept. (The environment of a running process does not change:
/// what a reload can change lives in the config file or the data directory's pepper file.)
async fn reload_on_sighup(
    global: Global,
    bind_flag: Option<String>,
    reloads: tokio::sync::mpsc::Sender<nbtoken_server::Config>,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; configuration reloads are off");
            return;
        };
        while hup.recv().await.is_some() {
            match Settings::load(&global, bind_flag.as_deref()) {
                Ok(s) if s.peppers.is_empty() => {
                    tracing::error!(
                        "reload refused: the new configuration has no pepper; keeping the running one"
                    )
                }
                Ok(s) => {
                    let ids: Vec<u16> = s.peppers.ids().map(nbtoken_core::PepperId::get).collect();
                    tracing::info!(peppers = ?ids, "SIGHUP: reloading the configuration");
                    if reloads.send(s.server_config()).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::error!("reload refused: {e:#}; keeping the running configuration"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (global, bind_flag, reloads);
}

/// First start: an `admin` superuser with a random password and a first v2 token, shown once.
///
/// On a terminal they are printed; otherwise (systemd, Docker, a pipe: places that keep
/// stdout in logs) they go to an owner-only file in the data directory and only its path
/// is printed.
async fn bootstrap_admin(settings: &Settings, store: &AnyStore) -> Result<()> {
    let password = nbtoken_core::password::generate_password()?;
    let (_, created) =
        super::ops(settings, store).bootstrap_admin(Some(password.clone()), "created on first start").await?;
    let text = format!(
        "  password: {}\n  token:    {}\nTry: curl -H \"Authorization: Bearer {}\" http://{}/api/users/tokens/\n",
        password.expose(),
        created.token.expose(),
        created.token.expose(),
        settings.bind
    );
    if std::io::stdout().is_terminal() {
        println!("First start: created superuser 'admin'. These are shown once; store them now.");
        print!("{text}");
        return Ok(());
    }
    let path = write_credentials(settings, &text)?;
    println!(
        "First start: created superuser 'admin'. Its password and first token are in {} (readable only by this user); store them elsewhere, then delete the file.",
        path.display()
    );
    Ok(())
}

/// Writes the first-start credentials to a new owner-only file in the data directory.
fn write_credentials(settings: &Settings, text: &str) -> Result<PathBuf> {
    settings.ensure_data_dir()?;
    let path = settings.data_dir.join(FIRST_START_FILE);
    // A file left from an earlier first start belongs to a database that is gone (this one had
    // no user): replace it rather than refuse to start.
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
    }
    let body = format!(
        "# nbtoken first start: the superuser 'admin'. Shown once; store these elsewhere, then delete this file.\n{text}"
    );
    write_private_file(&path, body.as_bytes())?;
    Ok(std::path::absolute(&path).unwrap_or(path))
}

/// Refuses to serve (or bootstrap an admin) on a database that is damaged or
/// cannot write: a failed integrity check or write probe is a clear error
/// naming the file, never a healthy-looking server. (An empty file was
/// already refused when the store opened it.)
async fn check_store(store: &AnyStore) -> Result<()> {
    store.preflight().await.context("refusing to start: the database is not usable")
}
