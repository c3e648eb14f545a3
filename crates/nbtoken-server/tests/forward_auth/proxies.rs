//! The proxies Debian packages, each started in the foreground on loopback with the documented
//! configuration from docs/forward-auth/, only its addresses and paths replaced.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// docs/forward-auth/, where the documented configurations live.
pub fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/forward-auth")
}

pub fn read_doc(name: &str) -> String {
    std::fs::read_to_string(docs_dir().join(name)).unwrap_or_else(|e| panic!("docs/forward-auth/{name}: {e}"))
}

/// A proxy that the matrix runs behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Caddy,
    Haproxy,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Caddy => "Caddy",
            Kind::Haproxy => "HAProxy",
        }
    }

    fn env_var(self) -> &'static str {
        match self {
            Kind::Nginx => "NBTOKEN_TEST_NGINX",
            Kind::Caddy => "NBTOKEN_TEST_CADDY",
            Kind::Haproxy => "NBTOKEN_TEST_HAPROXY",
        }
    }

    fn package(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx-light",
            Kind::Caddy => "caddy",
            Kind::Haproxy => "haproxy",
        }
    }

    fn candidates(self) -> &'static [&'static str] {
        match self {
            Kind::Nginx => &["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"],
            Kind::Caddy => &["/usr/bin/caddy", "/usr/local/bin/caddy"],
            Kind::Haproxy => &["/usr/sbin/haproxy", "/usr/local/sbin/haproxy", "/usr/bin/haproxy"],
        }
    }

    /// The proxy's binary (`NBTOKEN_TEST_<NAME>` or the Debian package's). When it is missing the
    /// test is skipped with a note, except under `CI`, where it fails.
    pub fn binary(self) -> Option<PathBuf> {
        let found = std::env::var_os(self.env_var())
            .map(PathBuf::from)
            .into_iter()
            .chain(self.candidates().iter().map(PathBuf::from))
            .find(|c| c.is_file());
        if found.is_none() {
            let why = format!(
                "{} is not installed (Debian package {}; or set {})",
                self.name(),
                self.package(),
                self.env_var()
            );
            nbtoken_testkit::skip(&why, &format!("the forward-auth matrix behind {}", self.name()));
        }
        found
    }
}

/// A running proxy, stopped on drop.
pub struct Proxy {
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts `kind` (at `binary`) on a free loopback port in front of nbtoken and the upstream.
    pub fn start(kind: Kind, binary: &Path, nbtoken: SocketAddr, upstream: SocketAddr) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let addr = free_port();
        let mut cmd = Command::new(binary);
        match kind {
            Kind::Nginx => {
                let conf = dir.path().join("nginx.conf");
                std::fs::write(&conf, nginx_conf(dir.path(), addr, nbtoken, upstream)).unwrap();
                cmd.arg("-p")
                    .arg(dir.path())
                    .arg("-c")
                    .arg(&conf)
                    .arg("-e")
                    .arg(dir.path().join("error.log"));
            }
            Kind::Caddy => {
                let conf = dir.path().join("Caddyfile");
                std::fs::write(&conf, caddyfile(addr, nbtoken, upstream)).unwrap();
                // Caddy keeps state under $HOME / XDG dirs: keep it in the test's directory.
                cmd.args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(&conf)
                    .env("HOME", dir.path())
                    .env("XDG_CONFIG_HOME", dir.path().join("config"))
                    .env("XDG_DATA_HOME", dir.path().join("data"));
            }
            Kind::Haproxy => {
                let conf = dir.path().join("haproxy.cfg");
                std::fs::write(&conf, haproxy_cfg(addr, nbtoken, upstream)).unwrap();
                cmd.arg("-db").arg("-f").arg(&conf);
            }
        }
        let log = std::fs::File::create(dir.path().join("error.log")).unwrap();
        let child = cmd
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let mut p = Proxy { addr, child, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("{} exited with {status}:\n{}", kind.name(), p.log());
            }
            assert!(Instant::now() < deadline, "{} did not start:\n{}", kind.name(), p.log());
            std::thread::sleep(Duration::from_millis(25));
        }
        p
    }

    /// What the proxy wrote to its error log / stderr, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Replaces the documented example addresses, checking each one was there.
fn place(doc: &str, replacements: &[(&str, String)]) -> String {
    let mut out = doc.to_owned();
    for (from, to) in replacements {
        assert!(out.contains(from), "the documented configuration no longer contains {from:?}");
        out = out.replace(from, to);
    }
    out
}

/// docs/forward-auth/nginx.conf inside a minimal `http { }` with the test's paths.
fn nginx_conf(dir: &Path, listen: SocketAddr, nbtoken: SocketAddr, upstream: SocketAddr) -> String {
    let server = place(
        &read_doc("nginx.conf"),
        &[
            ("listen 80;", format!("listen {listen};")),
            ("127.0.0.1:8080", nbtoken.to_string()),
            ("127.0.0.1:9000", upstream.to_string()),
        ],
    );
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\n{server}\n}}\n"
    )
}

/// docs/forward-auth/Caddyfile, served over plain HTTP on the test's port, with no admin endpoint.
fn caddyfile(listen: SocketAddr, nbtoken: SocketAddr, upstream: SocketAddr) -> String {
    let site = place(
        &read_doc("Caddyfile"),
        &[
            ("app.example.com {", format!("http://{listen} {{")),
            ("127.0.0.1:8080", nbtoken.to_string()),
            ("127.0.0.1:9000", upstream.to_string()),
        ],
    );
    format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{site}")
}

/// docs/forward-auth/haproxy.cfg, loading docs/forward-auth/nbtoken-auth.lua as it is.
fn haproxy_cfg(listen: SocketAddr, nbtoken: SocketAddr, upstream: SocketAddr) -> String {
    let lua = docs_dir().join("nbtoken-auth.lua").canonicalize().unwrap();
    place(
        &read_doc("haproxy.cfg"),
        &[
            ("/etc/haproxy/nbtoken-auth.lua", lua.display().to_string()),
            ("bind :80", format!("bind {listen}")),
            ("127.0.0.1:8080", nbtoken.to_string()),
            ("127.0.0.1:9000", upstream.to_string()),
        ],
    )
}
