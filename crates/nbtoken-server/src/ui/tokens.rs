//! Token pages: one's own tokens (create, rotate, disable/enable, delete, replace a v1
//! token), and every token the actor sees with filters (superusers see all of them).

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use nbtoken_core::migrate::TokenInfo;
use nbtoken_core::{PepperId, SecretString, TokenVersion};
use nbtoken_manage::input;
use nbtoken_store::{Page, TokenFilter, TokenRecord};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use super::{
    checked_form, path_id, render, render_with, see_other, when, Failure, Form, Layout, PostTo, Signed,
};
use crate::AppState;

/// Most tokens one page lists.
const PAGE: Page = Page { limit: 1000, offset: 0 };

/// Overlaps a rotation offers, in seconds, and how they are shown.
pub const OVERLAPS: [(i64, &str); 4] =
    [(0, "none"), (3600, "1 hour"), (86_400, "1 day"), (604_800, "7 days")];

/// One token as a table row shows it: its display form, never a secret.
pub struct Row {
    pub id: i64,
    pub user: String,
    pub key: String,
    pub v1: bool,
    pub description: String,
    pub created: String,
    pub expires: String,
    pub last_used: String,
    pub last_used_ip: String,
    pub allowed_ips: String,
    pub write: bool,
    pub enabled: bool,
    pub pepper: String,
}

impl Row {
    /// The row of a stored token.
    pub fn of(r: &TokenRecord) -> Self {
        let t = TokenInfo::from(r);
        let nets: Vec<String> = t.allowed_ips.nets().iter().map(ToString::to_string).collect();
        Row {
            id: t.id,
            user: t.username,
            key: t.display,
            v1: t.version == TokenVersion::V1,
            description: t.description,
            created: when(Some(t.created), ""),
            expires: when(t.expires, "never"),
            last_used: when(t.last_used, "never"),
            last_used_ip: t.last_used_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            allowed_ips: if nets.is_empty() { "any".to_owned() } else { nets.join(", ") },
            write: t.write_enabled,
            enabled: t.enabled,
            pepper: t.pepper_id.map(|p| p.get().to_string()).unwrap_or_else(|| "-".to_owned()),
        }
    }
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    l: Layout,
    rows: Vec<Row>,
    count: u64,
    any_v1: bool,
    overlaps: &'static [(i64, &'static str)],
}

/// `GET /ui/tokens/`: the signed-in user's own tokens.
pub async fn mine(State(state): State<Arc<AppState>>, signed: Signed) -> Response {
    let filter = TokenFilter { user_ids: vec![signed.user.id], ..Default::default() };
    match state.ops().tokens(&signed.actor, filter, PAGE).await {
        Ok((count, records)) => {
            let rows: Vec<Row> = records.iter().map(Row::of).collect();
            let any_v1 = rows.iter().any(|r| r.v1);
            render(&TokensPage { l: Layout::of(&signed, "tokens"), rows, count, any_v1, overlaps: &OVERLAPS })
        }
        Err(e) => Failure::from(e).page(Some(&signed)),
    }
}

#[derive(Template)]
#[template(path = "token_new.html")]
struct NewTokenPage {
    l: Layout,
    error: String,
    description: String,
    expires: String,
    write: bool,
    allowed_ips: String,
}

/// `GET /ui/tokens/new`: the form for a new v2 token.
pub async fn new_form(signed: Signed) -> Response {
    render(&NewTokenPage {
        l: Layout::of(&signed, "tokens"),
        error: String::new(),
        description: String::new(),
        expires: String::new(),
        write: true,
        allowed_ips: String::new(),
    })
}

#[derive(Template)]
#[template(path = "token_secret.html")]
struct SecretPage {
    l: Layout,
    heading: String,
    key: String,
    header: String,
    note: String,
}

/// The one page that shows a secret: the full `Authorization` header value of `token`
/// (the token `record` holds), once.
fn secret_page(
    signed: &Signed,
    heading: &str,
    record: &TokenRecord,
    token: &SecretString,
    note: &str,
) -> Response {
    let page = SecretPage {
        l: Layout::of(signed, "tokens"),
        heading: heading.to_owned(),
        key: TokenInfo::from(record).display,
        header: format!("Bearer {}", token.expose()),
        note: note.to_owned(),
    };
    // `Cache-Control: no-store` is set on every page by the security-header layer.
    render(&page)
}

/// The form's fields as the API's token body, so the same parser checks both.
fn token_body(f: &Form) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("version".into(), Value::from(2));
    m.insert("description".into(), Value::from(f.get("description").unwrap_or("").trim()));
    let expires = f.text("expires");
    if !expires.is_empty() {
        m.insert("expires".into(), Value::from(expires));
    }
    m.insert("write_enabled".into(), Value::from(f.checked("write_enabled")));
    let nets: Vec<Value> = f
        .get("allowed_ips")
        .unwrap_or("")
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(Value::from)
        .collect();
    if !nets.is_empty() {
        m.insert("allowed_ips".into(), Value::Array(nets));
    }
    m
}

/// `POST /ui/tokens/`: creates a v2 token for the signed-in user and shows it once.
pub async fn create(State(state): State<Arc<AppState>>, signed: Signed, body: Bytes) -> Response {
    let f = match checked_form(&signed, &body) {
        Ok(f) => f,
        Err(e) => return e.page(Some(&signed)),
    };
    let ops = state.ops();
    let made = match input::token_spec(&token_body(&f)) {
        Ok(spec) => ops.create_token(&signed.actor, &signed.user, spec).await,
        Err(e) => Err(e),
    };
    match made {
        Ok(made) => secret_page(&signed, "Token created", &made.record, &made.token, ""),
        Err(e) => {
            let e = Failure::from(e);
            let page = NewTokenPage {
                l: Layout::of(&signed, "tokens"),
                error: e.message().to_owned(),
                description: f.get("description").unwrap_or("").to_owned(),
                expires: f.text("expires"),
                write: f.checked("write_enabled"),
                allowed_ips: f.get("allowed_ips").unwrap_or("").to_owned(),
            };
            render_with(e.status(), &page)
        }
    }
}

/// Where to go back to after acting on a token: one's own list, or every token.
fn back(f: &Form) -> &'static str {
    if f.get("back") == Some("all") {
        "/ui/tokens/all"
    } else {
        "/ui/tokens/"
    }
}

/// `POST /ui/tokens/{id}/rotate`: a new secret; the old one works for the chosen overlap.
pub async fn rotate(State(state): State<Arc<AppState>>, p: PostTo) -> Response {
    let secs = p.form.get("overlap").and_then(|s| s.parse::<i64>().ok()).unwrap_or(3600);
    let (secs, shown) = OVERLAPS.iter().copied().find(|(s, _)| *s == secs).unwrap_or(OVERLAPS[1]);
    match state.ops().rotate_token(&p.signed.actor, p.id, Duration::seconds(secs)).await {
        Ok((record, rotated)) => {
            let note = if secs == 0 {
                "The previous secret no longer works.".to_owned()
            } else {
                format!("The previous secret keeps working for {shown}.")
            };
            secret_page(&p.signed, "Token rotated", &record, &rotated.token, &note)
        }
        Err(e) => Failure::from(e).page(Some(&p.signed)),
    }
}

/// After a change to a token: back to the list it was made from, or the refusal.
fn back_after<T>(p: &PostTo, done: Result<T, nbtoken_manage::Error>) -> Response {
    match done {
        Ok(_) => see_other(back(&p.form)),
        Err(e) => Failure::from(e).page(Some(&p.signed)),
    }
}

/// `POST /ui/tokens/{id}/enable`.
pub async fn enable(State(state): State<Arc<AppState>>, p: PostTo) -> Response {
    back_after(&p, state.ops().set_token_enabled(&p.signed.actor, p.id, true).await)
}

/// `POST /ui/tokens/{id}/disable`.
pub async fn disable(State(state): State<Arc<AppState>>, p: PostTo) -> Response {
    back_after(&p, state.ops().set_token_enabled(&p.signed.actor, p.id, false).await)
}

#[derive(Template)]
#[template(path = "token_delete.html")]
struct DeletePage {
    l: Layout,
    row: Row,
    back: &'static str,
}

/// `GET /ui/tokens/{id}/delete`: asks before deleting.
pub async fn confirm_delete(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let q = Form::parse(query.unwrap_or_default().as_bytes());
    let run = async { Ok::<_, Failure>(state.ops().token(&signed.actor, path_id(&id)?).await?) };
    match run.await {
        Ok(r) => {
            let back = if back(&q) == "/ui/tokens/all" { "all" } else { "" };
            render(&DeletePage { l: Layout::of(&signed, "tokens"), row: Row::of(&r), back })
        }
        Err(e) => e.page(Some(&signed)),
    }
}

/// `POST /ui/tokens/{id}/delete`.
pub async fn delete(State(state): State<Arc<AppState>>, p: PostTo) -> Response {
    back_after(&p, state.ops().delete_token(&p.signed.actor, p.id).await)
}

/// `POST /ui/tokens/{id}/replace`: the v2 replacement of a v1 token, shown once.
pub async fn replace(State(state): State<Arc<AppState>>, p: PostTo) -> Response {
    match state.ops().replace_v1(&p.signed.actor, p.id).await {
        Ok(made) => secret_page(
            &p.signed,
            "v1 token replaced",
            &made.record,
            &made.token,
            "Switch the integration that uses the v1 token to this value. Once it has been used, finalizing the migration disables the v1 token.",
        ),
        Err(e) => Failure::from(e).page(Some(&p.signed)),
    }
}

/// The filters of the all-tokens page, as sent and as parsed.
pub struct Filters {
    pub user: String,
    pub version: String,
    pub enabled: String,
    pub unused_days: String,
    pub pepper: String,
}

#[derive(Template)]
#[template(path = "tokens_all.html")]
struct AllPage {
    l: Layout,
    f: Filters,
    rows: Vec<Row>,
    count: u64,
    error: String,
    overlaps: &'static [(i64, &'static str)],
}

/// `GET /ui/tokens/all`: every token the actor sees (all of them for a superuser), filtered.
pub async fn all(State(state): State<Arc<AppState>>, signed: Signed, RawQuery(query): RawQuery) -> Response {
    let q = Form::parse(query.unwrap_or_default().as_bytes());
    let f = Filters {
        user: q.text("user"),
        version: q.text("version"),
        enabled: q.text("enabled"),
        unused_days: q.text("unused_days"),
        pepper: q.text("pepper"),
    };
    let parsed = parse_filters(&f);
    let (filter, unused) = match parsed {
        Ok(p) => p,
        Err(error) => {
            let page = AllPage {
                l: Layout::of(&signed, "all"),
                f,
                rows: Vec::new(),
                count: 0,
                error,
                overlaps: &OVERLAPS,
            };
            return render_with(StatusCode::BAD_REQUEST, &page);
        }
    };
    match state.ops().tokens(&signed.actor, filter, PAGE).await {
        Ok((count, records)) => {
            let since = unused.map(|days| OffsetDateTime::now_utc() - Duration::days(days));
            let rows = records
                .iter()
                .filter(|r| since.is_none_or(|s| r.token.last_used.is_none_or(|u| u < s)))
                .map(Row::of)
                .collect();
            let page = AllPage {
                l: Layout::of(&signed, "all"),
                f,
                rows,
                count,
                error: String::new(),
                overlaps: &OVERLAPS,
            };
            render(&page)
        }
        Err(e) => Failure::from(e).page(Some(&signed)),
    }
}

/// The store's filter, and "unused for N days", from the form; a message if one is wrong.
fn parse_filters(f: &Filters) -> Result<(TokenFilter, Option<i64>), String> {
    let mut filter = TokenFilter::default();
    if f.user.contains('\0') {
        return Err("User: no username has a NUL character.".into());
    }
    if !f.user.is_empty() {
        filter.usernames = vec![f.user.clone()];
    }
    filter.version = match f.version.as_str() {
        "" => None,
        "1" => Some(TokenVersion::V1),
        "2" => Some(TokenVersion::V2),
        _ => return Err("Version: choose 1 or 2.".into()),
    };
    filter.enabled = match f.enabled.as_str() {
        "" => None,
        "yes" => Some(true),
        "no" => Some(false),
        _ => return Err("Enabled: choose yes or no.".into()),
    };
    if !f.pepper.is_empty() {
        filter.pepper_id = Some(
            PepperId::parse(&f.pepper)
                .map_err(|_| "Pepper: enter a pepper id (a whole number).".to_owned())?,
        );
    }
    let unused = match f.unused_days.as_str() {
        "" => None,
        d => Some(
            d.parse::<i64>()
                .ok()
                .filter(|d| (0..=36_500).contains(d))
                .ok_or_else(|| "Unused for: enter a number of days.".to_owned())?,
        ),
    };
    Ok((filter, unused))
}
