//! A real NetBox (the release `scripts/netbox.sh prepare` installed) for the tests of a test binary.
//!
//! `netbox()` starts one NetBox per test binary on first use: a private Redis on a free
//! loopback port, a copy of the migrated template database (`createdb -T`), and gunicorn on
//! a free loopback port, with a superuser and its v2 token. Tests share it, so each one
//! makes its own users and tokens. Everything is torn down when the test binary exits: a
//! small supervisor shell waits for its standard input (held by this process) to close,
//! then stops gunicorn and Redis and drops the database.
//!
//! Without `NBTOKEN_TEST_NETBOX` (set by `./test.sh`), `netbox()` prints a skip line and
//! returns `None`; with `CI` set it fails instead, so CI can never skip the suite silently.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::free_port;

/// The pepper the test NetBox hashes v2 tokens with (id [`PEPPER_ID`]).
pub const PEPPER: &str = "netbox-test-pepper-0123456789-0123456789-0123456789-0123";
/// Its id in `API_TOKEN_PEPPERS`.
pub const PEPPER_ID: u16 = 1;
/// The superuser's password.
pub const ADMIN_PASSWORD: &str = "netbox-admin-password-123";
/// The password of every user [`NetBox::create_user`] makes (NetBox wants an upper-case letter and a digit).
pub const USER_PASSWORD: &str = "User-Password-0123456789";

/// A running NetBox.
pub struct NetBox {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
    /// Name of its database on the shared PostgreSQL server.
    pub db: String,
    /// `postgres://…` URL of its database.
    pub db_url: String,
    /// The superuser's id and username.
    pub admin_id: i64,
    /// The superuser's username.
    pub admin_username: String,
    /// The superuser's v2 token, `nbt_<key>.<secret>`.
    pub admin_token: String,
    /// The prepared directory (virtualenv and configuration).
    pub root: PathBuf,
    /// The port of its private Redis (another gunicorn on the same NetBox uses it too).
    pub redis_port: u16,
    // Closing this (when the test binary exits) makes the supervisor tear everything down.
    _supervisor_stdin: Mutex<ChildStdin>,
    _supervisor: Mutex<Child>,
}

/// A token NetBox created: its id and the value to send (`nbt_…` for v2, the plaintext for v1).
#[derive(Clone, Debug)]
pub struct Created {
    /// Token id in NetBox.
    pub id: i64,
    /// What a client sends after `Bearer`/`Token`.
    pub value: String,
    /// The whole JSON NetBox answered.
    pub json: Value,
}

/// The NetBoxes of this test binary by name, each started on first use.
static NETBOXES: Mutex<Vec<(&'static str, &'static NetBoxCell)>> = Mutex::new(Vec::new());

/// One named NetBox: `None` once it is known that none can run here.
type NetBoxCell = OnceLock<Option<NetBox>>;

/// The NetBox the test modules share, started on first use; `None` (with a printed skip) when
/// `NBTOKEN_TEST_NETBOX` is not set and `CI` is not set. Tests on it make their own users and
/// tokens (under a prefix) and never assume they are alone there.
pub fn netbox() -> Option<&'static NetBox> {
    netbox_named("shared")
}

/// A NetBox of its own for a module whose tests need the whole NetBox (e.g. a migration that
/// acts on every v1 token): `name` tells it apart; the same name gives the same NetBox.
pub fn netbox_named(name: &'static str) -> Option<&'static NetBox> {
    let cell = {
        let mut all = NETBOXES.lock().unwrap_or_else(|e| e.into_inner());
        match all.iter().find(|(n, _)| *n == name) {
            Some((_, cell)) => *cell,
            None => {
                let cell: &'static NetBoxCell = Box::leak(Box::new(OnceLock::new()));
                all.push((name, cell));
                cell
            }
        }
    };
    // Started outside the lock: two named NetBoxes start side by side.
    cell.get_or_init(|| {
        nbtoken_testkit::env_or_skip("NBTOKEN_TEST_NETBOX", "the real-NetBox tests")
            .map(|root| NetBox::start(Path::new(&root)))
    })
    .as_ref()
}

fn pg_base() -> String {
    std::env::var("NBTOKEN_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// `postgres://host:port/NAME` from the base URL (which may carry a database name of its own).
fn pg_url(db: &str) -> String {
    let base = pg_base();
    let rest =
        base.strip_prefix("postgres://").or_else(|| base.strip_prefix("postgresql://")).unwrap_or(&base);
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("postgres://{authority}/{db}")
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-tAq", "-c", sql])
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .output()
        .expect("psql is needed for the NetBox tests");
    assert!(out.status.success(), "psql failed on {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl NetBox {
    fn start(root: &Path) -> NetBox {
        let template = std::fs::read_to_string(root.join("template"))
            .unwrap_or_else(|e| panic!("{}/template: {e}; run scripts/netbox.sh prepare", root.display()));
        let template = template.trim();
        let venv = root.join("venv");
        let suffix = nbtoken_suffix();
        let db = format!("nbtoken_netbox_run_{suffix}");
        let admin_db = pg_url("postgres");
        psql(&admin_db, &format!("CREATE DATABASE {db} TEMPLATE {template}"));

        let http_port = free_port();
        let redis_port = free_port();
        let peppers = format!("{{\"{PEPPER_ID}\": \"{PEPPER}\"}}");
        let log = root.join(format!("gunicorn-{suffix}.log"));
        // The supervisor: Redis and gunicorn in the background, then wait for stdin to close
        // (the test binary exited or dropped us), then stop both and drop the database.
        let script = r#"
            set -u
            redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize no >/dev/null 2>&1 &
            redis=$!
            "$VENV/bin/gunicorn" --bind "127.0.0.1:$HTTP_PORT" --workers 2 --threads 4 --timeout 120 \
                --access-logfile - netbox.wsgi:application >"$LOG" 2>&1 &
            gunicorn=$!
            echo started
            cat >/dev/null
            kill "$gunicorn" "$redis" 2>/dev/null
            wait "$gunicorn" "$redis" 2>/dev/null
            psql "$ADMIN_DB" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
            rm -f "$LOG"
        "#;
        let mut supervisor = Command::new("bash")
            .args(["-c", script])
            .env("REDIS_PORT", redis_port.to_string())
            .env("HTTP_PORT", http_port.to_string())
            .env("VENV", &venv)
            .env("LOG", &log)
            .env("ADMIN_DB", &admin_db)
            .env("DB", &db)
            .env("NETBOX_ROOT", root)
            .env("NBT_NETBOX_DB", &db)
            .env("NBT_NETBOX_REDIS_PORT", redis_port.to_string())
            .env("NBT_NETBOX_PEPPERS", &peppers)
            .env("PGOPTIONS", "-c client_min_messages=warning")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("bash is needed");
        let stdin = supervisor.stdin.take().unwrap();
        let mut first = String::new();
        BufReader::new(supervisor.stdout.take().unwrap()).read_line(&mut first).unwrap();
        assert_eq!(first.trim(), "started", "the NetBox supervisor did not start");

        let url = format!("http://127.0.0.1:{http_port}");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ok = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("{url}/api/status/")])
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout).trim() == "403"
                        || String::from_utf8_lossy(&o.stdout).trim() == "200"
                })
                .unwrap_or(false);
            if ok {
                break;
            }
            if Instant::now() > deadline {
                let mut text = String::new();
                let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut text));
                panic!("NetBox did not answer on {url} within 120 s; gunicorn log:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }

        // A superuser and its v2 token, made the way an operator would: Django's shell.
        let admin_username = "nbadmin".to_owned();
        let code = format!(
            "from users.models import User, Token\n\
             u = User.objects.create_superuser('{admin_username}', 'admin@example.invalid', '{ADMIN_PASSWORD}')\n\
             t = Token(user=u, version=2, description='test admin')\n\
             t.save()\n\
             print('ADMIN', u.pk, 'nbt_' + t.key + '.' + t.token)\n"
        );
        let out = Command::new(venv.join("bin/netbox"))
            .args(["shell", "--no-imports", "-c", &code])
            .env("NETBOX_ROOT", root)
            .env("NBT_NETBOX_DB", &db)
            .env("NBT_NETBOX_REDIS_PORT", redis_port.to_string())
            .env("NBT_NETBOX_PEPPERS", &peppers)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().find(|l| l.starts_with("ADMIN ")).unwrap_or_else(|| {
            panic!("creating NetBox's superuser failed: {}", String::from_utf8_lossy(&out.stderr))
        });
        let mut parts = line.split_whitespace().skip(1);
        let admin_id = parts.next().unwrap().parse().unwrap();
        let admin_token = parts.next().unwrap().to_owned();
        eprintln!("NetBox {} up at {url} (database {db})", Self::version_of(&venv));

        NetBox {
            url,
            db_url: pg_url(&db),
            db,
            admin_id,
            admin_username,
            admin_token,
            root: root.to_owned(),
            redis_port,
            _supervisor_stdin: Mutex::new(stdin),
            _supervisor: Mutex::new(supervisor),
        }
    }

    fn version_of(venv: &Path) -> String {
        Command::new(venv.join("bin/netbox"))
            .arg("version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    }

    /// Runs SQL on NetBox's own database (`psql -tA`), returning what it printed.
    pub fn sql(&self, sql: &str) -> String {
        psql(&self.db_url, sql)
    }

    /// Calls NetBox's REST API with curl: `(status, JSON body or Null)`. `token` is sent with
    /// the keyword its shape calls for (`Bearer` for `nbt_…`, else `Token`).
    pub fn api(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        api_call(&self.url, method, path, token, body)
    }

    /// Starts another NetBox web server (gunicorn, one worker) on the same database and Redis,
    /// configured with these peppers (`API_TOKEN_PEPPERS`, through `NBT_NETBOX_PEPPERS`): what a
    /// restart of NetBox with another pepper configuration serves. It stops when dropped.
    pub fn with_peppers(&self, peppers: &[(u16, &str)]) -> NetBoxWeb {
        let json = serde_json::Value::Object(
            peppers.iter().map(|(id, p)| (id.to_string(), Value::String((*p).to_owned()))).collect(),
        )
        .to_string();
        let port = free_port();
        let child = Command::new(self.root.join("venv/bin/gunicorn"))
            .args(["--bind", &format!("127.0.0.1:{port}"), "--workers", "1", "--threads", "4"])
            .args(["--timeout", "120", "netbox.wsgi:application"])
            .env("NETBOX_ROOT", &self.root)
            .env("NBT_NETBOX_DB", &self.db)
            .env("NBT_NETBOX_REDIS_PORT", self.redis_port.to_string())
            .env("NBT_NETBOX_PEPPERS", &json)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gunicorn of the prepared NetBox");
        let web = NetBoxWeb { url: format!("http://127.0.0.1:{port}"), child };
        let deadline = Instant::now() + Duration::from_secs(120);
        while !matches!(web.api("GET", "/api/status/", None, None).0, 200 | 403) {
            assert!(Instant::now() < deadline, "NetBox with peppers {json} did not answer within 120 s");
            std::thread::sleep(Duration::from_millis(250));
        }
        web
    }

    /// Runs Python in NetBox's Django shell (`netbox shell -c`), as an operator would; returns
    /// what it printed, failing the test when the shell fails.
    pub fn shell(&self, code: &str) -> String {
        let peppers = format!("{{\"{PEPPER_ID}\": \"{PEPPER}\"}}");
        let out = Command::new(self.root.join("venv/bin/netbox"))
            .args(["shell", "--no-imports", "-c", code])
            .env("NETBOX_ROOT", &self.root)
            .env("NBT_NETBOX_DB", &self.db)
            .env("NBT_NETBOX_REDIS_PORT", self.redis_port.to_string())
            .env("NBT_NETBOX_PEPPERS", &peppers)
            .output()
            .unwrap();
        assert!(out.status.success(), "netbox shell failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates a user through the REST API (superuser by SQL, as the API cannot grant it); returns its id.
    pub fn create_user(&self, username: &str, superuser: bool) -> i64 {
        let (status, body) = self.api(
            "POST",
            "/api/users/users/",
            Some(&self.admin_token),
            Some(&serde_json::json!({"username": username, "password": USER_PASSWORD})),
        );
        assert_eq!(status, 201, "creating user {username}: {body}");
        let id = body["id"].as_i64().unwrap();
        if superuser {
            self.sql(&format!("UPDATE users_user SET is_superuser = true WHERE id = {id}"));
        }
        id
    }

    /// Creates a token through the REST API as the superuser. `fields` are merged into
    /// `{"user": user_id, "version": version}` (e.g. `description`, `write_enabled`, `allowed_ips`).
    pub fn create_token(&self, user_id: i64, version: u8, fields: Value) -> Created {
        let mut body = serde_json::json!({"user": user_id, "version": version});
        if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
            for (k, v) in f {
                b.insert(k.clone(), v.clone());
            }
        }
        let (status, json) = self.api("POST", "/api/users/tokens/", Some(&self.admin_token), Some(&body));
        assert_eq!(status, 201, "creating a v{version} token: {json}");
        let id = json["id"].as_i64().unwrap();
        let plain = json["token"].as_str().unwrap_or_default().to_owned();
        let value =
            if version == 2 { format!("nbt_{}.{}", json["key"].as_str().unwrap(), plain) } else { plain };
        Created { id, value, json }
    }

    /// One token's row as NetBox's API shows it to the superuser.
    pub fn token(&self, id: i64) -> (u16, Value) {
        self.api("GET", &format!("/api/users/tokens/{id}/"), Some(&self.admin_token), None)
    }
}

/// Another NetBox web server on the same database ([`NetBox::with_peppers`]), stopped when dropped.
pub struct NetBoxWeb {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
}

impl NetBoxWeb {
    /// Calls its REST API, as [`NetBox::api`] does.
    pub fn api(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        api_call(&self.url, method, path, token, body)
    }
}

impl Drop for NetBoxWeb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One REST call with curl: `(status, JSON body or Null)`; the token's keyword follows its shape.
pub fn api_call(
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut args: Vec<String> =
        vec!["-s".into(), "-X".into(), method.into(), "-H".into(), "Accept: application/json".into()];
    if let Some(t) = token {
        let kw = if t.starts_with("nbt_") { "Bearer" } else { "Token" };
        args.extend(["-H".into(), format!("Authorization: {kw} {t}")]);
    }
    if let Some(b) = body {
        args.extend([
            "-H".into(),
            "Content-Type: application/json".into(),
            "--data-binary".into(),
            b.to_string(),
        ]);
    }
    args.extend(["-w".into(), "\n%{http_code}".into(), format!("{}{}", url, path)]);
    let out = Command::new("curl").args(&args).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A GET-style call with a token and extra request headers: `(status, JSON body or Null)`.
pub fn api_call_with(url: &str, method: &str, path: &str, token: &str, headers: &[&str]) -> (u16, Value) {
    let kw = if token.starts_with("nbt_") { "Bearer" } else { "Token" };
    let mut args: Vec<String> =
        vec!["-s".into(), "-X".into(), method.into(), "-H".into(), "Accept: application/json".into()];
    args.extend(["-H".into(), format!("Authorization: {kw} {token}")]);
    for h in headers {
        args.extend(["-H".into(), (*h).to_owned()]);
    }
    args.extend(["-w".into(), "\n%{http_code}".into(), format!("{url}{path}")]);
    let out = Command::new("curl").args(&args).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), serde_json::from_str(body).unwrap_or(Value::Null))
}

fn nbtoken_suffix() -> String {
    let mut bytes = [0u8; 6];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut bytes).unwrap();
    format!("{}_{}", std::process::id(), bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}
