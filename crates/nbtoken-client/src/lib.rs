//! A client for NetBox-compatible token APIs: nbtoken, or NetBox 4.5+ itself.
//!
//! The client reads the token's shape and sends it the way NetBox expects:
//! `Authorization: Bearer nbt_<key>.<secret>` for a v2 token,
//! `Authorization: Token <plaintext>` for a legacy v1 token. A value that
//! cannot be a token (empty, wrong length, quoted, with whitespace or with the
//! keyword pasted in) is refused by [`ClientBuilder::build`], before anything
//! is sent, with a message that says why and never repeats the value.
//!
//! [`Token::to_info`] turns a listed token into core's view of it (what the migration
//! planner and the audit read), and [`Client::liveness`] reads whether the client's own
//! token works, the way `nbtoken scan --verify` asks.
//!
//! Idempotent requests are retried with backoff on 429/502/503/504 and on
//! connection failures, honouring `Retry-After`; POST and PATCH never are.
//!
//! ```no_run
//! # async fn demo() -> Result<(), nbtoken_client::ClientError> {
//! use nbtoken_client::{Client, NewToken, TokenQuery};
//!
//! let token = std::env::var("NETBOX_TOKEN").unwrap_or_default(); // nbt_<key>.<secret>
//! let client = Client::builder("https://netbox.example.com", token.as_str()).build()?;
//! let me = client.whoami().await?;
//! let tokens = client.list_tokens(&TokenQuery { user_id: Some(me.id), ..Default::default() }).await?;
//! let created = client.create_token(&NewToken { description: Some("ci".into()), ..Default::default() }).await?;
//! let _send_this = created.full_value(); // nbt_<key>.<secret>, shown once
//! # let _ = tokens; Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod auth;
mod base_url;
mod client;
mod convert;
pub mod error;
pub mod models;
mod probe;
pub mod retry;

pub use auth::{ApiToken, Scheme, TokenProblem};
pub use client::{Client, ClientBuilder, Pager, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
pub use convert::allowed_ips_field;
pub use error::ClientError;
pub use models::{
    CreatedToken, NestedUser, NewToken, Page, ProvisionOptions, Status, Token, TokenPatch, TokenQuery, User,
    UserQuery,
};
pub use nbtoken_core::{SecretString, TokenVersion};
pub use probe::Liveness;
pub use retry::RetryPolicy;
