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

/// An unsigned precreate form (the target signs it as the SDKs do) whose `biz_content` has
/// this `timeout_express`.
fn precreate_with_timeout(timeout_express: &str) -> Vec<u8> {
    let biz = serde_json::json!({
        "out_trade_no": "A1",
        "total_amount": "1.00",
        "subject": "tea",
        "timeout_express": timeout_express,
    });
    form_urlencoded::Serializer::new(String::new())
        .append_pair("app_id", formica_api::fuzzing::APP_ID)
        .append_pair("method", "alipay.trade.precreate")
        .append_pair("sign_type", "RSA2")
        .append_pair("timestamp", "2026-12-02 10:00:00")
        .append_pair("version", "1.0")
        .append_pair("biz_content", &biz.to_string())
        .finish()
        .into_bytes()
}

/// Found while writing the `gateway_request` target: `timeout_express` was split one byte
/// before its end, which panicked on a unit that is not ASCII (`1é`), and its count was
/// multiplied unchecked, which overflowed (a panic in debug builds, a wrapped and wrong
/// deadline in release). Both are refused as malformed now; the target's property (an
/// accepted deadline lies within 15 days) runs on each.
#[test]
fn timeout_express_with_a_wide_unit_or_a_huge_count_is_refused_not_a_panic() {
    for timeout in ["1é", "é", "99999999999999999d", "+90m", "-1h", "90m", "1c"] {
        formica_api::fuzzing::gateway_request(&precreate_with_timeout(timeout));
    }
}
