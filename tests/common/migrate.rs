//! The pykv side of the migration tests: a data directory filled through the real server (every
//! kind of value, TTLs, tokens), `pykv migrate etcd` and `pykv export --format consul` run as the
//! real binary, and what they must report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;

/// A migration of the small fixture, or a failing one, takes well under this.
pub const MIGRATE_LIMIT: Duration = Duration::from_secs(60);

pub const READ_SECRET: &str = "pykv_read_secret_0123456789abcdef";

pub const DEPLOY_SECRET: &str = "pykv_deploy_secret_0123456789abcdef";

pub const THERMO_SECRET: &str = "pykv_thermo_secret_0123456789abcdef";

/// One key as it should arrive.
pub struct Key {
    pub project: &'static str,
    pub key: String,
    pub value: Vec<u8>,
    pub content_type: Option<&'static str>,
    /// From `X-Expires-At`, for keys put with a TTL.
    pub expires_at: Option<u64>,
}

/// A stopped server's data directory and what it holds.
pub struct Filled {
    pub _dir: Arc<TempDir>,
    pub data_dir: PathBuf,
    pub keys: Vec<Key>,
    /// beta's token ids (an API project's are random).
    pub beta_tokens: Vec<(String, String)>,
}

pub fn pct_path(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Two projects: `alpha` (declared in config.json, so its tokens have fixed ids: a read token,
/// a write token, and a write token scoped to `sensors/`) with text, binary, unicode, slash and
/// space keys, content types, TTLs (two keys sharing one expiry second) and a key that has
/// expired by the time anyone migrates; `beta` (made through the API) with a 100 KiB binary value.
pub fn fill() -> Filled {
    let mut srv = Server::start(json!({
        "projects": {"alpha": {"tokens": [
            {"label": "ci", "access": "read", "secret": READ_SECRET},
            {"label": "deploy", "access": "write", "secret": DEPLOY_SECRET},
            {"label": "thermometer", "access": "write", "secret": THERMO_SECRET,
             "prefix": "sensors/"}
        ]}}
    }));
    create_project(&srv, "beta");
    let big: Vec<u8> = (0..100 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let plain: [(&str, &str, &[u8], Option<&str>); 7] = [
        ("alpha", "greeting", b"hello world", Some("text/plain")),
        (
            "alpha",
            "bin",
            &[0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, b'\n', b'\r'],
            None,
        ),
        (
            "alpha",
            "unicode/ключ/日本語",
            "значение ✓ 日本".as_bytes(),
            Some("text/plain; charset=utf-8"),
        ),
        ("alpha", "a/b/c", b"deep", None),
        ("alpha", "with space", b"spaced", None),
        ("beta", "k1", b"v1", None),
        ("beta", "big", &big, None),
    ];
    let mut keys = Vec::new();
    for (project, key, value, ct) in plain {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("Content-Type", c)).into_iter().collect();
        let path = format!("/v1/kv/{project}/{}", pct_path(key));
        let r = srv.req_h("PUT", &path, Some(ADMIN), &headers, value);
        assert_eq!(r.status, 201, "{}", r.text());
        keys.push(Key {
            project,
            key: key.to_string(),
            value: value.to_vec(),
            content_type: ct,
            expires_at: None,
        });
    }
    let r = srv.req_h(
        "PUT",
        "/v1/kv/alpha/sensors/t1?ttl=600",
        Some(ADMIN),
        &[("Content-Type", "application/json")],
        b"21.5",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let ops = json!({"ops": [
        {"op": "put", "key": "lease/a", "value": "A", "ttl": 3600},
        {"op": "put", "key": "lease/b", "value": "B", "ttl": 3600}
    ]});
    let r = srv.req(
        "POST",
        "/v1/kv/alpha",
        Some(ADMIN),
        ops.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for (key, value, ct) in [
        ("sensors/t1", &b"21.5"[..], Some("application/json")),
        ("lease/a", b"A", None),
        ("lease/b", b"B", None),
    ] {
        let r = srv.req("GET", &format!("/v1/kv/alpha/{key}"), Some(ADMIN), b"");
        let expires_at = r.header("x-expires-at").and_then(|t| t.parse().ok());
        assert!(expires_at.is_some(), "{key} has an expiry");
        keys.push(Key {
            project: "alpha",
            key: key.to_string(),
            value: value.to_vec(),
            content_type: ct,
            expires_at,
        });
    }
    let r = srv.req("GET", "/v1/projects/beta/tokens", Some(ADMIN), b"");
    let beta_tokens = r.json()["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| {
            let s = |f: &str| t[f].as_str().expect("field").to_string();
            (s("id"), s("access"))
        })
        .collect();
    // Last, a key that expires in a second. A sync-mode PUT is answered once its snapshot is
    // durable; SIGKILL then keeps the server from saving the key's removal, as SIGTERM would
    // after the expiry sweep, so the data directory holds an expired key.
    let r = srv.req("PUT", "/v1/kv/alpha/soon?ttl=1", Some(ADMIN), b"gone");
    assert_eq!(r.status, 201, "{}", r.text());
    let soon = srv.req("GET", "/v1/kv/alpha/soon", Some(ADMIN), b"");
    let soon_expires: u64 = soon
        .header("x-expires-at")
        .and_then(|t| t.parse().ok())
        .expect("soon expires");
    srv.kill9();
    assert!(
        wait_until(Duration::from_secs(5), || now_secs() >= soon_expires),
        "the clock did not reach {soon_expires}"
    );
    let data_dir = srv.data_dir();
    let dir = srv.dir.clone();
    Filled {
        _dir: dir,
        data_dir,
        keys,
        beta_tokens,
    }
}

/// Fill a project with `n` keys `item/00000`… through the import route (one request).
pub fn fill_many(project: &str, n: usize) -> (Arc<TempDir>, PathBuf) {
    let mut srv = Server::start(json!({}));
    create_project(&srv, project);
    let mut body = String::new();
    for i in 0..n {
        body.push_str(&format!(
            "{{\"key\":\"item/{i:05}\",\"value\":\"value {i} of {n}: {}\"}}\n",
            "x".repeat(i % 40)
        ));
    }
    let r = srv.req(
        "POST",
        &format!("/v1/projects/{project}/import"),
        Some(ADMIN),
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["imported"], n);
    srv.stop();
    (srv.dir.clone(), srv.data_dir())
}

pub fn many_value(i: usize, n: usize) -> Vec<u8> {
    format!("value {i} of {n}: {}", "x".repeat(i % 40)).into_bytes()
}

pub fn pykv(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_within(&mut cmd, MIGRATE_LIMIT)
}

pub fn migrate(data_dir: &Path, endpoints: &str, extra: &[&str]) -> Run {
    let dir = data_dir.to_str().expect("utf-8 path");
    let mut args = vec![
        "migrate",
        "etcd",
        "--data-dir",
        dir,
        "--endpoints",
        endpoints,
    ];
    args.extend_from_slice(extra);
    pykv(&args, &[])
}

/// stdout without its last line, which must be the run's duration.
pub fn report(out: &Run) -> String {
    let body = out.stdout.strip_suffix('\n').unwrap_or(&out.stdout);
    let (report, last) = body.rsplit_once('\n').expect("more than one line");
    assert!(
        last.starts_with("took ") && last.ends_with(" s"),
        "last line: {last:?}"
    );
    format!("{report}\n")
}

pub fn assert_ok(out: &Run) {
    assert_eq!(
        out.code,
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(out.stderr, "");
}

/// Exit 2 and one line on stderr; returns it.
pub fn assert_fails_with_one_line(out: &Run) -> String {
    assert_eq!(
        out.code,
        Some(2),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {:?}", out.stderr);
    lines[0].to_string()
}

pub fn first_run_report(f: &Filled, endpoints: &str) -> String {
    format!(
        "migrating 2 projects from {} to etcd at {endpoints} under \"/pykv/\"\n\
         project alpha: 8 keys (3 with a content type, 3 with a TTL, 1 expired and skipped): \
         8 written, 0 already in etcd\n\
         project beta: 2 keys (0 with a content type, 0 with a TTL): 2 written, 0 already in etcd\n\
         verified alpha: etcd holds 8 keys under \"/pykv/alpha/\" and 3 under \
         \"/pykv/.meta/alpha/\", as pykv has\n\
         verified beta: etcd holds 2 keys under \"/pykv/beta/\" and 0 under \
         \"/pykv/.meta/beta/\", as pykv has\n\
         done: 10 keys written, 0 already in etcd, 2 leases granted\n",
        f.data_dir.display()
    )
}

pub fn lease_of(expires_at: u64) -> u64 {
    (0x7079_6b76u64 << 32) | expires_at
}

/// What etcd must hold for the fixture under `/pykv/`: key → (value, lease).
pub fn expected(f: &Filled) -> BTreeMap<Vec<u8>, (Vec<u8>, u64)> {
    let mut want = BTreeMap::new();
    for k in &f.keys {
        let lease = k.expires_at.map_or(0, lease_of);
        let name = format!("/pykv/{}/{}", k.project, k.key);
        want.insert(name.into_bytes(), (k.value.clone(), lease));
        if let Some(ct) = k.content_type {
            let meta = format!("/pykv/.meta/{}/{}", k.project, k.key);
            want.insert(meta.into_bytes(), (ct.as_bytes().to_vec(), lease));
        }
    }
    want
}
