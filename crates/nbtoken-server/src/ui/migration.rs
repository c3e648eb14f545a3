//! The Migration page: where the move from v1 to v2 tokens stands, the replacements, two
//! charts drawn here as SVG, and finalize with a preview of what it will change.
//!
//! Two views of v1 use: the v1 uses per UTC day of the last 30 days (every successful v1
//! authentication, counted by the server and kept by the store for about 400 days), and the
//! v1 tokens by when they were last used. Pairing and the finalize decisions are core's
//! (`nbtoken_core::migrate`); reading and finalizing are the operations' (superusers only).

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use nbtoken_core::migrate::{
    apply_decision, finalize_acts, finalize_decision, Apply, Finalize, PlanItem, TokenInfo,
};
use nbtoken_manage::migrate::{self, FinalizeAction, Plan};
use nbtoken_store::{DayUses, Store};
use time::{Duration, OffsetDateTime};

use super::{checked_form, render, when, Failure, Layout, Signed};
use crate::AppState;

/// One bar of a chart, laid out.
pub struct Bar {
    pub label: String,
    pub value: u64,
    pub y: u32,
    pub width: u32,
    pub label_y: u32,
    pub value_x: u32,
}

/// A horizontal bar chart, laid out for the template's SVG.
pub struct Chart {
    pub title: String,
    pub bars: Vec<Bar>,
    pub height: u32,
}

const BAR_H: u32 = 22;
const GAP: u32 = 8;
const LABEL_W: u32 = 110;
const BAR_MAX: u32 = 230;

impl Chart {
    fn new(title: &str, data: Vec<(String, u64)>) -> Self {
        let max = data.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
        let bars = data
            .into_iter()
            .enumerate()
            .map(|(i, (label, value))| {
                let y = u32::try_from(i).unwrap_or(0) * (BAR_H + GAP);
                // Proportional, and a sliver for a zero so the row still reads as a bar.
                let width =
                    u32::try_from(value.saturating_mul(u64::from(BAR_MAX)) / max).unwrap_or(BAR_MAX).max(1);
                Bar { label, value, y, width, label_y: y + 15, value_x: LABEL_W + width + 6 }
            })
            .collect::<Vec<_>>();
        let n = u32::try_from(bars.len()).unwrap_or(0);
        Chart { title: title.to_owned(), bars, height: (n * (BAR_H + GAP)).max(BAR_H) }
    }
}

/// One column of a [`Columns`] chart, laid out.
pub struct Column {
    pub label: String,
    pub value: u64,
    pub x: u32,
    pub y: u32,
    pub height: u32,
}

/// A date under a [`Columns`] chart.
pub struct Tick {
    pub text: String,
    pub x: u32,
    pub anchor: &'static str,
}

/// A vertical bar chart of a series (one column per day), laid out for `columns.html`'s SVG:
/// 30 horizontal [`Chart`] rows would be far too tall.
pub struct Columns {
    pub title: String,
    pub max: u64,
    pub bars: Vec<Column>,
    pub ticks: Vec<Tick>,
}

const COL_LEFT: u32 = 42;
const COL_SLOT: u32 = 25;
const COL_BASE: u32 = 150;
const COL_MAX: u32 = 130;

impl Columns {
    /// `data` left to right, labelled under the first, middle and last column by `tick`.
    fn new(title: &str, data: Vec<(String, u64)>, tick: impl Fn(&str) -> String) -> Self {
        let max = data.iter().map(|(_, v)| *v).max().unwrap_or(0);
        let bars: Vec<Column> = data
            .into_iter()
            .enumerate()
            .map(|(i, (label, value))| {
                let x = COL_LEFT + u32::try_from(i).unwrap_or(0) * COL_SLOT;
                // Proportional, and a sliver for a zero so every day reads as a column.
                let height = u32::try_from(value.saturating_mul(u64::from(COL_MAX)) / max.max(1))
                    .unwrap_or(COL_MAX)
                    .max(1);
                Column { label, value, x, y: COL_BASE - height, height }
            })
            .collect();
        let mut ticks = Vec::new();
        if let (Some(first), Some(last)) = (bars.first(), bars.last()) {
            ticks.push(Tick { text: tick(&first.label), x: first.x, anchor: "start" });
            let mid = &bars[bars.len() / 2];
            if bars.len() > 2 {
                ticks.push(Tick { text: tick(&mid.label), x: mid.x + 9, anchor: "middle" });
            }
            if bars.len() > 1 {
                ticks.push(Tick { text: tick(&last.label), x: last.x + 19, anchor: "end" });
            }
        }
        Columns { title: title.to_owned(), max, bars, ticks }
    }
}

/// One v1 token as the page lists it.
pub struct V1Row {
    pub id: i64,
    pub user: String,
    pub key: String,
    pub enabled: bool,
    pub last_used: String,
    pub from: String,
    pub replacement: String,
    pub replacement_used: String,
    pub state: String,
    pub can_replace: bool,
}

#[derive(Template)]
#[template(path = "migration.html")]
struct MigrationPage {
    l: Layout,
    v1_total: usize,
    v1_enabled: usize,
    used_24h: usize,
    used_7d: usize,
    used_30d: usize,
    sources: Vec<(String, usize)>,
    replaced: usize,
    replacements_used: usize,
    rows: Vec<V1Row>,
    will_disable: Vec<V1Row>,
    waiting: usize,
    unreplaced: usize,
    peppers: Chart,
    ages: Chart,
    /// v1 uses per day, or `None` when the store could not say.
    daily: Option<Columns>,
    /// The v1 uses of the last [`DAILY_DAYS`] days, in all.
    daily_total: u64,
}

/// Days the per-day chart shows, today included.
const DAILY_DAYS: u32 = 30;

/// `GET /ui/migration/`.
pub async fn page(State(state): State<Arc<AppState>>, signed: Signed) -> Response {
    let ops = state.ops();
    let target = match ops.migration_target(&signed.actor) {
        Ok(t) => t,
        Err(e) => return Failure::from(e).page(Some(&signed)),
    };
    let tokens = match migrate::read(&target, &mut ()).await {
        Ok((_, tokens)) => tokens,
        Err(e) => {
            return Failure::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                .page(Some(&signed))
        }
    };
    // Counts of this server's store (the authentications it saw), whichever target finalizes.
    let daily = match state.store.v1_uses_per_day(DAILY_DAYS, None).await {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the v1 uses per day");
            None
        }
    };
    let now = OffsetDateTime::now_utc();
    let items = nbtoken_core::migrate::plan(&tokens);
    render(&build(Layout::of(&signed, "migration"), &tokens, &items, daily.as_deref(), now))
}

/// One column per day of the last [`DAILY_DAYS`] (oldest first, days without a use at zero),
/// and the uses in all.
fn daily_chart(daily: &[DayUses], now: OffsetDateTime) -> (Columns, u64) {
    let today = now.date();
    let bars: Vec<(String, u64)> = (0..i64::from(DAILY_DAYS))
        .rev()
        .map(|back| {
            let day = today - Duration::days(back);
            let uses = daily.iter().filter(|d| d.day == day).map(|d| d.uses).sum();
            (day.to_string(), uses)
        })
        .collect();
    let total = bars.iter().map(|(_, n)| n).sum();
    // Under the columns, `MM-DD` of the `YYYY-MM-DD` labels (each column's title has the whole date).
    let tick = |label: &str| label.get(5..).unwrap_or(label).to_owned();
    (Columns::new(&format!("v1 uses per day, last {DAILY_DAYS} days"), bars, tick), total)
}

fn used_within(t: &TokenInfo, now: OffsetDateTime, d: Duration) -> bool {
    t.last_used.is_some_and(|u| now - u <= d)
}

fn row(i: &PlanItem, now: OffsetDateTime) -> V1Row {
    let apply = apply_decision(i, now);
    let state = match (apply, finalize_decision(i)) {
        (_, Finalize::AlreadyRevoked) => "disabled".to_owned(),
        (_, Finalize::Revoke) => "replacement in use: ready to finalize".to_owned(),
        (_, Finalize::Waiting) => "waiting for the replacement's first use".to_owned(),
        (Apply::Create, _) => "no replacement yet".to_owned(),
        (other, _) => other.reason().unwrap_or("").to_owned(),
    };
    V1Row {
        id: i.v1.id,
        user: i.v1.username.clone(),
        key: i.v1.display.clone(),
        enabled: i.v1.enabled,
        last_used: when(i.v1.last_used, "never"),
        from: i.v1.last_used_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        replacement: i.replacement.as_ref().map(|r| r.display.clone()).unwrap_or_default(),
        replacement_used: i.replacement.as_ref().map(|r| when(r.last_used, "never")).unwrap_or_default(),
        state,
        can_replace: apply == Apply::Create,
    }
}

fn build(
    l: Layout,
    tokens: &[TokenInfo],
    items: &[PlanItem],
    daily: Option<&[DayUses]>,
    now: OffsetDateTime,
) -> MigrationPage {
    let (daily, daily_total) = match daily.map(|d| daily_chart(d, now)) {
        Some((chart, total)) => (Some(chart), total),
        None => (None, 0),
    };
    let v1: Vec<&TokenInfo> = items.iter().map(|i| &i.v1).collect();
    let within = |d| v1.iter().filter(|t| used_within(t, now, d)).count();
    let mut sources: BTreeMap<String, usize> = BTreeMap::new();
    for t in v1.iter().filter(|t| used_within(t, now, Duration::days(30))) {
        if let Some(ip) = t.last_used_ip {
            *sources.entry(ip.to_string()).or_default() += 1;
        }
    }
    let mut sources: Vec<(String, usize)> = sources.into_iter().collect();
    sources.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sources.truncate(20);
    let audit = nbtoken_core::audit::audit(tokens, now, Duration::days(90));
    let mut per_pepper: Vec<(String, u64)> =
        audit.per_pepper.iter().map(|(p, n)| (format!("pepper {p}"), *n)).collect();
    per_pepper.push(("v1 (none)".to_owned(), v1.len() as u64));
    let age = |lo: Option<i64>, hi: Option<i64>| {
        v1.iter()
            .filter(|t| match t.last_used {
                None => lo.is_none() && hi.is_none(),
                Some(u) => {
                    let days = (now - u).whole_hours();
                    lo.is_some_and(|lo| days >= lo * 24) && hi.is_none_or(|hi| days < hi * 24)
                }
            })
            .count() as u64
    };
    let ages = vec![
        ("under 1 day".to_owned(), age(Some(0), Some(1))),
        ("1-7 days".to_owned(), age(Some(1), Some(7))),
        ("7-30 days".to_owned(), age(Some(7), Some(30))),
        ("over 30 days".to_owned(), age(Some(30), None)),
        ("never used".to_owned(), age(None, None)),
    ];
    let will_disable = items.iter().filter(|i| finalize_acts(i, false)).map(|i| row(i, now)).collect();
    MigrationPage {
        l,
        v1_total: v1.len(),
        v1_enabled: v1.iter().filter(|t| t.enabled).count(),
        used_24h: within(Duration::days(1)),
        used_7d: within(Duration::days(7)),
        used_30d: within(Duration::days(30)),
        sources,
        replaced: items.iter().filter(|i| i.replacement.is_some()).count(),
        replacements_used: items.iter().filter(|i| i.replacement_used()).count(),
        rows: items.iter().map(|i| row(i, now)).collect(),
        will_disable,
        waiting: items.iter().filter(|i| finalize_decision(i) == Finalize::Waiting).count(),
        unreplaced: items.iter().filter(|i| finalize_decision(i) == Finalize::NoReplacement).count(),
        peppers: Chart::new("Tokens per pepper", per_pepper),
        ages: Chart::new("v1 tokens by last use", ages),
        daily,
        daily_total,
    }
}

/// One line of the finalize result.
pub struct Done {
    pub id: i64,
    pub user: String,
    pub key: String,
    pub action: String,
}

#[derive(Template)]
#[template(path = "finalized.html")]
struct FinalizedPage {
    l: Layout,
    done: Vec<Done>,
    failed: usize,
}

/// `POST /ui/migration/finalize`: disables every v1 token whose replacement has been used.
pub async fn finalize(State(state): State<Arc<AppState>>, signed: Signed, body: Bytes) -> Response {
    if let Err(e) = checked_form(&signed, &body) {
        return e.page(Some(&signed));
    }
    let ops = state.ops();
    let target = match ops.migration_target(&signed.actor) {
        Ok(t) => t,
        Err(e) => return Failure::from(e).page(Some(&signed)),
    };
    let plan = match Plan::read(&target, &mut ()).await {
        Ok(p) => p,
        Err(e) => {
            return Failure::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                .page(Some(&signed))
        }
    };
    let report = migrate::finalize(&target, &plan, false, &mut ()).await;
    let done = report
        .entries
        .iter()
        .map(|e| Done {
            id: e.v1.id,
            user: e.v1.username.clone(),
            key: e.v1.display.clone(),
            action: match &e.action {
                FinalizeAction::Deleted => "deleted".to_owned(),
                FinalizeAction::Disabled => "disabled".to_owned(),
                FinalizeAction::AlreadyDisabled => "already disabled".to_owned(),
                FinalizeAction::Waiting => "kept: its replacement has not been used yet".to_owned(),
                FinalizeAction::NoReplacement => "kept: no replacement yet".to_owned(),
                FinalizeAction::Failed(why) => format!("failed: {why}"),
                _ => "unchanged".to_owned(),
            },
        })
        .collect();
    tracing::info!(user_id = signed.user.id, failed = report.failed, "migration finalized from the UI");
    render(&FinalizedPage { l: Layout::of(&signed, "migration"), done, failed: report.failed })
}
