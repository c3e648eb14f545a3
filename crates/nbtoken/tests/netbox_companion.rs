//! `nbtoken serve` on NetBox's own database (`NBTOKEN_STORE=netbox`), checked against the real NetBox 4.7.3.
//!
//! Every test runs a real `nbtoken serve` on the database of a NetBox of this module's own
//! (`netbox_named("companion")`; the pepper test has another one, since it re-hashes every
//! token it touches) and compares what it decides with what NetBox decides for the same
//! tokens: authentication, write permission, `last_used` (which requests write it, once a
//! minute, none in maintenance mode), how fast a revocation in NetBox reaches nbtoken (printed,
//! so the figures can be quoted), pepper rotation, and the database-direct
//! `migrate plan`/`audit`/`doctor` against their `--url` twins. Where nbtoken differs from
//! NetBox on purpose or not yet, the test names the case and fails once the difference is gone.
//!
//! The tests take one lock: they count rows and time revocations on a shared NetBox.

#![allow(clippy::unwrap_used, missing_docs)]

use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common;
use common::netbox::{netbox_named, NetBox, PEPPER, PEPPER_ID};

/// A second pepper for the rotation test (NetBox wants at least 50 characters).
const PEPPER_2: &str = "companion-second-pepper-9876543210-9876543210-9876543210";

/// One test at a time: row counts and revocation timings must not see another test's traffic.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running `nbtoken serve` on a NetBox database, stopped when dropped.
struct Companion {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Companion {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment of an nbtoken on NetBox's database with these peppers; failure budgets
/// off (the tests send many refused tokens on purpose) and v1 allowed, as NetBox does.
fn companion_env(nb: &NetBox, peppers: &[(u16, &str)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("NBTOKEN_STORE".to_owned(), "netbox".to_owned()),
        ("NBTOKEN_DATABASE_URL".to_owned(), nb.db_url.clone()),
        ("NBTOKEN_FAILURE_LIMIT_PER_IP".to_owned(), "0".to_owned()),
        ("NBTOKEN_FAILURE_LIMIT_PER_KEY".to_owned(), "0".to_owned()),
        ("NBTOKEN_V1".to_owned(), "allow".to_owned()),
    ];
    for (id, p) in peppers {
        env.push((format!("NBTOKEN_PEPPER_{id}"), (*p).to_owned()));
    }
    for (k, v) in extra {
        env.push(((*k).to_owned(), (*v).to_owned()));
    }
    env
}

fn nbtoken_cmd(dir: &std::path::Path, env: &[(String, String)]) -> Command {
    let mut cmd = common::nbtoken(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn serve(nb: &NetBox, peppers: &[(u16, &str)], extra: &[(&str, &str)]) -> Companion {
    let dir = tempfile::tempdir().unwrap();
    let env = companion_env(nb, peppers, extra);
    let (child, base) = common::start_serve(&mut nbtoken_cmd(dir.path(), &env));
    Companion { child, base, _dir: dir }
}

/// Runs an nbtoken command on NetBox's database: `(success, stdout, stderr)`.
fn run(
    nb: &NetBox,
    peppers: &[(u16, &str)],
    extra: &[(&str, &str)],
    args: &[&str],
) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let env = companion_env(nb, peppers, extra);
    common::run(nbtoken_cmd(dir.path(), &env).args(args), None)
}

/// A request to nbtoken: `(status, JSON body or Null, response headers lower-cased)`.
fn call(base: &str, method: &str, path: &str, token: Option<&str>, extra: &[&str]) -> (u16, Value, String) {
    let body_file = tempfile::NamedTempFile::new().unwrap();
    let mut args: Vec<String> =
        vec!["-s".into(), "-D".into(), "-".into(), "-o".into(), body_file.path().display().to_string()];
    args.extend(["-X".into(), method.into()]);
    if let Some(t) = token {
        let kw = if t.starts_with("nbt_") { "Bearer" } else { "Token" };
        args.extend(["-H".into(), format!("Authorization: {kw} {t}")]);
    }
    for h in extra {
        args.extend(["-H".into(), (*h).to_owned()]);
    }
    if method != "GET" && method != "DELETE" {
        args.extend([
            "-H".into(),
            "Content-Type: application/json".into(),
            "--data-binary".into(),
            "{}".into(),
        ]);
    }
    args.push(format!("{base}{path}"));
    let out = Command::new("curl").args(&args).output().unwrap();
    let headers = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let status = headers.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = std::fs::read_to_string(body_file.path()).unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null), headers)
}

fn header(headers: &str, name: &str) -> Option<String> {
    headers.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_owned()))
}

/// NetBox's tables as rows of JSON, without the columns uses move (`last_used`, `last_login`).
fn snapshot(nb: &NetBox) -> String {
    nb.sql(
        "SELECT (SELECT coalesce(string_agg((to_jsonb(t) - 'last_used')::text, E'\\n' ORDER BY id), '') \
         FROM users_token t) || E'\\n--\\n' || (SELECT coalesce(string_agg((to_jsonb(u) - 'last_login')::text, \
         E'\\n' ORDER BY id), '') FROM users_user u)",
    )
}

/// How NetBox decides for one token: authentication-check status and user, and whether a
/// write passes authentication (a superuser's invalid POST is a 400; a refused one a 403).
fn netbox_decision(nb: &NetBox, token: &str) -> (u16, Option<i64>, bool, Value) {
    let (status, me) = nb.api("GET", "/api/authentication-check/", Some(token), None);
    let (write, body) = nb.api("POST", "/api/dcim/sites/", Some(token), Some(&json!({})));
    assert!(matches!(write, 400 | 403), "NetBox POST /api/dcim/sites/: {write} {body}");
    (status, me["id"].as_i64(), write == 400, me)
}

#[test]
fn netbox_tokens_get_netboxs_decisions_from_nbtoken() {
    let Some(nb) = netbox_named("companion") else { return };
    let _serial = serial();
    let active = nb.create_user("c-dec-active", true);
    let inactive = nb.create_user("c-dec-inactive", true);
    let mut cases: Vec<(&str, String)> = Vec::new();
    let add = |name: &'static str, user: i64, version: u8, fields: Value| {
        let t = nb.create_token(user, version, fields);
        (name, t)
    };
    let made = vec![
        add("v2", active, 2, json!({})),
        add("v1", active, 1, json!({})),
        add("v2 expired", active, 2, json!({})),
        add("v1 expired", active, 1, json!({})),
        add("v2 disabled", active, 2, json!({})),
        add("v1 disabled", active, 1, json!({})),
        add("v2 read-only", active, 2, json!({"write_enabled": false})),
        add("v1 read-only", active, 1, json!({"write_enabled": false})),
        add("v2 allowed 127.0.0.0/8", active, 2, json!({"allowed_ips": ["127.0.0.0/8"]})),
        add("v2 allowed 10.0.0.0/8", active, 2, json!({"allowed_ips": ["10.0.0.0/8"]})),
        add("v1 allowed 10.0.0.0/8", active, 1, json!({"allowed_ips": ["10.0.0.0/8"]})),
        add("v2 future expiry", active, 2, json!({"expires": "2099-01-01T00:00:00Z"})),
        add("v2 inactive user", inactive, 2, json!({})),
        add("v1 inactive user", inactive, 1, json!({})),
    ];
    for (name, t) in &made {
        if name.contains("expired") {
            nb.sql(&format!(
                "UPDATE users_token SET expires = now() - interval '1 hour' WHERE id = {}",
                t.id
            ));
        }
        if name.contains("disabled") {
            let (s, b) = nb.api(
                "PATCH",
                &format!("/api/users/tokens/{}/", t.id),
                Some(&nb.admin_token),
                Some(&json!({"enabled": false})),
            );
            assert_eq!(s, 200, "{b}");
        }
        cases.push((name, t.value.clone()));
    }
    let (s, b) = nb.api(
        "PATCH",
        &format!("/api/users/users/{inactive}/"),
        Some(&nb.admin_token),
        Some(&json!({"is_active": false})),
    );
    assert_eq!(s, 200, "{b}");
    let v2 = &made[0].1.value;
    let (key, _) = v2.trim_start_matches("nbt_").split_once('.').unwrap();
    cases.push(("v2 wrong secret", format!("nbt_{key}.{}", "x".repeat(40))));
    cases.push(("v2 unknown key", format!("nbt_{}.{}", "k".repeat(12), "x".repeat(40))));
    cases.push(("v1 unknown", "0123456789abcdef0123456789abcdef01234567".to_owned()));
    cases.push(("admin v2", nb.admin_token.clone()));

    let ours = serve(nb, &[(PEPPER_ID, PEPPER)], &[]);
    let mut differences = Vec::new();
    for (name, token) in &cases {
        let (nb_status, nb_user, nb_write, nb_me) = netbox_decision(nb, token);
        let (st, me, _) = call(&ours.base, "GET", "/api/authentication-check/", Some(token), &[]);
        let (fg, _, fg_headers) = call(&ours.base, "GET", "/auth/forward", Some(token), &[]);
        let (fp, _, fp_headers) = call(&ours.base, "POST", "/auth/forward", Some(token), &[]);
        let fg_user = header(&fg_headers, "x-nbtoken-user-id").and_then(|v| v.parse::<i64>().ok());
        let fp_user = header(&fp_headers, "x-nbtoken-user-id").and_then(|v| v.parse::<i64>().ok());
        eprintln!(
            "{name:<24} NetBox {nb_status} user {nb_user:?} write {nb_write} | nbtoken check {st} user {:?} \
             forward GET {fg} user {fg_user:?} POST {fp}",
            me["id"].as_i64()
        );
        if (st, me["id"].as_i64(), &me["username"]) != (nb_status, nb_user, &nb_me["username"]) {
            differences
                .push(format!("{name}: authentication-check {st} {me} vs NetBox {nb_status} {nb_user:?}"));
        }
        // Forward-auth is not NetBox's endpoint: it refuses with 401 (no valid token, RFC 6750's
        // challenge for the proxy) or 403 (a valid token that may not do this), and lets through
        // exactly whom NetBox lets through.
        let refused = |s: u16| s == 401 || s == 403;
        let forward_get_same = if nb_status == 200 { (fg, fg_user) == (200, nb_user) } else { refused(fg) };
        if !forward_get_same {
            differences.push(format!(
                "{name}: GET /auth/forward {fg} {fg_user:?} vs NetBox {nb_status} {nb_user:?}"
            ));
        }
        let forward_post_same = if nb_write { (fp, fp_user) == (200, nb_user) } else { refused(fp) };
        if !forward_post_same {
            differences.push(format!("{name}: POST /auth/forward {fp} vs NetBox write allowed {nb_write}"));
        }
        // A valid token that may not write is a 403, not a 401.
        if nb_status == 200 && !nb_write && fp != 403 {
            differences.push(format!("{name}: POST /auth/forward {fp} for a read-only token, not 403"));
        }
    }
    assert!(differences.is_empty(), "nbtoken decided otherwise than NetBox:\n{}", differences.join("\n"));

    // The one deliberate difference that applies here (docs/netbox-differences.md): NetBox
    // believes `X-Forwarded-For` from anyone; nbtoken only from trusted proxies (none here).
    let restricted = &made.iter().find(|(n, _)| *n == "v2 allowed 10.0.0.0/8").unwrap().1.value;
    let xff = "X-Forwarded-For: 10.1.2.3";
    let (status, _) =
        common::netbox::api_call_with(&nb.url, "GET", "/api/authentication-check/", restricted, &[xff]);
    assert_eq!(status, 200, "NetBox believes X-Forwarded-For from any client");
    let (status, _, _) = call(&ours.base, "GET", "/api/authentication-check/", Some(restricted), &[xff]);
    assert_eq!(status, 403, "nbtoken believes X-Forwarded-For only from trusted proxies");
    let (status, _, _) = call(&ours.base, "GET", "/auth/forward", Some(restricted), &[xff]);
    assert_eq!(status, 403, "nbtoken's forward-auth believes X-Forwarded-For only from trusted proxies");
}

#[test]
fn management_writes_answer_405_and_netboxs_tables_stay_as_they_were() {
    let Some(nb) = netbox_named("companion") else { return };
    let _serial = serial();
    let user = nb.create_user("c-405-user", false);
    let token = nb.create_token(user, 2, json!({"description": "c-405"}));
    let ours = serve(nb, &[(PEPPER_ID, PEPPER)], &[]);
    let before = snapshot(nb);
    let writes = [
        ("POST", "/api/users/tokens/".to_owned()),
        ("POST", "/api/users/users/".to_owned()),
        ("POST", "/api/users/tokens/provision/".to_owned()),
        ("PATCH", format!("/api/users/tokens/{}/", token.id)),
        ("PUT", format!("/api/users/tokens/{}/", token.id)),
        ("DELETE", format!("/api/users/tokens/{}/", token.id)),
        ("PATCH", format!("/api/users/users/{user}/")),
        ("DELETE", format!("/api/users/users/{user}/")),
    ];
    for (method, path) in &writes {
        for auth in [Some(nb.admin_token.as_str()), None] {
            let (status, body, headers) = call(&ours.base, method, path, auth, &[]);
            assert_eq!(status, 405, "{method} {path}: {body}");
            let detail = body["detail"].as_str().unwrap_or_default();
            assert!(detail.contains("use NetBox"), "{method} {path}: {body}");
            assert_eq!(header(&headers, "allow").as_deref(), Some("get, head, options"), "{method} {path}");
        }
    }
    // Reads still work, as the superuser sees them in NetBox.
    let (status, body, _) =
        call(&ours.base, "GET", &format!("/api/users/tokens/{}/", token.id), Some(&nb.admin_token), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], token.id);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(snapshot(nb), before, "nbtoken changed NetBox's tables");
    // The CLI's management commands refuse too, saying why.
    let (ok, _, err) = run(nb, &[(PEPPER_ID, PEPPER)], &[], &["user", "create", "c-405-cli"]);
    assert!(!ok && err.contains("NetBox"), "user create on NetBox's database: {err}");
    assert_eq!(snapshot(nb), before, "nbtoken's CLI changed NetBox's tables");
}

fn last_used(nb: &NetBox, id: i64) -> Value {
    let (status, body) = nb.token(id);
    assert_eq!(status, 200, "{body}");
    body["last_used"].clone()
}

#[test]
fn last_used_reaches_netbox_once_a_minute_and_nbtoken_keeps_address_and_agent() {
    let Some(nb) = netbox_named("companion") else { return };
    let _serial = serial();
    let user = nb.create_user("c-used-user", false);
    let token = nb.create_token(user, 2, json!({"description": "c-used"}));
    let ours = serve(nb, &[(PEPPER_ID, PEPPER)], &[]);
    assert_eq!(last_used(nb, token.id), Value::Null);

    let agent = "User-Agent: companion-test/1.0 (h7)";
    let started = Instant::now();
    let (status, _, _) = call(&ours.base, "GET", "/api/authentication-check/", Some(&token.value), &[agent]);
    let answered = started.elapsed();
    assert_eq!(status, 200);
    let row_at_answer =
        nb.sql(&format!("SELECT coalesce(last_used::text, 'null') FROM users_token WHERE id = {}", token.id));
    let first = loop {
        let v = last_used(nb, token.id);
        if !v.is_null() {
            break v;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "last_used never reached NetBox's row");
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "last_used: answer after {answered:?} (row then: {row_at_answer}); visible in NetBox's API after {:?}: {first}",
        started.elapsed()
    );

    // More uses within the minute: NetBox's rule leaves the row alone.
    for _ in 0..3 {
        let (status, _, _) = call(&ours.base, "GET", "/auth/forward", Some(&token.value), &[agent]);
        assert_eq!(status, 200);
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(last_used(nb, token.id), first, "last_used moved twice within a minute");

    // A minute later (the row made 61 s older; a new process, since the running one remembers
    // its own last write), the next use moves it again.
    drop(ours);
    nb.sql(&format!(
        "UPDATE users_token SET last_used = last_used - interval '61 seconds' WHERE id = {}",
        token.id
    ));
    let aged = last_used(nb, token.id);
    let ours = serve(nb, &[(PEPPER_ID, PEPPER)], &[]);
    let (status, _, _) = call(&ours.base, "GET", "/api/authentication-check/", Some(&token.value), &[agent]);
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while last_used(nb, token.id) == aged {
        assert!(Instant::now() < deadline, "last_used did not move after a minute");
        std::thread::sleep(Duration::from_millis(50));
    }

    let row = nb.sql(&format!(
        "SELECT host(last_ip) || '|' || last_user_agent || '|' || uses FROM nbtoken.token_use WHERE token_id = {}",
        token.id
    ));
    let mut parts = row.split('|');
    assert_eq!(parts.next(), Some("127.0.0.1"), "{row}");
    assert_eq!(parts.next(), Some("companion-test/1.0 (h7)"), "{row}");
    let uses: u64 = parts.next().unwrap().parse().unwrap();
    assert!(uses >= 2, "uses recorded: {row}");
}

/// Polls nbtoken every 100 ms until it refuses `token`; the time it took.
fn time_to_refusal(base: &str, token: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body, _) = call(base, "GET", "/api/authentication-check/", Some(token), &[]);
        if status == 403 {
            return started.elapsed();
        }
        assert_eq!(status, 200, "{body}");
        assert!(started.elapsed() < limit, "nbtoken still accepted a revoked token after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Makes a token, has nbtoken cache it, revokes it in NetBox (`how`), and measures.
fn revoke_and_measure(nb: &NetBox, base: &str, user: i64, how: &str, limit: Duration) -> Duration {
    // Deactivating reaches the user's row (`users_user`), so it takes a user of its own.
    let user = if how == "deactivate user" {
        let n = nb.sql("SELECT count(*) FROM users_user");
        nb.create_user(&format!("c-fresh-deactivated-{n}"), false)
    } else {
        user
    };
    let t = nb.create_token(user, 2, json!({"description": format!("c-fresh {how}")}));
    for _ in 0..2 {
        let (status, body, _) = call(base, "GET", "/api/authentication-check/", Some(&t.value), &[]);
        assert_eq!(status, 200, "{body}");
    }
    let path = format!("/api/users/tokens/{}/", t.id);
    let (status, body) = match how {
        "disable" => nb.api("PATCH", &path, Some(&nb.admin_token), Some(&json!({"enabled": false}))),
        "deactivate user" => nb.api(
            "PATCH",
            &format!("/api/users/users/{user}/"),
            Some(&nb.admin_token),
            Some(&json!({"is_active": false})),
        ),
        _ => nb.api("DELETE", &path, Some(&nb.admin_token), None),
    };
    assert!(matches!(status, 200 | 204), "{how} in NetBox: {status} {body}");
    let (nb_status, _) = nb.api("GET", "/api/authentication-check/", Some(&t.value), None);
    assert_eq!(nb_status, 403, "NetBox itself still accepts the token after {how}");
    time_to_refusal(base, &t.value, limit)
}

#[test]
fn revocations_in_netbox_reach_nbtoken_within_the_ttl_and_within_a_second_with_triggers() {
    let Some(nb) = netbox_named("companion") else { return };
    let _serial = serial();
    let peppers = [(PEPPER_ID, PEPPER)];
    let user = nb.create_user("c-fresh-user", false);
    // Start from nothing of nbtoken's in the database, to see `uninstall` restore it.
    let (ok, out, err) = run(nb, &peppers, &[], &["netbox", "uninstall"]);
    assert!(ok, "{out}{err}");
    let netbox_before = snapshot(nb);

    let ours = serve(nb, &peppers, &[]);
    for how in ["disable", "delete", "deactivate user"] {
        let took = revoke_and_measure(nb, &ours.base, user, how, Duration::from_secs(6));
        eprintln!("FRESHNESS without triggers ({how} in NetBox's API): refused after {took:?} (TTL 5 s)");
        assert!(took < Duration::from_secs(6));
    }
    drop(ours);

    let (ok, out, err) = run(nb, &peppers, &[], &["netbox", "install-triggers"]);
    assert!(ok, "{out}{err}");
    let (ok, status, err) = run(nb, &peppers, &[], &["netbox", "status"]);
    assert!(ok && status.contains("installed on users_token and users_user"), "{status}{err}");
    let ours = serve(nb, &peppers, &[]);
    // The listener starts beside the server; give it a moment to be subscribed.
    std::thread::sleep(Duration::from_millis(500));
    for how in ["disable", "delete", "deactivate user"] {
        let took = revoke_and_measure(nb, &ours.base, user, how, Duration::from_secs(1));
        eprintln!("FRESHNESS with triggers ({how} in NetBox's API): refused after {took:?} (limit 1 s)");
        assert!(took < Duration::from_secs(1));
    }
    drop(ours);

    let admin_ok = |what: &str| {
        let (status, me) = nb.api("GET", "/api/authentication-check/", Some(&nb.admin_token), None);
        assert_eq!(status, 200, "NetBox after {what}: {me}");
    };
    let (ok, out, err) = run(nb, &peppers, &[], &["netbox", "uninstall-triggers"]);
    assert!(ok, "{out}{err}");
    admin_ok("uninstall-triggers");
    let triggers = nb.sql(
        "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN ('users_token'::regclass, 'users_user'::regclass)",
    );
    assert_eq!(triggers, "0", "triggers left on NetBox's tables");
    let (ok, out, err) = run(nb, &peppers, &[], &["netbox", "uninstall"]);
    assert!(ok, "{out}{err}");
    admin_ok("uninstall");
    assert_eq!(nb.sql("SELECT count(*) FROM pg_namespace WHERE nspname = 'nbtoken'"), "0");
    // NetBox's tables: only what NetBox's API did (the four tokens made, two disabled/deleted) changed.
    let after = snapshot(nb);
    let kept: Vec<&str> = netbox_before.lines().filter(|l| !after.lines().any(|a| a == *l)).collect();
    assert!(kept.is_empty(), "rows of NetBox changed or vanished:\n{}", kept.join("\n"));
    let (status, _) =
        nb.api("GET", "/api/users/tokens/?description=c-fresh%20disable", Some(&nb.admin_token), None);
    assert_eq!(status, 200);
}

fn pepper_counts(nb: &NetBox, peppers: &[(u16, &str)]) -> Value {
    let (ok, out, err) = run(nb, peppers, &[], &["pepper", "status", "--json"]);
    assert!(ok, "pepper status on NetBox's database: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("pepper status --json: {e}: {out}"))
}

#[test]
fn a_token_rehashed_by_nbtoken_keeps_working_in_netbox_after_its_old_pepper_is_gone() {
    let Some(nb) = netbox_named("companion-pepper") else { return };
    let _serial = serial();
    let both = [(PEPPER_ID, PEPPER), (2, PEPPER_2)];
    let user = nb.create_user("c-pepper-user", false);
    let token = nb.create_token(user, 2, json!({"description": "c-pepper"}));
    let row =
        |id: i64| nb.sql(&format!("SELECT pepper_id || ' ' || hmac_digest FROM users_token WHERE id = {id}"));
    let (admin_key, _) = nb.admin_token.trim_start_matches("nbt_").split_once('.').unwrap();
    let admin_token_id: i64 =
        nb.sql(&format!("SELECT id FROM users_token WHERE key = '{admin_key}'")).parse().unwrap();
    let before_row = row(token.id);
    assert!(before_row.starts_with("1 "), "{before_row}");
    let status_before = pepper_counts(nb, &both);
    eprintln!("pepper status before: {status_before}");

    let web12 = nb.with_peppers(&both);
    // Without NBTOKEN_REHASH=on, nbtoken verifies under pepper 1 and leaves the row alone.
    {
        let ours = serve(nb, &both, &[]);
        let (status, body, _) =
            call(&ours.base, "GET", "/api/authentication-check/", Some(&token.value), &[]);
        assert_eq!(status, 200, "{body}");
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(row(token.id), before_row, "re-hashed without NBTOKEN_REHASH=on");
    }
    let ours = serve(nb, &both, &[("NBTOKEN_REHASH", "on")]);
    for t in [&token.value, &nb.admin_token] {
        let (status, body, _) = call(&ours.base, "GET", "/api/authentication-check/", Some(t), &[]);
        assert_eq!(status, 200, "{body}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !row(token.id).starts_with("2 ") || !row(admin_token_id).starts_with("2 ") {
        assert!(Instant::now() < deadline, "not re-hashed: {}", row(token.id));
        std::thread::sleep(Duration::from_millis(50));
    }
    let after_row = row(token.id);
    assert_ne!(after_row.split(' ').nth(1), before_row.split(' ').nth(1), "hmac_digest unchanged");
    let (status, me) = web12.api("GET", "/api/authentication-check/", Some(&token.value), None);
    assert_eq!(
        (status, me["id"].as_i64()),
        (200, Some(user)),
        "NetBox with peppers 1 and 2 after the re-hash: {me}"
    );
    let status_after = pepper_counts(nb, &both);
    eprintln!("pepper status after the re-hash: {status_after}");
    // This NetBox holds the superuser's token and ours: both moved from pepper 1 to pepper 2.
    let tokens = |v: &Value, id: u64| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|p| p["pepper_id"] == id)
            .map_or(0, |p| p["tokens"].as_u64().unwrap())
    };
    assert_eq!((tokens(&status_before, 1), tokens(&status_before, 2)), (2, 0), "{status_before}");
    assert_eq!((tokens(&status_after, 1), tokens(&status_after, 2)), (0, 2), "{status_after}");
    drop(ours);
    drop(web12);

    // NetBox restarted with pepper 2 only, nbtoken too: the token works in both.
    let only2 = [(2, PEPPER_2)];
    let web2 = nb.with_peppers(&only2);
    let ours = serve(nb, &only2, &[]);
    for t in [&token.value, &nb.admin_token] {
        let (status, me) = web2.api("GET", "/api/authentication-check/", Some(t), None);
        assert_eq!(status, 200, "NetBox with pepper 2 only: {me}");
        let (status, me, _) = call(&ours.base, "GET", "/api/authentication-check/", Some(t), &[]);
        assert_eq!(status, 200, "nbtoken with pepper 2 only: {me}");
    }
    let (ok, out, err) = run(nb, &both, &[], &["pepper", "retire", "1"]);
    eprintln!("pepper retire 1 (ok {ok}):\n{out}{err}");
    assert!(ok && out.contains("no token depends on pepper 1"), "pepper retire 1: {out}{err}");
    let (ok, out, err) = run(nb, &only2, &[], &["pepper", "status"]);
    eprintln!("pepper status with pepper 2 only (ok {ok}):\n{out}{err}");
}

fn json_of(ok: bool, out: &str, err: &str, what: &str) -> Value {
    assert!(ok || !out.trim().is_empty(), "{what} failed: {out}{err}");
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{what} is not JSON ({e}): {out}{err}"))
}

#[test]
fn migrate_plan_audit_and_doctor_on_netboxs_database_match_netboxs_api() {
    let Some(nb) = netbox_named("companion") else { return };
    let _serial = serial();
    let user = nb.create_user("c-diff-user", false);
    let used = nb.create_token(user, 1, json!({"description": "c-diff v1"}));
    nb.create_token(user, 1, json!({"description": "c-diff v1 read-only", "write_enabled": false}));
    nb.create_token(user, 2, json!({"description": "c-diff v2", "allowed_ips": ["10.0.0.0/8"]}));
    let expired = nb.create_token(user, 1, json!({"description": "c-diff v1 expired"}));
    nb.sql(&format!("UPDATE users_token SET expires = now() - interval '1 day' WHERE id = {}", expired.id));
    let disabled = nb.create_token(user, 2, json!({"description": "c-diff v2 disabled"}));
    let (status, body) = nb.api(
        "PATCH",
        &format!("/api/users/tokens/{}/", disabled.id),
        Some(&nb.admin_token),
        Some(&json!({"enabled": false})),
    );
    assert_eq!(status, 200, "{body}");
    let peppers = [(PEPPER_ID, PEPPER)];
    // One v1 token used through nbtoken: NetBox's row gets last_used, nbtoken's schema where and by what.
    {
        let ours = serve(nb, &peppers, &[]);
        let (status, body, _) = call(
            &ours.base,
            "GET",
            "/auth/forward",
            Some(&used.value),
            &["User-Agent: c-diff-integration/2.0"],
        );
        assert_eq!(status, 200, "{body}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while last_used(nb, used.id).is_null() {
            assert!(Instant::now() < deadline, "last_used never written");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let remote_url = ["--url", nb.url.as_str()];
    for cmd in [&["migrate", "plan", "--json"][..], &["audit", "--json"][..]] {
        let (ok, out, err) = run(nb, &peppers, &[], cmd);
        let local = json_of(ok, &out, &err, &format!("{cmd:?} on the database"));
        let args: Vec<&str> = cmd.iter().copied().chain(remote_url).collect();
        let dir = tempfile::tempdir().unwrap();
        let mut c = common::nbtoken(dir.path());
        c.env("NBTOKEN_REMOTE_TOKEN", &nb.admin_token).args(&args);
        let (ok, out, err) = common::run(&mut c, None);
        let through_api = json_of(ok, &out, &err, &format!("{cmd:?} through NetBox's API"));
        // What only nbtoken's schema knows (where and by what a v1 token was last used, here and
        // in the other tests on this NetBox) is in the database-direct plan; NetBox's API has no
        // such fields, so they are null there.
        let mut local = local;
        if let Some(rows) = local.as_array_mut() {
            let row = rows.iter_mut().find(|r| r["id"] == used.id).expect("the used v1 token is in the plan");
            assert_eq!(row["last_used_ip"], "127.0.0.1", "{row}");
            assert_eq!(row["last_used_user_agent"], "c-diff-integration/2.0", "{row}");
            assert!(!row["last_used"].is_null(), "{row}");
            for row in rows.iter_mut() {
                row["last_used_ip"] = Value::Null;
                row["last_used_user_agent"] = Value::Null;
            }
        }
        assert_eq!(local, through_api, "{cmd:?}: the database and NetBox's API disagree");
        eprintln!("{cmd:?}: the same from the database and from NetBox's API: {local}");
    }
    let (ok_local, out_local, err_local) = run(nb, &peppers, &[], &["doctor"]);
    let dir = tempfile::tempdir().unwrap();
    let mut c = common::nbtoken(dir.path());
    c.env("NBTOKEN_REMOTE_TOKEN", &nb.admin_token).args(["doctor", "--url", &nb.url]);
    let (ok_remote, out_remote, err_remote) = common::run(&mut c, None);
    eprintln!("doctor on the database ({ok_local}):\n{out_local}{err_local}\ndoctor --url ({ok_remote}):\n{out_remote}{err_remote}");
    assert!(ok_local && ok_remote, "doctor: {out_local}{err_local}{out_remote}{err_remote}");
    // Both count the same enabled v1 tokens.
    let v1_count = |text: &str| {
        text.lines()
            .find_map(|l| l.split_once(" enabled v1 token")?.0.split_whitespace().last().map(str::to_owned))
    };
    let (local_v1, remote_v1) = (v1_count(&out_local), v1_count(&out_remote));
    assert!(local_v1.is_some(), "doctor on the database counts no v1 tokens: {out_local}");
    assert_eq!(local_v1, remote_v1, "doctor: the database and NetBox's API count other v1 tokens");
}

#[test]
fn last_used_is_written_for_the_same_requests_as_netbox_writes_it() {
    let Some(nb) = netbox_named("companion") else { return };
    let _serial = serial();
    let active = nb.create_user("c-lu-active", true);
    let inactive = nb.create_user("c-lu-inactive", true);
    // (case, user, fields, what to do to the token in NetBox, POST instead of GET)
    let cases: [(&str, i64, Value, &str, bool); 8] = [
        ("v2", active, json!({}), "", false),
        ("v1", active, json!({}), "", false),
        ("v2 read-only, POST", active, json!({"write_enabled": false}), "", true),
        ("v1 read-only, POST", active, json!({"write_enabled": false}), "", true),
        ("v2 inactive user", inactive, json!({}), "", false),
        ("v2 allowed 10.0.0.0/8", active, json!({"allowed_ips": ["10.0.0.0/8"]}), "", false),
        ("v2 disabled", active, json!({}), "disable", false),
        ("v2 expired", active, json!({}), "expire", false),
    ];
    let mut pairs = Vec::new();
    for (name, user, fields, setup, post) in &cases {
        let version = if name.starts_with("v1") { 1 } else { 2 };
        let pair = [
            nb.create_token(*user, version, fields.clone()),
            nb.create_token(*user, version, fields.clone()),
        ];
        for t in &pair {
            match *setup {
                "disable" => nb.sql(&format!("UPDATE users_token SET enabled = false WHERE id = {}", t.id)),
                "expire" => nb.sql(&format!(
                    "UPDATE users_token SET expires = now() - interval '1 hour' WHERE id = {}",
                    t.id
                )),
                _ => String::new(),
            };
        }
        pairs.push((*name, pair, *post));
    }
    nb.sql(&format!("UPDATE users_user SET is_active = false WHERE id = {inactive}"));
    let ours = serve(nb, &[(PEPPER_ID, PEPPER)], &[]);
    for (_, [for_netbox, for_nbtoken], post) in &pairs {
        if *post {
            nb.api("POST", "/api/dcim/sites/", Some(&for_netbox.value), Some(&json!({})));
            call(&ours.base, "POST", "/auth/forward", Some(&for_nbtoken.value), &[]);
        } else {
            nb.api("GET", "/api/authentication-check/", Some(&for_netbox.value), None);
            call(&ours.base, "GET", "/api/authentication-check/", Some(&for_nbtoken.value), &[]);
        }
    }
    // nbtoken writes in batches every half second.
    std::thread::sleep(Duration::from_millis(1500));
    let written =
        |id: i64| nb.sql(&format!("SELECT last_used IS NOT NULL FROM users_token WHERE id = {id}")) == "t";
    // NetBox 4.7.3 (api/authentication.py) writes `last_used` once the token itself checks out,
    // before it looks at the user (`User inactive` comes after the write) and before the write
    // permission of the request; nbtoken records only requests it lets through. Listed here so
    // that the difference is seen, and fails the test once it is gone.
    const KNOWN: [&str; 3] = ["v2 read-only, POST", "v1 read-only, POST", "v2 inactive user"];
    let mut differences = Vec::new();
    for (name, [for_netbox, for_nbtoken], _) in &pairs {
        let (by_netbox, by_nbtoken) = (written(for_netbox.id), written(for_nbtoken.id));
        eprintln!("last_used written: {name:<24} NetBox {by_netbox} nbtoken {by_nbtoken}");
        if KNOWN.contains(name) {
            if (by_netbox, by_nbtoken) != (true, false) {
                differences.push(format!(
                    "{name}: the known difference is gone ({by_netbox}, {by_nbtoken}): update KNOWN"
                ));
            }
        } else if by_netbox != by_nbtoken {
            differences.push(format!("{name}: NetBox writes last_used: {by_netbox}, nbtoken: {by_nbtoken}"));
        }
    }
    assert!(
        differences.is_empty(),
        "last_used written otherwise than NetBox does:\n{}",
        differences.join("\n")
    );
}

/// Turns NetBox's maintenance mode on or off the way its UI does (a new active configuration revision).
fn maintenance(nb: &NetBox, on: bool) {
    let flag = if on { "True" } else { "False" };
    nb.shell(&format!(
        "from core.models import ConfigRevision\n\
         r = ConfigRevision(data={{'MAINTENANCE_MODE': {flag}}}, comment='nbtoken companion test')\n\
         r.save()\n\
         r.activate()\n"
    ));
}

/// Leaves maintenance mode however the test ends.
struct MaintenanceOff<'a>(&'a NetBox);

impl Drop for MaintenanceOff<'_> {
    fn drop(&mut self) {
        maintenance(self.0, false);
    }
}

#[test]
fn in_netboxs_maintenance_mode_neither_netbox_nor_nbtoken_writes_last_used() {
    let Some(nb) = netbox_named("companion") else { return };
    let _serial = serial();
    let user = nb.create_user("c-maint-user", false);
    let for_netbox = nb.create_token(user, 2, json!({"description": "c-maint netbox"}));
    let for_nbtoken = nb.create_token(user, 2, json!({"description": "c-maint nbtoken"}));
    let ours = serve(nb, &[(PEPPER_ID, PEPPER)], &[]);
    let written =
        |id: i64| nb.sql(&format!("SELECT last_used IS NOT NULL FROM users_token WHERE id = {id}")) == "t";
    let use_both = || {
        let (status, me) = nb.api("GET", "/api/authentication-check/", Some(&for_netbox.value), None);
        assert_eq!(status, 200, "{me}");
        let (status, me, _) =
            call(&ours.base, "GET", "/api/authentication-check/", Some(&for_nbtoken.value), &[]);
        assert_eq!(status, 200, "{me}");
        std::thread::sleep(Duration::from_millis(1500));
    };
    {
        maintenance(nb, true);
        let _off = MaintenanceOff(nb);
        use_both();
        assert_eq!((written(for_netbox.id), written(for_nbtoken.id)), (false, false), "in maintenance mode");
    }
    use_both();
    // NetBox writes on the first use after maintenance mode. The nbtoken process that saw a use
    // during maintenance mode does not: its writer queued that use (which the store then did not
    // write) and queues the token again only a minute later. A known difference of up to a
    // minute in `last_used`; this fails once it is gone, so the test gets updated.
    assert_eq!(
        (written(for_netbox.id), written(for_nbtoken.id)),
        (true, false),
        "after maintenance mode (the known difference is gone? then expect (true, true))"
    );
    drop(ours);
    let ours = serve(nb, &[(PEPPER_ID, PEPPER)], &[]);
    let (status, me, _) =
        call(&ours.base, "GET", "/api/authentication-check/", Some(&for_nbtoken.value), &[]);
    assert_eq!(status, 200, "{me}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !written(for_nbtoken.id) {
        assert!(Instant::now() < deadline, "a new nbtoken process wrote no last_used after maintenance mode");
        std::thread::sleep(Duration::from_millis(50));
    }
}
