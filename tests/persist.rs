//! Persistence: projects, tokens, keys and versions across restarts in each mode, per-project
//! files and their modes, corrupt snapshots that stop start-up, `--check-data`, and the
//! generated admin token. The real binary, each with its own temporary data directory, ended by
//! its own PID.

mod common;
use common::*;

use serde_json::{json, Value};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Run a command to completion within `limit` (killed by its PID after that); returns
/// (exit code, stdout, stderr).
fn run_bounded(cmd: &mut Command, limit: Duration) -> (Option<i32>, String, String) {
    let r = run_within(
        cmd.env_remove("PYKV_ADMIN_TOKEN").env_remove("PYKV_CONFIG"),
        limit,
    );
    assert!(!r.timed_out, "pykv did not exit within {limit:?}");
    (r.code, r.stdout, r.stderr)
}

/// Start the binary on an existing config file and expect a start-up failure.
fn run_expecting_start_failure(config_path: &Path) -> (Option<i32>, String) {
    let (code, _out, err) = run_bounded(
        Command::new(bin()).arg("--config").arg(config_path),
        Duration::from_secs(20),
    );
    (code, err)
}

/// `line L column C` in `text`: (L, C).
fn line_column(text: &str) -> Option<(u64, u64)> {
    let i = text.find("line ")?;
    let mut words = text[i..].split_whitespace();
    let (_, l, c_word, c) = (words.next()?, words.next()?, words.next()?, words.next()?);
    if c_word != "column" {
        return None;
    }
    let digits = |s: &str| {
        s.trim_end_matches(|ch: char| !ch.is_ascii_digit())
            .parse()
            .ok()
    };
    Some((digits(l)?, digits(c)?))
}

// ---------------------------------------------------------------------------------------------
// A populated project, checked again after a restart
// ---------------------------------------------------------------------------------------------

const TEXT_TYPE: &str = "text/plain; charset=utf-8";

/// Project `p` with tokens (one created later, one revoked) and keys of every kind.
struct Populated {
    write: String,
    read: String,
    later: String,
    revoked: String,
    /// The version of each key (as written in a URL) when it was last written.
    versions: HashMap<&'static str, u64>,
    project: Value,
    tokens: Value,
    listing: Value,
}

fn populate(srv: &Server) -> Populated {
    let (write, read) = create_project(srv, "p");
    let (_, later) = create_token(srv, "later", "write", None);
    let (revoked_id, revoked) = create_token(srv, "revoked", "read", None);
    let r = srv.req(
        "DELETE",
        &format!("/v1/projects/p/tokens/{revoked_id}"),
        Some(ADMIN),
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.text());

    let mut versions = HashMap::new();
    versions.insert(
        "bin",
        assert_put(&put_key(srv, &write, "bin", &all_bytes()), 201, "bin"),
    );
    let r = srv.req_h(
        "PUT",
        "/v1/kv/p/text",
        Some(&write),
        &[("Content-Type", TEXT_TYPE)],
        "héllo\r\nwörld\n".as_bytes(),
    );
    versions.insert("text", assert_put(&r, 201, "text"));
    let r = srv.req_h(
        "PUT",
        "/v1/kv/p/dir%2Fsub",
        Some(&write),
        &[("Content-Type", "application/json")],
        br#"{"x":[1,2]}"#,
    );
    versions.insert("dir%2Fsub", assert_put(&r, 201, "dir/sub"));
    versions.insert(
        "empty",
        assert_put(&put_key(srv, &write, "empty", b""), 201, "empty"),
    );
    let mut last = 0;
    for (i, v) in ["v1", "v2", "v3"].iter().enumerate() {
        let status = if i == 0 { 201 } else { 200 };
        let version = assert_put(
            &put_key(srv, &write, "versioned", v.as_bytes()),
            status,
            "versioned",
        );
        assert!(version > last, "version {version} after {last}");
        last = version;
    }
    versions.insert("versioned", last);
    assert_put(&put_key(srv, &write, "gone", b"soon deleted"), 201, "gone");
    let r = srv.req("DELETE", "/v1/kv/p/gone", Some(&write), b"");
    assert_eq!(r.status, 204, "{}", r.text());

    let project = admin_json(srv, "GET", "/v1/projects/p", Value::Null);
    assert_eq!(project.status, 200, "{}", project.text());
    let tokens = admin_json(srv, "GET", "/v1/projects/p/tokens", Value::Null);
    assert_eq!(tokens.status, 200, "{}", tokens.text());
    let listing = srv.req("GET", "/v1/kv/p?limit=1000", Some(&read), b"");
    assert_eq!(listing.status, 200, "{}", listing.text());
    Populated {
        write,
        read,
        later,
        revoked,
        versions,
        project: project.json(),
        tokens: tokens.json(),
        listing: listing.json(),
    }
}

fn assert_fixture_survived(srv: &Server, f: &Populated) {
    let r = admin_json(srv, "GET", "/v1/projects/p", Value::Null);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), f.project);
    let r = admin_json(srv, "GET", "/v1/projects/p/tokens", Value::Null);
    assert_eq!(r.json(), f.tokens);
    let r = srv.req("GET", "/v1/kv/p?limit=1000", Some(&f.read), b"");
    assert_eq!(r.json(), f.listing);

    let expected: [(&str, &[u8], &str); 5] = [
        ("bin", &all_bytes(), "application/octet-stream"),
        ("text", "héllo\r\nwörld\n".as_bytes(), TEXT_TYPE),
        ("dir%2Fsub", br#"{"x":[1,2]}"#, "application/json"),
        ("empty", b"", "application/octet-stream"),
        ("versioned", b"v3", "application/octet-stream"),
    ];
    for (key, body, content_type) in expected {
        assert_value(
            &get_key(srv, &f.read, key),
            body,
            content_type,
            f.versions[key],
        );
    }
    get_key(srv, &f.read, "gone").assert_error(404, "key_not_found");

    get_key(srv, &f.revoked, "bin").assert_error(401, "unauthorized");
    put_key(srv, &f.read, "new", b"x").assert_error(403, "forbidden");
    assert_put(&put_key(srv, &f.later, "new", b"x"), 201, "new");
    let version = assert_put(
        &put_key(srv, &f.write, "versioned", b"v4"),
        200,
        "versioned",
    );
    assert!(
        version > f.versions["versioned"],
        "version {version} after a restart"
    );
}

// ---------------------------------------------------------------------------------------------
// Restarts by mode
// ---------------------------------------------------------------------------------------------

/// sync: projects, tokens, values (all 256 byte values), content types and versions survive.
#[test]
fn sync_restart_keeps_projects_tokens_keys_and_versions() {
    let srv = Server::start(json!({"persistence": "sync"}));
    let fixture = populate(&srv);
    let srv = srv.restart();
    assert_fixture_survived(&srv, &fixture);
}

/// interval: SIGTERM writes what is dirty, so the restart finds everything.
#[test]
fn interval_restart_after_sigterm_keeps_everything() {
    let srv = Server::start(json!({"persistence": "interval", "interval_ms": 200}));
    let fixture = populate(&srv);
    let srv = srv.restart();
    assert_fixture_survived(&srv, &fixture);
}

/// interval with a long period: only the shutdown write can have saved the data.
#[test]
fn sigterm_writes_dirty_interval_projects_before_exiting() {
    let srv = Server::start(json!({"persistence": "interval", "interval_ms": 600000}));
    let (write, read) = create_project(&srv, "p");
    let version = assert_put(&put_key(&srv, &write, "k", b"at shutdown"), 201, "k");
    let srv = srv.restart();
    assert_value(
        &get_key(&srv, &read, "k"),
        b"at shutdown",
        "application/octet-stream",
        version,
    );
}

/// SIGINT stops like SIGTERM: exit 0 after writing dirty interval projects.
#[test]
fn sigint_exits_0_and_keeps_interval_data() {
    let mut srv = Server::start(json!({"persistence": "interval", "interval_ms": 600000}));
    let (write, read) = create_project(&srv, "p");
    let version = assert_put(&put_key(&srv, &write, "k", b"at sigint"), 201, "k");
    srv.signal("INT");
    assert_eq!(
        srv.wait_exit(Duration::from_secs(20)),
        Some(0),
        "log:\n{}",
        srv.log()
    );
    let srv = srv.restart();
    assert_value(
        &get_key(&srv, &read, "k"),
        b"at sigint",
        "application/octet-stream",
        version,
    );
}

/// memory: no snapshot file, and after a restart the project itself is gone.
#[test]
fn memory_mode_keeps_nothing_across_restart() {
    let srv = Server::start(json!({"persistence": "memory"}));
    let (write, _) = create_project(&srv, "p");
    assert_put(&put_key(&srv, &write, "k", b"v"), 201, "k");
    assert!(!srv.snapshot("p").exists());
    let srv = srv.restart();
    admin_json(&srv, "GET", "/v1/projects/p", Value::Null).assert_error(404, "project_not_found");
    assert_eq!(
        admin_json(&srv, "GET", "/v1/projects", Value::Null).json(),
        json!({"projects": []})
    );
}

/// interval: the periodic write happens without any signal, so SIGKILL loses nothing older
/// than a few intervals.
#[test]
fn interval_mode_writes_within_the_interval_without_a_signal() {
    let mut srv = Server::start(json!({"persistence": "interval", "interval_ms": 200}));
    let (write, read) = create_project(&srv, "p");
    let version = assert_put(&put_key(&srv, &write, "k", b"periodic"), 201, "k");
    std::thread::sleep(Duration::from_millis(700));
    srv.kill9();
    let srv = srv.restart();
    assert_value(
        &get_key(&srv, &read, "k"),
        b"periodic",
        "application/octet-stream",
        version,
    );
}

// ---------------------------------------------------------------------------------------------
// Per-project persistence and files
// ---------------------------------------------------------------------------------------------

/// In a sync server a project created as memory has no file and is gone after a restart, while
/// a sync project has its file and stays.
#[test]
fn memory_project_in_sync_server_has_no_file_and_is_gone_after_restart() {
    let srv = Server::start(json!({"persistence": "sync"}));
    let r = admin_json(
        &srv,
        "POST",
        "/v1/projects",
        json!({"name": "m", "persistence": "memory"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["persistence"], "memory");
    let r = admin_json(&srv, "POST", "/v1/projects", json!({"name": "s"}));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["persistence"], "sync");
    assert!(!srv.snapshot("m").exists());
    assert!(srv.snapshot("s").exists());
    let srv = srv.restart();
    admin_json(&srv, "GET", "/v1/projects/m", Value::Null).assert_error(404, "project_not_found");
    let r = admin_json(&srv, "GET", "/v1/projects/s", Value::Null);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn patch_to_memory_removes_the_snapshot_file() {
    let srv = Server::start(json!({"persistence": "sync"}));
    let (write, _) = create_project(&srv, "p");
    assert_put(&put_key(&srv, &write, "k", b"v"), 201, "k");
    assert!(srv.snapshot("p").exists());
    let r = admin_json(
        &srv,
        "PATCH",
        "/v1/projects/p",
        json!({"persistence": "memory"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["persistence"], "memory");
    assert!(!srv.snapshot("p").exists());
}

/// A memory project switched to sync is saved before the PATCH is answered.
#[test]
fn patch_memory_project_to_sync_writes_its_file() {
    let srv = Server::start(json!({"persistence": "sync"}));
    let r = admin_json(
        &srv,
        "POST",
        "/v1/projects",
        json!({"name": "p", "persistence": "memory"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let write = r.json()["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["access"] == "write")
        .unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let version = assert_put(&put_key(&srv, &write, "k", b"was memory"), 201, "k");
    let r = admin_json(
        &srv,
        "PATCH",
        "/v1/projects/p",
        json!({"persistence": "sync"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(srv.snapshot("p").exists());
    let mut srv = srv;
    srv.kill9();
    let srv = srv.restart();
    assert_value(
        &get_key(&srv, &write, "k"),
        b"was memory",
        "application/octet-stream",
        version,
    );
}

#[test]
fn deleting_a_project_deletes_its_snapshot() {
    let srv = Server::start(json!({"persistence": "sync"}));
    create_project(&srv, "p");
    assert!(srv.snapshot("p").exists());
    let r = srv.req("DELETE", "/v1/projects/p", Some(ADMIN), b"");
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(!srv.snapshot("p").exists());
    let srv = srv.restart();
    admin_json(&srv, "GET", "/v1/projects/p", Value::Null).assert_error(404, "project_not_found");
}

#[test]
fn data_dir_is_0700_and_snapshots_are_0600() {
    let srv = Server::start(json!({"persistence": "sync"}));
    let (write, _) = create_project(&srv, "p");
    assert_put(&put_key(&srv, &write, "k", b"v"), 201, "k");
    assert_eq!(mode_of(&srv.data_dir()), 0o700);
    assert_eq!(mode_of(&srv.snapshot("p")), 0o600);
}

/// `{"pykv_snapshot": 1, "project": {...}, "keys": [...]}` with each key on its own line, as a
/// compaction writes it once the journal outgrows the snapshot.
#[test]
fn snapshot_is_json_with_one_key_per_line() {
    let srv = Server::start(json!({"persistence": "sync", "compaction_min_bytes": 1}));
    let (write, _) = create_project(&srv, "p");
    assert_put(&put_key(&srv, &write, "b", b"line1\nline2\n"), 201, "b");
    assert_put(&put_key(&srv, &write, "c", b""), 201, "c");
    // Larger than the snapshot so far: the journal outgrows it and is compacted.
    assert_put(
        &put_key(&srv, &write, "a", &all_bytes().repeat(8)),
        201,
        "a",
    );
    let read = || std::fs::read_to_string(srv.snapshot("p")).expect("snapshot is UTF-8");
    let compacted = wait_until(Duration::from_secs(5), || {
        serde_json::from_str::<Value>(&read())
            .is_ok_and(|j| j["keys"].as_array().map(Vec::len) == Some(3))
    });
    let text = read();
    assert!(compacted, "no compaction wrote the keys:\n{text}");
    let j: Value = serde_json::from_str(&text).expect("snapshot is JSON");
    assert_eq!(j["pykv_snapshot"], 1, "{text}");
    assert!(j["project"].is_object(), "{text}");
    assert_eq!(j["project"]["journal"], 2, "{text}");
    let key_lines = text
        .lines()
        .map(|l| l.trim().trim_matches(','))
        .filter(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v.is_object()))
        .count();
    assert_eq!(key_lines, 3, "one key per line expected:\n{text}");
}

/// A `.tmp` left by a crash mid-write is deleted at start and its content never loaded.
#[test]
fn leftover_tmp_files_are_removed_and_ignored_at_start() {
    let mut srv = Server::start(json!({"persistence": "sync"}));
    let (write, _) = create_project(&srv, "p");
    let version = assert_put(&put_key(&srv, &write, "k", b"kept"), 201, "k");
    srv.stop();
    let data = srv.data_dir();
    std::fs::write(
        data.join("p.json.tmp"),
        br#"{"pykv_snapshot": 1, "project": {"name": "p"#,
    )
    .unwrap();
    std::fs::write(data.join("q.json.tmp"), b"{\"pykv_snapshot\": 1,\n").unwrap();
    let srv = srv.restart();
    assert_eq!(tmp_files(&data), Vec::<String>::new());
    assert_value(
        &get_key(&srv, &write, "k"),
        b"kept",
        "application/octet-stream",
        version,
    );
    admin_json(&srv, "GET", "/v1/projects/q", Value::Null).assert_error(404, "project_not_found");
    let names: Vec<Value> = admin_json(&srv, "GET", "/v1/projects", Value::Null).json()["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("p")]);
}

/// A stopped server with project `p` holding keys k0..k4, some in its snapshot (a compaction
/// wrote them) and some in its journal; returns it and its snapshot path.
fn stopped_server_with_snapshot() -> (Server, PathBuf) {
    let mut srv = Server::start(json!({"persistence": "sync", "compaction_min_bytes": 1}));
    let (write, _) = create_project(&srv, "p");
    for i in 0..5 {
        let key = format!("k{i}");
        assert_put(
            &put_key(
                &srv,
                &write,
                &key,
                format!("value {i} ").repeat(12).as_bytes(),
            ),
            201,
            &key,
        );
    }
    let path = srv.snapshot("p");
    let keys_in = |path: &Path| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|j| j["keys"].as_array().map(Vec::len))
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(5), || keys_in(&path) >= 2),
        "no compaction put keys in the snapshot"
    );
    srv.stop();
    let path = srv.snapshot("p");
    (srv, path)
}

/// Overwrite the first non-blank byte of the middle non-blank line with `@`, which JSON never
/// allows outside a string; returns that line's number (1-based).
fn corrupt_middle_line(path: &Path) -> u64 {
    let mut bytes = std::fs::read(path).unwrap();
    let mut starts = vec![0];
    starts.extend(
        bytes
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .map(|(i, _)| i + 1),
    );
    let content: Vec<(usize, usize)> = starts
        .iter()
        .enumerate()
        .filter_map(|(n, &s)| {
            let first = bytes[s..]
                .iter()
                .take_while(|&&b| b != b'\n')
                .position(|b| !b.is_ascii_whitespace())?;
            Some((n, s + first))
        })
        .collect();
    let (line, at) = content[content.len() / 2];
    bytes[at] = b'@';
    std::fs::write(path, &bytes).unwrap();
    line as u64 + 1
}

fn start_error_line<'a>(log: &'a str, path: &Path) -> &'a str {
    let shown = path.display().to_string();
    log.lines()
        .find(|l| l.contains(&shown))
        .unwrap_or_else(|| panic!("no line names {shown}:\n{log}"))
}

#[test]
fn corrupt_snapshot_stops_start_up_naming_file_line_and_column() {
    let (srv, path) = stopped_server_with_snapshot();
    let line = corrupt_middle_line(&path);
    let corrupted = std::fs::read(&path).unwrap();

    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&srv.config_path).unwrap()).unwrap();
    let log = match Server::try_start(&mut cfg, srv.dir.clone(), &[]) {
        Ok(_) => panic!("server started on a corrupt snapshot"),
        Err(log) => log,
    };
    let msg = start_error_line(&log, &path);
    assert!(msg.starts_with("pykv: "), "{msg}");
    assert_eq!(line_column(msg).map(|(l, _)| l), Some(line), "{msg}");

    let (code, err) = run_expecting_start_failure(&srv.config_path);
    assert_eq!(code, Some(2), "{err}");
    let msg = start_error_line(&err, &path);
    assert!(msg.starts_with("pykv: "), "{msg}");
    assert_eq!(line_column(msg).map(|(l, _)| l), Some(line), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), corrupted);
}

#[test]
fn truncated_snapshot_stops_start_up_naming_file_line_and_column() {
    let (srv, path) = stopped_server_with_snapshot();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();

    let (code, err) = run_expecting_start_failure(&srv.config_path);
    assert_eq!(code, Some(2), "{err}");
    let msg = start_error_line(&err, &path);
    assert!(msg.starts_with("pykv: "), "{msg}");
    assert!(line_column(msg).is_some(), "no `line L column C`: {msg}");
    assert_eq!(std::fs::read(&path).unwrap(), &bytes[..bytes.len() / 2]);
}

#[test]
fn check_data_prints_one_line_per_snapshot() {
    let mut srv = Server::start(json!({"persistence": "sync"}));
    let (a_write, _) = create_project(&srv, "a");
    create_project(&srv, "b");
    let r = admin_json(
        &srv,
        "POST",
        "/v1/projects",
        json!({"name": "m", "persistence": "memory"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    for (key, value) in [
        ("x", &b"1"[..]),
        ("yy", &b"22"[..]),
        ("zzz", &all_bytes()[..]),
    ] {
        let r = srv.req("PUT", &format!("/v1/kv/a/{key}"), Some(&a_write), value);
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let a_bytes = admin_json(&srv, "GET", "/v1/projects/a", Value::Null).json()["bytes"].clone();
    srv.stop();

    let (code, out, err) = run_bounded(
        Command::new(bin()).arg("--check-data").arg(srv.data_dir()),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            // Three one-key groups: 41 bytes of framing and headers each, plus key and value.
            format!("a: keys=3 bytes={a_bytes} format=1 journal=3 records (388 B)"),
            "b: keys=0 bytes=0 format=1 journal=0 records (0 B)".to_string(),
        ],
        "stderr:\n{err}"
    );
}

#[test]
fn check_data_exits_2_naming_a_corrupt_file() {
    let (srv, path) = stopped_server_with_snapshot();
    corrupt_middle_line(&path);
    let (code, out, err) = run_bounded(
        Command::new(bin()).arg("--check-data").arg(srv.data_dir()),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(2), "stdout:\n{out}\nstderr:\n{err}");
    let shown = path.display().to_string();
    assert!(
        out.contains(&shown) || err.contains(&shown),
        "{shown} not named:\nstdout:\n{out}\nstderr:\n{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// The admin token
// ---------------------------------------------------------------------------------------------

/// Without a configured token the server generates one into data_dir/admin.token (0600), logs
/// the path but never the token, and reads the same token after a restart.
#[test]
fn generated_admin_token_is_stored_0600_and_survives_restart() {
    let dir = Arc::new(TempDir::new());
    let srv = Server::start_raw(json!({}), dir.clone());
    let path = srv.data_dir().join("admin.token");
    assert_eq!(mode_of(&path), 0o600);
    let token = std::fs::read_to_string(&path).unwrap().trim().to_string();
    assert!(is_generated_secret(&token), "{token:?}");
    let r = srv.req("GET", "/v1/projects", Some(&token), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"projects": []}));
    srv.req("GET", "/v1/projects", Some(ADMIN), b"")
        .assert_error(401, "unauthorized");
    let log = srv.log();
    assert!(
        log.contains(&format!(
            "admin token: generated and stored in {}",
            path.display()
        )),
        "{log}"
    );
    assert!(!log.contains(&token), "the log shows the token:\n{log}");

    let srv = srv.restart();
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), token);
    let r = srv.req("GET", "/v1/projects", Some(&token), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let log = srv.log();
    assert!(
        log.contains(&format!("admin token: read from {}", path.display())),
        "{log}"
    );
    assert!(!log.contains(&token), "the log shows the token:\n{log}");
}

#[test]
fn pykv_admin_token_env_is_the_admin_token_when_config_has_none() {
    const ENV_TOKEN: &str = "env-admin-token-abcdefghij";
    let dir = Arc::new(TempDir::new());
    let srv = Server::try_start(&mut json!({}), dir, &[("PYKV_ADMIN_TOKEN", ENV_TOKEN)])
        .unwrap_or_else(|log| panic!("server did not start:\n{log}"));
    let r = srv.req("GET", "/v1/projects", Some(ENV_TOKEN), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    srv.req("GET", "/v1/projects", Some(ADMIN), b"")
        .assert_error(401, "unauthorized");
    assert!(!srv.data_dir().join("admin.token").exists());
    let log = srv.log();
    assert!(log.contains("admin token: from PYKV_ADMIN_TOKEN"), "{log}");
    assert!(!log.contains(ENV_TOKEN), "the log shows the token:\n{log}");
}
