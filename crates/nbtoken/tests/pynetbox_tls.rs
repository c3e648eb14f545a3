//! Issue 16, item 4: pynetbox through a real TLS terminator. nginx, with a self-signed
//! certificate made by openssl, listens with TLS and forwards to `nbtoken serve`, which
//! trusts it (`NBTOKEN_TRUSTED_PROXIES`) and takes the scheme from its
//! `X-Forwarded-Proto`. pynetbox lists several pages by following `next`; a `next` link
//! that said `http://` would send the token in cleartext to the TLS port (nginx answers 400).
//!
//! Needs nginx and openssl (./test.sh and .ci/run install them): without them the test
//! says it was skipped, except under `CI`, where it fails. pynetbox comes from PyPI into a
//! virtualenv under the target directory, as in `pynetbox.rs`.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, serve_with};

const PEPPER: &str = "tls-pynetbox-pepper-0123456789-0123456789-0123456789-0123";

/// A system tool, or `None` after saying the test is skipped (a failure under `CI`).
fn tool(candidates: &[&str]) -> Option<PathBuf> {
    let found = candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| Command::new(p).arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok());
    if found.is_none() {
        let why = format!("{} is not installed", candidates[0]);
        nbtoken_testkit::skip(&why, "pynetbox through TLS nginx");
    }
    found
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pynetbox_lists_every_page_over_tls_behind_nginx() {
    let Some(nginx) = tool(&["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]) else { return };
    let Some(openssl) = tool(&["/usr/bin/openssl", "/usr/local/bin/openssl"]) else { return };
    let python = common::pynetbox_venv("pynetbox-tls-venv");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("cert.pem"))
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));

    let served = serve_with(
        &d.join("nbtoken"),
        &[
            ("NBTOKEN_PEPPER_1", PEPPER),
            ("NBTOKEN_TRUSTED_PROXIES", "127.0.0.1"),
            // nginx sets X-Real-IP; what a client sends as X-Forwarded-For is passed on and ignored.
            ("NBTOKEN_CLIENT_IP_HEADER", "X-Real-IP"),
        ],
    );
    let password = served.first_start.as_ref().expect("first start makes an admin").password.clone();
    let port = free_port();
    let dd = d.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dd}/nginx.pid;\nerror_log {dd}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log {dd}/access.log;\n  client_body_temp_path {dd}/body;\n  proxy_temp_path {dd}/proxy;\n  \
         fastcgi_temp_path {dd}/fastcgi;\n  uwsgi_temp_path {dd}/uwsgi;\n  scgi_temp_path {dd}/scgi;\n\
         server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {dd}/cert.pem;\n    ssl_certificate_key {dd}/key.pem;\n    \
         location / {{\n      proxy_pass http://{nbtoken};\n      proxy_set_header Host $http_host;\n      \
         proxy_set_header X-Forwarded-Proto $scheme;\n      proxy_set_header X-Real-IP $remote_addr;\n    }}\n  }}\n}}\n",
        nbtoken = served.addr,
    );
    std::fs::write(d.join("nginx.conf"), conf).unwrap();
    let _nginx = Nginx(
        Command::new(&nginx)
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let log = std::fs::read_to_string(d.join("error.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "nginx did not start:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }

    let out = Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pynetbox_tls.py"))
        .env("NB_URL", format!("https://127.0.0.1:{port}"))
        .env("NB_USER", "admin")
        .env("NB_PASSWORD", password)
        .env("NB_CA", d.join("cert.pem"))
        // requests prefers these to the session's own `verify`.
        .env("REQUESTS_CA_BUNDLE", d.join("cert.pem"))
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    let access = std::fs::read_to_string(d.join("access.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "pynetbox over TLS failed:\n{stdout}\n{stderr}\nnginx access log:\n{access}"
    );
    assert!(stdout.contains("pynetbox-tls: all checks passed"));
    // Every request reached nginx over TLS and was answered without a 400 (plain HTTP to the TLS port).
    assert!(access.lines().count() >= 5, "{access}");
    assert!(!access.contains("\" 400 "), "{access}");
}
