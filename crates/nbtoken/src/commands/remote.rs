//! A remote NetBox-compatible API (nbtoken or NetBox 4.5+) through `nbtoken-client`:
//! the migration target and the doctor's remote checks.

use anyhow::{Context, Result};
use nbtoken_client::{Client, NewToken, Token, TokenPatch, TokenQuery};
use nbtoken_core::migrate::{replacement_description, TokenInfo};
use nbtoken_core::{PepperId, SecretString, TokenVersion};

use super::migrate::Target;

/// Migration against a remote API.
pub(crate) struct RemoteTarget {
    client: Client,
    url: String,
}

impl RemoteTarget {
    /// Checks the token's shape and the URL; sends nothing yet.
    pub(crate) fn new(url: &str, token: &str) -> Result<Self> {
        let client =
            Client::builder(url, SecretString::from(token)).build().context("cannot use --url/--token")?;
        Ok(Self { client, url: url.to_owned() })
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
                anyhow::bail!(
                    "token #{} has an allowed_ips entry that is not an IP network; fix it before migrating",
                    t.id
                );
            }
        }
        Ok(tokens.iter().map(info).collect())
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
                allowed_ips: Some(v1.allowed_ips.iter().map(ToString::to_string).collect()),
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

/// The doctor's remote checks: reachability and version, then whether the token authenticates.
pub(crate) async fn doctor_remote(url: &str, token: Option<&str>, add: &mut impl FnMut(&str, bool, String)) {
    // The version needs no valid token: NetBox sends API-Version even on a 403.
    let probe = match Client::builder(url, SecretString::from(token.unwrap_or(""))).build() {
        Ok(c) => Some(c),
        Err(e) if token.is_some() => {
            add("remote token", false, e.to_string());
            None
        }
        Err(_) => None,
    };
    let Some(client) = probe else {
        add("remote", false, "give --token (or NBTOKEN_REMOTE_TOKEN) to check a remote server".into());
        return;
    };
    match client.api_version().await {
        Ok(v) if !v.is_empty() => add("remote reachable", true, format!("{url} answers, API-Version {v}")),
        Ok(_) => add(
            "remote reachable",
            false,
            format!("{url} answers without an API-Version header: not a NetBox API?"),
        ),
        Err(e) => {
            add("remote reachable", false, format!("{url}: {e}"));
            return;
        }
    }
    let scheme = client.token_version().unwrap_or(TokenVersion::V2).keyword();
    match client.whoami().await {
        Ok(u) => add(
            "remote token",
            true,
            format!("authenticates as {:?} using 'Authorization: {scheme} …'", u.username),
        ),
        Err(e) => add("remote token", false, format!("sent as 'Authorization: {scheme} …': {e}")),
    }
    if client.token_version() == Some(TokenVersion::V1) {
        add(
            "remote token version",
            false,
            "this is a v1 token: replace it with a v2 token (nbtoken migrate)".into(),
        );
    }
}
