//! The OpenAPI document (`src/api/openapi.json`) as a test oracle: a small JSON-schema validator
//! for the subset of keywords the document uses, and a `Checker` that sends requests to either
//! server (in-process or the real binary) and holds every answer against the document: a
//! documented status, a documented Content-Type, a body valid against the documented schema and
//! every documented required header. It remembers which operations it drove.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;

pub const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/openapi.json");

pub const METHODS: &[&str] = &["get", "head", "put", "post", "patch", "delete", "options"];

pub fn load_doc() -> Value {
    let text = std::fs::read_to_string(DOC_PATH).expect("read openapi.json");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

/// Run `f` on its own thread; fail if it takes longer than `limit` (a hung server must fail the
/// test, not hang the run). A panic in `f` is passed on.
pub fn bounded(limit: Duration, f: impl FnOnce() + Send + 'static) {
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

/// Keywords that only annotate (not checked here: `pattern` needs a regex engine).
pub const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "default",
    "format",
    "pattern",
    "examples",
];

pub const CHECKED: &[&str] = &[
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

pub fn pointer<'a>(doc: &'a Value, r: &str) -> &'a Value {
    let p = r
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("only local $refs: {r}"));
    doc.pointer(p)
        .unwrap_or_else(|| panic!("dangling $ref {r}"))
}

/// Follow `$ref`s (of parameters, responses, headers) to the object itself.
pub fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    while let Some(r) = v.get("$ref").and_then(Value::as_str) {
        v = pointer(doc, r);
    }
    v
}

pub fn has_type(v: &Value, t: &str) -> bool {
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

pub fn as_int(v: &Value) -> Option<i128> {
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
}

/// Whether `v` is below (`-1`), at (`0`) or above (`1`) the bound `b`.
pub fn compare(v: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (as_int(v), as_int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => v.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

pub fn validate(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
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

/// Credentials, as each security scheme sends them.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    No,
    Bearer(&'a str),
    Basic(&'a str),
    ApiKey(&'a str),
}

/// Drives requests and checks every answer against the document; remembers what it covered.
pub struct Checker<'s, A: Api> {
    srv: &'s A,
    doc: Value,
    /// (path template, method) → statuses seen.
    seen: BTreeMap<(String, String), BTreeSet<u16>>,
}

impl<'s, A: Api> Checker<'s, A> {
    pub fn new(srv: &'s A, doc: Value) -> Checker<'s, A> {
        Checker {
            srv,
            doc,
            seen: BTreeMap::new(),
        }
    }

    /// Send, check against the document, and assert the status is `expect`.
    #[allow(clippy::too_many_arguments)]
    pub fn call(
        &mut self,
        expect: u16,
        template: &str,
        method: &str,
        target: &str,
        auth: Auth,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let mut all: Vec<(&str, String)> = Vec::new();
        match auth {
            Auth::No => {}
            Auth::Bearer(t) => all.push(("Authorization", format!("Bearer {t}"))),
            Auth::Basic(t) => all.push(("Authorization", basic(&format!(":{t}")))),
            Auth::ApiKey(t) => all.push(("X-API-Key", t.to_string())),
        }
        for (k, v) in headers {
            all.push((k, v.to_string()));
        }
        let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let bytes = request_bytes(method, target, None, &refs, body.unwrap_or(b""));
        let r = self.srv.send(&bytes, method == "HEAD");
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
    pub fn go(
        &mut self,
        expect: u16,
        template: &str,
        method: &str,
        target: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> Resp {
        let auth = token.map_or(Auth::No, Auth::Bearer);
        self.call(expect, template, method, target, auth, &[], body)
    }

    /// Assert that answer `r` to `method template` is what the document says.
    pub fn check(&mut self, template: &str, method: &str, target: &str, r: &Resp) {
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
    pub fn assert_every_operation_covered(&self) {
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

pub fn media_matches(documented: &str, actual: &str) -> bool {
    documented == "*/*"
        || documented.eq_ignore_ascii_case(actual)
        || documented.strip_suffix("/*").is_some_and(|t| {
            actual
                .split('/')
                .next()
                .is_some_and(|a| a.eq_ignore_ascii_case(t))
        })
}

pub fn check_body(doc: &Value, media: &Value, ct: &str, body: &[u8], what: &str) {
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

pub fn error_code(r: &Resp) -> String {
    r.json()["error"].as_str().unwrap_or("").to_string()
}
