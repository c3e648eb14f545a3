//! The `nbtoken` command: serve the token API, administer users, tokens and peppers.
//!
//! Thin by design: clap structs mirror the flags ([`cli`]), are turned once
//! into validated settings ([`settings`]), and the commands call the crates.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod output;
mod settings;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // The server logs what it does; one-shot commands speak through their output.
    let default = if matches!(args.command, cli::Command::Serve(_)) { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("NBTOKEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // NBTOKEN_LOG_FORMAT=json: one JSON object per line, spans (and so request ids) included.
    match settings::log_format() {
        Ok(settings::LogFormat::Text) => {
            // Colours only for a terminal: redirected logs stay free of escape codes.
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .init()
        }
        Ok(settings::LogFormat::Json) => {
            tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).init()
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
