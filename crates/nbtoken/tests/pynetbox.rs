//! pynetbox (the Python client NetBox users rely on), unchanged, against `nbtoken serve`.
//!
//! Installs pynetbox from PyPI into a virtualenv under the target directory
//! on first run, starts the real binary, and runs `pynetbox_compat.py`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn venv() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pynetbox-venv");
    let python = dir.join("bin/python");
    let ready = python.exists()
        && Command::new(&python)
            .args(["-c", "import pynetbox"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
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

#[test]
fn pynetbox_works_unchanged() {
    let python = venv();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_nbtoken"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("NBTOKEN_LOG", "warn")
        .env_remove("NBTOKEN_DATABASE_URL")
        .env_remove("NBTOKEN_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(server.stderr.take().unwrap());
    for line in stderr.lines() {
        if line.unwrap().starts_with("listening on") {
            break;
        }
    }
    // stdout is a pipe, not a terminal: the first start names an owner-only file holding the password.
    let mut password = None;
    for line in BufReader::new(server.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(path) = line.split(" are in ").nth(1).and_then(|rest| rest.split(" (").next()) {
            let text = std::fs::read_to_string(path).unwrap();
            password =
                text.lines().find_map(|l| l.trim().strip_prefix("password:")).map(|p| p.trim().to_owned());
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    let out = Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pynetbox_compat.py"))
        .env("NB_URL", format!("http://127.0.0.1:{port}"))
        .env("NB_USER", "admin")
        .env("NB_PASSWORD", password.expect("admin password printed on first start"))
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "pynetbox checks failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("pynetbox: all checks passed"));
}
