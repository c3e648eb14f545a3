//! The UI's flows in a real browser: Debian's headless Chromium, driven through
//! chromedriver (WebDriver) on a free loopback port. Each page is saved as a screenshot
//! under `target/ui-screenshots/`. Without `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! the tests say they are skipped (and fail under CI, where `./test.sh` installs both).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::json;

use super::security::make_user;
use crate::harness::{Backend, Server, ADMIN_PASSWORD, V1_PLAIN};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The chromedriver of this test binary, shared by the browser tests running at once and
/// stopped when the last of them ends.
static DRIVER: Mutex<(usize, Option<(Child, u16)>)> = Mutex::new((0, None));

/// One test's hold on chromedriver.
struct Driver {
    port: u16,
}

impl Driver {
    /// Starts chromedriver if no test holds it; `None` (after a visible skip) without Chromium.
    fn start(not_run: &str) -> Option<Driver> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            nbtoken_testkit::skip("chromium and chromium-driver are not installed", not_run);
            return None;
        }
        let mut d = DRIVER.lock().unwrap_or_else(|p| p.into_inner());
        if d.1.is_none() {
            let port = nbtoken_testkit::free_port();
            let child = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts");
            wait_for_port(port);
            d.1 = Some((child, port));
        }
        d.0 += 1;
        Some(Driver { port: d.1.as_ref().map(|(_, p)| *p).unwrap_or_default() })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let mut d = DRIVER.lock().unwrap_or_else(|p| p.into_inner());
        d.0 -= 1;
        if d.0 == 0 {
            if let Some((mut child, _)) = d.1.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn wait_for_port(port: u16) {
    let until = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "chromedriver did not listen on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A headless Chromium session (its own profile: no cookies shared between tests), with
/// JavaScript on or off.
async fn browser(driver: &Driver, javascript: bool) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--no-first-run", "--disable-extensions"],
            "prefs": { "profile.managed_default_content_settings.javascript": if javascript { 1 } else { 2 } }
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

/// Runs `flow` in a browser session that is closed whatever happens: a failed assertion
/// still ends Chromium, then fails the test.
async fn in_browser<F>(driver: &Driver, javascript: bool, flow: impl FnOnce(Client) -> F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let c = browser(driver, javascript).await;
    let outcome = tokio::spawn(flow(c.clone())).await;
    let _ = c.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("..").join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// The text of the first element `css` selects, waiting for it to appear.
async fn text(c: &Client, css: &str) -> String {
    c.wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
}

async fn path(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_owned()
}

/// Signs in with the keyboard only: the username field has the focus, Tab, Enter.
async fn sign_in(c: &Client, base: &str, username: &str, password: &str) {
    c.goto(&format!("{base}/ui/signin")).await.unwrap();
    let field = c.find(Locator::Id("username")).await.unwrap();
    field.send_keys(&format!("{username}\u{E004}{password}\u{E007}")).await.unwrap();
    c.wait().for_url(&format!("{base}/ui/tokens/").parse().unwrap()).await.unwrap();
}

/// `GET /api/users/tokens/` with this `Authorization` value.
async fn api_status(s: &Server, authorization: &str) -> u16 {
    s.raw(Method::GET, "/api/users/tokens/", Some(authorization.as_bytes()), None, &[]).await.0
}

#[tokio::test]
async fn a_user_creates_uses_rotates_and_deletes_a_token_then_signs_out() {
    let Some(driver) = Driver::start("the browser flows of the web UI") else { return };
    let s = Server::start(Backend::Sqlite).await;
    make_user(&s, "alice", "Alice-password-123").await;
    in_browser(&driver, true, move |c| async move { user_flow(c, s).await }).await;
}

async fn user_flow(c: Client, s: Server) {
    let base = s.base();

    c.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(path(&c).await, "/ui/signin");
    shot(&c, "signin").await;
    sign_in(&c, &base, "alice", "Alice-password-123").await;
    shot(&c, "tokens-empty").await;

    // Add a token.
    click(&c, "a[href='/ui/tokens/new']").await;
    shot(&c, "token-new").await;
    c.find(Locator::Id("description")).await.unwrap().send_keys("deploy <b>bot</b>").await.unwrap();
    c.find(Locator::Id("allowed_ips")).await.unwrap().send_keys("127.0.0.0/8").await.unwrap();
    click(&c, "form[action='/ui/tokens/'] button[type=submit]").await;
    let header = text(&c, "#new-token-auth-string").await;
    assert!(header.starts_with("Bearer nbt_"), "{header}");
    assert!(!c.current_url().await.unwrap().as_str().contains(&header[7..]), "never in the URL");
    // The copy button is there once the script runs.
    assert!(c.find(Locator::Css("button.copy")).await.unwrap().is_displayed().await.unwrap());
    shot(&c, "token-created").await;
    assert_eq!(api_status(&s, &header).await, 200);

    // The table: the description as text, the token's key.
    c.goto(&format!("{base}/ui/tokens/")).await.unwrap();
    assert_eq!(text(&c, "td.description").await, "deploy <b>bot</b>");
    let row = c.find(Locator::Css("tbody tr")).await.unwrap();
    let row_id = row.attr("id").await.unwrap().unwrap();
    shot(&c, "tokens").await;

    // Rotate with an overlap of an hour: both secrets work.
    click(&c, &format!("#{row_id} form[action$='/rotate'] button")).await;
    let rotated = text(&c, "#new-token-auth-string").await;
    assert_ne!(rotated, header);
    shot(&c, "token-rotated").await;
    assert_eq!(api_status(&s, &rotated).await, 200);
    assert_eq!(api_status(&s, &header).await, 200, "the old secret works during the overlap");

    // Disable, enable.
    c.goto(&format!("{base}/ui/tokens/")).await.unwrap();
    click(&c, &format!("#{row_id} form[action$='/disable'] button")).await;
    c.wait().for_element(Locator::Css(&format!("#{row_id} form[action$='/enable']"))).await.unwrap();
    assert_eq!(api_status(&s, &rotated).await, 403);
    click(&c, &format!("#{row_id} form[action$='/enable'] button")).await;
    c.wait().for_element(Locator::Css(&format!("#{row_id} form[action$='/disable']"))).await.unwrap();
    assert_eq!(api_status(&s, &rotated).await, 200);

    // At 400 px wide, the table becomes cards that still read.
    c.set_window_size(400, 1000).await.unwrap();
    c.goto(&format!("{base}/ui/tokens/")).await.unwrap();
    shot(&c, "tokens-400px").await;
    c.set_window_size(1280, 1000).await.unwrap();

    // Delete, after the confirmation page.
    click(&c, &format!("#{row_id} a.danger")).await;
    shot(&c, "token-delete").await;
    click(&c, "form[action$='/delete'] button.danger").await;
    c.wait().for_url(&format!("{base}/ui/tokens/").parse().unwrap()).await.unwrap();
    assert!(c.find(Locator::Id(&row_id)).await.is_err());
    assert_eq!(api_status(&s, &rotated).await, 403);

    // Sign out: back to the sign-in page, and the pages are closed.
    click(&c, "form.signout button").await;
    c.wait().for_url(&format!("{base}/ui/signin").parse().unwrap()).await.unwrap();
    c.goto(&format!("{base}/ui/tokens/")).await.unwrap();
    assert_eq!(path(&c).await, "/ui/signin");
}

#[tokio::test]
async fn a_superuser_replaces_a_v1_token_from_the_migration_page_and_finalizes() {
    let Some(driver) = Driver::start("the browser flows of the web UI") else { return };
    let s = Server::start(Backend::Sqlite).await;
    // The v1 token is in use, from loopback.
    assert_eq!(api_status(&s, &format!("Token {V1_PLAIN}")).await, 200);
    in_browser(&driver, true, move |c| async move { migration_flow(c, s).await }).await;
}

async fn migration_flow(c: Client, s: Server) {
    let base = s.base();
    // Tall enough for the whole Migration page, finalize preview included, in one screenshot.
    c.set_window_size(1280, 1700).await.unwrap();
    sign_in(&c, &base, "admin", ADMIN_PASSWORD).await;
    // The v1 token on the own-tokens page: NetBox's deprecation banner and the replace action.
    assert!(text(&c, ".alert-warning").await.contains("v1 API Tokens Are Deprecated"));
    shot(&c, "tokens-v1").await;

    c.goto(&format!("{base}/ui/migration/")).await.unwrap();
    let row = c.find(Locator::Css("table.v1 tbody tr")).await.unwrap();
    let row_id = row.attr("id").await.unwrap().unwrap();
    let shown = text(&c, &format!("#{row_id}")).await;
    assert!(shown.contains(&V1_PLAIN[V1_PLAIN.len() - 4..]) && !shown.contains(V1_PLAIN), "{shown}");
    assert!(shown.contains("127.0.0.1"), "where it was used from: {shown}");
    assert!(c.find(Locator::Css("figure.chart svg rect")).await.is_ok());
    shot(&c, "migration").await;

    // Replace it; use the replacement.
    click(&c, &format!("#{row_id} form[action$='/replace'] button")).await;
    let replacement = text(&c, "#new-token-auth-string").await;
    assert!(replacement.starts_with("Bearer nbt_"));
    shot(&c, "migration-replaced").await;
    assert_eq!(api_status(&s, &replacement).await, 200);

    // Once its use is recorded (written in batches), finalize offers to disable the v1 token.
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        c.goto(&format!("{base}/ui/migration/")).await.unwrap();
        if text(&c, "#finalize-preview").await.contains("will disable 1 v1 token") {
            break;
        }
        assert!(Instant::now() < until, "the replacement's use never showed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    shot(&c, "migration-ready").await;
    click(&c, "form[action='/ui/migration/finalize'] button").await;
    assert!(text(&c, "table tr[id^=done-]").await.contains("disabled"));
    shot(&c, "migration-finalized").await;
    assert_eq!(api_status(&s, &format!("Token {V1_PLAIN}")).await, 403);
    assert_eq!(api_status(&s, &replacement).await, 200);

    // The other superuser pages render.
    s.create_token(json!({ "description": "second" })).await;
    c.goto(&format!("{base}/ui/tokens/all?version=2")).await.unwrap();
    assert!(text(&c, "table.tokens").await.contains("second"));
    shot(&c, "tokens-all").await;
    c.goto(&format!("{base}/ui/users/")).await.unwrap();
    c.find(Locator::Id("new-username")).await.unwrap().send_keys("bob").await.unwrap();
    c.find(Locator::Id("new-password")).await.unwrap().send_keys("Bob-password-123").await.unwrap();
    click(&c, "form[action='/ui/users/'] button").await;
    assert!(text(&c, ".alert-success").await.contains("bob"));
    assert!(text(&c, "table.users").await.contains("bob"));
    shot(&c, "users").await;
}

#[tokio::test]
async fn every_core_flow_works_with_javascript_off() {
    let Some(driver) = Driver::start("the browser flows of the web UI") else { return };
    let s = Server::start(Backend::Sqlite).await;
    in_browser(&driver, false, move |c| async move { no_script_flow(c, s).await }).await;
}

async fn no_script_flow(c: Client, s: Server) {
    let base = s.base();
    sign_in(&c, &base, "admin", ADMIN_PASSWORD).await;
    c.goto(&format!("{base}/ui/tokens/new")).await.unwrap();
    c.find(Locator::Id("description")).await.unwrap().send_keys("no script").await.unwrap();
    click(&c, "form[action='/ui/tokens/'] button[type=submit]").await;
    let header = text(&c, "#new-token-auth-string").await;
    // The value is there to select by hand; the copy button, which needs the script, is not.
    assert!(!c.find(Locator::Css("button.copy")).await.unwrap().is_displayed().await.unwrap());
    shot(&c, "token-created-no-script").await;
    assert_eq!(api_status(&s, &header).await, 200);
    c.goto(&format!("{base}/ui/tokens/")).await.unwrap();
    let row = c.find(Locator::Css("tbody tr:last-child")).await.unwrap().attr("id").await.unwrap().unwrap();
    click(&c, &format!("#{row} form[action$='/rotate'] button")).await;
    let rotated = text(&c, "#new-token-auth-string").await;
    assert_eq!(api_status(&s, &rotated).await, 200);
    c.goto(&format!("{base}/ui/tokens/")).await.unwrap();
    click(&c, &format!("#{row} a.danger")).await;
    click(&c, "form[action$='/delete'] button.danger").await;
    c.wait().for_url(&format!("{base}/ui/tokens/").parse().unwrap()).await.unwrap();
    assert_eq!(api_status(&s, &rotated).await, 403);
    c.goto(&format!("{base}/ui/migration/")).await.unwrap();
    assert!(text(&c, "h1").await.contains("Migration"));
    click(&c, "form.signout button").await;
    c.wait().for_url(&format!("{base}/ui/signin").parse().unwrap()).await.unwrap();
}
