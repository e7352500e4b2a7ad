//! Conditional requests: `If-Match` and `If-None-Match` on PUT, DELETE, POST ?incr and GET, the
//! 412 answer with the current version, and 304. In-process.

mod common;
use common::*;

use serde_json::{json, Value};

/// A 412 with exactly `error`, `message` and `current_version`.
fn assert_precondition_failed(r: &Resp, current_version: Value) {
    assert_json(r, 412);
    let j = r.json();
    assert_eq!(j["error"], "precondition_failed", "{j}");
    assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
    assert_eq!(j["current_version"], current_version, "{j}");
    assert_eq!(j.as_object().unwrap().len(), 3, "fields: {j}");
}

#[test]
fn put_with_if_match_of_the_current_version_replaces_the_value() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"one");
    let r = put_h(&srv, "/v1/kv/p/k", &[("If-Match", "\"1\"")], b"two");
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({"project": "p", "key": "k", "version": 2}));
    assert_eq!(get(&srv, "/v1/kv/p/k").body, b"two");
}

#[test]
fn put_with_stale_if_match_is_412_with_the_current_version_and_changes_nothing() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"one");
    put_ok(&srv, "/v1/kv/p/k", b"two");
    let r = put_h(&srv, "/v1/kv/p/k", &[("If-Match", "\"1\"")], b"three");
    assert_precondition_failed(&r, json!(2));
    assert_value(
        &get(&srv, "/v1/kv/p/k"),
        b"two",
        "application/octet-stream",
        2,
    );
    assert_eq!(project_version(&srv), 2);
}

#[test]
fn if_match_list_matches_any_listed_version() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"one");
    put_ok(&srv, "/v1/kv/p/k", b"two");
    let r = put_h(
        &srv,
        "/v1/kv/p/k",
        &[("If-Match", "\"1\", \"2\"")],
        b"three",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = put_h(&srv, "/v1/kv/p/k", &[("If-Match", "\"5\", \"6\"")], b"four");
    assert_precondition_failed(&r, json!(3));
    assert_eq!(get(&srv, "/v1/kv/p/k").body, b"three");
}

#[test]
fn if_match_star_on_an_absent_key_is_412_with_null_current_version() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = put_h(&srv, "/v1/kv/p/k", &[("If-Match", "*")], b"v");
    assert_precondition_failed(&r, Value::Null);
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
    assert_eq!(project_version(&srv), 0);
}

#[test]
fn if_match_star_on_an_existing_key_replaces_it() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"one");
    let r = put_h(&srv, "/v1/kv/p/k", &[("If-Match", "*")], b"two");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get(&srv, "/v1/kv/p/k").body, b"two");
}

#[test]
fn put_if_match_a_version_on_an_absent_key_is_412_with_null() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = put_h(&srv, "/v1/kv/p/k", &[("If-Match", "\"1\"")], b"v");
    assert_precondition_failed(&r, Value::Null);
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
}

#[test]
fn if_none_match_star_creates_only_when_absent() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = put_h(&srv, "/v1/kv/p/k", &[("If-None-Match", "*")], b"first");
    assert_json(&r, 201);
    let r = put_h(&srv, "/v1/kv/p/k", &[("If-None-Match", "*")], b"second");
    assert_precondition_failed(&r, json!(1));
    assert_value(
        &get(&srv, "/v1/kv/p/k"),
        b"first",
        "application/octet-stream",
        1,
    );
}

#[test]
fn put_if_none_match_a_version_refuses_only_that_version() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"one");
    let r = put_h(&srv, "/v1/kv/p/k", &[("If-None-Match", "\"1\"")], b"two");
    assert_precondition_failed(&r, json!(1));
    assert_eq!(get(&srv, "/v1/kv/p/k").body, b"one");
    let r = put_h(&srv, "/v1/kv/p/k", &[("If-None-Match", "\"7\"")], b"two");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get(&srv, "/v1/kv/p/k").body, b"two");
}

#[test]
fn delete_with_if_match_of_the_current_version_deletes() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let r = srv.req_h(
        "DELETE",
        "/v1/kv/p/k",
        Some(ADMIN),
        &[("If-Match", "\"1\"")],
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
}

#[test]
fn delete_with_stale_if_match_is_412_and_keeps_the_key() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"one");
    put_ok(&srv, "/v1/kv/p/k", b"two");
    let r = srv.req_h(
        "DELETE",
        "/v1/kv/p/k",
        Some(ADMIN),
        &[("If-Match", "\"1\"")],
        b"",
    );
    assert_precondition_failed(&r, json!(2));
    assert_value(
        &get(&srv, "/v1/kv/p/k"),
        b"two",
        "application/octet-stream",
        2,
    );
    assert_eq!(project_version(&srv), 2);
}

#[test]
fn delete_with_if_match_on_an_absent_key_is_412_with_null() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = srv.req_h(
        "DELETE",
        "/v1/kv/p/k",
        Some(ADMIN),
        &[("If-Match", "\"1\"")],
        b"",
    );
    assert_precondition_failed(&r, Value::Null);
}

#[test]
fn incr_with_if_match_of_the_current_version_increments() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/c", b"1");
    let r = srv.req_h(
        "POST",
        "/v1/kv/p/c?incr=1",
        Some(ADMIN),
        &[("If-Match", "\"1\"")],
        b"",
    );
    assert_value(&r, b"2", "text/plain", 2);
}

#[test]
fn incr_with_stale_if_match_is_412_and_leaves_the_counter() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/c", b"1");
    put_ok(&srv, "/v1/kv/p/c", b"5");
    let r = srv.req_h(
        "POST",
        "/v1/kv/p/c?incr=1",
        Some(ADMIN),
        &[("If-Match", "\"1\"")],
        b"",
    );
    assert_precondition_failed(&r, json!(2));
    assert_value(
        &get(&srv, "/v1/kv/p/c"),
        b"5",
        "application/octet-stream",
        2,
    );
}

#[test]
fn incr_with_if_match_on_an_absent_key_is_412_with_null() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = srv.req_h(
        "POST",
        "/v1/kv/p/c?incr=1",
        Some(ADMIN),
        &[("If-Match", "*")],
        b"",
    );
    assert_precondition_failed(&r, Value::Null);
    get(&srv, "/v1/kv/p/c").assert_error(404, "key_not_found");
}

#[test]
fn get_with_if_none_match_of_the_current_version_is_304_with_etag_and_no_body() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"value");
    let (r, rest) = srv.req_close("GET", "/v1/kv/p/k", &[("If-None-Match", "\"1\"")], b"");
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert!(rest.is_empty(), "304 sent a body: {rest:?}");
}

#[test]
fn get_with_if_none_match_star_on_an_existing_key_is_304() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"value");
    let (r, rest) = srv.req_close("GET", "/v1/kv/p/k", &[("If-None-Match", "*")], b"");
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert!(rest.is_empty(), "304 sent a body: {rest:?}");
}

#[test]
fn head_with_if_none_match_of_the_current_version_is_304() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"value");
    let (r, rest) = srv.req_close("HEAD", "/v1/kv/p/k", &[("If-None-Match", "\"1\"")], b"");
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert!(rest.is_empty(), "304 sent a body: {rest:?}");
}

#[test]
fn get_with_if_none_match_of_another_version_is_200_with_the_value() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"one");
    put_ok(&srv, "/v1/kv/p/k", b"two");
    let r = get_h(&srv, "/v1/kv/p/k", &[("If-None-Match", "\"1\"")]);
    assert_value(&r, b"two", "application/octet-stream", 2);
}

#[test]
fn blank_if_match_and_if_none_match_count_as_absent() {
    let srv = InProc::with_p(json!({})).0;
    for blank in ["", "   "] {
        let both = [("If-Match", blank), ("If-None-Match", blank)];
        let r = put_h(&srv, "/v1/kv/p/k", &both, b"v");
        assert_json(&r, if blank.is_empty() { 201 } else { 200 });
        let r = get_h(&srv, "/v1/kv/p/k", &[("If-None-Match", blank)]);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"v"[..]));
    }
    let r = srv.req_h(
        "DELETE",
        "/v1/kv/p/k",
        Some(ADMIN),
        &[("If-Match", "")],
        b"",
    );
    assert_eq!(r.status, 204);
}
