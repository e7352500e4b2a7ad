//! The OpenAPI document itself: the validator refuses what the schemas refuse, the document stays
//! within the validated subset; and what only the real binary can show against it: watches that
//! park (a timeout's 304, a second watch past `max_watches`' 503) and a failing disk's 507/500.

mod common;
use common::disk::{align_journal, Disk};
use common::openapi::*;
use common::*;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------------------------------

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

/// The state the watch tests start from: a server with `max_watches` 1, project `demo` and its
/// key `greetings/en`; returns the server, demo's read secret and the key's ETag.
fn watched_demo() -> (Server, String, String) {
    let srv = Server::start(json!({ "max_watches": 1 }));
    let (_, read) = create_project(&srv, "demo");
    let r = put(&srv, "/v1/kv/demo/greetings/en", b"hello world");
    assert_eq!(r.status, 201, "{}", r.text());
    let etag = r.header("etag").unwrap().to_string();
    (srv, read, etag)
}

/// Watches park on the real event loop: one that times out answers 304, with the key's ETag, or
/// none for an absent key; a listing watch too.
#[test]
fn watches_that_time_out_answer_as_documented() {
    bounded(Duration::from_secs(60), || {
        let (srv, read, etag) = watched_demo();
        let mut c = Checker::new(&srv, load_doc());
        let dr = Some(read.as_str());
        let t = "/v1/kv/{project}/{key}";
        let started = Instant::now();
        let r = c.go(304, t, "GET", "/v1/kv/demo/greetings/en?watch=1", dr, None);
        assert!(started.elapsed() >= Duration::from_millis(900));
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        c.go(304, t, "GET", "/v1/kv/demo/absent?watch=1", dr, None);
        let t = "/v1/kv/{project}";
        let r = c.go(304, t, "GET", "/v1/kv/demo?prefix=none/&watch=1", dr, None);
        assert!(r.header("x-project-version").is_some());
    });
}

/// A second waiting watch past `max_watches` (1 here) gets 503 while the first one parks; the
/// first then times out with 304.
#[test]
fn a_watch_past_max_watches_answers_as_documented() {
    bounded(Duration::from_secs(60), || {
        let (srv, _, _) = watched_demo();
        let mut c = Checker::new(&srv, load_doc());
        let t = "/v1/kv/{project}/{key}";
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
        let r = c.go(503, t, "GET", "/v1/kv/demo/w2?watch=2", Some(ADMIN), None);
        assert_eq!(error_code(&r), "too_many_watches");
        let r = read_response(&mut parked, false).unwrap();
        assert_eq!(r.status, 304);
        c.check(t, "GET", "/v1/kv/demo/w1?watch=2", &r);
    });
}
