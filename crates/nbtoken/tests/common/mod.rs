//! Shared helpers: run the real binary, start `serve`, call it with curl.

#![allow(dead_code, clippy::unwrap_used)]

pub mod netbox;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn nbtoken(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nbtoken"));
    c.arg("--data-dir").arg(dir.join("data"));
    for (k, _) in std::env::vars() {
        if k.starts_with("NBTOKEN_") {
            c.env_remove(k);
        }
    }
    c.env("NBTOKEN_LOG", "warn");
    c
}

/// Runs nbtoken in `dir` with the variables `env` and `args`, which must succeed:
/// its stdout and stderr.
pub fn cli_ok(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> (String, String) {
    let (ok, out, err) = run(nbtoken(dir).envs(env.iter().copied()).args(args), stdin);
    assert!(ok, "{args:?}: {err}");
    (out, err)
}

pub fn run(cmd: &mut Command, stdin: Option<&str>) -> (bool, String, String) {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

pub use nbtoken_testkit::free_port;

pub struct Served {
    pub child: Child,
    pub stdout_lines: Vec<String>,
    pub addr: String,
    /// The first start's admin password and token, from the owner-only file whose path
    /// `serve` printed (stdout is a pipe here, not a terminal); `None` on later starts.
    pub first_start: Option<FirstStart>,
}

/// What the first start wrote to `first-start-admin.txt`.
pub struct FirstStart {
    pub path: std::path::PathBuf,
    pub password: String,
    pub token: String,
}

/// Reads the first-start file named on a `First start: … are in PATH (…` line.
pub fn first_start(stdout_lines: &[String]) -> Option<FirstStart> {
    let line = stdout_lines.iter().find(|l| l.starts_with("First start:"))?;
    let path = line.split(" are in ").nth(1)?.split(" (").next()?;
    let path = std::path::PathBuf::from(path);
    let text = std::fs::read_to_string(&path).unwrap();
    let field = |name: &str| {
        text.lines().find_map(|l| l.trim().strip_prefix(name)).map(|v| v.trim().to_owned()).unwrap()
    };
    Some(FirstStart { password: field("password:"), token: field("token:"), path })
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `nbtoken serve`, waits for `listening on http://ADDR` on stderr, and collects stdout printed before it.
pub fn serve(dir: &std::path::Path) -> Served {
    serve_with(dir, &[])
}

/// Like [`serve`], with extra environment variables.
pub fn serve_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Served {
    let port = free_port();
    let mut cmd = nbtoken(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut addr = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("listening on http://") {
            addr = Some(a.trim().to_owned());
            break;
        }
        assert!(Instant::now() < deadline, "server did not start");
    }
    let stdout = child.stdout.take().unwrap();
    // The first-start banner is printed before listening; read what is there without blocking forever.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdout_lines = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
        stdout_lines.push(l);
    }
    let first_start = first_start(&stdout_lines);
    Served { child, stdout_lines, addr: addr.expect("no listening line"), first_start }
}

/// Waits until `GET {base}/livez` answers 200; `what` names the process when it never does.
pub fn wait_live(base: &str, what: &str, limit: Duration) {
    let started = Instant::now();
    while curl(&[&format!("{base}/livez")]).0 != 200 {
        assert!(started.elapsed() < limit, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `nbtoken serve` from `cmd` (an [`nbtoken`] command with its environment) on a free
/// port, stdout discarded and stderr piped for the test to read; returns it once it is live,
/// with its base URL.
pub fn start_serve(cmd: &mut Command) -> (Child, String) {
    let port = free_port();
    let child = cmd
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_live(&base, "server", Duration::from_secs(20));
    (child, base)
}

pub fn curl(args: &[&str]) -> (u16, String) {
    let out =
        Command::new("curl").args(["-s", "-o", "-", "-w", "\n%{http_code}"]).args(args).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

/// [`curl`] sending `body` as JSON with `method` to `url`, with the `Authorization` value
/// `auth` when there is one.
pub fn curl_json(method: &str, url: &str, auth: Option<&str>, body: &str) -> (u16, String) {
    let auth = auth.map(|a| format!("Authorization: {a}"));
    let mut args = vec!["-X", method, "-H", "Content-Type: application/json", "--data-binary", body];
    if let Some(a) = &auth {
        args.extend(["-H", a.as_str()]);
    }
    args.push(url);
    curl(&args)
}

/// A virtualenv with pynetbox 7.8.0 from PyPI, made once under the target directory in
/// `CARGO_TARGET_TMPDIR/<name>` (each test binary names its own); returns its python.
pub fn pynetbox_venv(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = dir.join("bin/python");
    let ready = python.exists()
        && Command::new(&python).args(["-c", "import pynetbox"]).status().is_ok_and(|s| s.success());
    if !ready {
        let st = Command::new("python3").arg("-m").arg("venv").arg(&dir).status().expect("python3 is needed");
        assert!(st.success(), "python3 -m venv failed (install python3-venv)");
        let st = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "pynetbox==7.8.0"])
            .status()
            .unwrap();
        assert!(st.success(), "pip install pynetbox failed");
    }
    python
}
