//! `/api/users/tokens/`: list, create, retrieve, change, delete, and provision by password.
//! Each handler parses, calls an operation of `nbtoken_manage` and renders its answer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use nbtoken_core::{PepperId, TokenVersion};
use nbtoken_manage::{input, Actor, Error, Forbidden};
use nbtoken_store::{TokenFilter, TokenRecord};
use serde_json::Value;

use super::{created, path_id, Ctx};
use crate::client_ip::ClientIp;
use crate::error::{ApiError, ApiResult};
use crate::json::{self, BaseUrl, Query};
use crate::AppState;

collection_handlers! {
    path: "/api/users/tokens/",
    tag: "tokens",
    list: (
        "`GET /api/users/tokens/`",
        "users_tokens_list",
        TokenFilters,
        "A page of tokens: the caller's own, or all for a superuser",
        TokenList,
        tokens,
        token
    ),
    create: (
        "`POST /api/users/tokens/`",
        "users_tokens_create",
        TokenWrite,
        "Created; `token` holds the secret, shown this once; `Location` names it",
        Token
    ),
}

/// A listing's filter from NetBox's query parameters.
fn filter(q: &Query) -> ApiResult<TokenFilter> {
    let version = match q.last("version") {
        None => None,
        Some("1") => Some(TokenVersion::V1),
        Some("2") => Some(TokenVersion::V2),
        // Django's text that names no value: error bodies never echo what the client sent.
        Some(_) => {
            return Err(ApiError::field(
                "version",
                "Select a valid choice. That choice is not one of the available choices.",
            ))
        }
    };
    let pepper_id = match q.last("pepper_id") {
        None => None,
        Some(v) => Some(PepperId::parse(v).map_err(|_| {
            ApiError::field(
                "pepper_id",
                format!("Enter a whole number from 0 to {}.", nbtoken_core::pepper::MAX_PEPPER_ID),
            )
        })?),
    };
    Ok(TokenFilter {
        ids: q.ints("id")?,
        user_ids: q.ints("user_id")?,
        usernames: q.all("user").to_vec(),
        version,
        enabled: q.boolean("enabled")?,
        write_enabled: q.boolean("write_enabled")?,
        keys: q.all("key").to_vec(),
        pepper_id,
        descriptions: description_filter(q.all("description")),
    })
}

/// `?description=` as NetBox's `MultiValueCharFilter` reads it: exact matches, several values
/// OR'ed; empty values are dropped (none left: no filter), the rest trimmed as Django's
/// `CharField` does; `null` asks for a NULL description, which no token has.
fn description_filter(values: &[String]) -> Option<Vec<String>> {
    let kept: Vec<&String> = values.iter().filter(|v| !v.is_empty()).collect();
    if kept.is_empty() {
        return None;
    }
    Some(kept.into_iter().map(|v| v.trim()).filter(|v| *v != "null").map(str::to_owned).collect())
}

/// POST: a token for the caller, or for the `user` named if the caller may grant tokens; the
/// answer holds the secret, this once.
async fn make(state: &AppState, actor: &Actor, body: &[u8], base: &BaseUrl) -> ApiResult<Value> {
    let ops = state.ops();
    let m = input::token_body(body)?;
    let owner = ops.owner(actor, input::token_owner(&m)?.as_ref()).await?;
    let made = ops.create_token(actor, &owner, input::token_spec(&m)?).await?;
    Ok(json::token_with_secret(base, &made.record, &made.secret))
}

object_handlers! {
    path: "/api/users/tokens/{id}/",
    tag: "tokens",
    id: "The token's id",
    what: "Token",
    get: token,
    render: token,
    retrieve: ("`GET /api/users/tokens/{id}/`", "users_tokens_retrieve", "The token (never its secret)", Token),
    update: ("`PATCH /api/users/tokens/{id}/`", "users_tokens_partial_update", "The changed token", TokenWrite),
    replace: ("`PUT /api/users/tokens/{id}/`", "users_tokens_update"),
    destroy: ("`DELETE /api/users/tokens/{id}/`", "users_tokens_destroy", "Deleted"),
}

/// PATCH (`full`: PUT, where fields left out go back to their defaults).
async fn change(
    state: &AppState,
    actor: &Actor,
    id: &str,
    body: &[u8],
    full: bool,
) -> ApiResult<TokenRecord> {
    let ops = state.ops();
    let current = ops.token(actor, path_id(id, "Token")?).await?;
    let changes = input::token_changes(&input::token_body(body)?, full)?;
    Ok(ops.update_token(actor, &current, changes).await?)
}

/// DELETE.
async fn remove(state: &AppState, actor: &Actor, id: &str) -> ApiResult<()> {
    Ok(state.ops().delete_token(actor, path_id(id, "Token")?).await?)
}

/// `POST /api/users/tokens/provision/`: username and password in, a new v2 token out.
#[utoipa::path(
    post,
    path = "/api/users/tokens/provision/",
    operation_id = "users_tokens_provision_create",
    tag = "tokens",
    request_body = crate::api::schema::Provision,
    security((), ("tokenAuth" = [])),
    responses(
        (status = 201, description = "A new v2 token for that user; `token` holds the secret, shown this once", body = crate::api::schema::ProvisionedToken),
        crate::api::schema::Invalid,
        crate::api::schema::TooLarge,
        crate::api::schema::Refusals,
    )
)]
pub async fn provision(
    State(state): State<Arc<AppState>>,
    ClientIp(client_ip): ClientIp,
    ctx: Ctx,
    body: Bytes,
) -> ApiResult<Response> {
    if let Some(wait) = state.limiter.blocked_for(client_ip, None) {
        return Err(ApiError::too_many_failures(wait));
    }
    let (credentials, fields) = input::provision(&body)?;
    // argon2 runs on the bounded password workers (429/503 when busy). The client's slot
    // is held until its failure, if any, has been counted.
    let _slot = crate::passwords::provision_slot(&state, client_ip)?;
    let ops = state.ops();
    let verified = match ops.check_credentials(credentials).await {
        Ok(verified) => verified,
        Err(Error::Forbidden(Forbidden::BadCredentials)) => {
            tracing::info!(%client_ip, "provision refused: invalid username/password");
            if let Some(wait) = state.limiter.record_failure(client_ip, None) {
                return Err(ApiError::too_many_failures(wait));
            }
            return Err(Error::Forbidden(Forbidden::BadCredentials).into());
        }
        Err(e) => return Err(e.into()),
    };
    let made = ops.provision(verified, input::token_spec(&fields)?).await?;
    let mut answer = json::token_with_secret(&ctx.base, &made.record, &made.secret);
    // NetBox's `TokenProvisionSerializer` lists its fields without `pepper_id`.
    if let Value::Object(o) = &mut answer {
        o.remove("pepper_id");
    }
    Ok(created(answer))
}
