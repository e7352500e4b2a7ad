//! What survives when the process or the disk fails: every acknowledged write and delete after
//! SIGKILL under load (also while compactions run, and in interval mode), and writes refused and
//! undone on a failing disk while /health degrades. The real binary; the disk-failure tests
//! mount a small tmpfs (as root) or limit the file size (as another user).

mod common;
use common::*;

use common::disk::{align_journal, current_journal, Disk};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
                let r = get_key(&srv, &token, key);
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
    let version = assert_put(&put_key(&srv, &write, "k", b"old"), 201, "k");
    let journal = current_journal(&srv.data_dir(), "p");
    let before = (
        std::fs::read(srv.snapshot("p")).unwrap(),
        std::fs::read(&journal).unwrap(),
    );

    disk.break_writes(&srv);
    let large: Vec<u8> = all_bytes().into_iter().cycle().take(64 * 1024).collect();
    assert_not_saved(&put_key(&srv, &write, "k", &large), disk.expected_error());
    assert_value(
        &get_key(&srv, &write, "k"),
        b"old",
        "application/octet-stream",
        version,
    );
    let after = (
        std::fs::read(srv.snapshot("p")).unwrap(),
        std::fs::read(&journal).unwrap(),
    );
    assert!(after == before, "the snapshot or the journal changed");

    disk.repair(&srv);
    let new_version = assert_put(&put_key(&srv, &write, "k", &large), 200, "k");
    assert!(
        new_version > version,
        "version {new_version} after {version}"
    );
    let srv = srv.restart();
    assert_value(
        &get_key(&srv, &write, "k"),
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
    let version = assert_put(&put_key(&srv, &write, "kept", b"still here"), 201, "kept");
    if disk.fails_only_when_growing() {
        align_journal(&srv, &write, "p");
    }
    let journal = current_journal(&srv.data_dir(), "p");
    let before = std::fs::read(&journal).unwrap();

    disk.break_writes(&srv);
    let large = vec![b'x'; 64 * 1024];
    assert_not_saved(&put_key(&srv, &write, "new", &large), disk.expected_error());
    get_key(&srv, &write, "new").assert_error(404, "key_not_found");
    let r = srv.req("DELETE", "/v1/kv/p/kept", Some(&write), b"");
    assert_not_saved(&r, disk.expected_error());
    assert_value(
        &get_key(&srv, &write, "kept"),
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

/// interval: an answer waits for the append (not for the sync), so a full disk is reported
/// and undone like in sync mode; /health is degraded, naming the journal, until writes work.
#[test]
fn interval_write_on_a_failing_disk_is_refused_and_health_degrades_until_it_works() {
    let dir = Arc::new(TempDir::new());
    let disk = Disk::prepare(&dir.path().join("data"));
    let cfg = config(json!({"persistence": "interval", "interval_ms": 200}));
    let mut srv = Server::start_raw(cfg.clone(), dir.clone());
    let (write, _) = create_project(&srv, "p");
    let version = assert_put(&put_key(&srv, &write, "k", b"before"), 201, "k");
    if disk.fails_only_when_growing() {
        align_journal(&srv, &write, "p");
    }
    assert_eq!(health(&srv), json!({"status": "ok", "version": "0.1.0"}));

    disk.break_writes(&srv);
    assert_not_saved(&put_key(&srv, &write, "k", b"after"), disk.expected_error());
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
        &get_key(&srv, &write, "k"),
        b"before",
        "application/octet-stream",
        version,
    );

    disk.repair(&srv);
    let version = assert_put(&put_key(&srv, &write, "k", b"after"), 200, "k");
    assert_eq!(health(&srv), json!({"status": "ok", "version": "0.1.0"}));
    srv.kill9();
    let srv = Server::start_raw(cfg, dir.clone());
    assert_value(
        &get_key(&srv, &write, "k"),
        b"after",
        "application/octet-stream",
        version,
    );
    drop(srv);
    drop(disk);
}
