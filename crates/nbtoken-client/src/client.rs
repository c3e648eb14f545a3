//! [`Client`]: the operations, the request loop with its retries, and pagination.

use std::marker::PhantomData;
use std::time::Duration;

use nbtoken_core::SecretString;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::auth::ApiToken;
use crate::base_url::BaseUrl;
use crate::error::http_error;
use crate::models::{
    CreatedToken, NewToken, Page, ProvisionOptions, Status, Token, TokenPatch, TokenQuery, User, UserQuery,
};
use crate::retry::RetryPolicy;
use crate::ClientError;

/// Default time to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time for a whole request, answer included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings for a [`Client`]; made by [`Client::builder`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    base_url: String,
    token: Option<SecretString>,
    connect_timeout: Duration,
    timeout: Duration,
    retry: RetryPolicy,
    user_agent: String,
    danger_accept_invalid_certs: bool,
}

impl ClientBuilder {
    fn new(base_url: &str, token: Option<SecretString>) -> Self {
        Self {
            base_url: base_url.to_owned(),
            token,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
            user_agent: concat!("nbtoken-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            danger_accept_invalid_certs: false,
        }
    }

    /// Time allowed to establish a connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for one attempt of a request, from sending to the end of the answer (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Attempts in total for idempotent requests, the first included (default 3; 1 turns retries off).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.retry.max_attempts = attempts.max(1);
        self
    }

    /// All retry settings at once.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self.retry.max_attempts = self.retry.max_attempts.max(1);
        self
    }

    /// The `User-Agent` header (default `nbtoken-client/<version>`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Accepts any TLS certificate. Only for a test server with a self-signed
    /// certificate: anyone on the path could read the token.
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.danger_accept_invalid_certs = accept;
        self
    }

    /// Checks the token and the base URL and makes the client. Nothing is sent.
    pub fn build(self) -> Result<Client, ClientError> {
        let token = match self.token.clone() {
            Some(t) => Some(ApiToken::parse(t)?),
            None => None,
        };
        let base = BaseUrl::parse(&self.base_url)?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .user_agent(self.user_agent)
            // Redirects are reported, not followed: a redirected POST turns
            // into a GET, and the token should go where the user pointed it.
            .redirect(reqwest::redirect::Policy::none())
            .danger_accept_invalid_certs(self.danger_accept_invalid_certs)
            .build()
            .map_err(|e| ClientError::Transport(chain(&e)))?;
        Ok(Client { http, base, token, retry: self.retry })
    }
}

/// A client for a NetBox-compatible API (nbtoken, or NetBox 4.5+).
///
/// Cheap to clone (connections are pooled and shared). `Debug` does not show the token.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: BaseUrl,
    token: Option<ApiToken>,
    retry: RetryPolicy,
}

impl Client {
    /// Starts configuring a client for `base_url` (`http://host:port`, with
    /// or without a trailing `/` or `/api`) that authenticates with `token`
    /// (`nbt_<key>.<secret>`, or a 40-character v1 value).
    pub fn builder(base_url: &str, token: impl Into<SecretString>) -> ClientBuilder {
        ClientBuilder::new(base_url, Some(token.into()))
    }

    /// The version of the token, which decides the header (`Bearer` for v2, `Token` for v1).
    pub fn token_version(&self) -> Option<nbtoken_core::TokenVersion> {
        self.token.as_ref().map(ApiToken::version)
    }

    /// Creates a v2 token from a username and password
    /// (`POST /api/users/tokens/provision/`), without any token. The answer's
    /// [`CreatedToken::full_value`] is `nbt_<key>.<secret>`, ready for [`Client::builder`].
    pub async fn provision(
        base_url: &str,
        username: &str,
        password: &SecretString,
        options: &ProvisionOptions,
    ) -> Result<CreatedToken, ClientError> {
        let anonymous = ClientBuilder::new(base_url, None).build()?;
        let mut body = serde_json::to_value(options).map_err(|e| ClientError::Decode(e.to_string()))?;
        if let Some(o) = body.as_object_mut() {
            o.insert("username".into(), username.into());
            o.insert("password".into(), password.expose().into());
        }
        let url = anonymous.base.api("users/tokens/provision/")?;
        let v: serde_json::Value = anonymous.json(Method::POST, url, Some(&body)).await?;
        CreatedToken::from_json(v)
    }

    /// The authenticated user (`GET /api/authentication-check/`).
    pub async fn whoami(&self) -> Result<User, ClientError> {
        self.get("authentication-check/").await
    }

    /// The server's versions (`GET /api/status/`).
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.get("status/").await
    }

    /// The `API-Version` header of `GET /api/`, such as `4.6`. As in pynetbox,
    /// it is read from a 403 too, since NetBox sends it with every answer.
    pub async fn api_version(&self) -> Result<String, ClientError> {
        let resp = self.send(Method::GET, self.base.api("")?, None).await?;
        let status = resp.status();
        if !(status.is_success() || status == reqwest::StatusCode::FORBIDDEN) {
            return Err(self.error_from(resp).await);
        }
        resp.headers()
            .get("api-version")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ClientError::Decode("GET /api/ carried no API-Version header; is this a NetBox API?".into())
            })
    }

    /// Every token matching `query`, following `next` links to the last page.
    pub async fn list_tokens(&self, query: &TokenQuery) -> Result<Vec<Token>, ClientError> {
        self.token_pages(query).collect_all().await
    }

    /// The tokens matching `query`, one page at a time.
    pub fn token_pages(&self, query: &TokenQuery) -> Pager<'_, Token> {
        Pager::new(self, "users/tokens/", &query.pairs())
    }

    /// One token (`GET /api/users/tokens/{id}/`).
    pub async fn get_token(&self, id: i64) -> Result<Token, ClientError> {
        self.get(&format!("users/tokens/{id}/")).await
    }

    /// Creates a token (`POST /api/users/tokens/`). Never retried. With
    /// `user: None` the token is for the authenticated user, looked up first
    /// because NetBox requires the field.
    pub async fn create_token(&self, new: &NewToken) -> Result<CreatedToken, ClientError> {
        let mut new = new.clone();
        if new.user.is_none() {
            new.user = Some(self.whoami().await?.id);
        }
        let v: serde_json::Value =
            self.json(Method::POST, self.base.api("users/tokens/")?, Some(&new)).await?;
        CreatedToken::from_json(v)
    }

    /// Changes the fields set in `patch` (`PATCH /api/users/tokens/{id}/`). Never retried.
    pub async fn update_token(&self, id: i64, patch: &TokenPatch) -> Result<Token, ClientError> {
        self.json(Method::PATCH, self.base.api(&format!("users/tokens/{id}/"))?, Some(patch)).await
    }

    /// Deletes a token (`DELETE /api/users/tokens/{id}/`).
    pub async fn delete_token(&self, id: i64) -> Result<(), ClientError> {
        let resp = self.send(Method::DELETE, self.base.api(&format!("users/tokens/{id}/"))?, None).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.error_from(resp).await)
        }
    }

    /// Every user matching `query`, following `next` links to the last page.
    pub async fn list_users(&self, query: &UserQuery) -> Result<Vec<User>, ClientError> {
        self.user_pages(query).collect_all().await
    }

    /// The users matching `query`, one page at a time.
    pub fn user_pages(&self, query: &UserQuery) -> Pager<'_, User> {
        Pager::new(self, "users/users/", &query.pairs())
    }

    /// One user (`GET /api/users/users/{id}/`).
    pub async fn get_user(&self, id: i64) -> Result<User, ClientError> {
        self.get(&format!("users/users/{id}/")).await
    }

    /// Whether `me` (what [`Client::whoami`] returned) sees every user's tokens: exact where
    /// the server says (nbtoken shows `is_superuser`), else inferred from what NetBox lets it
    /// read. `None`: cannot tell (it holds object permissions).
    pub async fn sees_all_tokens(&self, me: &User) -> Result<Option<bool>, ClientError> {
        if let Some(superuser) = me.is_superuser {
            return Ok(Some(superuser));
        }
        // NetBox 4.5+ does not show `is_superuser`. Reading one's own user record
        // needs the view_user permission; a user who can read it while holding no
        // permission or group at all is a superuser (or every view is exempt).
        match self.get_user(me.id).await {
            Ok(u) => {
                let none = |v: &Option<Vec<serde_json::Value>>| v.as_ref().is_some_and(Vec::is_empty);
                Ok((none(&u.groups) && none(&u.permissions)).then_some(true))
            }
            Err(e) if matches!(e.status(), Some(403 | 404)) => Ok(Some(false)),
            Err(e) => Err(e),
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(Method::GET, self.base.api(path)?, None::<&()>).await
    }

    /// Sends a request with an optional JSON body and decodes a JSON answer.
    async fn json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| ClientError::Decode(e.to_string()))?),
            None => None,
        };
        let resp = self.send(method, url, body).await?;
        if !resp.status().is_success() {
            return Err(self.error_from(resp).await);
        }
        let bytes = resp.bytes().await.map_err(|e| self.transport(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(self.scrub(e.to_string())))
    }

    /// Sends a request, again after a pause if it is idempotent and failed in
    /// a way worth retrying. Returns the last answer, whatever its status.
    async fn send(&self, method: Method, url: Url, body: Option<Vec<u8>>) -> Result<Response, ClientError> {
        let attempts = if RetryPolicy::is_idempotent(&method) { self.retry.max_attempts.max(1) } else { 1 };
        let mut attempt = 1;
        loop {
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .header(ACCEPT, HeaderValue::from_static("application/json"));
            if let Some(t) = &self.token {
                req = req.header(AUTHORIZATION, t.header_value());
            }
            if let Some(b) = &body {
                req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json")).body(b.clone());
            }
            let outcome = req.send().await;
            let wait = match &outcome {
                Ok(resp) if RetryPolicy::is_retryable_status(resp.status()) => {
                    self.retry.delay(attempt, Some(resp.headers()))
                }
                Err(e) if is_retryable(e) => self.retry.delay(attempt, None),
                _ => return outcome.map_err(|e| self.transport(&e)),
            };
            if attempt >= attempts {
                return outcome.map_err(|e| self.transport(&e));
            }
            drop(outcome);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// [`ClientError::Http`] from a non-2xx answer, with the token scrubbed out.
    async fn error_from(&self, resp: Response) -> ClientError {
        let status = resp.status();
        if status.is_redirection() {
            let to = resp.headers().get(LOCATION).and_then(|l| l.to_str().ok()).unwrap_or("elsewhere");
            return ClientError::Http {
                status: status.as_u16(),
                detail: Some(self.scrub(format!("redirected to {to}; use that address as the base URL"))),
                hint: None,
            };
        }
        let body = resp.bytes().await.unwrap_or_default();
        match http_error(status.as_u16(), &body) {
            ClientError::Http { status, detail, hint } => ClientError::Http {
                status,
                detail: detail.map(|d| self.scrub(d)),
                hint: hint.map(|h| self.scrub(h)),
            },
            other => other,
        }
    }

    fn transport(&self, e: &reqwest::Error) -> ClientError {
        ClientError::Transport(self.scrub(chain(e)))
    }

    /// Removes the token (and a v2 secret on its own) from text that came
    /// from elsewhere, in case a server or a proxy echoed it.
    fn scrub(&self, text: String) -> String {
        let Some(t) = &self.token else { return text };
        let mut text = text.replace(t.expose(), "[redacted]");
        if let Some((_, secret)) = t.expose().split_once('.') {
            text = text.replace(secret, "[redacted]");
        }
        text
    }
}

/// A connection that failed, or broke before an answer arrived. A timeout is
/// not retried: the server may be overloaded, and the caller chose the limit.
fn is_retryable(e: &reqwest::Error) -> bool {
    !e.is_timeout() && (e.is_connect() || e.is_request())
}

/// An error and its causes, `outer: inner: innermost`, without repeats.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// Walks a list endpoint page by page, following the server's `next` links.
///
/// Only the query string of `next` is used; the request goes to the client's
/// own base URL. A proxy that rewrites the scheme or host (NetBox behind TLS
/// termination answers with `http://` links) therefore does not break
/// pagination, and a `next` link cannot send the token to another host.
#[derive(Debug)]
pub struct Pager<'c, T> {
    client: &'c Client,
    path: &'static str,
    query: Option<String>,
    _item: PhantomData<fn() -> T>,
}

impl<'c, T: DeserializeOwned> Pager<'c, T> {
    fn new(client: &'c Client, path: &'static str, pairs: &[(&str, String)]) -> Self {
        let query = reqwest::Url::parse("http://x/")
            .map(|mut u| {
                u.query_pairs_mut().extend_pairs(pairs);
                u.query().unwrap_or("").to_owned()
            })
            .unwrap_or_default();
        Pager { client, path, query: Some(query), _item: PhantomData }
    }

    /// The next page, or `None` after the last one.
    pub async fn next_page(&mut self) -> Result<Option<Page<T>>, ClientError> {
        let Some(query) = self.query.take() else { return Ok(None) };
        let mut url = self.client.base.api(self.path)?;
        url.set_query((!query.is_empty()).then_some(query.as_str()));
        let page: Page<T> = self.client.json(Method::GET, url, None::<&()>).await?;
        if let Some(next) = &page.next {
            let next_query = next_query(&self.client.base, next)?;
            if next_query == query {
                return Err(ClientError::Decode("the next page link points to the same page".into()));
            }
            self.query = Some(next_query);
        }
        Ok(Some(page))
    }

    /// The remaining objects of every page.
    pub async fn collect_all(mut self) -> Result<Vec<T>, ClientError> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page.results);
        }
        Ok(all)
    }
}

/// The query string of a `next` link, absolute or relative.
fn next_query(base: &BaseUrl, next: &str) -> Result<String, ClientError> {
    let url = match Url::parse(next) {
        Ok(u) => u,
        Err(_) => {
            base.api("")?.join(next).map_err(|e| ClientError::Decode(format!("bad next page link: {e}")))?
        }
    };
    Ok(url.query().unwrap_or("").to_owned())
}
