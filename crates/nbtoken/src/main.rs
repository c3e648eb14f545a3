//! The `nbtoken` command: serve the token API, administer users, tokens and peppers.
//!
//! Thin by design: clap structs mirror the flags ([`cli`]), are turned once
//! into validated settings ([`settings`]), and the commands call the crates.

#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod output;
mod settings;

/// With the `mimalloc` feature, mimalloc replaces the system allocator (BENCHMARKS.md,
/// "Allocator, latency and memory").
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut args = cli::Cli::parse();
    // Generated from the clap definition itself, so they cannot drift from the flags.
    match &args.command {
        cli::Command::Completions { shell } => return print_completions(*shell),
        cli::Command::Man { command } => return print_man(command),
        _ => {}
    }
    // The server logs what it does; one-shot commands speak through their output.
    let default = if matches!(args.command, cli::Command::Serve(_)) { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("NBTOKEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // NBTOKEN_LOG_FORMAT=json: one JSON object per line, spans (and so request ids) included.
    let log_format = match settings::log_format() {
        Ok(format) => format,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Read once: `serve` learns from it whether to announce its address as plain text.
    args.global.log_format = log_format;
    match log_format {
        settings::LogFormat::Text => {
            // Colours only for a terminal: redirected logs stay free of escape codes.
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .init()
        }
        settings::LogFormat::Json => {
            tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).init()
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
        // A reader that stopped early (`| head`) is not an error, as with grep and ripgrep.
        Err(e) if output::is_stdout_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Written, not `eprintln!`: a closed stderr must not turn an error into a panic.
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `nbtoken completions SHELL`: the completion script on stdout.
fn print_completions(shell: clap_complete::Shell) -> ExitCode {
    let mut cmd = <cli::Cli as clap::CommandFactory>::command();
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "nbtoken", &mut script);
    match std::io::stdout().write_all(&script).and_then(|()| std::io::stdout().flush()) {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            let _ = writeln!(std::io::stderr(), "error: cannot write the completion script: {e}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

/// `nbtoken man [COMMAND…]`: the manual page (roff) of `nbtoken` or of one of its
/// commands (`nbtoken man token create` is `nbtoken-token-create(1)`), on stdout.
fn print_man(path: &[String]) -> ExitCode {
    let mut page = <cli::Cli as clap::CommandFactory>::command();
    // Global options (`--data-dir`, `--database`, `--config`) belong on every page.
    page.build();
    let mut name = String::from("nbtoken");
    for part in path {
        match page.find_subcommand(part) {
            Some(sub) => page = sub.clone(),
            None => {
                eprintln!("error: {name} has no command named {part:?}");
                return ExitCode::FAILURE;
            }
        }
        name = format!("{name}-{part}");
    }
    // Named as installed: nbtoken-token(1).
    let page = page.name(name).version(cli::VERSION);
    let mut out = Vec::new();
    let written = clap_mangen::Man::new(page)
        .render(&mut out)
        .and_then(|()| std::io::Write::write_all(&mut std::io::stdout(), &out));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the manual page: {e}");
            ExitCode::FAILURE
        }
    }
}
