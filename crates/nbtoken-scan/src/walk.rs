//! Walking the trees in parallel: ignore files, binaries, size limits, allowlists.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ignore::{DirEntry, WalkBuilder, WalkState};

use crate::allow::{self, Allowlist};
use crate::{detect, Finding, Report, ScanConfig, ScanError};

/// A file with a NUL byte in this many leading bytes is binary.
const BINARY_PROBE: usize = 8 * 1024;

/// Scans each path (a directory is walked, a file is read even if ignored)
/// and returns the findings sorted by path, line and column.
pub fn scan_paths<P: AsRef<Path>>(paths: &[P], config: &ScanConfig) -> Result<Report, ScanError> {
    let mut report = Report::default();
    for root in paths {
        let root = root.as_ref();
        if std::fs::symlink_metadata(root).is_err() {
            return Err(ScanError::NoSuchPath(root.to_owned()));
        }
        let allow = allow::for_root(config.allowlist.as_ref(), root)?;
        scan_root(root, config, allow.as_ref(), &mut report);
    }
    report.findings.sort_by(|a, b| {
        (a.path(), a.line(), a.column(), a.rule().id).cmp(&(b.path(), b.line(), b.column(), b.rule().id))
    });
    Ok(report)
}

#[derive(Default)]
struct Counters {
    files_scanned: AtomicU64,
    bytes_scanned: AtomicU64,
    skipped_binary: AtomicU64,
    skipped_large: AtomicU64,
    suppressed: AtomicU64,
}

fn scan_root(root: &Path, config: &ScanConfig, allow: Option<&Allowlist>, report: &mut Report) {
    let threads = if config.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        config.threads
    };
    let ignore_files = config.respect_ignore_files;
    let walker = WalkBuilder::new(root)
        // `.env` files are hidden and are exactly what we look for.
        .hidden(false)
        .ignore(ignore_files)
        .git_ignore(ignore_files)
        .git_global(ignore_files)
        .git_exclude(ignore_files)
        .parents(ignore_files)
        // A tree copied out of its repository keeps its .gitignore rules.
        .require_git(false)
        .filter_entry(|e| !is_vcs_dir(e))
        .threads(threads)
        .build_parallel();
    let counters = Counters::default();
    let findings: Mutex<Vec<Finding>> = Mutex::new(Vec::new());
    let warnings: Mutex<Vec<String>> = Mutex::new(Vec::new());
    walker.run(|| {
        let counters = &counters;
        let findings = &findings;
        let warnings = &warnings;
        Box::new(move |entry| {
            match entry {
                Ok(entry) => {
                    if entry.file_type().is_some_and(|t| t.is_file()) {
                        match scan_file(root, &entry, config, allow, counters) {
                            Ok(found) if !found.is_empty() => lock(findings).extend(found),
                            Ok(_) => {}
                            Err(w) => lock(warnings).push(w),
                        }
                    }
                }
                Err(e) => lock(warnings).push(e.to_string()),
            }
            WalkState::Continue
        })
    });
    let stats = &mut report.stats;
    let add = |field: &mut u64, c: &AtomicU64| *field += c.load(Ordering::Relaxed);
    add(&mut stats.files_scanned, &counters.files_scanned);
    add(&mut stats.bytes_scanned, &counters.bytes_scanned);
    add(&mut stats.skipped_binary, &counters.skipped_binary);
    add(&mut stats.skipped_large, &counters.skipped_large);
    add(&mut stats.suppressed, &counters.suppressed);
    report.findings.extend(findings.into_inner().unwrap_or_else(|p| p.into_inner()));
    report.warnings.extend(warnings.into_inner().unwrap_or_else(|p| p.into_inner()));
}

fn scan_file(
    root: &Path,
    entry: &DirEntry,
    config: &ScanConfig,
    allow: Option<&Allowlist>,
    counters: &Counters,
) -> Result<Vec<Finding>, String> {
    let path = entry.path();
    let shown = display_path(path);
    let file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
    let len = file.metadata().map_err(|e| format!("{shown}: {e}"))?.len();
    if len > config.max_file_size {
        counters.skipped_large.fetch_add(1, Ordering::Relaxed);
        return Ok(Vec::new());
    }
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // Read one byte past the limit, in case the file grew since `metadata`.
    file.take(config.max_file_size + 1).read_to_end(&mut buf).map_err(|e| format!("{shown}: {e}"))?;
    if buf.len() as u64 > config.max_file_size {
        counters.skipped_large.fetch_add(1, Ordering::Relaxed);
        return Ok(Vec::new());
    }
    if buf[..buf.len().min(BINARY_PROBE)].contains(&0) {
        counters.skipped_binary.fetch_add(1, Ordering::Relaxed);
        return Ok(Vec::new());
    }
    counters.files_scanned.fetch_add(1, Ordering::Relaxed);
    counters.bytes_scanned.fetch_add(buf.len() as u64, Ordering::Relaxed);
    let mut found = detect::scan_bytes(&shown, &buf);
    if let Some(allow) = allow {
        let relative = relative_to(root, path);
        let before = found.len();
        found.retain(|f| !allow.allows(f, relative));
        counters.suppressed.fetch_add((before - found.len()) as u64, Ordering::Relaxed);
    }
    Ok(found)
}

/// The path below the root; for a root that is a file, its name.
fn relative_to<'a>(root: &Path, path: &'a Path) -> &'a Path {
    match path.strip_prefix(root) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel,
        _ => path.file_name().map_or(path, Path::new),
    }
}

/// The path as reported: as reached from the root, `/`-separated, without a leading `./`.
fn display_path(path: &Path) -> String {
    let s = path.to_string_lossy().replace('\\', "/");
    match s.strip_prefix("./") {
        Some(rest) => rest.to_owned(),
        None => s,
    }
}

fn is_vcs_dir(entry: &DirEntry) -> bool {
    entry.depth() > 0
        && entry.file_type().is_some_and(|t| t.is_dir())
        && matches!(entry.file_name().to_str(), Some(".git" | ".hg" | ".svn" | ".jj"))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking worker leaves the data as consistent as a Vec push allows.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
