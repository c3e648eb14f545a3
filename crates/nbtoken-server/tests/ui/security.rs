//! The UI's security over plain HTTP: CSRF, escaping, sign-out, headers, secrets, budgets.

use nbtoken_core::SecretString;
use nbtoken_manage::{Actor, NewAccount};
use reqwest::Method;
use serde_json::json;

use super::{client, csrf_of, post_signin, set_cookie, signin_form, Browser};
use crate::harness::{ops, peppers, Backend, Server, ADMIN_PASSWORD};

/// A non-superuser with a password.
pub async fn make_user(s: &Server, username: &str, password: &str) {
    let ring = peppers();
    let account = NewAccount {
        username: username.to_owned(),
        password: Some(SecretString::from(password)),
        ..Default::default()
    };
    ops(&s.store, &ring).create_user(&Actor::Operator, account).await.unwrap();
}

async fn token_count(s: &Server) -> i64 {
    let (status, v) = s.admin(Method::GET, "/api/users/tokens/", None).await;
    assert_eq!(status, 200);
    v["count"].as_i64().unwrap()
}

#[tokio::test]
async fn every_ui_response_carries_strict_security_headers() {
    let s = Server::start(Backend::Sqlite).await;
    let b = Browser::sign_in(&s, "admin", ADMIN_PASSWORD).await;
    let anonymous = client();
    for path in ["/", "/ui/", "/ui/signin", "/ui/assets/style.css", "/ui/nowhere"] {
        let r = anonymous.get(format!("{}{path}", s.base())).send().await.unwrap();
        check_headers(&r, path);
    }
    for path in ["/ui/tokens/", "/ui/tokens/new", "/ui/tokens/all", "/ui/users/", "/ui/migration/"] {
        let r = b.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        check_headers(&r, path);
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
        let html = r.text().await.unwrap();
        // No inline script or style anywhere: the CSP would block them.
        assert!(!html.contains("<script>") && !html.contains("style="), "{path}");
    }
    // `/` leads to the UI; the API is untouched.
    let root = anonymous.get(format!("{}/", s.base())).send().await.unwrap();
    assert_eq!(root.status(), 303);
    assert_eq!(root.headers()["location"], "/ui/");
    let api = anonymous.get(format!("{}/api/status/", s.base())).send().await.unwrap();
    assert!(api.headers().get("content-security-policy").is_none());
}

fn check_headers(r: &reqwest::Response, path: &str) {
    let h = r.headers();
    assert_eq!(
        h["content-security-policy"],
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        "{path}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
}

#[tokio::test]
async fn a_cross_site_post_without_the_csrf_token_or_with_a_wrong_one_is_refused() {
    let s = Server::start(Backend::Sqlite).await;
    let b = Browser::sign_in(&s, "admin", ADMIN_PASSWORD).await;
    let before = token_count(&s).await;
    let wrong = "0".repeat(64);
    for fields in [vec![("description", "forged")], vec![("csrf", wrong.as_str()), ("description", "forged")]]
    {
        let r = b.post("/ui/tokens/", &fields).await;
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("CSRF"));
    }
    for path in ["/ui/signout", "/ui/migration/finalize", "/ui/users/"] {
        assert_eq!(b.post(path, &[("username", "mallory")]).await.status(), 403, "{path}");
    }
    assert_eq!(token_count(&s).await, before, "no token was created");
    // The session still works, and with its token the same form does.
    let ok = b.post("/ui/tokens/", &[("csrf", b.csrf.as_str()), ("description", "mine")]).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(token_count(&s).await, before + 1);
    // Sign-in itself: without the cookie of the form's page, refused.
    let url = format!("{}/ui/signin", s.base());
    let token = csrf_of(&client().get(&url).send().await.unwrap().text().await.unwrap());
    let forged = post_signin(client().post(&url), None, &token, "admin", ADMIN_PASSWORD).await;
    assert_eq!(forged.status(), 403);
    assert!(set_cookie(forged.headers(), "nbtoken_session").is_none());
}

#[tokio::test]
async fn a_description_holding_a_script_renders_as_text() {
    let s = Server::start(Backend::Sqlite).await;
    let evil = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
    s.create_token(json!({ "description": evil })).await;
    let b = Browser::sign_in(&s, "admin", ADMIN_PASSWORD).await;
    for path in ["/ui/tokens/", "/ui/tokens/all"] {
        let html = b.get(path).await.text().await.unwrap();
        assert!(!html.contains("<script>alert") && !html.contains("<img src=x"), "{path}");
        assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "{path}: {html}");
    }
}

#[tokio::test]
async fn a_session_cookie_from_before_sign_out_no_longer_works() {
    let s = Server::start(Backend::Sqlite).await;
    let b = Browser::sign_in(&s, "admin", ADMIN_PASSWORD).await;
    let out = b.post("/ui/signout", &[("csrf", b.csrf.as_str())]).await;
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()["location"], "/ui/signin");
    let cleared = out.headers().get_all("set-cookie").iter().any(|v| {
        let v = v.to_str().unwrap();
        v.starts_with("nbtoken_session=;") && v.contains("Max-Age=0")
    });
    assert!(cleared, "the browser is told to forget the cookie");
    // Kept by hand (as a thief would), it opens nothing: not a page, not a form.
    let page = b.get("/ui/tokens/").await;
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/ui/signin");
    let post = b.post("/ui/tokens/", &[("csrf", b.csrf.as_str()), ("description", "x")]).await;
    assert_eq!(post.status(), 303);
}

#[tokio::test]
async fn session_cookies_are_http_only_strict_and_secure_behind_a_trusted_https_proxy() {
    let s =
        Server::start_with(Backend::Sqlite, |c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()])
            .await;
    for (proto, secure) in [("http", false), ("https", true)] {
        let c = client();
        let url = format!("{}/ui/signin", s.base());
        let (pre, token) = signin_form(c.get(&url).header("x-forwarded-proto", proto)).await;
        let post = c.post(&url).header("x-forwarded-proto", proto);
        let r = post_signin(post, Some(&pre), &token, "admin", ADMIN_PASSWORD).await;
        assert_eq!(r.status(), 303);
        let line = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with("nbtoken_session="))
            .unwrap();
        assert!(line.contains("HttpOnly") && line.contains("SameSite=Strict") && line.contains("Path=/ui"));
        assert_eq!(line.contains("Secure"), secure, "{proto}: {line}");
    }
}

#[tokio::test]
async fn a_new_token_is_shown_once_never_cached_and_never_in_a_url() {
    let s = Server::start(Backend::Sqlite).await;
    let b = Browser::sign_in(&s, "admin", ADMIN_PASSWORD).await;
    let r = b
        .post("/ui/tokens/", &[("csrf", b.csrf.as_str()), ("description", "ci"), ("write_enabled", "1")])
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers().get("location").is_none());
    let html = r.text().await.unwrap();
    assert!(html.contains("Save this token now. It cannot be retrieved later."));
    let at = html.find("Bearer nbt_").unwrap();
    let header = html[at..].split('<').next().unwrap().to_owned();
    let secret = header.split('.').nth(1).unwrap().to_owned();
    // The value works against the API.
    let (status, _) = s.raw(Method::GET, "/api/users/tokens/", Some(header.as_bytes()), None, &[]).await;
    assert_eq!(status, 200);
    // It appears in no link, form target or later page.
    assert!(!html.contains(&format!("href=\"{secret}")) && !html.contains(&format!("?{secret}")));
    let targets = html.split("href=\"").chain(html.split("action=\"")).skip(1);
    assert!(!targets.map(|h| h.split('"').next().unwrap()).any(|url| url.contains(&secret)));
    let list = b.get("/ui/tokens/").await.text().await.unwrap();
    assert!(!list.contains(&secret));
}

#[tokio::test]
async fn sign_in_failures_draw_from_the_api_failure_budget() {
    let s = Server::start_with(Backend::Sqlite, |c| c.limits.per_ip_per_minute = 3).await;
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let url = format!("{}/ui/signin", s.base());
        let (pre, token) = signin_form(c.get(&url)).await;
        let r = post_signin(c.post(&url), Some(&pre), &token, "admin", "wrong-password").await;
        statuses.push(r.status().as_u16());
        assert!(set_cookie(r.headers(), "nbtoken_session").is_none());
    }
    assert_eq!(statuses, [403, 403, 403, 429]);
    // The API's provisioning draws from the same budget: refused before the password is checked.
    let body = json!({ "username": "admin", "password": ADMIN_PASSWORD });
    let (status, _) = s.raw(Method::POST, "/api/users/tokens/provision/", None, Some(body), &[]).await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn superuser_pages_refuse_other_users() {
    let s = Server::start(Backend::Sqlite).await;
    make_user(&s, "alice", "Alice-password-123").await;
    let b = Browser::sign_in(&s, "alice", "Alice-password-123").await;
    assert_eq!(b.get("/ui/migration/").await.status(), 403);
    let made = b.post("/ui/users/", &[("csrf", b.csrf.as_str()), ("username", "mallory")]).await;
    assert_eq!(made.status(), 403);
    // Every token she sees is her own: the admin's do not appear.
    let all = b.get("/ui/tokens/all").await.text().await.unwrap();
    assert!(!all.contains(">admin<"));
    let (_, v) = s.admin(Method::GET, "/api/users/tokens/?user=admin", None).await;
    let admin_token = v["results"][0]["id"].as_i64().unwrap();
    let del = b.post(&format!("/ui/tokens/{admin_token}/delete"), &[("csrf", b.csrf.as_str())]).await;
    assert_eq!(del.status(), 404);
}

#[tokio::test]
async fn the_migration_page_charts_the_v1_uses_per_day_with_their_total() {
    use nbtoken_store::{DayUses, Store};
    let s = Server::start(Backend::Sqlite).await;
    let (_, list) = s.admin(Method::GET, "/api/users/tokens/?version=1", None).await;
    let v1 = list["results"][0]["id"].as_i64().unwrap();
    let today = time::OffsetDateTime::now_utc().date();
    let day = |back: i64| today - time::Duration::days(back);
    let uses = |back, uses| DayUses { token_id: v1, day: day(back), uses };
    // 40 days ago is outside the chart's 30 days and its total.
    s.store.add_v1_uses(&[uses(0, 5), uses(1, 3), uses(29, 2), uses(40, 100)]).await.unwrap();

    let b = Browser::sign_in(&s, "admin", ADMIN_PASSWORD).await;
    let html = b.get("/ui/migration/").await.text().await.unwrap();
    assert!(html.contains(r#"<div class="charts" id="v1-uses-per-day">"#), "{html}");
    assert!(html.contains(r#"aria-label="v1 uses per day, last 30 days""#));
    assert!(html.contains(r#"<span class="n">10</span> v1 uses in the last 30 days"#), "{html}");
    assert!(!html.contains("not a history of every use"));
    // One column per day, oldest first, each titled with its day and count.
    let chart = &html[html.find(r#"id="v1-uses-per-day""#).unwrap()..];
    let chart = &chart[..chart.find("</svg>").unwrap()];
    assert_eq!(chart.matches("<rect").count(), 30);
    for (back, n) in [(0, 5), (1, 3), (2, 0), (29, 2)] {
        assert!(chart.contains(&format!("<title>{}: {n}</title>", day(back))), "day -{back}: {chart}");
    }
    let at = |back| chart.find(&format!("<title>{}:", day(back))).unwrap();
    assert!(at(29) < at(0), "oldest first");
    assert!(!chart.contains(&day(30).to_string()));
}
