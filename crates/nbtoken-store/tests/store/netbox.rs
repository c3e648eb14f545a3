//! The NetBox store on a copy of a real NetBox 4.7.3 database, one copy per test.
//!
//! `NBTOKEN_TEST_NETBOX` names the directory of the NetBox test install; its
//! file `template` names the migrated template database, which is copied
//! (`CREATE DATABASE … TEMPLATE …`) on the server of `NBTOKEN_TEST_DATABASE_URL`
//! and dropped afterwards. Rows are inserted as NetBox stores them: a v2
//! digest is HMAC-SHA256(pepper, secret) in hex, as core computes it (core's
//! vectors prove it matches NetBox), a v1 token its plaintext.

use std::time::Duration;

use nbtoken_core::{Pepper, PepperId, Secret, SecretString, StoredCredential, TokenVersion};
use nbtoken_store::netbox::{NetBoxAdmin, MANAGED_BY_NETBOX};
use nbtoken_store::{
    AnyStore, Change, NetBoxOptions, NetBoxStore, NewToken, NewUser, Page, Store, StoreError, StoreKind,
    TokenFilter, TokenPatch, Touch, UserFilter, UserPatch,
};
use sqlx::postgres::PgPool;
use sqlx::{Connection, Row};
use time::OffsetDateTime;

use super::postgres::{database_url, unique_schema};

const ALL: Page = Page { limit: 1000, offset: 0 };

/// A copy of the NetBox template database, dropped with this value.
struct NetBoxDb {
    server: String,
    name: String,
    url: String,
    /// Raw SQL on the copy, as NetBox would write it.
    sql: PgPool,
}

impl NetBoxDb {
    /// `None` (after saying so) without the NetBox test install or a PostgreSQL server.
    async fn new() -> Option<Self> {
        let dir = nbtoken_testkit::env_or_skip("NBTOKEN_TEST_NETBOX", "the NetBox store tests")?;
        let server = database_url()?;
        let template = std::fs::read_to_string(std::path::Path::new(&dir).join("template"))
            .unwrap_or_else(|e| panic!("{dir}/template: {e}"));
        let name = format!("{}_netbox", unique_schema());
        let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {}", template.trim()))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        let (base, _) = server.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        let sql = PgPool::connect(&url).await.unwrap();
        Some(Self { server, name, url, sql })
    }

    async fn store(&self, rehash: bool) -> NetBoxStore {
        NetBoxStore::connect(&self.url, NetBoxOptions::new().rehash(rehash)).await.unwrap()
    }

    async fn exec(&self, sql: &str) {
        sqlx::raw_sql(sql).execute(&self.sql).await.unwrap();
    }

    async fn one<T>(&self, sql: &str) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
    {
        sqlx::query_scalar(sql).fetch_one(&self.sql).await.unwrap()
    }

    /// A NetBox user (a Django password hash, as NetBox stores one).
    async fn user(&self, name: &str, active: bool) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO users_user (password, is_superuser, username, first_name, last_name, email, \
             is_active, date_joined) VALUES ('pbkdf2_sha256$1000000$c2FsdA$aGFzaA==', false, $1, 'First', \
             'Last', 'x@example.org', $2, now()) RETURNING id",
        )
        .bind(name)
        .bind(active)
        .fetch_one(&self.sql)
        .await
        .unwrap()
    }

    /// A v2 token as NetBox stores it, then `set` (an SQL `SET` list, if any); answers its id.
    async fn v2(&self, user: i64, key: &str, pepper: &Pepper, secret: &str, set: &str) -> i64 {
        let digest = pepper.digest(secret).to_hex();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users_token (created, write_enabled, description, user_id, enabled, version, key, \
             pepper_id, hmac_digest) VALUES (now(), true, 'v2 token', $1, true, 2, $2, $3, $4) RETURNING id",
        )
        .bind(user)
        .bind(key)
        .bind(i16::try_from(pepper.id().get()).unwrap())
        .bind(digest)
        .fetch_one(&self.sql)
        .await
        .unwrap();
        if !set.is_empty() {
            self.exec(&format!("UPDATE users_token SET {set} WHERE id = {id}")).await;
        }
        id
    }

    /// A v1 token as NetBox stores it; answers its id.
    async fn v1(&self, user: i64, plaintext: &str) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO users_token (created, write_enabled, description, user_id, enabled, version, \
             plaintext) VALUES (now(), false, 'v1 token', $1, true, 1, $2) RETURNING id",
        )
        .bind(user)
        .bind(plaintext)
        .fetch_one(&self.sql)
        .await
        .unwrap()
    }

    /// NetBox's schema as the catalog describes it (columns, constraints, indexes, triggers),
    /// outside nbtoken's schema: equal before and after nbtoken came and went.
    async fn shape(&self) -> String {
        self.one(
            "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM ( \
               SELECT table_schema || '.' || table_name || '.' || column_name || ':' || data_type || ':' \
                 || is_nullable || ':' || coalesce(column_default, '') AS x \
               FROM information_schema.columns WHERE table_schema NOT IN ('nbtoken', 'pg_catalog', 'information_schema') \
               UNION ALL SELECT conrelid::regclass::text || ':' || conname || ':' || pg_get_constraintdef(c.oid) \
               FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
               WHERE n.nspname NOT IN ('nbtoken', 'pg_catalog', 'information_schema') \
               UNION ALL SELECT schemaname || '.' || indexname || ':' || indexdef FROM pg_indexes \
               WHERE schemaname NOT IN ('nbtoken', 'pg_catalog') \
               UNION ALL SELECT tgrelid::regclass::text || ':' || tgname FROM pg_trigger WHERE NOT tgisinternal \
             ) AS shape",
        )
        .await
    }

    async fn admin(&self) -> NetBoxAdmin {
        NetBoxAdmin::connect(&self.url).await.unwrap()
    }
}

impl Drop for NetBoxDb {
    fn drop(&mut self) {
        let (server, name, pool) = (self.server.clone(), self.name.clone(), self.sql.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                pool.close().await;
                let mut conn = sqlx::PgConnection::connect(&server).await.map_err(|e| e.to_string())?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

fn pepper(id: u16) -> Pepper {
    Pepper::new(PepperId::new(id).unwrap(), SecretString::new(format!("netbox-test-pepper-{id}-").repeat(4)))
        .unwrap()
}

fn touch(token_id: i64, at: OffsetDateTime) -> Touch {
    Touch {
        ip: Some("192.0.2.7".parse().unwrap()),
        user_agent: Some("pynetbox/7.4".into()),
        ..Touch::at(token_id, at)
    }
}

fn digest_hex(r: &nbtoken_store::TokenRecord) -> (u16, String) {
    match &r.token.credential {
        StoredCredential::V2 { pepper_id, digest, previous, .. } => {
            assert!(previous.is_none(), "NetBox has no previous secret");
            (pepper_id.get(), digest.to_hex())
        }
        StoredCredential::V1 { .. } => panic!("not v2"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_stored_by_netbox_read_back_as_netbox_decides_them() {
    let Some(db) = NetBoxDb::new().await else { return };
    let s = db.store(false).await;
    let ann = db.user("ann", true).await;
    let gone = db.user("gone", false).await;
    let p1 = pepper(1);
    let secret = Secret::generate().unwrap();
    let v2 = db.v2(ann, "AbCdEfGhIjKl", &p1, secret.expose(), "").await;
    let limited = db
        .v2(
            ann,
            "LimitedKey01",
            &p1,
            secret.expose(),
            "allowed_ips = '{10.0.0.0/8,192.0.2.1/32,2001:db8::/32}'::cidr[]",
        )
        .await;
    let expired =
        db.v2(ann, "ExpiredKey01", &p1, secret.expose(), "expires = now() - interval '1 day'").await;
    let disabled =
        db.v2(ann, "DisabledKey1", &p1, secret.expose(), "allowed_ips = '{}'::cidr[], enabled = false").await;
    let inactive = db.v2(gone, "InactiveKey1", &p1, secret.expose(), "").await;
    let plaintext = "0123456789abcdef0123456789abcdef01234567";
    let v1 = db.v1(ann, plaintext).await;

    let r = s.token_by_key("AbCdEfGhIjKl").await.unwrap().unwrap();
    assert_eq!(r.token.id, v2);
    assert_eq!(digest_hex(&r), (1, p1.digest(secret.expose()).to_hex()));
    assert!(r.token.enabled && r.token.write_enabled && r.token.expires.is_none() && r.user_active);
    assert!(!r.token.allowed_ips.is_list(), "NULL allowed_ips: any address");
    assert_eq!((r.username.as_str(), r.description.as_str(), r.last_used_ip), ("ann", "v2 token", None));

    let r = s.token(limited).await.unwrap().unwrap();
    let nets: Vec<String> = r.token.allowed_ips.nets().iter().map(ToString::to_string).collect();
    assert_eq!(nets, ["10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"]);
    assert!(r.token.allowed_ips.permits("192.0.2.1".parse().unwrap()));
    assert!(!r.token.allowed_ips.permits("192.0.2.2".parse().unwrap()));
    let r = s.token(disabled).await.unwrap().unwrap();
    assert!(!r.token.enabled && r.token.allowed_ips.is_list() && r.token.allowed_ips.nets().is_empty());
    let r = s.token(expired).await.unwrap().unwrap();
    assert!(r.token.expires.unwrap() < OffsetDateTime::now_utc());
    let r = s.token(inactive).await.unwrap().unwrap();
    assert!(!r.user_active);

    let r = s.token_by_plaintext(plaintext).await.unwrap().unwrap();
    assert_eq!((r.token.id, r.token.version(), r.token.write_enabled), (v1, TokenVersion::V1, false));
    assert!(s.token_by_key("NoSuchKey000").await.unwrap().is_none());
    assert!(s.token_by_plaintext(&"f".repeat(40)).await.unwrap().is_none());

    // Users: no grant permission, and NetBox's Django hash never leaves the database.
    let u = s.user(ann).await.unwrap().unwrap();
    assert_eq!((u.username.as_str(), u.first_name.as_str(), u.password_hash), ("ann", "First", None));
    assert!(u.is_active && !u.is_superuser && !u.can_grant_tokens);
    assert!(!s.user_by_name("gone").await.unwrap().unwrap().is_active);
    let (n, users) =
        s.list_users(&UserFilter { is_active: Some(true), ..Default::default() }, ALL).await.unwrap();
    assert!(n >= 1 && users.iter().all(|u| u.is_active && u.password_hash.is_none()));

    // List filters and pepper usage, as on nbtoken's own store.
    let by = |filter| {
        let s = &s;
        async move { s.list_tokens(&filter, ALL).await.unwrap().0 }
    };
    assert_eq!(by(TokenFilter { user_ids: vec![ann], ..Default::default() }).await, 5);
    assert_eq!(by(TokenFilter { version: Some(TokenVersion::V1), ..Default::default() }).await, 1);
    assert_eq!(by(TokenFilter { enabled: Some(false), ..Default::default() }).await, 1);
    assert_eq!(by(TokenFilter { keys: vec!["LimitedKey01".into()], ..Default::default() }).await, 1);
    assert_eq!(by(TokenFilter { usernames: vec!["gone".into()], ..Default::default() }).await, 1);
    let usage = s.pepper_usage().await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].pepper_id.get(), usage[0].tokens), (1, 5));

    // Through AnyStore, as the server and the CLI open it.
    let any = AnyStore::connect_as(&db.url, StoreKind::NetBox { rehash: false }).await.unwrap();
    assert_eq!(any.backend_name(), "netbox");
    assert_eq!(any.token_by_key("AbCdEfGhIjKl").await.unwrap().unwrap().token.id, v2);
    // The shared failure budgets live in nbtoken's schema.
    let budgets = any.failure_counts().expect("shared failure budgets on NetBox's database");
    let added = budgets.add(Duration::from_secs(60), &[("ip:192.0.2.9".into(), 3)]).await.unwrap();
    assert_eq!((added[0].subject.as_str(), added[0].failures), ("ip:192.0.2.9", 3.0));
    budgets.block(&[("ip:192.0.2.9".into(), Duration::from_secs(30))]).await.unwrap();
    assert_eq!(budgets.recent_blocks(Duration::from_secs(5)).await.unwrap().len(), 1);
    let kept: i64 = db.one("SELECT COUNT(*) FROM nbtoken.failures").await;
    assert_eq!(kept, 1);
    let err = AnyStore::connect_as("sqlite::memory:", StoreKind::NetBox { rehash: false }).await.unwrap_err();
    assert!(matches!(&err, StoreError::Config(m) if m.contains("postgres://")), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_management_write_is_read_only() {
    let Some(db) = NetBoxDb::new().await else { return };
    let s = db.store(true).await;
    let ann = db.user("ann", true).await;
    let p1 = pepper(1);
    let secret = Secret::generate().unwrap();
    let id = db.v2(ann, "AbCdEfGhIjKl", &p1, secret.expose(), "").await;
    let before: String = db.one("SELECT string_agg(t::text, '|' ORDER BY id) FROM users_token t").await;
    let users_before: String = db.one("SELECT string_agg(u::text, '|' ORDER BY id) FROM users_user u").await;

    let credential = StoredCredential::V1 { plaintext: nbtoken_core::V1Plaintext::generate().unwrap() };
    let new_token = NewToken {
        user_id: ann,
        credential,
        description: String::new(),
        expires: None,
        enabled: true,
        write_enabled: true,
        allowed_ips: Default::default(),
    };
    let results: Vec<(&str, StoreError)> = vec![
        (
            "create_user",
            s.create_user(NewUser { username: "eve".into(), ..Default::default() }).await.unwrap_err(),
        ),
        (
            "update_user",
            s.update_user(ann, UserPatch { is_superuser: Some(true), ..Default::default() })
                .await
                .unwrap_err(),
        ),
        ("delete_user", s.delete_user(ann).await.unwrap_err()),
        ("create_token", s.create_token(new_token).await.unwrap_err()),
        (
            "update_token",
            s.update_token(id, TokenPatch { enabled: Some(false), ..Default::default() }).await.unwrap_err(),
        ),
        ("delete_token", s.delete_token(id).await.unwrap_err()),
        ("rotate_token", s.rotate_token(id, p1.id(), p1.digest("x"), None).await.unwrap_err()),
    ];
    for (call, err) in results {
        assert!(matches!(err, StoreError::ReadOnly(m) if m == MANAGED_BY_NETBOX), "{call}: {err:?}");
        assert!(err.to_string().contains("management stays NetBox's"), "{call}: {err}");
    }
    let after: String = db.one("SELECT string_agg(t::text, '|' ORDER BY id) FROM users_token t").await;
    let users_after: String = db.one("SELECT string_agg(u::text, '|' ORDER BY id) FROM users_user u").await;
    assert_eq!((before, users_before), (after, users_after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_is_written_with_netboxs_once_a_minute_rule_and_uses_are_recorded() {
    let Some(db) = NetBoxDb::new().await else { return };
    let s = db.store(false).await;
    let ann = db.user("ann", true).await;
    let p1 = pepper(1);
    let secret = Secret::generate().unwrap();
    let v2 = db.v2(ann, "AbCdEfGhIjKl", &p1, secret.expose(), "").await;
    let v1 = db.v1(ann, "0123456789abcdef0123456789abcdef01234567").await;
    let last_used = |id: i64| {
        let sql = format!("SELECT last_used FROM users_token WHERE id = {id}");
        let db = &db;
        async move { db.one::<Option<OffsetDateTime>>(&sql).await }
    };
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - time::Duration::minutes(10);

    s.apply_touches(&[touch(v2, t0), touch(v1, t0)]).await.unwrap();
    assert_eq!(last_used(v2).await, Some(t0));
    // Two touches within a minute write once; one later than a minute writes again; never backwards.
    s.apply_touches(&[touch(v2, t0 + time::Duration::seconds(30))]).await.unwrap();
    assert_eq!(last_used(v2).await, Some(t0));
    s.apply_touches(&[touch(v2, t0 + time::Duration::seconds(60))]).await.unwrap();
    assert_eq!(last_used(v2).await, Some(t0), "NetBox writes only when more than 60 s passed");
    s.apply_touches(&[touch(v2, t0 + time::Duration::seconds(61))]).await.unwrap();
    assert_eq!(last_used(v2).await, Some(t0 + time::Duration::seconds(61)));
    s.apply_touches(&[touch(v2, t0 - time::Duration::minutes(5))]).await.unwrap();
    assert_eq!(last_used(v2).await, Some(t0 + time::Duration::seconds(61)));

    // In NetBox's maintenance mode NetBox writes no last_used, and neither does nbtoken.
    db.exec(
        "INSERT INTO core_configrevision (created, comment, data, active) \
         VALUES (now(), '', '{\"MAINTENANCE_MODE\": true}', true)",
    )
    .await;
    s.apply_touches(&[touch(v1, t0 + time::Duration::minutes(5))]).await.unwrap();
    assert_eq!(last_used(v1).await, Some(t0));
    db.exec("UPDATE core_configrevision SET active = false").await;
    s.apply_touches(&[touch(v1, t0 + time::Duration::minutes(6))]).await.unwrap();
    assert_eq!(last_used(v1).await, Some(t0 + time::Duration::minutes(6)));

    // nbtoken's own record: address and User-Agent of the latest use, v1 counts.
    let r = s.token(v1).await.unwrap().unwrap();
    assert_eq!(r.last_used_ip, Some("192.0.2.7".parse().unwrap()));
    let row = sqlx::query("SELECT uses, v1_uses, v1_last_user_agent, host(v1_last_ip) AS ip FROM nbtoken.token_use WHERE token_id = $1")
        .bind(v1)
        .fetch_one(&db.sql)
        .await
        .unwrap();
    assert_eq!(row.get::<i64, _>("uses"), 3);
    assert_eq!(row.get::<i64, _>("v1_uses"), 3);
    assert_eq!(row.get::<Option<String>, _>("v1_last_user_agent").as_deref(), Some("pynetbox/7.4"));
    assert_eq!(row.get::<Option<String>, _>("ip").as_deref(), Some("192.0.2.7"));
    let uses = s.token_uses(&[v2, v1, 999_999]).await.unwrap();
    assert_eq!(uses.len(), 2);
    assert_eq!((uses[0].token_id, uses[0].uses, uses[0].v1_uses, &uses[0].v1_last), (v2, 5, 0, &None));
    let agent = Some("pynetbox/7.4".to_owned());
    assert_eq!(uses[0].last_user_agent, agent);
    assert_eq!(uses[0].last_seen, t0 + time::Duration::seconds(61), "the latest use, not the last one sent");
    let ip = Some("192.0.2.7".parse().unwrap());
    assert_eq!(uses[1].v1_last, Some((t0 + time::Duration::minutes(6), ip, agent)));
    // A deleted token's touch is skipped.
    db.exec(&format!("DELETE FROM users_token WHERE id = {v2}")).await;
    s.apply_touches(&[touch(v2, OffsetDateTime::now_utc())]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehash_writes_netboxs_row_only_when_on_and_over_the_verified_digest() {
    let Some(db) = NetBoxDb::new().await else { return };
    let ann = db.user("ann", true).await;
    let (p1, p2) = (pepper(1), pepper(2));
    let secret = Secret::generate().unwrap();
    let id = db.v2(ann, "AbCdEfGhIjKl", &p1, secret.expose(), "").await;
    let old = p1.digest(secret.expose());
    let new = p2.digest(secret.expose());
    let rehash = |from: nbtoken_core::Digest| Touch {
        rehash: Some((p2.id(), new.clone())),
        rehash_from: Some(from),
        ..touch(id, OffsetDateTime::now_utc())
    };
    let stored = || async {
        db.one::<String>(&format!("SELECT pepper_id || ':' || hmac_digest FROM users_token WHERE id = {id}"))
            .await
    };

    // Off (the default on NetBox's database): NetBox's row keeps its digest.
    let off = db.store(false).await;
    assert!(!off.rehashes());
    off.apply_touches(&[rehash(old.clone())]).await.unwrap();
    assert_eq!(stored().await, format!("1:{}", old.to_hex()));

    let on = db.store(true).await;
    // A digest NetBox changed meanwhile (the request verified another one) is not overwritten.
    on.apply_touches(&[rehash(p1.digest("another secret"))]).await.unwrap();
    assert_eq!(stored().await, format!("1:{}", old.to_hex()));
    // Without the verified digest there is no guard, so no write.
    on.apply_touches(&[Touch { rehash_from: None, ..rehash(old.clone()) }]).await.unwrap();
    assert_eq!(stored().await, format!("1:{}", old.to_hex()));
    on.apply_touches(&[rehash(old.clone())]).await.unwrap();
    assert_eq!(stored().await, format!("2:{}", new.to_hex()));
    // The row is what NetBox computes for pepper 2: HMAC-SHA256(pepper, secret) in hex.
    let r = on.token(id).await.unwrap().unwrap();
    assert_eq!(digest_hex(&r), (2, p2.digest(secret.expose()).to_hex()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_and_triggers_come_and_go_leaving_netboxs_tables_untouched() {
    let Some(db) = NetBoxDb::new().await else { return };
    let before = db.shape().await;
    let schema_there = || async { db.one::<bool>("SELECT to_regnamespace('nbtoken') IS NOT NULL").await };
    assert!(!schema_there().await);

    let mut admin = db.admin().await;
    let status = admin.status().await.unwrap();
    assert_eq!((status.schema_version, status.triggers, status.netbox_schema.as_str()), (None, 0, "public"));
    assert!(!schema_there().await, "status creates nothing");

    let s = db.store(false).await;
    let again = db.store(false).await;
    assert!(schema_there().await);
    assert_eq!(db.shape().await, before, "the nbtoken schema changes nothing of NetBox's");
    assert!(s.changes().await.unwrap().is_none(), "no triggers: no change feed");

    for _ in 0..2 {
        admin.install_triggers().await.unwrap();
    }
    let status = admin.status().await.unwrap();
    assert_eq!((status.schema_version, status.triggers), (Some(2), 2));
    for _ in 0..2 {
        admin.uninstall_triggers().await.unwrap();
    }
    assert_eq!(admin.status().await.unwrap().triggers, 0);
    assert_eq!(db.shape().await, before);

    admin.install_triggers().await.unwrap();
    for _ in 0..2 {
        admin.uninstall().await.unwrap();
    }
    assert!(!schema_there().await);
    assert_eq!(db.shape().await, before, "uninstall removes everything nbtoken added");
    assert_eq!(admin.status().await.unwrap().schema_version, None);
    admin.close().await;
    drop((s, again));
}

async fn next(l: &mut nbtoken_store::ChangeListener) -> Change {
    tokio::time::timeout(Duration::from_secs(1), l.recv()).await.expect("no change within 1 s").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_triggers_deliver_netboxs_changes_within_a_second() {
    let Some(db) = NetBoxDb::new().await else { return };
    let ann = db.user("ann", true).await;
    let p1 = pepper(1);
    let secret = Secret::generate().unwrap();
    let id = db.v2(ann, "AbCdEfGhIjKl", &p1, secret.expose(), "").await;
    let s = db.store(false).await;
    let mut admin = db.admin().await;
    admin.install_triggers().await.unwrap();
    let mut listener = s.changes().await.unwrap().expect("triggers installed: a change feed");
    // NetBox's own last_used write (and nbtoken's) does not fire; disabling the token does.
    db.exec(&format!("UPDATE users_token SET last_used = now() WHERE id = {id}")).await;
    db.exec(&format!("UPDATE users_token SET enabled = false WHERE id = {id}")).await;
    assert_eq!(next(&mut listener).await, Change::Token(id));
    db.exec(&format!("UPDATE users_user SET last_login = now() WHERE id = {ann}")).await;
    db.exec(&format!("UPDATE users_user SET is_active = false WHERE id = {ann}")).await;
    assert_eq!(next(&mut listener).await, Change::User(ann));
    db.exec(&format!("DELETE FROM users_token WHERE id = {id}")).await;
    assert_eq!(next(&mut listener).await, Change::Token(id));
    admin.uninstall().await.unwrap();
    admin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_without_netboxs_v2_columns_is_refused_by_name() {
    let Some(db) = NetBoxDb::new().await else { return };
    db.exec("ALTER TABLE users_token DROP CONSTRAINT enforce_version_dependent_fields").await;
    db.exec("ALTER TABLE users_token DROP COLUMN pepper_id, DROP COLUMN hmac_digest").await;
    let err = NetBoxStore::connect(&db.url, NetBoxOptions::new()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    assert!(text.contains("not a NetBox 4.5+ database") && text.contains("pepper_id, hmac_digest"), "{text}");
    let no_schema: bool = db.one("SELECT to_regnamespace('nbtoken') IS NULL").await;
    assert!(no_schema, "nothing is created on a database that is not NetBox's");
    db.exec("DROP TABLE users_token").await;
    let err = NetBoxAdmin::connect(&db.url).await.unwrap_err().to_string();
    assert!(err.contains("table users_token"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_uses_per_day_are_counted_in_nbtokens_schema_and_a_deleted_tokens_are_not_read() {
    let Some(db) = NetBoxDb::new().await else { return };
    let s = db.store(false).await;
    let ann = db.user("ann", true).await;
    let v1 = db.v1(ann, "0123456789abcdef0123456789abcdef01234567").await;
    let gone = db.v1(ann, "76543210fedcba9876543210fedcba9876543210").await;
    let today = OffsetDateTime::now_utc().date();
    let uses = |token_id, uses| nbtoken_store::DayUses { token_id, day: today, uses };

    s.add_v1_uses(&[uses(v1, 2), uses(gone, 5)]).await.unwrap();
    s.add_v1_uses(&[uses(v1, 1)]).await.unwrap();
    let total = s.v1_uses_per_day(30, None).await.unwrap();
    assert_eq!(total.iter().map(|d| (d.day, d.uses)).collect::<Vec<_>>(), [(today, 8)]);

    // NetBox deletes a token: its rows are no longer read (a later day's first batch prunes them).
    db.exec(&format!("DELETE FROM users_token WHERE id = {gone}")).await;
    let total = s.v1_uses_per_day(30, None).await.unwrap();
    assert_eq!(total.iter().map(|d| (d.day, d.uses)).collect::<Vec<_>>(), [(today, 3)]);
}
