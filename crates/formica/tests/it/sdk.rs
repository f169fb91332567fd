//! The open gateway driven by the real, unmodified `python-alipay-sdk` from PyPI: the Python
//! tests in `tests/sdk/` run against `formica demo` and its sandbox. They need a Python with
//! the SDK and pytest (`scripts/sdk-venv` makes one in `target/sdk-venv`); without it the test
//! is skipped, unless `FORMICA_REQUIRE_SDK=1` (CI) makes that a failure.

use std::path::PathBuf;
use std::process::Command;

use crate::serve::{assert_trial_balance, demo, terminate};

fn python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("FORMICA_SDK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/sdk-venv/bin/python"));
    python.exists().then_some(python)
}

#[test]
fn the_python_alipay_sdk_drives_the_gateway_unchanged() {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("FORMICA_REQUIRE_SDK").is_none(),
            "FORMICA_REQUIRE_SDK is set but there is no SDK venv: run scripts/sdk-venv"
        );
        eprintln!("skipped: no Python with python-alipay-sdk (run scripts/sdk-venv)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (child, _url, printed) = demo(dir.path());
    let sandbox = dir.path().join("sandbox/sandbox.json");
    assert!(sandbox.exists(), "the demo writes its sandbox: {printed}");
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk");
    let run = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&tests)
        .env("FORMICA_SANDBOX", &sandbox)
        .env("FORMICA_BIN", env!("CARGO_BIN_EXE_formica"))
        .env("FORMICA_DATA_DIR", dir.path())
        .output()
        .expect("pytest runs");
    terminate(&child);
    let mut child = child;
    assert!(child.wait().expect("exits").success());
    assert!(
        run.status.success(),
        "the SDK tests pass:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_trial_balance(dir.path());
}
