//! Schemathesis (`--checks all`) against the real binary's `/openapi.json`: the document and the
//! server agree. Opt-in with `PYKV_SCHEMATHESIS=1`, because it needs schemathesis from PyPI (not
//! a Debian package, and CI installs nothing else): the test makes its own venv under target/
//! and pip-installs a pinned version there (once; later runs reuse it). What a schema cannot say
//! is excused, each with its reason, in tests/schemathesis/ (schemathesis.toml and hooks.py).
//! The always-on check of the same agreement is tests/openapi.rs.

mod common;
use common::*;

use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// Bounds: installing (a slow mirror), and the run itself (about a minute here).
const INSTALL_LIMIT: Duration = Duration::from_secs(600);
const RUN_LIMIT: Duration = Duration::from_secs(600);

#[test]
fn schemathesis_finds_nothing() {
    if std::env::var("PYKV_SCHEMATHESIS").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set PYKV_SCHEMATHESIS=1 to run schemathesis (needs python3-venv and PyPI)"
        );
        return;
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-venv");
    let st = venv.join("bin").join("schemathesis");
    if !st.is_file() {
        let made = run_within(
            Command::new("python3").args(["-m", "venv", venv.to_str().unwrap()]),
            INSTALL_LIMIT,
        );
        assert_eq!(made.code, Some(0), "python3 -m venv: {}", made.stderr);
        let pip = run_within(
            Command::new(venv.join("bin").join("pip")).args(["install", "--quiet", SCHEMATHESIS]),
            INSTALL_LIMIT,
        );
        assert_eq!(
            pip.code,
            Some(0),
            "pip install {SCHEMATHESIS}: {}",
            pip.stderr
        );
    }
    // The PyKV routes on, so that they are tried too; memory keeps the run off the disk.
    let srv = Server::start(json!({
        "persistence": "memory",
        "log_requests": false,
        "compat_project": "demo",
        "projects": { "demo": {} },
    }));
    let here = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("schemathesis");
    let work = TempDir::new();
    let run = run_within(
        Command::new(&st)
            .current_dir(work.path())
            .env("PYTHONPATH", &here)
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .arg("--config-file")
            .arg(here.join("schemathesis.toml"))
            .args(["run", &format!("{}/openapi.json", srv.url())])
            .args(["--checks", "all", "--max-examples", "30", "--seed", "1"])
            .args(["-H", &format!("Authorization: Bearer {ADMIN}")]),
        RUN_LIMIT,
    );
    assert!(
        !run.timed_out,
        "schemathesis ran past {RUN_LIMIT:?}:\n{}",
        run.stdout
    );
    assert_eq!(
        run.code,
        Some(0),
        "schemathesis found something:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stdout.contains("Tested: 45"), "{}", run.stdout);
}
