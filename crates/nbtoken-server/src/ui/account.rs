//! Signing in and out: username and password checked by the operations on the server's
//! password workers, failures drawn from the API's failure budgets.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use nbtoken_core::SecretString;
use nbtoken_manage::{Credentials, Error, Forbidden};

use super::session::{self, set_cookie, COOKIE, SIGNIN_COOKIE};
use super::{checked_form, over_https, render_with, see_other, Failure, Form, Layout, Signed};
use crate::client_ip::Caller;
use crate::error::ApiError;
use crate::AppState;

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage {
    l: Layout,
    csrf: String,
    username: String,
    error: String,
}

/// The sign-in form, with a fresh double-submit CSRF token in a cookie and the form.
pub async fn signin_page(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    signed: Option<Signed>,
) -> Response {
    if signed.is_some() {
        return see_other("/ui/tokens/");
    }
    form(&state, &headers, caller.as_deref(), StatusCode::OK, String::new(), String::new())
}

fn form(
    state: &AppState,
    headers: &HeaderMap,
    caller: Option<&Caller>,
    status: StatusCode,
    username: String,
    error: String,
) -> Response {
    let Some(csrf) = session::random_token() else {
        return Failure::new(StatusCode::SERVICE_UNAVAILABLE, "No randomness available; try again.")
            .page(None);
    };
    let cookie = set_cookie(SIGNIN_COOKIE, Some(&csrf), over_https(state, headers, caller));
    with_cookies(render_with(status, &SigninPage { l: Layout::anonymous(), csrf, username, error }), [cookie])
}

/// `resp` with a `Set-Cookie` header for each of `cookies` (one that is not a valid header
/// value is left out).
fn with_cookies(mut resp: Response, cookies: impl IntoIterator<Item = String>) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// `POST /ui/signin`: checks the CSRF pair, the client's failure budget and the password;
/// starts a session on success.
pub async fn signin(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = caller.as_deref();
    let f = Form::parse(&body);
    let pair = (session::cookie(&headers, SIGNIN_COOKIE), f.get("csrf"));
    if !matches!(pair, (Some(c), Some(t)) if session::same_token(c, t)) {
        return Failure::csrf().page(None);
    }
    let Some(Ok(client_ip)) = caller.map(Caller::client) else {
        return Failure::new(StatusCode::BAD_REQUEST, "The client address could not be determined.")
            .page(None);
    };
    let username = f.text("username");
    let retry = |status, message: String| form(&state, &headers, caller, status, username.clone(), message);
    if let Some(wait) = state.limiter.blocked_for(client_ip, None) {
        let e = Failure::from(ApiError::too_many_failures(wait));
        return retry(e.status(), e.message().to_owned());
    }
    // The client's share of the password workers, held until a failure has been counted.
    let _slot = match crate::passwords::provision_slot(&state, client_ip) {
        Ok(slot) => slot,
        Err(e) => {
            let e = Failure::from(e);
            return retry(e.status(), e.message().to_owned());
        }
    };
    let password = SecretString::new(f.get("password").unwrap_or("").to_owned());
    let credentials = Credentials { username: username.clone(), password };
    let user = match state.ops().sign_in(credentials).await {
        Ok(user) => user,
        Err(Error::Forbidden(Forbidden::BadCredentials)) => {
            tracing::info!(%client_ip, "UI sign-in refused: invalid username/password");
            if let Some(wait) = state.limiter.record_failure(client_ip, None) {
                let e = Failure::from(ApiError::too_many_failures(wait));
                return retry(e.status(), e.message().to_owned());
            }
            return retry(StatusCode::FORBIDDEN, Forbidden::BadCredentials.to_string());
        }
        Err(e) => {
            let e = Failure::from(e);
            return retry(e.status(), e.message().to_owned());
        }
    };
    // A session already in this browser ends: one browser, one session.
    if let Some(old) = session::cookie(&headers, COOKIE) {
        state.ui.end(old);
    }
    let Some((sid, _)) = state.ui.start(user.id) else {
        return Failure::new(StatusCode::SERVICE_UNAVAILABLE, "No randomness available; try again.")
            .page(None);
    };
    let secure = over_https(&state, &headers, caller);
    let cookies = [set_cookie(COOKIE, Some(&sid), secure), set_cookie(SIGNIN_COOKIE, None, secure)];
    with_cookies(see_other("/ui/tokens/"), cookies)
}

/// `POST /ui/signout`: ends the session here, so its cookie no longer works anywhere.
pub async fn signout(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    signed: Signed,
    body: Bytes,
) -> Response {
    if let Err(e) = checked_form(&signed, &body) {
        return e.page(Some(&signed));
    }
    state.ui.end(&signed.sid);
    tracing::info!(user_id = signed.user.id, "signed out");
    let secure = over_https(&state, &headers, caller.as_deref());
    with_cookies(see_other("/ui/signin"), [set_cookie(COOKIE, None, secure)])
}
