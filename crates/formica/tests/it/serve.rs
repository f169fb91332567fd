//! `formica serve` as a user runs it: it listens, answers health and metrics over real HTTP,
//! and on SIGTERM finishes its work and exits cleanly, leaving the books to the next writer.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Starts `formica serve` on a free port and returns it with its base URL.
fn serve(data_dir: &std::path::Path) -> (Child, BufReader<std::process::ChildStdout>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_formica"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("formica starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("reads");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the first line names the address: {line:?}"))
        .to_owned();
    (child, stdout, url)
}

pub(crate) fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[test]
fn serve_answers_health_and_metrics_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, mut stdout, url) = serve(dir.path());

    let health = ureq::get(format!("{url}/healthz"))
        .call()
        .expect("healthz answers")
        .into_body()
        .read_to_string()
        .expect("a body");
    assert_eq!(health, "ok\n");
    let mut response = ureq::get(format!("{url}/metrics"))
        .call()
        .expect("metrics answer");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("text/plain; version=0.0.4"));
    let metrics = response.body_mut().read_to_string().expect("a body");
    assert!(
        metrics.contains(
            // At least the daily credit run's first batch has run.
            "# TYPE formica_engine_batches_total counter\nformica_engine_batches_total "
        ),
        "{metrics}"
    );
    // Seconds with nine decimals.
    let commit_seconds = metrics
        .lines()
        .find_map(|line| line.strip_prefix("formica_engine_commit_seconds_total "))
        .expect("commit seconds");
    assert_eq!(
        commit_seconds.split_once('.').map(|(_, f)| f.len()),
        Some(9),
        "{metrics}"
    );
    // The pages are served beside the API, their stylesheet compiled in.
    let sign_in = ureq::get(format!("{url}/"))
        .call()
        .expect("the start page answers")
        .into_body()
        .read_to_string()
        .expect("a page");
    assert!(sign_in.contains("<h1>Sign in</h1>"), "{sign_in}");
    let css = ureq::get(format!("{url}/static/formica.css"))
        .call()
        .expect("the stylesheet answers");
    assert!(
        css.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/css"))
    );
    let missing = ureq::get(format!("{url}/nowhere")).call();
    assert!(
        matches!(missing, Err(ureq::Error::StatusCode(404))),
        "{missing:?}"
    );

    terminate(&child);
    let mut rest = String::new();
    stdout.read_line(&mut rest).expect("reads");
    assert_eq!(rest, "stopped\n");
    assert!(child.wait().expect("exits").success());

    // The writer's lock went with it: the next server takes the books.
    let (mut next, next_stdout, url) = serve(dir.path());
    // A parent that stops reading does not make a clean stop fail.
    drop(next_stdout);
    assert!(ureq::get(format!("{url}/healthz")).call().is_ok());
    terminate(&next);
    assert!(next.wait().expect("exits").success());
}

/// Starts `formica demo` on `data_dir`; returns it, its URL and everything it printed.
#[allow(
    clippy::zombie_processes,
    reason = "the child is returned to the test, which waits for it; one that dies early is reaped here"
)]
pub(crate) fn demo(data_dir: &std::path::Path) -> (Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_formica"))
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("formica starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut printed = String::new();
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("formica demo stopped before it listened: {printed}");
        }
        printed.push_str(&line);
        if let Some(url) = line.trim().strip_prefix("listening on ") {
            return (child, url.to_owned(), printed);
        }
    }
}

#[test]
fn demo_seeds_a_world_that_balances_and_keeps_it_across_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (child, url, printed) = demo(dir.path());
    assert!(printed.contains("+8613800000001"), "{printed}");
    assert!(printed.contains("ops@formica.demo"), "{printed}");
    let alice_balance = |url: &str| {
        let session: serde_json::Value = ureq::post(format!("{url}/v1/sessions"))
            .send_json(serde_json::json!({"login": "+8613800000001", "password": "demo-password"}))
            .expect("signs in")
            .body_mut()
            .read_json()
            .expect("JSON");
        let token = session["token"].as_str().expect("a token").to_owned();
        let wallet: serde_json::Value = ureq::get(format!("{url}/v1/wallet"))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .expect("answers")
            .body_mut()
            .read_json()
            .expect("JSON");
        wallet["balances"][0]["available"]["amount"]
            .as_str()
            .expect("an amount")
            .to_owned()
    };
    // 5,000.00 topped up; 52.00 sent to Bob; 168.00 and 398.00 held in escrow.
    assert_eq!(alice_balance(&url), "4382.00");
    terminate(&child);
    let mut child = child;
    assert!(child.wait().expect("exits").success());
    let (child, url, _) = demo(dir.path());
    assert_eq!(alice_balance(&url), "4382.00", "a restart keeps the world");
    terminate(&child);
    let mut child = child;
    assert!(child.wait().expect("exits").success());
    assert_trial_balance(dir.path());
}

/// Runs `formica admin trial-balance` on `data_dir`, as an operator would, and asserts it holds.
pub(crate) fn assert_trial_balance(data_dir: &std::path::Path) {
    let balance = Command::new(env!("CARGO_BIN_EXE_formica"))
        .args(["admin", "trial-balance", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("runs");
    assert!(
        balance.status.success(),
        "{}",
        String::from_utf8_lossy(&balance.stdout)
    );
}
