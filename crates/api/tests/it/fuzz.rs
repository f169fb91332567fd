//! The fuzz targets' properties (`formica_api::fuzzing`) over the committed seeds in
//! `fuzz/seeds/<target>/`: what `scripts/fuzz` checks on millions of inputs, `cargo test`
//! checks on these, with no fuzzer or nightly toolchain. A crash the fuzzer finds becomes a
//! test of its own beside the code it broke.

use std::path::PathBuf;

/// Runs `target`'s property on each of its seeds.
fn seeds_hold(target: &str) {
    let (_, property) = formica_api::fuzzing::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a known target");
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut seeds: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("{}: {error}", folder.display()))
        .map(|entry| entry.expect("a readable folder").path())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "{target} has no seeds");
    for seed in seeds {
        let data = std::fs::read(&seed).expect("a readable seed");
        // The file's name in a failure says which seed broke the property.
        let outcome = std::panic::catch_unwind(|| property(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} broke a property",
            seed.display()
        );
    }
}

#[test]
fn fuzz_seeds_hold_for_money() {
    seeds_hold("money");
}

#[test]
fn fuzz_seeds_hold_for_gateway_request() {
    seeds_hold("gateway_request");
}

#[test]
fn fuzz_seeds_hold_for_gateway_key() {
    seeds_hold("gateway_key");
}

#[test]
fn fuzz_seeds_hold_for_notify() {
    seeds_hold("notify");
}

#[test]
fn fuzz_seeds_hold_for_webhook() {
    seeds_hold("webhook");
}

#[test]
fn fuzz_seeds_hold_for_command() {
    seeds_hold("command");
}

#[test]
fn every_target_has_a_binary_and_seeds() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let script = std::fs::read_to_string(fuzz.join("../scripts/fuzz")).expect("scripts/fuzz");
    for (target, _) in formica_api::fuzzing::TARGETS {
        assert!(
            fuzz.join(format!("fuzz_targets/{target}.rs")).exists(),
            "{target}"
        );
        assert!(fuzz.join(format!("seeds/{target}")).is_dir(), "{target}");
        assert!(script.contains(target), "scripts/fuzz runs {target}");
    }
}
