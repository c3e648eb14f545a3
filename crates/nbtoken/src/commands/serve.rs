//! `nbtoken serve`: first-start bootstrap, then the server.

use anyhow::{anyhow, Result};
use nbtoken_core::password::hash_password;
use nbtoken_core::SecretString;
use nbtoken_server::service::{create_token, TokenSpec};
use nbtoken_store::{AnyStore, NewUser, Page, Store, UserFilter};

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
    let generated = nbtoken_core::pepper::generate_value()?;
    let password = SecretString::from(&generated.expose()[..24]);
    let hash = hash_password(password.expose()).map_err(|e| anyhow!("{e}"))?;
    let admin = store
        .create_user(NewUser {
            username: "admin".into(),
            password_hash: Some(hash),
            is_active: true,
            is_superuser: true,
            can_grant_tokens: true,
            ..Default::default()
        })
        .await?;
    let created = create_token(
        store,
        &settings.peppers,
        settings.v1_policy,
        admin.id,
        TokenSpec { description: "created on first start".into(), ..Default::default() },
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
