//! Command-line arguments, as clap structs that mirror the flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// NetBox-compatible API tokens: serve, issue, verify, rotate and revoke.
#[derive(Parser, Debug)]
#[command(name = "nbtoken", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Data directory (SQLite file, generated pepper).
    #[arg(long, global = true, env = "NBTOKEN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL (default: the SQLite file in the data directory).
    #[arg(long, global = true, env = "NBTOKEN_DATABASE_URL")]
    pub database: Option<String>,
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "NBTOKEN_CONFIG")]
    pub config: Option<PathBuf>,
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
}

#[derive(Args, Debug)]
pub struct TokenCreateArgs {
    /// Owner's username.
    #[arg(long)]
    pub user: String,
    /// Token version (2, or 1 for a legacy token if the v1 policy allows).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub version: u8,
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

#[derive(Subcommand, Debug)]
pub enum PepperCommand {
    /// Print a new random pepper (64 characters) for NBTOKEN_PEPPER_<ID>.
    Generate,
}
