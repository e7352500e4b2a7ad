//! `pykv migrate etcd` and `pykv export --format consul`, run as the real binary against data
//! directories filled through the real server, and a real three-member etcd cluster on
//! 127.0.0.1 (Debian's `etcd-server` and `etcd-client`): every member on its own free ports and
//! temporary data directory, stopped by its own PID, never the system's etcd service.
//!
//! Without etcd installed the cluster tests print one line saying what to install and pass;
//! with `CI=true` they fail instead.

mod common;
use common::etcd::*;
use common::migrate::*;
use common::*;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// etcd: installed or not, and a three-member cluster
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// The pykv side: a data directory filled through the real server, and the commands
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Migration
// ---------------------------------------------------------------------------------------------

/// Every live key arrives byte for byte under /pykv/<project>/<key>, its content type under
/// /pykv/.meta/, keys with a TTL on a lease per expiry second whose TTL is the time left, and
/// the expired key nowhere.
#[test]
fn migrate_writes_every_key_byte_for_byte_with_types_and_leases() {
    let f = fill();
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let out = migrate(&f.data_dir, &cluster.all(), &[]);
    assert_ok(&out);
    assert_eq!(report(&out), first_run_report(&f, &cluster.all()));

    assert_eq!(cluster.dump("/pykv/"), expected(&f));
    // The raw bytes too, as etcdctl prints a value.
    let raw = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .env("ETCDCTL_ENDPOINTS", cluster.all())
        .args(["get", "/pykv/alpha/bin", "--print-value-only"])
        .output()
        .expect("etcdctl");
    assert_eq!(raw.stdout, b"\x00\x01\x02\x7f\x80\xfe\xff\n\r\n");

    // One lease per expiry second: sensors/t1 (and its content type) on one, lease/a and
    // lease/b on the other; each with the time its keys had left.
    let leases = cluster.leases();
    let mut want: Vec<String> = f
        .keys
        .iter()
        .filter_map(|k| k.expires_at)
        .map(|t| format!("{:x}", lease_of(t)))
        .collect();
    want.sort();
    want.dedup();
    assert_eq!(leases, want);
    for k in f.keys.iter().filter(|k| k.expires_at.is_some()) {
        let expires_at = k.expires_at.unwrap_or(0);
        let (granted, remaining) = cluster.time_to_live(lease_of(expires_at));
        let left = expires_at - now_secs();
        assert!(
            granted <= left + 2 && granted + 10 >= left,
            "{}: granted {granted}, {left} left",
            k.key
        );
        assert!(remaining <= granted && remaining + 10 >= left, "{}", k.key);
    }
}

/// A second run finds everything in place: it writes nothing (etcd's revision stays), grants
/// no lease, and says so.
#[test]
fn a_second_run_changes_nothing_and_says_so() {
    let f = fill();
    let Some(cluster) = Cluster::start() else {
        return;
    };
    assert_ok(&migrate(&f.data_dir, &cluster.all(), &[]));
    let revision = cluster.revision();
    let leases = cluster.leases();

    let out = migrate(&f.data_dir, &cluster.all(), &[]);
    assert_ok(&out);
    assert_eq!(
        report(&out),
        format!(
            "migrating 2 projects from {} to etcd at {} under \"/pykv/\"\n\
             project alpha: 8 keys (3 with a content type, 3 with a TTL, 1 expired and skipped): \
             0 written, 8 already in etcd\n\
             project beta: 2 keys (0 with a content type, 0 with a TTL): 0 written, 2 already \
             in etcd\n\
             verified alpha: etcd holds 8 keys under \"/pykv/alpha/\" and 3 under \
             \"/pykv/.meta/alpha/\", as pykv has\n\
             verified beta: etcd holds 2 keys under \"/pykv/beta/\" and 0 under \
             \"/pykv/.meta/beta/\", as pykv has\n\
             done: nothing to change, all 10 keys were already in etcd\n",
            f.data_dir.display(),
            cluster.all()
        )
    );
    assert_eq!(
        cluster.revision(),
        revision,
        "the second run wrote something"
    );
    assert_eq!(cluster.leases(), leases);
    assert_eq!(cluster.dump("/pykv/"), expected(&f));
}

/// `--dry-run` says what it would write and writes nothing: no key, no lease, same revision.
#[test]
fn dry_run_writes_nothing() {
    let f = fill();
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let revision = cluster.revision();
    let out = migrate(&f.data_dir, &cluster.all(), &["--dry-run"]);
    assert_ok(&out);
    assert_eq!(
        report(&out),
        format!(
            "dry run: 2 projects from {} to etcd at {} under \"/pykv/\"; nothing will be written\n\
             project alpha: 8 keys (3 with a content type, 3 with a TTL, 1 expired and skipped): \
             would write 8, 0 already in etcd\n\
             project beta: 2 keys (0 with a content type, 0 with a TTL): would write 2, 0 \
             already in etcd\n\
             dry run: would write 10 keys in 2 transactions and grant 2 leases; nothing was \
             written\n",
            f.data_dir.display(),
            cluster.all()
        )
    );
    assert_eq!(cluster.revision(), revision);
    assert!(cluster.dump("").is_empty());
    assert!(cluster.leases().is_empty());
}

/// `--project` and `--prefix` choose what goes where; a key in etcd that pykv does not have
/// under that prefix makes the counts differ: exit 1, one line on stderr.
#[test]
fn a_count_mismatch_exits_1() {
    let f = fill();
    let Some(cluster) = Cluster::start() else {
        return;
    };
    cluster.ctl(&["put", "/other/beta/stranger", "not from pykv"]);
    let out = migrate(
        &f.data_dir,
        &cluster.all(),
        &["--project", "beta", "--prefix", "/other/"],
    );
    assert_eq!(
        out.code,
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        out.stdout,
        format!(
            "migrating 1 project from {} to etcd at {} under \"/other/\"\n\
             project beta: 2 keys (0 with a content type, 0 with a TTL): 2 written, 0 already \
             in etcd\n\
             MISMATCH beta: etcd holds 3 keys under \"/other/beta/\" and 0 under \
             \"/other/.meta/beta/\"; pykv has 2 and 0\n",
            f.data_dir.display(),
            cluster.all()
        )
    );
    assert_eq!(
        out.stderr,
        "pykv: count mismatch: project beta has 2 keys and 0 content types, etcd 3 and 0: etcd \
         holds keys pykv does not have there (another writer, or keys deleted in pykv since an \
         earlier migration): remove them or use another --prefix\n"
    );
    let keys: Vec<Vec<u8>> = cluster.dump("").into_keys().collect();
    assert_eq!(
        keys,
        [
            &b"/other/beta/big"[..],
            b"/other/beta/k1",
            b"/other/beta/stranger"
        ]
    );
}

/// A wrong endpoint — nothing listening, or an HTTP server that is not etcd (pykv itself) —
/// is named in one line on stderr, exit 2, before anything is written.
#[test]
fn a_wrong_endpoint_is_named_and_exits_2() {
    let f = fill();
    let closed = free_ports(1)[0];
    let out = migrate(&f.data_dir, &format!("http://127.0.0.1:{closed}"), &[]);
    let line = assert_fails_with_one_line(&out);
    let want = format!("pykv: cannot reach etcd at http://127.0.0.1:{closed}: cannot connect: ");
    assert!(line.starts_with(&want), "{line}");

    let not_etcd = Server::start(json!({}));
    let out = migrate(&f.data_dir, &not_etcd.addr, &[]);
    assert_eq!(
        assert_fails_with_one_line(&out),
        format!(
            "pykv: cannot reach etcd at http://{}: answered HTTP 404 to /v3/kv/range: not an \
             etcd v3 gateway",
            not_etcd.addr
        )
    );
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
}

/// Bad command lines are one line on stderr and exit 2; the password's variable must be set.
#[test]
fn bad_command_lines_exit_2_with_one_line() {
    let cases: [(&[&str], &str); 5] = [
        (&["migrate", "etcd", "--data-dir", "d"], "pykv: pykv migrate etcd: --endpoints is required"),
        (&["migrate", "etcd", "--data-dir", "d", "--endpoints", "https://a:2379"], "pykv: --endpoints: \"https://a:2379\" uses https"),
        (&["migrate", "etcd", "--data-dir", "d", "--endpoints", "a:1", "--user", "u"], "pykv: --user needs --password-env VAR"),
        (&["migrate", "etcd", "--data-dir", "d", "--endpoints", "a:1", "--user", "u", "--password-env", "PYKV_TEST_UNSET"], "pykv: --password-env PYKV_TEST_UNSET: the environment variable PYKV_TEST_UNSET is not set or empty"),
        (&["migrate", "consul"], "pykv: pykv migrate: the one target is etcd"),
    ];
    for (args, prefix) in cases {
        let line = assert_fails_with_one_line(&pykv(args, &[]));
        assert!(line.starts_with(prefix), "{args:?}: {line}");
    }
    let missing = pykv(
        &[
            "migrate",
            "etcd",
            "--data-dir",
            "/nonexistent/pykv",
            "--endpoints",
            "a:1",
        ],
        &[],
    );
    assert_eq!(
        assert_fails_with_one_line(&missing),
        "pykv: /nonexistent/pykv is not a directory"
    );
}

/// A member killed (SIGKILL, the leader, the endpoint in use) in the middle of a migration of
/// 50,000 keys: the migration goes on through the other two and every key arrives.
#[test]
fn a_member_killed_mid_migration_of_50000_keys() {
    const N: usize = 50_000;
    let (_dir, data_dir) = fill_many("big", N);
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let leader = cluster.leader();
    let order: Vec<usize> = std::iter::once(leader)
        .chain((0..3).filter(|&i| i != leader))
        .collect();
    let endpoints = cluster.urls(&order);

    let started = Instant::now();
    let mut child = Command::new(bin())
        .args(["migrate", "etcd", "--data-dir"])
        .arg(&data_dir)
        .args(["--endpoints", &endpoints])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pykv");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + MIGRATE_LIMIT;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("no progress line; so far: {lines:?}")
            });
        let progress = line == format!("project big: past 10000 of {N} keys");
        lines.push(line);
        if progress {
            break;
        }
    }
    cluster.kill(leader);
    let killed_at = started.elapsed();

    while matches!(child.try_wait(), Ok(None)) && started.elapsed() < MIGRATE_LIMIT * 2 {
        thread::sleep(Duration::from_millis(20));
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait");
    let took = started.elapsed();
    let _ = reader.join();
    lines.extend(rx.try_iter());
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let text = lines.join("\n");
    assert_eq!(status.code(), Some(0), "stdout:\n{text}\nstderr:\n{stderr}");
    // It failed over from the dead member, and went on past it.
    let dead = format!("note: {}: ", cluster.url(leader));
    assert!(lines.iter().any(|l| l.starts_with(&dead)), "{text}");
    for line in [
        format!("project big: {N} keys (0 with a content type, 0 with a TTL): {N} written, 0 already in etcd"),
        format!("verified big: etcd holds {N} keys under \"/pykv/big/\" and 0 under \"/pykv/.meta/big/\", as pykv has"),
        format!("done: {N} keys written, 0 already in etcd, 0 leases granted"),
    ] {
        assert!(lines.contains(&line), "missing {line:?} in\n{text}");
    }
    assert!(
        lines.contains(&format!("project big: past 40000 of {N} keys")),
        "{text}"
    );
    // Every key, byte for byte, read from the survivors.
    let held = cluster.dump("/pykv/big/");
    assert_eq!(held.len(), N);
    for (i, (key, (value, lease))) in held.iter().enumerate() {
        assert_eq!(key, format!("/pykv/big/item/{i:05}").as_bytes());
        assert_eq!(value, &many_value(i, N), "item {i}");
        assert_eq!(*lease, 0);
    }
    let notes: Vec<&String> = lines.iter().filter(|l| l.starts_with("note: ")).collect();
    eprintln!("migrated {N} keys in {took:?}; killed the leader at {killed_at:?}; {notes:?}");
}

/// An HTTP proxy to one member that passes everything through, except that the `nth` write
/// transaction reaches etcd (and is applied) but its answer never comes back.
struct LosingProxy {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl LosingProxy {
    fn start(upstream: u16, nth: usize) -> LosingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicUsize::new(0));
        let stop2 = stop.clone();
        thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let writes = writes.clone();
                        thread::spawn(move || proxy_connection(client, upstream, &writes, nth));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        LosingProxy { port, stop }
    }
}

impl Drop for LosingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn proxy_connection(mut client: TcpStream, upstream: u16, writes: &AtomicUsize, nth: usize) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    loop {
        // One request: head, then Content-Length bytes.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if client.read(&mut byte).unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&head).to_string();
        let length: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if client.read_exact(&mut body).is_err() {
            return;
        }
        // Upstream on a fresh connection that closes after its answer: read to the end.
        head.truncate(head.len() - 2);
        head.extend_from_slice(b"Connection: close\r\n\r\n");
        let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
            return;
        };
        let _ = up.set_read_timeout(Some(Duration::from_secs(30)));
        if up
            .write_all(&head)
            .and_then(|_| up.write_all(&body))
            .is_err()
        {
            return;
        }
        let mut answer = Vec::new();
        let _ = up.read_to_end(&mut answer);
        let is_write = text.starts_with("POST /v3/kv/txn ")
            && String::from_utf8_lossy(&body).contains("request_put");
        if is_write && writes.fetch_add(1, Ordering::SeqCst) + 1 == nth {
            // Applied, never answered: wait for the client to give up.
            let _ = client.read(&mut byte);
            return;
        }
        if client.write_all(&answer).is_err() {
            return;
        }
    }
}

/// A write transaction that etcd applied but whose answer never came times out; it is sent
/// again through the next member, where its guards show it went through: nothing is applied
/// twice (one revision per transaction) and the report counts every key once.
#[test]
fn a_timed_out_transaction_is_retried_on_the_next_member() {
    const N: usize = 1000;
    let (_dir, data_dir) = fill_many("p", N);
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let proxy = LosingProxy::start(cluster.members[0].client_port, 3);
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let endpoints = format!("{proxy_url},{}", cluster.urls(&[1, 2]));
    let revision = cluster.revision();
    let out = migrate(&data_dir, &endpoints, &[]);
    assert_ok(&out);
    assert_eq!(
        report(&out),
        format!(
            "migrating 1 project from {} to etcd at {endpoints} under \"/pykv/\"\n\
             note: {proxy_url}: no answer in time; trying {}\n\
             project p: {N} keys (0 with a content type, 0 with a TTL): {N} written, 0 already \
             in etcd\n\
             verified p: etcd holds {N} keys under \"/pykv/p/\" and 0 under \"/pykv/.meta/p/\", \
             as pykv has\n\
             done: {N} keys written, 0 already in etcd, 0 leases granted\n",
            data_dir.display(),
            cluster.url(1)
        )
    );
    // 1000 keys in chunks of 128: 8 transactions, each applied once.
    assert_eq!(cluster.revision(), revision + 8);
    let held = cluster.dump("/pykv/p/");
    assert_eq!(held.len(), N);
    for (i, (_, (value, _))) in held.iter().enumerate() {
        assert_eq!(value, &many_value(i, N));
    }
}

// ---------------------------------------------------------------------------------------------
// Roles and users
// ---------------------------------------------------------------------------------------------

fn roles_script(f: &Filled, endpoints: Option<&str>) -> String {
    let mut s = String::from(
        "#!/bin/sh\n\
         # etcd roles and users that give each pykv token the same reach in etcd, printed by\n\
         # `pykv migrate etcd --roles`: read it, then run it with sh. It holds no secret: each user's\n\
         # password is read from the environment variable named on its line, so set those first (one\n\
         # word each: etcdctl reads a password up to the first space). If etcd has authentication on\n\
         # already, run it as root (ETCDCTL_USER=root ETCDCTL_PASSWORD=...). pykv's admin token has no\n\
         # counterpart here: etcd's root user is the admin.\n\
         set -eu\n\
         export ETCDCTL_API=3\n",
    );
    if let Some(e) = endpoints {
        s.push_str(&format!("export ETCDCTL_ENDPOINTS={e}\n"));
    }
    let token = |project: &str, id: &str, label: &str, perm: &str, scope: Option<&str>| {
        let name = format!("pykv-{project}-{id}");
        let var = format!(
            "PYKV_PASSWORD_{}_{}",
            project.to_uppercase(),
            id.to_uppercase().replace('-', "_")
        );
        let reach = match scope {
            Some(p) => format!("keys under {p:?}"),
            None => "every key of the project".into(),
        };
        let scope = scope.unwrap_or("");
        format!(
            "# token {id} {label:?}: {perm}, {reach}\n\
             etcdctl role add {name}\n\
             etcdctl role grant-permission --prefix=true {name} {perm} /pykv/{project}/{scope}\n\
             etcdctl role grant-permission --prefix=true {name} {perm} /pykv/.meta/{project}/{scope}\n\
             printf '%s\\n' \"${var}\" | etcdctl user add {name} --interactive=false\n\
             etcdctl user grant-role {name} {name}\n"
        )
    };
    s.push_str("\n# project alpha\n");
    s.push_str(&token("alpha", "cfg-1", "ci", "read", None));
    s.push_str(&token("alpha", "cfg-2", "deploy", "readwrite", None));
    s.push_str(&token(
        "alpha",
        "cfg-3",
        "thermometer",
        "readwrite",
        Some("sensors/"),
    ));
    s.push_str("\n# project beta\n");
    for (id, access) in &f.beta_tokens {
        let perm = if access == "write" {
            "readwrite"
        } else {
            "read"
        };
        s.push_str(&token("beta", id, access, perm, None));
    }
    s.push_str(
        "\n# Last, if etcd has no root user yet, turn authentication on (etcdctl asks for root's password):\n\
         #   etcdctl user add root && etcdctl user grant-role root root && etcdctl auth enable\n",
    );
    s
}

/// `--roles` prints, for each token, a role with read or readwrite on the project's keys and
/// content types (or only under a scoped token's prefix) and a user holding it — and no secret.
#[test]
fn roles_mirror_each_token_without_a_secret() {
    let f = fill();
    let dir = f.data_dir.to_str().expect("utf-8");
    let out = pykv(&["migrate", "etcd", "--roles", "--data-dir", dir], &[]);
    assert_ok(&out);
    assert_eq!(out.stdout, roles_script(&f, None));
    for secret in [READ_SECRET, DEPLOY_SECRET, THERMO_SECRET, "pykv_"] {
        assert!(!out.stdout.contains(secret), "{secret} printed");
    }
    let out = pykv(
        &[
            "migrate",
            "etcd",
            "--roles",
            "--data-dir",
            dir,
            "--endpoints",
            "http://a:2379,http://b:2379",
        ],
        &[],
    );
    assert_ok(&out);
    assert_eq!(
        out.stdout,
        roles_script(&f, Some("http://a:2379,http://b:2379"))
    );
}

/// The printed script, run against etcd, gives each user the token's reach; with auth on, a
/// migration as the write token's user (`--user`, `--password-env`) works for its project and is
/// refused for another; a wrong password is refused; both in one line, exit 2.
#[test]
fn the_roles_script_works_in_etcd_with_authentication() {
    let f = fill();
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let dir = f.data_dir.to_str().expect("utf-8");
    let script = pykv(
        &[
            "migrate",
            "etcd",
            "--roles",
            "--data-dir",
            dir,
            "--endpoints",
            &cluster.all(),
        ],
        &[],
    );
    assert_ok(&script);
    let path = f.data_dir.parent().expect("parent").join("roles.sh");
    std::fs::write(&path, &script.stdout).expect("write the script");
    let mut passwords: Vec<(String, String)> = vec![
        ("PYKV_PASSWORD_ALPHA_CFG_1".into(), "ci-password".into()),
        ("PYKV_PASSWORD_ALPHA_CFG_2".into(), "deploy-password".into()),
        ("PYKV_PASSWORD_ALPHA_CFG_3".into(), "thermo-password".into()),
    ];
    for (id, _) in &f.beta_tokens {
        passwords.push((
            format!("PYKV_PASSWORD_BETA_{}", id.to_uppercase()),
            "beta-pw".into(),
        ));
    }
    let mut sh = Command::new("sh");
    sh.arg(&path);
    for (k, v) in &passwords {
        sh.env(k, v);
    }
    let ran = run_within(&mut sh, Duration::from_secs(60));
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    let root = cluster.etcdctl_env(
        &["user", "add", "root", "--interactive=false"],
        &[],
        Some("root-pw\n"),
    );
    assert_eq!(root.code, Some(0), "{}", root.stderr);
    cluster.ctl(&["user", "grant-role", "root", "root"]);
    cluster.ctl(&["auth", "enable"]);

    let as_user = |user: &str, password: &str, args: &[&str]| {
        cluster.etcdctl_env(
            args,
            &[("ETCDCTL_USER", user), ("ETCDCTL_PASSWORD", password)],
            None,
        )
    };
    let ok = |r: Run| assert_eq!(r.code, Some(0), "{}", r.stderr);
    let denied = |r: Run| {
        assert_ne!(r.code, Some(0));
        assert!(r.stderr.contains("permission denied"), "{}", r.stderr);
    };
    ok(as_user(
        "root",
        "root-pw",
        &["put", "/pykv/alpha/seed", "1"],
    ));
    ok(as_user(
        "pykv-alpha-cfg-1",
        "ci-password",
        &["get", "/pykv/alpha/seed"],
    ));
    denied(as_user(
        "pykv-alpha-cfg-1",
        "ci-password",
        &["put", "/pykv/alpha/x", "1"],
    ));
    ok(as_user(
        "pykv-alpha-cfg-3",
        "thermo-password",
        &["put", "/pykv/alpha/sensors/t2", "1"],
    ));
    denied(as_user(
        "pykv-alpha-cfg-3",
        "thermo-password",
        &["put", "/pykv/alpha/other", "1"],
    ));
    denied(as_user(
        "pykv-alpha-cfg-2",
        "deploy-password",
        &["get", "/pykv/beta/k1"],
    ));
    ok(as_user("root", "root-pw", &["del", "--prefix", "/pykv/"]));

    let env = [("PYKV_TEST_PW", "deploy-password")];
    let user = [
        "--user",
        "pykv-alpha-cfg-2",
        "--password-env",
        "PYKV_TEST_PW",
    ];
    let args = |project: &'static str| -> Vec<String> {
        [
            "migrate",
            "etcd",
            "--data-dir",
            dir,
            "--endpoints",
            &cluster.all(),
            "--project",
            project,
        ]
        .iter()
        .chain(user.iter())
        .map(|s| s.to_string())
        .collect()
    };
    let run_args = |a: Vec<String>, env: &[(&str, &str)]| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        pykv(&refs, env)
    };
    let out = run_args(args("alpha"), &env);
    assert_ok(&out);
    assert!(
        out.stdout
            .contains("done: 8 keys written, 0 already in etcd, 2 leases granted\n"),
        "{}",
        out.stdout
    );
    let refused = run_args(args("beta"), &env);
    assert_eq!(
        assert_fails_with_one_line(&refused),
        format!(
            "pykv: etcd at {} refused: etcdserver: permission denied (the user needs readwrite \
             on the prefix)",
            cluster.url(0)
        )
    );
    let wrong = run_args(args("alpha"), &[("PYKV_TEST_PW", "not-the-password")]);
    assert_eq!(
        assert_fails_with_one_line(&wrong),
        "pykv: etcd refused user \"pykv-alpha-cfg-2\": wrong user name or password"
    );
    let nobody = migrate(&f.data_dir, &cluster.all(), &["--project", "alpha"]);
    assert_eq!(
        assert_fails_with_one_line(&nobody),
        format!(
            "pykv: etcd at {} has authentication on: pass --user U --password-env VAR",
            cluster.url(0)
        )
    );
    for r in [&out, &refused, &wrong] {
        assert!(!r.stdout.contains("deploy-password") && !r.stderr.contains("deploy-password"));
    }
}

// ---------------------------------------------------------------------------------------------
// Consul
// ---------------------------------------------------------------------------------------------

/// `pykv export --format consul` writes what `consul kv export` writes and `consul kv import`
/// reads: a JSON array of {"key": string, "flags": unsigned number, "value": standard base64}
/// (Consul's `impexp.Entry`), live keys only, content types under `pykv/.meta/`.
#[test]
fn consul_export_is_what_consul_kv_import_reads() {
    let f = fill();
    let dir = f.data_dir.to_str().expect("utf-8");
    let out = pykv(&["export", "--format", "consul", "--data-dir", dir], &[]);
    assert_ok(&out);
    let entries: Vec<Value> = serde_json::from_str(&out.stdout).expect("a JSON array");
    let mut got = BTreeMap::new();
    for e in &entries {
        let obj = e.as_object().expect("an object");
        let mut fields: Vec<&str> = obj.keys().map(String::as_str).collect();
        fields.sort();
        assert_eq!(fields, ["flags", "key", "value"], "{e}");
        assert_eq!(e["flags"], 0);
        let value = e["value"].as_str().expect("value is a string");
        let bytes = pykv::base64::decode(value).expect("standard base64 with padding");
        got.insert(e["key"].as_str().expect("key").to_string(), bytes);
    }
    let mut want = BTreeMap::new();
    for k in &f.keys {
        want.insert(format!("pykv/{}/{}", k.project, k.key), k.value.clone());
        if let Some(ct) = k.content_type {
            want.insert(
                format!("pykv/.meta/{}/{}", k.project, k.key),
                ct.as_bytes().to_vec(),
            );
        }
    }
    assert_eq!(got, want);
    assert!(out
        .stdout
        .starts_with("[\n{\"key\":\"pykv/alpha/a/b/c\",\"flags\":0,\"value\":\"ZGVlcA==\"},\n"));
    assert!(out.stdout.ends_with("}\n]\n"));

    let out = pykv(
        &[
            "export",
            "--format",
            "consul",
            "--data-dir",
            dir,
            "--project",
            "beta",
            "--prefix",
            "apps/",
        ],
        &[],
    );
    assert_ok(&out);
    let entries: Vec<Value> = serde_json::from_str(&out.stdout).expect("a JSON array");
    let keys: Vec<&str> = entries.iter().filter_map(|e| e["key"].as_str()).collect();
    assert_eq!(keys, ["apps/beta/big", "apps/beta/k1"]);
}
