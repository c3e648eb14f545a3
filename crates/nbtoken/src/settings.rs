//! Validated settings from flags, environment and the TOML config file (flags, then env, then file).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ipnet::IpNet;
use nbtoken_core::{PepperId, PepperRing, SecretString, V1Policy};
use serde::Deserialize;

use crate::cli::Global;

/// Name of the pepper file generated in the data directory on first start.
pub const GENERATED_PEPPERS: &str = "peppers.toml";
const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// The config file's shape. Unknown keys are refused, so typos are not silently ignored.
/// (No `Debug`: it holds peppers and possibly a database password.)
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    v1_policy: Option<String>,
    v1_sunset: Option<String>,
    cache_ttl: Option<String>,
    failure_limit_per_ip: Option<u32>,
    failure_limit_per_key: Option<u32>,
    trusted_proxies: Option<Vec<String>>,
    client_ip_header: Option<String>,
    public_url: Option<String>,
    metrics_token_keys: Option<bool>,
    access_log: Option<String>,
    max_connections_per_ip: Option<usize>,
    store: Option<String>,
    rehash: Option<String>,
    #[serde(default)]
    peppers: BTreeMap<String, String>,
}

/// Where the peppers came from (for the first-start warning and `doctor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PepperSource {
    /// `NBTOKEN_PEPPER_<ID>` variables and/or the config file.
    Configured,
    /// The file generated in the data directory.
    DataDir,
    /// None found.
    Missing,
}

/// Everything a command needs, checked once.
pub struct Settings {
    pub data_dir: PathBuf,
    pub database_url: String,
    /// Whose tables the database holds (`NBTOKEN_STORE`), with `NBTOKEN_REHASH` for NetBox's.
    pub store: nbtoken_store::StoreKind,
    pub bind: SocketAddr,
    /// Whether the listen address was given (flag, `NBTOKEN_BIND` or config file) rather than the default.
    pub bind_configured: bool,
    pub v1_policy: V1Policy,
    pub v1_sunset: Option<time::OffsetDateTime>,
    pub cache_ttl: std::time::Duration,
    pub limits: nbtoken_server::limit::LimitConfig,
    pub trusted_proxies: Vec<IpNet>,
    pub client_ip_header: nbtoken_server::client_ip::ClientIpHeader,
    pub public_url: Option<nbtoken_manage::json::BaseUrl>,
    pub metrics_token_keys: bool,
    pub access_log: nbtoken_server::observe::AccessLog,
    pub max_connections_per_ip: usize,
    pub peppers: PepperRing,
    pub pepper_source: PepperSource,
    /// The log format `main` read (see [`Global::log_format`]).
    pub log_format: LogFormat,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Settings {
    /// Reads the config file (if any), the environment and the flags.
    pub fn load(global: &Global, bind_flag: Option<&str>) -> Result<Self> {
        let file: FileConfig = match &global.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                parse_toml(&text).with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir =
            global.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("nbtoken-data"));
        let database_url = match global.database.clone().or(file.database_url) {
            Some(url) => url,
            None => format!("sqlite://{}", data_dir.join("nbtoken.sqlite3").display()),
        };
        let store = store_kind(
            env("NBTOKEN_STORE").or(file.store),
            env("NBTOKEN_REHASH").or(file.rehash),
            &database_url,
        )?;
        // `serve --bind` reads NBTOKEN_BIND through clap; other commands read it here, so the
        // URLs they print name the address the server really listens on.
        let bind_given = bind_flag.map(str::to_owned).or_else(|| env("NBTOKEN_BIND")).or(file.bind);
        let bind_configured = bind_given.is_some();
        let bind_text = bind_given.unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind: SocketAddr = bind_text
            .parse()
            .with_context(|| format!("invalid bind address {bind_text:?} (expected IP:PORT)"))?;
        // Unset values take the server's defaults, so that each default has one home.
        let defaults = nbtoken_server::Config::new(bind, PepperRing::empty());
        let v1_policy = match env("NBTOKEN_V1").or(file.v1_policy) {
            None => defaults.v1_policy,
            Some(v) => v.parse().map_err(anyhow::Error::msg).context("NBTOKEN_V1 / v1_policy")?,
        };
        let v1_sunset = match env("NBTOKEN_V1_SUNSET").or(file.v1_sunset) {
            None => None,
            Some(s) => Some(parse_date(&s).with_context(|| {
                format!(
                    "invalid NBTOKEN_V1_SUNSET / v1_sunset {s:?}: use a date (2027-06-30) or RFC 3339 time"
                )
            })?),
        };
        let cache_ttl = match env("NBTOKEN_CACHE_TTL").or(file.cache_ttl) {
            None => defaults.cache_ttl,
            Some(s) if s.trim() == "0" => std::time::Duration::ZERO,
            Some(s) => humantime::parse_duration(s.trim())
                .with_context(|| format!("invalid NBTOKEN_CACHE_TTL / cache_ttl {s:?}: use e.g. 5s or 0"))?,
        };
        let per_minute = |var: &str, file: Option<u32>, default: u32| -> Result<u32> {
            match env(var) {
                Some(v) => v.trim().parse().with_context(|| {
                    format!("invalid {var} {v:?}: a number of failures per minute (0: no limit)")
                }),
                None => Ok(file.unwrap_or(default)),
            }
        };
        let limits = nbtoken_server::limit::LimitConfig {
            per_ip_per_minute: per_minute(
                "NBTOKEN_FAILURE_LIMIT_PER_IP",
                file.failure_limit_per_ip,
                defaults.limits.per_ip_per_minute,
            )?,
            per_key_per_minute: per_minute(
                "NBTOKEN_FAILURE_LIMIT_PER_KEY",
                file.failure_limit_per_key,
                defaults.limits.per_key_per_minute,
            )?,
        };
        let proxies: Vec<String> = match env("NBTOKEN_TRUSTED_PROXIES") {
            Some(v) => v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
            None => file.trusted_proxies.unwrap_or_default(),
        };
        let trusted_proxies = proxies
            .iter()
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                    .with_context(|| format!("invalid trusted proxy {p:?} (expected an IP or CIDR)"))
            })
            .collect::<Result<Vec<_>>>()?;
        let client_ip_header = match env("NBTOKEN_CLIENT_IP_HEADER").or(file.client_ip_header) {
            None => defaults.client_ip_header,
            Some(v) => nbtoken_server::client_ip::ClientIpHeader::parse(&v)
                .map_err(|e| anyhow::anyhow!("invalid NBTOKEN_CLIENT_IP_HEADER / client_ip_header: {e}"))?,
        };
        let public_url = match env("NBTOKEN_PUBLIC_URL").or(file.public_url) {
            None => None,
            Some(v) => Some(
                nbtoken_manage::json::BaseUrl::parse_public(&v)
                    .map_err(|e| anyhow::anyhow!("invalid NBTOKEN_PUBLIC_URL / public_url {v:?}: {e}"))?,
            ),
        };
        let metrics_token_keys = match env("NBTOKEN_METRICS_TOKEN_KEYS") {
            Some(v) => parse_flag(&v).with_context(|| {
                format!("invalid NBTOKEN_METRICS_TOKEN_KEYS {v:?}: use 1 or 0 (true or false)")
            })?,
            None => file.metrics_token_keys.unwrap_or(defaults.metrics_token_keys),
        };
        let access_log = match env("NBTOKEN_ACCESS_LOG").or(file.access_log) {
            None => defaults.access_log,
            Some(v) => nbtoken_server::observe::AccessLog::parse(&v)
                .map_err(|e| anyhow::anyhow!("invalid NBTOKEN_ACCESS_LOG / access_log {v:?}: {e}"))?,
        };
        let max_connections_per_ip = match env("NBTOKEN_MAX_CONNECTIONS_PER_IP") {
            Some(v) => v.trim().parse().with_context(|| {
                format!("invalid NBTOKEN_MAX_CONNECTIONS_PER_IP {v:?}: a number of connections (0: no cap)")
            })?,
            None => file.max_connections_per_ip.unwrap_or(defaults.max_connections_per_ip),
        };

        let mut entries: BTreeMap<PepperId, SecretString> = BTreeMap::new();
        for (id, value) in file.peppers {
            entries.insert(PepperId::parse(&id).context("config file [peppers]")?, SecretString::new(value));
        }
        // `vars()` would panic, printing the value, on a variable that is not UTF-8.
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = name.strip_prefix("NBTOKEN_PEPPER_") {
                let id = PepperId::parse(id).with_context(|| format!("environment variable {name}"))?;
                let value = value
                    .into_string()
                    .map_err(|_| anyhow::anyhow!("environment variable {name} is not UTF-8"))?;
                entries.insert(id, SecretString::new(value));
            }
        }
        let (peppers, pepper_source) = if entries.is_empty() {
            match read_generated(&data_dir)? {
                Some(ring) => (ring, PepperSource::DataDir),
                None => (PepperRing::empty(), PepperSource::Missing),
            }
        } else {
            (PepperRing::new(entries)?, PepperSource::Configured)
        };
        Ok(Self {
            data_dir,
            database_url,
            store,
            bind,
            bind_configured,
            v1_policy,
            v1_sunset,
            cache_ttl,
            limits,
            trusted_proxies,
            client_ip_header,
            public_url,
            metrics_token_keys,
            access_log,
            max_connections_per_ip,
            peppers,
            pepper_source,
            log_format: global.log_format,
        })
    }

    /// The server configuration.
    pub fn server_config(&self) -> nbtoken_server::Config {
        let mut c = nbtoken_server::Config::new(self.bind, self.peppers.clone());
        c.v1_policy = self.v1_policy;
        c.trusted_proxies = self.trusted_proxies.clone();
        c.client_ip_header = self.client_ip_header.clone();
        c.public_url = self.public_url.clone();
        c.v1_sunset = self.v1_sunset;
        c.cache_ttl = self.cache_ttl;
        c.limits = self.limits;
        c.metrics_token_keys = self.metrics_token_keys;
        c.access_log = self.access_log;
        c.max_connections_per_ip = self.max_connections_per_ip;
        // Under JSON logs every line on stderr must be JSON.
        c.announce = self.log_format != LogFormat::Json;
        c
    }

    /// Creates the data directory (owner-only) if the database lives in it.
    pub fn ensure_data_dir(&self) -> Result<()> {
        create_private_dir(&self.data_dir)
    }

    /// Generates a pepper into the data directory (first start without configured peppers).
    pub fn generate_pepper_file(&mut self) -> Result<PathBuf> {
        self.ensure_data_dir()?;
        let path = self.data_dir.join(GENERATED_PEPPERS);
        let value = nbtoken_core::pepper::generate_value().context("cannot generate a pepper")?;
        let text = format!(
            "# Generated by nbtoken on first start. Keep this file secret and backed up:\n# without it no v2 token can be verified. Production should inject peppers\n# through NBTOKEN_PEPPER_<ID> from a secret store instead.\n1 = \"{}\"\n",
            value.expose()
        );
        write_private_file(&path, text.as_bytes())?;
        self.peppers = PepperRing::new([(PepperId::new(1)?, value)])?;
        self.pepper_source = PepperSource::DataDir;
        Ok(path)
    }
}

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line (`NBTOKEN_LOG_FORMAT=json`).
    Json,
}

/// The log format from `NBTOKEN_LOG_FORMAT` (`text` or `json`).
pub fn log_format() -> Result<LogFormat> {
    match env("NBTOKEN_LOG_FORMAT").as_deref().map(str::trim) {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => bail!("invalid NBTOKEN_LOG_FORMAT {other:?}: use text or json"),
    }
}

/// `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`.
fn parse_flag(s: &str) -> Result<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => bail!("not a yes/no value"),
    }
}

/// A date (`2027-06-30`, midnight UTC) or an RFC 3339 time.
fn parse_date(s: &str) -> Result<time::OffsetDateTime> {
    if let Some(t) = nbtoken_manage::json::parse_timestamp(s) {
        return Ok(t);
    }
    let s = s.trim();
    // `[year]` alone would also take a sign and more than four digits (`+12027-01-01`).
    let shape = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    anyhow::ensure!(shape, "expected a date (YYYY-MM-DD) or an ISO 8601 timestamp, got {s:?}");
    let d = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))?;
    Ok(d.midnight().assume_utc())
}

/// Parses TOML, reporting an error by line and reason only: the parser's own message
/// quotes the offending line, which may hold a pepper or a database password.
fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(n) => anyhow::anyhow!("line {n}: {}", e.message()),
            None => anyhow::anyhow!("{}", e.message()),
        }
    })
}

fn read_generated(data_dir: &Path) -> Result<Option<PepperRing>> {
    let path = data_dir.join(GENERATED_PEPPERS);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let table: BTreeMap<String, String> =
        parse_toml(&text).with_context(|| format!("invalid pepper file {}", path.display()))?;
    let mut entries = Vec::new();
    for (id, value) in table {
        entries.push((PepperId::parse(&id)?, SecretString::new(value)));
    }
    Ok(Some(PepperRing::new(entries).with_context(|| format!("pepper file {}", path.display()))?))
}

fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict permissions of {}", dir.display()))?;
    }
    Ok(())
}

/// Creates a new file readable only by its owner; refuses an existing one. Every
/// owner-only file nbtoken writes (peppers, the first admin token, new secrets) starts here.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Writes a new file readable only by its owner; refuses to overwrite.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = create_private(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents).with_context(|| format!("cannot write {}", path.display()))?;
    f.sync_all().ok();
    Ok(())
}

/// A new owner-only file holding a JSON array of secrets, valid JSON after every entry:
/// each entry is on disk (synced) before [`SecretsFile::push`] returns, and a failed
/// write is cut off again so that the entries already there stay readable.
pub struct SecretsFile {
    file: std::fs::File,
    path: PathBuf,
    /// Where the closing `]` starts.
    end: u64,
    count: usize,
}

impl SecretsFile {
    /// Creates the file after checking its directory. Every error says that nothing was
    /// created: the caller opens this before it creates any secret.
    pub fn create(path: &Path) -> Result<Self> {
        use std::io::Write;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            bail!("the directory of --secrets-file, {}, does not exist; nothing was created", dir.display());
        }
        if path.exists() {
            bail!(
                "{} exists; choose a new file (secrets are written once and never overwritten); nothing was created",
                path.display()
            );
        }
        let mut file = create_private(path)
            .with_context(|| format!("cannot create {}; nothing was created", path.display()))?;
        // An empty array first: the file is valid JSON at every moment.
        file.write_all(b"[\n]\n")
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}; nothing was created", path.display()))?;
        // The new directory entry must survive a crash too.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(Self { file, path: path.to_owned(), end: 1, count: 0 })
    }

    /// Appends one entry (a JSON value's text) and makes sure it reached the disk.
    pub fn push(&mut self, entry: &str) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        let item = format!("{}\n  {entry}", if self.count == 0 { "" } else { "," });
        let written = self
            .file
            .seek(SeekFrom::Start(self.end))
            .and_then(|_| self.file.write_all(format!("{item}\n]\n").as_bytes()))
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // A partial write (disk full, file size limit) would leave broken JSON:
            // cut it off, so the secrets already there stay readable.
            let end = self.end;
            let _ = self
                .file
                .set_len(end)
                .and_then(|()| self.file.seek(SeekFrom::Start(end)))
                .and_then(|_| self.file.write_all(b"\n]\n"))
                .and_then(|()| self.file.sync_data());
            return Err(e);
        }
        self.end += item.len() as u64;
        self.count += 1;
        Ok(())
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One line of standard input without its line ending: a password, whose rules (NetBox 4.7's
/// validators, as the API applies them) are the user operations' in `nbtoken_manage`.
pub fn read_password_stdin() -> Result<SecretString> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("cannot read the password from stdin")?;
    Ok(SecretString::new(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// `NBTOKEN_STORE` / `store` (`nbtoken`, the default, or `netbox`) with `NBTOKEN_REHASH` /
/// `rehash` (`on` or `off`, the default), which only NetBox's database takes: nbtoken's own
/// store always re-hashes. NetBox's tables are only in PostgreSQL.
fn store_kind(
    store: Option<String>,
    rehash: Option<String>,
    database_url: &str,
) -> Result<nbtoken_store::StoreKind> {
    let rehash = rehash
        .map(|v| {
            parse_flag(&v).with_context(|| format!("invalid NBTOKEN_REHASH / rehash {v:?}: use on or off"))
        })
        .transpose()?;
    match store.as_deref().map(str::trim) {
        None | Some("nbtoken") => {
            if rehash == Some(false) {
                anyhow::bail!(
                    "NBTOKEN_REHASH / rehash applies to NBTOKEN_STORE=netbox only: nbtoken's own store \
                     always re-hashes tokens under the newest pepper"
                );
            }
            Ok(nbtoken_store::StoreKind::Nbtoken)
        }
        Some("netbox") => {
            if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
                anyhow::bail!(
                    "NBTOKEN_STORE=netbox needs NBTOKEN_DATABASE_URL / database_url set to NetBox's \
                     PostgreSQL database (postgres://…)"
                );
            }
            Ok(nbtoken_store::StoreKind::NetBox { rehash: rehash.unwrap_or(false) })
        }
        Some(other) => anyhow::bail!("invalid NBTOKEN_STORE / store {other:?}: use nbtoken or netbox"),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_date, parse_toml, store_kind, FileConfig, SecretsFile};

    #[test]
    fn the_secrets_file_is_owner_only_valid_json_after_each_entry_and_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        let read =
            || serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut f = SecretsFile::create(&path).unwrap();
        assert_eq!(read(), serde_json::json!([]));
        f.push(r#"{"v1_id": 1}"#).unwrap();
        f.push(r#"{"v1_id": 2}"#).unwrap();
        assert_eq!(read(), serde_json::json!([{"v1_id": 1}, {"v1_id": 2}]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o077, 0);
        }
        let again = SecretsFile::create(&path).err().unwrap().to_string();
        assert!(again.contains("exists") && again.contains("nothing was created"), "{again}");
        let nowhere = SecretsFile::create(&dir.path().join("no/such.json")).err().unwrap().to_string();
        assert!(nowhere.contains("does not exist"), "{nowhere}");
    }

    #[test]
    fn toml_errors_name_the_line_not_its_text() {
        let secret = "pepper-value-that-must-stay-hidden-0123456789-abcdefghij";
        let bad = [
            format!("[peppers]\n1 = \"{secret}\\q\"\n"),
            format!("databse_url = \"postgres://u:{secret}@db/x\"\n"),
            format!("bind = \"127.0.0.1:1\"\n[peppers]\n1 = {secret}\n"),
        ];
        for text in bad {
            let e = format!("{:#}", parse_toml::<FileConfig>(&text).err().unwrap());
            assert!(!e.contains(secret) && !e.contains("pepper-value"), "{e}");
            assert!(e.starts_with("line "), "{e}");
        }
        assert!(parse_toml::<FileConfig>("bind = \"127.0.0.1:1\"\n").is_ok());
    }

    #[test]
    fn dates_take_four_digit_years_or_timestamps() {
        let d = parse_date("2027-06-30").unwrap();
        assert_eq!((d.year(), u8::from(d.month()), d.day(), d.hour()), (2027, 6, 30, 0));
        assert_eq!(parse_date(" 2027-06-30 ").unwrap(), d);
        let t = parse_date("2027-06-30T12:00:00+02:00").unwrap();
        assert_eq!(t.unix_timestamp() - d.unix_timestamp(), 10 * 3600);
        for bad in [
            "+2027-06-30",
            "-2027-06-30",
            "+12027-06-30",
            "12027-06-30",
            "2027-6-30",
            "2027-13-01",
            "",
            "soon",
        ] {
            let e = parse_date(bad).unwrap_err();
            assert!(
                format!("{e:#}").contains("date") || format!("{e:#}").contains("month"),
                "{bad:?}: {e:#}"
            );
        }
    }

    #[test]
    fn the_netbox_store_needs_postgres_and_rehash_is_its_own() {
        use nbtoken_store::StoreKind;
        let pg = "postgres://nb@db/netbox";
        let kind = |store: Option<&str>, rehash: Option<&str>, url: &str| {
            store_kind(store.map(str::to_owned), rehash.map(str::to_owned), url).map_err(|e| e.to_string())
        };
        assert_eq!(kind(None, None, "sqlite://x").unwrap(), StoreKind::Nbtoken);
        assert_eq!(kind(Some("netbox"), None, pg).unwrap(), StoreKind::NetBox { rehash: false });
        assert_eq!(kind(Some("netbox"), Some("on"), pg).unwrap(), StoreKind::NetBox { rehash: true });
        assert!(kind(Some("netbox"), None, "sqlite://x").unwrap_err().contains("postgres://"));
        assert!(kind(Some("mysql"), None, pg).unwrap_err().contains("nbtoken or netbox"));
        assert!(kind(None, Some("off"), pg).unwrap_err().contains("NBTOKEN_STORE=netbox only"));
        assert!(kind(Some("netbox"), Some("maybe"), pg).unwrap_err().contains("on or off"));
    }
}
