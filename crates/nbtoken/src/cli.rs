//! Command-line arguments, as clap structs that mirror the flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use nbtoken_core::SecretString;

/// NetBox-compatible API tokens: serve, issue, verify, rotate and revoke.
#[derive(Parser, Debug)]
#[command(name = "nbtoken", version = VERSION, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// `--version`: the package version and the commit it was built from (`unknown` without git).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("NBTOKEN_COMMIT"), ")");

/// Options every command takes.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Data directory (SQLite file, generated pepper).
    #[arg(long, global = true, env = "NBTOKEN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL (default: the SQLite file in the data directory).
    // Its value stays out of `--help`: a URL may carry a password.
    #[arg(long, global = true, env = "NBTOKEN_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "NBTOKEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// How log lines are written: `NBTOKEN_LOG_FORMAT`, read once by `main` before logging
    /// starts (every command logs, and a bad value must stop them all), then kept here.
    #[arg(skip)]
    pub log_format: crate::settings::LogFormat,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP API.
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage peppers.
    #[command(subcommand)]
    Pepper(PepperCommand),
    /// Move integrations from v1 to v2 tokens (locally, or on a remote NetBox with --url).
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Report tokens that need attention; non-zero exit with --fail-on.
    Audit(AuditArgs),
    /// Check this deployment (and, with --url, a remote server).
    Doctor(DoctorArgs),
    /// Find NetBox tokens and v1 `Token` headers in files; exit 1 on findings.
    Scan(ScanArgs),
    /// Serve beside NetBox (NBTOKEN_STORE=netbox): show, install or remove what nbtoken adds to
    /// NetBox's database (the `nbtoken` schema, optional change triggers).
    #[command(subcommand)]
    Netbox(NetboxCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print a manual page (roff) to stdout: `nbtoken man > nbtoken.1`, `nbtoken man token create > nbtoken-token-create.1`.
    Man {
        /// The command whose page to print, e.g. `token create` (default: the top-level page).
        command: Vec<String>,
    },
}

/// A remote NetBox-compatible API (nbtoken or NetBox 4.5+).
#[derive(Args, Debug, Clone)]
pub struct Remote {
    /// Base URL of a NetBox-compatible API, e.g. https://netbox.example.com (default: the local store).
    #[arg(long, env = "NBTOKEN_REMOTE_URL")]
    pub url: Option<String>,
    /// Token for the remote API (v2 `nbt_…` or v1); prefer the environment variable.
    #[arg(long, env = "NBTOKEN_REMOTE_TOKEN", hide_env_values = true, value_parser = secret_arg)]
    pub token: Option<SecretString>,
}

/// `nbtoken netbox …`, on the database NBTOKEN_DATABASE_URL names (NetBox's own, 4.5 or later).
#[derive(Subcommand, Debug)]
pub enum NetboxCommand {
    /// Show whether the `nbtoken` schema and the change triggers are installed, and NetBox's
    /// tokens by version and pepper.
    Status,
    /// Add NOTIFY triggers on users_token and users_user (functions in the `nbtoken` schema), so a
    /// token or user changed in NetBox reaches every nbtoken instance within a second instead of
    /// the cache TTL. Running it again replaces them.
    InstallTriggers,
    /// Remove the change triggers; the cache TTL then bounds how stale a row can be.
    UninstallTriggers,
    /// Remove everything nbtoken added to NetBox's database: the triggers and the `nbtoken`
    /// schema (use records and failure budgets). NetBox's own tables are left as they are.
    Uninstall,
}

#[derive(Subcommand, Debug)]
pub enum MigrateCommand {
    /// List every v1 token and whether it has a v2 replacement.
    Plan {
        #[command(flatten)]
        remote: Remote,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a v2 replacement for each v1 token that has none; secrets are written once.
    Apply {
        #[command(flatten)]
        remote: Remote,
        /// Write the new secrets to this file (created, owner-only); otherwise print them as JSON on stdout.
        #[arg(long)]
        secrets_file: Option<std::path::PathBuf>,
    },
    /// Disable each v1 token whose replacement has been used; report those still waiting.
    Finalize {
        #[command(flatten)]
        remote: Remote,
        /// Delete the v1 tokens instead of disabling them.
        #[arg(long)]
        delete: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// Tokens unused for longer than this are stale (e.g. 90d).
    #[arg(long, default_value = "90d")]
    pub stale_after: String,
    /// Exit with status 1 when any of these findings is present (comma list:
    /// v1, never-used, stale, no-expiry, unrestricted, disabled, expired).
    #[arg(long, value_delimiter = ',')]
    pub fail_on: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Files or directories to scan (default: the current directory).
    pub paths: Vec<PathBuf>,
    /// Output format (sarif: SARIF 2.1.0, for code-scanning uploads).
    #[arg(long, default_value = "text", value_parser = ["text", "json", "sarif"])]
    pub format: String,
    /// Exit with status 1 when a finding has at least this severity (low, medium, high)
    /// or one of these rule ids (comma list); `any` (the default) or `never`.
    #[arg(long, value_delimiter = ',', default_value = "any")]
    pub fail_on: Vec<String>,
    /// Allowlist file: path globs, `rule-id:glob` and fingerprints, one a line
    /// (default: `.nbtoken-scan-allow` in each scanned directory, if present).
    #[arg(long)]
    pub allowlist: Option<PathBuf>,
    /// Skip files larger than this (bytes, or with a K, M or G suffix).
    #[arg(long, default_value = "1M")]
    pub max_file_size: String,
    /// Also scan files that .gitignore and .ignore files exclude.
    #[arg(long)]
    pub no_ignore: bool,
    /// Check whether each found token is live on this NetBox-compatible server.
    /// This SENDS THE TOKENS to that server: only use one you operate.
    #[arg(long, value_name = "URL")]
    pub verify: Option<String>,
    /// Print a gitleaks configuration with the equivalent rules, and exit.
    #[arg(long)]
    pub export_gitleaks: bool,
    /// Worker threads (default: one per CPU).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "NBTOKEN_BIND")]
    pub bind: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user.
    Create {
        /// Username.
        name: String,
        /// Make the user a superuser.
        #[arg(long)]
        superuser: bool,
        /// Allow the user to create tokens for others.
        #[arg(long)]
        grant_tokens: bool,
        /// Read the password from standard input (otherwise the account has no password).
        #[arg(long)]
        password_stdin: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List users.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password (read from stdin with --password-stdin, else generated and printed once).
    SetPassword {
        /// Username.
        name: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user: none of their tokens authenticate any more.
    Disable {
        /// Username.
        name: String,
    },
    /// Enable a disabled user.
    Enable {
        /// Username.
        name: String,
    },
    /// Delete a user and every token of theirs.
    Delete {
        /// Username.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create(TokenCreateArgs),
    /// List tokens.
    List {
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
        /// Only this version (1 or 2).
        #[arg(long)]
        version: Option<u8>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one token.
    Show {
        /// Token id.
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable a token (it stops authenticating at once).
    Disable {
        /// Token id.
        id: i64,
    },
    /// Enable a disabled token.
    Enable {
        /// Token id.
        id: i64,
    },
    /// Delete a token.
    Delete {
        /// Token id.
        id: i64,
    },
    /// Give a v2 token a new secret; the old one keeps working for --overlap.
    Rotate {
        /// Token id.
        id: i64,
        /// How long the old secret stays valid (e.g. 10m, 24h, 7d; 0 for none).
        #[arg(long, default_value = "0")]
        overlap: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Store a known `nbt_<key>.<secret>` value (read from stdin) as a v2 token.
    Import(TokenImportArgs),
}

/// The owner and settings of a new token: what `token create` and `token import` share.
#[derive(Args, Debug)]
pub struct NewTokenOptions {
    /// Owner's username.
    #[arg(long)]
    pub user: String,
    /// Read-only token (GET/HEAD/OPTIONS only).
    #[arg(long)]
    pub read_only: bool,
    /// Expiry (RFC 3339, e.g. 2027-01-01T00:00:00Z).
    #[arg(long)]
    pub expires: Option<String>,
    /// Allowed source network (repeatable), e.g. 10.0.0.0/8.
    #[arg(long = "allowed-ip")]
    pub allowed_ips: Vec<String>,
    /// Description.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Print JSON (the REST creation response, including `token`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TokenImportArgs {
    #[command(flatten)]
    pub options: NewTokenOptions,
}

#[derive(Args, Debug)]
pub struct TokenCreateArgs {
    /// Token version (2, or 1 for a legacy token if the v1 policy allows).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub version: u8,
    #[command(flatten)]
    pub options: NewTokenOptions,
}

#[derive(Subcommand, Debug)]
pub enum PepperCommand {
    /// Print a new random pepper (64 characters) for NBTOKEN_PEPPER_<ID>.
    Generate,
    /// Show, per pepper id, how many tokens use it and when one was last used.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check that a pepper can be removed; with --disable-tokens, disable the tokens that still need it.
    Retire {
        /// Pepper id.
        id: u16,
        /// Disable (and list) the tokens that still depend on this pepper.
        #[arg(long)]
        disable_tokens: bool,
    },
}

/// Reads a secret argument into a type whose `Debug` is redacted.
fn secret_arg(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}
