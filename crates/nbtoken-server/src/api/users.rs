//! `/api/users/users/`: superusers manage accounts; others see only themselves.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use nbtoken_store::{NewUser, Store, User, UserFilter, UserPatch};
use serde_json::{Map, Value};

use super::body::{opt_bool, opt_string, parse_object, reject_unknown};
use super::{created, current_user, no_content, path_id, Ctx};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::json;
use crate::AppState;

const WRITABLE: &[&str] = &[
    "username",
    "password",
    "first_name",
    "last_name",
    "email",
    "is_active",
    "is_superuser",
    "can_grant_tokens",
];
const READ_ONLY: &[&str] = &[
    "id",
    "url",
    "display_url",
    "display",
    "date_joined",
    "last_login",
    "groups",
    "permissions",
    "is_staff",
];

/// `GET /api/users/users/`
#[utoipa::path(
    get,
    path = "/api/users/users/",
    operation_id = "users_users_list",
    tag = "users",
    params(crate::api::schema::Paging, crate::api::schema::UserFilters),
    security(("tokenAuth" = [])),
    responses(
        (status = 200, description = "A page of users: the caller, or all for a superuser", body = crate::api::schema::UserList),
        crate::api::schema::Invalid,
        crate::api::schema::Refusals,
    )
)]
pub async fn list(State(state): State<Arc<AppState>>, p: Principal, ctx: Ctx) -> ApiResult<Json<Value>> {
    let me = current_user(&state, &p).await?;
    let q = &ctx.query;
    let mut filter = UserFilter {
        ids: q.ints("id")?,
        usernames: q.all("username").to_vec(),
        is_active: q.boolean("is_active")?,
    };
    if !me.is_superuser {
        if !filter.ids.is_empty() && !filter.ids.contains(&me.id) {
            filter.ids = vec![-1];
        } else {
            filter.ids = vec![me.id];
        }
    }
    let page = q.page();
    let (count, rows) = state.store.list_users(&filter, page).await?;
    let results = rows.iter().map(|u| json::user(&ctx.base, u, q.brief())).collect();
    Ok(Json(json::paginated(&ctx.base, "/api/users/users/", q, page, count, results)))
}

async fn visible(state: &AppState, me: &User, id: i64) -> ApiResult<User> {
    match state.store.user(id).await? {
        Some(u) if me.is_superuser || u.id == me.id => Ok(u),
        _ => Err(ApiError::not_found("User")),
    }
}

/// `GET /api/users/users/{id}/`
#[utoipa::path(
    get,
    path = "/api/users/users/{id}/",
    operation_id = "users_users_retrieve",
    tag = "users",
    params(("id" = i64, Path, description = "The user's id")),
    security(("tokenAuth" = [])),
    responses(
        (status = 200, description = "The user", body = crate::api::schema::User),
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
    let u = visible(&state, &me, path_id(&id, "User")?).await?;
    Ok(Json(json::user(&ctx.base, &u, ctx.query.brief())))
}

fn require_superuser(me: &User) -> ApiResult<()> {
    if me.is_superuser {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}

fn valid_username(name: &str) -> ApiResult<()> {
    if nbtoken_core::password::valid_username(name) {
        Ok(())
    } else {
        Err(ApiError::field(
            "username",
            "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
        ))
    }
}

/// The hash of a `password` field, made on the bounded password workers (503 when they are busy).
async fn password_field(state: &AppState, m: &Map<String, Value>) -> ApiResult<Option<String>> {
    let Some(pw) = opt_string(m, "password", 1024)? else { return Ok(None) };
    // DRF's own field check, before the validators run (it trims whitespace first).
    if pw.trim().is_empty() {
        return Err(ApiError::field("password", "This field may not be blank."));
    }
    // NetBox runs Django's validators in `UserSerializer.validate`, so their errors are
    // non-field errors: all of them under `__all__`.
    if let Err(weak) = nbtoken_core::password::check_password(&pw) {
        let mut errors = Map::new();
        errors.insert("__all__".into(), weak.messages().iter().map(|m| Value::from(*m)).collect());
        return Err(ApiError::fields(errors));
    }
    Ok(Some(state.passwords.hash(nbtoken_core::SecretString::new(pw)).await?))
}

/// `POST /api/users/users/`
#[utoipa::path(
    post,
    path = "/api/users/users/",
    operation_id = "users_users_create",
    tag = "users",
    request_body = crate::api::schema::UserWrite,
    security(("tokenAuth" = [])),
    responses(
        (status = 201, description = "Created (superusers only)", body = crate::api::schema::User),
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
    require_superuser(&me)?;
    let m = parse_object(&body)?;
    reject_unknown(&m, WRITABLE, READ_ONLY)?;
    let username = opt_string(&m, "username", 150)?
        .ok_or_else(|| ApiError::field("username", "This field is required."))?;
    valid_username(&username)?;
    let user = state
        .store
        .create_user(NewUser {
            username,
            password_hash: password_field(&state, &m).await?,
            first_name: opt_string(&m, "first_name", 150)?.unwrap_or_default(),
            last_name: opt_string(&m, "last_name", 150)?.unwrap_or_default(),
            email: opt_string(&m, "email", 254)?.unwrap_or_default(),
            is_active: opt_bool(&m, "is_active")?.unwrap_or(true),
            is_superuser: opt_bool(&m, "is_superuser")?.unwrap_or(false),
            can_grant_tokens: opt_bool(&m, "can_grant_tokens")?.unwrap_or(false),
        })
        .await
        .map_err(|e| match e {
            nbtoken_store::StoreError::Conflict(_) => {
                ApiError::field("username", "A user with that username already exists.")
            }
            other => other.into(),
        })?;
    tracing::info!(user_id = user.id, "user created");
    Ok(created(json::user(&ctx.base, &user, false)))
}

async fn change(
    state: &AppState,
    p: &Principal,
    ctx: &Ctx,
    id: &str,
    body: &Bytes,
) -> ApiResult<Json<Value>> {
    let me = current_user(state, p).await?;
    require_superuser(&me)?;
    let target = visible(state, &me, path_id(id, "User")?).await?;
    let m = parse_object(body)?;
    reject_unknown(&m, WRITABLE, READ_ONLY)?;
    let username = opt_string(&m, "username", 150)?;
    if let Some(u) = &username {
        valid_username(u)?;
    }
    let patch = UserPatch {
        username,
        password_hash: password_field(state, &m).await?.map(Some),
        first_name: opt_string(&m, "first_name", 150)?,
        last_name: opt_string(&m, "last_name", 150)?,
        email: opt_string(&m, "email", 254)?,
        is_active: opt_bool(&m, "is_active")?,
        is_superuser: opt_bool(&m, "is_superuser")?,
        can_grant_tokens: opt_bool(&m, "can_grant_tokens")?,
        last_login: None,
    };
    let u = state.store.update_user(target.id, patch).await.map_err(|e| match e {
        nbtoken_store::StoreError::Conflict(_) => {
            ApiError::field("username", "A user with that username already exists.")
        }
        other => other.into(),
    })?;
    state.cache.invalidate_user(u.id);
    tracing::info!(user_id = u.id, "user changed");
    Ok(Json(json::user(&ctx.base, &u, false)))
}

/// `PATCH /api/users/users/{id}/`
#[utoipa::path(
    patch,
    path = "/api/users/users/{id}/",
    operation_id = "users_users_partial_update",
    tag = "users",
    params(("id" = i64, Path, description = "The user's id")),
    request_body = crate::api::schema::UserWrite,
    security(("tokenAuth" = [])),
    responses(
        (status = 200, description = "The changed user", body = crate::api::schema::User),
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
    change(&state, &p, &ctx, &id, &body).await
}

/// `PUT /api/users/users/{id}/` (fields left out keep their values, as a PATCH would).
#[utoipa::path(
    put,
    path = "/api/users/users/{id}/",
    operation_id = "users_users_update",
    tag = "users",
    params(("id" = i64, Path, description = "The user's id")),
    request_body = crate::api::schema::UserWrite,
    security(("tokenAuth" = [])),
    responses(
        (status = 200, description = "The changed user", body = crate::api::schema::User),
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
    change(&state, &p, &ctx, &id, &body).await
}

/// `DELETE /api/users/users/{id}/`
#[utoipa::path(
    delete,
    path = "/api/users/users/{id}/",
    operation_id = "users_users_destroy",
    tag = "users",
    params(("id" = i64, Path, description = "The user's id")),
    security(("tokenAuth" = [])),
    responses(
        (status = 204, description = "Deleted (superusers only)"),
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
    require_superuser(&me)?;
    let target = visible(&state, &me, path_id(&id, "User")?).await?;
    if target.id == me.id {
        return Err(ApiError::bad_request("You cannot delete your own account."));
    }
    state.store.delete_user(target.id).await?;
    state.cache.invalidate_user(target.id);
    tracing::info!(user_id = target.id, "user deleted");
    Ok(no_content())
}
