//! The web UI under `/ui/`: server-rendered pages (askama templates compiled into the
//! binary) for signing in, managing one's tokens and, for superusers, every token, the
//! users and the v1 migration.
//!
//! Every page parses what the browser sent, calls an operation of `nbtoken_manage` as the
//! signed-in [`Actor`] and renders the answer: who may see or change what is decided there,
//! never here. Every flow works without JavaScript (the copy button is the only script).
//! Every response carries a strict Content-Security-Policy (no inline script or style),
//! `X-Content-Type-Options`, `Referrer-Policy: no-referrer` and `Cache-Control: no-store`;
//! every form carries the session's CSRF token and a POST without it is refused (403).
//! A new token's secret appears only in the one page that shows it, never in a URL.
//!
//! Sessions are kept per instance ([`session`]): see there for the known limit.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use nbtoken_manage::Actor;
use nbtoken_store::User;
use time::OffsetDateTime;

use crate::client_ip::Caller;
use crate::error::ApiError;
use crate::AppState;

mod account;
mod migration;
pub mod session;
mod tokens;
mod users;

pub use session::Sessions;

/// The Content-Security-Policy of every UI response: nothing inline, nothing from elsewhere.
pub const CSP: &str = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

const STYLE: &str = include_str!("../../assets/style.css");
const COPY_JS: &str = include_str!("../../assets/copy.js");

/// Every UI route, with the layers the API has too (who is calling, body limit, timeout,
/// logging), and the security headers. It sits outside the API's JSON error layer: the UI
/// answers its errors as pages.
pub fn router(state: Arc<AppState>) -> Router {
    let router = Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(home))
        .route("/ui/signin", get(account::signin_page).post(account::signin))
        .route("/ui/signout", post(account::signout))
        .route("/ui/tokens/", get(tokens::mine).post(tokens::create))
        .route("/ui/tokens/new", get(tokens::new_form))
        .route("/ui/tokens/all", get(tokens::all))
        .route("/ui/tokens/{id}/rotate", post(tokens::rotate))
        .route("/ui/tokens/{id}/enable", post(tokens::enable))
        .route("/ui/tokens/{id}/disable", post(tokens::disable))
        .route("/ui/tokens/{id}/delete", get(tokens::confirm_delete).post(tokens::delete))
        .route("/ui/tokens/{id}/replace", post(tokens::replace))
        .route("/ui/users/", get(users::list).post(users::create))
        .route("/ui/users/{id}/active", post(users::set_active))
        .route("/ui/users/{id}/password", post(users::password))
        .route("/ui/migration/", get(migration::page))
        .route("/ui/migration/finalize", post(migration::finalize))
        .route("/ui/assets/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/ui/assets/copy.js", get(|| async { asset("text/javascript; charset=utf-8", COPY_JS) }))
        .route("/ui/{*rest}", get(not_found).post(not_found))
        .layer(tower::util::MapResponseLayer::new(security_headers));
    crate::per_request(router, &state, false).with_state(state)
}

/// `/ui/`: one's tokens when signed in, the sign-in page otherwise.
async fn home(signed: Option<Signed>) -> Response {
    see_other(if signed.is_some() { "/ui/tokens/" } else { "/ui/signin" })
}

async fn not_found(signed: Option<Signed>) -> Response {
    Failure::new(StatusCode::NOT_FOUND, "There is no such page.").page(signed.as_ref())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=3600")], body).into_response()
}

/// The security headers of every UI response; pages (not assets) are never cached.
fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// What every page's frame shows: who is signed in, what they may reach, the CSRF token of
/// the sign-out form.
pub struct Layout {
    /// The signed-in user's name (empty on the sign-in page).
    pub username: String,
    /// Whether the superuser pages are offered (the operations decide what they show).
    pub superuser: bool,
    /// The session's CSRF token.
    pub csrf: String,
    /// Which menu entry is current.
    pub current: &'static str,
}

impl Layout {
    /// The frame of a page for `signed`, with `current` marked in the menu.
    pub fn of(signed: &Signed, current: &'static str) -> Self {
        Self {
            username: signed.user.username.clone(),
            superuser: signed.actor.is_superuser(),
            csrf: signed.session.csrf.clone(),
            current,
        }
    }

    /// The frame without a signed-in user.
    pub fn anonymous() -> Self {
        Self { username: String::new(), superuser: false, csrf: String::new(), current: "" }
    }
}

/// A signed-in browser: its session, its account as stored now, and the actor it is.
pub struct Signed {
    /// The session's id (from the cookie).
    pub sid: String,
    /// The session.
    pub session: session::Session,
    /// The account.
    pub user: User,
    /// The account as the operations see it.
    pub actor: Actor,
}

impl FromRequestParts<Arc<AppState>> for Signed {
    /// Not signed in: to the sign-in page.
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Response> {
        let to_signin = || Redirect::to("/ui/signin").into_response();
        let Some(sid) = session::cookie(&parts.headers, session::COOKIE) else { return Err(to_signin()) };
        let Some(s) = state.ui.get(sid) else { return Err(to_signin()) };
        match state.ops().session_user(s.user_id).await {
            Ok(Some(user)) => {
                Ok(Signed { sid: sid.to_owned(), session: s, actor: Actor::User(user.clone()), user })
            }
            // Deleted or disabled since: the session ends with the account.
            Ok(None) => {
                state.ui.end(sid);
                Err(to_signin())
            }
            Err(e) => Err(Failure::from(e).page(None)),
        }
    }
}

impl axum::extract::OptionalFromRequestParts<Arc<AppState>> for Signed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(<Signed as FromRequestParts<_>>::from_request_parts(parts, state).await.ok())
    }
}

/// A submitted form (`application/x-www-form-urlencoded`).
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Parses a body or a query string.
    pub fn parse(bytes: &[u8]) -> Self {
        Self(form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// The last value of field `name`, if sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Field `name`, trimmed; empty if not sent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").trim().to_owned()
    }

    /// Whether checkbox `name` was ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| !v.is_empty())
    }
}

/// The form of a POST by `signed`, once its CSRF token is the session's; 403 otherwise.
pub fn checked_form(signed: &Signed, body: &Bytes) -> Result<Form, Failure> {
    let form = Form::parse(body);
    match form.get("csrf") {
        Some(t) if session::same_token(t, &signed.session.csrf) => Ok(form),
        _ => Err(Failure::csrf()),
    }
}

/// A form POSTed to an object's route (`…/{id}/…`) by a signed-in browser: what every action
/// on one token or user starts from. The CSRF token is checked first (403 page), then the id
/// (404 page), so the handlers only call the operation and render its answer.
pub struct PostTo {
    /// The signed-in browser.
    pub signed: Signed,
    /// The object's id from the path.
    pub id: i64,
    /// The form, its CSRF token the session's.
    pub form: Form,
}

impl FromRequest<Arc<AppState>> for PostTo {
    /// Not signed in: to the sign-in page; a refused form or id: the error page.
    type Rejection = Response;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        let Path(raw) = Path::<String>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        match checked_form(&signed, &body).and_then(|form| Ok((form, path_id(&raw)?))) {
            Ok((form, id)) => Ok(PostTo { signed, id, form }),
            Err(e) => Err(e.page(Some(&signed))),
        }
    }
}

/// A refusal shown as a page: a status and a message a user can read.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    /// A refusal with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    /// A POST without the session's CSRF token.
    pub fn csrf() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form was not sent from this site's own page (missing or wrong CSRF token). Reload the page and try again.",
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error page, in the frame of `signed` if there is one.
    pub fn page(&self, signed: Option<&Signed>) -> Response {
        let layout = signed.map_or_else(Layout::anonymous, |s| Layout::of(s, ""));
        let page = ErrorPage { l: layout, status: self.status.as_u16(), message: self.message.clone() };
        render_with(self.status, &page)
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        let message = e.message().unwrap_or("The request was refused.").to_owned();
        Self::new(e.status(), message)
    }
}

impl From<nbtoken_manage::Error> for Failure {
    /// An operation's refusal with the API's status; field errors as their text (which
    /// never repeats a value), anything else as the API words it (store errors stay generic).
    fn from(e: nbtoken_manage::Error) -> Self {
        let text = matches!(e, nbtoken_manage::Error::Invalid(_)).then(|| e.to_string());
        let api = ApiError::from(e);
        let message = text.or_else(|| api.message().map(str::to_owned)).unwrap_or_default();
        Self::new(api.status(), message)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    l: Layout,
    status: u16,
    message: String,
}

/// Renders a page with status 200.
pub fn render(page: &impl Template) -> Response {
    render_with(StatusCode::OK, page)
}

/// Renders a page with `status`.
pub fn render_with(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a UI template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "The page could not be rendered.").into_response()
        }
    }
}

/// 303 to `to` (after a POST, so that a reload does not send it again).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Whether the browser reached us over HTTPS (directly, through a trusted proxy that says
/// so, or as the configured public URL says): the session cookie is then `Secure`.
pub fn over_https(state: &AppState, headers: &HeaderMap, caller: Option<&Caller>) -> bool {
    let trusted = caller.is_some_and(Caller::peer_trusted);
    crate::json::base_for_request(headers, trusted, &state.config, "localhost")
        .url("")
        .starts_with("https://")
}

/// A time as pages show it (UTC, to the minute), or `fallback`.
pub fn when(t: Option<OffsetDateTime>, fallback: &str) -> String {
    t.map_or_else(
        || fallback.to_owned(),
        |t| {
            let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
            t.format(&f).unwrap_or_default()
        },
    )
}

/// An id from a path: a positive integer, or 404.
pub fn path_id(raw: &str) -> Result<i64, Failure> {
    Some(raw)
        .filter(|r| !r.is_empty() && r.len() < 19 && r.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|r| r.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, "No Token matches the given query."))
}
