//! Shared test helpers, one copy of each. Two ways to reach the server, behind one trait
//! ([`Api`]): [`InProc`] runs the router and handlers in this process (behaviour tests), and
//! [`Server`] starts the real binary on 127.0.0.1 (the wire, watches, restarts, crashes, disks,
//! the command line). Either answers a request with the same [`Resp`], so a helper or an
//! assertion written once serves both.
//!
//! - `http.rs` — request bytes, response parsing (chunked too), base64, percent-encoding.
//! - `server.rs` — the real binary: start, restart, signals, its log.
//! - `inproc.rs` — the in-process harness: the only glue to `pykv`'s library API.
//! - `client.rs` — the [`Api`] trait and the request helpers and assertions tests share.
//! - `disk.rs` — making the server's disk fail from outside.
//! - `openapi.rs` — the OpenAPI validator and the checker that drives either server against it.
//! - `etcd.rs`, `migrate.rs` — a real etcd cluster, and the pykv side of the migration tests.
#![allow(dead_code, unused_imports)] // each test file uses a different subset of these helpers

pub mod client;
pub mod disk;
pub mod etcd;
pub mod http;
pub mod inproc;
pub mod migrate;
pub mod openapi;
pub mod server;

pub use client::*;
pub use http::*;
pub use inproc::InProc;
pub use server::{assert_config_error, curl, on_disk, run, serve_bad_config, Server, RUN_LIMIT};

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const ADMIN: &str = "test-admin-token-0123456789";
/// How long any single read in these helpers may wait: a hung server fails the test, never the run.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("pykv-test-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pykv")
}

/// A config with the test admin token; `extra` fields are merged over it.
pub fn config(extra: serde_json::Value) -> serde_json::Value {
    let mut base = serde_json::json!({ "admin_token": ADMIN });
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// The wall clock in Unix seconds.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Poll `f` every 50 ms until it holds (true) or `limit` passes (false).
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True when the peer has closed the connection (EOF or reset) within `IO_TIMEOUT`.
pub fn is_closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// What a finished child process left.
pub struct Run {
    /// None when it had to be killed (it outlived its limit) or died by a signal.
    pub code: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Run `cmd` to completion within `limit`, killing it (by its own PID) past that.
pub fn run_within(cmd: &mut Command, limit: Duration) -> Run {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: if timed_out { None } else { status.code() },
        timed_out,
        stdout: String::from_utf8_lossy(&out_t.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
    }
}

/// `pykv ARGS…` without the environment variables that would change its config or token,
/// which must exit within `limit`.
pub fn pykv_within(args: &[&dyn AsRef<std::ffi::OsStr>], limit: Duration) -> Run {
    let mut cmd = Command::new(bin());
    for a in args {
        cmd.arg(a);
    }
    let run = run_within(
        cmd.env_remove("PYKV_ADMIN_TOKEN").env_remove("PYKV_CONFIG"),
        limit,
    );
    assert!(
        !run.timed_out,
        "pykv {:?} did not exit within {limit:?}",
        cmd.get_args().collect::<Vec<_>>()
    );
    run
}

/// Whether `s` has the shape of a generated secret: `pykv_` and 32 lower-case hex digits.
pub fn is_generated_secret(s: &str) -> bool {
    s.len() == 37
        && s.starts_with("pykv_")
        && s[5..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Names of the files in `dir` ending with `.tmp`.
pub fn tmp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}
