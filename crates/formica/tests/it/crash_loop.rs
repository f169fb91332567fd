//! `formica crash-loop` as CI runs it, shortened: three SIGKILLs of a real `formica serve`
//! under HTTP load, each followed by a restart and the loop's checks (acknowledged requests
//! kept once, requests cut off applied once when sent again, money conserved, the trial
//! balance). The loop exits non-zero on any violation; the seed it prints replays it.

#![cfg(unix)]

use std::ffi::OsString;
use std::process::Command;

use formica_store::TemporaryDatabase;

use super::crash::postgres_url;

/// Kills per test: enough to restart on books that earlier kills left, short for a test run.
const KILLS: &str = "3";

/// Runs the loop on the books `store` names and asserts it passed and said so.
fn crash_loop(store: [OsString; 2]) {
    let output = Command::new(env!("CARGO_BIN_EXE_formica"))
        .env_remove("FORMICA_DATA_DIR")
        .env_remove("FORMICA_DATABASE_URL")
        .args(["crash-loop", "--kills", KILLS, "--clients", "3"])
        .args(store)
        .output()
        .expect("the formica binary can be run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "formica crash-loop failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    eprintln!("{stdout}");
    for kill in 1..=3 {
        assert!(stdout.contains(&format!("kill   {kill}/3:")), "{stdout}");
    }
    assert!(stdout.contains("3 kills"), "{stdout}");
    assert!(stdout.contains("0 violations"), "{stdout}");
    assert!(!stdout.contains("violation:"), "{stdout}");
}

#[test]
fn crash_loop_keeps_every_acknowledged_request_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory for the books");
    crash_loop(["--data-dir".into(), dir.path().into()]);
}

#[test]
fn crash_loop_keeps_every_acknowledged_request_on_postgres() {
    let Some(url) = postgres_url() else {
        return;
    };
    let database = TemporaryDatabase::create(&url, "formica_crash_loop")
        .expect("DATABASE_URL names a reachable PostgreSQL server");
    crash_loop(["--database-url".into(), database.url.clone().into()]);
}
