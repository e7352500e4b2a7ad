//! The OpenAPI document (`src/api/openapi.json`, served at `GET /openapi.json`) held against the
//! server: every documented operation is driven, in success and error cases, and every answer
//! must have a documented status, a documented Content-Type, a body valid against the documented
//! schema and every documented required header (`common/openapi.rs`). In-process; the watches
//! that park, and storage errors, are in `openapi_document.rs` on the real binary.

mod common;
use common::openapi::*;
use common::*;

use serde_json::{json, Value};
use std::time::Duration;

/// Secrets of the config-declared project `legacy` (the compat project).
const LW: &str = LEGACY_WRITE;
const LR: &str = LEGACY_READ;
const LS: &str = "legacy-scoped-secret-012345678";

/// The config of the walk; `persistence` is the binary's default (projects created without one
/// are durable, so switching one to `interval` needs no snapshot of a memory project).
fn main_config() -> Value {
    json!({
        "persistence": "sync",
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

#[test]
fn every_operation_answers_as_documented() {
    bounded(Duration::from_secs(120), every_operation_body);
}

fn every_operation_body() {
    let srv = InProc::start(main_config());
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
    // version without watch: 304 while the key is at it (0: still absent).
    let r = c.go(304, t, "GET", "/v1/kv/demo/absent?version=0", dr, None);
    assert_eq!(r.header("etag"), None);
    for target in [
        "/v1/kv/demo/k?version=x",
        "/v1/kv/demo/k?watch=0",
        "/v1/kv/demo/k?watch=301",
        "/v1/kv/demo/k?ttl=1",
        "/v1/kv/demo/%zz",
    ] {
        c.go(400, t, "GET", target, dr, None);
    }
    c.go(401, t, "GET", "/v1/kv/demo/k", None, None);
    c.go(403, t, "GET", "/v1/kv/demo/k", Some(LR), None);
    // Watches already fired, or whose key is gone (the ones that park: `watches_answer_as_documented`).
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
    let r = c.go(200, t, "HEAD", "/v1/kv/demo", dr, None);
    // version without watch: 304 while the project is at it.
    let seen = format!(
        "/v1/kv/demo?version={}",
        r.header("x-project-version").unwrap()
    );
    c.go(304, t, "GET", &seen, dr, None);
    for (target, code) in [
        ("/v1/kv/demo?limit=0", "invalid_parameter"),
        ("/v1/kv/demo?limit=1001", "invalid_parameter"),
        ("/v1/kv/demo?format=xml", "invalid_parameter"),
        ("/v1/kv/demo?values=yes", "invalid_parameter"),
        ("/v1/kv/demo?values=true&format=text", "invalid_parameter"),
        ("/v1/kv/demo?version=-1", "invalid_parameter"),
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
