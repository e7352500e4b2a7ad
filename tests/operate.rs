//! The issue-6 operating features over real HTTP: scoped tokens, Basic auth and `X-API-Key`,
//! quotas, CORS, the PyKV-compatible routes (driven by a Python client and by curl, written the
//! way their users write them), metrics, export/import and the offline `pykv export`.

mod common;
use common::*;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Any child process (curl, python3, `pykv export`) must finish within this; a hung one is killed
/// and fails its test.
const RUN_LIMIT: Duration = Duration::from_secs(20);
/// How long a server given a bad config may take to exit before we call it started.
const EXIT_LIMIT: Duration = Duration::from_secs(5);

const ORIGIN: &str = "https://app.example";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, If-Match, If-None-Match, X-API-Key";
const EXPOSE_HEADERS: &str = "ETag, X-Expires-At, X-Project-Version, X-Next-After";

/// Tokens of the config-declared projects.
const CFG_WRITE: &str = "cfg-write-secret-0123456789";
const CFG_SCOPED: &str = "cfg-scoped-secret-0123456789";
const LEGACY_WRITE: &str = "legacy-write-secret-0123456789";
const LEGACY_READ: &str = "legacy-read-secret-0123456789";

/// The Python PyKV user's client: urllib only, `json.dumps` of a dict, the `X-API-Key` header.
const PYKV_CLIENT_PY: &str = r#"
import json, os, urllib.error, urllib.request

BASE = os.environ["PYKV_URL"]
API_KEY = os.environ["PYKV_API_KEY"]


def call(method, path, payload=None):
    data = None if payload is None else json.dumps(payload).encode("utf-8")
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("X-API-Key", API_KEY)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read().decode("utf-8"))


user = {"name": "Ada", "langs": ["python", "rust"], "age": 36, "admin": False, "note": None}
got = call("POST", "/put", {"key": "users/ada", "value": user})
assert got == (200, {"key": "users/ada", "value": user}), got
got = call("GET", "/get/users/ada")
assert got == (200, {"key": "users/ada", "value": user}), got

for value in [42, -7, 2.5, "text", "", False, None, [1, "two", {"x": []}]]:
    got = call("POST", "/put", {"key": "scalar", "value": value})
    assert got == (200, {"key": "scalar", "value": value}), got
    got = call("GET", "/get/scalar")
    assert got == (200, {"key": "scalar", "value": value}), got
    assert type(got[1]["value"]) is type(value), got

got = call("DELETE", "/delete/users/ada")
assert got == (200, {"key": "users/ada", "deleted": True}), got
status, body = call("GET", "/get/users/ada")
assert (status, body["error"]) == (404, "key_not_found"), (status, body)
status, body = call("DELETE", "/delete/users/ada")
assert (status, body["error"]) == (404, "key_not_found"), (status, body)
print("OK")
"#;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A server started with `extra` config fields and one empty API project `p`; returns the server
/// and p's (write, read) secrets.
fn start_p(extra: Value) -> (Server, String, String) {
    let srv = Server::start(extra);
    let (write, read) = create_project(&srv, "p");
    (srv, write, read)
}

/// A server whose PyKV-compatible routes use the config project `legacy`, with `extra` fields
/// merged into that project's config.
fn start_compat(extra: Value) -> Server {
    let mut legacy = json!({ "tokens": [
        { "label": "app", "access": "write", "secret": LEGACY_WRITE },
        { "label": "viewer", "access": "read", "secret": LEGACY_READ },
    ] });
    for (k, v) in extra.as_object().unwrap() {
        legacy[k] = v.clone();
    }
    Server::start(json!({ "compat_project": "legacy", "projects": { "legacy": legacy } }))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn url(srv: &Server) -> String {
    format!("http://{}", srv.addr)
}

/// Standard base64 with padding, as HTTP Basic and the export's `base64` field use.
fn b64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An `Authorization: Basic` value for `user:password`.
fn basic(credentials: &str) -> String {
    format!("Basic {}", b64(credentials.as_bytes()))
}

fn put(srv: &Server, token: &str, path: &str, value: &[u8]) -> Resp {
    srv.req("PUT", path, Some(token), value)
}

/// PUT as admin that must succeed (201 or 200); returns the new version.
fn put_ok(srv: &Server, path: &str, value: &[u8]) -> u64 {
    put_typed_ok(srv, path, None, value)
}

fn put_typed_ok(srv: &Server, path: &str, content_type: Option<&str>, value: &[u8]) -> u64 {
    let headers: Vec<(&str, &str)> = content_type
        .map(|ct| vec![("Content-Type", ct)])
        .unwrap_or_default();
    let r = srv.req_h("PUT", path, Some(ADMIN), &headers, value);
    assert!(
        r.status == 201 || r.status == 200,
        "PUT {path}: {} {}",
        r.status,
        r.text()
    );
    r.json()["version"].as_u64().expect("version")
}

fn get(srv: &Server, token: &str, path: &str) -> Resp {
    srv.req("GET", path, Some(token), b"")
}

fn assert_json(r: &Resp, status: u16) {
    assert_eq!(r.status, status, "body: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
}

/// A 403 `forbidden` whose message names the token's prefix.
fn assert_forbidden_naming(r: &Resp, prefix: &str) {
    r.assert_error(403, "forbidden");
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(prefix),
        "message does not name {prefix:?}: {message}"
    );
}

/// An error with exactly `error`, `message` and `index`.
fn assert_indexed_error(r: &Resp, status: u16, code: &str, index: u64) {
    assert_json(r, status);
    let j = r.json();
    assert_eq!(j["error"], code, "{j}");
    assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
    assert_eq!(j["index"], index, "{j}");
    assert_eq!(j.as_object().unwrap().len(), 3, "extra fields: {j}");
}

/// A 507 `quota_exceeded` whose message names the quota and its value.
fn assert_quota(r: &Resp, quota: &str, limit: u64) {
    r.assert_error(507, "quota_exceeded");
    assert_quota_message(r, quota, limit);
}

fn assert_quota_message(r: &Resp, quota: &str, limit: u64) {
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(quota) && message.contains(&limit.to_string()),
        "message does not name {quota} = {limit}: {message}"
    );
}

/// The `WWW-Authenticate` headers, in order.
fn challenges(r: &Resp) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(k, _)| k == "www-authenticate")
        .map(|(_, v)| v.as_str())
        .collect()
}

/// `GET /v1/projects/{name}` as admin, which must answer 200.
fn project(srv: &Server, name: &str) -> Value {
    let r = get(srv, ADMIN, &format!("/v1/projects/{name}"));
    assert_json(&r, 200);
    r.json()
}

fn patch(srv: &Server, name: &str, body: Value) -> Resp {
    srv.req(
        "PATCH",
        &format!("/v1/projects/{name}"),
        Some(ADMIN),
        &serde_json::to_vec(&body).unwrap(),
    )
}

/// `GET /v1/kv/p?{query}` with `token`, which must answer 200 JSON.
fn list(srv: &Server, token: &str, query: &str) -> Value {
    let r = get(srv, token, &format!("/v1/kv/p?{query}"));
    assert_json(&r, 200);
    r.json()
}

/// Every key of `project` with its value, as the admin's `values=true` listing shows them.
fn all_keys(srv: &Server, project: &str) -> Value {
    let r = get(
        srv,
        ADMIN,
        &format!("/v1/kv/{project}?values=true&limit=1000"),
    );
    assert_json(&r, 200);
    r.json()
}

fn batch(srv: &Server, token: &str, body: Value) -> Resp {
    srv.req(
        "POST",
        "/v1/kv/p",
        Some(token),
        &serde_json::to_vec(&body).unwrap(),
    )
}

/// Create a token on project `p`; returns its secret.
fn scoped_token(srv: &Server, access: &str, prefix: &str) -> String {
    let body = json!({ "label": "scoped", "access": access, "prefix": prefix });
    let r = srv.req(
        "POST",
        "/v1/projects/p/tokens",
        Some(ADMIN),
        &serde_json::to_vec(&body).unwrap(),
    );
    assert_json(&r, 201);
    r.json()["secret"].as_str().unwrap().to_string()
}

/// Project `p` with `sensors/t1`, `sensors/t2`, `other/x` and `sx`, and a write token scoped to
/// `sensors/`; returns the server and the scoped secret.
fn start_scoped() -> (Server, String) {
    let (srv, _, _) = start_p(json!({}));
    for (k, v) in [
        ("sensors/t1", "20"),
        ("sensors/t2", "21"),
        ("other/x", "1"),
        ("sx", "s"),
    ] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), v.as_bytes());
    }
    let token = scoped_token(&srv, "write", "sensors/");
    (srv, token)
}

fn import(srv: &Server, token: &str, project: &str, query: &str, body: &str) -> Resp {
    srv.req(
        "POST",
        &format!("/v1/projects/{project}/import{query}"),
        Some(token),
        body.as_bytes(),
    )
}

/// Read one line ending in CRLF (without it).
fn read_crlf_line(s: &mut impl Read) -> Vec<u8> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        let n = s.read(&mut byte).expect("read chunk framing");
        assert_eq!(n, 1, "eof inside chunk framing after {line:?}");
        line.push(byte[0]);
        assert!(line.len() < 4096, "chunk framing line too long");
    }
    line.truncate(line.len() - 2);
    line
}

/// A `Transfer-Encoding: chunked` body, decoded strictly: hex sizes, CRLF after every chunk,
/// the last chunk `0` and no trailers.
fn read_chunked_body(s: &mut impl Read) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line = read_crlf_line(s);
        let text = String::from_utf8(line).expect("chunk size is ASCII");
        let size = usize::from_str_radix(&text, 16)
            .unwrap_or_else(|_| panic!("chunk size is not hex: {text:?}"));
        if size == 0 {
            assert_eq!(read_crlf_line(s), b"", "no trailers after the last chunk");
            return body;
        }
        let mut chunk = vec![0u8; size];
        s.read_exact(&mut chunk).expect("chunk data");
        body.extend_from_slice(&chunk);
        assert_eq!(read_crlf_line(s), b"", "CRLF after chunk data");
    }
}

/// One response from the stream, with a chunked or a Content-Length body.
fn read_any_response(s: &mut TcpStream) -> Resp {
    let mut r = read_response(s, true).expect("response head");
    if r.header("transfer-encoding") == Some("chunked") {
        assert_eq!(r.header("content-length"), None, "both framings: {r:?}");
        r.body = read_chunked_body(s);
    } else if let Some(len) = r.header("content-length") {
        let mut body = vec![0u8; len.parse().expect("content-length")];
        s.read_exact(&mut body).expect("body");
        r.body = body;
    }
    r
}

/// `GET /v1/projects/{project}/export` with `token`, read on a keep-alive connection.
fn export_on(s: &mut TcpStream, project: &str, token: &str) -> Resp {
    let path = format!("/v1/projects/{project}/export");
    s.write_all(&request_bytes("GET", &path, Some(token), &[], b""))
        .unwrap();
    read_any_response(s)
}

fn export(srv: &Server, project: &str, token: &str) -> Resp {
    export_on(&mut srv.connect(), project, token)
}

/// The export of `project` as admin, which must answer 200; its body as text.
fn export_text(srv: &Server, project: &str) -> String {
    let r = export(srv, project, ADMIN);
    assert_eq!(r.status, 200, "{}", r.text());
    String::from_utf8(r.body).expect("an export is UTF-8")
}

/// Project `p` holding text, binary, TTL, JSON and multi-line values; returns the exact lines
/// its export must have.
fn fill_known(srv: &Server) -> Vec<String> {
    let va = put_typed_ok(srv, "/v1/kv/p/a", Some("text/plain"), b"hello");
    let vb = put_ok(srv, "/v1/kv/p/b", &[0, 1, 2, 255]);
    let vc = put_typed_ok(
        srv,
        "/v1/kv/p/c?ttl=3600",
        Some("application/json"),
        br#"{"n":1}"#,
    );
    let vd = put_typed_ok(srv, "/v1/kv/p/d/e", Some("text/plain"), b"line1\nline2");
    let r = get(srv, ADMIN, "/v1/kv/p/c");
    assert_eq!(r.status, 200);
    let expires: u64 = r
        .header("x-expires-at")
        .expect("X-Expires-At")
        .parse()
        .unwrap();
    assert!(expires >= now_secs() + 3590, "{expires}");
    vec![
        format!(
            r#"{{"key":"a","value":"hello","content_type":"text/plain","version":{va},"expires_at":null}}"#
        ),
        format!(
            r#"{{"key":"b","base64":"AAEC/w==","content_type":null,"version":{vb},"expires_at":null}}"#
        ),
        format!(
            r#"{{"key":"c","value":"{{\"n\":1}}","content_type":"application/json","version":{vc},"expires_at":{expires}}}"#
        ),
        format!(
            r#"{{"key":"d/e","value":"line1\nline2","content_type":"text/plain","version":{vd},"expires_at":null}}"#
        ),
    ]
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// Export lines without their `version` (which an import renumbers).
fn without_versions(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("an export line is JSON");
            v.as_object_mut().unwrap().remove("version");
            v
        })
        .collect()
}

/// `GET /metrics` as admin, which must answer 200.
fn metrics(srv: &Server) -> String {
    let r = get(srv, ADMIN, "/metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

/// The value of one series (`name{labels}` exactly as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?.strip_prefix(' ')?;
        Some(rest.parse().expect("a sample value is a number"))
    })
}

fn requests(text: &str, route: &str, status: u16) -> f64 {
    sample(
        text,
        &format!("pykv_requests_total{{route=\"{route}\",status=\"{status}\"}}"),
    )
    .unwrap_or(0.0)
}

/// A histogram's `(le, count)` buckets in order, its `_sum` and its `_count`.
fn histogram(text: &str, name: &str) -> (Vec<(String, f64)>, f64, f64) {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, value) = rest.split_once("\"} ")?;
            Some((le.to_string(), value.parse().expect("bucket count")))
        })
        .collect();
    let sum = sample(text, &format!("{name}_sum")).expect("_sum");
    let count = sample(text, &format!("{name}_count")).expect("_count");
    (buckets, sum, count)
}

fn assert_histogram_is_cumulative(text: &str, name: &str) {
    let (buckets, sum, count) = histogram(text, name);
    assert!(buckets.len() >= 2, "{name}: buckets {buckets:?}");
    let (last_le, last) = buckets.last().unwrap();
    assert_eq!(last_le, "+Inf", "{name}: the last bucket is +Inf");
    assert_eq!(*last, count, "{name}: +Inf equals _count");
    for w in buckets.windows(2) {
        assert!(w[0].1 <= w[1].1, "{name}: not cumulative: {buckets:?}");
    }
    let bounds: Vec<f64> = buckets[..buckets.len() - 1]
        .iter()
        .map(|(le, _)| le.parse().expect("le is a number"))
        .collect();
    for w in bounds.windows(2) {
        assert!(w[0] < w[1], "{name}: bounds not increasing: {bounds:?}");
    }
    assert!(sum >= 0.0, "{name}: _sum {sum}");
}

fn run(cmd: &mut Command) -> Run {
    let r = run_within(cmd, RUN_LIMIT);
    assert!(!r.timed_out, "{cmd:?} did not finish within {RUN_LIMIT:?}");
    r
}

/// curl as a shell user runs it: silent, errors shown, bounded.
fn curl(args: &[&str]) -> Run {
    let r = run(Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args));
    assert_eq!(r.code, Some(0), "curl {args:?}: {}", r.stderr);
    r
}

/// `pykv export` with these arguments.
fn pykv_export(args: &[&str]) -> Run {
    run(Command::new(bin())
        .arg("export")
        .args(args)
        .env_remove("PYKV_CONFIG")
        .env_remove("PYKV_ADMIN_TOKEN"))
}

/// Start `pykv --config` on `cfg` (in a fresh directory) and expect it to refuse: returns
/// what it left. A server that starts instead is killed after `EXIT_LIMIT`.
fn serve_bad_config(cfg: Value) -> Run {
    let dir = TempDir::new();
    let mut cfg = common::config(cfg);
    cfg["listen"] = json!("127.0.0.1:0");
    cfg["data_dir"] = json!(dir.path().join("data").to_str().unwrap());
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
fn assert_config_error(r: &Run, field: &str) {
    assert!(!r.timed_out, "the server started: {}", r.stderr);
    assert_eq!(r.code, Some(2), "stderr: {}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "stderr: {}", r.stderr);
    assert!(r.stderr.starts_with("pykv: "), "stderr: {}", r.stderr);
    assert!(r.stderr.contains(field), "stderr: {}", r.stderr);
}

fn cors_server() -> Server {
    let (srv, _, _) = start_p(json!({ "cors_origins": [ORIGIN, "http://localhost:8080"] }));
    srv
}

fn assert_no_cors_grant(r: &Resp) {
    for (k, v) in &r.headers {
        assert!(
            !k.starts_with("access-control-"),
            "unexpected {k}: {v} in {:?}",
            r.headers
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Scoped tokens
// ---------------------------------------------------------------------------------------------

#[test]
fn token_created_with_a_prefix_shows_it_in_the_answer_and_the_listing() {
    let (srv, _, _) = start_p(json!({}));
    let r = srv.req(
        "POST",
        "/v1/projects/p/tokens",
        Some(ADMIN),
        br#"{"label":"probe","access":"read","prefix":"sensors/"}"#,
    );
    assert_json(&r, 201);
    let created = r.json();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["label"], "probe");
    assert_eq!(created["access"], "read");
    assert_eq!(created["source"], "api");
    assert_eq!(created["prefix"], "sensors/");
    assert!(created["secret"].as_str().is_some_and(|s| s.len() > 16));
    assert_eq!(created.as_object().unwrap().len(), 6, "{created}");

    let r = get(&srv, ADMIN, "/v1/projects/p/tokens");
    assert_json(&r, 200);
    let tokens = r.json()["tokens"].as_array().unwrap().clone();
    let scoped = tokens.iter().find(|t| t["id"] == id.as_str()).unwrap();
    assert_eq!(
        *scoped,
        json!({ "id": id, "label": "probe", "access": "read", "source": "api", "prefix": "sensors/" })
    );
}

#[test]
fn tokens_without_a_prefix_show_no_prefix_field() {
    let (srv, _, _) = start_p(json!({}));
    let r = get(&srv, ADMIN, "/v1/projects/p/tokens");
    assert_json(&r, 200);
    for t in r.json()["tokens"].as_array().unwrap() {
        assert_eq!(t.get("prefix"), None, "{t}");
        assert_eq!(t.as_object().unwrap().len(), 4, "{t}");
    }
    let r = srv.req(
        "POST",
        "/v1/projects/p/tokens",
        Some(ADMIN),
        br#"{"label":"plain","access":"write"}"#,
    );
    assert_json(&r, 201);
    assert_eq!(r.json().get("prefix"), None, "{}", r.text());
}

#[test]
fn empty_or_too_long_token_prefix_is_400_invalid_prefix() {
    let (srv, _, _) = start_p(json!({ "limits": { "max_key_bytes": 8 } }));
    for prefix in ["", "123456789"] {
        let body = json!({ "label": "x", "access": "read", "prefix": prefix });
        let r = srv.req(
            "POST",
            "/v1/projects/p/tokens",
            Some(ADMIN),
            &serde_json::to_vec(&body).unwrap(),
        );
        r.assert_error(400, "invalid_prefix");
    }
    let r = srv.req(
        "POST",
        "/v1/projects/p/tokens",
        Some(ADMIN),
        br#"{"label":"x","access":"read","prefix":"12345678"}"#,
    );
    assert_json(&r, 201);
}

#[test]
fn scoped_token_gets_a_key_inside_its_prefix() {
    let (srv, token) = start_scoped();
    let r = get(&srv, &token, "/v1/kv/p/sensors/t1");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"20");
}

#[test]
fn scoped_token_puts_a_key_inside_its_prefix() {
    let (srv, token) = start_scoped();
    let r = put(&srv, &token, "/v1/kv/p/sensors/t3", b"22");
    assert_json(&r, 201);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/sensors/t3").body, b"22");
}

#[test]
fn scoped_token_deletes_a_key_inside_its_prefix() {
    let (srv, token) = start_scoped();
    let r = srv.req("DELETE", "/v1/kv/p/sensors/t1", Some(&token), b"");
    assert_eq!(r.status, 204);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/sensors/t1").status, 404);
}

#[test]
fn scoped_token_increments_a_key_inside_its_prefix() {
    let (srv, token) = start_scoped();
    let r = srv.req("POST", "/v1/kv/p/sensors/t1?incr=5", Some(&token), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"25");
}

#[test]
fn scoped_token_get_outside_its_prefix_is_403_naming_the_prefix() {
    let (srv, token) = start_scoped();
    assert_forbidden_naming(&get(&srv, &token, "/v1/kv/p/other/x"), "sensors/");
}

#[test]
fn scoped_token_get_of_an_absent_key_outside_its_prefix_is_403_not_404() {
    let (srv, token) = start_scoped();
    assert_forbidden_naming(&get(&srv, &token, "/v1/kv/p/nothing/here"), "sensors/");
}

#[test]
fn scoped_token_head_outside_its_prefix_is_403() {
    let (srv, token) = start_scoped();
    let r = srv.req("HEAD", "/v1/kv/p/other/x", Some(&token), b"");
    assert_eq!(r.status, 403);
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[test]
fn scoped_token_put_outside_its_prefix_is_403_and_writes_nothing() {
    let (srv, token) = start_scoped();
    let before = project(&srv, "p")["version"].clone();
    assert_forbidden_naming(&put(&srv, &token, "/v1/kv/p/other/x", b"9"), "sensors/");
    // A key that shares the prefix's first letters but not the whole prefix is outside too.
    assert_forbidden_naming(&put(&srv, &token, "/v1/kv/p/sensors", b"9"), "sensors/");
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/other/x").body, b"1");
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/sensors").status, 404);
    assert_eq!(project(&srv, "p")["version"], before);
}

#[test]
fn scoped_token_delete_outside_its_prefix_is_403_and_keeps_the_key() {
    let (srv, token) = start_scoped();
    let r = srv.req("DELETE", "/v1/kv/p/other/x", Some(&token), b"");
    assert_forbidden_naming(&r, "sensors/");
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/other/x").body, b"1");
}

#[test]
fn scoped_token_incr_outside_its_prefix_is_403_and_keeps_the_value() {
    let (srv, token) = start_scoped();
    let r = srv.req("POST", "/v1/kv/p/other/x?incr=1", Some(&token), b"");
    assert_forbidden_naming(&r, "sensors/");
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/other/x").body, b"1");
}

#[test]
fn scoped_read_token_cannot_write_inside_its_prefix() {
    let (srv, _) = start_scoped();
    let token = scoped_token(&srv, "read", "sensors/");
    assert_eq!(get(&srv, &token, "/v1/kv/p/sensors/t1").body, b"20");
    put(&srv, &token, "/v1/kv/p/sensors/t1", b"0").assert_error(403, "forbidden");
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/sensors/t1").body, b"20");
}

#[test]
fn scoped_token_listing_without_a_prefix_lists_only_its_prefix() {
    let (srv, token) = start_scoped();
    assert_eq!(
        list(&srv, &token, ""),
        json!({ "keys": ["sensors/t1", "sensors/t2"], "next": null })
    );
}

#[test]
fn scoped_token_listing_with_a_narrower_prefix_uses_the_requested_one() {
    let (srv, token) = start_scoped();
    assert_eq!(
        list(&srv, &token, "prefix=sensors/t2"),
        json!({ "keys": ["sensors/t2"], "next": null })
    );
}

#[test]
fn scoped_token_listing_with_a_wider_prefix_is_narrowed_to_the_token_prefix() {
    let (srv, token) = start_scoped();
    assert_eq!(
        list(&srv, &token, "prefix=s"),
        json!({ "keys": ["sensors/t1", "sensors/t2"], "next": null })
    );
}

#[test]
fn scoped_token_listing_with_a_disjoint_prefix_is_empty() {
    let (srv, token) = start_scoped();
    let r = get(&srv, &token, "/v1/kv/p?prefix=other/");
    assert_json(&r, 200);
    assert_eq!(r.body, br#"{"keys":[],"next":null}"#);
}

#[test]
fn scoped_token_listing_pages_stay_inside_the_prefix() {
    let (srv, token) = start_scoped();
    assert_eq!(
        list(&srv, &token, "limit=1"),
        json!({ "keys": ["sensors/t1"], "next": "sensors/t1" })
    );
    assert_eq!(
        list(&srv, &token, "limit=1&after=sensors/t1"),
        json!({ "keys": ["sensors/t2"], "next": null })
    );
}

#[test]
fn scoped_token_batch_with_an_op_outside_its_prefix_is_403_with_its_index_and_applies_nothing() {
    let (srv, token) = start_scoped();
    let before = project(&srv, "p")["version"].clone();
    let r = batch(
        &srv,
        &token,
        json!({ "ops": [
            { "op": "put", "key": "sensors/new", "value": "1" },
            { "op": "delete", "key": "sensors/t1" },
            { "op": "put", "key": "other/y", "value": "2" },
        ] }),
    );
    assert_indexed_error(&r, 403, "forbidden", 2);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/sensors/new").status, 404);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/sensors/t1").body, b"20");
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/other/y").status, 404);
    assert_eq!(project(&srv, "p")["version"], before);
}

#[test]
fn scoped_token_batch_check_outside_its_prefix_is_403_with_its_index() {
    let (srv, token) = start_scoped();
    let r = batch(
        &srv,
        &token,
        json!({ "ops": [
            { "op": "check", "key": "other/x" },
            { "op": "put", "key": "sensors/new", "value": "1" },
        ] }),
    );
    assert_indexed_error(&r, 403, "forbidden", 0);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/sensors/new").status, 404);
}

#[test]
fn scoped_token_batch_inside_its_prefix_is_applied() {
    let (srv, token) = start_scoped();
    let r = batch(
        &srv,
        &token,
        json!({ "ops": [
            { "op": "put", "key": "sensors/new", "value": "1" },
            { "op": "delete", "key": "sensors/t1" },
        ] }),
    );
    assert_json(&r, 200);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/sensors/new").body, b"1");
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/sensors/t1").status, 404);
}

#[test]
fn scoped_token_export_is_403() {
    let (srv, token) = start_scoped();
    export(&srv, "p", &token).assert_error(403, "forbidden");
}

#[test]
fn scoped_token_import_is_403_and_imports_nothing() {
    let (srv, token) = start_scoped();
    let line =
        r#"{"key":"sensors/t9","value":"9","content_type":null,"version":1,"expires_at":null}"#;
    import(&srv, &token, "p", "", line).assert_error(403, "forbidden");
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/sensors/t9").status, 404);
}

#[test]
fn scoped_token_watch_on_a_key_outside_its_prefix_is_403_at_once() {
    let (srv, token) = start_scoped();
    let start = Instant::now();
    let r = get(&srv, &token, "/v1/kv/p/other/x?watch=3");
    assert_forbidden_naming(&r, "sensors/");
    assert!(start.elapsed() < Duration::from_secs(2), "the watch parked");
}

#[test]
fn scoped_token_watch_on_a_key_inside_its_prefix_wakes_on_a_change() {
    let (srv, token) = start_scoped();
    let mut s = srv.connect();
    s.write_all(&request_bytes(
        "GET",
        "/v1/kv/p/sensors/t1?watch=5",
        Some(&token),
        &[],
        b"",
    ))
    .unwrap();
    sleep(Duration::from_millis(300));
    put_ok(&srv, "/v1/kv/p/sensors/t1", b"30");
    let r = read_response(&mut s, false).expect("watch answer");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"30");
}

#[test]
fn scoped_token_listing_watch_wakes_only_for_keys_under_its_prefix() {
    let (srv, token) = start_scoped();
    let mut s = srv.connect();
    s.write_all(&request_bytes(
        "GET",
        "/v1/kv/p?watch=5",
        Some(&token),
        &[],
        b"",
    ))
    .unwrap();
    sleep(Duration::from_millis(300));
    put_ok(&srv, "/v1/kv/p/other/x", b"2");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = s.peek(&mut byte);
    assert!(
        early.is_err(),
        "the watch woke for a key outside the token's prefix"
    );
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    put_ok(&srv, "/v1/kv/p/sensors/t3", b"22");
    let r = read_response(&mut s, false).expect("watch answer");
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({ "keys": ["sensors/t1", "sensors/t2", "sensors/t3"], "next": null })
    );
}

#[test]
fn config_token_with_a_prefix_is_scoped() {
    let srv = Server::start(json!({ "projects": { "cfg": { "tokens": [
        { "label": "ci", "access": "write", "secret": CFG_WRITE },
        { "label": "probe", "access": "write", "secret": CFG_SCOPED, "prefix": "sensors/" },
    ] } } }));
    put_ok(&srv, "/v1/kv/cfg/other", b"o");
    assert_eq!(
        put(&srv, CFG_SCOPED, "/v1/kv/cfg/sensors/a", b"1").status,
        201
    );
    assert_forbidden_naming(&get(&srv, CFG_SCOPED, "/v1/kv/cfg/other"), "sensors/");
    assert_eq!(get(&srv, CFG_WRITE, "/v1/kv/cfg/other").body, b"o");

    let r = get(&srv, ADMIN, "/v1/projects/cfg/tokens");
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({ "tokens": [
            { "id": "cfg-1", "label": "ci", "access": "write", "source": "config" },
            { "id": "cfg-2", "label": "probe", "access": "write", "source": "config",
              "prefix": "sensors/" },
        ] })
    );
}

#[test]
fn config_token_with_an_empty_prefix_is_a_config_error() {
    let r = serve_bad_config(json!({ "projects": { "cfg": { "tokens": [
        { "label": "probe", "access": "write", "secret": CFG_SCOPED, "prefix": "" },
    ] } } }));
    assert_config_error(&r, "prefix");
}

// ---------------------------------------------------------------------------------------------
// Credentials: Basic auth, X-API-Key, 401 challenges
// ---------------------------------------------------------------------------------------------

#[test]
fn basic_auth_with_an_empty_user_and_the_token_as_password_works() {
    let (srv, write, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let auth = basic(&format!(":{write}"));
    let r = srv.req_h("GET", "/v1/kv/p/k", None, &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"v");
}

#[test]
fn basic_auth_with_the_token_as_user_and_an_empty_password_works() {
    let (srv, write, _) = start_p(json!({}));
    let auth = basic(&format!("{write}:"));
    let r = srv.req_h("PUT", "/v1/kv/p/k", None, &[("Authorization", &auth)], b"v");
    assert_json(&r, 201);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/k").body, b"v");
}

#[test]
fn basic_auth_with_any_user_and_the_token_as_password_works() {
    let (srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let auth = basic(&format!("pi:{read}"));
    let r = srv.req_h("GET", "/v1/kv/p/k", None, &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"v");
}

#[test]
fn basic_auth_with_a_wrong_password_is_401() {
    let (srv, write, _) = start_p(json!({}));
    for creds in [
        "pi:wrong-token-0123456789".to_string(),
        format!("{write}:wrong-token-0123456789"),
        format!(":{write}x"),
    ] {
        let auth = basic(&creds);
        let r = srv.req_h("GET", "/v1/kv/p/k", None, &[("Authorization", &auth)], b"");
        r.assert_error(401, "unauthorized");
    }
}

#[test]
fn basic_auth_with_the_admin_token_reaches_admin_routes() {
    let (srv, _, _) = start_p(json!({}));
    let auth = basic(&format!(":{ADMIN}"));
    let r = srv.req_h(
        "GET",
        "/v1/projects/p",
        None,
        &[("Authorization", &auth)],
        b"",
    );
    assert_json(&r, 200);
    assert_eq!(r.json()["name"], "p");
}

#[test]
fn x_api_key_header_authenticates() {
    let (srv, write, _) = start_p(json!({}));
    let r = srv.req_h("PUT", "/v1/kv/p/k", None, &[("X-API-Key", &write)], b"v");
    assert_json(&r, 201);
    let r = srv.req_h("GET", "/v1/kv/p/k", None, &[("X-API-Key", &write)], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"v");
}

#[test]
fn x_api_key_read_token_cannot_write() {
    let (srv, _, read) = start_p(json!({}));
    let r = srv.req_h("PUT", "/v1/kv/p/k", None, &[("X-API-Key", &read)], b"v");
    r.assert_error(403, "forbidden");
}

#[test]
fn x_api_key_is_ignored_when_an_authorization_header_is_present() {
    let (srv, write, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let r = srv.req_h(
        "GET",
        "/v1/kv/p/k",
        Some("not-a-valid-token-0123456789"),
        &[("X-API-Key", &write)],
        b"",
    );
    r.assert_error(401, "unauthorized");
}

#[test]
fn every_401_carries_a_bearer_then_a_basic_challenge() {
    let (srv, _, _) = start_p(json!({}));
    let wrong = "not-a-valid-token-0123456789";
    let basic_wrong = basic(&format!(":{wrong}"));
    let bearer_wrong = format!("Bearer {wrong}");
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("Authorization", bearer_wrong.as_str())],
        vec![("Authorization", basic_wrong.as_str())],
        vec![("Authorization", "Basic !!!")],
        vec![("X-API-Key", wrong)],
    ];
    for headers in cases {
        for path in ["/v1/kv/p/k", "/v1/projects", "/metrics"] {
            let r = srv.req_h("GET", path, None, &headers, b"");
            r.assert_error(401, "unauthorized");
            assert_eq!(
                challenges(&r),
                vec!["Bearer", "Basic realm=\"pykv\""],
                "{path} {headers:?}: {:?}",
                r.headers
            );
        }
    }
}

#[test]
fn curl_u_with_the_token_as_password_or_user_reads_a_key() {
    let (srv, write, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/greeting", b"hello world");
    let target = format!("{}/v1/kv/p/greeting", url(&srv));
    let r = curl(&["-u", &format!(":{write}"), &target]);
    assert_eq!(r.stdout, "hello world");
    let r = curl(&["-u", &format!("{write}:"), &target]);
    assert_eq!(r.stdout, "hello world");
    let r = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-u",
        "pi:wrong",
        &target,
    ]);
    assert_eq!(r.stdout, "401");
}

// ---------------------------------------------------------------------------------------------
// Quotas
// ---------------------------------------------------------------------------------------------

/// Config project `q` with these quota fields and a write token.
fn start_q(quota: Value) -> Server {
    let mut q = json!({ "tokens": [{ "label": "ci", "access": "write", "secret": CFG_WRITE }] });
    for (k, v) in quota.as_object().unwrap() {
        q[k] = v.clone();
    }
    Server::start(json!({ "projects": { "q": q } }))
}

#[test]
fn project_answers_show_null_quotas_by_default() {
    let (srv, _, _) = start_p(json!({}));
    assert_eq!(
        project(&srv, "p"),
        json!({ "name": "p", "keys": 0, "bytes": 0, "persistence": "sync", "source": "api",
                "version": 0, "max_keys": null, "max_bytes": null })
    );
}

#[test]
fn config_quotas_show_in_the_project_answer() {
    let srv = start_q(json!({ "max_keys": 2, "max_bytes": 64 }));
    put_ok(&srv, "/v1/kv/q/ab", b"xyz");
    assert_eq!(
        project(&srv, "q"),
        json!({ "name": "q", "keys": 1, "bytes": 5, "persistence": "sync", "source": "config",
                "version": 1, "max_keys": 2, "max_bytes": 64 })
    );
}

#[test]
fn config_max_keys_refuses_a_new_key_with_507_naming_it() {
    let srv = start_q(json!({ "max_keys": 2 }));
    put_ok(&srv, "/v1/kv/q/a", b"1");
    put_ok(&srv, "/v1/kv/q/b", b"2");
    assert_quota(&put(&srv, CFG_WRITE, "/v1/kv/q/c", b"3"), "max_keys", 2);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/q/c").status, 404);
    let p = project(&srv, "q");
    assert_eq!(
        (p["keys"].clone(), p["version"].clone()),
        (json!(2), json!(2))
    );
}

#[test]
fn config_max_bytes_refuses_a_put_that_would_pass_it_with_507_naming_it() {
    let srv = start_q(json!({ "max_bytes": 10 }));
    put_ok(&srv, "/v1/kv/q/a", b"123456789"); // 1 + 9 = 10 bytes: exactly at the quota
    assert_quota(&put(&srv, CFG_WRITE, "/v1/kv/q/b", b""), "max_bytes", 10);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/q/b").status, 404);
    assert_eq!(project(&srv, "q")["bytes"], 10);
}

#[test]
fn growing_replace_past_max_bytes_is_507_and_keeps_the_old_value() {
    let srv = start_q(json!({ "max_bytes": 10 }));
    put_ok(&srv, "/v1/kv/q/a", b"12345");
    assert_quota(
        &put(&srv, CFG_WRITE, "/v1/kv/q/a", b"1234567890"),
        "max_bytes",
        10,
    );
    assert_eq!(get(&srv, ADMIN, "/v1/kv/q/a").body, b"12345");
}

#[test]
fn replace_at_max_keys_is_allowed() {
    let srv = start_q(json!({ "max_keys": 1 }));
    put_ok(&srv, "/v1/kv/q/a", b"1");
    let r = put(&srv, CFG_WRITE, "/v1/kv/q/a", b"2");
    assert_json(&r, 200);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/q/a").body, b"2");
}

#[test]
fn patch_on_a_config_project_is_409_project_in_config() {
    let srv = start_q(json!({ "max_keys": 2 }));
    patch(&srv, "q", json!({ "max_keys": 5 })).assert_error(409, "project_in_config");
    assert_eq!(project(&srv, "q")["max_keys"], 2);
}

#[test]
fn patch_sets_quotas_and_answers_the_project() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/ab", b"xyz");
    let r = patch(&srv, "p", json!({ "max_keys": 3, "max_bytes": 100 }));
    assert_json(&r, 200);
    let expected = json!({ "name": "p", "keys": 1, "bytes": 5, "persistence": "sync",
                           "source": "api", "version": 1, "max_keys": 3, "max_bytes": 100 });
    assert_eq!(r.json(), expected);
    assert_eq!(project(&srv, "p"), expected);
}

#[test]
fn patch_leaves_an_absent_quota_field_unchanged() {
    let (srv, _, _) = start_p(json!({}));
    assert_json(&patch(&srv, "p", json!({ "max_keys": 3 })), 200);
    let r = patch(&srv, "p", json!({ "max_bytes": 100 }));
    assert_json(&r, 200);
    assert_eq!(
        (r.json()["max_keys"].clone(), r.json()["max_bytes"].clone()),
        (json!(3), json!(100))
    );
}

#[test]
fn patch_with_null_clears_a_quota() {
    let (srv, _, _) = start_p(json!({}));
    assert_json(
        &patch(&srv, "p", json!({ "max_keys": 1, "max_bytes": 100 })),
        200,
    );
    put_ok(&srv, "/v1/kv/p/a", b"1");
    let r = patch(&srv, "p", json!({ "max_keys": null }));
    assert_json(&r, 200);
    assert_eq!(r.json()["max_keys"], Value::Null);
    assert_eq!(r.json()["max_bytes"], 100);
    assert_eq!(put(&srv, ADMIN, "/v1/kv/p/b", b"2").status, 201);
}

#[test]
fn patch_with_a_quota_that_is_not_a_number_or_null_is_400_invalid_json() {
    let (srv, _, _) = start_p(json!({}));
    for body in [json!({ "max_keys": -1 }), json!({ "max_bytes": "10" })] {
        patch(&srv, "p", body).assert_error(400, "invalid_json");
    }
    assert_eq!(project(&srv, "p")["max_keys"], Value::Null);
}

#[test]
fn replace_with_a_smaller_value_passes_above_a_lowered_max_bytes() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"0123456789");
    put_ok(&srv, "/v1/kv/p/b", b"0123456789"); // 22 bytes in all
    assert_json(&patch(&srv, "p", json!({ "max_bytes": 15 })), 200);
    let r = put(&srv, ADMIN, "/v1/kv/p/a", b"01234"); // 17 bytes: still above, but smaller
    assert_json(&r, 200);
    assert_eq!(project(&srv, "p")["bytes"], 17);
    let r = put(&srv, ADMIN, "/v1/kv/p/a", b"56789"); // the same size: no growth
    assert_json(&r, 200);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/a").body, b"56789");
}

#[test]
fn growing_replace_above_a_lowered_max_bytes_is_507() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"0123456789");
    put_ok(&srv, "/v1/kv/p/b", b"0123456789");
    assert_json(&patch(&srv, "p", json!({ "max_bytes": 15 })), 200);
    assert_quota(
        &put(&srv, ADMIN, "/v1/kv/p/a", b"0123456789x"),
        "max_bytes",
        15,
    );
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/a").body, b"0123456789");
    assert_eq!(project(&srv, "p")["bytes"], 22);
}

#[test]
fn delete_passes_above_a_lowered_quota() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"0123456789");
    put_ok(&srv, "/v1/kv/p/b", b"0123456789");
    assert_json(
        &patch(&srv, "p", json!({ "max_keys": 1, "max_bytes": 5 })),
        200,
    );
    assert_eq!(
        srv.req("DELETE", "/v1/kv/p/a", Some(ADMIN), b"").status,
        204
    );
    assert_eq!(project(&srv, "p")["keys"], 1);
}

#[test]
fn new_key_above_a_lowered_max_keys_is_507_but_replace_passes() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"1");
    put_ok(&srv, "/v1/kv/p/b", b"2");
    assert_json(&patch(&srv, "p", json!({ "max_keys": 1 })), 200);
    assert_quota(&put(&srv, ADMIN, "/v1/kv/p/c", b"3"), "max_keys", 1);
    assert_json(&put(&srv, ADMIN, "/v1/kv/p/a", b"9"), 200);
    assert_eq!(project(&srv, "p")["keys"], 2);
}

#[test]
fn incr_creating_a_key_past_max_keys_is_507() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"1");
    assert_json(&patch(&srv, "p", json!({ "max_keys": 1 })), 200);
    let r = srv.req("POST", "/v1/kv/p/n?incr=1", Some(ADMIN), b"");
    assert_quota(&r, "max_keys", 1);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/n").status, 404);
}

#[test]
fn incr_growing_a_value_past_max_bytes_is_507_and_keeps_the_value() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/c", b"9"); // 2 bytes; "10" would make 3
    assert_json(&patch(&srv, "p", json!({ "max_bytes": 2 })), 200);
    let r = srv.req("POST", "/v1/kv/p/c?incr=1", Some(ADMIN), b"");
    assert_quota(&r, "max_bytes", 2);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/c").body, b"9");
    let r = srv.req("POST", "/v1/kv/p/c?incr=-1", Some(ADMIN), b"");
    assert_eq!((r.status, r.body), (200, b"8".to_vec()));
}

#[test]
fn batch_past_a_quota_is_507_with_the_index_and_applies_nothing() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"1");
    assert_json(&patch(&srv, "p", json!({ "max_keys": 2 })), 200);
    let version = project(&srv, "p")["version"].clone();
    let r = batch(
        &srv,
        ADMIN,
        json!({ "ops": [
            { "op": "put", "key": "a", "value": "replaced" },
            { "op": "put", "key": "b", "value": "2" },
            { "op": "put", "key": "c", "value": "3" },
        ] }),
    );
    assert_indexed_error(&r, 507, "quota_exceeded", 2);
    assert_quota_message(&r, "max_keys", 2);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/a").body, b"1");
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/b").status, 404);
    assert_eq!(project(&srv, "p")["version"], version);
}

#[test]
fn import_past_a_quota_is_507_and_imports_nothing() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"1");
    assert_json(&patch(&srv, "p", json!({ "max_keys": 2 })), 200);
    let body = [
        r#"{"key":"b","value":"2","content_type":null,"version":1,"expires_at":null}"#,
        r#"{"key":"c","value":"3","content_type":null,"version":1,"expires_at":null}"#,
    ]
    .join("\n");
    assert_quota(&import(&srv, ADMIN, "p", "", &body), "max_keys", 2);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/b").status, 404);
    assert_eq!(project(&srv, "p")["keys"], 1);
}

#[test]
fn compat_put_past_a_quota_is_507() {
    let srv = start_compat(json!({ "max_keys": 1 }));
    let put1 = srv.req(
        "POST",
        "/put",
        Some(LEGACY_WRITE),
        br#"{"key":"a","value":1}"#,
    );
    assert_json(&put1, 200);
    let r = srv.req(
        "POST",
        "/put",
        Some(LEGACY_WRITE),
        br#"{"key":"b","value":2}"#,
    );
    assert_quota(&r, "max_keys", 1);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/legacy/b").status, 404);
}

#[test]
fn global_max_keys_per_project_is_named_in_the_507() {
    let (srv, _, _) = start_p(json!({ "limits": { "max_keys_per_project": 1 } }));
    put_ok(&srv, "/v1/kv/p/a", b"1");
    assert_quota(
        &put(&srv, ADMIN, "/v1/kv/p/b", b"2"),
        "limits.max_keys_per_project",
        1,
    );
}

#[test]
fn restart_keeps_quotas_set_through_the_api() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"1");
    assert_json(
        &patch(&srv, "p", json!({ "max_keys": 1, "max_bytes": 500 })),
        200,
    );
    let srv = srv.restart();
    let p = project(&srv, "p");
    assert_eq!(
        (p["max_keys"].clone(), p["max_bytes"].clone()),
        (json!(1), json!(500))
    );
    assert_quota(&put(&srv, ADMIN, "/v1/kv/p/b", b"2"), "max_keys", 1);
}

// ---------------------------------------------------------------------------------------------
// CORS and explicit content types
// ---------------------------------------------------------------------------------------------

#[test]
fn preflight_from_an_allowed_origin_gets_exactly_the_cors_grant() {
    let srv = cors_server();
    let r = srv.req_h(
        "OPTIONS",
        "/v1/kv/p/some/key",
        None,
        &[
            ("Origin", ORIGIN),
            ("Access-Control-Request-Method", "PUT"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("allow"),
        Some("GET, HEAD, PUT, POST, DELETE, OPTIONS")
    );
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, HEAD, PUT, POST, DELETE")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some(ALLOW_HEADERS)
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some(EXPOSE_HEADERS)
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    assert_eq!(r.header("content-type"), None);
    let granted: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("access-control-"))
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(granted.len(), 5, "{:?}", r.headers);
}

#[test]
fn preflight_lists_the_methods_of_the_route_asked_about() {
    let srv = cors_server();
    for (path, methods) in [
        ("/v1/projects/p/import", "POST"),
        ("/v1/projects/p/export", "GET, HEAD"),
        ("/v1/kv/p", "GET, HEAD, POST"),
        ("/v1/projects/p", "GET, HEAD, PATCH, DELETE"),
    ] {
        let r = srv.req_h(
            "OPTIONS",
            path,
            None,
            &[
                ("Origin", ORIGIN),
                ("Access-Control-Request-Method", "POST"),
            ],
            b"",
        );
        assert_eq!(r.status, 204, "{path}");
        assert_eq!(
            r.header("allow"),
            Some(format!("{methods}, OPTIONS").as_str()),
            "{path}"
        );
        assert_eq!(
            r.header("access-control-allow-methods"),
            Some(methods),
            "{path}"
        );
    }
}

#[test]
fn options_without_a_preflight_answers_allow_only() {
    let srv = cors_server();
    let r = srv.req("OPTIONS", "/v1/kv/p", None, b"");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
    assert_eq!(r.header("vary"), Some("Origin"));
    assert_no_cors_grant(&r);
}

#[test]
fn options_on_an_unknown_path_is_404() {
    let srv = cors_server();
    let r = srv.req_h(
        "OPTIONS",
        "/nope",
        None,
        &[("Origin", ORIGIN), ("Access-Control-Request-Method", "GET")],
        b"",
    );
    r.assert_error(404, "not_found");
}

#[test]
fn preflight_from_a_disallowed_origin_is_204_without_access_control_headers() {
    let srv = cors_server();
    let r = srv.req_h(
        "OPTIONS",
        "/v1/kv/p/k",
        None,
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "PUT"),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("allow"),
        Some("GET, HEAD, PUT, POST, DELETE, OPTIONS")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    assert_no_cors_grant(&r);
}

#[test]
fn simple_request_from_an_allowed_origin_gets_allow_origin_and_expose_headers() {
    let srv = cors_server();
    put_ok(&srv, "/v1/kv/p/k", b"v");
    for origin in [ORIGIN, "http://localhost:8080"] {
        let r = srv.req_h("GET", "/v1/kv/p/k", Some(ADMIN), &[("Origin", origin)], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        assert_eq!(
            r.header("access-control-expose-headers"),
            Some(EXPOSE_HEADERS)
        );
        assert_eq!(r.header("vary"), Some("Origin"));
        assert_eq!(r.header("access-control-allow-methods"), None);
    }
}

#[test]
fn error_answers_to_an_allowed_origin_carry_the_cors_headers() {
    let srv = cors_server();
    let r = srv.req_h("GET", "/v1/kv/p/k", None, &[("Origin", ORIGIN)], b"");
    r.assert_error(401, "unauthorized");
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some(EXPOSE_HEADERS)
    );
    assert_eq!(r.header("vary"), Some("Origin"));
}

#[test]
fn export_to_an_allowed_origin_carries_the_cors_headers() {
    let srv = cors_server();
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let mut s = srv.connect();
    s.write_all(&request_bytes(
        "GET",
        "/v1/projects/p/export",
        Some(ADMIN),
        &[("Origin", ORIGIN)],
        b"",
    ))
    .unwrap();
    let r = read_any_response(&mut s);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some(EXPOSE_HEADERS)
    );
    assert_eq!(r.header("vary"), Some("Origin"));
}

#[test]
fn woken_watch_answer_to_an_allowed_origin_carries_the_cors_headers() {
    let srv = cors_server();
    let mut s = srv.connect();
    s.write_all(&request_bytes(
        "GET",
        "/v1/kv/p/k?watch=5",
        Some(ADMIN),
        &[("Origin", ORIGIN)],
        b"",
    ))
    .unwrap();
    sleep(Duration::from_millis(300));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let r = read_response(&mut s, false).expect("watch answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"v");
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some(EXPOSE_HEADERS)
    );
    assert_eq!(r.header("vary"), Some("Origin"));
}

#[test]
fn request_from_a_disallowed_origin_gets_vary_but_no_access_control_headers() {
    let srv = cors_server();
    put_ok(&srv, "/v1/kv/p/k", b"v");
    for origin in ["https://evil.example", "https://app.example:8443", "null"] {
        let r = srv.req_h("GET", "/v1/kv/p/k", Some(ADMIN), &[("Origin", origin)], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"v");
        assert_eq!(r.header("vary"), Some("Origin"));
        assert_no_cors_grant(&r);
    }
}

#[test]
fn request_without_an_origin_gets_vary_but_no_access_control_headers() {
    let srv = cors_server();
    let r = srv.req("GET", "/health", None, b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("vary"), Some("Origin"));
    assert_no_cors_grant(&r);
}

#[test]
fn star_allows_every_origin() {
    let (srv, _, _) = start_p(json!({ "cors_origins": ["*"] }));
    let r = srv.req_h(
        "OPTIONS",
        "/v1/kv/p/k",
        None,
        &[
            ("Origin", "https://anything.example"),
            ("Access-Control-Request-Method", "DELETE"),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://anything.example")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
}

#[test]
fn without_cors_origins_there_are_no_cors_headers_and_no_vary() {
    let (srv, _, _) = start_p(json!({}));
    let r = srv.req_h(
        "OPTIONS",
        "/v1/kv/p/k",
        None,
        &[("Origin", ORIGIN), ("Access-Control-Request-Method", "PUT")],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("allow"),
        Some("GET, HEAD, PUT, POST, DELETE, OPTIONS")
    );
    assert_eq!(r.header("vary"), None);
    assert_no_cors_grant(&r);
    let r = srv.req_h("GET", "/health", None, &[("Origin", ORIGIN)], b"");
    assert_eq!(r.header("vary"), None);
    assert_no_cors_grant(&r);
}

#[test]
fn cors_origins_without_a_scheme_or_with_a_trailing_slash_stop_the_server() {
    for bad in [
        json!(["app.example"]),
        json!(["https://app.example/"]),
        json!(["ftp://app.example"]),
        json!([""]),
    ] {
        let mut cfg = common::config(json!({ "cors_origins": bad }));
        let log = Server::try_start(&mut cfg, std::sync::Arc::new(TempDir::new()), &[])
            .err()
            .unwrap_or_else(|| panic!("started with cors_origins {bad}"));
        assert!(log.contains("cors_origins"), "{bad}: {log}");
        assert_config_error(
            &serve_bad_config(json!({ "cors_origins": bad })),
            "cors_origins",
        );
    }
}

#[test]
fn cors_origin_with_a_path_stops_the_server_with_exit_2() {
    let bad = json!({ "cors_origins": ["https://app.example/app"] });
    let mut cfg = common::config(bad.clone());
    let started = Server::try_start(&mut cfg, std::sync::Arc::new(TempDir::new()), &[]);
    assert!(started.is_err(), "started with an origin that has a path");
    assert_config_error(&serve_bad_config(bad), "cors_origins");
}

#[test]
fn cors_origin_without_a_host_stops_the_server_with_exit_2() {
    assert_config_error(
        &serve_bad_config(json!({ "cors_origins": ["https://"] })),
        "cors_origins",
    );
}

#[test]
fn cors_origins_with_a_port_or_star_start() {
    for ok in [
        json!(["http://localhost:8080", "https://app.example"]),
        json!(["*"]),
    ] {
        let mut cfg = common::config(json!({ "cors_origins": ok }));
        Server::try_start(&mut cfg, std::sync::Arc::new(TempDir::new()), &[])
            .unwrap_or_else(|log| panic!("{ok}: {log}"));
    }
}

#[test]
fn every_answer_has_nosniff_and_every_body_an_explicit_content_type() {
    let srv = cors_server();
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let answers = vec![
        get(&srv, ADMIN, "/v1/kv/p/k"),
        get(&srv, ADMIN, "/v1/kv/p/missing"),
        get(&srv, ADMIN, "/metrics"),
        get(&srv, ADMIN, "/openapi.json"),
        srv.req("GET", "/health", None, b""),
        srv.req("GET", "/v1/kv/p", None, b""),
        srv.req("GET", "/nope", Some(ADMIN), b""),
        srv.req("OPTIONS", "/v1/kv/p", None, b""),
        srv.req("DELETE", "/v1/kv/p/k", Some(ADMIN), b""),
        export(&srv, "p", ADMIN),
    ];
    for r in answers {
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{r:?}");
        if r.status == 204 || r.status == 304 {
            assert_eq!(r.header("content-type"), None, "{r:?}");
        } else {
            assert!(r.header("content-type").is_some(), "{r:?}");
        }
    }
}

#[test]
fn value_stored_without_a_content_type_is_served_as_octet_stream() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/page", b"<html><script>alert(1)</script>");
    let r = get(&srv, ADMIN, "/v1/kv/p/page");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

// ---------------------------------------------------------------------------------------------
// PyKV-compatible routes
// ---------------------------------------------------------------------------------------------

#[test]
fn python_pykv_client_puts_gets_and_deletes_with_x_api_key() {
    let probe = run_within(
        Command::new("python3").arg("--version"),
        Duration::from_secs(10),
    );
    if probe.code != Some(0) {
        eprintln!("python3 is not usable here; skipping the Python client");
        return;
    }
    let srv = start_compat(json!({}));
    let r = run(Command::new("python3")
        .arg("-c")
        .arg(PYKV_CLIENT_PY)
        .env("PYKV_URL", url(&srv))
        .env("PYKV_API_KEY", LEGACY_WRITE));
    assert_eq!(
        r.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        r.stdout,
        r.stderr
    );
    assert_eq!(r.stdout, "OK\n", "stderr: {}", r.stderr);
    // The last scalar it stored is JSON text, readable through the native API.
    let v = get(&srv, ADMIN, "/v1/kv/legacy/scalar");
    assert_eq!(v.header("content-type"), Some("application/json"));
    assert_eq!(v.json(), json!([1, "two", { "x": [] }]));
}

#[test]
fn curl_user_puts_gets_and_deletes_through_the_compat_routes() {
    let srv = start_compat(json!({}));
    let base = url(&srv);
    let api_key = format!("X-API-Key: {LEGACY_WRITE}");
    let value = json!({ "text": "hi there", "n": 1, "tags": ["a", "b"] });
    let body = json!({ "key": "greeting", "value": value }).to_string();
    let r = curl(&[
        "-X",
        "POST",
        "-H",
        &api_key,
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
        "-w",
        "\n%{http_code}",
        &format!("{base}/put"),
    ]);
    let (answer, status) = r.stdout.rsplit_once('\n').unwrap();
    assert_eq!(status, "200");
    assert_eq!(
        serde_json::from_str::<Value>(answer).unwrap(),
        json!({ "key": "greeting", "value": value })
    );

    let r = curl(&[
        "-u",
        &format!(":{LEGACY_WRITE}"),
        &format!("{base}/get/greeting"),
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&r.stdout).unwrap(),
        json!({ "key": "greeting", "value": value })
    );

    let r = curl(&[
        "-X",
        "DELETE",
        "-H",
        &api_key,
        &format!("{base}/delete/greeting"),
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&r.stdout).unwrap(),
        json!({ "key": "greeting", "deleted": true })
    );

    let r = curl(&[
        "-w",
        "\n%{http_code}",
        "-H",
        &api_key,
        &format!("{base}/get/greeting"),
    ]);
    let (answer, status) = r.stdout.rsplit_once('\n').unwrap();
    assert_eq!(status, "404");
    assert_eq!(
        serde_json::from_str::<Value>(answer).unwrap()["error"],
        "key_not_found"
    );
}

#[test]
fn compat_put_answers_200_with_the_key_and_the_same_json_value() {
    let srv = start_compat(json!({}));
    for value in [
        json!({ "a": 1, "b": [true, null, "x"], "c": { "d": 2.5 } }),
        json!(42),
        json!("text"),
        json!(null),
        json!([]),
    ] {
        let body = json!({ "key": "k", "value": value });
        let r = srv.req(
            "POST",
            "/put",
            Some(LEGACY_WRITE),
            &serde_json::to_vec(&body).unwrap(),
        );
        assert_json(&r, 200);
        assert_eq!(r.json(), body);
        assert_eq!(r.json().as_object().unwrap().len(), 2);
    }
}

#[test]
fn compat_put_stores_json_text_served_as_application_json() {
    let srv = start_compat(json!({}));
    let value = json!({ "a": 1, "b": [true, null, "x"] });
    let body = json!({ "key": "cfg", "value": value });
    let r = srv.req(
        "POST",
        "/put",
        Some(LEGACY_WRITE),
        &serde_json::to_vec(&body).unwrap(),
    );
    assert_json(&r, 200);
    let r = get(&srv, ADMIN, "/v1/kv/legacy/cfg");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(serde_json::from_slice::<Value>(&r.body).unwrap(), value);
    // A string is stored as its JSON text, quotes included.
    let r = srv.req(
        "POST",
        "/put",
        Some(LEGACY_WRITE),
        br#"{"key":"s","value":"hi"}"#,
    );
    assert_json(&r, 200);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/legacy/s").body, br#""hi""#);
}

#[test]
fn compat_get_answers_the_key_and_its_json_value() {
    let srv = start_compat(json!({}));
    put_ok(&srv, "/v1/kv/legacy/n", b"[1,2,3]");
    let r = get(&srv, LEGACY_READ, "/get/n");
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({ "key": "n", "value": [1, 2, 3] }));
}

#[test]
fn compat_get_of_a_value_that_is_not_json_answers_it_as_a_string() {
    let srv = start_compat(json!({}));
    let r = srv.req_h(
        "PUT",
        "/v1/kv/legacy/plain",
        Some(LEGACY_WRITE),
        &[("Content-Type", "text/plain")],
        b"hello world",
    );
    assert_json(&r, 201);
    let r = get(&srv, LEGACY_WRITE, "/get/plain");
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({ "key": "plain", "value": "hello world" }));
}

#[test]
fn compat_get_of_a_value_that_is_not_utf8_answers_base64() {
    let srv = start_compat(json!({}));
    put_ok(&srv, "/v1/kv/legacy/raw", &[0, 1, 2, 255]);
    let r = get(&srv, LEGACY_WRITE, "/get/raw");
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({ "key": "raw", "value": "AAEC/w==", "base64": true })
    );
}

#[test]
fn compat_get_of_an_absent_key_is_404_key_not_found() {
    let srv = start_compat(json!({}));
    get(&srv, LEGACY_WRITE, "/get/nothing").assert_error(404, "key_not_found");
}

#[test]
fn compat_delete_answers_deleted_and_removes_the_key() {
    let srv = start_compat(json!({}));
    put_ok(&srv, "/v1/kv/legacy/k", b"1");
    let r = srv.req("DELETE", "/delete/k", Some(LEGACY_WRITE), b"");
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({ "key": "k", "deleted": true }));
    assert_eq!(get(&srv, ADMIN, "/v1/kv/legacy/k").status, 404);
}

#[test]
fn compat_delete_of_an_absent_key_is_404_key_not_found() {
    let srv = start_compat(json!({}));
    srv.req("DELETE", "/delete/nothing", Some(LEGACY_WRITE), b"")
        .assert_error(404, "key_not_found");
}

#[test]
fn compat_put_with_an_unknown_field_or_bad_json_is_400_invalid_json() {
    let srv = start_compat(json!({}));
    for body in [
        &br#"{"key":"k","value":1,"ttl":5}"#[..],
        b"{\"key\":\"k\",\"value\":",
        b"not json",
        br#"{"value":1}"#,
    ] {
        let r = srv.req("POST", "/put", Some(LEGACY_WRITE), body);
        r.assert_error(400, "invalid_json");
    }
    assert_eq!(project(&srv, "legacy")["keys"], 0);
}

#[test]
fn compat_put_with_a_body_that_is_not_an_object_is_400_invalid_json() {
    let srv = start_compat(json!({}));
    for body in [&br#"["k",1]"#[..], b"\"k\"", b"1"] {
        let r = srv.req("POST", "/put", Some(LEGACY_WRITE), body);
        r.assert_error(400, "invalid_json");
    }
    assert_eq!(get(&srv, ADMIN, "/v1/kv/legacy/k").status, 404);
}

#[test]
fn compat_put_with_a_bad_key_is_400_invalid_key() {
    let srv = Server::start(json!({
        "compat_project": "legacy",
        "limits": { "max_key_bytes": 8 },
        "projects": { "legacy": { "tokens": [
            { "label": "app", "access": "write", "secret": LEGACY_WRITE }
        ] } }
    }));
    for key in ["", "123456789"] {
        let body = json!({ "key": key, "value": 1 });
        let r = srv.req(
            "POST",
            "/put",
            Some(LEGACY_WRITE),
            &serde_json::to_vec(&body).unwrap(),
        );
        r.assert_error(400, "invalid_key");
    }
}

#[test]
fn compat_put_with_a_read_token_is_403() {
    let srv = start_compat(json!({}));
    let r = srv.req(
        "POST",
        "/put",
        Some(LEGACY_READ),
        br#"{"key":"k","value":1}"#,
    );
    r.assert_error(403, "forbidden");
    assert_eq!(get(&srv, ADMIN, "/v1/kv/legacy/k").status, 404);
}

#[test]
fn compat_delete_with_a_read_token_is_403() {
    let srv = start_compat(json!({}));
    put_ok(&srv, "/v1/kv/legacy/k", b"1");
    srv.req("DELETE", "/delete/k", Some(LEGACY_READ), b"")
        .assert_error(403, "forbidden");
    assert_eq!(get(&srv, ADMIN, "/v1/kv/legacy/k").status, 200);
}

#[test]
fn compat_routes_without_a_token_are_401() {
    let srv = start_compat(json!({}));
    srv.req("POST", "/put", None, br#"{"key":"k","value":1}"#)
        .assert_error(401, "unauthorized");
    srv.req("GET", "/get/k", None, b"")
        .assert_error(401, "unauthorized");
    srv.req("DELETE", "/delete/k", None, b"")
        .assert_error(401, "unauthorized");
}

#[test]
fn compat_routes_refuse_another_projects_token_with_403() {
    let srv = start_compat(json!({}));
    let (write, _) = create_project(&srv, "p");
    srv.req("POST", "/put", Some(&write), br#"{"key":"k","value":1}"#)
        .assert_error(403, "forbidden");
    get(&srv, &write, "/get/k").assert_error(403, "forbidden");
}

#[test]
fn compat_routes_accept_bearer_basic_x_api_key_and_the_admin_token() {
    let srv = start_compat(json!({}));
    put_ok(&srv, "/v1/kv/legacy/k", b"7");
    let basic_auth = basic(&format!(":{LEGACY_READ}"));
    let bearer_admin = format!("Bearer {ADMIN}");
    for header in [
        ("Authorization", basic_auth.as_str()),
        ("X-API-Key", LEGACY_READ),
        ("Authorization", bearer_admin.as_str()),
    ] {
        let r = srv.req_h("GET", "/get/k", None, &[header], b"");
        assert_json(&r, 200);
        assert_eq!(r.json(), json!({ "key": "k", "value": 7 }));
    }
    let r = get(&srv, LEGACY_READ, "/get/k");
    assert_json(&r, 200);
}

#[test]
fn compat_keys_in_paths_are_percent_decoded() {
    let srv = start_compat(json!({}));
    let r = srv.req(
        "POST",
        "/put",
        Some(LEGACY_WRITE),
        r#"{"key":"dir/a b é","value":true}"#.as_bytes(),
    );
    assert_json(&r, 200);
    let r = get(&srv, LEGACY_WRITE, "/get/dir%2Fa%20b%20%C3%A9");
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({ "key": "dir/a b é", "value": true }));
    let r = srv.req(
        "DELETE",
        "/delete/dir/a%20b%20%C3%A9",
        Some(LEGACY_WRITE),
        b"",
    );
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({ "key": "dir/a b é", "deleted": true }));
    srv.req("GET", "/get/%ZZ", Some(LEGACY_WRITE), b"")
        .assert_error(400, "invalid_key");
}

#[test]
fn compat_routes_are_404_without_compat_project() {
    let (srv, _, _) = start_p(json!({}));
    srv.req("POST", "/put", Some(ADMIN), br#"{"key":"k","value":1}"#)
        .assert_error(404, "not_found");
    get(&srv, ADMIN, "/get/k").assert_error(404, "not_found");
    srv.req("DELETE", "/delete/k", Some(ADMIN), b"")
        .assert_error(404, "not_found");
    srv.req("OPTIONS", "/put", None, b"")
        .assert_error(404, "not_found");
}

#[test]
fn compat_routes_answer_405_with_allow_for_other_methods() {
    let srv = start_compat(json!({}));
    let r = srv.req("GET", "/put", Some(ADMIN), b"");
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = srv.req("PUT", "/get/k", Some(ADMIN), b"x");
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

#[test]
fn metrics_without_a_token_is_401() {
    let (srv, _, _) = start_p(json!({}));
    let r = srv.req("GET", "/metrics", None, b"");
    r.assert_error(401, "unauthorized");
    assert_eq!(challenges(&r), vec!["Bearer", "Basic realm=\"pykv\""]);
}

#[test]
fn metrics_with_a_project_token_is_403() {
    let (srv, write, read) = start_p(json!({}));
    get(&srv, &write, "/metrics").assert_error(403, "forbidden");
    get(&srv, &read, "/metrics").assert_error(403, "forbidden");
}

#[test]
fn metrics_is_prometheus_text_with_its_content_type() {
    let (srv, _, _) = start_p(json!({}));
    let r = get(&srv, ADMIN, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.text();
    assert!(text.ends_with('\n'), "{text}");
    for line in text.lines() {
        assert!(
            line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line.starts_with("pykv_"),
            "not Prometheus text: {line:?}"
        );
        if !line.starts_with('#') {
            let (_, value) = line.rsplit_once(' ').expect("a sample has a value");
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("value of {line:?}"));
        }
    }
}

#[test]
fn every_metric_family_has_help_and_type() {
    let (srv, _, _) = start_p(json!({}));
    let text = metrics(&srv);
    for (name, kind) in [
        ("pykv_requests_total", "counter"),
        ("pykv_request_duration_seconds", "histogram"),
        ("pykv_project_keys", "gauge"),
        ("pykv_project_bytes", "gauge"),
        ("pykv_journal_bytes", "gauge"),
        ("pykv_journal_appends_total", "counter"),
        ("pykv_journal_fsync_duration_seconds", "histogram"),
        ("pykv_compactions_total", "counter"),
        ("pykv_compaction_failures_total", "counter"),
        ("pykv_compaction_duration_seconds", "histogram"),
        ("pykv_watches_parked", "gauge"),
        ("pykv_connections_open", "gauge"),
        ("pykv_uptime_seconds", "gauge"),
        ("pykv_resident_memory_bytes", "gauge"),
    ] {
        let help = text
            .lines()
            .position(|l| {
                l.strip_prefix(&format!("# HELP {name} "))
                    .is_some_and(|h| !h.trim().is_empty())
            })
            .unwrap_or_else(|| panic!("no # HELP for {name}:\n{text}"));
        let type_line = format!("# TYPE {name} {kind}");
        let kind_at = text
            .lines()
            .position(|l| l == type_line)
            .unwrap_or_else(|| panic!("no {type_line:?}:\n{text}"));
        assert_eq!(kind_at, help + 1, "{name}: # TYPE right after # HELP");
    }
}

#[test]
fn request_counters_grow_by_exactly_the_requests_made() {
    let (srv, _, _) = start_p(json!({}));
    let before = metrics(&srv);
    for _ in 0..3 {
        assert_eq!(get(&srv, ADMIN, "/v1/kv/p/missing").status, 404);
    }
    for _ in 0..2 {
        assert_eq!(srv.req("GET", "/health", None, b"").status, 200);
    }
    put_ok(&srv, "/v1/kv/p/k", b"v");
    assert_eq!(srv.req("GET", "/v1/kv/p", None, b"").status, 401);
    let after = metrics(&srv);
    assert_eq!(
        requests(&after, "kv_key", 404) - requests(&before, "kv_key", 404),
        3.0
    );
    assert_eq!(
        requests(&after, "health", 200) - requests(&before, "health", 200),
        2.0
    );
    assert_eq!(
        requests(&after, "kv_key", 201) - requests(&before, "kv_key", 201),
        1.0
    );
    assert_eq!(
        requests(&after, "kv_list", 401) - requests(&before, "kv_list", 401),
        1.0
    );
    assert_eq!(
        requests(&after, "metrics", 200) - requests(&before, "metrics", 200),
        1.0
    );
}

#[test]
fn request_counters_label_every_route() {
    let srv = start_compat(json!({}));
    create_project(&srv, "p");
    assert_eq!(get(&srv, ADMIN, "/v1/projects/p/tokens").status, 200);
    srv.req("GET", "/health", None, b"");
    srv.req("GET", "/openapi.json", None, b"");
    get(&srv, ADMIN, "/v1/projects");
    get(&srv, ADMIN, "/v1/projects/p");
    srv.req("DELETE", "/v1/projects/p/tokens/nope", Some(ADMIN), b"");
    export(&srv, "p", ADMIN);
    import(&srv, ADMIN, "p", "", "");
    get(&srv, ADMIN, "/v1/kv/p");
    get(&srv, ADMIN, "/v1/kv/p/k");
    get(&srv, ADMIN, "/get/k");
    get(&srv, ADMIN, "/nope");
    get(&srv, ADMIN, "/metrics");
    let text = metrics(&srv);
    for (route, status) in [
        ("health", 200),
        ("openapi", 200),
        ("projects", 200),
        ("projects", 201),
        ("project", 200),
        ("tokens", 200),
        ("token", 404),
        ("export", 200),
        ("import", 200),
        ("kv_list", 200),
        ("kv_key", 404),
        ("compat", 404),
        ("unknown", 404),
        ("metrics", 200),
    ] {
        assert!(
            requests(&text, route, status) >= 1.0,
            "no {route}/{status}:\n{text}"
        );
    }
}

#[test]
fn request_latency_histogram_is_cumulative_and_inf_equals_count() {
    let (srv, _, _) = start_p(json!({}));
    for i in 0..5 {
        put_ok(&srv, &format!("/v1/kv/p/k{i}"), b"v");
    }
    let first = metrics(&srv);
    assert_histogram_is_cumulative(&first, "pykv_request_duration_seconds");
    srv.req("GET", "/health", None, b"");
    let second = metrics(&srv);
    assert_histogram_is_cumulative(&second, "pykv_request_duration_seconds");
    let (_, _, c1) = histogram(&first, "pykv_request_duration_seconds");
    let (_, _, c2) = histogram(&second, "pykv_request_duration_seconds");
    assert_eq!(
        c2 - c1,
        2.0,
        "the health request and the first metrics request"
    );
}

/// sync mode: each PUT answered alone is one fdatasync of the journal.
#[test]
fn fsync_latency_histogram_is_cumulative_and_counts_each_sync() {
    let (srv, _, _) = start_p(json!({"persistence": "sync"}));
    for i in 0..3 {
        put_ok(&srv, &format!("/v1/kv/p/k{i}"), b"v");
    }
    let text = metrics(&srv);
    assert_histogram_is_cumulative(&text, "pykv_journal_fsync_duration_seconds");
    let (_, _, count) = histogram(&text, "pykv_journal_fsync_duration_seconds");
    assert_eq!(count, 3.0, "{text}");
}

/// A journal outgrowing its snapshot is compacted, counted and timed.
#[test]
fn compactions_are_counted_and_timed() {
    let (srv, _, _) = start_p(json!({"persistence": "sync", "compaction_min_bytes": 1}));
    put_ok(&srv, "/v1/kv/p/big", &[b'x'; 4096]);
    let mut text = String::new();
    let counted = wait_until(Duration::from_secs(5), || {
        text = metrics(&srv);
        sample(&text, "pykv_compactions_total{project=\"p\"}") == Some(1.0)
    });
    assert!(counted, "{text}");
    assert_histogram_is_cumulative(&text, "pykv_compaction_duration_seconds");
    assert_eq!(histogram(&text, "pykv_compaction_duration_seconds").2, 1.0);
    assert_eq!(
        sample(&text, "pykv_compaction_failures_total{project=\"p\"}"),
        None,
        "{text}"
    );
    // The fresh segment is empty: the snapshot holds everything.
    assert_eq!(
        sample(&text, "pykv_journal_bytes{project=\"p\"}"),
        Some(0.0)
    );
}

#[test]
fn project_gauges_match_the_project_answer() {
    let (srv, _, _) = start_p(json!({}));
    create_project(&srv, "empty");
    put_ok(&srv, "/v1/kv/p/a", b"hello");
    put_ok(&srv, "/v1/kv/p/bb", b"xyz");
    put_ok(&srv, "/v1/kv/p/c", &[0, 255]);
    let p = project(&srv, "p");
    assert_eq!(
        (p["keys"].clone(), p["bytes"].clone()),
        (json!(3), json!(14))
    );
    let text = metrics(&srv);
    assert_eq!(sample(&text, "pykv_project_keys{project=\"p\"}"), Some(3.0));
    assert_eq!(
        sample(&text, "pykv_project_bytes{project=\"p\"}"),
        Some(14.0)
    );
    assert_eq!(
        sample(&text, "pykv_project_keys{project=\"empty\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "pykv_project_bytes{project=\"empty\"}"),
        Some(0.0)
    );
}

#[test]
fn project_gauges_follow_deletes() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"hello");
    put_ok(&srv, "/v1/kv/p/bb", b"xyz");
    assert_eq!(
        srv.req("DELETE", "/v1/kv/p/a", Some(ADMIN), b"").status,
        204
    );
    let text = metrics(&srv);
    assert_eq!(sample(&text, "pykv_project_keys{project=\"p\"}"), Some(1.0));
    assert_eq!(
        sample(&text, "pykv_project_bytes{project=\"p\"}"),
        Some(5.0)
    );
}

#[test]
fn resident_memory_is_above_zero() {
    let (srv, _, _) = start_p(json!({}));
    let text = metrics(&srv);
    let rss = sample(&text, "pykv_resident_memory_bytes").expect("resident memory");
    assert!(rss > 0.0, "{text}");
}

#[test]
fn uptime_counts_seconds_since_the_start() {
    let (srv, _, _) = start_p(json!({}));
    let uptime = sample(&metrics(&srv), "pykv_uptime_seconds").expect("uptime");
    assert!((0.0..60.0).contains(&uptime), "{uptime}");
}

#[test]
fn connections_open_counts_the_open_client_connections() {
    let (srv, _, _) = start_p(json!({}));
    // Two idle keep-alive connections, each known to be accepted: it has answered on it.
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut s = srv.connect();
        s.write_all(&request_bytes("GET", "/health", None, &[], b""))
            .unwrap();
        assert_eq!(read_response(&mut s, false).expect("health").status, 200);
        idle.push(s);
    }
    let open = sample(&metrics(&srv), "pykv_connections_open").expect("connections_open");
    // The two idle ones and the metrics request's own.
    assert_eq!(open, 3.0);
}

#[test]
fn journal_appends_and_bytes_are_counted_per_project() {
    let (srv, _, _) = start_p(json!({ "persistence": "sync" }));
    for i in 0..3 {
        put_ok(&srv, &format!("/v1/kv/p/k{i}"), b"v");
    }
    let text = metrics(&srv);
    let appends = "pykv_journal_appends_total{project=\"p\"}";
    assert_eq!(sample(&text, appends), Some(3.0), "{text}");
    // Each one-key group: 41 bytes of framing and headers, the key and the value.
    let bytes = "pykv_journal_bytes{project=\"p\"}";
    assert_eq!(
        sample(&text, bytes),
        Some(3.0 * (41.0 + 2.0 + 1.0)),
        "{text}"
    );
}

#[test]
fn memory_projects_write_no_journal() {
    let (srv, _, _) = start_p(json!({ "persistence": "memory" }));
    for i in 0..3 {
        put_ok(&srv, &format!("/v1/kv/p/k{i}"), b"v");
    }
    let text = metrics(&srv);
    assert_eq!(
        sample(&text, "pykv_journal_appends_total{project=\"p\"}"),
        None,
        "{text}"
    );
    assert_eq!(sample(&text, "pykv_journal_bytes{project=\"p\"}"), None);
}

#[test]
fn parked_watches_are_counted() {
    let (srv, _, _) = start_p(json!({}));
    let mut s = srv.connect();
    s.write_all(&request_bytes(
        "GET",
        "/v1/kv/p/k?watch=5",
        Some(ADMIN),
        &[],
        b"",
    ))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut parked = 0.0;
    while Instant::now() < deadline {
        parked = sample(&metrics(&srv), "pykv_watches_parked").expect("watches_parked");
        if parked == 1.0 {
            break;
        }
        sleep(Duration::from_millis(50));
    }
    assert_eq!(parked, 1.0);
    put_ok(&srv, "/v1/kv/p/k", b"v");
    assert_eq!(
        read_response(&mut s, false).expect("watch answer").status,
        200
    );
    assert_eq!(sample(&metrics(&srv), "pykv_watches_parked"), Some(0.0));
}

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

#[test]
fn export_streams_one_exact_line_per_key_in_byte_order() {
    let (srv, _, _) = start_p(json!({}));
    let expected = fill_known(&srv);
    assert_eq!(lines(&export_text(&srv, "p")), expected);
}

#[test]
fn export_is_chunked_ndjson_with_the_project_version() {
    let (srv, _, _) = start_p(json!({}));
    fill_known(&srv);
    let version = project(&srv, "p")["version"].as_u64().unwrap();
    let r = export(&srv, "p", ADMIN);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    assert_eq!(
        r.header("x-project-version"),
        Some(version.to_string().as_str())
    );
    assert!(r.body.ends_with(b"}\n"), "{}", r.text());
}

#[test]
fn export_with_connection_close_sends_the_whole_body_then_closes() {
    let (srv, _, _) = start_p(json!({}));
    let expected = fill_known(&srv);
    let mut s = srv.connect();
    s.write_all(&request_bytes(
        "GET",
        "/v1/projects/p/export",
        Some(ADMIN),
        &[("Connection", "close")],
        b"",
    ))
    .unwrap();
    let r = read_any_response(&mut s);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(lines(&String::from_utf8(r.body).unwrap()), expected);
    assert!(is_closed(&mut s));
}

#[test]
fn export_to_an_http10_client_is_unframed_and_ends_with_the_connection() {
    let (srv, _, _) = start_p(json!({}));
    let expected = fill_known(&srv);
    let mut s = srv.connect();
    let req =
        format!("GET /v1/projects/p/export HTTP/1.0\r\nAuthorization: Bearer {ADMIN}\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .expect("the server closes after the body");
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    assert!(head.contains("\r\nConnection: close"), "{head}");
    assert_eq!(lines(body), expected);
}

#[test]
fn export_leaves_the_connection_ready_for_the_next_request() {
    let (srv, _, _) = start_p(json!({}));
    let expected = fill_known(&srv);
    let mut s = srv.connect();
    for _ in 0..2 {
        let r = export_on(&mut s, "p", ADMIN);
        assert_eq!(r.status, 200);
        assert_eq!(lines(&r.text()), expected);
    }
    s.write_all(&request_bytes("GET", "/health", None, &[], b""))
        .unwrap();
    let r = read_response(&mut s, false).expect("health after the exports");
    assert_eq!(r.status, 200);
}

#[test]
fn export_of_many_keys_spans_chunks_and_keeps_byte_order() {
    let (srv, _, _) = start_p(json!({ "persistence": "memory" }));
    let ops: Vec<Value> = (0..700)
        .map(|i| json!({ "op": "put", "key": format!("k{i:04}"), "value": i.to_string() }))
        .collect();
    let r = batch(&srv, ADMIN, json!({ "ops": ops }));
    assert_json(&r, 200);
    let version = r.json()["version"].as_u64().unwrap();
    let text = export_text(&srv, "p");
    let expected: Vec<String> = (0..700)
        .map(|i| {
            format!(
                r#"{{"key":"k{i:04}","value":"{i}","content_type":null,"version":{version},"expires_at":null}}"#
            )
        })
        .collect();
    assert_eq!(lines(&text), expected);
}

#[test]
fn export_read_with_curl_gives_the_same_lines() {
    let (srv, _, read) = start_p(json!({}));
    let expected = fill_known(&srv);
    let r = curl(&[
        "-H",
        &format!("Authorization: Bearer {read}"),
        &format!("{}/v1/projects/p/export", url(&srv)),
    ]);
    assert_eq!(lines(&r.stdout), expected);
    assert!(r.stdout.ends_with('\n'));
}

#[test]
fn export_of_an_empty_project_is_an_empty_body() {
    let (srv, _, _) = start_p(json!({}));
    let r = export(&srv, "p", ADMIN);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-project-version"), Some("0"));
    assert_eq!(r.body, b"");
}

#[test]
fn export_leaves_out_expired_keys() {
    let (srv, _, _) = start_p(json!({ "persistence": "memory" }));
    put_ok(&srv, "/v1/kv/p/short?ttl=1", b"x");
    let v = put_ok(&srv, "/v1/kv/p/stays", b"y");
    sleep(Duration::from_millis(2200));
    assert_eq!(
        lines(&export_text(&srv, "p")),
        vec![format!(
            r#"{{"key":"stays","value":"y","content_type":null,"version":{v},"expires_at":null}}"#
        )]
    );
}

#[test]
fn head_export_sends_the_headers_without_a_body() {
    let (srv, _, _) = start_p(json!({}));
    fill_known(&srv);
    let version = project(&srv, "p")["version"].as_u64().unwrap();
    let full = export(&srv, "p", ADMIN).body.len();
    let mut s = srv.connect();
    s.write_all(&request_bytes(
        "HEAD",
        "/v1/projects/p/export",
        Some(ADMIN),
        &[],
        b"",
    ))
    .unwrap();
    let r = read_response(&mut s, true).expect("HEAD answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(
        r.header("x-project-version"),
        Some(version.to_string().as_str())
    );
    // RFC 9110 8.6: a Content-Length on HEAD must be the length a GET would send.
    if let Some(len) = r.header("content-length") {
        assert_eq!(
            len,
            full.to_string(),
            "HEAD Content-Length vs GET body length"
        );
    }
    // No body bytes follow: the next answer on the connection is the health check's.
    s.write_all(&request_bytes("GET", "/health", None, &[], b""))
        .unwrap();
    let r = read_response(&mut s, false).expect("health after HEAD");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
}

#[test]
fn export_with_an_unscoped_read_token_works() {
    let (srv, _, read) = start_p(json!({}));
    let expected = fill_known(&srv);
    let r = export(&srv, "p", &read);
    assert_eq!(r.status, 200);
    assert_eq!(lines(&r.text()), expected);
}

#[test]
fn export_with_another_projects_token_is_403_and_without_a_token_401() {
    let (srv, _, _) = start_p(json!({}));
    let (other, _) = create_project(&srv, "other");
    export(&srv, "p", &other).assert_error(403, "forbidden");
    let r = srv.req("GET", "/v1/projects/p/export", None, b"");
    r.assert_error(401, "unauthorized");
}

#[test]
fn export_of_a_missing_project_is_404_project_not_found() {
    let (srv, _, _) = start_p(json!({}));
    export(&srv, "nope", ADMIN).assert_error(404, "project_not_found");
}

// ---------------------------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------------------------

fn entry(key: &str, value: &str) -> String {
    format!(
        r#"{{"key":"{key}","value":"{value}","content_type":"text/plain","version":1,"expires_at":null}}"#
    )
}

#[test]
fn import_merge_answers_the_counts_and_gives_every_key_one_new_version() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/keep", b"k");
    put_ok(&srv, "/v1/kv/p/b", b"old");
    let before = project(&srv, "p")["version"].as_u64().unwrap();
    let body = [entry("a", "1"), entry("b", "2")].join("\n") + "\n";
    let r = import(&srv, ADMIN, "p", "?mode=merge", &body);
    assert_json(&r, 200);
    let v = before + 1;
    assert_eq!(
        r.json(),
        json!({ "project": "p", "mode": "merge", "imported": 2, "removed": 0, "version": v })
    );
    for (key, value) in [("a", "1"), ("b", "2")] {
        let g = get(&srv, ADMIN, &format!("/v1/kv/p/{key}"));
        assert_eq!(g.body, value.as_bytes());
        assert_eq!(g.header("etag"), Some(format!("\"{v}\"").as_str()));
        assert_eq!(g.header("content-type"), Some("text/plain"));
    }
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/keep").body, b"k");
    assert_eq!(project(&srv, "p")["version"], v);
}

#[test]
fn import_without_a_mode_merges() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/keep", b"k");
    let r = import(&srv, ADMIN, "p", "", &entry("a", "1"));
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({ "project": "p", "mode": "merge", "imported": 1, "removed": 0, "version": 2 })
    );
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/keep").body, b"k");
}

#[test]
fn import_replace_removes_the_keys_not_imported() {
    let (srv, _, _) = start_p(json!({}));
    for k in ["a", "b", "c"] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"old");
    }
    let body = [entry("b", "new"), entry("d", "new")].join("\n");
    let r = import(&srv, ADMIN, "p", "?mode=replace", &body);
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({ "project": "p", "mode": "replace", "imported": 2, "removed": 2, "version": 4 })
    );
    assert_eq!(
        list(&srv, ADMIN, "values=true"),
        json!({ "keys": [
            { "key": "b", "value": "new", "version": 4 },
            { "key": "d", "value": "new", "version": 4 },
        ], "next": null })
    );
    let p = project(&srv, "p");
    assert_eq!(
        (p["keys"].clone(), p["version"].clone()),
        (json!(2), json!(4))
    );
}

#[test]
fn import_replace_with_an_empty_body_empties_the_project() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"1");
    put_ok(&srv, "/v1/kv/p/b", b"2");
    let r = import(&srv, ADMIN, "p", "?mode=replace", "");
    assert_json(&r, 200);
    let j = r.json();
    assert_eq!(
        (j["imported"].clone(), j["removed"].clone()),
        (json!(0), json!(2))
    );
    assert_eq!(project(&srv, "p")["keys"], 0);
}

#[test]
fn import_with_a_bad_mode_is_400_invalid_parameter() {
    let (srv, _, _) = start_p(json!({}));
    import(&srv, ADMIN, "p", "?mode=overwrite", &entry("a", "1"))
        .assert_error(400, "invalid_parameter");
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/a").status, 404);
}

#[test]
fn import_with_a_bad_line_is_400_naming_the_line_and_imports_nothing() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/keep", b"k");
    let before = project(&srv, "p");
    for (body, line) in [
        (
            format!("{}\n{{\"key\":\"b\",\"value\":", entry("a", "1")),
            2,
        ),
        (
            format!("{}\n{}\nnot json\n", entry("a", "1"), entry("b", "2")),
            3,
        ),
        (
            r#"{"key":"","value":"x","content_type":null,"version":1,"expires_at":null}"#
                .to_string(),
            1,
        ),
        (
            format!(
                "{}\n{}",
                entry("a", "1"),
                r#"{"key":"b","value":"x","content_type":null,"version":1,"expires_at":null,"colour":"red"}"#
            ),
            2,
        ),
    ] {
        let r = import(&srv, ADMIN, "p", "", &body);
        assert_json(&r, 400);
        let j = r.json();
        assert_eq!(j["error"], "invalid_import", "{j}");
        assert_eq!(j["line"], line, "{body}: {j}");
        assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
        assert_eq!(j.as_object().unwrap().len(), 3, "extra fields: {j}");
        assert_eq!(get(&srv, ADMIN, "/v1/kv/p/a").status, 404);
        assert_eq!(project(&srv, "p"), before);
    }
}

#[test]
fn import_skips_blank_lines_and_ignores_project_and_version_fields() {
    let (srv, _, _) = start_p(json!({}));
    let body = format!(
        "\n{}\n\n{}\n\n",
        r#"{"project":"elsewhere","key":"a","value":"1","content_type":null,"version":999,"expires_at":null}"#,
        r#"{"key":"b","value":"2","content_type":null,"version":7,"expires_at":null}"#,
    );
    let r = import(&srv, ADMIN, "p", "", &body);
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({ "project": "p", "mode": "merge", "imported": 2, "removed": 0, "version": 1 })
    );
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/a").header("etag"), Some("\"1\""));
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/b").header("etag"), Some("\"1\""));
    assert_eq!(project(&srv, "p")["version"], 1);
}

#[test]
fn import_skips_entries_already_expired() {
    let (srv, _, _) = start_p(json!({}));
    let future = now_secs() + 3600;
    let body = format!(
        "{}\n{}",
        r#"{"key":"old","value":"1","content_type":null,"version":1,"expires_at":1}"#,
        format_args!(
            r#"{{"key":"new","value":"2","content_type":null,"version":1,"expires_at":{future}}}"#
        ),
    );
    let r = import(&srv, ADMIN, "p", "", &body);
    assert_json(&r, 200);
    assert_eq!(r.json()["imported"], 1);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/old").status, 404);
    let g = get(&srv, ADMIN, "/v1/kv/p/new");
    assert_eq!(g.status, 200);
    assert_eq!(g.header("x-expires-at"), Some(future.to_string().as_str()));
}

#[test]
fn import_restores_base64_values_and_content_types_exactly() {
    let (srv, _, _) = start_p(json!({}));
    let body = r#"{"key":"raw","base64":"AAEC/w==","content_type":"application/x-thing","version":3,"expires_at":null}"#;
    let r = import(&srv, ADMIN, "p", "", body);
    assert_json(&r, 200);
    let g = get(&srv, ADMIN, "/v1/kv/p/raw");
    assert_eq!(g.body, [0, 1, 2, 255]);
    assert_eq!(g.header("content-type"), Some("application/x-thing"));
}

#[test]
fn import_with_a_write_token_works_and_with_a_read_token_is_403() {
    let (srv, write, read) = start_p(json!({}));
    import(&srv, &read, "p", "", &entry("a", "1")).assert_error(403, "forbidden");
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/a").status, 404);
    let r = import(&srv, &write, "p", "", &entry("a", "1"));
    assert_json(&r, 200);
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/a").body, b"1");
}

#[test]
fn import_into_a_missing_project_is_404_project_not_found() {
    let (srv, _, _) = start_p(json!({}));
    import(&srv, ADMIN, "nope", "", &entry("a", "1")).assert_error(404, "project_not_found");
}

#[test]
fn import_body_over_max_import_bytes_is_413() {
    let (srv, _, _) = start_p(json!({ "limits": { "max_import_bytes": 200 } }));
    let line = entry("a", "1");
    let fits = format!("{line}{}", "\n".repeat(200 - line.len()));
    assert_eq!(fits.len(), 200);
    let r = import(&srv, ADMIN, "p", "", &fits);
    assert_json(&r, 200);
    let over = format!("{line}{}", "\n".repeat(201 - line.len()));
    import(&srv, ADMIN, "p", "?mode=replace", &over).assert_error(413, "payload_too_large");
    assert_eq!(get(&srv, ADMIN, "/v1/kv/p/a").body, b"1");
}

#[test]
fn import_body_may_exceed_max_value_bytes() {
    let (srv, _, _) =
        start_p(json!({ "limits": { "max_value_bytes": 64, "max_import_bytes": 4096 } }));
    let body: Vec<String> = (0..20).map(|i| entry(&format!("k{i:02}"), "v")).collect();
    let body = body.join("\n");
    assert!(body.len() > 64 * 10);
    let r = import(&srv, ADMIN, "p", "", &body);
    assert_json(&r, 200);
    assert_eq!(r.json()["imported"], 20);
}

/// Only a caller who may import can send an import-sized body: others are held to
/// max_value_bytes before any body byte is read, so strangers cannot make the server buffer
/// whole projects.
#[test]
fn import_sized_bodies_need_a_token_that_may_import() {
    let (srv, write, read) =
        start_p(json!({ "limits": { "max_value_bytes": 64, "max_import_bytes": 4096 } }));
    let body: Vec<String> = (0..20).map(|i| entry(&format!("k{i:02}"), "v")).collect();
    let body = body.join("\n");
    assert!(body.len() > 64);
    for token in ["pykv_00000000000000000000000000000000", read.as_str()] {
        import(&srv, token, "p", "", &body).assert_error(413, "payload_too_large");
    }
    let r = srv.req("POST", "/v1/projects/p/import", None, body.as_bytes());
    r.assert_error(413, "payload_too_large");
    let r = import(&srv, &write, "p", "", &body);
    assert_json(&r, 200);
    assert_eq!(r.json()["imported"], 20);
}

#[test]
fn export_then_import_into_another_project_gives_the_same_keys_and_values() {
    let (srv, _, _) = start_p(json!({}));
    fill_known(&srv);
    put_ok(&srv, "/v1/kv/p/%C3%BCn%C3%AF/%20quote%22", b"q\"\\\t");
    create_project(&srv, "q");
    let exported = export_text(&srv, "p");
    let r = import(&srv, ADMIN, "q", "?mode=replace", &exported);
    assert_json(&r, 200);
    assert_eq!(r.json()["imported"], 5);

    let strip = |mut listing: Value| {
        for e in listing["keys"].as_array_mut().unwrap() {
            e.as_object_mut().unwrap().remove("version");
        }
        listing
    };
    let from = strip(all_keys(&srv, "p"));
    assert_eq!(from["keys"].as_array().unwrap().len(), 5);
    assert_eq!(strip(all_keys(&srv, "q")), from);
    assert_eq!(
        without_versions(&export_text(&srv, "q")),
        without_versions(&exported)
    );
}

// ---------------------------------------------------------------------------------------------
// `pykv export` (offline)
// ---------------------------------------------------------------------------------------------

#[test]
fn pykv_export_prints_a_projects_lines_from_its_snapshot() {
    let (mut srv, _, _) = start_p(json!({}));
    let expected = fill_known(&srv);
    srv.stop();
    let data = srv.data_dir();
    let r = pykv_export(&["--data-dir", data.to_str().unwrap(), "--project", "p"]);
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    assert_eq!(lines(&r.stdout), expected);
    assert!(r.stdout.ends_with('\n'));
    assert_eq!(r.stderr, "");
}

#[test]
fn pykv_export_without_a_project_prints_every_project_with_its_name() {
    let (mut srv, _, _) = start_p(json!({}));
    let p_lines = fill_known(&srv);
    create_project(&srv, "q");
    let vq = put_typed_ok(&srv, "/v1/kv/q/x", Some("text/plain"), b"1");
    create_project(&srv, "empty");
    srv.stop();
    let data = srv.data_dir();
    let r = pykv_export(&["--data-dir", data.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    let mut expected: Vec<String> = p_lines
        .iter()
        .map(|l| format!(r#"{{"project":"p",{}"#, &l[1..]))
        .collect();
    expected.push(format!(
        r#"{{"project":"q","key":"x","value":"1","content_type":"text/plain","version":{vq},"expires_at":null}}"#
    ));
    let mut got = lines(&r.stdout);
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    // Lines of one project stay in key order.
    let p_order: Vec<String> = lines(&r.stdout)
        .into_iter()
        .filter(|l| l.starts_with(r#"{"project":"p","#))
        .collect();
    assert_eq!(
        p_order,
        p_lines
            .iter()
            .map(|l| format!(r#"{{"project":"p",{}"#, &l[1..]))
            .collect::<Vec<_>>()
    );
}

#[test]
fn pykv_export_output_imports_back() {
    let (mut srv, _, _) = start_p(json!({}));
    fill_known(&srv);
    let before = export_text(&srv, "p");
    srv.stop();
    let data = srv.data_dir();
    let r = pykv_export(&["--data-dir", data.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    let srv = srv.restart();
    create_project(&srv, "copy");
    let imported = import(&srv, ADMIN, "copy", "", &r.stdout);
    assert_json(&imported, 200);
    assert_eq!(imported.json()["imported"], 4);
    assert_eq!(
        without_versions(&export_text(&srv, "copy")),
        without_versions(&before)
    );
}

#[test]
fn pykv_export_of_an_unknown_project_exits_2_with_one_line() {
    let (mut srv, _, _) = start_p(json!({}));
    srv.stop();
    let data = srv.data_dir();
    let r = pykv_export(&["--data-dir", data.to_str().unwrap(), "--project", "nope"]);
    assert_eq!(r.code, Some(2), "stdout: {}", r.stdout);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr.lines().count(), 1, "stderr: {}", r.stderr);
    assert!(r.stderr.starts_with("pykv: "), "stderr: {}", r.stderr);
}

#[test]
fn pykv_export_of_a_missing_data_dir_exits_2_with_one_line() {
    let dir = TempDir::new();
    let missing = dir.path().join("no-such-dir");
    let r = pykv_export(&["--data-dir", missing.to_str().unwrap()]);
    assert_eq!(r.code, Some(2), "stdout: {}", r.stdout);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr.lines().count(), 1, "stderr: {}", r.stderr);
    assert!(r.stderr.starts_with("pykv: "), "stderr: {}", r.stderr);
}
