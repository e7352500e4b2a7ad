//! One request to either server ([`Api`]: the real binary over TCP, or the in-process harness),
//! and the request helpers and assertions that several test files share.

use serde_json::{json, Value};

use super::{request_bytes, Resp, ADMIN};

/// What a test can ask of a server, in-process or over TCP: send one request, read one answer.
pub trait Api {
    /// Send one request's bytes; its answer (`head_only`: the request was HEAD).
    fn send(&self, request: &[u8], head_only: bool) -> Resp;

    /// Send one request after which the server closes the connection; its answer and every
    /// byte the server sent after it (none, for a HEAD or a 204).
    fn send_then_close(&self, request: &[u8], head_only: bool) -> (Resp, Vec<u8>);

    /// One request.
    fn req(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Resp {
        self.req_h(method, path, token, &[], body)
    }

    /// One request with extra headers.
    fn req_h(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let bytes = request_bytes(method, path, token, headers, body);
        self.send(&bytes, method == "HEAD")
    }

    /// One request as the admin with `Connection: close` and extra headers: the answer and
    /// every byte the server sent after it.
    fn req_close(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (Resp, Vec<u8>) {
        let mut all = vec![("Connection", "close")];
        all.extend_from_slice(headers);
        let bytes = request_bytes(method, path, Some(ADMIN), &all, body);
        self.send_then_close(&bytes, method == "HEAD")
    }
}

/// Create an API project; returns (write secret, read secret).
pub fn create_project(srv: &impl Api, name: &str) -> (String, String) {
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

/// Create a token on project `p` as the admin (`prefix`: scoped to it); returns (id as it
/// appears in a path, secret).
pub fn create_token(
    srv: &impl Api,
    label: &str,
    access: &str,
    prefix: Option<&str>,
) -> (String, String) {
    let mut body = json!({ "label": label, "access": access });
    if let Some(prefix) = prefix {
        body["prefix"] = json!(prefix);
    }
    let r = srv.req(
        "POST",
        "/v1/projects/p/tokens",
        Some(ADMIN),
        &serde_json::to_vec(&body).unwrap(),
    );
    assert_json(&r, 201);
    let j = r.json();
    (
        id_path(&j["id"]),
        j["secret"].as_str().expect("secret").to_string(),
    )
}

/// A token id as it appears in a path (the spec does not fix its JSON type).
pub fn id_path(v: &Value) -> String {
    match v {
        Value::String(s) => {
            assert!(!s.is_empty(), "empty token id");
            s.clone()
        }
        Value::Number(n) => n.to_string(),
        other => panic!("token id is neither string nor number: {other}"),
    }
}

/// PUT as the admin.
pub fn put(srv: &impl Api, path: &str, value: &[u8]) -> Resp {
    srv.req("PUT", path, Some(ADMIN), value)
}

/// PUT as the admin, with extra headers.
pub fn put_h(srv: &impl Api, path: &str, headers: &[(&str, &str)], value: &[u8]) -> Resp {
    srv.req_h("PUT", path, Some(ADMIN), headers, value)
}

/// PUT with `token`.
pub fn put_as(srv: &impl Api, token: &str, path: &str, value: &[u8]) -> Resp {
    srv.req("PUT", path, Some(token), value)
}

/// PUT as the admin that must succeed (201 or 200); returns the new version.
pub fn put_ok(srv: &impl Api, path: &str, value: &[u8]) -> u64 {
    put_typed_ok(srv, path, None, value)
}

/// PUT as the admin, with this Content-Type (None: none), that must succeed; returns the new
/// version.
pub fn put_typed_ok(srv: &impl Api, path: &str, content_type: Option<&str>, value: &[u8]) -> u64 {
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

/// GET as the admin.
pub fn get(srv: &impl Api, path: &str) -> Resp {
    srv.req("GET", path, Some(ADMIN), b"")
}

/// GET as the admin, with extra headers.
pub fn get_h(srv: &impl Api, path: &str, headers: &[(&str, &str)]) -> Resp {
    srv.req_h("GET", path, Some(ADMIN), headers, b"")
}

/// GET with `token`.
pub fn get_as(srv: &impl Api, token: &str, path: &str) -> Resp {
    srv.req("GET", path, Some(token), b"")
}

/// POST as the admin.
pub fn post(srv: &impl Api, path: &str, body: &[u8]) -> Resp {
    srv.req("POST", path, Some(ADMIN), body)
}

/// DELETE as the admin.
pub fn delete(srv: &impl Api, path: &str) -> Resp {
    srv.req("DELETE", path, Some(ADMIN), b"")
}

/// PATCH `/v1/projects/{name}` as the admin.
pub fn patch(srv: &impl Api, name: &str, body: Value) -> Resp {
    srv.req(
        "PATCH",
        &format!("/v1/projects/{name}"),
        Some(ADMIN),
        &serde_json::to_vec(&body).unwrap(),
    )
}

/// `GET /v1/projects/{name}` as the admin, which must answer 200 JSON.
pub fn project(srv: &impl Api, name: &str) -> Value {
    let r = get(srv, &format!("/v1/projects/{name}"));
    assert_json(&r, 200);
    r.json()
}

/// Project `p`'s version.
pub fn project_version(srv: &impl Api) -> u64 {
    project(srv, "p")["version"]
        .as_u64()
        .expect("project version")
}

/// `POST /v1/kv/p` with this batch, as the admin.
pub fn batch(srv: &impl Api, body: Value) -> Resp {
    batch_as(srv, ADMIN, body)
}

/// `POST /v1/kv/p` with this batch, with `token`.
pub fn batch_as(srv: &impl Api, token: &str, body: Value) -> Resp {
    srv.req(
        "POST",
        "/v1/kv/p",
        Some(token),
        &serde_json::to_vec(&body).unwrap(),
    )
}

/// The JSON listing of `p` as the admin with this query, which must answer 200.
pub fn list_json(srv: &impl Api, query: &str) -> Value {
    list_as(srv, ADMIN, query)
}

/// The JSON listing of `p` with `token` and this query, which must answer 200.
pub fn list_as(srv: &impl Api, token: &str, query: &str) -> Value {
    let r = get_as(srv, token, &format!("/v1/kv/p?{query}"));
    assert_json(&r, 200);
    r.json()
}

/// `POST /v1/projects/{project}/import{query}` with `token`.
pub fn import(srv: &impl Api, token: &str, project: &str, query: &str, body: &str) -> Resp {
    srv.req(
        "POST",
        &format!("/v1/projects/{project}/import{query}"),
        Some(token),
        body.as_bytes(),
    )
}

/// `GET /health`, which must answer 200 JSON.
pub fn health(srv: &impl Api) -> Value {
    let r = srv.req("GET", "/health", None, b"");
    assert_json(&r, 200);
    r.json()
}

/// `GET /metrics` as the admin, which must answer 200.
pub fn metrics(srv: &impl Api) -> String {
    let r = get(srv, "/metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

/// The value of one series (`name{labels}` exactly as rendered), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?.strip_prefix(' ')?;
        Some(rest.parse().expect("a sample value is a number"))
    })
}

/// `pykv_requests_total` for this route label and status (0 when absent).
pub fn requests(text: &str, route: &str, status: u16) -> f64 {
    sample(
        text,
        &format!("pykv_requests_total{{route=\"{route}\",status=\"{status}\"}}"),
    )
    .unwrap_or(0.0)
}

/// An ETag for `version`.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// The `X-Expires-At` header as a number; it must be present.
pub fn expires_at(r: &Resp) -> u64 {
    r.header("x-expires-at")
        .unwrap_or_else(|| panic!("no X-Expires-At: {:?}", r.headers))
        .parse()
        .expect("X-Expires-At is whole seconds")
}

/// This status, with a JSON body.
pub fn assert_json(r: &Resp, status: u16) {
    assert_eq!(r.status, status, "body: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
}

/// A value answer: status 200, these bytes, this Content-Type and ETag.
pub fn assert_value(r: &Resp, body: &[u8], content_type: &str, version: u64) {
    assert_eq!(r.status, 200, "body: {}", r.text());
    assert_eq!(r.body, body, "body: {}", r.text());
    assert_eq!(r.header("content-type"), Some(content_type));
    assert_eq!(r.header("etag"), Some(etag(version).as_str()));
}

/// An error with exactly `error`, `message` and `index` (of a batch op, or an import line).
pub fn assert_indexed_error(r: &Resp, status: u16, code: &str, index: u64) {
    assert_json(r, status);
    let j = r.json();
    assert_eq!(j["error"], code, "{j}");
    assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
    assert_eq!(j["index"], index, "{j}");
    assert_eq!(j.as_object().unwrap().len(), 3, "extra fields: {j}");
}

/// A batch error whose message also names the op's index.
pub fn assert_batch_error(r: &Resp, status: u16, code: &str, index: u64) {
    assert_indexed_error(r, status, code, index);
    let j = r.json();
    let message = j["message"].as_str().unwrap_or("");
    assert!(message.contains(&index.to_string()), "message: {j}");
}

/// A 507 `quota_exceeded` whose message names the quota and its value.
pub fn assert_quota(r: &Resp, quota: &str, limit: u64) {
    r.assert_error(507, "quota_exceeded");
    assert_quota_message(r, quota, limit);
}

/// The error's message names the quota and its value.
pub fn assert_quota_message(r: &Resp, quota: &str, limit: u64) {
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(quota) && message.contains(&limit.to_string()),
        "message does not name {quota} = {limit}: {message}"
    );
}

/// What `GET /health` answers while all is well.
pub const HEALTH_BODY: &str = "{\"status\":\"ok\",\"version\":\"0.1.0\"}\n";

/// Whether `v` is an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn is_http_date(v: &str) -> bool {
    let b = v.as_bytes();
    v.len() == 29
        && v.ends_with(" GMT")
        && &v[3..5] == ", "
        && ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&&v[..3])
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[19] == b':'
        && b[22] == b':'
}

/// The headers every response carries, and a Content-Length that matches the body read.
pub fn assert_standard_headers(r: &Resp) {
    let date = r.header("date").expect("Date header");
    assert!(is_http_date(date), "bad Date {date:?}");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    for name in ["date", "content-type", "content-length", "connection"] {
        let n = r.headers.iter().filter(|(k, _)| k == name).count();
        assert!(n <= 1, "{name} sent {n} times: {:?}", r.headers);
    }
    if r.status != 204 && r.status != 304 {
        assert!(r.header("content-type").is_some(), "no Content-Type: {r:?}");
        assert_eq!(
            r.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );
    }
}

/// The exact answer of a healthy `/health`.
pub fn assert_health(r: &Resp) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.reason, "OK");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), HEALTH_BODY);
    assert_standard_headers(r);
}

/// A JSON error with this status and any error code (the spec names no code for the case).
pub fn assert_some_error(r: &Resp, status: u16) {
    assert_json(r, status);
    let j = r.json();
    assert!(
        j["error"].as_str().is_some_and(|c| !c.is_empty()),
        "code: {j}"
    );
    assert!(
        j["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message: {j}"
    );
    assert_eq!(j.as_object().unwrap().len(), 2, "extra fields: {j}");
}

/// Every key of `project` with its value, as the admin's `values=true` listing shows them.
pub fn all_keys(srv: &impl Api, project: &str) -> Value {
    let r = get(srv, &format!("/v1/kv/{project}?values=true&limit=1000"));
    assert_json(&r, 200);
    r.json()
}

/// `GET /v1/projects/{project}/export` with `token` (a chunked answer, read whole).
pub fn export(srv: &impl Api, project: &str, token: &str) -> Resp {
    get_as(srv, token, &format!("/v1/projects/{project}/export"))
}

/// PUT key `key` of project `p` with `token`.
pub fn put_key(srv: &impl Api, token: &str, key: &str, body: &[u8]) -> Resp {
    srv.req("PUT", &format!("/v1/kv/p/{key}"), Some(token), body)
}

/// GET key `key` of project `p` with `token`.
pub fn get_key(srv: &impl Api, token: &str, key: &str) -> Resp {
    srv.req("GET", &format!("/v1/kv/p/{key}"), Some(token), b"")
}

/// The write token of project `cfg`, declared in config.json (`config_project`).
pub const CFG_WRITE: &str = "cfg-write-secret-0123456789";

/// config.json fields declaring project `cfg` with one write token.
pub fn config_project() -> Value {
    json!({ "projects": { "cfg": { "tokens": [
        { "label": "ci", "access": "write", "secret": CFG_WRITE }
    ] } } })
}

/// Every byte value, once.
pub fn all_bytes() -> Vec<u8> {
    (0..=255u8).collect()
}

/// A request as the admin with a JSON body (`Value::Null`: none).
pub fn admin_json(srv: &impl Api, method: &str, path: &str, body: Value) -> Resp {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    srv.req(method, path, Some(ADMIN), &bytes)
}

/// Assert a successful PUT answer for `key` in project `p`; returns its version (the ETag).
pub fn assert_put(r: &Resp, status: u16, key: &str) -> u64 {
    assert_eq!(r.status, status, "body: {}", r.text());
    let j = r.json();
    let version = j["version"]
        .as_u64()
        .unwrap_or_else(|| panic!("no version: {j}"));
    assert_eq!(j, json!({"project": "p", "key": key, "version": version}));
    assert_eq!(r.header("etag"), Some(format!("\"{version}\"").as_str()));
    version
}

/// The write and read tokens of project `legacy` (`compat_config`).
pub const LEGACY_WRITE: &str = "legacy-write-secret-0123456789";
pub const LEGACY_READ: &str = "legacy-read-secret-0123456789";

/// A config whose PyKV-compatible routes use the config project `legacy`, with `extra` fields
/// merged into that project's config.
pub fn compat_config(extra: Value) -> Value {
    let mut legacy = json!({ "tokens": [
        { "label": "app", "access": "write", "secret": LEGACY_WRITE },
        { "label": "viewer", "access": "read", "secret": LEGACY_READ },
    ] });
    for (k, v) in extra.as_object().unwrap() {
        legacy[k] = v.clone();
    }
    json!({ "compat_project": "legacy", "projects": { "legacy": legacy } })
}

/// The `WWW-Authenticate` headers, in order.
pub fn challenges(r: &Resp) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(k, _)| k == "www-authenticate")
        .map(|(_, v)| v.as_str())
        .collect()
}

/// How long a `ttl=1` key may take to disappear on the real server: up to a second to its
/// expiry second, a loop turn and slack for a loaded machine.
pub const EXPIRY_LIMIT: std::time::Duration = std::time::Duration::from_millis(3500);

/// `GET /v1/kv/{project}?{query}` as the admin that must answer 200; returns the JSON body.
pub fn list_keys(srv: &impl Api, project: &str, query: &str) -> Value {
    let path = if query.is_empty() {
        format!("/v1/kv/{project}")
    } else {
        format!("/v1/kv/{project}?{query}")
    };
    let r = get(srv, &path);
    assert_json(&r, 200);
    r.json()
}

/// A browser app's origin, allowed by the CORS tests' configs.
pub const ORIGIN: &str = "https://app.example";
