//! Running nbtoken as a production service: the access log, binding before the first-start
//! admin, SIGTERM under load, `--version`, completions and man pages, and the packaging files
//! (systemd unit checked by `systemd-analyze`, the nginx configuration run for real in front
//! of the server, the compose file and Dockerfile parsed).

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{curl, free_port, nbtoken, run, wait_live};
use serde_json::Value;

const P1: &str = "production-pepper-one-0123456789-0123456789-0123456789-0123";
const P2: &str = "production-pepper-two-0123456789-0123456789-0123456789-0123";

/// A running `nbtoken serve` whose stderr is collected line by line.
struct Running {
    child: Child,
    base: String,
    port: u16,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut child = nbtoken(dir)
            .envs(env.iter().copied())
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        wait_live(&base, "server", Duration::from_secs(20));
        Self { child, base, port, stderr }
    }

    /// Sends SIGTERM and waits for the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let st = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(st.success());
        self.terminate_wait()
    }

    /// Waits for the exit that a SIGTERM already sent causes.
    fn terminate_wait(&mut self) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "still running 20 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let (ok, out, err) = run(nbtoken(dir).envs(env.iter().copied()).args(args), None);
    assert!(ok, "{args:?}: {err}");
    out
}

/// `(key, "nbt_key.secret")` of a new token for `user`.
fn new_token(dir: &Path, env: &[(&str, &str)], user: &str, version: &str) -> (String, String) {
    let t: Value = serde_json::from_str(&cli(
        dir,
        env,
        &["token", "create", "--user", user, "--version", version, "--json"],
    ))
    .unwrap();
    let (key, secret) = (t["key"].as_str().unwrap_or(""), t["token"].as_str().unwrap());
    let token = if version == "2" { format!("nbt_{key}.{secret}") } else { secret.to_owned() };
    (key.to_owned(), token)
}

/// The request ids of the `request` (access-log) lines in JSON logs.
fn access_lines(log: &[String]) -> Vec<String> {
    log.iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "request")
        .map(|l| l["span"]["request_id"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn access_log_is_off_by_default_but_refusals_errors_and_v1_uses_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = [("NBTOKEN_PEPPER_1", P1), ("NBTOKEN_V1", "allow")];
    cli(d, &env, &["user", "create", "ops", "--superuser"]);
    let (key, v2) = new_token(d, &env, "ops", "2");
    let (_, v1) = new_token(d, &env, "ops", "1");
    let requests = |base: &str| {
        let get = |id: &str, auth: Option<String>, path: &str| {
            let mut args = vec!["-H".to_owned(), format!("X-Request-ID: {id}")];
            if let Some(a) = auth {
                args.extend(["-H".to_owned(), format!("Authorization: {a}")]);
            }
            args.push(format!("{base}{path}"));
            curl(&args.iter().map(String::as_str).collect::<Vec<_>>()).0
        };
        assert_eq!(get("ok-v2", Some(format!("Bearer {v2}")), "/api/status/"), 200);
        assert_eq!(get("ok-live", None, "/livez"), 200);
        assert_eq!(get("refused", Some(format!("Bearer nbt_{key}.{}", "x".repeat(40))), "/api/status/"), 403);
        assert_eq!(get("missing", Some(format!("Bearer {v2}")), "/api/nothing/"), 404);
        assert_eq!(get("v1-use", Some(format!("Token {v1}")), "/api/status/"), 200);
    };
    let json = [("NBTOKEN_LOG", "info"), ("NBTOKEN_LOG_FORMAT", "json")];

    // The default: no line for a successful v2 request, one for each refusal and v1 use.
    let mut s = Running::start(d, &[env.as_slice(), json.as_slice()].concat());
    requests(&s.base);
    assert!(s.terminate().success());
    let logged = access_lines(&s.log());
    for id in ["refused", "missing", "v1-use"] {
        assert!(logged.iter().any(|l| l == id), "{id} not logged: {logged:?}");
    }
    for id in ["ok-v2", "ok-live"] {
        assert!(!logged.iter().any(|l| l == id), "{id} logged by default: {logged:?}");
    }
    let v2_secret = v2.split('.').nth(1).unwrap();
    for line in s.log() {
        assert!(!line.contains(v2_secret) && !line.contains(&v1), "a token was logged: {line}");
    }
    drop(s);

    // `on`: every request.
    let mut s =
        Running::start(d, &[env.as_slice(), json.as_slice(), &[("NBTOKEN_ACCESS_LOG", "on")]].concat());
    requests(&s.base);
    assert!(s.terminate().success());
    let logged = access_lines(&s.log());
    for id in ["ok-v2", "ok-live", "refused", "missing", "v1-use"] {
        assert!(logged.iter().any(|l| l == id), "{id} not logged under on: {logged:?}");
    }
    drop(s);

    // A rate: some successful requests, not all (one in 2^199 runs could see none or all).
    let mut s =
        Running::start(d, &[env.as_slice(), json.as_slice(), &[("NBTOKEN_ACCESS_LOG", "50%")]].concat());
    let url = format!("{}/livez", s.base);
    let mut args = vec!["-H", "X-Request-ID: sampled"];
    args.extend(std::iter::repeat_n(url.as_str(), 200));
    let out = Command::new("curl").arg("-s").args(&args).output().unwrap();
    assert!(out.status.success());
    assert!(s.terminate().success());
    let sampled = access_lines(&s.log()).iter().filter(|l| *l == "sampled").count();
    assert!(sampled > 0 && sampled < 200, "{sampled} of 200 logged at 50%");
    drop(s);

    // A value that is none of these is refused with a clear message.
    let (ok, _, err) = run(nbtoken(d).envs(env).env("NBTOKEN_ACCESS_LOG", "sometimes").arg("serve"), None);
    assert!(!ok);
    assert!(err.contains("NBTOKEN_ACCESS_LOG") && err.contains("sampling rate"), "{err}");
}

#[test]
fn serve_binds_the_port_before_creating_the_admin() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (ok, out, err) = run(nbtoken(d).args(["serve", "--bind", &addr]), None);
    assert!(!ok, "served on a taken port");
    assert!(err.contains("cannot listen on"), "{err}");
    assert!(out.is_empty(), "printed on a failed start: {out}");
    assert!(!d.join("data/first-start-admin.txt").exists());
    // No admin was created: the next (successful) start is still the first.
    let users: Value = serde_json::from_str(&cli(d, &[], &["user", "list", "--json"])).unwrap();
    assert_eq!(users.as_array().map(Vec::len), Some(0), "{users}");
    drop(taken);
    let served = common::serve(d);
    assert!(served.first_start.is_some());
}

/// One HTTP/1.1 exchange on a keep-alive connection: the status, or an error once the server closes.
fn exchange(stream: &mut TcpStream, request: &[u8]) -> std::io::Result<u16> {
    stream.write_all(request)?;
    read_response(stream)
}

fn read_response(stream: &mut TcpStream) -> std::io::Result<u16> {
    read_response_body(stream).map(|(status, _)| status)
}

fn read_response_body(stream: &mut TcpStream) -> std::io::Result<(u16, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[test]
fn sigterm_under_load_finishes_requests_in_flight_and_flushes_queued_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let one = [("NBTOKEN_PEPPER_1", P1)];
    cli(d, &one, &["user", "create", "load", "--superuser"]);
    let tokens: Vec<String> = (0..24).map(|_| new_token(d, &one, "load", "2").1).collect();
    // A newer pepper: every first use of a token queues a re-hash as well as its last_used.
    let both = [("NBTOKEN_PEPPER_1", P1), ("NBTOKEN_PEPPER_2", P2), ("NBTOKEN_LOG", "info")];
    let mut s = Running::start(d, &both);
    let addr = format!("127.0.0.1:{}", s.port);

    // Four clients go round the tokens on keep-alive connections until the server closes them.
    let used = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (addr, tokens, used, stop) = (addr.clone(), tokens.clone(), used.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&addr).unwrap();
                let mut i = c * 6;
                while !stop.load(Ordering::Relaxed) {
                    let t = &tokens[i % tokens.len()];
                    let req =
                        format!("GET /api/status/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\r\n");
                    match exchange(&mut stream, req.as_bytes()) {
                        Ok(200) => {
                            used.lock().unwrap().insert(i % tokens.len());
                        }
                        Ok(other) => panic!("status {other} under load"),
                        Err(_) => break,
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let started = Instant::now();
    while used.lock().unwrap().len() < tokens.len() {
        assert!(started.elapsed() < Duration::from_secs(20), "load did not reach every token");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A request in flight when SIGTERM arrives: headers sent, body not yet.
    let body = br#"{"description": "created during shutdown"}"#;
    let mut inflight = TcpStream::connect(&addr).unwrap();
    write!(
        inflight,
        "POST /api/users/tokens/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        tokens[0],
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = s.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    // New connections are no longer accepted; the one in flight is answered.
    inflight.write_all(body).unwrap();
    assert_eq!(read_response(&mut inflight).unwrap(), 201, "the request in flight was not finished");
    let status = s.terminate_wait();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    assert!(TcpStream::connect(&addr).is_err(), "still accepting after exit");
    let log = s.log().join("\n");
    assert!(!log.contains("could not write last_used"), "{log}");

    // Every token answered 200 before the exit has its last_used and its re-hash written.
    let listed: Value = serde_json::from_str(&cli(d, &one, &["token", "list", "--json"])).unwrap();
    let rows = listed.as_array().unwrap();
    let used = used.lock().unwrap().clone();
    assert_eq!(used.len(), tokens.len());
    for i in used {
        let key = &tokens[i][4..16];
        let row = rows.iter().find(|r| r["key"] == *key).unwrap();
        assert!(!row["last_used"].is_null(), "last_used lost for token {i}: {row}");
        assert_eq!(row["pepper_id"], 2, "re-hash lost for token {i}: {row}");
    }
    assert!(rows.iter().any(|r| r["description"] == "created during shutdown"), "{listed}");
}

#[test]
fn sighup_reloads_peppers_and_the_v1_policy_without_dropping_a_connection() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("nbtoken.toml");
    let config_env = config.display().to_string();
    std::fs::write(&config, format!("v1_policy = \"allow\"\n[peppers]\n1 = \"{P1}\"\n")).unwrap();
    let env = [("NBTOKEN_CONFIG", config_env.as_str()), ("NBTOKEN_LOG", "info")];
    cli(d, &env, &["user", "create", "ops", "--superuser"]);
    let (_, old) = new_token(d, &env, "ops", "2");
    let (_, v1) = new_token(d, &env, "ops", "1");
    let s = Running::start(d, &env);
    let get = |conn: &mut TcpStream, auth: &str| {
        exchange(
            conn,
            format!("GET /api/status/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n").as_bytes(),
        )
        .unwrap()
    };
    // One keep-alive connection, used before, across and after the reloads.
    let mut conn = TcpStream::connect(format!("127.0.0.1:{}", s.port)).unwrap();
    assert_eq!(get(&mut conn, &format!("Bearer {old}")), 200);
    assert_eq!(get(&mut conn, &format!("Token {v1}")), 200);

    let reloaded = |count: usize| {
        let started = Instant::now();
        while s.log().iter().filter(|l| l.contains("configuration reloaded")).count() < count {
            assert!(started.elapsed() < Duration::from_secs(10), "no reload:\n{}", s.log().join("\n"));
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let hup = || {
        let st = Command::new("kill").args(["-HUP", &s.child.id().to_string()]).status().unwrap();
        assert!(st.success());
    };
    // A second pepper and v1 denied, by SIGHUP.
    std::fs::write(&config, format!("v1_policy = \"deny\"\n[peppers]\n1 = \"{P1}\"\n2 = \"{P2}\"\n"))
        .unwrap();
    hup();
    reloaded(1);
    let body = r#"{"description": "after the reload"}"#;
    let create = format!(
        "POST /api/users/tokens/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {old}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(create.as_bytes()).unwrap();
    let (status, created) = read_response_body(&mut conn).unwrap();
    assert_eq!(status, 201, "{created}");
    let created: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(created["pepper_id"], 2, "new tokens are hashed with the reloaded pepper: {created}");
    let new = format!("nbt_{}.{}", created["key"].as_str().unwrap(), created["token"].as_str().unwrap());
    assert_eq!(get(&mut conn, &format!("Bearer {new}")), 200);
    assert_eq!(get(&mut conn, &format!("Bearer {old}")), 200);
    assert_eq!(get(&mut conn, &format!("Token {v1}")), 403, "v1 still allowed after the reload");

    // A configuration that does not load is refused; the running one stays.
    std::fs::write(&config, "[peppers]\n1 = \"shortPepperValue42\"\n").unwrap();
    hup();
    let started = Instant::now();
    while !s.log().iter().any(|l| l.contains("reload refused")) {
        assert!(started.elapsed() < Duration::from_secs(10), "{}", s.log().join("\n"));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(&mut conn, &format!("Bearer {new}")), 200);
    assert_eq!(get(&mut conn, &format!("Token {v1}")), 403);
    let log = s.log().join("\n");
    assert!(!log.contains(P2) && !log.contains("shortPepperValue42"), "{log}");
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_nbtoken")).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let rest = text.trim().strip_prefix(concat!("nbtoken ", env!("CARGO_PKG_VERSION"), " (")).unwrap();
    let commit = rest.strip_suffix(')').unwrap();
    let in_git = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--git-dir"])
        .output()
        .is_ok_and(|o| o.status.success());
    if in_git && std::env::var_os("NBTOKEN_COMMIT").is_none() {
        assert_eq!(commit.len(), 12, "{text}");
        assert!(commit.bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
        // A commit of this repository (HEAD may have moved on since the build).
        let st = Command::new("git")
            .args(["-C", env!("CARGO_MANIFEST_DIR"), "cat-file", "-e", &format!("{commit}^{{commit}}")])
            .status()
            .unwrap();
        assert!(st.success(), "{commit} is not a commit here");
    } else {
        assert!(!commit.is_empty(), "{text}");
    }
}

fn nbtoken_out(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_nbtoken")).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

const COMMANDS: [&str; 8] = ["serve", "user", "token", "pepper", "migrate", "audit", "doctor", "scan"];

#[test]
fn completions_and_man_pages_come_from_the_cli_definition() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = nbtoken_out(&["completions", shell]);
        for c in COMMANDS {
            assert!(script.contains(c), "{shell} completions lack {c}");
        }
        assert!(script.contains("data-dir") && script.contains("read-only"), "{shell}");
    }
    // The bash script is valid bash, and completing `nbtoken to` offers `token`.
    let dir = tempfile::tempdir().unwrap();
    let bash = dir.path().join("nbtoken.bash");
    std::fs::write(&bash, nbtoken_out(&["completions", "bash"])).unwrap();
    let probe = format!(
        "source {}; COMP_WORDS=(nbtoken to); COMP_CWORD=1; _nbtoken nbtoken to nbtoken; echo \"${{COMPREPLY[@]}}\"",
        bash.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "token");
    assert!(nbtoken_out(&["completions", "zsh"]).starts_with("#compdef nbtoken"));
    let (ok, _, err) = run(Command::new(env!("CARGO_BIN_EXE_nbtoken")).args(["completions", "tcsh"]), None);
    assert!(!ok && err.contains("tcsh"), "{err}");

    let page = nbtoken_out(&["man"]);
    assert!(page.contains(".TH nbtoken 1"), "{page}");
    for c in COMMANDS {
        assert!(page.contains(&format!("nbtoken\\-{c}(1)")), "man page lacks {c}");
    }
    let create = nbtoken_out(&["man", "token", "create"]);
    assert!(create.contains(".TH nbtoken-token-create 1"), "{create}");
    for flag in ["read\\-only", "allowed\\-ip", "expires", "data\\-dir"] {
        assert!(create.contains(flag), "token create page lacks {flag}");
    }
    let (ok, _, err) = run(Command::new(env!("CARGO_BIN_EXE_nbtoken")).args(["man", "nope"]), None);
    assert!(!ok && err.contains("nope"), "{err}");
    // groff renders it without a warning.
    if let Ok(mut groff) = Command::new("groff")
        .args(["-man", "-Tascii", "-ww", "-P-c", "-P-b", "-P-u"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        groff.stdin.take().unwrap().write_all(create.as_bytes()).unwrap();
        let out = groff.wait_with_output().unwrap();
        assert!(out.status.success());
        assert!(out.stderr.is_empty(), "groff: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("--read-only"));
    } else {
        skip("groff not found (apt-get install groff-base)");
    }
}

/// Says why a check cannot run here; under `CI` that is a failure.
fn skip(why: &str) {
    nbtoken_testkit::skip(why, "this packaging check");
}

fn packaging(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging").join(file)
}

#[test]
fn systemd_unit_verifies_and_is_sandboxed() {
    let Ok(v) = Command::new("systemd-analyze").arg("--version").output() else {
        return skip("systemd-analyze not found (apt-get install systemd)");
    };
    assert!(v.status.success());
    let unit = std::fs::read_to_string(packaging("systemd/nbtoken.service")).unwrap();
    for line in [
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "DynamicUser=yes",
        "StateDirectory=nbtoken",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line}");
    }
    // Verified as installed, with this build as the binary.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nbtoken.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/nbtoken", env!("CARGO_BIN_EXE_nbtoken"))).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg("--man=no").arg(&path).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.trim().is_empty(), "systemd-analyze verify:\n{text}");
    let out =
        Command::new("systemd-analyze").arg("security").arg("--offline=yes").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for nbtoken.service: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level:\n{text}{}", String::from_utf8_lossy(&out.stderr)));
    assert!(exposure <= 2.0, "exposure {exposure}:\n{text}");
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_a_volume_and_a_livez_healthcheck() {
    let file = std::fs::read_to_string(packaging("Dockerfile")).unwrap();
    let instructions: Vec<&str> =
        file.lines().filter(|l| !l.starts_with('#') && !l.starts_with(' ')).collect();
    let froms: Vec<&&str> = instructions.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2 && froms[0].ends_with(" AS build"), "{froms:?}");
    assert!(file.contains("COPY --from=build "));
    let user = instructions.iter().rev().find_map(|l| l.strip_prefix("USER ")).expect("a USER");
    assert!(!user.starts_with("root") && !user.starts_with("0"), "runs as {user}");
    assert!(instructions.contains(&"VOLUME [\"/data\"]"));
    assert!(file.contains("NBTOKEN_DATA_DIR=/data"));
    let health = file.split("HEALTHCHECK").nth(1).expect("a HEALTHCHECK");
    assert!(health.lines().take(2).any(|l| l.contains("http://127.0.0.1:8080/livez")), "{health}");
    assert!(file.contains("NBTOKEN_BIND=0.0.0.0:8080"));
    assert!(file.contains("cargo build --release --locked -p nbtoken"));
    // The build context leaves out build output and the repository's history.
    let ignore = std::fs::read_to_string(packaging("Dockerfile.dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "target/") && ignore.lines().any(|l| l == ".git/"));
}

#[test]
fn compose_file_runs_nbtoken_on_postgres_behind_nginx() {
    let text = std::fs::read_to_string(packaging("compose.yaml")).unwrap();
    let c: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("compose.yaml does not parse: {e}"));
    let svc = &c["services"];
    let nb = &svc["nbtoken"];
    assert_eq!(nb["build"]["dockerfile"], "packaging/Dockerfile");
    assert!(Path::new(&packaging(nb["build"]["context"].as_str().unwrap())).join("Cargo.lock").exists());
    let url = nb["environment"]["NBTOKEN_DATABASE_URL"].as_str().unwrap();
    assert!(url.starts_with("postgres://") && url.contains("@postgres:5432/"), "{url}");
    assert_eq!(nb["depends_on"]["postgres"]["condition"], "service_healthy");
    assert!(nb["volumes"][0].as_str().unwrap().ends_with(":/data"));
    assert!(nb.get("ports").is_none(), "nbtoken is published around nginx");
    // nginx is the one trusted proxy, by its fixed address.
    let nginx = &svc["nginx"];
    let proxy = nginx["networks"]["front"]["ipv4_address"].as_str().unwrap();
    assert_eq!(nb["environment"]["NBTOKEN_TRUSTED_PROXIES"], proxy);
    assert_eq!(nginx["depends_on"]["nbtoken"]["condition"], "service_healthy");
    let mount = nginx["volumes"][0].as_str().unwrap();
    assert!(packaging(mount.split(':').next().unwrap()).exists(), "{mount}");
    assert!(svc["postgres"]["image"].as_str().unwrap().starts_with("postgres:"));
    assert!(svc["postgres"].get("ports").is_none());
}

#[test]
fn packaged_nginx_config_proxies_to_nbtoken_and_replaces_forwarding_headers() {
    let Some(nginx) =
        ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"].iter().find(|p| Path::new(p).exists())
    else {
        return skip("nginx not found (apt-get install nginx-light)");
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = [("NBTOKEN_PEPPER_1", P1), ("NBTOKEN_TRUSTED_PROXIES", "127.0.0.1")];
    cli(d, &env, &["user", "create", "ops", "--superuser"]);
    let (_, token) = new_token(d, &env, "ops", "2");
    // A token that works only from 10.9.9.9: a client claiming that address must not get in.
    let pinned: Value = serde_json::from_str(&cli(
        d,
        &env,
        &["token", "create", "--user", "ops", "--allowed-ip", "10.9.9.9/32", "--json"],
    ))
    .unwrap();
    let pinned = format!("nbt_{}.{}", pinned["key"].as_str().unwrap(), pinned["token"].as_str().unwrap());
    let s = Running::start(d, &env);
    let listen = free_port();
    let server = std::fs::read_to_string(packaging("nginx.conf"))
        .unwrap()
        .replace("server nbtoken:8080;", &format!("server 127.0.0.1:{};", s.port))
        .replace("listen 80;", &format!("listen 127.0.0.1:{listen};"));
    let p = d.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {p}/nginx.pid;\nevents {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n client_body_temp_path {p}/body;\n proxy_temp_path {p}/proxy;\n \
         fastcgi_temp_path {p}/fastcgi;\n uwsgi_temp_path {p}/uwsgi;\n scgi_temp_path {p}/scgi;\n{server}\n}}\n"
    );
    std::fs::write(d.join("nginx.conf"), conf).unwrap();
    let mut proxy = Command::new(nginx)
        .arg("-p")
        .arg(d)
        .arg("-c")
        .arg(d.join("nginx.conf"))
        .arg("-e")
        .arg(d.join("error.log"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{listen}");
    wait_live(&base, "nginx", Duration::from_secs(10));
    let bearer = format!("Authorization: Bearer {token}");
    let results = [
        curl(&["-H", &bearer, &format!("{base}/api/status/")]).0,
        curl(&[&format!("{base}/metrics")]).0,
        curl(&[
            "-H",
            &format!("Authorization: Bearer {pinned}"),
            "-H",
            "X-Forwarded-For: 10.9.9.9",
            "-H",
            "X-Real-IP: 10.9.9.9",
            &format!("{base}/api/status/"),
        ])
        .0,
    ];
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert_eq!(results, [200, 403, 403], "status through nginx, /metrics, a spoofed address");
}
