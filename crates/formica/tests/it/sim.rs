//! `formica sim`: a seed replays exactly, many seeds pass, and the checker catches a store
//! that acknowledges a commit it never wrote (so that a green run means something).

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_formica"))
        .arg("sim")
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("formica runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_seed_replays_exactly() {
    let first = sim(&["--seed", "3", "--steps", "150"]);
    let again = sim(&["--seed", "3", "--steps", "150"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let summary = text(&first.stdout);
    assert!(summary.starts_with("seed 3: 150 steps"), "{summary}");
    assert!(summary.contains("written but unanswered"), "{summary}");
    assert_eq!(summary, text(&again.stdout), "the same seed, the same run");
    let other = sim(&["--seed", "4", "--steps", "150"]);
    assert_ne!(summary, text(&other.stdout), "another seed, another run");
}

#[test]
fn twenty_seeds_keep_every_promise() {
    let run = sim(&["--seeds", "20", "--first-seed", "100", "--steps", "200"]);
    let out = text(&run.stdout);
    assert!(run.status.success(), "{out}{}", text(&run.stderr));
    assert!(out.contains("20 passed, 0 failed"), "{out}");
    // The run reached the products' interesting states, not only refusals.
    for reached in [
        "trade TRADE_FINISHED",
        "trade DISPUTE",
        "redemption",
        "subscription",
        "consent",
        "credit_check",
        "refused consent_not_found",
        "hold WAIVED",
        "hold FROZEN",
        "hold CLOSED",
    ] {
        assert!(out.contains(reached), "{reached} never reached:\n{out}");
    }
}

#[test]
fn a_store_that_loses_acknowledged_commits_is_caught_and_the_seed_printed() {
    let run = sim(&["--seeds", "2", "--steps", "200", "--lying-store"]);
    assert!(!run.status.success());
    let err = text(&run.stderr);
    assert!(err.contains("2 of 2 seeds failed"), "{err}");
    assert!(
        err.contains("replay: formica sim --seed 1 --steps 200"),
        "{err}"
    );
}
