//! A real three-member etcd cluster on 127.0.0.1 for the migration tests (Debian's `etcd-server`
//! and `etcd-client`): every member on its own free ports and temporary data directory, stopped
//! by its own PID, never the system's etcd service. Without etcd installed, `Cluster::start` says
//! what to install in one line and the test passes; with `CI=true` it fails instead.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

/// One etcdctl command.
pub const ETCDCTL_LIMIT: Duration = Duration::from_secs(20);

/// A new cluster elects its leader within this.
pub const CLUSTER_START_LIMIT: Duration = Duration::from_secs(30);

pub fn installed(program: &str, version: &str) -> bool {
    Command::new(program)
        .arg(version)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the cluster tests can run. Without etcd: one line (once per run) and false, or a
/// failure under `CI=true`, where `.ci/run` installs it.
pub fn etcd_available() -> bool {
    static SAID: Once = Once::new();
    if installed("etcd", "--version") && installed("etcdctl", "version") {
        return true;
    }
    let line = "etcd is not installed: apt-get install etcd-server etcd-client to run the \
                pykv migrate etcd tests";
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "CI=true but {line}"
    );
    // Straight to stderr, past the test harness's capture, so the line is seen.
    SAID.call_once(|| {
        let _ = writeln!(std::io::stderr(), "{line}");
    });
    false
}

pub fn free_ports(n: usize) -> Vec<u16> {
    // All bound at once so they differ; released just before etcd binds them.
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

pub struct Member {
    pub client_port: u16,
    pub child: Option<Child>,
}

/// Three etcd members on 127.0.0.1, killed by their PIDs on drop.
pub struct Cluster {
    pub members: Vec<Member>,
    pub dir: TempDir,
}

impl Cluster {
    /// Start a cluster, or None (having said why) when etcd is not installed.
    pub fn start() -> Option<Cluster> {
        if !etcd_available() {
            return None;
        }
        // A port taken between our probe and etcd's bind fails a member: try afresh.
        let mut last = String::new();
        for _ in 0..3 {
            match Cluster::try_start() {
                Ok(c) => return Some(c),
                Err(why) => last = why,
            }
        }
        panic!("no etcd cluster: {last}");
    }

    pub fn try_start() -> Result<Cluster, String> {
        let dir = TempDir::new();
        let ports = free_ports(6);
        let peer = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i + 1]);
        let initial: Vec<String> = (0..3).map(|i| format!("m{i}={}", peer(i))).collect();
        let token = format!("pykv-test-{}", dir.path().display()).replace('/', "-");
        let mut members = Vec::new();
        for i in 0..3 {
            let client = format!("http://127.0.0.1:{}", ports[2 * i]);
            let log = std::fs::File::create(dir.path().join(format!("m{i}.log")))
                .map_err(|e| e.to_string())?;
            let child = Command::new("etcd")
                .args(["--name", &format!("m{i}")])
                .args([
                    "--data-dir",
                    &dir.path().join(format!("m{i}")).display().to_string(),
                ])
                .args(["--listen-client-urls", &client])
                .args(["--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer(i)])
                .args(["--initial-advertise-peer-urls", &peer(i)])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-token", &token])
                .args(["--initial-cluster-state", "new"])
                .args([
                    "--logger",
                    "zap",
                    "--log-outputs",
                    "stderr",
                    "--log-level",
                    "warn",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| format!("spawn etcd: {e}"))?;
            members.push(Member {
                client_port: ports[2 * i],
                child: Some(child),
            });
        }
        let mut cluster = Cluster { members, dir };
        let healthy = wait_until(CLUSTER_START_LIMIT, || {
            cluster.members.iter_mut().all(|m| {
                let alive = m
                    .child
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
                alive && member_healthy(m.client_port)
            })
        });
        if !healthy {
            let logs: Vec<String> = (0..3)
                .map(|i| {
                    std::fs::read_to_string(cluster.dir.path().join(format!("m{i}.log")))
                        .unwrap_or_default()
                })
                .collect();
            return Err(format!("not healthy in time:\n{}", logs.join("\n")));
        }
        Ok(cluster)
    }

    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    /// Every member's URL, in `order`.
    pub fn urls(&self, order: &[usize]) -> String {
        order
            .iter()
            .map(|&i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn all(&self) -> String {
        self.urls(&[0, 1, 2])
    }

    /// The living members' URLs.
    pub fn living(&self) -> String {
        let alive: Vec<usize> = (0..3)
            .filter(|&i| self.members[i].child.is_some())
            .collect();
        self.urls(&alive)
    }

    /// Run etcdctl against the living members.
    pub fn etcdctl(&self, args: &[&str]) -> Run {
        self.etcdctl_env(args, &[], None)
    }

    pub fn etcdctl_env(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .env("ETCDCTL_ENDPOINTS", self.living())
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        match stdin {
            None => run_within(&mut cmd, ETCDCTL_LIMIT),
            Some(text) => run_with_stdin(&mut cmd, text),
        }
    }

    /// etcdctl that must succeed; its stdout.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = self.etcdctl(args);
        assert_eq!(out.code, Some(0), "etcdctl {args:?}: {}", out.stderr);
        out.stdout
    }

    /// Every key under `prefix`: key → (value, lease).
    pub fn dump(&self, prefix: &str) -> BTreeMap<Vec<u8>, (Vec<u8>, u64)> {
        let j: Value = serde_json::from_str(&self.ctl(&["get", "--prefix", prefix, "-w", "json"]))
            .expect("etcdctl json");
        let b64 = |v: &Value| pykv::base64::decode(v.as_str().unwrap_or("")).expect("base64");
        j["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| {
                        (
                            b64(&kv["key"]),
                            (b64(&kv["value"]), kv["lease"].as_u64().unwrap_or(0)),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn revision(&self) -> u64 {
        let j: Value = serde_json::from_str(&self.ctl(&["get", "x", "-w", "json"])).expect("json");
        j["header"]["revision"].as_u64().expect("revision")
    }

    /// Lease ids in hex, sorted (etcd lists them in no particular order).
    pub fn leases(&self) -> Vec<String> {
        let out = self.ctl(&["lease", "list"]);
        let mut ids: Vec<String> = out.lines().skip(1).map(str::to_string).collect();
        ids.sort();
        ids
    }

    /// (granted TTL, remaining) of a lease, from `etcdctl lease timetolive`.
    pub fn time_to_live(&self, lease: u64) -> (u64, u64) {
        let out = self.ctl(&["lease", "timetolive", &format!("{lease:x}")]);
        let number = |tag: &str| -> u64 {
            let start = out.find(tag).unwrap_or_else(|| panic!("{tag} in {out}")) + tag.len();
            out[start..]
                .split('s')
                .next()
                .unwrap_or("")
                .parse()
                .expect("seconds")
        };
        (number("TTL("), number("remaining("))
    }

    /// The member that leads.
    pub fn leader(&self) -> usize {
        let j: Value =
            serde_json::from_str(&self.ctl(&["endpoint", "status", "-w", "json"])).expect("json");
        let statuses = j.as_array().expect("one status per member");
        let leader = statuses[0]["Status"]["leader"].as_u64().expect("leader");
        for s in statuses {
            if s["Status"]["header"]["member_id"].as_u64() == Some(leader) {
                let url = s["Endpoint"].as_str().expect("endpoint");
                return (0..3).find(|&i| self.url(i) == url).expect("a member");
            }
        }
        panic!("no leader in {j}");
    }

    /// SIGKILL one member by its PID.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

pub fn member_healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req =
        format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

pub fn run_with_stdin(cmd: &mut Command, input: &str) -> Run {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("stdin");
    }
    let started = Instant::now();
    while matches!(child.try_wait(), Ok(None)) && started.elapsed() < ETCDCTL_LIMIT {
        thread::sleep(Duration::from_millis(10));
    }
    let timed_out = matches!(child.try_wait(), Ok(None));
    if timed_out {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("output");
    Run {
        code: if timed_out { None } else { out.status.code() },
        timed_out,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
