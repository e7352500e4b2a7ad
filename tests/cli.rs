//! The command line: `--version`, `--help`, `token`, `--check-config`, start-up errors and
//! how the config file is found, run as a real process.

mod common;
use common::*;

use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

/// No command here should take long; a hung process fails its test instead of the run.
const CLI_LIMIT: Duration = Duration::from_secs(15);

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("PYKV_CONFIG")
        .env_remove("PYKV_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Run to completion (killed after `CLI_LIMIT`, then `code` is None).
fn run_cli_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    run_within(&mut command(args, env), CLI_LIMIT)
}

fn run_cli(args: &[&str]) -> Run {
    run_cli_env(args, &[])
}

fn write_config(dir: &TempDir, cfg: &serde_json::Value) -> PathBuf {
    let path = dir.path().join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(cfg).unwrap()).unwrap();
    path
}

/// A config that is valid apart from whatever `extra` changes.
fn valid_config(dir: &TempDir, extra: serde_json::Value) -> serde_json::Value {
    let mut cfg = json!({
        "listen": "127.0.0.1:0",
        "data_dir": dir.path().join("data").to_str().unwrap(),
        "admin_token": ADMIN,
    });
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    cfg
}

fn check_config(cfg: &serde_json::Value) -> (Run, PathBuf, TempDir) {
    let dir = TempDir::new();
    let path = write_config(&dir, cfg);
    let out = run_cli(&["--check-config", path.to_str().unwrap()]);
    (out, path, dir)
}

/// Exit 2 with exactly one stderr line, which starts with `prefix`; returns that line.
fn assert_one_line_error(out: &Run, prefix: &str) -> String {
    assert_eq!(
        out.code,
        Some(2),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {:?}", out.stderr);
    assert!(lines[0].starts_with(prefix), "stderr: {:?}", out.stderr);
    assert!(out.stderr.ends_with('\n'), "stderr: {:?}", out.stderr);
    lines[0].to_string()
}

/// A server process started by a test, killed (by its own PID) on drop.
struct Running {
    child: Child,
    log: Arc<Mutex<String>>,
    start_line: String,
}

impl Running {
    /// Spawn and wait for the start line; panics with the log if it does not come.
    fn start(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Running {
        let mut cmd = command(args, env);
        cmd.current_dir(cwd).stdout(Stdio::null());
        let mut child = cmd.spawn().expect("spawn pykv");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = String::new();
            while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                log2.lock().unwrap().push_str(&line);
                if line.contains(" listening on ") {
                    let _ = tx.send(line.clone());
                }
                line.clear();
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(start_line) => Running {
                child,
                log,
                start_line,
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                thread::sleep(Duration::from_millis(50));
                panic!("server did not start:\n{}", log.lock().unwrap());
            }
        }
    }

    fn addr(&self) -> String {
        let rest = self.start_line.split(" listening on ").nth(1).unwrap();
        rest.split_whitespace().next().unwrap().to_string()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn health_status(addr: &str) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(&request_bytes("GET", "/health", None, &[], b""))
        .unwrap();
    read_response(&mut s, false).expect("response").status
}

// ---------------------------------------------------------------------------------------------
// Informational commands

#[test]
fn version_prints_name_and_version() {
    let out = run_cli(&["--version"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "pykv 0.1.0\n");
}

#[test]
fn help_exits_zero_and_mentions_config() {
    let out = run_cli(&["--help"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("--config"), "{}", out.stdout);
}

#[test]
fn token_prints_a_generated_secret_and_a_newline() {
    let out = run_cli(&["token"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let secret = out.stdout.strip_suffix('\n').expect("ends with a newline");
    assert!(is_generated_secret(secret), "{:?}", out.stdout);
}

#[test]
fn token_differs_between_runs() {
    let a = run_cli(&["token"]).stdout;
    let b = run_cli(&["token"]).stdout;
    assert!(is_generated_secret(a.trim_end()), "{a:?}");
    assert_ne!(a, b);
}

// ---------------------------------------------------------------------------------------------
// --check-config

#[test]
fn check_config_accepts_every_documented_field() {
    let dir = TempDir::new();
    let cfg = json!({
        "listen": "127.0.0.1:8080",
        "data_dir": "./data",
        "admin_token": ADMIN,
        "persistence": "sync",
        "interval_ms": 1000,
        "max_connections": 1024,
        "log_requests": true,
        "limits": {
            "max_head_bytes": 16384, "max_headers": 100, "max_url_bytes": 8192,
            "max_value_bytes": 1048576, "max_key_bytes": 1024, "max_keys_per_project": null,
            "head_timeout_ms": 10000, "body_timeout_ms": 10000, "idle_timeout_ms": 60000
        },
        "projects": {
            "demo": {
                "persistence": "interval",
                "tokens": [
                    { "label": "ci", "access": "read", "secret": "ci-read-secret-0123456789" },
                    { "label": "app", "access": "write", "secret": "app-write-secret-0123456789" }
                ]
            }
        }
    });
    let path = write_config(&dir, &cfg);
    let path = path.to_str().unwrap();
    let out = run_cli(&["--check-config", path]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, format!("config OK: {path}\n"));
}

#[test]
fn check_config_rejects_an_unknown_field_naming_it() {
    let dir = TempDir::new();
    let (out, _, _) = check_config(&valid_config(&dir, json!({ "bogus_field": 1 })));
    let line = assert_one_line_error(&out, "pykv: config error: ");
    assert!(line.contains("bogus_field"), "{line}");
    assert_eq!(out.stdout, "");
}

#[test]
fn check_config_rejects_an_unknown_limit_naming_it() {
    let dir = TempDir::new();
    let cfg = valid_config(&dir, json!({ "limits": { "max_value_byte": 10 } }));
    let (out, _, _) = check_config(&cfg);
    let line = assert_one_line_error(&out, "pykv: config error: ");
    assert!(line.contains("max_value_byte"), "{line}");
}

#[test]
fn check_config_rejects_a_bad_listen_address() {
    let dir = TempDir::new();
    let (out, _, _) = check_config(&valid_config(&dir, json!({ "listen": "not an address" })));
    let line = assert_one_line_error(&out, "pykv: config error: ");
    assert!(line.contains("listen"), "{line}");
}

#[test]
fn check_config_rejects_zero_max_value_bytes() {
    let dir = TempDir::new();
    let cfg = valid_config(&dir, json!({ "limits": { "max_value_bytes": 0 } }));
    let (out, _, _) = check_config(&cfg);
    let line = assert_one_line_error(&out, "pykv: config error: ");
    assert!(line.contains("max_value_bytes"), "{line}");
}

#[test]
fn check_config_rejects_a_too_short_admin_token() {
    let dir = TempDir::new();
    let (out, _, _) = check_config(&valid_config(&dir, json!({ "admin_token": "short" })));
    assert_one_line_error(&out, "pykv: config error: ");
}

#[test]
fn check_config_rejects_invalid_json() {
    let dir = TempDir::new();
    let path = dir.path().join("config.json");
    std::fs::write(&path, "{ \"listen\": ").unwrap();
    let out = run_cli(&["--check-config", path.to_str().unwrap()]);
    assert_one_line_error(&out, "pykv: config error: ");
}

#[test]
fn check_config_on_a_missing_file_exits_2() {
    let dir = TempDir::new();
    let path = dir.path().join("absent.json");
    let out = run_cli(&["--check-config", path.to_str().unwrap()]);
    assert_one_line_error(&out, "pykv: ");
}

// ---------------------------------------------------------------------------------------------
// Starting

#[test]
fn start_on_a_port_in_use_exits_2_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = TempDir::new();
    let path = write_config(&dir, &valid_config(&dir, json!({ "listen": addr })));
    let out = run_cli(&["--config", path.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "stderr: {}", out.stderr);
    assert!(!out.stderr.contains("listening on"), "{}", out.stderr);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("pykv: "))
        .collect();
    assert_eq!(errors.len(), 1, "stderr: {}", out.stderr);
    assert!(errors[0].contains(&addr), "{}", errors[0]);
    drop(taken);
}

#[test]
fn pykv_config_env_var_selects_the_config() {
    let dir = TempDir::new();
    let path = write_config(&dir, &valid_config(&dir, json!({})));
    let path = path.to_str().unwrap();
    let srv = Running::start(&[], &[("PYKV_CONFIG", path)], dir.path());
    assert!(
        srv.start_line.contains(&format!("config={path}")),
        "{}",
        srv.start_line
    );
    assert_eq!(health_status(&srv.addr()), 200, "{}", srv.log());
}

#[test]
fn relative_data_dir_resolves_against_the_config_directory() {
    let dir = TempDir::new();
    let elsewhere = TempDir::new();
    let cfg = json!({ "listen": "127.0.0.1:0", "data_dir": "./data" });
    let path = write_config(&dir, &cfg);
    let srv = Running::start(&["--config", path.to_str().unwrap()], &[], elsewhere.path());
    assert_eq!(health_status(&srv.addr()), 200, "{}", srv.log());
    assert!(
        dir.path().join("data").join("admin.token").is_file(),
        "log: {}",
        srv.log()
    );
    assert!(!elsewhere.path().join("data").exists());
}

// ---------------------------------------------------------------------------------------------
// What a newcomer gets wrong in config.json, and where it is looked for

#[test]
fn a_type_error_names_its_field_and_what_it_wanted() {
    let dir = TempDir::new();
    let path = write_config(
        &dir,
        &valid_config(&dir, json!({ "limits": { "max_value_bytes": "big" } })),
    );
    let out = run_cli(&["--check-config", path.to_str().unwrap()]);
    let line = assert_one_line_error(&out, "pykv: config error: ");
    assert_eq!(
        line,
        format!(
            "pykv: config error: {}: limits.max_value_bytes: expected a whole number of bytes, \
             got the string \"big\"",
            path.display()
        )
    );
}

#[test]
fn comments_and_single_quotes_are_named_as_such() {
    let dir = TempDir::new();
    let path = dir.path().join("config.json");
    let shown = path.display().to_string();
    for (text, expected) in [
        (
            "{\n  // the port\n  \"listen\": \":8080\"\n}\n",
            format!(
                "pykv: config error: {shown}: line 2 column 3: JSON has no comments: remove \
                 the // or /* */ or # text (README: Configuration)"
            ),
        ),
        (
            "{ 'listen': ':8080' }\n",
            format!(
                "pykv: config error: {shown}: line 1 column 3: JSON strings and field names \
                 take double quotes (\"), not single quotes (')"
            ),
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let out = run_cli(&["--check-config", path.to_str().unwrap()]);
        assert_eq!(assert_one_line_error(&out, "pykv: "), expected);
    }
}

#[test]
fn listen_takes_localhost_and_a_bare_port_for_all_interfaces() {
    let dir = TempDir::new();
    let path = write_config(
        &dir,
        &valid_config(&dir, json!({ "listen": "localhost:0" })),
    );
    let srv = Running::start(&["--config", path.to_str().unwrap()], &[], dir.path());
    assert!(srv.addr().starts_with("127.0.0.1:"), "{}", srv.start_line);
    assert_eq!(health_status(&srv.addr()), 200);
    drop(srv);

    let path = write_config(&dir, &valid_config(&dir, json!({ "listen": ":0" })));
    let srv = Running::start(&["--config", path.to_str().unwrap()], &[], dir.path());
    let addr = srv.addr();
    assert!(addr.starts_with("0.0.0.0:"), "{}", srv.start_line);
    assert!(
        srv.start_line
            .contains(&format!("listening on {addr} (all interfaces) ")),
        "{}",
        srv.start_line
    );
    let port = addr.rsplit(':').next().unwrap();
    assert_eq!(health_status(&format!("127.0.0.1:{port}")), 200);
}

#[test]
fn listen_takes_an_ipv6_address_in_brackets() {
    // Only where this machine has IPv6 loopback (a container may not): say so when skipping.
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    }
    let dir = TempDir::new();
    let path = write_config(&dir, &valid_config(&dir, json!({ "listen": "[::1]:0" })));
    let srv = Running::start(&["--config", path.to_str().unwrap()], &[], dir.path());
    assert!(srv.addr().starts_with("[::1]:"), "{}", srv.start_line);
    assert_eq!(health_status(&srv.addr()), 200);
}

#[test]
fn a_host_name_in_listen_is_refused_saying_what_to_write() {
    let dir = TempDir::new();
    let (out, path, _dir) = check_config(&valid_config(&dir, json!({ "listen": "pi.local:80" })));
    assert_eq!(
        assert_one_line_error(&out, "pykv: "),
        format!(
            "pykv: config error: {}: listen: \"pi.local:80\": \"pi.local\" is not an IP address \
             (host names other than localhost are not looked up): write 127.0.0.1:8080, \
             localhost:8080, [::1]:8080, or :8080 for all interfaces",
            path.display()
        )
    );
}

#[test]
fn without_any_config_the_error_says_where_it_looked() {
    let empty = TempDir::new();
    let out = run_within(command(&[], &[]).current_dir(empty.path()), CLI_LIMIT);
    assert_eq!(
        assert_one_line_error(&out, "pykv: "),
        "pykv: config error: no config file: looked for ./config.json; say which with \
         --config PATH (or PYKV_CONFIG=PATH)"
    );
}

#[test]
fn config_json_in_the_working_directory_is_found() {
    let dir = TempDir::new();
    write_config(&dir, &valid_config(&dir, json!({})));
    let out = run_within(
        command(&["--check-config"], &[]).current_dir(dir.path()),
        CLI_LIMIT,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "config OK: config.json\n");
}

/// A binary installed as PREFIX/bin/pykv finds PREFIX/etc/pykv/config.json from any directory,
/// after --config, $PYKV_CONFIG and ./config.json.
#[test]
fn an_installed_binary_finds_the_config_install_sh_wrote() {
    let prefix = TempDir::new();
    let bin_dir = prefix.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let installed = bin_dir.join("pykv");
    std::fs::copy(bin(), &installed).unwrap();
    let etc = prefix.path().join("etc").join("pykv");
    let config = etc.join("config.json");
    let elsewhere = TempDir::new();
    let run_installed = |args: &[&str], env: &[(&str, &str)]| {
        let mut real = Command::new(&installed);
        real.args(args)
            .env_remove("PYKV_CONFIG")
            .env_remove("PYKV_ADMIN_TOKEN")
            .current_dir(elsewhere.path());
        for (k, v) in env {
            real.env(k, v);
        }
        run_within(&mut real, CLI_LIMIT)
    };
    // None yet: both places are named.
    let out = run_installed(&["--check-config"], &[]);
    assert_eq!(
        assert_one_line_error(&out, "pykv: "),
        format!(
            "pykv: config error: no config file: looked for ./config.json, then {}; say which \
             with --config PATH (or PYKV_CONFIG=PATH)",
            config.display()
        )
    );
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(&config, b"{}").unwrap();
    let out = run_installed(&["--check-config"], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, format!("config OK: {}\n", config.display()));
    // ./config.json comes first, $PYKV_CONFIG before it.
    std::fs::write(elsewhere.path().join("config.json"), b"{}").unwrap();
    let out = run_installed(&["--check-config"], &[]);
    assert_eq!(out.stdout, "config OK: config.json\n");
    let other = elsewhere.path().join("other.json");
    std::fs::write(&other, b"{}").unwrap();
    let out = run_installed(
        &["--check-config"],
        &[("PYKV_CONFIG", other.to_str().unwrap())],
    );
    assert_eq!(out.stdout, format!("config OK: {}\n", other.display()));
}

#[test]
fn a_data_dir_that_is_a_file_is_named() {
    let dir = TempDir::new();
    std::fs::write(dir.path().join("afile"), b"").unwrap();
    let path = write_config(&dir, &valid_config(&dir, json!({ "data_dir": "./afile" })));
    let out = run_within(command(&[], &[]).current_dir(dir.path()), CLI_LIMIT);
    assert_eq!(
        assert_one_line_error(&out, "pykv: "),
        "pykv: data_dir ./afile is a file, not a directory"
    );
    assert!(path.is_file());
}

#[test]
fn a_compat_project_that_names_no_project_stops_start_up() {
    let dir = TempDir::new();
    let path = write_config(
        &dir,
        &valid_config(&dir, json!({ "compat_project": "legacy" })),
    );
    let out = run_cli(&["--config", path.to_str().unwrap()]);
    assert_eq!(
        assert_one_line_error(&out, "pykv: "),
        "pykv: compat_project \"legacy\" names no project: declare it under \"projects\" in \
         config.json (or create it with POST /v1/projects while compat_project is unset), then \
         start again"
    );
}
