//! Shared test helpers: start the real `pykv` binary on a free port with a temporary config and
//! data directory, and talk to it over raw TCP. Nothing here knows the server's internals.
#![allow(dead_code)] // each test file uses a different subset of these helpers

pub mod disk;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ADMIN: &str = "test-admin-token-0123456789";
/// How long any single read in these helpers may wait: a hung server fails the test, never the run.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
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

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pykv")
}

/// A running server, killed (by its own PID) on drop.
pub struct Server {
    pub child: Option<Child>,
    pub addr: String,
    pub dir: Arc<TempDir>,
    pub config_path: PathBuf,
    log: Arc<Mutex<String>>,
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

impl Server {
    /// Start with the test admin token and `extra` config fields.
    pub fn start(extra: serde_json::Value) -> Server {
        Server::start_raw(config(extra), Arc::new(TempDir::new()))
    }

    /// Start with exactly `cfg` (plus `listen` and `data_dir` when absent) in directory `dir`.
    pub fn start_raw(mut cfg: serde_json::Value, dir: Arc<TempDir>) -> Server {
        Server::try_start(&mut cfg, dir, &[])
            .unwrap_or_else(|log| panic!("server did not start:\n{log}"))
    }

    /// Start, returning the collected stderr when the process exits before its start line.
    pub fn try_start(
        cfg: &mut serde_json::Value,
        dir: Arc<TempDir>,
        env: &[(&str, &str)],
    ) -> Result<Server, String> {
        let obj = cfg.as_object_mut().expect("config is an object");
        obj.entry("listen")
            .or_insert(serde_json::json!("127.0.0.1:0"));
        obj.entry("data_dir").or_insert(serde_json::json!(dir
            .path()
            .join("data")
            .to_str()
            .unwrap()));
        let config_path = dir.path().join("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(cfg).unwrap()).unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("--config")
            .arg(&config_path)
            .env_remove("PYKV_ADMIN_TOKEN")
            .env_remove("PYKV_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn pykv");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<Option<String>>();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut sent = false;
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        log2.lock().unwrap().push_str(&line);
                        if !sent {
                            if let Some(i) = line.find("listening on ") {
                                let rest = &line[i + "listening on ".len()..];
                                let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                                let _ = tx.send(Some(addr));
                                sent = true;
                            }
                        }
                    }
                }
            }
            if !sent {
                let _ = tx.send(None);
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(addr)) => Ok(Server {
                child: Some(child),
                addr,
                dir,
                config_path,
                log,
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(50));
                let text = log.lock().unwrap().clone();
                Err(text)
            }
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// One request on a fresh connection.
    pub fn req(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Resp {
        self.req_h(method, path, token, &[], body)
    }

    /// One request with extra headers on a fresh connection.
    pub fn req_h(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut s = self.connect();
        s.write_all(&request_bytes(method, path, token, headers, body))
            .unwrap();
        read_response(&mut s, method == "HEAD").expect("response")
    }

    /// Send a signal to the server process (by its own PID).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Wait for the process to exit; returns its exit status code (None if killed by a signal).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let child = self.child.as_mut().unwrap();
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50)); // let the log thread drain
                self.child = None;
                return st.code();
            }
            if start.elapsed() > limit {
                panic!("server did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop with SIGTERM and wait for exit 0.
    pub fn stop(&mut self) {
        self.signal("TERM");
        assert_eq!(
            self.wait_exit(Duration::from_secs(20)),
            Some(0),
            "log:\n{}",
            self.log()
        );
    }

    /// Restart with the same config file and directory.
    pub fn restart(mut self) -> Server {
        if self.child.is_some() {
            self.stop();
        }
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&self.config_path).unwrap()).unwrap();
        let mut cfg = cfg;
        // The port was 0 at first: keep asking for a free one.
        cfg["listen"] = serde_json::json!("127.0.0.1:0");
        Server::start_raw(cfg, self.dir.clone())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn request_bytes(
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if let Some(t) = token {
        r.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let mut has_len = false;
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding") {
            has_len = true;
        }
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len && (!body.is_empty() || method == "PUT" || method == "POST" || method == "PATCH") {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut v = r.into_bytes();
    v.extend_from_slice(body);
    v
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub reason: String,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Assert a JSON error response with this status and error code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"));
        let j = self.json();
        assert_eq!(j["error"], code, "body: {j}");
        assert!(
            j["message"].as_str().is_some_and(|m| !m.is_empty()),
            "message missing: {j}"
        );
        assert_eq!(j.as_object().unwrap().len(), 2, "extra fields: {j}");
    }
}

/// Read one response from the stream (a 100 Continue interim response is returned as such).
/// `head_only`: the request was HEAD, so no body follows whatever Content-Length says.
pub fn read_response(s: &mut impl Read, head_only: bool) -> Result<Resp, String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) => return Err(format!("eof after {} head bytes", head.len())),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(format!("read error: {e}")),
        }
        if head.len() > 65536 {
            return Err("response head too long".into());
        }
    }
    let text = String::from_utf8(head).map_err(|e| e.to_string())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if version != "HTTP/1.1" {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let reason = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    for l in lines {
        if l.is_empty() {
            continue;
        }
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| format!("bad header {l:?}"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut resp = Resp {
        status,
        reason,
        headers,
        body: Vec::new(),
    };
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(resp);
    }
    let len: usize = resp
        .header("content-length")
        .ok_or("no content-length")?
        .parse()
        .map_err(|_| "bad content-length")?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).map_err(|e| format!("body: {e}"))?;
    resp.body = body;
    Ok(resp)
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

/// Create an API project; returns (write secret, read secret).
pub fn create_project(srv: &Server, name: &str) -> (String, String) {
    let r = srv.req(
        "POST",
        "/v1/projects",
        Some(ADMIN),
        format!(r#"{{"name":"{name}"}}"#).as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let j = r.json();
    let tokens = j["tokens"].as_array().unwrap();
    let find = |access: &str| {
        tokens.iter().find(|t| t["access"] == access).unwrap()["secret"]
            .as_str()
            .unwrap()
            .to_string()
    };
    (find("write"), find("read"))
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

/// What a restart would load of `project`: `pykv export` of the data directory (snapshot and
/// journal, read without changing anything), one JSON line per key.
pub fn on_disk(srv: &Server, project: &str) -> String {
    let run = run_within(
        Command::new(bin())
            .arg("export")
            .arg("--data-dir")
            .arg(srv.data_dir())
            .arg("--project")
            .arg(project),
        Duration::from_secs(20),
    );
    assert_eq!(run.code, Some(0), "export failed: {}", run.stderr);
    run.stdout
}
