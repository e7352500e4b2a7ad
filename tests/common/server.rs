//! The real `pykv` binary on 127.0.0.1: started on a free port with a temporary config and data
//! directory, spoken to over TCP, ended by its own PID. For what needs the real event loop, the
//! disk or the process: the wire, watches, restarts, crashes, signals, the log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{bin, config, read_response, run_within, Api, Resp, TempDir, IO_TIMEOUT};

/// A running server, killed (by its own PID) on drop.
pub struct Server {
    pub child: Option<Child>,
    pub addr: String,
    pub dir: Arc<TempDir>,
    pub config_path: PathBuf,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Start with the test admin token and `extra` config fields.
    pub fn start(extra: serde_json::Value) -> Server {
        Server::start_raw(config(extra), Arc::new(TempDir::new()))
    }

    /// Start with `extra` config fields and one empty API project `p`; returns the server and
    /// p's (write, read) secrets.
    pub fn with_p(extra: serde_json::Value) -> (Server, String, String) {
        let srv = Server::start(extra);
        let (write, read) = super::create_project(&srv, "p");
        (srv, write, read)
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

    /// `http://` and its address, for clients given a URL (curl, Python).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The snapshot file of `project`.
    pub fn snapshot(&self, project: &str) -> PathBuf {
        self.data_dir().join(format!("{project}.json"))
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

impl Api for Server {
    fn send(&self, request: &[u8], head_only: bool) -> Resp {
        let mut s = self.connect();
        s.write_all(request).unwrap();
        read_response(&mut s, head_only).expect("response")
    }

    fn send_then_close(&self, request: &[u8], head_only: bool) -> (Resp, Vec<u8>) {
        let mut s = self.connect();
        s.write_all(request).unwrap();
        let r = read_response(&mut s, head_only).expect("response");
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)
            .expect("server closes after Connection: close");
        (r, rest)
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

/// Any child process (curl, python3, `pykv export`) must finish within this; a hung one is
/// killed and fails its test.
pub const RUN_LIMIT: Duration = Duration::from_secs(20);
/// How long a server given a bad config may take to exit before we call it started.
const EXIT_LIMIT: Duration = Duration::from_secs(5);

/// Run `cmd` within `RUN_LIMIT`.
pub fn run(cmd: &mut Command) -> super::Run {
    let r = run_within(cmd, RUN_LIMIT);
    assert!(!r.timed_out, "{cmd:?} did not finish within {RUN_LIMIT:?}");
    r
}

/// curl as a shell user runs it: silent, errors shown, bounded.
pub fn curl(args: &[&str]) -> super::Run {
    let r = run(Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args));
    assert_eq!(r.code, Some(0), "curl {args:?}: {}", r.stderr);
    r
}

/// Start `pykv --config` on `cfg` (in a fresh directory) and expect it to refuse: returns
/// what it left. A server that starts instead is killed after `EXIT_LIMIT`.
pub fn serve_bad_config(cfg: serde_json::Value) -> super::Run {
    let dir = TempDir::new();
    let mut cfg = config(cfg);
    cfg["listen"] = serde_json::json!("127.0.0.1:0");
    cfg["data_dir"] = serde_json::json!(dir.path().join("data").to_str().unwrap());
    let path = dir.path().join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    run_within(
        Command::new(bin())
            .arg("--config")
            .arg(&path)
            .env_remove("PYKV_CONFIG")
            .env_remove("PYKV_ADMIN_TOKEN"),
        EXIT_LIMIT,
    )
}

/// A config error: exit 2, nothing on stdout, one line on stderr naming `field`.
pub fn assert_config_error(r: &super::Run, field: &str) {
    assert!(!r.timed_out, "the server started: {}", r.stderr);
    assert_eq!(r.code, Some(2), "stderr: {}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "stderr: {}", r.stderr);
    assert!(r.stderr.starts_with("pykv: "), "stderr: {}", r.stderr);
    assert!(r.stderr.contains(field), "stderr: {}", r.stderr);
}
