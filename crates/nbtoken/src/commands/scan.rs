//! `nbtoken scan`: find NetBox tokens and v1 `Token` headers in files; optionally check them against a server.
//!
//! Exit status: 0 when nothing meets `--fail-on`, 1 when something does, 2 on an error.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use nbtoken_client::Client;
use nbtoken_core::SecretString;
use nbtoken_scan::{output, Allowlist, FailOn, Finding, Liveness, Restriction, ScanConfig};

use crate::cli::ScanArgs;
use crate::output::note;

/// Runs the scan and exits with its status.
pub async fn scan(args: ScanArgs) -> Result<()> {
    let code = match run(args).await {
        Ok(code) => code,
        // A reader that stopped early (`| head`) is not an error, as with grep and ripgrep.
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            note!("error: {e:#}");
            2
        }
    };
    // The exit status carries the result; nothing is left to drop but the runtime.
    std::process::exit(code)
}

async fn run(args: ScanArgs) -> Result<i32> {
    let mut stdout = std::io::stdout().lock();
    if args.export_gitleaks {
        stdout.write_all(nbtoken_scan::gitleaks::config().as_bytes())?;
        stdout.flush()?;
        return Ok(0);
    }
    let fail_on = FailOn::parse(&args.fail_on)?;
    let config = ScanConfig {
        max_file_size: parse_size(&args.max_file_size)?,
        respect_ignore_files: !args.no_ignore,
        threads: args.threads,
        allowlist: args.allowlist.as_deref().map(Allowlist::load).transpose()?,
    };
    let paths = if args.paths.is_empty() { vec![std::path::PathBuf::from(".")] } else { args.paths };
    let mut report = tokio::task::spawn_blocking(move || nbtoken_scan::scan_paths(&paths, &config))
        .await
        .context("the scan stopped")??;
    for w in &report.warnings {
        note!("warning: {w}");
    }
    if let Some(url) = &args.verify {
        verify(url, &mut report.findings).await?;
    }
    match args.format.as_str() {
        "json" => {
            serde_json::to_writer_pretty(&mut stdout, &output::json(&report))?;
            writeln!(stdout)?;
        }
        "sarif" => {
            serde_json::to_writer_pretty(&mut stdout, &output::sarif(&report))?;
            writeln!(stdout)?;
        }
        _ => output::text(&report, &mut stdout)?,
    }
    stdout.flush()?;
    if args.format != "text" {
        note!("{}", output::summary(&report));
    }
    Ok(if report.findings.iter().any(|f| fail_on.fails_on(f)) { 1 } else { 0 })
}

/// Asks the server who each distinct token belongs to: an answer means live,
/// 401/403 means dead, anything else unknown.
async fn verify(url: &str, findings: &mut [Finding]) -> Result<()> {
    // Secrets stay in `SecretString`s (zeroized, compared in constant time), never in map keys.
    let mut distinct: Vec<SecretString> = Vec::new();
    for s in findings.iter().filter_map(Finding::secret) {
        if !distinct.contains(s) {
            distinct.push(s.clone());
        }
    }
    note!(
        "WARNING: --verify sends each of the {} token(s) found to {url} in an Authorization header.\n\
         WARNING: whoever runs that server, and anything logging on the way, can read and use them.\n\
         WARNING: only verify against a server you operate, over HTTPS, and revoke every live token found.",
        distinct.len()
    );
    if url.starts_with("http://") && !is_loopback(url) {
        note!("WARNING: {url} is plain HTTP: the tokens cross the network unencrypted.");
    }
    let mut results = Vec::with_capacity(distinct.len());
    for secret in &distinct {
        results.push(check(url, secret.clone()).await);
    }
    for f in findings.iter_mut() {
        let live = f.secret().and_then(|s| distinct.iter().position(|d| d == s)).map(|i| results[i]);
        if let Some(live) = live {
            f.set_liveness(live);
        }
    }
    Ok(())
}

async fn check(url: &str, secret: SecretString) -> Liveness {
    let client = match Client::builder(url, secret)
        .max_attempts(1)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(_) => return Liveness::Unknown,
    };
    // The client reads the answer; the scan report has its own words for it.
    match client.liveness().await {
        nbtoken_client::Liveness::Live => Liveness::Live,
        nbtoken_client::Liveness::LiveElsewhere => Liveness::LiveRestricted(Restriction::SourceIp),
        nbtoken_client::Liveness::Dead => Liveness::Dead,
        nbtoken_client::Liveness::Unknown(e) => {
            tracing::warn!("cannot verify a token: {e}");
            Liveness::Unknown
        }
        _ => Liveness::Unknown,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>().and_then(|j| j.io_error_kind())
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}

fn is_loopback(url: &str) -> bool {
    let rest = url.trim_start_matches("http://");
    let authority = rest.split('/').next().unwrap_or("");
    let host = if authority.starts_with('[') {
        authority.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

/// Parses a byte count with an optional K, M or G suffix (powers of 1024).
fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1024),
        Some((i, 'm' | 'M')) => (&t[..i], 1024 * 1024),
        Some((i, 'g' | 'G')) => (&t[..i], 1024 * 1024 * 1024),
        _ => (t, 1),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| anyhow!("invalid --max-file-size {s:?}: use bytes or e.g. 512K, 1M"))?;
    match n.checked_mul(mult) {
        Some(v) if v > 0 => Ok(v),
        Some(_) => bail!("--max-file-size must be more than 0"),
        None => bail!("--max-file-size {s:?} is too large"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1M").unwrap(), 1024 * 1024);
        assert_eq!(parse_size("512k").unwrap(), 512 * 1024);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("0").is_err());
        assert!(parse_size("big").is_err());
    }

    #[test]
    fn loopback() {
        assert!(is_loopback("http://127.0.0.1:8080"));
        assert!(is_loopback("http://localhost/api"));
        assert!(is_loopback("http://[::1]:8080/"));
        assert!(!is_loopback("http://netbox.example.com"));
    }
}
