//! The OpenAPI document (`src/api/openapi.json`, served at `GET /openapi.json`) held against the
//! real server: every documented operation is driven over HTTP, in success and error cases, and
//! every answer must have a documented status, a documented Content-Type, a body valid against
//! the documented schema and every documented required header. A small JSON-schema validator
//! below covers the subset of keywords the document uses; another test keeps the document inside
//! that subset.

mod common;
use common::disk::{align_journal, Disk};
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/openapi.json");
const METHODS: &[&str] = &["get", "head", "put", "post", "patch", "delete", "options"];

/// Secrets of the config-declared project `legacy` (the compat project).
const LW: &str = "legacy-write-secret-0123456789";
const LR: &str = "legacy-read-secret-0123456789";
const LS: &str = "legacy-scoped-secret-012345678";
const ORIGIN: &str = "https://app.example";

fn load_doc() -> Value {
    let text = std::fs::read_to_string(DOC_PATH).expect("read openapi.json");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

/// Run `f` on its own thread; fail if it takes longer than `limit` (a hung server must fail the
/// test, not hang the run). A panic in `f` is passed on.
fn bounded(limit: Duration, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => handle.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(e) = handle.join() {
                std::panic::resume_unwind(e);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {limit:?}"),
    }
}

// ------------------------------------------------------------------------------------------
// A JSON-schema validator for the subset the document uses.

/// Keywords that only annotate (not checked here: `pattern` needs a regex engine).
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "default",
    "format",
    "pattern",
    "examples",
];
const CHECKED: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "oneOf",
    "anyOf",
    "allOf",
];

fn pointer<'a>(doc: &'a Value, r: &str) -> &'a Value {
    let p = r
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("only local $refs: {r}"));
    doc.pointer(p)
        .unwrap_or_else(|| panic!("dangling $ref {r}"))
}

/// Follow `$ref`s (of parameters, responses, headers) to the object itself.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    while let Some(r) = v.get("$ref").and_then(Value::as_str) {
        v = pointer(doc, r);
    }
    v
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        other => panic!("unknown type {other:?}"),
    }
}

fn as_int(v: &Value) -> Option<i128> {
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
}

/// Whether `v` is below (`-1`), at (`0`) or above (`1`) the bound `b`.
fn compare(v: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (as_int(v), as_int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => v.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn validate(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let obj = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err(format!("{at}: nothing is allowed here")),
        Value::Object(o) => o,
        _ => return Err(format!("{at}: bad schema {schema}")),
    };
    for (k, s) in obj {
        match k.as_str() {
            "$ref" => validate(doc, pointer(doc, s.as_str().unwrap()), v, at)?,
            "type" => {
                let types: Vec<&str> = match s {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(a) => a.iter().map(|t| t.as_str().unwrap()).collect(),
                    _ => return Err(format!("{at}: bad type {s}")),
                };
                if !types.iter().any(|t| has_type(v, t)) {
                    return Err(format!("{at}: {v} is not of type {s}"));
                }
            }
            "enum" => {
                if !s.as_array().unwrap().contains(v) {
                    return Err(format!("{at}: {v} is not one of {s}"));
                }
            }
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (name, ps) in s.as_object().unwrap() {
                        if let Some(pv) = o.get(name) {
                            validate(doc, ps, pv, &format!("{at}.{name}"))?;
                        }
                    }
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for r in s.as_array().unwrap() {
                        let r = r.as_str().unwrap();
                        if !o.contains_key(r) {
                            return Err(format!("{at}: required field {r:?} missing in {v}"));
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = v.as_object() {
                    let declared = obj.get("properties").and_then(Value::as_object);
                    for (name, pv) in o {
                        if declared.is_some_and(|p| p.contains_key(name)) {
                            continue;
                        }
                        match s {
                            Value::Bool(false) => {
                                return Err(format!("{at}: field {name:?} is not allowed in {v}"))
                            }
                            other => validate(doc, other, pv, &format!("{at}.{name}"))?,
                        }
                    }
                }
            }
            "items" => {
                if let Some(a) = v.as_array() {
                    for (i, x) in a.iter().enumerate() {
                        validate(doc, s, x, &format!("{at}[{i}]"))?;
                    }
                }
            }
            "minItems" | "maxItems" => {
                if let Some(a) = v.as_array() {
                    let n = s.as_u64().unwrap() as usize;
                    if (k == "minItems" && a.len() < n) || (k == "maxItems" && a.len() > n) {
                        return Err(format!("{at}: {} items breaks {k} {n}", a.len()));
                    }
                }
            }
            "minLength" | "maxLength" => {
                if let Some(t) = v.as_str() {
                    let n = s.as_u64().unwrap() as usize;
                    let len = t.chars().count();
                    if (k == "minLength" && len < n) || (k == "maxLength" && len > n) {
                        return Err(format!("{at}: {v} breaks {k} {n}"));
                    }
                }
            }
            "minimum" | "maximum" => {
                if v.is_number() {
                    let ord = compare(v, s).ok_or_else(|| format!("{at}: cannot compare {v}"))?;
                    let bad = if k == "minimum" {
                        ord.is_lt()
                    } else {
                        ord.is_gt()
                    };
                    if bad {
                        return Err(format!("{at}: {v} breaks {k} {s}"));
                    }
                }
            }
            "oneOf" | "anyOf" => {
                let errors: Vec<String> = s
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|sub| validate(doc, sub, v, at).err())
                    .collect();
                let matched = s.as_array().unwrap().len() - errors.len();
                if matched == 0 || (k == "oneOf" && matched > 1) {
                    return Err(format!(
                        "{at}: {v} matches {matched} of the {k} schemas: {errors:?}"
                    ));
                }
            }
            "allOf" => {
                for sub in s.as_array().unwrap() {
                    validate(doc, sub, v, at)?;
                }
            }
            a if ANNOTATIONS.contains(&a) => {}
            other => {
                return Err(format!(
                    "{at}: schema keyword {other:?} is not validated here"
                ))
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// A client that reads whole answers (chunked ones too) and checks each against the document.

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The body of a chunked transfer, once its last chunk is in `raw`.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..eol]).expect("chunk size is ASCII");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("hex chunk size");
        raw = &raw[eol + 2..];
        if size == 0 {
            return raw.starts_with(b"\r\n").then_some(out);
        }
        if raw.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&raw[..size]);
        assert_eq!(&raw[size..size + 2], b"\r\n", "chunk ends with CRLF");
        raw = &raw[size + 2..];
    }
}

/// Send one request and read its whole answer (the connection is then dropped). `body: None`
/// sends no body (`Content-Length: 0` on PUT/POST/PATCH unless the headers name a length).
/// Requests are keep-alive, as curl sends them, and the answer is read as far as it says.
fn exchange(
    srv: &Server,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut s = srv.connect();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    let mut has_len = false;
    for (k, v) in headers {
        has_len |= k.eq_ignore_ascii_case("content-length");
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or(b"");
    if !has_len && (!body.is_empty() || matches!(method, "PUT" | "POST" | "PATCH")) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes).unwrap();
    read_reply(&mut s, method == "HEAD").unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

/// Read one answer from `s`, up to its end as its head describes it.
fn read_reply(s: &mut impl Read, head_only: bool) -> Result<Reply, String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if let Some(reply) = parse_reply(&raw, head_only)? {
            return Ok(reply);
        }
        match s.read(&mut buf) {
            Ok(0) => {
                return Err(format!(
                    "connection closed before the answer was complete: {:?}",
                    String::from_utf8_lossy(&raw)
                ))
            }
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read error {e} after {} bytes", raw.len())),
        }
    }
}

/// The answer in `raw`, once it is complete (None: not yet).
fn parse_reply(raw: &[u8], head_only: bool) -> Result<Option<Reply>, String> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&raw[..end]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("bad status line")?;
    let mut headers = Vec::new();
    for l in lines {
        let (k, v) = l.split_once(':').ok_or("bad header")?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let rest = &raw[end + 4..];
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || status == 204 || status == 304 {
        if !rest.is_empty() {
            return Err(format!("{} bytes after a bodiless answer", rest.len()));
        }
        return Ok(Some(reply));
    }
    if reply.header("transfer-encoding") == Some("chunked") {
        match dechunk(rest) {
            Some(body) => reply.body = body,
            None => return Ok(None),
        }
    } else {
        let len: usize = reply
            .header("content-length")
            .ok_or("no Content-Length")?
            .parse()
            .map_err(|_| "bad Content-Length")?;
        if rest.len() < len {
            return Ok(None);
        }
        if rest.len() > len {
            return Err(format!("Content-Length {len} but {} bytes", rest.len()));
        }
        reply.body = rest.to_vec();
    }
    Ok(Some(reply))
}

/// Credentials, as each security scheme sends them.
#[derive(Clone, Copy)]
enum Auth<'a> {
    No,
    Bearer(&'a str),
    Basic(&'a str),
    ApiKey(&'a str),
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Drives requests and checks every answer against the document; remembers what it covered.
struct Checker<'s> {
    srv: &'s Server,
    doc: Value,
    /// (path template, method) → statuses seen.
    seen: BTreeMap<(String, String), BTreeSet<u16>>,
}

impl<'s> Checker<'s> {
    fn new(srv: &'s Server, doc: Value) -> Checker<'s> {
        Checker {
            srv,
            doc,
            seen: BTreeMap::new(),
        }
    }

    /// Send, check against the document, and assert the status is `expect`.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        expect: u16,
        template: &str,
        method: &str,
        target: &str,
        auth: Auth,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let mut all: Vec<(&str, String)> = Vec::new();
        match auth {
            Auth::No => {}
            Auth::Bearer(t) => all.push(("Authorization", format!("Bearer {t}"))),
            Auth::Basic(t) => all.push((
                "Authorization",
                format!("Basic {}", base64(format!(":{t}").as_bytes())),
            )),
            Auth::ApiKey(t) => all.push(("X-API-Key", t.to_string())),
        }
        for (k, v) in headers {
            all.push((k, v.to_string()));
        }
        let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = exchange(self.srv, method, target, &refs, body);
        assert_eq!(
            r.status,
            expect,
            "{method} {target}: expected {expect}, got {}: {}",
            r.status,
            r.text()
        );
        self.check(template, method, target, &r);
        r
    }

    /// Shorthand: a request with a bearer token (or none) and an optional body.
    fn go(
        &mut self,
        expect: u16,
        template: &str,
        method: &str,
        target: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> Reply {
        let auth = token.map_or(Auth::No, Auth::Bearer);
        self.call(expect, template, method, target, auth, &[], body)
    }

    /// Assert that answer `r` to `method template` is what the document says.
    fn check(&mut self, template: &str, method: &str, target: &str, r: &Reply) {
        let doc = &self.doc;
        let what = format!("{method} {target} ({template}) → {}", r.status);
        let op = doc["paths"][template]
            .get(method.to_ascii_lowercase())
            .unwrap_or_else(|| panic!("{what}: operation not documented"));
        let resp = op["responses"]
            .get(r.status.to_string())
            .unwrap_or_else(|| panic!("{what}: status not documented: {}", r.text()));
        let resp = resolve(doc, resp);
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        // Documented headers: the required ones are there, every one present has its type.
        if let Some(hs) = resp.get("headers").and_then(Value::as_object) {
            for (name, h) in hs {
                let h = resolve(doc, h);
                let value = r.header(name);
                if h["required"] == true {
                    assert!(value.is_some(), "{what}: header {name} missing");
                }
                let Some(value) = value else { continue };
                let schema = &h["schema"];
                let v = if schema["type"] == "integer" {
                    json!(value
                        .parse::<i128>()
                        .ok()
                        .and_then(|n| i64::try_from(n).ok())
                        .unwrap_or_else(|| panic!(
                            "{what}: header {name}: {value:?} is no integer"
                        )))
                } else {
                    json!(value)
                };
                validate(doc, schema, &v, &format!("{what} header {name}"))
                    .unwrap_or_else(|e| panic!("{e}"));
                if name == "ETag" {
                    let digits = value
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or("");
                    assert!(
                        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
                        "{what}: ETag {value:?}"
                    );
                }
            }
        }
        let ct = r.header("content-type");
        match resp.get("content").and_then(Value::as_object) {
            None => {
                assert_eq!(ct, None, "{what}: a Content-Type where none is documented");
                assert!(r.body.is_empty(), "{what}: a body where none is documented");
            }
            Some(content) => {
                let ct = ct.unwrap_or_else(|| panic!("{what}: no Content-Type"));
                let (_, media) = content
                    .iter()
                    .find(|(k, _)| media_matches(k, ct))
                    .unwrap_or_else(|| {
                        panic!(
                            "{what}: Content-Type {ct:?} is not documented ({:?})",
                            content.keys().collect::<Vec<_>>()
                        )
                    });
                if method == "HEAD" {
                    assert!(r.body.is_empty(), "{what}: a HEAD answer with a body");
                } else {
                    check_body(doc, media, ct, &r.body, &what);
                }
            }
        }
        self.seen
            .entry((template.to_string(), method.to_ascii_lowercase()))
            .or_default()
            .insert(r.status);
    }

    /// Every operation of the document was driven at least once; statuses never seen are listed.
    fn assert_every_operation_covered(&self) {
        let mut missing = Vec::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if !METHODS.contains(&method.as_str()) {
                    continue;
                }
                let key = (path.clone(), method.clone());
                match self.seen.get(&key) {
                    None => missing.push(format!("{method} {path}")),
                    Some(statuses) => {
                        let unseen: Vec<&String> = op["responses"]
                            .as_object()
                            .unwrap()
                            .keys()
                            .filter(|s| !statuses.contains(&s.parse().unwrap()))
                            .collect();
                        if !unseen.is_empty() {
                            eprintln!("not reached: {method} {path} {unseen:?}");
                        }
                    }
                }
            }
        }
        assert!(missing.is_empty(), "operations never driven: {missing:?}");
    }
}

fn media_matches(documented: &str, actual: &str) -> bool {
    documented == "*/*"
        || documented.eq_ignore_ascii_case(actual)
        || documented.strip_suffix("/*").is_some_and(|t| {
            actual
                .split('/')
                .next()
                .is_some_and(|a| a.eq_ignore_ascii_case(t))
        })
}

fn check_body(doc: &Value, media: &Value, ct: &str, body: &[u8], what: &str) {
    let Some(schema) = media.get("schema") else {
        return;
    };
    if let Some(line_schema) = media.get("x-pykv-line-schema") {
        let text = std::str::from_utf8(body).unwrap_or_else(|_| panic!("{what}: not UTF-8"));
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{what}: lines end with LF"
        );
        for (i, line) in text.lines().enumerate() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{what}: line {} is not JSON ({e}): {line}", i + 1));
            validate(doc, line_schema, &v, &format!("{what} line {}", i + 1))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    } else if ct == "application/json" {
        let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "{what}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(body)
            )
        });
        validate(doc, schema, &v, what).unwrap_or_else(|e| panic!("{e}"));
    } else if schema["format"] == "binary" {
        // Any bytes.
    } else if schema["type"] == "string" {
        let text = std::str::from_utf8(body).unwrap_or_else(|_| panic!("{what}: not UTF-8"));
        validate(doc, schema, &json!(text), what).unwrap_or_else(|e| panic!("{e}"));
    } else {
        panic!("{what}: no way to check a {ct} body against {schema}");
    }
}

fn error_code(r: &Reply) -> String {
    r.json()["error"].as_str().unwrap_or("").to_string()
}

fn main_config() -> Value {
    json!({
        "compat_project": "legacy",
        "cors_origins": [ORIGIN],
        "max_watches": 1,
        "limits": {"max_value_bytes": 4096, "max_import_bytes": 8192},
        "projects": {"legacy": {"max_keys": 4, "tokens": [
            {"label": "writer", "access": "write", "secret": LW},
            {"label": "reader", "access": "read", "secret": LR},
            {"label": "sensors", "access": "write", "secret": LS, "prefix": "sensors/"}
        ]}}
    })
}

/// A head declaring a body over the limit, without the body: answered 413 at once.
const TOO_LONG: &[(&str, &str)] = &[("Content-Length", "100000")];

// ------------------------------------------------------------------------------------------

#[test]
fn every_operation_answers_as_documented() {
    bounded(Duration::from_secs(120), every_operation_body);
}

fn every_operation_body() {
    let srv = Server::start(main_config());
    let doc = load_doc();
    let mut c = Checker::new(&srv, doc.clone());
    let a = Some(ADMIN);
    let nobody = Some("pykv_00000000000000000000000000000000");

    // The document itself, served as the file says.
    let r = c.go(200, "/openapi.json", "GET", "/openapi.json", None, None);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        doc,
        "GET /openapi.json serves src/api/openapi.json"
    );
    c.go(200, "/openapi.json", "HEAD", "/openapi.json", None, None);
    c.go(200, "/openapi.json", "GET", "/openapi.json?x=1", None, None);

    // Health and metrics.
    let r = c.go(200, "/health", "GET", "/health", None, None);
    assert_eq!(r.json()["status"], "ok");
    c.go(200, "/health", "HEAD", "/health", None, None);
    let r = c.call(
        400,
        "/health",
        "GET",
        "/health",
        Auth::No,
        &[("Content-Length", "abc")],
        None,
    );
    assert_eq!(error_code(&r), "bad_request");
    // Over the connection layer's limits: the target, then the head.
    let long_target = format!("/v1/kv/demo/{}", "k".repeat(9000));
    let r = c.go(414, "/v1/kv/{project}/{key}", "GET", &long_target, a, None);
    assert_eq!(error_code(&r), "uri_too_long");
    let big = "x".repeat(17000);
    let r = c.call(
        431,
        "/v1/projects",
        "GET",
        "/v1/projects",
        Auth::Bearer(ADMIN),
        &[("X-Padding", big.as_str())],
        None,
    );
    assert_eq!(error_code(&r), "header_too_large");
    c.go(200, "/metrics", "GET", "/metrics", a, None);
    c.go(200, "/metrics", "HEAD", "/metrics", a, None);
    c.go(401, "/metrics", "GET", "/metrics", None, None);
    c.go(403, "/metrics", "GET", "/metrics", Some(LW), None);
    c.go(400, "/metrics", "GET", "/metrics?x=1", a, None);
    c.go(401, "/metrics", "HEAD", "/metrics", None, None);

    // Projects.
    let p = "/v1/projects";
    c.go(200, p, "GET", p, a, None);
    c.go(200, p, "HEAD", p, a, None);
    let r = c.go(401, p, "GET", p, nobody, None);
    assert_eq!(error_code(&r), "unauthorized");
    c.go(403, p, "GET", p, Some(LW), None);
    c.go(400, p, "GET", "/v1/projects?limit=1", a, None);
    let r = c.go(201, p, "POST", p, a, Some(br#"{"name":"demo"}"#));
    let tokens = r.json()["tokens"].as_array().unwrap().clone();
    let secret = |access: &str| {
        tokens.iter().find(|t| t["access"] == access).unwrap()["secret"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (dw, dr) = (secret("write"), secret("read"));
    let (dw, dr) = (Some(dw.as_str()), Some(dr.as_str()));
    c.go(409, p, "POST", p, a, Some(br#"{"name":"demo"}"#));
    let r = c.go(400, p, "POST", p, a, Some(b"{"));
    assert_eq!(error_code(&r), "invalid_json");
    let r = c.go(400, p, "POST", p, a, Some(br#"{"name":"Bad Name"}"#));
    assert_eq!(error_code(&r), "invalid_project_name");
    c.go(400, p, "POST", p, a, Some(br#"{"name":"x","extra":1}"#));
    c.go(401, p, "POST", p, None, Some(br#"{"name":"x"}"#));
    c.go(403, p, "POST", p, dw, Some(br#"{"name":"x"}"#));
    c.call(413, p, "POST", p, Auth::Bearer(ADMIN), TOO_LONG, None);
    for body in [
        r#"{"name":"tmp1","persistence":"memory"}"#,
        r#"{"name":"small","persistence":null}"#,
        r#"{"name":"imp"}"#,
    ] {
        c.go(201, p, "POST", p, a, Some(body.as_bytes()));
    }

    // One project.
    let t = "/v1/projects/{project}";
    let r = c.go(200, t, "GET", "/v1/projects/demo", a, None);
    assert_eq!(r.json()["max_keys"], Value::Null);
    c.go(200, t, "HEAD", "/v1/projects/demo", a, None);
    c.go(200, t, "GET", "/v1/projects/legacy", a, None);
    c.go(404, t, "GET", "/v1/projects/nosuch", a, None);
    c.go(404, t, "HEAD", "/v1/projects/nosuch", a, None);
    let r = c.go(400, t, "GET", "/v1/projects/BAD", a, None);
    assert_eq!(error_code(&r), "invalid_project_name");
    c.go(400, t, "GET", "/v1/projects/demo?x", a, None);
    c.go(403, t, "GET", "/v1/projects/demo", dw, None);
    c.go(401, t, "GET", "/v1/projects/demo", None, None);
    let patch = br#"{"max_keys":1,"max_bytes":null}"#;
    let r = c.go(200, t, "PATCH", "/v1/projects/small", a, Some(patch));
    assert_eq!(r.json()["max_keys"], 1);
    c.go(
        200,
        t,
        "PATCH",
        "/v1/projects/imp",
        a,
        Some(br#"{"persistence":"interval","max_keys":3}"#),
    );
    c.go(409, t, "PATCH", "/v1/projects/legacy", a, Some(patch));
    c.go(400, t, "PATCH", "/v1/projects/small", a, Some(b"["));
    c.go(404, t, "PATCH", "/v1/projects/nosuch", a, Some(patch));
    c.go(401, t, "PATCH", "/v1/projects/small", None, Some(patch));
    c.go(403, t, "PATCH", "/v1/projects/small", dw, Some(patch));
    c.call(
        413,
        t,
        "PATCH",
        "/v1/projects/small",
        Auth::Bearer(ADMIN),
        TOO_LONG,
        None,
    );
    c.go(204, t, "DELETE", "/v1/projects/tmp1", a, None);
    c.go(404, t, "DELETE", "/v1/projects/tmp1", a, None);
    c.go(409, t, "DELETE", "/v1/projects/legacy", a, None);
    c.go(400, t, "DELETE", "/v1/projects/demo?x=1", a, None);
    c.go(401, t, "DELETE", "/v1/projects/demo", None, None);
    c.go(403, t, "DELETE", "/v1/projects/demo", dw, None);

    // Tokens.
    let t = "/v1/projects/{project}/tokens";
    let r = c.go(200, t, "GET", "/v1/projects/legacy/tokens", a, None);
    assert!(r.json()["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["prefix"] == "sensors/"));
    c.go(200, t, "HEAD", "/v1/projects/demo/tokens", a, None);
    c.go(404, t, "GET", "/v1/projects/nosuch/tokens", a, None);
    c.go(400, t, "GET", "/v1/projects/BAD/tokens", a, None);
    c.go(401, t, "GET", "/v1/projects/demo/tokens", None, None);
    c.go(403, t, "GET", "/v1/projects/demo/tokens", dr, None);
    let new_token = br#"{"label":"ci","access":"read","prefix":"logs/"}"#;
    let r = c.go(
        201,
        t,
        "POST",
        "/v1/projects/demo/tokens",
        a,
        Some(new_token),
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["prefix"], "logs/");
    let r = c.go(
        201,
        t,
        "POST",
        "/v1/projects/demo/tokens",
        a,
        Some(br#"{"label":"w","access":"write","prefix":null}"#),
    );
    assert!(r.json().get("prefix").is_none());
    let cases: [(&[u8], &str); 4] = [
        (br#"{"label":"","access":"read"}"#, "invalid_label"),
        (
            br#"{"label":"x","access":"read","prefix":""}"#,
            "invalid_prefix",
        ),
        (br#"{"label":"x","access":"admin"}"#, "invalid_json"),
        (br#"{}"#, "invalid_json"),
    ];
    for (body, code) in cases {
        let r = c.go(400, t, "POST", "/v1/projects/demo/tokens", a, Some(body));
        assert_eq!(error_code(&r), code);
    }
    c.go(
        404,
        t,
        "POST",
        "/v1/projects/nosuch/tokens",
        a,
        Some(new_token),
    );
    c.go(
        401,
        t,
        "POST",
        "/v1/projects/demo/tokens",
        None,
        Some(new_token),
    );
    c.go(
        403,
        t,
        "POST",
        "/v1/projects/demo/tokens",
        dw,
        Some(new_token),
    );
    c.call(
        413,
        t,
        "POST",
        "/v1/projects/demo/tokens",
        Auth::Bearer(ADMIN),
        TOO_LONG,
        None,
    );
    let t = "/v1/projects/{project}/tokens/{id}";
    let one = format!("/v1/projects/demo/tokens/{id}");
    c.go(401, t, "DELETE", &one, None, None);
    c.go(403, t, "DELETE", &one, dw, None);
    c.go(400, t, "DELETE", &format!("{one}?x=1"), a, None);
    c.go(204, t, "DELETE", &one, a, None);
    let r = c.go(404, t, "DELETE", &one, a, None);
    assert_eq!(error_code(&r), "token_not_found");
    c.go(404, t, "DELETE", "/v1/projects/nosuch/tokens/x", a, None);
    c.go(
        409,
        t,
        "DELETE",
        "/v1/projects/legacy/tokens/cfg-1",
        a,
        None,
    );
    // An empty path parameter matches no route.
    let r = c.go(404, t, "DELETE", "/v1/projects/demo/tokens/", a, None);
    assert_eq!(error_code(&r), "not_found");
    let r = c.go(
        404,
        "/v1/projects/{project}/tokens",
        "GET",
        "/v1/projects//tokens",
        a,
        None,
    );
    assert_eq!(error_code(&r), "not_found");
    c.go(404, "/v1/kv/{project}/{key}", "GET", "/v1/kv//k", a, None);

    // Keys: PUT.
    let t = "/v1/kv/{project}/{key}";
    let text = [("Content-Type", "text/plain")];
    let r = c.call(
        201,
        t,
        "PUT",
        "/v1/kv/demo/greetings/en",
        Auth::Bearer(dw.unwrap()),
        &text,
        Some(b"hello"),
    );
    assert_eq!(r.json()["key"], "greetings/en");
    let r = c.call(
        200,
        t,
        "PUT",
        "/v1/kv/demo/greetings%2Fen?ttl=600",
        Auth::Basic(dw.unwrap()),
        &text,
        Some(b"hello world"),
    );
    let greet_version = r.json()["version"].as_u64().unwrap();
    c.call(
        201,
        t,
        "PUT",
        "/v1/kv/demo/bin",
        Auth::ApiKey(dw.unwrap()),
        &[],
        Some(&[0xff, 0x00, 0x01]),
    );
    c.go(201, t, "PUT", "/v1/kv/demo/empty", a, None);
    c.go(
        201,
        t,
        "PUT",
        "/v1/kv/demo/big",
        dw,
        Some(b"9223372036854775807"),
    );
    for (target, code) in [
        ("/v1/kv/demo/k?ttl=0", "invalid_parameter"),
        ("/v1/kv/demo/k?ttl=315360001", "invalid_parameter"),
        ("/v1/kv/demo/k?tll=1", "unknown_parameter"),
        ("/v1/kv/demo/%zz", "invalid_key"),
        ("/v1/kv/demo/%FF", "invalid_key"),
        ("/v1/kv/BAD/k", "invalid_project_name"),
    ] {
        let r = c.go(400, t, "PUT", target, a, Some(b"v"));
        assert_eq!(error_code(&r), code, "{target}");
    }
    let long_ct = "a/".to_string() + &"b".repeat(300);
    let r = c.call(
        400,
        t,
        "PUT",
        "/v1/kv/demo/k",
        Auth::Bearer(ADMIN),
        &[("Content-Type", long_ct.as_str())],
        Some(b"v"),
    );
    assert_eq!(error_code(&r), "invalid_content_type");
    let r = c.go(400, t, "PUT", "/v1/kv/demo/", a, Some(b"v"));
    assert_eq!(error_code(&r), "invalid_key");
    c.go(401, t, "PUT", "/v1/kv/demo/k", None, Some(b"v"));
    c.go(401, t, "PUT", "/v1/kv/demo/k", nobody, Some(b"v"));
    c.go(403, t, "PUT", "/v1/kv/demo/k", dr, Some(b"v"));
    c.go(403, t, "PUT", "/v1/kv/demo/k", Some(LW), Some(b"v"));
    c.go(403, t, "PUT", "/v1/kv/nosuch/k", Some(LW), Some(b"v"));
    c.go(404, t, "PUT", "/v1/kv/nosuch/k", a, Some(b"v"));
    let stale = [("If-Match", "\"999999\"")];
    let r = c.call(
        412,
        t,
        "PUT",
        "/v1/kv/demo/greetings/en",
        Auth::Bearer(ADMIN),
        &stale,
        Some(b"x"),
    );
    assert_eq!(r.json()["current_version"], greet_version);
    let r = c.call(
        412,
        t,
        "PUT",
        "/v1/kv/demo/absent",
        Auth::Bearer(ADMIN),
        &[("If-Match", "*")],
        Some(b"x"),
    );
    assert_eq!(r.json()["current_version"], Value::Null);
    c.call(
        412,
        t,
        "PUT",
        "/v1/kv/demo/greetings/en",
        Auth::Bearer(ADMIN),
        &[("If-None-Match", "*")],
        Some(b"x"),
    );
    c.go(201, t, "PUT", "/v1/kv/small/a", a, Some(b"1"));
    let r = c.go(507, t, "PUT", "/v1/kv/small/b", a, Some(b"2"));
    assert_eq!(error_code(&r), "quota_exceeded");
    c.call(
        413,
        t,
        "PUT",
        "/v1/kv/demo/k",
        Auth::Bearer(ADMIN),
        TOO_LONG,
        None,
    );

    // Keys: GET and HEAD.
    let r = c.go(200, t, "GET", "/v1/kv/demo/greetings/en", dr, None);
    assert_eq!(r.body, b"hello world");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert!(r.header("x-expires-at").is_some());
    let etag = r.header("etag").unwrap().to_string();
    let r = c.go(200, t, "GET", "/v1/kv/demo/bin", a, None);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.body, [0xff, 0x00, 0x01]);
    c.go(200, t, "HEAD", "/v1/kv/demo/greetings/en", dr, None);
    c.go(404, t, "HEAD", "/v1/kv/demo/absent", dr, None);
    let r = c.call(
        304,
        t,
        "GET",
        "/v1/kv/demo/greetings/en",
        Auth::Bearer(ADMIN),
        &[("If-None-Match", etag.as_str())],
        None,
    );
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    c.call(
        304,
        t,
        "HEAD",
        "/v1/kv/demo/greetings/en",
        Auth::Bearer(ADMIN),
        &[("If-None-Match", "*")],
        None,
    );
    let r = c.go(404, t, "GET", "/v1/kv/demo/absent", dr, None);
    assert_eq!(error_code(&r), "key_not_found");
    c.go(404, t, "GET", "/v1/kv/nosuch/k", a, None);
    for target in [
        "/v1/kv/demo/k?version=1",
        "/v1/kv/demo/k?watch=0",
        "/v1/kv/demo/k?watch=301",
        "/v1/kv/demo/k?ttl=1",
        "/v1/kv/demo/%zz",
    ] {
        c.go(400, t, "GET", target, dr, None);
    }
    c.go(401, t, "GET", "/v1/kv/demo/k", None, None);
    c.go(403, t, "GET", "/v1/kv/demo/k", Some(LR), None);
    // Watches: one that times out, one already fired, one whose key is gone.
    let started = Instant::now();
    let r = c.go(304, t, "GET", "/v1/kv/demo/greetings/en?watch=1", dr, None);
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    c.go(304, t, "GET", "/v1/kv/demo/absent?watch=1", dr, None);
    let r = c.go(
        200,
        t,
        "GET",
        "/v1/kv/demo/greetings/en?watch=5&version=1",
        dr,
        None,
    );
    assert_eq!(r.body, b"hello world");
    c.go(
        404,
        t,
        "GET",
        "/v1/kv/demo/absent?watch=5&version=3",
        dr,
        None,
    );
    // max_watches is 1: a second waiting watch gets 503.
    let mut parked = srv.connect();
    parked
        .write_all(
            format!(
                "GET /v1/kv/demo/w1?watch=2 HTTP/1.1\r\nHost: x\r\n\
                 Authorization: Bearer {ADMIN}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let r = c.go(503, t, "GET", "/v1/kv/demo/w2?watch=2", a, None);
    assert_eq!(error_code(&r), "too_many_watches");
    let r = read_reply(&mut parked, false).unwrap();
    assert_eq!(r.status, 304);
    c.check(t, "GET", "/v1/kv/demo/w1?watch=2", &r);

    // Keys: counters.
    let r = c.go(200, t, "POST", "/v1/kv/demo/visits?incr", dw, None);
    assert_eq!(r.body, b"1");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let r = c.go(200, t, "POST", "/v1/kv/demo/visits?incr=-5", dw, None);
    assert_eq!(r.body, b"-4");
    c.go(200, t, "POST", "/v1/kv/demo/visits?incr=", dw, None);
    let r = c.go(409, t, "POST", "/v1/kv/demo/greetings/en?incr=1", dw, None);
    assert_eq!(error_code(&r), "not_an_integer");
    let r = c.go(409, t, "POST", "/v1/kv/demo/big?incr=1", dw, None);
    assert_eq!(error_code(&r), "overflow");
    for (target, body, code) in [
        ("/v1/kv/demo/visits", None, "invalid_parameter"),
        ("/v1/kv/demo/visits?incr=x", None, "invalid_parameter"),
        (
            "/v1/kv/demo/visits?incr=1&incr=2",
            None,
            "invalid_parameter",
        ),
        ("/v1/kv/demo/visits?by=1", None, "unknown_parameter"),
        ("/v1/kv/demo/visits?incr=1", Some(&b"5"[..]), "bad_request"),
        ("/v1/kv/BAD/visits?incr=1", None, "invalid_project_name"),
    ] {
        let r = c.go(400, t, "POST", target, a, body);
        assert_eq!(error_code(&r), code, "{target}");
    }
    c.call(
        412,
        t,
        "POST",
        "/v1/kv/demo/visits?incr=1",
        Auth::Bearer(ADMIN),
        &stale,
        None,
    );
    c.go(401, t, "POST", "/v1/kv/demo/visits?incr=1", None, None);
    c.go(403, t, "POST", "/v1/kv/demo/visits?incr=1", dr, None);
    c.go(404, t, "POST", "/v1/kv/nosuch/visits?incr=1", a, None);
    c.go(507, t, "POST", "/v1/kv/small/c?incr=1", a, None);

    // Keys: DELETE.
    c.go(204, t, "DELETE", "/v1/kv/demo/visits", dw, None);
    let r = c.go(404, t, "DELETE", "/v1/kv/demo/visits", dw, None);
    assert_eq!(error_code(&r), "key_not_found");
    c.go(404, t, "DELETE", "/v1/kv/nosuch/k", a, None);
    c.call(
        412,
        t,
        "DELETE",
        "/v1/kv/demo/greetings/en",
        Auth::Bearer(ADMIN),
        &stale,
        None,
    );
    c.go(400, t, "DELETE", "/v1/kv/demo/greetings/en?x=1", dw, None);
    c.go(401, t, "DELETE", "/v1/kv/demo/greetings/en", None, None);
    c.go(403, t, "DELETE", "/v1/kv/demo/greetings/en", dr, None);

    // Listings.
    let t = "/v1/kv/{project}";
    let r = c.go(200, t, "GET", "/v1/kv/demo", dr, None);
    assert!(r.json()["keys"].as_array().unwrap().contains(&json!("bin")));
    let r = c.go(200, t, "GET", "/v1/kv/demo?values=true", dr, None);
    assert!(r.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["base64"] == true));
    let r = c.go(200, t, "GET", "/v1/kv/demo?limit=1&prefix=b", dr, None);
    assert_eq!(r.json()["next"], "big");
    let r = c.go(200, t, "GET", "/v1/kv/demo?format=text&limit=1", dr, None);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(r.header("x-next-after").is_some());
    let r = c.go(
        200,
        t,
        "GET",
        "/v1/kv/demo?format=jsonl&values=true&limit=2",
        dr,
        None,
    );
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    c.call(
        200,
        t,
        "GET",
        "/v1/kv/demo",
        Auth::Bearer(dr.unwrap()),
        &[("Accept", "text/plain")],
        None,
    );
    c.call(
        200,
        t,
        "GET",
        "/v1/kv/demo?after=big",
        Auth::Bearer(dr.unwrap()),
        &[("Accept", "application/x-ndjson")],
        None,
    );
    c.go(
        200,
        t,
        "GET",
        "/v1/kv/demo?format=json&values=false",
        dr,
        None,
    );
    c.go(200, t, "HEAD", "/v1/kv/demo", dr, None);
    for (target, code) in [
        ("/v1/kv/demo?limit=0", "invalid_parameter"),
        ("/v1/kv/demo?limit=1001", "invalid_parameter"),
        ("/v1/kv/demo?format=xml", "invalid_parameter"),
        ("/v1/kv/demo?values=yes", "invalid_parameter"),
        ("/v1/kv/demo?values=true&format=text", "invalid_parameter"),
        ("/v1/kv/demo?version=3", "invalid_parameter"),
        ("/v1/kv/demo?foo=1", "unknown_parameter"),
        ("/v1/kv/BAD", "invalid_project_name"),
    ] {
        let r = c.go(400, t, "GET", target, a, None);
        assert_eq!(error_code(&r), code, "{target}");
    }
    c.go(404, t, "GET", "/v1/kv/nosuch", a, None);
    c.go(404, t, "HEAD", "/v1/kv/nosuch", a, None);
    c.go(401, t, "GET", "/v1/kv/demo", None, None);
    c.go(403, t, "GET", "/v1/kv/demo", Some(LR), None);
    let r = c.go(304, t, "GET", "/v1/kv/demo?prefix=none/&watch=1", dr, None);
    assert!(r.header("x-project-version").is_some());
    c.go(200, t, "GET", "/v1/kv/demo?watch=5&version=0", dr, None);

    // Batches.
    let batch = json!({"ops": [
        {"op": "check", "key": "greetings/en"},
        {"op": "put", "key": "b1", "value": "x", "ttl": 60, "content_type": "text/plain"},
        {"op": "put", "key": "raw", "value": "AAH/", "base64": true, "version": 0},
        {"op": "delete", "key": "old"},
        {"op": "delete", "key": "bin", "version": null}
    ]})
    .to_string();
    let r = c.go(200, t, "POST", "/v1/kv/demo", dw, Some(batch.as_bytes()));
    assert_eq!(r.json()["results"].as_array().unwrap().len(), 5);
    let cond =
        br#"{"ops":[{"op":"put","key":"b2","value":"y"},{"op":"check","key":"b1","version":1}]}"#;
    let r = c.go(409, t, "POST", "/v1/kv/demo", dw, Some(cond));
    assert_eq!(r.json()["index"], 1);
    let r = c.go(400, t, "POST", "/v1/kv/demo", dw, Some(br#"{"ops":[]}"#));
    assert_eq!(error_code(&r), "invalid_batch");
    assert!(r.json().get("index").is_none());
    let r = c.go(
        400,
        t,
        "POST",
        "/v1/kv/demo",
        dw,
        Some(br#"{"ops":[{"op":"check","key":"a"},{"op":"nope","key":"a"}]}"#),
    );
    assert_eq!(r.json()["index"], 1);
    let r = c.go(
        400,
        t,
        "POST",
        "/v1/kv/demo",
        dw,
        Some(br#"{"ops":[{"op":"put","key":"a","value":"!","base64":true}]}"#),
    );
    assert_eq!(r.json()["index"], 0);
    let r = c.go(400, t, "POST", "/v1/kv/demo", dw, Some(b"{"));
    assert_eq!(error_code(&r), "invalid_json");
    c.go(400, t, "POST", "/v1/kv/demo?x=1", dw, Some(cond));
    c.go(401, t, "POST", "/v1/kv/demo", None, Some(cond));
    let r = c.go(403, t, "POST", "/v1/kv/demo", dr, Some(cond));
    assert!(r.json().get("index").is_none());
    let scoped = br#"{"ops":[{"op":"put","key":"sensors/a","value":"1"},{"op":"put","key":"x","value":"1"}]}"#;
    let r = c.go(403, t, "POST", "/v1/kv/legacy", Some(LS), Some(scoped));
    assert_eq!(r.json()["index"], 1);
    c.go(404, t, "POST", "/v1/kv/nosuch", a, Some(cond));
    let r = c.go(
        507,
        t,
        "POST",
        "/v1/kv/small",
        a,
        Some(br#"{"ops":[{"op":"put","key":"a","value":"1"},{"op":"put","key":"n","value":"1"}]}"#),
    );
    assert_eq!(r.json()["index"], 1);
    c.call(
        413,
        t,
        "POST",
        "/v1/kv/demo",
        Auth::Bearer(ADMIN),
        TOO_LONG,
        None,
    );

    // Export.
    let t = "/v1/projects/{project}/export";
    let r = c.go(200, t, "GET", "/v1/projects/demo/export", a, None);
    assert!(r.text().lines().count() >= 3, "{}", r.text());
    assert!(r.text().contains("\"base64\":"), "{}", r.text());
    let export = r.body.clone();
    c.go(200, t, "GET", "/v1/projects/demo/export", dr, None);
    c.go(200, t, "HEAD", "/v1/projects/demo/export", a, None);
    c.go(200, t, "GET", "/v1/projects/small/export", a, None);
    c.go(403, t, "GET", "/v1/projects/legacy/export", Some(LS), None);
    c.go(403, t, "HEAD", "/v1/projects/demo/export", Some(LR), None);
    c.go(401, t, "GET", "/v1/projects/demo/export", None, None);
    c.go(404, t, "GET", "/v1/projects/nosuch/export", a, None);
    c.go(400, t, "GET", "/v1/projects/demo/export?x=1", a, None);
    c.go(400, t, "GET", "/v1/projects/BAD/export", a, None);

    // Import (project imp: max_keys 3).
    let t = "/v1/projects/{project}/import";
    let lines = b"{\"key\":\"i1\",\"value\":\"one\"}\n\n{\"key\":\"i2\",\"base64\":\"AAE=\",\"content_type\":null,\"version\":9,\"expires_at\":null,\"project\":\"x\"}\n";
    let r = c.go(200, t, "POST", "/v1/projects/imp/import", a, Some(lines));
    assert_eq!(r.json()["imported"], 2);
    let r = c.go(
        200,
        t,
        "POST",
        "/v1/projects/imp/import?mode=replace",
        a,
        Some(b"{\"key\":\"i3\",\"value\":\"three\"}\n"),
    );
    assert_eq!(r.json()["removed"], 2);
    c.go(
        200,
        t,
        "POST",
        "/v1/projects/imp/import?mode=merge",
        a,
        Some(b""),
    );
    let r = c.go(
        400,
        t,
        "POST",
        "/v1/projects/imp/import",
        a,
        Some(b"{\"key\":\"i1\",\"value\":\"one\"}\nnot json\n"),
    );
    assert_eq!(r.json()["line"], 2);
    let r = c.go(
        400,
        t,
        "POST",
        "/v1/projects/imp/import?mode=all",
        a,
        Some(b""),
    );
    assert_eq!(error_code(&r), "invalid_parameter");
    c.go(400, t, "POST", "/v1/projects/imp/import?x=1", a, Some(b""));
    c.go(401, t, "POST", "/v1/projects/imp/import", None, Some(b""));
    c.go(403, t, "POST", "/v1/projects/demo/import", dr, Some(b""));
    c.go(404, t, "POST", "/v1/projects/nosuch/import", a, Some(b""));
    let r = c.go(507, t, "POST", "/v1/projects/imp/import", a, Some(&export));
    assert_eq!(error_code(&r), "quota_exceeded");
    c.call(
        413,
        t,
        "POST",
        "/v1/projects/imp/import",
        Auth::Bearer(ADMIN),
        TOO_LONG,
        None,
    );

    // PyKV-compatible routes on legacy (max_keys 4).
    let t = "/put";
    let r = c.call(
        200,
        t,
        "POST",
        "/put",
        Auth::ApiKey(LW),
        &[("Content-Type", "application/json")],
        Some(br#"{"key":"c1","value":{"a":[1,2.5,null]}}"#),
    );
    assert_eq!(r.json()["value"]["a"][1], 2.5);
    c.go(
        200,
        t,
        "POST",
        "/put",
        Some(LW),
        Some(br#"{"key":"c1","value":"again"}"#),
    );
    c.go(
        201,
        "/v1/kv/{project}/{key}",
        "PUT",
        "/v1/kv/legacy/bin",
        Some(LW),
        Some(&[0xfe, 0xff]),
    );
    c.go(
        201,
        "/v1/kv/{project}/{key}",
        "PUT",
        "/v1/kv/legacy/txt",
        Some(LW),
        Some(b"not json"),
    );
    c.go(
        201,
        "/v1/kv/{project}/{key}",
        "PUT",
        "/v1/kv/legacy/sensors/t",
        Some(LS),
        Some(b"21.5"),
    );
    c.go(
        403,
        "/v1/kv/{project}/{key}",
        "PUT",
        "/v1/kv/legacy/t",
        Some(LS),
        Some(b"21.5"),
    );
    let r = c.go(
        200,
        "/v1/kv/{project}",
        "GET",
        "/v1/kv/legacy?prefix=x",
        Some(LS),
        None,
    );
    assert_eq!(r.json()["keys"], json!([]));
    let r = c.go(
        507,
        t,
        "POST",
        "/put",
        Some(LW),
        Some(br#"{"key":"c5","value":5}"#),
    );
    assert_eq!(error_code(&r), "quota_exceeded");
    let r = c.go(
        400,
        t,
        "POST",
        "/put",
        Some(LW),
        Some(br#"{"key":"","value":1}"#),
    );
    assert_eq!(error_code(&r), "invalid_key");
    c.go(400, t, "POST", "/put", Some(LW), Some(br#"{"key":"a"}"#));
    c.go(
        400,
        t,
        "POST",
        "/put",
        Some(LW),
        Some(br#"{"key":"a","value":1,"x":0}"#),
    );
    c.go(
        400,
        t,
        "POST",
        "/put?x=1",
        Some(LW),
        Some(br#"{"key":"a","value":1}"#),
    );
    c.go(
        401,
        t,
        "POST",
        "/put",
        None,
        Some(br#"{"key":"a","value":1}"#),
    );
    c.go(
        403,
        t,
        "POST",
        "/put",
        Some(LR),
        Some(br#"{"key":"a","value":1}"#),
    );
    c.go(
        403,
        t,
        "POST",
        "/put",
        dw,
        Some(br#"{"key":"a","value":1}"#),
    );
    c.call(413, t, "POST", "/put", Auth::Bearer(LW), TOO_LONG, None);
    let t = "/get/{key}";
    let r = c.go(200, t, "GET", "/get/c1", Some(LR), None);
    assert_eq!(r.json(), json!({"key": "c1", "value": "again"}));
    let r = c.go(200, t, "GET", "/get/bin", a, None);
    assert_eq!(r.json()["base64"], true);
    let r = c.call(200, t, "GET", "/get/txt", Auth::Basic(LR), &[], None);
    assert_eq!(r.json()["value"], "not json");
    c.go(200, t, "HEAD", "/get/c1", Some(LR), None);
    let r = c.go(404, t, "GET", "/get/nothing", Some(LR), None);
    assert_eq!(error_code(&r), "key_not_found");
    c.go(404, t, "HEAD", "/get/nothing", Some(LR), None);
    c.go(400, t, "GET", "/get/%zz", Some(LR), None);
    c.go(400, t, "GET", "/get/c1?x=1", Some(LR), None);
    c.go(401, t, "GET", "/get/c1", None, None);
    c.go(403, t, "GET", "/get/c1", dr, None);
    c.go(403, t, "GET", "/get/txt", Some(LS), None);
    let t = "/delete/{key}";
    c.go(403, t, "DELETE", "/delete/c1", Some(LR), None);
    c.go(401, t, "DELETE", "/delete/c1", None, None);
    c.go(400, t, "DELETE", "/delete/c1?x=1", Some(LW), None);
    let r = c.go(200, t, "DELETE", "/delete/c1", Some(LW), None);
    assert_eq!(r.json(), json!({"key": "c1", "deleted": true}));
    c.go(404, t, "DELETE", "/delete/c1", Some(LW), None);
    c.go(400, t, "DELETE", "/delete/", Some(LW), None);

    // OPTIONS on every path: no token, Allow, and the preflight headers for an allowed origin.
    let samples: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|p| {
            let target = p
                .replace("{project}", "demo")
                .replace("{key}", "a/b")
                .replace("{id}", "x");
            (p.clone(), target)
        })
        .collect();
    for (template, target) in &samples {
        let r = c.call(
            204,
            template,
            "OPTIONS",
            target,
            Auth::No,
            &[("Origin", ORIGIN), ("Access-Control-Request-Method", "GET")],
            None,
        );
        assert!(r.header("allow").unwrap().ends_with("OPTIONS"));
        assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
        assert_eq!(r.header("access-control-max-age"), Some("600"));
    }
    c.call(
        204,
        "/health",
        "OPTIONS",
        "/health",
        Auth::No,
        &[("Origin", "https://other.example")],
        None,
    );

    c.assert_every_operation_covered();
}

/// A journal that cannot be written: the write is undone and answered 507 `storage_full` or
/// 500 `storage_error` (as the disk fails); `/health` turns `degraded`. Without
/// `compat_project` the compat paths are 404 `not_found`.
#[test]
fn storage_errors_and_absent_compat_routes_answer_as_documented() {
    bounded(Duration::from_secs(60), || {
        let dir = std::sync::Arc::new(TempDir::new());
        let disk = Disk::prepare(&dir.path().join("data"));
        let srv = Server::start_raw(config(json!({"persistence": "sync"})), dir);
        let mut c = Checker::new(&srv, load_doc());
        let a = Some(ADMIN);
        c.go(
            201,
            "/v1/projects",
            "POST",
            "/v1/projects",
            a,
            Some(br#"{"name":"demo"}"#),
        );
        let t = "/v1/kv/{project}/{key}";
        c.go(201, t, "PUT", "/v1/kv/demo/k", a, Some(b"1"));
        if disk.fails_only_when_growing() {
            align_journal(&srv, ADMIN, "demo");
        }
        disk.break_writes(&srv);
        let (status, code) = disk.expected_error();
        let r = c.go(status, t, "PUT", "/v1/kv/demo/k", a, Some(b"2"));
        assert_eq!(error_code(&r), code);
        let r = c.go(status, t, "POST", "/v1/kv/demo/n?incr", a, None);
        assert_eq!(error_code(&r), code);
        c.go(status, t, "DELETE", "/v1/kv/demo/k", a, None);
        c.go(
            status,
            "/v1/kv/{project}",
            "POST",
            "/v1/kv/demo",
            a,
            Some(br#"{"ops":[{"op":"put","key":"z","value":"z"}]}"#),
        );
        let r = c.go(200, t, "GET", "/v1/kv/demo/k", a, None);
        assert_eq!(r.body, b"1", "the failed writes were undone");
        let r = c.go(200, "/health", "GET", "/health", None, None);
        assert_eq!(r.json()["status"], "degraded");
        disk.repair(&srv);
        c.go(200, t, "PUT", "/v1/kv/demo/k", a, Some(b"3"));
        let r = c.go(200, "/health", "GET", "/health", None, None);
        assert_eq!(r.json()["status"], "ok");

        let r = c.go(404, "/get/{key}", "GET", "/get/k", a, None);
        assert_eq!(error_code(&r), "not_found");
        c.go(404, "/delete/{key}", "DELETE", "/delete/k", a, None);
        c.go(
            404,
            "/put",
            "POST",
            "/put",
            a,
            Some(br#"{"key":"k","value":1}"#),
        );
        c.go(404, "/put", "OPTIONS", "/put", None, None);
    });
}

/// The validator is not vacuous: it refuses what the document's schemas refuse.
#[test]
fn the_validator_refuses_bodies_the_schemas_refuse() {
    let doc = load_doc();
    let s = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let ok = |name: &str, v: Value| {
        validate(&doc, &s(name), &v, name).unwrap_or_else(|e| panic!("{e}"));
    };
    let bad = |name: &str, v: Value| {
        assert!(
            validate(&doc, &s(name), &v, name).is_err(),
            "{name} accepted {v}"
        );
    };
    ok("Error", json!({"error": "x", "message": "y"}));
    bad("Error", json!({"error": "x"}));
    bad("Error", json!({"error": "x", "message": "y", "index": 1}));
    ok(
        "PreconditionFailed",
        json!({"error": "precondition_failed", "message": "m", "current_version": null}),
    );
    bad(
        "PreconditionFailed",
        json!({"error": "precondition_failed", "message": "m", "current_version": "1"}),
    );
    ok(
        "KeyWritten",
        json!({"project": "p", "key": "k", "version": 3}),
    );
    bad("KeyWritten", json!({"project": "p", "key": "k"}));
    bad(
        "KeyWritten",
        json!({"project": "p", "key": "k", "version": -1}),
    );
    ok(
        "ListPage",
        json!({"keys": ["a", {"key": "b", "value": "v", "version": 2}], "next": null}),
    );
    bad("ListPage", json!({"keys": [1], "next": null}));
    bad("ListPage", json!({"keys": [], "next": 3}));
    bad(
        "ListPage",
        json!({"keys": [{"key": "b", "value": "v", "version": 2, "base64": false}], "next": null}),
    );
    ok("Health", json!({"status": "ok", "version": "0.1.0"}));
    bad(
        "Health",
        json!({"status": "ok", "version": "0.1.0", "problems": []}),
    );
    bad("Health", json!({"status": "fine", "version": "0.1.0"}));
    ok(
        "ExportLine",
        json!({"key": "k", "base64": "AA==", "content_type": null, "version": 1, "expires_at": null}),
    );
    bad(
        "ExportLine",
        json!({"key": "k", "value": "v", "base64": "AA==", "content_type": null, "version": 1, "expires_at": null}),
    );
    bad("ProjectCreated", json!({"name": "p"}));
    bad(
        "Token",
        json!({"id": "1", "label": "l", "access": "admin", "source": "api"}),
    );
    let unauthorized =
        &doc["components"]["responses"]["Unauthorized"]["content"]["application/json"]["schema"];
    assert!(validate(
        &doc,
        unauthorized,
        &json!({"error": "forbidden", "message": "m"}),
        "401"
    )
    .is_err());
}

/// The document stays inside what this file validates: every schema keyword is known, every
/// `$ref` resolves, operation ids are unique, and every secured operation documents 401 and 403.
#[test]
fn the_document_stays_within_the_validated_subset() {
    let doc = load_doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Simple PyKV");
    assert_eq!(doc["info"]["version"], "0.1.0");

    fn walk_schema(doc: &Value, s: &Value, at: &str) {
        let Some(o) = s.as_object() else {
            assert!(s.is_boolean(), "{at}: schema {s}");
            return;
        };
        for (k, v) in o {
            assert!(
                CHECKED.contains(&k.as_str()) || ANNOTATIONS.contains(&k.as_str()),
                "{at}: keyword {k:?} is outside the validated subset"
            );
            match k.as_str() {
                "$ref" => {
                    pointer(doc, v.as_str().unwrap());
                }
                "properties" => {
                    for (name, sub) in v.as_object().unwrap() {
                        walk_schema(doc, sub, &format!("{at}.{name}"));
                    }
                }
                "items" => walk_schema(doc, v, &format!("{at}[]")),
                "additionalProperties" => walk_schema(doc, v, at),
                "oneOf" | "anyOf" | "allOf" => {
                    for sub in v.as_array().unwrap() {
                        walk_schema(doc, sub, at);
                    }
                }
                _ => {}
            }
        }
    }
    /// Every value under a key named `schema` or `x-pykv-line-schema`, and every component schema.
    fn walk(doc: &Value, v: &Value, at: &str) {
        match v {
            Value::Object(o) => {
                for (k, sub) in o {
                    let here = format!("{at}/{k}");
                    if k == "schema" || k == "x-pykv-line-schema" {
                        walk_schema(doc, sub, &here);
                    } else if k == "$ref" {
                        pointer(doc, sub.as_str().unwrap());
                    } else {
                        walk(doc, sub, &here);
                    }
                }
            }
            Value::Array(a) => {
                for (i, sub) in a.iter().enumerate() {
                    walk(doc, sub, &format!("{at}/{i}"));
                }
            }
            _ => {}
        }
    }
    walk(&doc, &doc["paths"], "#/paths");
    walk(
        &doc,
        &doc["components"]["parameters"],
        "#/components/parameters",
    );
    walk(&doc, &doc["components"]["headers"], "#/components/headers");
    walk(
        &doc,
        &doc["components"]["responses"],
        "#/components/responses",
    );
    for (name, s) in doc["components"]["schemas"].as_object().unwrap() {
        walk_schema(&doc, s, &format!("#/components/schemas/{name}"));
    }

    let schemes: BTreeSet<&String> = doc["components"]["securitySchemes"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        schemes.into_iter().cloned().collect::<Vec<_>>(),
        ["apiKey", "basic", "bearer"]
    );
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "operationId {id} twice");
            let open = op.get("security") == Some(&json!([]));
            let public =
                matches!(path.as_str(), "/health" | "/openapi.json") || method == "options";
            assert_eq!(open, public, "{method} {path}: security");
            let responses = op["responses"].as_object().unwrap();
            for s in ["400", "414", "431"] {
                assert!(responses.contains_key(s), "{method} {path} lacks {s}");
            }
            if !open {
                for s in ["401", "403"] {
                    assert!(responses.contains_key(s), "{method} {path} lacks {s}");
                }
            }
            if matches!(method.as_str(), "put" | "post" | "patch" | "delete") {
                for s in ["500", "507"] {
                    assert!(responses.contains_key(s), "{method} {path} lacks {s}");
                }
            }
            if op.get("requestBody").is_some() {
                assert!(responses.contains_key("413"), "{method} {path} lacks 413");
            }
        }
    }
}
