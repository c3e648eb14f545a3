//! A remote NetBox-compatible API (nbtoken or NetBox 4.5+) through `nbtoken-client`:
//! the migration and audit target, and the doctor's remote checks.

use anyhow::{bail, Context, Result};
use nbtoken_client::{Client, ClientError, NewToken, TokenPatch, TokenQuery};
use nbtoken_core::migrate::{Replacement, TokenInfo};
use nbtoken_core::{SecretString, TokenVersion};
use nbtoken_manage::migrate::{Caller, OwnToken, Target, TargetError};

use crate::cli::Remote;
use nbtoken_core::audit::{scope, v1_left, Attention};

/// Migration (and the audit) against a remote API: each call one request of the client.
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

impl Target for RemoteTarget {
    async fn tokens(&self) -> Result<Vec<TokenInfo>, TargetError> {
        let tokens = self.client.list_tokens(&TokenQuery::default()).await?;
        // An entry that is not a network would be dropped from a copy, widening it: refused.
        let infos: Result<Vec<TokenInfo>, _> = tokens.iter().map(|t| t.to_info()).collect();
        infos.map_err(|e| match e {
            ClientError::Decode(what) => format!("{what}; fix it before migrating").into(),
            other => other.into(),
        })
    }

    async fn caller(&self) -> Result<Caller, TargetError> {
        let me = self.client.whoami().await?;
        let sees_all = self
            .client
            .sees_all_tokens(&me)
            .await
            .map_err(|e| format!("cannot read the authenticated user's record: {e}"))?;
        Ok(Caller { user_id: Some(me.id), username: me.username, sees_all, own: self.own.clone() })
    }

    async fn create_replacement(&self, r: &Replacement) -> Result<(TokenInfo, SecretString), TargetError> {
        let created = self.client.create_token(&NewToken::replacement(r)).await?;
        Ok((created.token.to_info()?, created.full_value()))
    }

    async fn disable(&self, id: i64) -> Result<(), TargetError> {
        self.client.update_token(id, &TokenPatch { enabled: Some(false), ..Default::default() }).await?;
        Ok(())
    }

    async fn delete(&self, id: i64) -> Result<(), TargetError> {
        self.client.delete_token(id).await?;
        Ok(())
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

/// The doctor's remote checks: reachability and version, the token, how many
/// v1 tokens remain and whether the token sees all of them.
pub(crate) async fn doctor_remote(
    url: &str,
    token: Option<&str>,
    add: &mut impl FnMut(&str, Attention, String),
) {
    let Some(token) = token else {
        add(
            "remote token",
            Attention::Fail,
            "missing: give --token (or NBTOKEN_REMOTE_TOKEN) with --url".into(),
        );
        return;
    };
    let client = match Client::builder(url, SecretString::from(token)).build() {
        Ok(c) => c,
        Err(e) => {
            add("remote token", Attention::Fail, e.to_string());
            return;
        }
    };
    // The version needs no valid token: NetBox sends API-Version even on a 403.
    match client.api_version().await {
        Ok(v) => add("remote reachable", Attention::Ok, format!("{url} answers, API-Version {v}")),
        Err(e) => {
            add("remote reachable", Attention::Fail, format!("{url}: {e}"));
            return;
        }
    }
    if let Ok(st) = client.status().await {
        if let Some(v) = st.netbox_version {
            let what = if st.nbtoken_version.is_some() { "nbtoken, NetBox-compatible" } else { "NetBox" };
            add("remote version", Attention::Ok, format!("{what} {v}"));
        }
    }
    let scheme = client.token_version().unwrap_or(TokenVersion::V2).keyword();
    let me = match client.whoami().await {
        Ok(u) => {
            add(
                "remote token",
                Attention::Ok,
                format!("authenticates as {:?} using 'Authorization: {scheme} …'", u.username),
            );
            u
        }
        Err(e) => {
            add("remote token", Attention::Fail, format!("sent as 'Authorization: {scheme} …': {e}"));
            return;
        }
    };
    if client.token_version() == Some(TokenVersion::V1) {
        add(
            "remote token version",
            Attention::Fail,
            "this is a v1 token: replace it with a v2 token (nbtoken migrate)".into(),
        );
    }
    match client.sees_all_tokens(&me).await.context("cannot read the authenticated user's record") {
        Ok(sees_all) => {
            let detail = match sees_all {
                Some(true) => "sees every user's tokens (superuser)".to_owned(),
                Some(false) => format!(
                    "{:?} is not a superuser: it sees only the tokens its permissions allow, \
                     so migrate and audit would miss other users' tokens",
                    me.username
                ),
                None => format!(
                    "{:?} holds object permissions: cannot tell whether it sees every token; use a superuser's token",
                    me.username
                ),
            };
            add("remote token scope", scope(sees_all), detail)
        }
        Err(e) => add("remote token scope", Attention::Fail, format!("{e:#}")),
    }
    let query = TokenQuery { version: Some(TokenVersion::V1), enabled: Some(true), ..Default::default() };
    match client.list_tokens(&query).await {
        Ok(v1) if v1.is_empty() => add("remote v1 tokens", v1_left(0), "none enabled".into()),
        Ok(v1) => add(
            "remote v1 tokens",
            v1_left(v1.len() as u64),
            format!("{} enabled v1 token(s) remain: see `nbtoken migrate plan --url {url}`", v1.len()),
        ),
        Err(e) => add("remote v1 tokens", Attention::Fail, format!("cannot list tokens: {e}")),
    }
}
