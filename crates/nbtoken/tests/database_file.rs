//! The database file through the binary: `serve` refuses a file it cannot
//! trust (empty, damaged) with a clear message and creates no admin over it,
//! a new file is `0600` wherever it is, and `doctor` fails on a wider mode.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{nbtoken, run};

const PEPPER: &str = "database-file-pepper-0123456789-0123456789-0123456789-0123456789";

/// Runs `serve` expecting it to refuse; returns its stderr. Panics if it starts serving.
fn serve_refuses(dir: &Path, database: &Path) -> String {
    let mut child = nbtoken(dir)
        .env("NBTOKEN_PEPPER_1", PEPPER)
        .arg("--database")
        .arg(database)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!status.success(), "serve exited successfully: {stderr}");
            assert!(!String::from_utf8_lossy(&out.stdout).contains("created superuser"));
            return stderr;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started on a database it should refuse");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_refuses_an_empty_database_file_and_creates_no_admin() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nbtoken.sqlite3");
    std::fs::write(&db, b"").unwrap();
    let stderr = serve_refuses(dir.path(), &db);
    assert!(stderr.contains("empty (0 bytes)") && stderr.contains("nbtoken.sqlite3"), "{stderr}");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "serve wrote to the empty file");
    assert!(!dir.path().join("data/first-start-admin.txt").exists());
}

#[test]
fn serve_refuses_a_damaged_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nbtoken.sqlite3");
    let db_arg = db.to_str().unwrap();
    for i in 0..3 {
        let name = format!("user{i}-{}", "n".repeat(100));
        let (ok, _, err) = run(
            nbtoken(dir.path()).env("NBTOKEN_PEPPER_1", PEPPER).args([
                "--database",
                db_arg,
                "user",
                "create",
                &name,
            ]),
            None,
        );
        assert!(ok, "{err}");
    }
    // Each command closes the database before it exits, which folds the write-ahead log into
    // the file: the file alone is the database (else a loaded machine's exit could leave the
    // last writes in the log), and a log file, if one is left, is empty. Then damage the
    // file's last page (a table's b-tree).
    let wal = format!("{db_arg}-wal");
    let in_log = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(in_log, 0, "{wal} holds {in_log} bytes of writes the database file does not");
    nbtoken_testkit::damage_last_page(&db, 3);
    let stderr = serve_refuses(dir.path(), &db);
    assert!(stderr.contains("nbtoken.sqlite3") && stderr.contains("backup"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn a_new_database_is_private_and_doctor_fails_on_a_wider_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // Outside the data directory, where nothing else makes it private.
    let db = dir.path().join("elsewhere.sqlite3");
    let db_arg = db.to_str().unwrap();
    let (ok, _, err) = run(
        nbtoken(dir.path()).env("NBTOKEN_PEPPER_1", PEPPER).args(["--database", db_arg, "user", "list"]),
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(std::fs::metadata(&db).unwrap().permissions().mode() & 0o777, 0o600);
    let doctor = || {
        run(nbtoken(dir.path()).env("NBTOKEN_PEPPER_1", PEPPER).args(["--database", db_arg, "doctor"]), None)
    };
    let (_, out, _) = doctor();
    let line = out.lines().find(|l| l.contains("database file permissions")).unwrap_or_default().to_owned();
    assert!(line.contains("ok"), "{out}");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, out, _) = doctor();
    assert!(!ok, "doctor passed a world-readable database: {out}");
    let line = out.lines().find(|l| l.contains("database file permissions")).unwrap_or_default().to_owned();
    assert!(line.contains("FAIL") && line.contains("chmod 600"), "{out}");
}
