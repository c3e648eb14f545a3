//! `/api/users/tokens/`: list, create, retrieve, change, delete, and provision by password.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use nbtoken_core::issue::MAX_DESCRIPTION_CHARS;
use nbtoken_core::password::dummy_hash;
use nbtoken_core::{IssueError, PepperError, PepperId, SecretString, TokenVersion};
use nbtoken_store::{Store, TokenFilter, TokenPatch, TokenRecord, User, UserPatch};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::body::{
    opt_allowed_ips, opt_bool, opt_datetime, opt_int, opt_string, parse_object, reject_unknown,
};
use super::{created, current_user, no_content, path_id, Ctx};
use crate::auth::{ClientIp, Principal};
use crate::error::{ApiError, ApiResult};
use crate::json;
use crate::service::{create_token, CreateError, TokenSpec};
use crate::AppState;

/// The fields a client may send in a token body.
pub const WRITABLE: &[&str] = &[
    "user",
    "version",
    "token",
    "description",
    "expires",
    "enabled",
    "write_enabled",
    "pepper_id",
    "allowed_ips",
];
/// Fields of the token JSON a client may send back unchanged (ignored, as DRF ignores them).
pub const READ_ONLY: &[&str] =
    &["id", "url", "display_url", "display", "key", "created", "last_used", "last_used_ip"];

/// `GET /api/users/tokens/`
#[utoipa::path(
    get,
    path = "/api/users/tokens/",
    operation_id = "users_tokens_list",
    tag = "tokens",
    params(crate::api::schema::Paging, crate::api::schema::TokenFilters),
    security(("tokenAuth" = [])),
    responses(
        (status = 200, description = "A page of tokens: the caller's own, or all for a superuser", body = crate::api::schema::TokenList),
        crate::api::schema::Invalid,
        crate::api::schema::Refusals,
    )
)]
pub async fn list(State(state): State<Arc<AppState>>, p: Principal, ctx: Ctx) -> ApiResult<Json<Value>> {
    let me = current_user(&state, &p).await?;
    let mut filter = filter_from_query(&ctx)?;
    if !me.is_superuser {
        if !filter.user_ids.is_empty() && !filter.user_ids.contains(&me.id) {
            filter.ids = vec![-1];
        }
        filter.user_ids = vec![me.id];
    }
    let page = ctx.query.page();
    let (count, rows) = state.store.list_tokens(&filter, page).await?;
    let brief = ctx.query.brief();
    let results = rows.iter().map(|r| json::token(&ctx.base, r, brief)).collect();
    Ok(Json(json::paginated(&ctx.base, "/api/users/tokens/", &ctx.query, page, count, results)))
}

fn filter_from_query(ctx: &Ctx) -> ApiResult<TokenFilter> {
    let q = &ctx.query;
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

/// Loads a token the caller may see; others' tokens are a 404 to non-superusers, as in NetBox.
async fn visible(state: &AppState, me: &User, id: i64) -> ApiResult<TokenRecord> {
    match state.store.token(id).await? {
        Some(r) if me.is_superuser || r.token.user_id == me.id => Ok(r),
        _ => Err(ApiError::not_found("Token")),
    }
}

/// `GET /api/users/tokens/{id}/`
#[utoipa::path(
    get,
    path = "/api/users/tokens/{id}/",
    operation_id = "users_tokens_retrieve",
    tag = "tokens",
    params(("id" = i64, Path, description = "The token's id")),
    security(("tokenAuth" = [])),
    responses(
        (status = 200, description = "The token (never its secret)", body = crate::api::schema::Token),
        crate::api::schema::NotFound,
        crate::api::schema::Refusals,
    )
)]
pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    p: Principal,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let me = current_user(&state, &p).await?;
    let r = visible(&state, &me, path_id(&id, "Token")?).await?;
    Ok(Json(json::token(&ctx.base, &r, ctx.query.brief())))
}

/// Resolves the `user` field: an id, `{"id": …}` or `{"username": …}`.
async fn resolve_user(state: &AppState, v: &Value) -> ApiResult<User> {
    let found = match v {
        Value::Number(n) => match n.as_i64() {
            Some(id) => state.store.user(id).await?,
            None => None,
        },
        Value::String(s) if s.trim().parse::<i64>().is_ok() => {
            state.store.user(s.trim().parse().unwrap_or(0)).await?
        }
        Value::Object(m) => {
            match (m.get("id").and_then(Value::as_i64), m.get("username").and_then(Value::as_str)) {
                (Some(id), _) => state.store.user(id).await?,
                // No user has a NUL in its name, and PostgreSQL cannot look one up.
                (None, Some(name)) if name.contains('\0') => None,
                (None, Some(name)) => state.store.user_by_name(name).await?,
                _ => None,
            }
        }
        _ => return Err(ApiError::field("user", "Incorrect type. Expected pk value.")),
    };
    found.ok_or_else(|| ApiError::field("user", "Related object not found using the provided attributes."))
}

/// A `pepper_id` no configured pepper has (the id is not repeated: error bodies never echo values).
const MSG_UNKNOWN_PEPPER: &str =
    "Invalid pepper ID. Check configured API_TOKEN_PEPPERS (NBTOKEN_PEPPER_<ID>).";

fn may_manage_for(me: &User, owner_id: i64) -> bool {
    me.is_superuser || me.can_grant_tokens || owner_id == me.id
}

fn issue_error(e: IssueError) -> ApiError {
    let field = match &e {
        IssueError::ExpiryInPast { .. } => "expires",
        IssueError::DescriptionTooLong(_) => "description",
        IssueError::Token(_) => "token",
        IssueError::Pepper(PepperError::Unknown(_)) => {
            return ApiError::field("pepper_id", MSG_UNKNOWN_PEPPER);
        }
        IssueError::V1NotAllowed => "version",
        _ => "__all__",
    };
    ApiError::field(field, e.to_string())
}

struct TokenFields {
    description: Option<String>,
    expires: Option<Option<OffsetDateTime>>,
    enabled: Option<bool>,
    write_enabled: Option<bool>,
    allowed_ips: Option<nbtoken_core::AllowedIps>,
}

fn common_fields(m: &Map<String, Value>) -> ApiResult<TokenFields> {
    Ok(TokenFields {
        description: opt_string(m, "description", MAX_DESCRIPTION_CHARS)?,
        expires: opt_datetime(m, "expires")?,
        enabled: opt_bool(m, "enabled")?,
        write_enabled: opt_bool(m, "write_enabled")?,
        allowed_ips: opt_allowed_ips(m, "allowed_ips")?,
    })
}

/// Issues a token for `owner` from request fields and stores it; the answer's JSON carries the secret once.
async fn issue_and_store(
    state: &AppState,
    ctx: &Ctx,
    owner: &User,
    m: &Map<String, Value>,
) -> ApiResult<Value> {
    let fields = common_fields(m)?;
    let version = match opt_int(m, "version")? {
        None | Some(2) => TokenVersion::V2,
        Some(1) => TokenVersion::V1,
        Some(_) => return Err(ApiError::field("version", "Not a valid choice: expected 1 or 2.")),
    };
    // NetBox 4.7 made `token` read-only: whatever a client sends is ignored and
    // a random value generated. Importing a known value stays in the CLI.
    let pepper_id = match opt_int(m, "pepper_id")? {
        None => None,
        Some(id) => Some(
            u16::try_from(id)
                .ok()
                .and_then(|id| PepperId::new(id).ok())
                .ok_or_else(|| ApiError::field("pepper_id", MSG_UNKNOWN_PEPPER))?,
        ),
    };
    let made = create_token(
        &state.store,
        &state.config.peppers,
        state.config.v1_policy,
        owner.id,
        TokenSpec {
            version,
            chosen: None,
            chosen_key: None,
            pepper_id: if version == TokenVersion::V2 { pepper_id } else { None },
            description: fields.description.unwrap_or_default(),
            expires: fields.expires.flatten(),
            enabled: fields.enabled.unwrap_or(true),
            write_enabled: fields.write_enabled.unwrap_or(true),
            // NetBox's `TokenSerializer.allowed_ips` defaults to `[]`, not the model's `null`.
            allowed_ips: fields.allowed_ips.unwrap_or_else(nbtoken_core::AllowedIps::empty_list),
        },
    )
    .await
    .map_err(|e| match e {
        CreateError::Issue(e) => issue_error(e),
        // A client-chosen value that exists already; say so without echoing it.
        CreateError::ValueInUse => ApiError::field("token", "This token value is already in use."),
        CreateError::Store(e) => e.into(),
    })?;
    Ok(json::token_with_secret(&ctx.base, &made.record, &made.secret))
}

/// `POST /api/users/tokens/`
#[utoipa::path(
    post,
    path = "/api/users/tokens/",
    operation_id = "users_tokens_create",
    tag = "tokens",
    request_body = crate::api::schema::TokenWrite,
    security(("tokenAuth" = [])),
    responses(
        (status = 201, description = "Created; `token` holds the secret, shown this once; `Location` names it", body = crate::api::schema::Token),
        crate::api::schema::Invalid,
        crate::api::schema::TooLarge,
        crate::api::schema::Refusals,
    )
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    p: Principal,
    ctx: Ctx,
    body: Bytes,
) -> ApiResult<Response> {
    let me = current_user(&state, &p).await?;
    let m = parse_object(&body)?;
    reject_unknown(&m, WRITABLE, READ_ONLY)?;
    let owner = match m.get("user") {
        None | Some(Value::Null) => me.clone(),
        Some(v) => resolve_user(&state, v).await?,
    };
    if !may_manage_for(&me, owner.id) {
        return Err(ApiError::detail(
            StatusCode::FORBIDDEN,
            "This user does not have permission to create tokens for other users.",
        ));
    }
    Ok(created(issue_and_store(&state, &ctx, &owner, &m).await?))
}

async fn change(
    state: &AppState,
    p: &Principal,
    ctx: &Ctx,
    id: &str,
    body: &Bytes,
    full: bool,
) -> ApiResult<Json<Value>> {
    let me = current_user(state, p).await?;
    let current = visible(state, &me, path_id(id, "Token")?).await?;
    let m = parse_object(body)?;
    reject_unknown(&m, WRITABLE, READ_ONLY)?;
    // `token` is read-only (NetBox 4.7), so a value sent here is ignored like `user`: a new
    // secret comes only from rotation.
    const FIXED: &str = "Cannot be changed on an existing token; rotate it instead.";
    // The token's own pepper id, as a GET shows it, may be sent back (a PUT of the object).
    if let Some(sent) = opt_int(&m, "pepper_id")? {
        let own = match &current.token.credential {
            nbtoken_core::StoredCredential::V2 { pepper_id, .. } => Some(i64::from(pepper_id.get())),
            nbtoken_core::StoredCredential::V1 { .. } => None,
        };
        if Some(sent) != own {
            return Err(ApiError::field("pepper_id", FIXED));
        }
    }
    if let Some(v) = opt_int(&m, "version")? {
        if v != i64::from(current.token.version().as_u8()) {
            return Err(ApiError::field("version", "The version of an existing token cannot be changed."));
        }
    }
    let fields = common_fields(&m)?;
    // `user` is read-only once a token exists (NetBox 4.7's `TokenSerializer.get_fields`), so
    // whatever a client sends there is ignored, unvalidated, as DRF ignores read-only fields:
    // a token never changes hands, whoever asks (a grant-able user could otherwise move her own
    // token to a superuser and act as one).
    let mut patch = TokenPatch {
        description: fields.description,
        expires: fields.expires,
        enabled: fields.enabled,
        write_enabled: fields.write_enabled,
        allowed_ips: fields.allowed_ips,
        user_id: None,
    };
    if full {
        // PUT replaces: fields left out go back to their defaults.
        patch.description.get_or_insert_with(String::new);
        patch.expires.get_or_insert(None);
        patch.enabled.get_or_insert(true);
        patch.write_enabled.get_or_insert(true);
        patch.allowed_ips.get_or_insert_with(nbtoken_core::AllowedIps::empty_list);
    }
    let r = state.store.update_token(current.token.id, patch).await?;
    state.cache.invalidate_token(r.token.id);
    tracing::info!(token_id = r.token.id, "token changed");
    Ok(Json(json::token(&ctx.base, &r, false)))
}

/// `PATCH /api/users/tokens/{id}/`
#[utoipa::path(
    patch,
    path = "/api/users/tokens/{id}/",
    operation_id = "users_tokens_partial_update",
    tag = "tokens",
    params(("id" = i64, Path, description = "The token's id")),
    request_body = crate::api::schema::TokenWrite,
    security(("tokenAuth" = [])),
    responses(
        (status = 200, description = "The changed token", body = crate::api::schema::Token),
        crate::api::schema::Invalid,
        crate::api::schema::NotFound,
        crate::api::schema::TooLarge,
        crate::api::schema::Refusals,
    )
)]
pub async fn update(
    State(state): State<Arc<AppState>>,
    p: Principal,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    change(&state, &p, &ctx, &id, &body, false).await
}

/// `PUT /api/users/tokens/{id}/`
#[utoipa::path(
    put,
    path = "/api/users/tokens/{id}/",
    operation_id = "users_tokens_update",
    tag = "tokens",
    params(("id" = i64, Path, description = "The token's id")),
    request_body = crate::api::schema::TokenWrite,
    security(("tokenAuth" = [])),
    responses(
        (status = 200, description = "The changed token", body = crate::api::schema::Token),
        crate::api::schema::Invalid,
        crate::api::schema::NotFound,
        crate::api::schema::TooLarge,
        crate::api::schema::Refusals,
    )
)]
pub async fn replace(
    State(state): State<Arc<AppState>>,
    p: Principal,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    change(&state, &p, &ctx, &id, &body, true).await
}

/// `DELETE /api/users/tokens/{id}/`
#[utoipa::path(
    delete,
    path = "/api/users/tokens/{id}/",
    operation_id = "users_tokens_destroy",
    tag = "tokens",
    params(("id" = i64, Path, description = "The token's id")),
    security(("tokenAuth" = [])),
    responses(
        (status = 204, description = "Deleted"),
        crate::api::schema::NotFound,
        crate::api::schema::Refusals,
    )
)]
pub async fn destroy(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let me = current_user(&state, &p).await?;
    let r = visible(&state, &me, path_id(&id, "Token")?).await?;
    state.store.delete_token(r.token.id).await?;
    state.cache.invalidate_token(r.token.id);
    tracing::info!(token_id = r.token.id, "token deleted");
    Ok(no_content())
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
    Extension(ClientIp(client_ip)): Extension<ClientIp>,
    ctx: Ctx,
    body: Bytes,
) -> ApiResult<Response> {
    if let Some(wait) = state.limiter.blocked_for(client_ip, None) {
        return Err(ApiError::too_many_failures(wait));
    }
    let mut m = parse_object(&body)?;
    let username = match m.remove("username") {
        Some(Value::String(s)) => s,
        _ => return Err(ApiError::field("username", "This field is required.")),
    };
    let password = match m.remove("password") {
        Some(Value::String(s)) => SecretString::new(s),
        _ => return Err(ApiError::field("password", "This field is required.")),
    };
    reject_unknown(
        &m,
        &["description", "expires", "enabled", "write_enabled", "allowed_ips", "version"],
        &[],
    )?;
    if opt_int(&m, "version")?.is_some_and(|v| v != 2) {
        return Err(ApiError::field("version", "Provisioned tokens are always v2."));
    }
    // No user has a NUL in its name (and PostgreSQL cannot look one up): checked like an unknown user.
    let user = if username.contains('\0') { None } else { state.store.user_by_name(&username).await? };
    let phc = user.as_ref().and_then(|u| u.password_hash.clone()).unwrap_or_else(|| dummy_hash().to_owned());
    // argon2 runs on the bounded password workers (429/503 when busy); an unknown
    // user is checked against a dummy hash so both cost the same. The client's slot
    // is held until its failure, if any, has been counted.
    let (ok, _slot) = crate::passwords::check_provision(&state, client_ip, password, phc).await?;
    let user = match user {
        Some(u) if ok && u.is_active => u,
        _ => {
            tracing::info!(%client_ip, "provision refused: invalid username/password");
            if let Some(wait) = state.limiter.record_failure(client_ip, None) {
                return Err(ApiError::too_many_failures(wait));
            }
            return Err(ApiError::detail(StatusCode::FORBIDDEN, "Invalid username/password"));
        }
    };
    state
        .store
        .update_user(user.id, UserPatch { last_login: Some(OffsetDateTime::now_utc()), ..Default::default() })
        .await?;
    m.remove("version");
    let mut answer = issue_and_store(&state, &ctx, &user, &m).await?;
    // NetBox's `TokenProvisionSerializer` lists its fields without `pepper_id`.
    if let Value::Object(o) = &mut answer {
        o.remove("pepper_id");
    }
    Ok(created(answer))
}
