//! The journal: what a write costs on disk, torn tails cut at start-up, damage refused and
//! repaired, compactions (and crashes in the middle of them), a memory project's conversion,
//! SIGTERM in interval mode, and a data directory written before the journal existed.
//!
//! Every server here is the real binary on 127.0.0.1, started through `tests/common` and ended by
//! its own PID; every data directory is temporary. Crashes in the middle of a compaction are
//! rebuilt file by file with the crate's own snapshot writer.

mod common;
use common::disk::{current_journal, Disk};
use common::*;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const TEXT: &str = "text/plain";

fn start(extra: Value) -> (Server, String) {
    let srv = Server::start(extra);
    let (write, _) = create_project(&srv, "p");
    (srv, write)
}

fn put_text(srv: &Server, token: &str, key: &str, body: &[u8]) -> Resp {
    srv.req_h(
        "PUT",
        &format!("/v1/kv/p/{key}"),
        Some(token),
        &[("Content-Type", TEXT)],
        body,
    )
}

fn put_text_ok(srv: &Server, token: &str, key: &str, body: &[u8]) -> u64 {
    let r = put_text(srv, token, key, body);
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
    r.json()["version"].as_u64().expect("version")
}

fn assert_body_and_etag(r: &Resp, body: &[u8], version: u64) {
    assert_eq!(r.status, 200, "body: {}", r.text());
    assert_eq!(r.body, body);
    assert_eq!(r.header("etag"), Some(format!("\"{version}\"").as_str()));
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len()
}

/// Every file of a directory with its bytes, sorted: to show nothing was touched.
fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    v.sort();
    v
}

/// Start the server on its config and expect it to refuse: (exit code, stderr).
fn refused_start(srv: &Server) -> (Option<i32>, String) {
    let run = pykv_within(&[&"--config", &srv.config_path], Duration::from_secs(20));
    (run.code, run.stderr)
}

fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

// ---------------------------------------------------------------------------------------------
// What a write costs
// ---------------------------------------------------------------------------------------------

/// A 100-byte PUT appends one record: 12 bytes of framing, 9 of group header, 5 of op header,
/// 15 of record header, the 10-byte key and the value: 151 bytes, under the 300 we promise.
#[test]
fn a_100_byte_put_adds_151_bytes_to_the_journal() {
    let (srv, w) = start(json!({"persistence": "sync"}));
    let journal = current_journal(&srv.data_dir(), "p");
    assert_eq!(len(&journal), 0);
    put_text_ok(&srv, &w, "key-000123", &[b'v'; 100]);
    let one = len(&journal);
    assert_eq!(one, 151 + TEXT.len() as u64);
    assert!(one <= 300, "{one} bytes for a 100-byte PUT");
    put_text_ok(&srv, &w, "key-000123", &[b'w'; 100]);
    assert_eq!(len(&journal), 2 * one, "an overwrite costs the same");
    let r = srv.req("DELETE", "/v1/kv/p/key-000123", Some(&w), b"");
    assert_eq!(r.status, 204);
    // A removal: framing 12, group header 9, op 3, key 10.
    assert_eq!(len(&journal), 2 * one + 34);
}

// ---------------------------------------------------------------------------------------------
// Torn tails and damage
// ---------------------------------------------------------------------------------------------

/// A journal cut anywhere inside its last group (here a batch of three keys) loses exactly that
/// group, which was never acknowledged: start-up cuts it off, says so in one line, and the batch
/// is all absent, never half there.
#[test]
fn torn_tails_of_every_length_are_cut_at_start_and_a_batch_is_all_or_nothing() {
    let dir = Arc::new(TempDir::new());
    let cfg = config(json!({"persistence": "sync", "log_requests": false}));
    let mut srv = Server::start_raw(cfg.clone(), dir.clone());
    let (w, _) = create_project(&srv, "p");
    let va = put_text_ok(&srv, &w, "a", b"1");
    let journal = current_journal(&srv.data_dir(), "p");
    let first = len(&journal);
    let r = srv.req(
        "POST",
        "/v1/kv/p",
        Some(&w),
        br#"{"ops":[{"op":"put","key":"x","value":"X"},{"op":"put","key":"y","value":"Y"},{"op":"delete","key":"a"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    srv.stop();
    let whole = std::fs::read(&journal).unwrap();
    assert!(whole.len() as u64 > first + 12);
    let mut starts = 0;
    for cut in first + 1..whole.len() as u64 {
        std::fs::write(&journal, &whole[..cut as usize]).unwrap();
        srv = Server::start_raw(cfg.clone(), dir.clone());
        starts += 1;
        assert_body_and_etag(&get_key(&srv, &w, "a"), b"1", va);
        for k in ["x", "y"] {
            get_key(&srv, &w, k).assert_error(404, "key_not_found");
        }
        assert_eq!(len(&journal), first, "cut at {cut}: not cut back");
        let log = srv.log();
        let noted = lines_with(&log, "cut off a torn record");
        assert_eq!(noted.len(), 1, "cut at {cut}:\n{log}");
        assert!(
            noted[0].contains(&format!(
                "{}: cut off a torn record at byte {first}",
                journal.display()
            )),
            "{}",
            noted[0]
        );
        srv.kill9();
    }
    assert_eq!(starts, whole.len() as u64 - first - 1);
    // The whole journal loads with the batch, and nothing is cut.
    std::fs::write(&journal, &whole).unwrap();
    let srv = Server::start_raw(cfg, dir.clone());
    get_key(&srv, &w, "a").assert_error(404, "key_not_found");
    assert_eq!(get_key(&srv, &w, "x").body, b"X");
    assert!(lines_with(&srv.log(), "torn").is_empty());
}

/// Three one-key groups with the middle one damaged: the journal is refused, naming the file and
/// the byte; nothing is changed; `repair` cuts it there (keeping a copy) and says what it
/// dropped; the server then starts with what came before.
#[test]
fn a_flipped_byte_mid_journal_refuses_start_until_repair_cuts_it() {
    let (mut srv, w) = start(json!({"persistence": "sync"}));
    let va = put_text_ok(&srv, &w, "a", b"1");
    put_text_ok(&srv, &w, "b", b"2");
    put_text_ok(&srv, &w, "c", b"3");
    srv.stop();
    let journal = current_journal(&srv.data_dir(), "p");
    let group = len(&journal) / 3;
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes[group as usize + 20] ^= 0x40;
    std::fs::write(&journal, &bytes).unwrap();
    let before = files_of(&srv.data_dir());

    let (code, err) = refused_start(&srv);
    assert_eq!(code, Some(2), "{err}");
    let named = format!("{}: byte {group}: checksum mismatch", journal.display());
    assert!(err.contains(&named), "{err}");
    assert!(err.contains("pykv repair --data-dir"), "{err}");
    assert_eq!(
        files_of(&srv.data_dir()),
        before,
        "a refused start changed files"
    );

    let check = pykv_within(&[&"--check-data", &srv.data_dir()], Duration::from_secs(20));
    assert_eq!(check.code, Some(2), "{}", check.stdout);
    assert!(check.stderr.contains(&named), "{}", check.stderr);

    let run = pykv_within(
        &[
            &"repair",
            &"--data-dir",
            &srv.data_dir(),
            &"--project",
            &"p",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let prefix = format!(
        "p: cut {} at byte {group} (checksum mismatch in the record at byte {group}): dropped 2 records; copy kept as {}.damaged-",
        journal.display(),
        journal.display()
    );
    assert!(run.stdout.starts_with(&prefix), "{}", run.stdout);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    let copy = PathBuf::from(run.stdout.trim().rsplit(' ').next().unwrap());
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        bytes,
        "the copy is the damaged journal"
    );
    assert_eq!(len(&journal), group);

    let run = pykv_within(
        &[&"repair", &"--data-dir", &srv.data_dir()],
        Duration::from_secs(20),
    );
    assert_eq!(run.stdout, "p: journal intact, nothing to repair\n");

    let srv = srv.restart();
    assert_body_and_etag(&get_key(&srv, &w, "a"), b"1", va);
    for k in ["b", "c"] {
        get_key(&srv, &w, k).assert_error(404, "key_not_found");
    }
}

#[test]
fn check_data_counts_journal_records_and_reports_a_torn_tail() {
    let (mut srv, w) = start(json!({"persistence": "sync"}));
    put_text_ok(&srv, &w, "a", b"1");
    put_text_ok(&srv, &w, "b", b"2");
    srv.stop();
    let journal = current_journal(&srv.data_dir(), "p");
    let whole = len(&journal);
    let run = pykv_within(&[&"--check-data", &srv.data_dir()], Duration::from_secs(20));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!("p: keys=2 bytes=4 format=1 journal=2 records ({whole} B)\n")
    );
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap();
    f.set_len(whole - 3).unwrap();
    let run = pykv_within(&[&"--check-data", &srv.data_dir()], Duration::from_secs(20));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let half = whole / 2;
    assert_eq!(
        run.stdout,
        format!(
            "p: keys=1 bytes=2 format=1 journal=1 records ({half} B); torn tail, cut at the next start: {}: cut off a torn record at byte {half} (the record at byte {half} runs past the end of the file); it was never acknowledged\n",
            journal.display()
        )
    );
    assert_eq!(len(&journal), whole - 3, "--check-data changed the journal");
}

/// Segments without their snapshot are refused (pykv will not guess), naming them; those a
/// deletion left behind (their last record says so) are removed at start.
#[test]
fn orphan_journals_are_refused_unless_a_deletion_left_them() {
    let (mut srv, w) = start(json!({"persistence": "sync"}));
    put_text_ok(&srv, &w, "a", b"1");
    srv.stop();
    let data = srv.data_dir();
    let journal = current_journal(&data, "p");
    std::fs::rename(data.join("p.json"), srv.dir.path().join("moved.json")).unwrap();
    let before = files_of(&data);
    let (code, err) = refused_start(&srv);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}: a journal without its snapshot {}",
            journal.display(),
            data.join("p.json").display()
        )),
        "{err}"
    );
    assert_eq!(files_of(&data), before);

    // What a crash between a deletion's DELETED record and the removal of its files leaves.
    let mut group = Vec::new();
    let mut g = pykv::persist::journal::Group::new(&mut group);
    g.deleted();
    g.finish();
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(&group);
    std::fs::write(&journal, &bytes).unwrap();
    let srv = srv.restart();
    let log = srv.log();
    let noted = lines_with(&log, "a journal left by a deleted project");
    assert_eq!(noted.len(), 1, "{}", srv.log());
    assert!(!journal.exists());
    let r = srv.req("GET", "/v1/projects/p", Some(ADMIN), b"");
    r.assert_error(404, "project_not_found");
}

// ---------------------------------------------------------------------------------------------
// Compaction
// ---------------------------------------------------------------------------------------------

/// Once the journal outgrows the snapshot, a fresh snapshot names a new segment and the old
/// segments go; a restart loads snapshot plus journal alike.
#[test]
fn a_compaction_folds_the_journal_into_a_fresh_snapshot() {
    let (mut srv, w) = start(json!({"persistence": "sync", "compaction_min_bytes": 1}));
    let data = srv.data_dir();
    let mut versions = Vec::new();
    for i in 0..20 {
        versions.push(put_text_ok(
            &srv,
            &w,
            &format!("k{i:02}"),
            &[b'0' + (i % 10) as u8; 300],
        ));
    }
    let done = wait_until(Duration::from_secs(5), || {
        let journals = std::fs::read_dir(&data)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".journal")
            })
            .count();
        journals == 1 && current_journal(&data, "p") != data.join("p.1.journal")
    });
    assert!(
        done,
        "no compaction: {:?}",
        files_of(&data).iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let snapshot: Value =
        serde_json::from_slice(&std::fs::read(data.join("p.json")).unwrap()).unwrap();
    let seq = snapshot["project"]["journal"].as_u64().unwrap();
    assert_eq!(
        current_journal(&data, "p"),
        data.join(format!("p.{seq}.journal"))
    );
    srv.stop();
    let srv = srv.restart();
    for (i, v) in versions.iter().enumerate() {
        assert_body_and_etag(
            &get_key(&srv, &w, &format!("k{i:02}")),
            &[b'0' + (i % 10) as u8; 300],
            *v,
        );
    }
}

/// The states a crash can leave at each instant of a compaction all load with every key:
/// (1) the next segment created and written to, the snapshot half-written in `.tmp`;
/// (2) the fresh snapshot renamed into place, the segments it made obsolete still there.
#[test]
fn a_crash_at_any_instant_of_a_compaction_loses_nothing() {
    let (mut srv, w) = start(json!({"persistence": "sync"}));
    let va = put_text_ok(&srv, &w, "a", b"in segment 1");
    let vb = put_text_ok(&srv, &w, "b", b"in segment 1 too");
    srv.stop();
    let data = srv.data_dir();
    let seg1 = data.join("p.1.journal");

    // (1) Segment 2 exists and holds a later change; a `.tmp` snapshot is cut short.
    let mut project = pykv::persist::read_dir(&data, Some("p"))
        .unwrap()
        .remove(0)
        .project;
    project.replay_put(pykv::store::Record::new(
        "c",
        pykv::store::ValueRef {
            data: b"in segment 2",
            content_type: None,
            version: vb + 1,
            expires_at: None,
        },
    ));
    let mut group = Vec::new();
    let mut g = pykv::persist::journal::Group::new(&mut group);
    g.keys(project.version(), [("c", project.record("c"))]);
    g.finish();
    std::fs::write(data.join("p.2.journal"), &group).unwrap();
    std::fs::write(
        data.join("p.json.tmp"),
        b"{\"pykv_snapshot\": 1,\n\"project\": {\"na",
    )
    .unwrap();
    let mut srv = srv.restart();
    assert_body_and_etag(&get_key(&srv, &w, "a"), b"in segment 1", va);
    assert_body_and_etag(&get_key(&srv, &w, "b"), b"in segment 1 too", vb);
    assert_body_and_etag(&get_key(&srv, &w, "c"), b"in segment 2", vb + 1);
    assert!(!data.join("p.json.tmp").exists());
    srv.stop();

    // (2) The fresh snapshot (naming segment 2) is in place; segment 1 was not yet removed.
    let loaded = pykv::persist::read_dir(&data, Some("p")).unwrap().remove(0);
    pykv::persist::snapshot::save(&data, "p", &loaded.project, 2).unwrap();
    assert!(seg1.exists());
    let srv = srv.restart();
    assert_body_and_etag(&get_key(&srv, &w, "a"), b"in segment 1", va);
    assert_body_and_etag(&get_key(&srv, &w, "c"), b"in segment 2", vb + 1);
    assert!(!seg1.exists(), "the obsolete segment was kept");
    let log = srv.log();
    let noted = lines_with(&log, "already folded into the snapshot");
    assert_eq!(noted.len(), 1, "{}", srv.log());
}

/// A full disk in the middle of a compaction: the write that set it off is answered (its
/// record fitted), the compaction fails and says so in /health, nothing is lost across a
/// SIGKILL, and once there is room it is retried and succeeds.
#[test]
fn a_full_disk_during_a_compaction_degrades_health_and_loses_nothing() {
    let dir = Arc::new(TempDir::new());
    let disk = Disk::prepare(&dir.path().join("data"));
    if !disk.fails_only_when_growing() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI runs as root: a tmpfs must be available"
        );
        println!("skipped: needs a tmpfs (root)");
        return;
    }
    let cfg = config(json!({"persistence": "sync", "compaction_min_bytes": 1}));
    let mut srv = Server::start_raw(cfg.clone(), dir.clone());
    let (w, _) = create_project(&srv, "p");
    let va = put_text_ok(&srv, &w, "a", b"small");
    disk.break_writes(&srv);
    // Fits in the journal's last page, and makes the journal larger than the snapshot.
    let vb = put_text_ok(&srv, &w, "b", &[b'b'; 2000]);
    let mut h = Value::Null;
    let degraded = wait_until(Duration::from_secs(5), || {
        h = srv.req("GET", "/health", None, b"").json();
        h["status"] == "degraded"
    });
    assert!(degraded, "{h}");
    let problem = h["problems"][0].as_str().unwrap_or_default().to_string();
    let snapshot = srv.data_dir().join("p.json");
    assert!(
        problem.starts_with(
            "project p: compaction failed, will retry: the disk is full: writing the snapshot "
        ) && problem.contains(&snapshot.display().to_string()),
        "{problem}"
    );
    assert_body_and_etag(&get_key(&srv, &w, "b"), &[b'b'; 2000], vb);
    srv.kill9();
    let srv = Server::start_raw(cfg, dir.clone());
    assert_body_and_etag(&get_key(&srv, &w, "a"), b"small", va);
    assert_body_and_etag(&get_key(&srv, &w, "b"), &[b'b'; 2000], vb);
    // The journal is still past its snapshot: the restarted server tries again, and fails.
    let mut h = Value::Null;
    let degraded = wait_until(Duration::from_secs(5), || {
        h = srv.req("GET", "/health", None, b"").json();
        h["status"] == "degraded"
    });
    assert!(degraded, "{h}");
    disk.repair(&srv);
    let mut text = String::new();
    let healthy = wait_until(Duration::from_secs(15), || {
        h = srv.req("GET", "/health", None, b"").json();
        text = std::fs::read_to_string(&snapshot).unwrap_or_default();
        h["status"] == "ok" && text.contains("\"key\":\"b\"")
    });
    assert!(
        healthy,
        "no retried compaction wrote b (health {h}):\n{text}"
    );
    drop(srv);
    drop(disk);
}

// ---------------------------------------------------------------------------------------------
// Modes
// ---------------------------------------------------------------------------------------------

/// A memory project switched to sync: its keys are written to a first snapshot while requests
/// to it wait (and /health does not); the switch is answered once that is in place, and every
/// key then survives SIGKILL.
#[test]
fn a_memory_project_switched_to_sync_keeps_every_key_across_sigkill() {
    let dir = Arc::new(TempDir::new());
    let cfg = config(json!({"persistence": "memory", "log_requests": false}));
    let mut srv = Server::start_raw(cfg.clone(), dir.clone());
    let (w, _) = create_project(&srv, "p");
    let mut body = Vec::new();
    for i in 0..20_000 {
        body.extend_from_slice(
            format!("{{\"key\":\"k{i:05}\",\"value\":\"value {i}\"}}\n").as_bytes(),
        );
    }
    let r = srv.req("POST", "/v1/projects/p/import", Some(ADMIN), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!srv.data_dir().join("p.json").exists());
    let r = srv.req(
        "PATCH",
        "/v1/projects/p",
        Some(ADMIN),
        br#"{"persistence":"sync"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["persistence"], "sync");
    assert_eq!(r.json()["keys"], 20_000);
    let v = put_text_ok(&srv, &w, "after", b"switch");
    srv.kill9();
    let srv = Server::start_raw(cfg, dir.clone());
    let r = srv.req("GET", "/v1/projects/p", Some(ADMIN), b"");
    assert_eq!(r.json()["keys"], 20_001, "{}", r.text());
    assert_eq!(r.json()["persistence"], "sync");
    assert_eq!(get_key(&srv, &w, "k12345").body, b"value 12345");
    assert_body_and_etag(&get_key(&srv, &w, "after"), b"switch", v);
}

/// interval mode with an interval of an hour: SIGTERM writes and syncs what is pending, says so,
/// and exits 0; everything is there after the restart. Settings and tokens, synced at once in
/// every mode, survive SIGKILL too.
#[test]
fn sigterm_syncs_interval_changes_and_settings_are_synced_at_once() {
    let dir = Arc::new(TempDir::new());
    let cfg = config(json!({"persistence": "interval", "interval_ms": 3_600_000}));
    let mut srv = Server::start_raw(cfg.clone(), dir.clone());
    let (w, _) = create_project(&srv, "p");
    let v = put_text_ok(&srv, &w, "k", b"pending sync");
    srv.stop();
    let log = srv.log();
    let stopped = lines_with(&log, "pykv stopped");
    assert_eq!(stopped.len(), 1, "{}", srv.log());
    assert!(
        stopped[0].ends_with("pykv stopped: all data written and synced"),
        "{}",
        stopped[0]
    );
    let mut srv = Server::start_raw(cfg.clone(), dir.clone());
    assert_body_and_etag(&get_key(&srv, &w, "k"), b"pending sync", v);
    let r = srv.req(
        "POST",
        "/v1/projects/p/tokens",
        Some(ADMIN),
        br#"{"label":"ci","access":"read"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let secret = r.json()["secret"].as_str().unwrap().to_string();
    let r = srv.req("PATCH", "/v1/projects/p", Some(ADMIN), br#"{"max_keys":5}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    srv.kill9();
    let srv = Server::start_raw(cfg, dir.clone());
    assert_body_and_etag(&get_key(&srv, &secret, "k"), b"pending sync", v);
    let r = srv.req("GET", "/v1/projects/p", Some(ADMIN), b"");
    assert_eq!(r.json()["max_keys"], 5, "{}", r.text());
}

// ---------------------------------------------------------------------------------------------
// Upgrade
// ---------------------------------------------------------------------------------------------

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-0.1.0")
}

fn fixture_token(file: &str, label: &str) -> String {
    let text = std::fs::read_to_string(fixture_dir().join(file)).unwrap();
    let line = text.lines().nth(1).unwrap();
    let header: Value = serde_json::from_str(
        line.trim_start_matches("\"project\": ")
            .trim_end_matches(','),
    )
    .unwrap();
    header["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == label)
        .unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A data directory written by pykv 0.1.0 (snapshots only, no journal) loads unchanged: every
/// key, type, version, expiry and token; the old snapshots are not rewritten; new writes go to
/// a journal beside them and survive SIGKILL.
#[test]
fn a_data_directory_from_before_the_journal_loads_unchanged() {
    let dir = Arc::new(TempDir::new());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["home.json", "logger.json"] {
        std::fs::copy(fixture_dir().join(f), data.join(f)).unwrap();
    }
    let originals = files_of(&data);
    let cfg = config(json!({}));
    let mut srv = Server::start_raw(cfg.clone(), dir.clone());
    let home = fixture_token("home.json", "write");
    let logger = fixture_token("logger.json", "read");
    let sensors = fixture_token("home.json", "sensors");
    let expect = [
        ("config", &b"{\"interval\": 5}"[..], "application/json", 2),
        ("greetings/en", b"hello world", "text/plain", 1),
        ("raw", &[0, 1, 2, 255], "application/octet-stream", 3),
        (
            "sensors/t%C3%A9mp%20%C2%B0C",
            "21.5 °C".as_bytes(),
            "text/plain; charset=utf-8",
            4,
        ),
        ("session", b"long-lived", "text/plain", 5),
        ("visits", b"41", "text/plain", 6),
    ];
    let check = |srv: &Server, project_version: u64| {
        for (key, body, ct, version) in expect {
            let r = srv.req("GET", &format!("/v1/kv/home/{key}"), Some(&home), b"");
            assert_body_and_etag(&r, body, version);
            assert_eq!(r.header("content-type"), Some(ct), "{key}");
        }
        let r = srv.req("GET", "/v1/kv/home/session", Some(&home), b"");
        assert_eq!(r.header("x-expires-at"), Some("2111224396"));
        let r = srv.req("GET", "/v1/kv/home/gone", Some(&home), b"");
        r.assert_error(404, "key_not_found");
        for i in 1..=3 {
            let r = srv.req(
                "GET",
                &format!("/v1/kv/logger/line-{i}"),
                Some(&logger),
                b"",
            );
            assert_body_and_etag(&r, format!("entry {i}").as_bytes(), i);
        }
        let r = srv.req("GET", "/v1/projects/home", Some(ADMIN), b"");
        let j = r.json();
        assert_eq!(
            (
                j["version"].clone(),
                j["max_keys"].clone(),
                j["max_bytes"].clone()
            ),
            (json!(project_version), json!(1000), json!(1048576)),
            "{j}"
        );
        let r = srv.req("PUT", "/v1/kv/home/outside", Some(&sensors), b"x");
        r.assert_error(403, "forbidden");
    };
    check(&srv, 8);
    assert_eq!(
        files_of(&data),
        originals,
        "loading rewrote the old snapshots"
    );
    let r = srv.req(
        "PUT",
        "/v1/kv/home/sensors/new",
        Some(&sensors),
        b"after upgrade",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["version"], 9);
    srv.kill9();
    let srv = Server::start_raw(cfg, dir.clone());
    check(&srv, 9);
    let r = srv.req("GET", "/v1/kv/home/sensors/new", Some(&home), b"");
    assert_body_and_etag(&r, b"after upgrade", 9);
    for (name, bytes) in &originals {
        assert_eq!(
            &std::fs::read(data.join(name)).unwrap(),
            bytes,
            "{name} was rewritten"
        );
    }
    assert!(data.join("home.1.journal").exists());
}
