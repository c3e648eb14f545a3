//! Records the commit the binary is built from, for `nbtoken --version`.
//!
//! `NBTOKEN_COMMIT` set in the build environment wins (a Docker build has no
//! `.git`); otherwise `git rev-parse` names the commit; without git (a
//! source tarball) it is `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=NBTOKEN_COMMIT");
    let commit = std::env::var("NBTOKEN_COMMIT").ok().filter(|c| !c.trim().is_empty()).or_else(git_commit);
    println!("cargo:rustc-env=NBTOKEN_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
}

fn git_commit() -> Option<String> {
    let dir = git(&["rev-parse", "--git-dir"])?;
    let dir = Path::new(&dir);
    // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it names (a commit), packed refs.
    // (Only files that exist: cargo reruns the script every time for a missing one.)
    let mut watch = vec![dir.join("HEAD"), dir.join("packed-refs")];
    if let Ok(head) = std::fs::read_to_string(dir.join("HEAD")) {
        if let Some(r) = head.trim().strip_prefix("ref: ") {
            watch.push(dir.join(r));
        }
    }
    for path in watch.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_owned())
}
