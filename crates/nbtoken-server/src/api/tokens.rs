//! `/api/users/tokens/`: list, create, retrieve, change, delete, and provision by password.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use nbtoken_core::issue::MAX_DESCRIPTION_CHARS;
use nbtoken_core::password::{dummy_hash, verify_password};
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
pub const READ_ONLY: &[&str] = &["id", "url", "display_url", "display", "key", "created", "last_used"];

/// `GET /api/users/tokens/`
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
        Some(v) => {
            return Err(ApiError::field(
                "version",
                format!("Select a valid choice. {v} is not one of the available choices."),
            ))
        }
    };
    let pepper_id = match q.last("pepper_id") {
        None => None,
        Some(v) => Some(PepperId::parse(v).map_err(|e| ApiError::field("pepper_id", e.to_string()))?),
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
    })
}

/// Loads a token the caller may see; others' tokens are a 404 to non-superusers, as in NetBox.
async fn visible(state: &AppState, me: &User, id: i64) -> ApiResult<TokenRecord> {
    match state.store.token(id).await? {
        Some(r) if me.is_superuser || r.token.user_id == me.id => Ok(r),
        _ => Err(ApiError::not_found("Token")),
    }
}

/// `GET /api/users/tokens/{id}/`
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

fn may_manage_for(me: &User, owner_id: i64) -> bool {
    me.is_superuser || me.can_grant_tokens || owner_id == me.id
}

fn issue_error(e: IssueError) -> ApiError {
    let field = match &e {
        IssueError::ExpiryInPast { .. } => "expires",
        IssueError::DescriptionTooLong(_) => "description",
        IssueError::Token(_) => "token",
        IssueError::Pepper(PepperError::Unknown(_)) => "pepper_id",
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

/// Issues a token for `owner` from request fields and stores it; the answer carries the secret once.
async fn issue_and_store(
    state: &AppState,
    ctx: &Ctx,
    owner: &User,
    m: &Map<String, Value>,
) -> ApiResult<Response> {
    let fields = common_fields(m)?;
    let version = match opt_int(m, "version")? {
        None | Some(2) => TokenVersion::V2,
        Some(1) => TokenVersion::V1,
        Some(v) => return Err(ApiError::field("version", format!("\"{v}\" is not a valid choice."))),
    };
    let chosen = match m.get("token") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(SecretString::from(s.as_str())),
        Some(_) => return Err(ApiError::field("token", "Not a valid string.")),
    };
    let pepper_id = match opt_int(m, "pepper_id")? {
        None => None,
        Some(id) => Some(
            u16::try_from(id)
                .ok()
                .and_then(|id| PepperId::new(id).ok())
                .ok_or_else(|| ApiError::field("pepper_id", format!("Invalid pepper ID: {id}.")))?,
        ),
    };
    let made = create_token(
        &state.store,
        &state.config.peppers,
        state.config.v1_policy,
        owner.id,
        TokenSpec {
            version,
            chosen,
            chosen_key: None,
            pepper_id: if version == TokenVersion::V2 { pepper_id } else { None },
            description: fields.description.unwrap_or_default(),
            expires: fields.expires.flatten(),
            enabled: fields.enabled.unwrap_or(true),
            write_enabled: fields.write_enabled.unwrap_or(true),
            allowed_ips: fields.allowed_ips.unwrap_or_default(),
        },
    )
    .await
    .map_err(|e| match e {
        CreateError::Issue(e) => issue_error(e),
        // A client-chosen value that exists already; say so without echoing it.
        CreateError::ValueInUse => ApiError::field("token", "This token value is already in use."),
        CreateError::Store(e) => e.into(),
    })?;
    Ok(created(json::token_with_secret(&ctx.base, &made.record, &made.secret)))
}

/// `POST /api/users/tokens/`
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
    issue_and_store(&state, &ctx, &owner, &m).await
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
    for fixed in ["token", "pepper_id"] {
        if m.get(fixed).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::field(fixed, "Cannot be changed on an existing token; rotate it instead."));
        }
    }
    if let Some(v) = opt_int(&m, "version")? {
        if v != i64::from(current.token.version().as_u8()) {
            return Err(ApiError::field("version", "The version of an existing token cannot be changed."));
        }
    }
    let fields = common_fields(&m)?;
    let user_id = match m.get("user") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let owner = resolve_user(state, v).await?;
            if owner.id != current.token.user_id && !(me.is_superuser || me.can_grant_tokens) {
                return Err(ApiError::forbidden());
            }
            Some(owner.id)
        }
    };
    let mut patch = TokenPatch {
        description: fields.description,
        expires: fields.expires,
        enabled: fields.enabled,
        write_enabled: fields.write_enabled,
        allowed_ips: fields.allowed_ips,
        user_id,
    };
    if full {
        // PUT replaces: fields left out go back to their defaults.
        patch.description.get_or_insert_with(String::new);
        patch.expires.get_or_insert(None);
        patch.enabled.get_or_insert(true);
        patch.write_enabled.get_or_insert(true);
        patch.allowed_ips.get_or_insert_with(Default::default);
    }
    let r = state.store.update_token(current.token.id, patch).await?;
    state.cache.invalidate_token(r.token.id);
    tracing::info!(token_id = r.token.id, "token changed");
    Ok(Json(json::token(&ctx.base, &r, false)))
}

/// `PATCH /api/users/tokens/{id}/`
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
    // argon2 takes tens of milliseconds: keep it off the async workers. An
    // unknown user is checked against a dummy hash so both cost the same.
    let ok = tokio::task::spawn_blocking(move || verify_password(password.expose(), &phc)).await.map_err(
        |_| ApiError::detail(StatusCode::SERVICE_UNAVAILABLE, "Password check failed; try again."),
    )?;
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
    issue_and_store(&state, &ctx, &user, &m).await
}
