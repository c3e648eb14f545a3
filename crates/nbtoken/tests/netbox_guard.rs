//! Guarding a real NetBox with nbtoken: docs/forward-auth/netbox-guard.nginx.conf run as it is
//! (real nginx, real NetBox 4.7.3, nbtoken serving NetBox's database), through the life of a v1
//! token: seen (recorded with address and User-Agent), warned, replaced, denied. The test prints
//! what curl saw at each step, as a transcript.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::netbox::{netbox_named, NetBox, PEPPER, PEPPER_ID};
use crate::common::{free_port, nbtoken, run, wait_live};

/// The Sunset date the test's nbtoken announces.
const SUNSET: &str = "2027-06-30";
/// The User-Agent of the integration whose v1 token is retired.
const AGENT: &str = "inventory-sync/2.3 (cron on ops-01)";
/// The address that integration calls from (loopback, but not nginx's own address).
const CLIENT: &str = "127.0.0.2";

fn nginx_binary() -> Option<PathBuf> {
    let found = std::env::var_os("NBTOKEN_TEST_NGINX")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"].map(PathBuf::from))
        .find(|c| c.is_file());
    if found.is_none() {
        nbtoken_testkit::skip(
            "nginx is not installed (Debian package nginx-light; or set NBTOKEN_TEST_NGINX)",
            "the NetBox guard behind nginx",
        );
    }
    found
}

/// nginx with the documented guard configuration, stopped on drop.
struct Nginx {
    url: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    fn start(binary: &Path, nbtoken: &str, netbox: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let doc =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/forward-auth/netbox-guard.nginx.conf");
        let mut conf = std::fs::read_to_string(&doc).unwrap();
        for (from, to) in [
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
            ("127.0.0.1:8080", nbtoken.to_owned()),
            ("127.0.0.1:8001", netbox.to_owned()),
        ] {
            assert!(conf.contains(from), "the documented configuration no longer contains {from:?}");
            conf = conf.replace(from, &to);
        }
        let d = dir.path().display();
        let full = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
             scgi_temp_path {d}/scgi;\n\n{conf}\n}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, full).unwrap();
        let log = std::fs::File::create(dir.path().join("error.log")).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut n = Nginx { url: format!("http://127.0.0.1:{port}"), child, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = n.child.try_wait() {
                panic!("nginx exited with {status}:\n{}", n.log());
            }
            assert!(Instant::now() < deadline, "nginx did not start:\n{}", n.log());
            std::thread::sleep(Duration::from_millis(25));
        }
        n
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `nbtoken serve` on NetBox's database at `bind`, stopped on drop.
struct Guard(Child);

impl Guard {
    fn start(dir: &Path, nb: &NetBox, bind: &str, v1: &str) -> Guard {
        let mut cmd = nbtoken(dir);
        cmd.env("NBTOKEN_STORE", "netbox")
            .env("NBTOKEN_DATABASE_URL", &nb.db_url)
            .env(format!("NBTOKEN_PEPPER_{PEPPER_ID}"), PEPPER)
            .env("NBTOKEN_TRUSTED_PROXIES", "127.0.0.1")
            .env("NBTOKEN_V1", v1)
            .env("NBTOKEN_V1_SUNSET", SUNSET)
            .env("NBTOKEN_FAILURE_LIMIT_PER_IP", "5")
            .args(["serve", "--bind", bind])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().unwrap();
        wait_live(&format!("http://{bind}"), "nbtoken on NetBox's database", Duration::from_secs(30));
        Guard(child)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What curl -i saw.
struct Seen {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// `curl -i` from `from` through nginx, printed as a transcript line: the command (token
/// shortened), the status line, the headers that matter here, and a refusal's body.
fn call(url: &str, method: &str, path: &str, from: &str, auth: Option<&str>) -> Seen {
    let mut args: Vec<String> = vec![
        "-s".into(),
        "-i".into(),
        "--interface".into(),
        from.into(),
        "-X".into(),
        method.into(),
        "-A".into(),
        AGENT.into(),
        "-H".into(),
        "Accept: application/json".into(),
    ];
    let mut shown = String::new();
    if let Some(a) = auth {
        args.extend(["-H".into(), format!("Authorization: {a}")]);
        let (scheme, value) = a.split_once(' ').unwrap_or((a, ""));
        shown = format!(" -H 'Authorization: {scheme} {}…'", value.chars().take(12).collect::<String>());
    }
    args.push(format!("{url}{path}"));
    let out = Command::new("curl").args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("").to_owned();
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    println!("$ curl -si --interface {from} -X {method} -A '{AGENT}'{shown} {url}{path}");
    println!("  {status_line}");
    for (k, v) in &headers {
        if ["deprecation", "sunset", "retry-after", "www-authenticate"]
            .contains(&k.to_ascii_lowercase().as_str())
        {
            println!("  {k}: {v}");
        }
    }
    if status >= 400 {
        println!("  {}", body.trim());
    }
    Seen { status, headers, body: body.to_owned() }
}

/// The gunicorn access logs of the test NetBoxes, to tell whether a request reached NetBox.
fn netbox_saw(nb: &NetBox, marker: &str) -> bool {
    std::fs::read_dir(&nb.root)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("gunicorn-"))
        .any(|e| std::fs::read_to_string(e.path()).unwrap_or_default().contains(marker))
}

/// The row nbtoken keeps about `token_id`'s uses, once it is written (uses are flushed in batches).
fn recorded_use(nb: &NetBox, token_id: i64) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = nb.sql(&format!(
            "SELECT v1_uses, host(v1_last_ip), v1_last_user_agent, v1_last_seen IS NOT NULL, \
             (SELECT last_used IS NOT NULL FROM users_token WHERE id = {token_id}) \
             FROM nbtoken.token_use WHERE token_id = {token_id}"
        ));
        if !row.is_empty() {
            return row.split('|').map(str::to_owned).collect();
        }
        assert!(Instant::now() < deadline, "nbtoken recorded no use of token {token_id}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_v1_token_is_seen_warned_replaced_and_denied_in_front_of_netbox() {
    let Some(nb) = netbox_named("guard") else { return };
    let Some(nginx_bin) = nginx_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let user = nb.create_user("guard-sync", false);
    let v1 = nb.create_token(user, 1, json!({"description": "inventory sync", "write_enabled": false}));
    let v1_auth = format!("Token {}", v1.value);
    let netbox_addr = nb.url.trim_start_matches("http://").to_owned();

    let nbtoken_addr = format!("127.0.0.1:{}", free_port());
    let guard = Guard::start(dir.path(), nb, &nbtoken_addr, "warn");
    let nginx = Nginx::start(&nginx_bin, &nbtoken_addr, &netbox_addr);
    let url = nginx.url.clone();
    println!(
        "--- transcript: nginx {url} in front of NetBox {}, nbtoken {nbtoken_addr} (NBTOKEN_V1=warn)",
        nb.url
    );

    // Anonymous and browser requests reach NetBox unchanged: nbtoken is not asked.
    let login = call(&url, "GET", "/login/", CLIENT, None);
    assert_eq!(login.status, 200, "NetBox's login page through the guard: {}", nginx.log());
    assert!(login.body.contains("<form"), "NetBox's login form");
    let anon = call(&url, "GET", "/api/status/", CLIENT, None);
    let (direct, _) = nb.api("GET", "/api/status/", None, None);
    assert_eq!(anon.status, direct, "an anonymous API request gets NetBox's own answer");

    // Seen and warned: NetBox answers, the client sees Deprecation and Sunset.
    let warned = call(&url, "GET", "/api/users/tokens/", CLIENT, Some(&v1_auth));
    assert_eq!(warned.status, 200, "{}", warned.body);
    assert_eq!(warned.header("Deprecation"), Some("@1767225600"));
    assert_eq!(warned.header("Sunset"), Some("Wed, 30 Jun 2027 00:00:00 GMT"));
    assert!(warned.json()["results"].is_array(), "NetBox's own answer: {}", warned.body);
    // A read-only v1 token may not write: refused by nbtoken, not by NetBox.
    let write = call(&url, "POST", "/api/dcim/sites/?probe=guard-write", CLIENT, Some(&v1_auth));
    assert_eq!(write.status, 403);
    assert!(write.json()["detail"].as_str().unwrap().contains("read-only"), "{}", write.body);
    assert!(!netbox_saw(nb, "guard-write"), "NetBox saw a write nbtoken refused");

    // Recorded: token id, client address after the trusted proxy, User-Agent, time.
    let row = recorded_use(nb, v1.id);
    println!(
        "nbtoken.token_use for token {}: v1_uses={} v1_last_ip={} v1_last_user_agent={:?}",
        v1.id, row[0], row[1], row[2]
    );
    assert!(row[0].parse::<u64>().unwrap() >= 1, "{row:?}");
    assert_eq!(row[1], CLIENT, "the client's address, not nginx's");
    assert_eq!(row[2], AGENT);
    assert_eq!(row[3], "t");
    assert_eq!(row[4], "t", "last_used written to NetBox's row");

    // `nbtoken migrate plan` on NetBox's database: where and by what each v1 token was last used.
    let db_env = |c: &mut Command| {
        c.env("NBTOKEN_STORE", "netbox")
            .env("NBTOKEN_DATABASE_URL", &nb.db_url)
            .env(format!("NBTOKEN_PEPPER_{PEPPER_ID}"), PEPPER);
    };
    let mut plan = nbtoken(dir.path());
    db_env(&mut plan);
    let (ok, out, err) = run(plan.args(["migrate", "plan", "--json"]), None);
    assert!(ok, "migrate plan: {err}");
    let items: Value = serde_json::from_str(&out).unwrap();
    let item =
        items.as_array().unwrap().iter().find(|i| i["id"] == json!(v1.id)).expect("the v1 token is planned");
    assert_eq!(item["last_used_ip"], json!(CLIENT), "{item}");
    assert_eq!(item["last_used_user_agent"], json!(AGENT), "{item}");
    let mut plan = nbtoken(dir.path());
    db_env(&mut plan);
    let (ok, table, err) = run(plan.args(["migrate", "plan"]), None);
    assert!(ok, "migrate plan: {err}");
    println!("$ nbtoken migrate plan   # NBTOKEN_STORE=netbox on NetBox's database\n{table}");
    assert!(table.contains(CLIENT) && table.contains("inventory-sync/2.3"), "{table}");

    // Throttled: wrong tokens from one client end in 429 before NetBox sees them.
    let mut statuses = Vec::new();
    for i in 0..7 {
        let bad = format!("Bearer nbt_aaaaaaaaaaaa.{}", "x".repeat(40 + i));
        let s = call(&url, "GET", &format!("/api/status/?probe=guard-bad-{i}"), "127.0.0.3", Some(&bad));
        statuses.push(s.status);
        if s.status == 429 {
            assert!(s.header("Retry-After").is_some());
        }
    }
    assert_eq!(statuses.first(), Some(&401), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!((0..7).all(|i| !netbox_saw(nb, &format!("guard-bad-{i}"))), "NetBox saw a refused token");

    // Replaced: `nbtoken migrate apply` against NetBox's API, through the guard.
    let mut apply = nbtoken(dir.path());
    apply.env("NBTOKEN_REMOTE_TOKEN", &nb.admin_token);
    let (ok, out, err) = run(apply.args(["migrate", "apply", "--url", &url]), None);
    assert!(ok, "migrate apply through nginx: {err}\n{out}");
    let secrets: Value = serde_json::from_str(&out).unwrap();
    let secret = secrets
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["v1_id"] == json!(v1.id))
        .expect("a replacement for the v1 token");
    // The whole value to send, `nbt_<key>.<secret>`.
    let v2_auth = format!("Bearer {}", secret["token"].as_str().unwrap());
    assert!(v2_auth.starts_with("Bearer nbt_"), "a v2 token");
    println!(
        "$ nbtoken migrate apply --url {url}   # v1 token {} -> v2 token {}",
        v1.id, secret["replacement_id"]
    );
    let replaced = call(&url, "GET", "/api/users/tokens/", CLIENT, Some(&v2_auth));
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    assert_eq!(replaced.header("Deprecation"), None);

    // Denied: the same nbtoken address, now with NBTOKEN_V1=deny.
    drop(guard);
    let _guard = Guard::start(dir.path(), nb, &nbtoken_addr, "deny");
    println!("--- nbtoken restarted with NBTOKEN_V1=deny");
    let denied = call(&url, "GET", "/api/users/tokens/?probe=guard-denied", CLIENT, Some(&v1_auth));
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(denied.json()["detail"].as_str().unwrap().contains("v2 token"), "{}", denied.body);
    assert!(!netbox_saw(nb, "guard-denied"), "NetBox saw a denied v1 request");
    let (direct, _) = nb.api("GET", "/api/users/tokens/", Some(&v1.value), None);
    assert_eq!(direct, 200, "NetBox itself still takes the v1 token: only the guard refuses it");
    let after = call(&url, "GET", "/api/users/tokens/", CLIENT, Some(&v2_auth));
    assert_eq!(after.status, 200, "{}", after.body);
    let ui = call(&url, "GET", "/login/", CLIENT, None);
    assert_eq!(ui.status, 200);
}

/// The least a companion nbtoken needs (docs/netbox-companion.md): SELECT on the columns it
/// reads, UPDATE on `last_used`, `hmac_digest` and `pepper_id`, and CREATE on the database
/// for its own schema. A role with only these serves: tokens verify and `last_used` moves.
#[test]
fn a_role_with_only_the_documented_grants_serves() {
    // A NetBox of its own: the `nbtoken` schema must be this role's, created by it.
    let Some(nb) = netbox_named("guard-grants") else { return };
    let role = format!("nbtoken_guard_{}", std::process::id());
    // Dropped at the end of the test, failed or not: login roles belong to the whole cluster.
    let _role = Role { nb, name: role.clone() };
    let user = nb.create_user("grants-user", false);
    let v2 = nb.create_token(user, 2, json!({"description": "grants"}));
    let v1 = nb.create_token(user, 1, json!({"description": "grants v1"}));
    let token_columns = "id, created, expires, plaintext, write_enabled, description, user_id, allowed_ips, \
                         last_used, enabled, version, key, pepper_id, hmac_digest";
    let user_columns =
        "id, username, first_name, last_name, email, is_active, is_superuser, date_joined, last_login";
    nb.sql(&format!(
        "CREATE ROLE {role} LOGIN; \
         GRANT CONNECT, CREATE ON DATABASE {db} TO {role}; \
         GRANT USAGE ON SCHEMA public TO {role}; \
         GRANT SELECT ({token_columns}) ON users_token TO {role}; \
         GRANT SELECT ({user_columns}) ON users_user TO {role}; \
         GRANT SELECT ON core_configrevision TO {role}; \
         GRANT UPDATE (last_used, hmac_digest, pepper_id) ON users_token TO {role};",
        db = nb.db
    ));
    let url = nb.db_url.replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    assert_ne!(url, nb.db_url, "the role's URL");
    let dir = tempfile::tempdir().unwrap();
    let bind = format!("127.0.0.1:{}", free_port());
    let serve_and_check = || {
        let mut cmd = nbtoken(dir.path());
        cmd.env("NBTOKEN_STORE", "netbox")
            .env("NBTOKEN_DATABASE_URL", &url)
            .env(format!("NBTOKEN_PEPPER_{PEPPER_ID}"), PEPPER)
            .args(["serve", "--bind", &bind])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd.spawn().unwrap();
        let started = Instant::now();
        let mut g = Guard(child);
        while crate::common::curl(&[&format!("http://{bind}/livez")]).0 != 200 {
            if let Ok(Some(status)) = g.0.try_wait() {
                let mut err = String::new();
                std::io::Read::read_to_string(g.0.stderr.as_mut().unwrap(), &mut err).unwrap();
                panic!("nbtoken with the documented grants exited with {status}: {err}");
            }
            assert!(started.elapsed() < Duration::from_secs(30), "nbtoken did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        for (kw, value) in [("Bearer", &v2.value), ("Token", &v1.value)] {
            let (status, body) = crate::common::curl(&[
                "-H",
                &format!("Authorization: {kw} {value}"),
                &format!("http://{bind}/api/authentication-check/"),
            ]);
            assert_eq!(status, 200, "{kw}: {body}");
            let (status, _) = crate::common::curl(&[
                "-H",
                &format!("Authorization: {kw} {value}"),
                &format!("http://{bind}/auth/forward"),
            ]);
            assert_eq!(status, 200, "{kw} through forward-auth");
        }
        g
    };
    let served = serve_and_check();
    let deadline = Instant::now() + Duration::from_secs(10);
    while nb.sql(&format!(
        "SELECT count(*) FROM users_token WHERE id IN ({}, {}) AND last_used IS NOT NULL",
        v1.id, v2.id
    )) != "2"
    {
        assert!(Instant::now() < deadline, "last_used was not written with the documented grants");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(nb.sql(&format!("SELECT v1_uses FROM nbtoken.token_use WHERE token_id = {}", v1.id)), "1");
    assert_eq!(nb.sql("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'nbtoken'"), role);
    drop(served);
    // Once its schema exists, nbtoken starts without CREATE on the database.
    nb.sql(&format!("REVOKE CREATE ON DATABASE {db} FROM {role}", db = nb.db));
    drop(serve_and_check());
}

/// A login role a test creates: dropped with what it owns (and its grants) when the test ends,
/// passed or failed. Errors are ignored here, since a failed test may be unwinding: the role
/// may not exist yet.
struct Role<'a> {
    nb: &'a NetBox,
    name: String,
}

impl Drop for Role<'_> {
    fn drop(&mut self) {
        for sql in [format!("DROP OWNED BY {}", self.name), format!("DROP ROLE IF EXISTS {}", self.name)] {
            let _ = Command::new("psql")
                .args([&self.nb.db_url, "-tAq", "-c", &sql])
                .env("PGOPTIONS", "-c client_min_messages=warning")
                .output();
        }
    }
}
