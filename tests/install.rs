//! install.sh, run for real with `--prefix` into a temporary directory and `--binary` set to the
//! binary cargo built for these tests: files and modes, a second run changing nothing, an edited
//! config kept, `--uninstall` keeping config and data, and clear errors. Never `--systemd`.

mod common;
use common::TempDir;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// install.sh copies one binary and writes two small files: far less than this.
const INSTALL_LIMIT: Duration = Duration::from_secs(30);

/// The install prefix in `tmp`: not created beforehand, so install.sh must make it.
fn prefix_in(tmp: &TempDir) -> PathBuf {
    tmp.path().join("prefix")
}

fn install_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh")
}

fn built_binary() -> &'static str {
    env!("CARGO_BIN_EXE_pykv")
}

/// `bash install.sh ARGS`, killed (by its own PID) if it outlives `INSTALL_LIMIT`.
fn run_install(args: &[&str]) -> Output {
    let mut child = Command::new("bash")
        .arg(install_sh())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bash install.sh");
    let start = Instant::now();
    while child.try_wait().expect("wait for install.sh").is_none() {
        if start.elapsed() > INSTALL_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("install.sh {args:?} did not finish within {INSTALL_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect install.sh output")
}

/// Install into `prefix` from the test binary and insist on success.
fn install(prefix: &Path) -> String {
    let out = run_install(&[
        "--prefix",
        prefix.to_str().unwrap(),
        "--binary",
        built_binary(),
    ]);
    assert_success(&out);
    String::from_utf8(out.stdout).expect("install.sh prints UTF-8")
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "install.sh failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// Everything that could tell two states of a tree apart: for each entry its type and mode,
/// inode, mtime and ctime (ctime moves on any chmod, chown or rewrite and cannot be set back),
/// and a file's bytes.
type Tree = BTreeMap<PathBuf, (u32, u64, (i64, i64), (i64, i64), Vec<u8>)>;

fn tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let md = std::fs::symlink_metadata(&path).expect("stat");
        let bytes = if md.is_file() {
            std::fs::read(&path).expect("read")
        } else {
            Vec::new()
        };
        if md.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir") {
                pending.push(entry.expect("dir entry").path());
            }
        }
        let rel = path.strip_prefix(root).unwrap().to_path_buf();
        let times = ((md.mtime(), md.mtime_nsec()), (md.ctime(), md.ctime_nsec()));
        out.insert(rel, (md.mode(), md.ino(), times.0, times.1, bytes));
    }
    out
}

/// Fail naming each path that differs, without printing file contents.
fn assert_same_tree(before: &Tree, after: &Tree, what: &str) {
    let paths: std::collections::BTreeSet<&PathBuf> = before.keys().chain(after.keys()).collect();
    let changed: Vec<String> = paths
        .into_iter()
        .filter(|p| before.get(*p) != after.get(*p))
        .map(|p| p.display().to_string())
        .collect();
    assert!(changed.is_empty(), "{what} changed: {changed:?}");
}

fn expected_config(prefix: &Path) -> String {
    format!(
        "{{\n  \"listen\": \"127.0.0.1:8080\",\n  \"data_dir\": \"{}\",\n  \"persistence\": \"sync\"\n}}\n",
        prefix.join("var/lib/pykv").display()
    )
}

/// A prefix install puts the binary, the config and a private data directory in place.
#[test]
fn prefix_install_puts_binary_config_and_data_dir_in_place() {
    let tmp = TempDir::new();
    let prefix = prefix_in(&tmp);
    install(&prefix);

    let bin = prefix.join("bin/pykv");
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        std::fs::read(built_binary()).unwrap(),
        "the installed binary is the one given with --binary"
    );
    let config = prefix.join("etc/pykv/config.json");
    assert_eq!(mode(&config), 0o644);
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        expected_config(&prefix)
    );
    let data = prefix.join("var/lib/pykv");
    assert!(std::fs::symlink_metadata(&data).unwrap().is_dir());
    assert_eq!(mode(&data), 0o700);
    assert_eq!(
        std::fs::read_dir(&data).unwrap().count(),
        0,
        "data dir empty"
    );
}

/// The installed binary accepts the installed config.
#[test]
fn installed_config_passes_check_config() {
    let tmp = TempDir::new();
    let prefix = prefix_in(&tmp);
    install(&prefix);
    let config = prefix.join("etc/pykv/config.json");
    let out = Command::new(prefix.join("bin/pykv"))
        .arg("--check-config")
        .arg(&config)
        .output()
        .expect("run the installed pykv");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("config OK: {}\n", config.display())
    );
}

/// Running install.sh again changes nothing at all, and says it kept what was there.
#[test]
fn second_run_changes_nothing() {
    let tmp = TempDir::new();
    let prefix = prefix_in(&tmp);
    install(&prefix);
    let before = tree(&tmp.0);
    let stdout = install(&prefix);
    assert_same_tree(&before, &tree(&tmp.0), "the second run");
    let bin = prefix.join("bin/pykv");
    let config = prefix.join("etc/pykv/config.json");
    let data = prefix.join("var/lib/pykv");
    for line in [
        format!("{} is already up to date", bin.display()),
        format!("keeping the existing config {}", config.display()),
        format!("keeping the existing data directory {}", data.display()),
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no {line:?} in:\n{stdout}"
        );
    }
}

/// A config the user edited and data the server wrote survive a re-run untouched.
#[test]
fn rerun_keeps_an_edited_config_and_the_data() {
    let tmp = TempDir::new();
    let prefix = prefix_in(&tmp);
    install(&prefix);
    let config = prefix.join("etc/pykv/config.json");
    let edited = "{ \"listen\": \"0.0.0.0:9090\", \"persistence\": \"interval\" }\n";
    std::fs::write(&config, edited).unwrap();
    let token = prefix.join("var/lib/pykv/admin.token");
    std::fs::write(&token, "pykv_0123456789abcdef0123456789abcdef\n").unwrap();
    let before = tree(&tmp.0);

    install(&prefix);
    assert_same_tree(&before, &tree(&tmp.0), "the re-run");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
}

/// `--uninstall` removes the binary and keeps config and data, saying so.
#[test]
fn uninstall_removes_the_binary_and_keeps_config_and_data() {
    let tmp = TempDir::new();
    let prefix = prefix_in(&tmp);
    install(&prefix);
    let snapshot = prefix.join("var/lib/pykv/demo.json");
    std::fs::write(&snapshot, "not really a snapshot\n").unwrap();
    let config = prefix.join("etc/pykv/config.json");
    let data_before = tree(&prefix.join("var"));
    let config_before = tree(&prefix.join("etc"));

    let out = run_install(&["--uninstall", "--prefix", prefix.to_str().unwrap()]);
    assert_success(&out);
    let bin = prefix.join("bin/pykv");
    assert!(!bin.exists(), "{} still there", bin.display());
    assert_same_tree(&data_before, &tree(&prefix.join("var")), "the data");
    assert_same_tree(&config_before, &tree(&prefix.join("etc")), "the config");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let data = prefix.join("var/lib/pykv");
    assert_eq!(
        stdout,
        format!(
            "removing {}\nkept the config {} and the data directory {} (snapshots, admin.token)\n",
            bin.display(),
            config.display(),
            data.display()
        )
    );
}

/// An unknown option is refused with one clear line and exit status 2, before anything is made.
#[test]
fn unknown_option_fails_clearly_and_changes_nothing() {
    let tmp = TempDir::new();
    let prefix = prefix_in(&tmp);
    let out = run_install(&[
        "--prefix",
        prefix.to_str().unwrap(),
        "--binary",
        built_binary(),
        "--frobnicate",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "install.sh: unknown option --frobnicate (see install.sh --help)\n"
    );
    assert_eq!(out.stdout, b"");
    assert!(!prefix.exists(), "install.sh created {}", prefix.display());
}

/// A prefix that cannot be written is refused before any step is taken.
#[test]
fn unwritable_prefix_fails_before_any_step() {
    let tmp = TempDir::new();
    let blocker = tmp.0.join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let prefix = blocker.join("prefix");
    let out = run_install(&[
        "--prefix",
        prefix.to_str().unwrap(),
        "--binary",
        built_binary(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "install.sh: error: cannot create {}/bin: {} is not a directory\n",
            prefix.display(),
            blocker.display()
        )
    );
    assert_eq!(out.stdout, b"");
    assert_eq!(std::fs::read(&blocker).unwrap(), b"");
}

/// `--binary` naming nothing fails with its path, and nothing is installed.
#[test]
fn missing_binary_fails_clearly() {
    let tmp = TempDir::new();
    let prefix = prefix_in(&tmp);
    let missing = tmp.0.join("no-such-pykv");
    let out = run_install(&[
        "--prefix",
        prefix.to_str().unwrap(),
        "--binary",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "install.sh: error: --binary {}: no such file\n",
            missing.display()
        )
    );
    assert!(!prefix.exists());
}

/// `--help` documents every option and exits 0.
#[test]
fn help_lists_every_option() {
    let out = run_install(&["--help"]);
    assert_success(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Usage: install.sh [OPTIONS]\n"), "{text}");
    for option in [
        "--prefix DIR",
        "--binary PATH",
        "--static",
        "--target aarch64|armv7",
        "--systemd",
        "--uninstall",
        "--help",
    ] {
        assert!(text.contains(option), "--help lacks {option}:\n{text}");
    }
}
