//! Two `nbtoken serve` processes on one PostgreSQL database: a token disabled through one
//! is refused by the other within a second, though the other had it cached; a superuser
//! demoted through one loses the privilege on the other as fast.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::time::{Duration, Instant};

use common::{curl, curl_json, nbtoken, run, serve_with};
use nbtoken_store::PgStore;
use serde_json::Value;

const PEPPER: &str = "scale-pepper-0123456789-0123456789-0123456789-0123456789";

#[test]
fn revocation_reaches_every_instance_within_a_second() {
    let Some(url) = nbtoken_testkit::database_url("the two-instance revocation test") else { return };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let schema = format!("nbtoken_scale_{}", std::process::id());
    let pg = rt.block_on(PgStore::connect_with_schema(&url, &schema)).unwrap();
    let db = format!("{url}?options[search_path]={schema}");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = [("NBTOKEN_DATABASE_URL", db.as_str()), ("NBTOKEN_PEPPER_1", PEPPER)];
    let cli = |args: &[&str]| {
        let mut c = nbtoken(d);
        for (k, v) in env {
            c.env(k, v);
        }
        let (ok, out, err) = run(c.args(args), None);
        assert!(ok, "{args:?}: {err}");
        out
    };
    cli(&["user", "create", "ops", "--superuser"]);
    let token = |desc: &str| -> (i64, String) {
        let v: Value = serde_json::from_str(&cli(&[
            "token",
            "create",
            "--user",
            "ops",
            "--description",
            desc,
            "--json",
        ]))
        .unwrap();
        (
            v["id"].as_i64().unwrap(),
            format!("Bearer nbt_{}.{}", v["key"].as_str().unwrap(), v["token"].as_str().unwrap()),
        )
    };
    let (_, admin) = token("admin");
    let (victim_id, victim) = token("victim");

    let a = serve_with(d, &env);
    let b = serve_with(d, &env);
    let get = |addr: &str, auth: &str| {
        curl(&["-H", &format!("Authorization: {auth}"), &format!("http://{addr}/api/status/")]).0
    };
    // B has the victim cached (default TTL 5 s).
    assert_eq!(get(&b.addr, &victim), 200);
    assert_eq!(get(&b.addr, &victim), 200);

    // The admin changes something through instance A.
    let patch = |path: &str, body: &str| {
        curl_json("PATCH", &format!("http://{}{path}", a.addr), Some(admin.as_str()), body)
    };
    let (code, body) = patch(&format!("/api/users/tokens/{victim_id}/"), r#"{"enabled": false}"#);
    assert_eq!(code, 200, "{body}");
    let disabled_at = Instant::now();
    loop {
        let code = get(&b.addr, &victim);
        if code == 403 {
            break;
        }
        assert_eq!(code, 200);
        assert!(
            disabled_at.elapsed() < Duration::from_secs(1),
            "instance B still accepts the disabled token after 1 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = disabled_at.elapsed();
    eprintln!("instance B refused the disabled token {} ms after A disabled it", took.as_millis());

    // A second superuser, whose user row B caches while she lists every user.
    cli(&["user", "create", "eve", "--superuser"]);
    let v: Value =
        serde_json::from_str(&cli(&["token", "create", "--user", "eve", "--description", "eve", "--json"]))
            .unwrap();
    let eve = format!("Bearer nbt_{}.{}", v["key"].as_str().unwrap(), v["token"].as_str().unwrap());
    let users_seen = |addr: &str| -> (u16, Value) {
        let (code, body) =
            curl(&["-H", &format!("Authorization: {eve}"), &format!("http://{addr}/api/users/users/")]);
        (code, serde_json::from_str(&body).unwrap_or(Value::Null))
    };
    let (code, all) = users_seen(&b.addr);
    assert_eq!((code, all["count"].as_u64()), (200, Some(2)), "{all}");
    let eve_id = all["results"].as_array().unwrap().iter().find(|u| u["username"] == "eve").unwrap()["id"]
        .as_i64()
        .unwrap();
    assert_eq!(users_seen(&b.addr).1["count"], 2);
    let (code, body) = patch(&format!("/api/users/users/{eve_id}/"), r#"{"is_superuser": false}"#);
    assert_eq!(code, 200, "{body}");
    let demoted_at = Instant::now();
    loop {
        let (code, seen) = users_seen(&b.addr);
        assert_eq!(code, 200, "{seen}");
        if seen["count"] == 1 {
            assert_eq!(seen["results"][0]["username"], "eve");
            break;
        }
        assert!(demoted_at.elapsed() < Duration::from_secs(1), "instance B still treats eve as a superuser");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "instance B dropped eve's superuser rights {} ms after A did",
        demoted_at.elapsed().as_millis()
    );
    drop((a, b));
    rt.block_on(pg.drop_schema()).unwrap();
}
