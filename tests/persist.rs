//! Persistence: snapshots survive restarts and crashes, memory mode keeps nothing, a failed save
//! is undone, corrupt snapshots stop start-up, and the admin token is generated and kept.
//!
//! Every server here is started through `tests/common` and ended by its own PID. The disk-failure
//! tests mount a small tmpfs (as root) or make the data directory read-only (as another user).

mod common;
use common::disk::{align_journal, current_journal, Disk};
use common::*;

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn snapshot(srv: &Server, project: &str) -> PathBuf {
    srv.data_dir().join(format!("{project}.json"))
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Names of the files in `dir` ending with `.tmp`.
fn tmp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

fn put(srv: &Server, token: &str, key: &str, body: &[u8]) -> Resp {
    srv.req("PUT", &format!("/v1/kv/p/{key}"), Some(token), body)
}

fn get(srv: &Server, token: &str, key: &str) -> Resp {
    srv.req("GET", &format!("/v1/kv/p/{key}"), Some(token), b"")
}

fn admin_json(srv: &Server, method: &str, path: &str, body: Value) -> Resp {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    srv.req(method, path, Some(ADMIN), &bytes)
}

/// Assert a successful PUT answer for `key` in project `p`; returns its version (the ETag).
fn assert_put(r: &Resp, status: u16, key: &str) -> u64 {
    assert_eq!(r.status, status, "body: {}", r.text());
    let j = r.json();
    let version = j["version"]
        .as_u64()
        .unwrap_or_else(|| panic!("no version: {j}"));
    assert_eq!(j, json!({"project": "p", "key": key, "version": version}));
    assert_eq!(r.header("etag"), Some(format!("\"{version}\"").as_str()));
    version
}

fn assert_value(r: &Resp, body: &[u8], content_type: &str, version: u64) {
    assert_eq!(r.status, 200, "body: {}", r.text());
    assert_eq!(r.body, body);
    assert_eq!(r.header("content-type"), Some(content_type));
    assert_eq!(r.header("etag"), Some(format!("\"{version}\"").as_str()));
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

/// A small xorshift generator: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn from_time() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(nanos | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn all_bytes() -> Vec<u8> {
    (0..=255u8).collect()
}

// ---------------------------------------------------------------------------------------------
// A populated project, checked again after a restart
// ---------------------------------------------------------------------------------------------

const TEXT_TYPE: &str = "text/plain; charset=utf-8";

/// Project `p` with tokens (one created later, one revoked) and keys of every kind.
struct Fixture {
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

fn create_token(srv: &Server, label: &str, access: &str) -> (String, String) {
    let r = admin_json(
        srv,
        "POST",
        "/v1/projects/p/tokens",
        json!({"label": label, "access": access}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let j = r.json();
    (
        j["id"].as_str().unwrap().to_string(),
        j["secret"].as_str().unwrap().to_string(),
    )
}

fn populate(srv: &Server) -> Fixture {
    let (write, read) = create_project(srv, "p");
    let (_, later) = create_token(srv, "later", "write");
    let (revoked_id, revoked) = create_token(srv, "revoked", "read");
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
        assert_put(&put(srv, &write, "bin", &all_bytes()), 201, "bin"),
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
        assert_put(&put(srv, &write, "empty", b""), 201, "empty"),
    );
    let mut last = 0;
    for (i, v) in ["v1", "v2", "v3"].iter().enumerate() {
        let status = if i == 0 { 201 } else { 200 };
        let version = assert_put(
            &put(srv, &write, "versioned", v.as_bytes()),
            status,
            "versioned",
        );
        assert!(version > last, "version {version} after {last}");
        last = version;
    }
    versions.insert("versioned", last);
    assert_put(&put(srv, &write, "gone", b"soon deleted"), 201, "gone");
    let r = srv.req("DELETE", "/v1/kv/p/gone", Some(&write), b"");
    assert_eq!(r.status, 204, "{}", r.text());

    let project = admin_json(srv, "GET", "/v1/projects/p", Value::Null);
    assert_eq!(project.status, 200, "{}", project.text());
    let tokens = admin_json(srv, "GET", "/v1/projects/p/tokens", Value::Null);
    assert_eq!(tokens.status, 200, "{}", tokens.text());
    let listing = srv.req("GET", "/v1/kv/p?limit=1000", Some(&read), b"");
    assert_eq!(listing.status, 200, "{}", listing.text());
    Fixture {
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

fn assert_fixture_survived(srv: &Server, f: &Fixture) {
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
        assert_value(&get(srv, &f.read, key), body, content_type, f.versions[key]);
    }
    get(srv, &f.read, "gone").assert_error(404, "key_not_found");

    get(srv, &f.revoked, "bin").assert_error(401, "unauthorized");
    put(srv, &f.read, "new", b"x").assert_error(403, "forbidden");
    assert_put(&put(srv, &f.later, "new", b"x"), 201, "new");
    let version = assert_put(&put(srv, &f.write, "versioned", b"v4"), 200, "versioned");
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
    let version = assert_put(&put(&srv, &write, "k", b"at shutdown"), 201, "k");
    let srv = srv.restart();
    assert_value(
        &get(&srv, &read, "k"),
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
    let version = assert_put(&put(&srv, &write, "k", b"at sigint"), 201, "k");
    srv.signal("INT");
    assert_eq!(
        srv.wait_exit(Duration::from_secs(20)),
        Some(0),
        "log:\n{}",
        srv.log()
    );
    let srv = srv.restart();
    assert_value(
        &get(&srv, &read, "k"),
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
    assert_put(&put(&srv, &write, "k", b"v"), 201, "k");
    assert!(!snapshot(&srv, "p").exists());
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
    let version = assert_put(&put(&srv, &write, "k", b"periodic"), 201, "k");
    std::thread::sleep(Duration::from_millis(700));
    srv.kill9();
    let srv = srv.restart();
    assert_value(
        &get(&srv, &read, "k"),
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
    assert!(!snapshot(&srv, "m").exists());
    assert!(snapshot(&srv, "s").exists());
    let srv = srv.restart();
    admin_json(&srv, "GET", "/v1/projects/m", Value::Null).assert_error(404, "project_not_found");
    let r = admin_json(&srv, "GET", "/v1/projects/s", Value::Null);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn patch_to_memory_removes_the_snapshot_file() {
    let srv = Server::start(json!({"persistence": "sync"}));
    let (write, _) = create_project(&srv, "p");
    assert_put(&put(&srv, &write, "k", b"v"), 201, "k");
    assert!(snapshot(&srv, "p").exists());
    let r = admin_json(
        &srv,
        "PATCH",
        "/v1/projects/p",
        json!({"persistence": "memory"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["persistence"], "memory");
    assert!(!snapshot(&srv, "p").exists());
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
    let version = assert_put(&put(&srv, &write, "k", b"was memory"), 201, "k");
    let r = admin_json(
        &srv,
        "PATCH",
        "/v1/projects/p",
        json!({"persistence": "sync"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(snapshot(&srv, "p").exists());
    let mut srv = srv;
    srv.kill9();
    let srv = srv.restart();
    assert_value(
        &get(&srv, &write, "k"),
        b"was memory",
        "application/octet-stream",
        version,
    );
}

#[test]
fn deleting_a_project_deletes_its_snapshot() {
    let srv = Server::start(json!({"persistence": "sync"}));
    create_project(&srv, "p");
    assert!(snapshot(&srv, "p").exists());
    let r = srv.req("DELETE", "/v1/projects/p", Some(ADMIN), b"");
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(!snapshot(&srv, "p").exists());
    let srv = srv.restart();
    admin_json(&srv, "GET", "/v1/projects/p", Value::Null).assert_error(404, "project_not_found");
}

#[test]
fn data_dir_is_0700_and_snapshots_are_0600() {
    let srv = Server::start(json!({"persistence": "sync"}));
    let (write, _) = create_project(&srv, "p");
    assert_put(&put(&srv, &write, "k", b"v"), 201, "k");
    assert_eq!(mode_of(&srv.data_dir()), 0o700);
    assert_eq!(mode_of(&snapshot(&srv, "p")), 0o600);
}

/// `{"pykv_snapshot": 1, "project": {...}, "keys": [...]}` with each key on its own line, as a
/// compaction writes it once the journal outgrows the snapshot.
#[test]
fn snapshot_is_json_with_one_key_per_line() {
    let srv = Server::start(json!({"persistence": "sync", "compaction_min_bytes": 1}));
    let (write, _) = create_project(&srv, "p");
    assert_put(&put(&srv, &write, "b", b"line1\nline2\n"), 201, "b");
    assert_put(&put(&srv, &write, "c", b""), 201, "c");
    // Larger than the snapshot so far: the journal outgrows it and is compacted.
    assert_put(&put(&srv, &write, "a", &all_bytes().repeat(8)), 201, "a");
    let read = || std::fs::read_to_string(snapshot(&srv, "p")).expect("snapshot is UTF-8");
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
    let version = assert_put(&put(&srv, &write, "k", b"kept"), 201, "k");
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
        &get(&srv, &write, "k"),
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

// ---------------------------------------------------------------------------------------------
// Crashes
// ---------------------------------------------------------------------------------------------

/// What the writers know about one key.
#[derive(Clone, Default)]
struct KeyModel {
    /// State after the last acknowledged operation (None = absent).
    acked: Option<Vec<u8>>,
    /// The operation sent after that without an answer (Some(None) = a DELETE).
    pending: Option<Option<Vec<u8>>>,
}

fn describe(v: &Option<Vec<u8>>) -> String {
    match v {
        None => "absent".to_string(),
        Some(b) => {
            let hash = b.iter().fold(0xcbf29ce484222325u64, |h, &x| {
                (h ^ x as u64).wrapping_mul(0x100000001b3)
            });
            format!("{} bytes (fnv {hash:016x})", b.len())
        }
    }
}

fn connect(addr: &str) -> Result<TcpStream, String> {
    let s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    Ok(s)
}

/// One writer: random PUT/DELETE on its own keys until the server dies. Returns its model and
/// the number of acknowledged operations, or what went wrong before the kill.
fn writer(
    addr: String,
    token: String,
    mut model: HashMap<String, KeyModel>,
    seed: u64,
    keep_alive: bool,
    killed: Arc<AtomicBool>,
) -> (HashMap<String, KeyModel>, Result<usize, String>) {
    let mut rng = Rng(seed | 1);
    let mut keys: Vec<String> = model.keys().cloned().collect();
    keys.sort();
    let mut conn: Option<TcpStream> = None;
    let mut acks = 0;
    loop {
        let key = &keys[rng.below(keys.len() as u64) as usize];
        let value = if rng.below(10) < 7 {
            let len = rng.below(1500) as usize;
            Some(rng.bytes(len))
        } else {
            None
        };
        let m = model.get_mut(key).unwrap();
        let method = if value.is_some() { "PUT" } else { "DELETE" };
        let body = value.clone().unwrap_or_default();
        let req = request_bytes(method, &format!("/v1/kv/p/{key}"), Some(&token), &[], &body);
        m.pending = Some(value.clone());
        let mut send = || -> Result<Resp, String> {
            if conn.is_none() {
                conn = Some(connect(&addr)?);
            }
            let s = conn.as_mut().unwrap();
            s.write_all(&req).map_err(|e| format!("write: {e}"))?;
            read_response(s, false)
        };
        let r = match send() {
            Ok(r) => r,
            // The kill ends every writer; what it interrupted stays pending.
            Err(_) if killed.load(Ordering::SeqCst) => return (model, Ok(acks)),
            Err(e) => {
                return (
                    model,
                    Err(format!("{method} {key} failed before the kill: {e}")),
                )
            }
        };
        let expected = match (value.is_some(), m.acked.is_some()) {
            (true, true) => 200,
            (true, false) => 201,
            (false, true) => 204,
            (false, false) => 404,
        };
        if r.status != expected {
            let e = format!(
                "{method} {key} answered {} (expected {expected}; key was {}): {}",
                r.status,
                describe(&m.acked),
                r.text()
            );
            return (model, Err(e));
        }
        m.acked = value;
        m.pending = None;
        acks += 1;
        if !keep_alive || r.header("connection") == Some("close") {
            conn = None;
        }
    }
}

/// sync: every acknowledged write survives SIGKILL with its exact bytes, every acknowledged
/// delete stays deleted, and no temporary file is left after the restart.
#[test]
fn sync_acknowledged_writes_survive_sigkill() {
    crash_torture(json!({"persistence": "sync"}), false);
}

/// The same while compactions run all the time (each time the journal outgrows the snapshot):
/// a kill at any instant of one loses nothing acknowledged.
#[test]
fn sync_acknowledged_writes_survive_sigkill_during_compactions() {
    crash_torture(
        json!({"persistence": "sync", "compaction_min_bytes": 1}),
        true,
    );
}

/// interval: an answer waits for the journal append, so killing the process (not the machine)
/// loses no acknowledged write either, compactions or not.
#[test]
fn interval_acknowledged_writes_survive_sigkill_during_compactions() {
    crash_torture(
        json!({"persistence": "interval", "interval_ms": 50, "compaction_min_bytes": 1}),
        true,
    );
}

/// Writers PUT and DELETE at random until SIGKILL, round after round; after each restart every
/// key holds its last acknowledged state (or the one in flight), never a rolled-back one. With
/// `compacting`, the rounds must have seen compactions.
fn crash_torture(extra: Value, compacting: bool) {
    const ROUNDS: usize = 20;
    const WRITERS: usize = 4;
    const KEYS_PER_WRITER: usize = 8;
    let test_start = Instant::now();
    let mut rng = Rng::from_time();
    println!("crash test seed: {}", rng.0);
    let dir = Arc::new(TempDir::new());
    let mut cfg = config(json!({"log_requests": false}));
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let mut srv = Server::start_raw(cfg.clone(), dir.clone());
    let (token, _) = create_project(&srv, "p");
    let mut models: Vec<HashMap<String, KeyModel>> = (0..WRITERS)
        .map(|w| {
            (0..KEYS_PER_WRITER)
                .map(|k| (format!("w{w}-k{k}"), KeyModel::default()))
                .collect()
        })
        .collect();
    let mut total_acks = 0;
    let mut rounds = 0;
    let mut compactions = 0.0;
    while rounds < ROUNDS && test_start.elapsed() < Duration::from_secs(45) {
        rounds += 1;
        let killed = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = models
            .drain(..)
            .enumerate()
            .map(|(w, model)| {
                let (addr, token, killed) = (srv.addr.clone(), token.clone(), killed.clone());
                let seed = rng.next();
                std::thread::spawn(move || writer(addr, token, model, seed, w % 2 == 0, killed))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50 + rng.below(251)));
        if compacting {
            compactions += compactions_so_far(&srv);
        }
        killed.store(true, Ordering::SeqCst);
        srv.kill9();
        for h in handles {
            let (model, result) = h.join().expect("writer thread");
            match result {
                Ok(n) => total_acks += n,
                Err(e) => panic!("round {rounds}: {e}\nlog:\n{}", srv.log()),
            }
            models.push(model);
        }

        srv = Server::start_raw(cfg.clone(), dir.clone());
        assert_eq!(
            tmp_files(&srv.data_dir()),
            Vec::<String>::new(),
            "round {rounds}"
        );
        for model in models.iter_mut() {
            for (key, m) in model.iter_mut() {
                let r = get(&srv, &token, key);
                let seen = match r.status {
                    200 => Some(r.body.clone()),
                    404 => {
                        r.assert_error(404, "key_not_found");
                        None
                    }
                    _ => panic!(
                        "round {rounds}: GET {key} answered {}: {}",
                        r.status,
                        r.text()
                    ),
                };
                let in_flight = m.pending.as_ref() == Some(&seen);
                assert!(
                    seen == m.acked || in_flight,
                    "round {rounds}: {key} is {} after SIGKILL, but the last acknowledged \
                     state was {} (in flight: {})",
                    describe(&seen),
                    describe(&m.acked),
                    m.pending.as_ref().map_or("nothing".to_string(), describe),
                );
                m.acked = seen;
                m.pending = None;
            }
        }
    }
    println!(
        "crash test: {rounds} rounds, {total_acks} acknowledged operations, {compactions} compactions"
    );
    assert!(rounds >= 5, "only {rounds} rounds in the time budget");
    assert!(total_acks > 0, "no operation was acknowledged");
    if compacting {
        assert!(
            compactions >= rounds as f64,
            "too few compactions: {compactions}"
        );
    }
    srv.stop();
}

/// Compactions finished since the server started, from /metrics.
fn compactions_so_far(srv: &Server) -> f64 {
    let text = admin_json(srv, "GET", "/metrics", Value::Null).text();
    text.lines()
        .find_map(|l| l.strip_prefix("pykv_compactions_total{project=\"p\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------
// Disk failures
// ---------------------------------------------------------------------------------------------

fn assert_not_saved(r: &Resp, expected: (u16, &str)) {
    r.assert_error(expected.0, expected.1);
    let message = r.json()["message"].as_str().unwrap().to_ascii_lowercase();
    assert!(
        message.contains("not saved"),
        "message should say the write was not saved: {message}"
    );
}

/// sync: an append that fails answers 507/500, leaves memory, the snapshot and the journal as
/// they were, and writes work again once space is back.
#[test]
fn sync_failed_save_is_rolled_back_and_reported() {
    let dir = Arc::new(TempDir::new());
    let disk = Disk::prepare(&dir.path().join("data"));
    let srv = Server::start_raw(config(json!({"persistence": "sync"})), dir.clone());
    let (write, _) = create_project(&srv, "p");
    let version = assert_put(&put(&srv, &write, "k", b"old"), 201, "k");
    let journal = current_journal(&srv.data_dir(), "p");
    let before = (
        std::fs::read(snapshot(&srv, "p")).unwrap(),
        std::fs::read(&journal).unwrap(),
    );

    disk.break_writes(&srv);
    let large: Vec<u8> = all_bytes().into_iter().cycle().take(64 * 1024).collect();
    assert_not_saved(&put(&srv, &write, "k", &large), disk.expected_error());
    assert_value(
        &get(&srv, &write, "k"),
        b"old",
        "application/octet-stream",
        version,
    );
    let after = (
        std::fs::read(snapshot(&srv, "p")).unwrap(),
        std::fs::read(&journal).unwrap(),
    );
    assert!(after == before, "the snapshot or the journal changed");

    disk.repair(&srv);
    let new_version = assert_put(&put(&srv, &write, "k", &large), 200, "k");
    assert!(
        new_version > version,
        "version {new_version} after {version}"
    );
    let srv = srv.restart();
    assert_value(
        &get(&srv, &write, "k"),
        &large,
        "application/octet-stream",
        new_version,
    );
    drop(srv);
    drop(disk);
}

/// sync: a failed append also undoes a new key, a deletion and a new project.
#[test]
fn sync_failed_save_undoes_create_and_delete() {
    let dir = Arc::new(TempDir::new());
    let disk = Disk::prepare(&dir.path().join("data"));
    let srv = Server::start_raw(config(json!({"persistence": "sync"})), dir.clone());
    let (write, _) = create_project(&srv, "p");
    let version = assert_put(&put(&srv, &write, "kept", b"still here"), 201, "kept");
    if disk.fails_only_when_growing() {
        align_journal(&srv, &write, "p");
    }
    let journal = current_journal(&srv.data_dir(), "p");
    let before = std::fs::read(&journal).unwrap();

    disk.break_writes(&srv);
    let large = vec![b'x'; 64 * 1024];
    assert_not_saved(&put(&srv, &write, "new", &large), disk.expected_error());
    get(&srv, &write, "new").assert_error(404, "key_not_found");
    let r = srv.req("DELETE", "/v1/kv/p/kept", Some(&write), b"");
    assert_not_saved(&r, disk.expected_error());
    assert_value(
        &get(&srv, &write, "kept"),
        b"still here",
        "application/octet-stream",
        version,
    );
    let r = admin_json(&srv, "POST", "/v1/projects", json!({"name": "q"}));
    assert_not_saved(&r, disk.expected_error());
    admin_json(&srv, "GET", "/v1/projects/q", Value::Null).assert_error(404, "project_not_found");
    assert_eq!(std::fs::read(&journal).unwrap(), before);
    disk.repair(&srv);
    drop(srv);
    drop(disk);
}

fn health(srv: &Server) -> Value {
    let r = srv.req("GET", "/health", None, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// interval: an answer waits for the append (not for the sync), so a full disk is reported
/// and undone like in sync mode; /health is degraded, naming the journal, until writes work.
#[test]
fn interval_write_on_a_failing_disk_is_refused_and_health_degrades_until_it_works() {
    let dir = Arc::new(TempDir::new());
    let disk = Disk::prepare(&dir.path().join("data"));
    let cfg = config(json!({"persistence": "interval", "interval_ms": 200}));
    let mut srv = Server::start_raw(cfg.clone(), dir.clone());
    let (write, _) = create_project(&srv, "p");
    let version = assert_put(&put(&srv, &write, "k", b"before"), 201, "k");
    if disk.fails_only_when_growing() {
        align_journal(&srv, &write, "p");
    }
    assert_eq!(health(&srv), json!({"status": "ok", "version": "0.1.0"}));

    disk.break_writes(&srv);
    assert_not_saved(&put(&srv, &write, "k", b"after"), disk.expected_error());
    let h = health(&srv);
    assert_eq!(h["status"], "degraded", "{h}");
    let problems = h["problems"].as_array().expect("problems list");
    assert_eq!(problems.len(), 1, "{h}");
    let journal = current_journal(&srv.data_dir(), "p");
    let problem = problems[0].as_str().unwrap();
    assert!(
        problem.starts_with("project p: ") && problem.contains(&journal.display().to_string()),
        "{problem}"
    );
    assert_value(
        &get(&srv, &write, "k"),
        b"before",
        "application/octet-stream",
        version,
    );

    disk.repair(&srv);
    let version = assert_put(&put(&srv, &write, "k", b"after"), 200, "k");
    assert_eq!(health(&srv), json!({"status": "ok", "version": "0.1.0"}));
    srv.kill9();
    let srv = Server::start_raw(cfg, dir.clone());
    assert_value(
        &get(&srv, &write, "k"),
        b"after",
        "application/octet-stream",
        version,
    );
    drop(srv);
    drop(disk);
}

// ---------------------------------------------------------------------------------------------
// Corrupt snapshots and --check-data
// ---------------------------------------------------------------------------------------------

/// A stopped server with project `p` holding keys k0..k4, some in its snapshot (a compaction
/// wrote them) and some in its journal; returns it and its snapshot path.
fn stopped_server_with_snapshot() -> (Server, PathBuf) {
    let mut srv = Server::start(json!({"persistence": "sync", "compaction_min_bytes": 1}));
    let (write, _) = create_project(&srv, "p");
    for i in 0..5 {
        let key = format!("k{i}");
        assert_put(
            &put(
                &srv,
                &write,
                &key,
                format!("value {i} ").repeat(12).as_bytes(),
            ),
            201,
            &key,
        );
    }
    let path = snapshot(&srv, "p");
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
    let path = snapshot(&srv, "p");
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

fn is_generated_secret(s: &str) -> bool {
    s.strip_prefix("pykv_").is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

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
