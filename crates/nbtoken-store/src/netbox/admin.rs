//! What nbtoken adds to a NetBox database and how it is removed: the `nbtoken` schema, its migrations, the optional NOTIFY triggers.
//!
//! The triggers are the only objects on NetBox's own tables: `nbtoken_changed`
//! on `users_token` and `users_user`, calling `nbtoken.notify_change()`, which
//! sends the payload the PostgreSQL change listener reads
//! (`<schema>:token:<id>` on channel `nbtoken_changes`). `last_used` writes
//! (NetBox's and nbtoken's) and logins do not fire.

use nbtoken_core::PepperId;
use sqlx::postgres::{PgConnection, PgExecutor};
use sqlx::{Connection, Row};

use super::SCHEMA;
use crate::changes::CHANNEL;
use crate::postgres::{first_connection, map_err, quote_ident, PgOptions};
use crate::{Result, StoreError};

/// The columns nbtoken reads from `users_token` (NetBox 4.5+: `key`, `pepper_id`, `hmac_digest`, `version`).
const TOKEN_COLUMNS: &[&str] = &[
    "id",
    "created",
    "expires",
    "plaintext",
    "write_enabled",
    "description",
    "user_id",
    "allowed_ips",
    "last_used",
    "enabled",
    "version",
    "key",
    "pepper_id",
    "hmac_digest",
];

/// The columns nbtoken reads from `users_user`.
const USER_COLUMNS: &[&str] = &[
    "id",
    "username",
    "first_name",
    "last_name",
    "email",
    "is_active",
    "is_superuser",
    "date_joined",
    "last_login",
];

/// nbtoken's own migrations of its schema, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../migrations/netbox/0001_nbtoken_schema.sql")),
    (2, include_str!("../../migrations/netbox/0002_v1_use_days.sql")),
];

/// The name of the triggers on NetBox's tables.
const TRIGGER: &str = "nbtoken_changed";

/// What [`check_netbox`] found.
pub(crate) struct Found {
    /// The schema of `users_token`.
    pub schema: String,
    /// Whether `core_configrevision` (NetBox's dynamic configuration) is there.
    pub config_revisions: bool,
}

/// Checks that NetBox's tables are there with the columns nbtoken reads; the error names
/// what is missing.
pub(crate) async fn check_netbox(conn: &mut PgConnection) -> Result<Found> {
    let mut missing = Vec::new();
    let mut schema = None;
    for (table, columns) in [("users_token", TOKEN_COLUMNS), ("users_user", USER_COLUMNS)] {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = to_regclass($1)",
        )
        .bind(table)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
        let Some(found) = found else {
            missing.push(format!("table {table}"));
            continue;
        };
        let present: Vec<String> = sqlx::query_scalar(
            "SELECT attname::text FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
        )
        .bind(table)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        let absent: Vec<&str> = columns.iter().copied().filter(|c| !present.iter().any(|p| p == c)).collect();
        if !absent.is_empty() {
            missing.push(format!("{table} columns {}", absent.join(", ")));
        }
        if table == "users_token" {
            schema = Some(found);
        }
    }
    match schema {
        Some(schema) if missing.is_empty() => {
            let config_revisions: bool =
                sqlx::query_scalar("SELECT to_regclass('core_configrevision') IS NOT NULL")
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(map_err)?;
            Ok(Found { schema, config_revisions })
        }
        _ => Err(StoreError::Config(format!(
            "not a NetBox 4.5+ database (missing {}); NBTOKEN_STORE=netbox needs NetBox's own database",
            missing.join("; ")
        ))),
    }
}

/// Creates the `nbtoken` schema if missing and applies its pending migrations, one instance at
/// a time.
pub(crate) async fn migrate(conn: &mut PgConnection) -> Result<()> {
    let mut tx = conn.begin().await.map_err(map_err)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('nbtoken.schema'))")
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    // PostgreSQL checks CREATE on the database even for `CREATE SCHEMA IF NOT EXISTS` on a schema
    // that exists: asked only when it does not, a role needs that privilege for the first start
    // alone (or not at all, if an administrator created the schema for it).
    let exists: bool = sqlx::query_scalar(&format!("SELECT to_regnamespace('{SCHEMA}') IS NOT NULL"))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
    if !exists {
        sqlx::query(&format!("CREATE SCHEMA {SCHEMA}")).execute(&mut *tx).await.map_err(map_err)?;
    }
    sqlx::query(&format!(
        "CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations \
         (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    ))
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    let done: i32 =
        sqlx::query_scalar(&format!("SELECT COALESCE(MAX(version), 0) FROM {SCHEMA}.schema_migrations"))
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > done) {
        sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(map_err)?;
        sqlx::query(&format!("INSERT INTO {SCHEMA}.schema_migrations (version) VALUES ($1)"))
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)
}

/// On how many of NetBox's two tables (`users_token`, `users_user`) nbtoken's trigger is.
pub(crate) async fn triggers_installed<'e>(db: impl PgExecutor<'e>) -> Result<u8> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_trigger WHERE tgname = $1 AND NOT tgisinternal \
         AND tgrelid IN (to_regclass('users_token'), to_regclass('users_user'))",
    )
    .bind(TRIGGER)
    .fetch_one(db)
    .await
    .map_err(map_err)?;
    Ok(u8::try_from(n).unwrap_or(u8::MAX))
}

/// Tokens of one version and pepper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenCount {
    /// 1 or 2.
    pub version: u8,
    /// The pepper of v2 tokens.
    pub pepper_id: Option<PepperId>,
    /// How many.
    pub tokens: u64,
}

/// What nbtoken has added to a NetBox database, and NetBox's tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetBoxStatus {
    /// The schema NetBox's tables are in.
    pub netbox_schema: String,
    /// The latest applied migration of the `nbtoken` schema; `None` when the schema is absent.
    pub schema_version: Option<i32>,
    /// On how many of NetBox's two tables the change-notify trigger is (0, 1 or 2).
    pub triggers: u8,
    /// Tokens by version and pepper.
    pub tokens: Vec<TokenCount>,
    /// v1 uses nbtoken recorded, all tokens together (`None` without the schema).
    pub v1_uses: Option<u64>,
}

/// Installs, inspects and removes what nbtoken adds to a NetBox database. Connecting creates nothing.
#[derive(Debug)]
pub struct NetBoxAdmin {
    conn: PgConnection,
    netbox_schema: String,
}

impl NetBoxAdmin {
    /// Connects and checks that this is a NetBox 4.5+ database.
    pub async fn connect(url: &str) -> Result<Self> {
        let (mut conn, _, _) = first_connection(url, &PgOptions::new()).await?;
        let found = check_netbox(&mut conn).await?;
        Ok(Self { conn, netbox_schema: found.schema })
    }

    /// The schema, its version, the triggers and NetBox's tokens.
    pub async fn status(&mut self) -> Result<NetBoxStatus> {
        let conn = &mut self.conn;
        let schema_there: bool =
            sqlx::query_scalar(&format!("SELECT to_regclass('{SCHEMA}.schema_migrations') IS NOT NULL"))
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?;
        let (schema_version, v1_uses) = if schema_there {
            let version: i32 = sqlx::query_scalar(&format!(
                "SELECT COALESCE(MAX(version), 0) FROM {SCHEMA}.schema_migrations"
            ))
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
            let uses: i64 = sqlx::query_scalar(&format!(
                "SELECT COALESCE(SUM(x.v1_uses), 0)::int8 FROM {SCHEMA}.token_use x \
                 JOIN users_token t ON t.id = x.token_id"
            ))
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
            (Some(version), Some(u64::try_from(uses).unwrap_or(0)))
        } else {
            (None, None)
        };
        let triggers = triggers_installed(&mut *conn).await?;
        let rows = sqlx::query(
            "SELECT version::int4 AS version, pepper_id::int4 AS pepper_id, COUNT(*) AS n FROM users_token \
             GROUP BY version, pepper_id ORDER BY version, pepper_id",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        let tokens = rows
            .iter()
            .map(|r| {
                let version: i32 = r.try_get("version").map_err(map_err)?;
                let pepper: Option<i32> = r.try_get("pepper_id").map_err(map_err)?;
                let n: i64 = r.try_get("n").map_err(map_err)?;
                Ok(TokenCount {
                    version: u8::try_from(version).unwrap_or(u8::MAX),
                    pepper_id: pepper.and_then(|p| u16::try_from(p).ok()).and_then(|p| PepperId::new(p).ok()),
                    tokens: u64::try_from(n).unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(NetBoxStatus {
            netbox_schema: self.netbox_schema.clone(),
            schema_version,
            triggers,
            tokens,
            v1_uses,
        })
    }

    /// Adds the change-notify triggers on `users_token` and `users_user` (and the `nbtoken`
    /// schema, if missing). Running it again replaces them.
    pub async fn install_triggers(&mut self) -> Result<()> {
        migrate(&mut self.conn).await?;
        let netbox = quote_ident(&self.netbox_schema);
        let sql = format!(
            "CREATE OR REPLACE FUNCTION {SCHEMA}.notify_change() RETURNS trigger AS $$ \
             DECLARE \
                 kind text := CASE WHEN TG_TABLE_NAME = 'users_user' THEN 'user' ELSE 'token' END; \
                 row_id bigint := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END; \
             BEGIN \
                 PERFORM pg_notify('{CHANNEL}', TG_TABLE_SCHEMA || ':' || kind || ':' || row_id); \
                 RETURN NULL; \
             END; \
             $$ LANGUAGE plpgsql; \
             DROP TRIGGER IF EXISTS {TRIGGER} ON {netbox}.users_token; \
             CREATE TRIGGER {TRIGGER} \
                 AFTER UPDATE OF version, key, pepper_id, hmac_digest, plaintext, user_id, expires, enabled, \
                     write_enabled, allowed_ips \
                 OR DELETE ON {netbox}.users_token \
                 FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.notify_change(); \
             DROP TRIGGER IF EXISTS {TRIGGER} ON {netbox}.users_user; \
             CREATE TRIGGER {TRIGGER} \
                 AFTER UPDATE OF username, first_name, last_name, email, is_active, is_superuser, date_joined \
                 OR DELETE ON {netbox}.users_user \
                 FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.notify_change();"
        );
        let mut tx = self.conn.begin().await.map_err(map_err)?;
        sqlx::raw_sql(&sql).execute(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    /// Removes the triggers and their function; nothing to remove is not an error.
    pub async fn uninstall_triggers(&mut self) -> Result<()> {
        let netbox = quote_ident(&self.netbox_schema);
        let sql = format!(
            "DROP TRIGGER IF EXISTS {TRIGGER} ON {netbox}.users_token; \
             DROP TRIGGER IF EXISTS {TRIGGER} ON {netbox}.users_user; \
             DROP FUNCTION IF EXISTS {SCHEMA}.notify_change();"
        );
        let mut tx = self.conn.begin().await.map_err(map_err)?;
        sqlx::raw_sql(&sql).execute(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    /// Removes everything nbtoken added: the triggers and the `nbtoken` schema with its rows.
    pub async fn uninstall(&mut self) -> Result<()> {
        self.uninstall_triggers().await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            .execute(&mut self.conn)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}
