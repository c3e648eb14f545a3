//! `nbtoken serve`: first-start bootstrap, then the server.

use anyhow::{anyhow, Result};
use nbtoken_core::password::hash_password;
use nbtoken_store::{AnyStore, Page, Store, UserFilter};

use super::open_store;
use crate::settings::{PepperSource, Settings};

pub(crate) async fn serve(settings: &mut Settings) -> Result<()> {
    let store = open_store(settings).await?;
    if settings.pepper_source == PepperSource::Missing {
        let path = settings.generate_pepper_file()?;
        tracing::warn!(
            path = %path.display(),
            "no peppers configured: generated one into the data directory; production should inject peppers with NBTOKEN_PEPPER_<ID>"
        );
    }
    let (count, _) = store.list_users(&UserFilter::default(), Page { limit: 1, offset: 0 }).await?;
    if count == 0 {
        bootstrap_admin(settings, &store).await?;
    }
    nbtoken_server::run(settings.server_config(), store, nbtoken_server::shutdown_signal()).await
}

/// First start: an `admin` superuser with a random password and a first v2 token, printed once.
async fn bootstrap_admin(settings: &Settings, store: &AnyStore) -> Result<()> {
    let password = nbtoken_core::password::generate_password()?;
    let hash = hash_password(password.expose()).map_err(|e| anyhow!("{e}"))?;
    let (_, created) = nbtoken_server::service::bootstrap_admin(
        store,
        &settings.peppers,
        settings.v1_policy,
        Some(hash),
        "created on first start",
    )
    .await?;
    println!("First start: created superuser 'admin'. These are shown once; store them now.");
    println!("  password: {}", password.expose());
    println!("  token:    {}", created.token.expose());
    println!(
        "Try: curl -H \"Authorization: Bearer {}\" http://{}/api/users/tokens/",
        created.token.expose(),
        settings.bind
    );
    Ok(())
}
