//! A PostgreSQL outage, on a throwaway cluster of the test's own (initdb +
//! pg_ctl on a free loopback port, never the shared server): once the store
//! knows the database is down, requests fail at once with 503 instead of each
//! waiting out the 5 s pool timeout (a circuit breaker; the first request
//! learns it from a probe after 0.5 s), `/healthz` says since when, and
//! service resumes by itself when the database is back.
//!
//! Needs PostgreSQL's server binaries (`/usr/lib/postgresql/*/bin`); without
//! them the test says it is skipped (and fails when `CI` is set).

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::Spawned;
use nbtoken_core::{PepperId, PepperRing, SecretString};
use nbtoken_store::{AnyStore, PgStore, Store};
use serde_json::Value;

const PEPPER: &str = "pg-outage-pepper-0123456789-0123456789-0123456789-0123456789";

/// The pool's own wait for a connection: what every request paid during an outage before the breaker.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// A PostgreSQL cluster in a temporary directory, stopped on drop.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

fn skip(why: &str) -> Option<Cluster> {
    nbtoken_testkit::skip(why, "the PostgreSQL outage test");
    None
}

/// Runs a PostgreSQL binary as the `postgres` user when we are root (initdb refuses root).
fn pg(bin: &Path, tool: &str, args: &[&str]) -> bool {
    let exe = bin.join(tool);
    let is_root =
        Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false);
    let mut cmd = if is_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    cmd.status().map(|s| s.success()).unwrap_or(false)
}

impl Cluster {
    fn start() -> Option<Cluster> {
        let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
            .unwrap_or_default();
        bins.sort();
        let Some(bin) =
            bins.into_iter().rev().find(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        else {
            return skip("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql");
        };
        let dir = tempfile::tempdir().unwrap();
        // The cluster runs as `postgres`: give it the directory.
        let _ = Command::new("chown").arg("postgres:postgres").arg(dir.path()).status();
        let data = dir.path().join("data");
        let data_s = data.to_str().unwrap();
        if !pg(&bin, "initdb", &["-D", data_s, "-A", "trust", "-U", "postgres", "--no-sync"]) {
            return skip("initdb failed (needs root with a `postgres` user, or to run as a non-root user)");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cluster = Cluster { bin, dir, port };
        assert!(cluster.pg_ctl_start(), "pg_ctl start failed");
        Some(cluster)
    }

    fn pg_ctl_start(&self) -> bool {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("log");
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        pg(
            &self.bin,
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-o", &opts, "-w", "start"],
        )
    }

    fn stop(&self) {
        let data = self.dir.path().join("data");
        assert!(pg(&self.bin, "pg_ctl", &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"]));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = pg(&self.bin, "pg_ctl", &["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
    }
}

async fn get(client: &reqwest::Client, url: String, auth: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let resp = client.get(url).header("authorization", auth).send().await.unwrap();
    let status = resp.status().as_u16();
    let body = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_fails_fast_says_since_when_and_recovers() {
    let Some(cluster) = Cluster::start() else { return };
    let store = AnyStore::from(PgStore::connect(&cluster.url()).await.unwrap());
    let peppers = PepperRing::new([(PepperId::new(1).unwrap(), SecretString::from(PEPPER))]).unwrap();
    let (_, admin) = crate::harness::ops(&store, &peppers).bootstrap_admin(None, "").await.unwrap();
    let admin = format!("Bearer {}", admin.token.expose());
    let server = Spawned::start(store.clone(), peppers, |c| c.announce = false).await;
    let base = server.base();
    let client = reqwest::Client::new();
    // Listing tokens always asks the database (the cache only holds single rows).
    let list = format!("{base}/api/users/tokens/");
    let (status, body, _) = get(&client, list.clone(), &admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&client, format!("{base}/healthz"), "").await.0, 200);

    cluster.stop();
    let outage = Instant::now();
    // The first request finds the database gone.
    let (status, body, first) = get(&client, list.clone(), &admin).await;
    assert_eq!(status, 503, "{body}");
    // Every later one fails fast, without waiting for a connection.
    let mut later = Vec::new();
    for _ in 0..10 {
        let (status, body, took) = get(&client, list.clone(), &admin).await;
        assert_eq!(status, 503, "{body}");
        later.push(took);
    }
    later.sort();
    let worst = *later.last().unwrap();
    // Even the first: a call still waiting after 0.5 s has a probe check the server is there at all.
    assert!(first < POOL_TIMEOUT / 2, "the first request during the outage took {first:?}");
    eprintln!(
        "PostgreSQL outage: first request {first:?}, later requests median {:?} worst {worst:?}",
        later[later.len() / 2]
    );
    assert!(
        worst < POOL_TIMEOUT / 5,
        "a request during a known outage took {worst:?}: it waited for the pool instead of failing fast"
    );
    let (status, health, took) = get(&client, format!("{base}/healthz"), "").await;
    assert_eq!(status, 503, "{health}");
    assert!(took < POOL_TIMEOUT / 5, "/healthz during the outage took {took:?}");
    assert_eq!(health["detail"], "database unreachable", "{health}");
    let since = nbtoken_server::json::parse_timestamp(health["since"].as_str().unwrap()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let outage_age = time::Duration::try_from(outage.elapsed()).unwrap();
    assert!(
        since <= now && since >= now - outage_age - time::Duration::seconds(1),
        "since {since} vs now {now}"
    );
    eprintln!("PostgreSQL outage: /healthz {took:?}");

    // Back up: service resumes without a restart.
    assert!(cluster.pg_ctl_start(), "pg_ctl start failed");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body, _) = get(&client, list.clone(), &admin).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "still 503 15 s after PostgreSQL came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(&client, format!("{base}/healthz"), "").await.0, 200);
    server.stop().await;
    store.close().await;
}
