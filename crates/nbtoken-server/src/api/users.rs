//! `/api/users/users/`: superusers manage accounts; others see only themselves.
//! Each handler parses, calls an operation of `nbtoken_manage` and renders its answer.

use nbtoken_manage::{input, Actor};
use nbtoken_store::{User, UserFilter};
use serde_json::Value;

use super::path_id;
use crate::error::ApiResult;
use crate::json::{self, BaseUrl, Query};
use crate::AppState;

collection_handlers! {
    path: "/api/users/users/",
    tag: "users",
    list: (
        "`GET /api/users/users/`",
        "users_users_list",
        UserFilters,
        "A page of users: the caller, or all for a superuser",
        UserList,
        users,
        user
    ),
    create: ("`POST /api/users/users/`", "users_users_create", UserWrite, "Created (superusers only)", User),
}

/// A listing's filter from NetBox's query parameters.
fn filter(q: &Query) -> ApiResult<UserFilter> {
    Ok(UserFilter {
        ids: q.ints("id")?,
        usernames: q.all("username").to_vec(),
        is_active: q.boolean("is_active")?,
    })
}

/// POST (superusers only, checked before the body is read, as NetBox checks permissions first).
async fn make(state: &AppState, actor: &Actor, body: &[u8], base: &BaseUrl) -> ApiResult<Value> {
    actor.manages_users()?;
    let account = input::new_account(&input::user_body(body)?)?;
    Ok(json::user(base, &state.ops().create_user(actor, account).await?, false))
}

object_handlers! {
    path: "/api/users/users/{id}/",
    tag: "users",
    id: "The user's id",
    what: "User",
    get: user,
    render: user,
    retrieve: ("`GET /api/users/users/{id}/`", "users_users_retrieve", "The user", User),
    update: ("`PATCH /api/users/users/{id}/`", "users_users_partial_update", "The changed user", UserWrite),
    replace: (
        "`PUT /api/users/users/{id}/` (fields left out keep their values, as a PATCH would).",
        "users_users_update"
    ),
    destroy: ("`DELETE /api/users/users/{id}/`", "users_users_destroy", "Deleted (superusers only)"),
}

/// PATCH and PUT alike: fields left out keep their values.
async fn change(state: &AppState, actor: &Actor, id: &str, body: &[u8], _full: bool) -> ApiResult<User> {
    // Refused before the id and the body are read, as NetBox checks permissions first.
    actor.manages_users()?;
    let ops = state.ops();
    let target = ops.user_to_change(actor, path_id(id, "User")?).await?;
    let changes = input::account_changes(&input::user_body(body)?)?;
    Ok(ops.update_user(actor, &target, changes).await?)
}

/// DELETE (superusers only, checked before the id is read).
async fn remove(state: &AppState, actor: &Actor, id: &str) -> ApiResult<()> {
    actor.manages_users()?;
    Ok(state.ops().delete_user(actor, path_id(id, "User")?).await?)
}
