//! pynetbox (the Python client NetBox users rely on), unchanged, against `nbtoken serve`.
//!
//! Installs pynetbox from PyPI into a virtualenv under the target directory
//! on first run, starts the real binary, and runs `pynetbox_compat.py`.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn pynetbox_works_unchanged() {
    let python = common::pynetbox_venv("pynetbox-venv");
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
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
