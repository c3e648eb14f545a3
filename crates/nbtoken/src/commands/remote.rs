//! A remote NetBox-compatible API (nbtoken or NetBox 4.5+) through `nbtoken-client`:
//! the migration and audit target, and the doctor's remote checks.

use anyhow::{bail, Context, Result};
use nbtoken_client::{Client, NewToken, Token, TokenPatch, TokenQuery};
use nbtoken_core::migrate::{replacement_description, TokenInfo};
use nbtoken_core::{PepperId, SecretString, TokenVersion};

use super::doctor::Level;
use super::migrate::{Caller, OwnToken, Target};
use crate::cli::Remote;

/// Migration against a remote API.
pub(crate) struct RemoteTarget {
    client: Client,
    url: String,
    own: OwnToken,
}

impl RemoteTarget {
    /// Checks the token's shape and the URL; sends nothing yet.
    pub(crate) fn new(url: &str, token: &str) -> Result<Self> {
        // The client's message already says what is wrong with the token or the URL.
        let client = Client::builder(url, SecretString::from(token)).build()?;
        Ok(Self { client, url: url.to_owned(), own: OwnToken::of(token) })
    }

    /// `--url`/`--token` (or their environment variables) as a target; `None` when neither is given.
    pub(crate) fn from_args(remote: &Remote) -> Result<Option<Self>> {
        match (&remote.url, &remote.token) {
            (None, None) => Ok(None),
            (Some(url), Some(token)) => Ok(Some(Self::new(url, token.expose())?)),
            (Some(_), None) => bail!("--url needs --token (or NBTOKEN_REMOTE_TOKEN)"),
            (None, Some(_)) => bail!("--token needs --url (or NBTOKEN_REMOTE_URL)"),
        }
    }
}

fn info(t: &Token) -> TokenInfo {
    TokenInfo {
        id: t.id,
        version: t.version,
        user_id: t.user.id,
        username: t.user.username.clone(),
        display: t.display.clone(),
        description: t.description.clone(),
        created: t.created,
        expires: t.expires,
        last_used: t.last_used,
        // nbtoken sends it; NetBox does not. An address that does not parse is only not shown.
        last_used_ip: t.last_used_ip.as_deref().and_then(|s| s.parse().ok()),
        enabled: t.enabled,
        write_enabled: t.write_enabled,
        // An address NetBox returns that we cannot parse is dropped from the
        // copy, never widened: an empty list would mean "anywhere", so keep
        // unparseable entries out of replacements by refusing them below.
        allowed_ips: t.allowed_ips.iter().flatten().filter_map(|s| s.parse().ok()).collect(),
        pepper_id: t.pepper_id.and_then(|p| PepperId::new(p).ok()),
    }
}

impl Target for RemoteTarget {
    async fn tokens(&self) -> Result<Vec<TokenInfo>> {
        let tokens = self.client.list_tokens(&TokenQuery::default()).await?;
        for t in &tokens {
            let given = t.allowed_ips.as_ref().map_or(0, Vec::len);
            if info(t).allowed_ips.len() != given {
                bail!(
                    "token #{} has an allowed_ips entry that is not an IP network; fix it before migrating",
                    t.id
                );
            }
        }
        Ok(tokens.iter().map(info).collect())
    }

    async fn caller(&self) -> Result<Caller> {
        let me = self.client.whoami().await?;
        let sees_all =
            self.client.sees_all_tokens(&me).await.context("cannot read the authenticated user's record")?;
        Ok(Caller { user_id: Some(me.id), username: me.username, sees_all, own: self.own.clone() })
    }

    async fn create_replacement(&self, v1: &TokenInfo) -> Result<(TokenInfo, SecretString)> {
        let created = self
            .client
            .create_token(&NewToken {
                user: Some(v1.user_id),
                version: Some(TokenVersion::V2),
                description: Some(replacement_description(v1)),
                expires: v1.expires,
                write_enabled: Some(v1.write_enabled),
                enabled: Some(true),
                // No restriction is sent as no field at all, so the server
                // stores what it stores for an unrestricted token.
                allowed_ips: (!v1.allowed_ips.is_empty())
                    .then(|| v1.allowed_ips.iter().map(ToString::to_string).collect()),
            })
            .await?;
        Ok((info(&created.token), created.full_value()))
    }

    async fn disable(&self, id: i64) -> Result<()> {
        self.client.update_token(id, &TokenPatch { enabled: Some(false), ..Default::default() }).await?;
        Ok(())
    }

    async fn delete(&self, id: i64) -> Result<()> {
        self.client.delete_token(id).await?;
        Ok(())
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

/// The doctor's remote checks: reachability and version, the token, how many
/// v1 tokens remain and whether the token sees all of them.
pub(crate) async fn doctor_remote(url: &str, token: Option<&str>, add: &mut impl FnMut(&str, Level, String)) {
    let Some(token) = token else {
        add("remote token", Level::Fail, "missing: give --token (or NBTOKEN_REMOTE_TOKEN) with --url".into());
        return;
    };
    let client = match Client::builder(url, SecretString::from(token)).build() {
        Ok(c) => c,
        Err(e) => {
            add("remote token", Level::Fail, e.to_string());
            return;
        }
    };
    // The version needs no valid token: NetBox sends API-Version even on a 403.
    match client.api_version().await {
        Ok(v) => add("remote reachable", Level::Ok, format!("{url} answers, API-Version {v}")),
        Err(e) => {
            add("remote reachable", Level::Fail, format!("{url}: {e}"));
            return;
        }
    }
    if let Ok(st) = client.status().await {
        if let Some(v) = st.netbox_version {
            let what = if st.nbtoken_version.is_some() { "nbtoken, NetBox-compatible" } else { "NetBox" };
            add("remote version", Level::Ok, format!("{what} {v}"));
        }
    }
    let scheme = client.token_version().unwrap_or(TokenVersion::V2).keyword();
    let me = match client.whoami().await {
        Ok(u) => {
            add(
                "remote token",
                Level::Ok,
                format!("authenticates as {:?} using 'Authorization: {scheme} …'", u.username),
            );
            u
        }
        Err(e) => {
            add("remote token", Level::Fail, format!("sent as 'Authorization: {scheme} …': {e}"));
            return;
        }
    };
    if client.token_version() == Some(TokenVersion::V1) {
        add(
            "remote token version",
            Level::Fail,
            "this is a v1 token: replace it with a v2 token (nbtoken migrate)".into(),
        );
    }
    match client.sees_all_tokens(&me).await.context("cannot read the authenticated user's record") {
        Ok(Some(true)) => add("remote token scope", Level::Ok, "sees every user's tokens (superuser)".into()),
        Ok(Some(false)) => add(
            "remote token scope",
            Level::Warn,
            format!(
                "{:?} is not a superuser: it sees only the tokens its permissions allow, \
                 so migrate and audit would miss other users' tokens",
                me.username
            ),
        ),
        Ok(None) => add(
            "remote token scope",
            Level::Warn,
            format!(
                "{:?} holds object permissions: cannot tell whether it sees every token; use a superuser's token",
                me.username
            ),
        ),
        Err(e) => add("remote token scope", Level::Fail, format!("{e:#}")),
    }
    let query = TokenQuery { version: Some(TokenVersion::V1), enabled: Some(true), ..Default::default() };
    match client.list_tokens(&query).await {
        Ok(v1) if v1.is_empty() => add("remote v1 tokens", Level::Ok, "none enabled".into()),
        Ok(v1) => add(
            "remote v1 tokens",
            Level::Warn,
            format!("{} enabled v1 token(s) remain: see `nbtoken migrate plan --url {url}`", v1.len()),
        ),
        Err(e) => add("remote v1 tokens", Level::Fail, format!("cannot list tokens: {e}")),
    }
}
