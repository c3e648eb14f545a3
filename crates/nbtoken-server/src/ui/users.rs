//! The users page: list, create, disable/enable, reset a password. The operations refuse
//! all but superusers (403); the page only offers it to them.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use nbtoken_core::SecretString;
use nbtoken_manage::{AccountChanges, NewAccount};
use nbtoken_store::{Page, User, UserFilter, UserPatch};

use super::{checked_form, render_with, see_other, when, Failure, Layout, PostTo, Signed};
use crate::AppState;

/// One user as the table shows it.
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub superuser: bool,
    pub active: bool,
    pub joined: String,
    pub last_login: String,
}

impl UserRow {
    fn of(u: &User) -> Self {
        UserRow {
            id: u.id,
            username: u.username.clone(),
            superuser: u.is_superuser,
            active: u.is_active,
            joined: when(Some(u.date_joined), ""),
            last_login: when(u.last_login, "never"),
        }
    }
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    l: Layout,
    rows: Vec<UserRow>,
    error: String,
    notice: String,
}

async fn page(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    error: String,
    notice: String,
) -> Response {
    let page = Page { limit: 1000, offset: 0 };
    match state.ops().users(&signed.actor, UserFilter::default(), page).await {
        Ok((_, users)) => {
            let rows = users.iter().map(UserRow::of).collect();
            let page = UsersPage { l: Layout::of(signed, "users"), rows, error, notice };
            render_with(status, &page)
        }
        Err(e) => Failure::from(e).page(Some(signed)),
    }
}

/// `GET /ui/users/`.
pub async fn list(State(state): State<Arc<AppState>>, signed: Signed) -> Response {
    page(&state, &signed, StatusCode::OK, String::new(), String::new()).await
}

/// Runs a change and shows the list again: with the refusal, or with `done`.
async fn after(state: &AppState, signed: &Signed, result: Result<String, Failure>) -> Response {
    match result {
        Ok(done) => page(state, signed, StatusCode::OK, String::new(), done).await,
        // A forbidden or unknown target gets the error page; a refused input the list.
        Err(e) if matches!(e.status(), StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) => e.page(Some(signed)),
        Err(e) => page(state, signed, e.status(), e.message().to_owned(), String::new()).await,
    }
}

/// `POST /ui/users/`: creates a user.
pub async fn create(State(state): State<Arc<AppState>>, signed: Signed, body: Bytes) -> Response {
    let run = async {
        let f = checked_form(&signed, &body)?;
        let password = f.get("password").filter(|p| !p.is_empty()).map(|p| SecretString::new(p.to_owned()));
        let account = NewAccount {
            username: f.text("username"),
            password,
            is_superuser: f.checked("is_superuser"),
            ..Default::default()
        };
        let u = state.ops().create_user(&signed.actor, account).await?;
        Ok(format!("User {} created.", u.username))
    };
    after(&state, &signed, run.await).await
}

/// `POST /ui/users/{id}/active`: disables or enables a user (`active=yes|no`).
pub async fn set_active(State(state): State<Arc<AppState>>, p: PostTo) -> Response {
    let active = p.form.get("active") == Some("yes");
    let run = async {
        let ops = state.ops();
        let target = ops.user_to_change(&p.signed.actor, p.id).await?;
        let fields = UserPatch { is_active: Some(active), ..Default::default() };
        let u = ops.update_user(&p.signed.actor, &target, AccountChanges { fields, password: None }).await?;
        Ok(format!("User {} {}.", u.username, if active { "enabled" } else { "disabled" }))
    };
    match run.await {
        // Disabling oneself ends one's own session: back to the sign-in page.
        Ok(_) if p.id == p.signed.user.id => see_other("/ui/signin"),
        r => after(&state, &p.signed, r).await,
    }
}

/// `POST /ui/users/{id}/password`: sets a new password.
pub async fn password(State(state): State<Arc<AppState>>, p: PostTo) -> Response {
    let run = async {
        let ops = state.ops();
        let target = ops.user_to_change(&p.signed.actor, p.id).await?;
        let pw = SecretString::new(p.form.get("password").unwrap_or("").to_owned());
        let u = ops.set_password(&p.signed.actor, &target, pw).await?;
        Ok(format!("Password of {} changed.", u.username))
    };
    after(&state, &p.signed, run.await).await
}
