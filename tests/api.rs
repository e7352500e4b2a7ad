//! Every key and project route over real HTTP: statuses, headers and exact bodies.

mod common;
use common::*;

use serde_json::{json, Value};
use std::io::{Read, Write};

/// The config-declared project used by the config tests.
const CFG_SECRET: &str = "cfg-write-secret-0123456789";

fn config_project() -> Value {
    json!({ "projects": { "cfg": { "tokens": [
        { "label": "ci", "access": "write", "secret": CFG_SECRET }
    ] } } })
}

/// A server with one empty API project `p`.
fn start_with_p() -> Server {
    let srv = Server::start(json!({}));
    create_project(&srv, "p");
    srv
}

fn put(srv: &Server, path: &str, value: &[u8]) -> Resp {
    srv.req("PUT", path, Some(ADMIN), value)
}

fn put_typed(srv: &Server, path: &str, content_type: &str, value: &[u8]) -> Resp {
    srv.req_h(
        "PUT",
        path,
        Some(ADMIN),
        &[("Content-Type", content_type)],
        value,
    )
}

/// PUT that must succeed (201 or 200); returns the JSON body.
fn put_ok(srv: &Server, path: &str, value: &[u8]) -> Value {
    let r = put(srv, path, value);
    assert!(
        r.status == 201 || r.status == 200,
        "PUT {path}: {} {}",
        r.status,
        r.text()
    );
    r.json()
}

fn get(srv: &Server, path: &str) -> Resp {
    srv.req("GET", path, Some(ADMIN), b"")
}

/// One request with `Connection: close`; returns the response and every byte the server sent
/// after it (must be none for HEAD and 204).
fn req_close(srv: &Server, method: &str, path: &str, body: &[u8]) -> (Resp, Vec<u8>) {
    let mut s = srv.connect();
    let bytes = request_bytes(method, path, Some(ADMIN), &[("Connection", "close")], body);
    s.write_all(&bytes).unwrap();
    let r = read_response(&mut s, method == "HEAD").expect("response");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("server closes after Connection: close");
    (r, rest)
}

/// `GET /v1/kv/{p}?{query}` that must answer 200; returns the JSON body.
fn list(srv: &Server, p: &str, query: &str) -> Value {
    let path = if query.is_empty() {
        format!("/v1/kv/{p}")
    } else {
        format!("/v1/kv/{p}?{query}")
    };
    let r = get(srv, &path);
    assert_json(&r, 200);
    r.json()
}

fn assert_json(r: &Resp, status: u16) {
    assert_eq!(r.status, status, "body: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
}

/// A JSON error with this status and any error code (the spec names no code for the case).
fn assert_some_error(r: &Resp, status: u16) {
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

/// Percent-encode every byte.
fn pct(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

/// A token id as it appears in a path (the spec does not fix its JSON type).
fn id_path(v: &Value) -> String {
    match v {
        Value::String(s) => {
            assert!(!s.is_empty(), "empty token id");
            s.clone()
        }
        Value::Number(n) => n.to_string(),
        other => panic!("token id is neither string nor number: {other}"),
    }
}

fn is_generated_secret(s: &str) -> bool {
    s.len() == 37
        && s.starts_with("pykv_")
        && s[5..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn keys(list: &Value) -> Vec<String> {
    list["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .map(|k| k.as_str().expect("key string").to_string())
        .collect()
}

// ---------------------------------------------------------------- PUT, versions, ETag

#[test]
fn put_new_key_returns_201_with_version_and_etag() {
    let srv = start_with_p();
    let r = put(&srv, "/v1/kv/p/k", b"hello");
    assert_json(&r, 201);
    assert_eq!(r.json(), json!({"project":"p","key":"k","version":1}));
    assert_eq!(r.header("etag"), Some("\"1\""));
}

#[test]
fn put_existing_key_returns_200_with_next_version() {
    let srv = start_with_p();
    put_ok(&srv, "/v1/kv/p/k", b"one");
    let r = put(&srv, "/v1/kv/p/k", b"two");
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({"project":"p","key":"k","version":2}));
    assert_eq!(r.header("etag"), Some("\"2\""));
    assert_eq!(get(&srv, "/v1/kv/p/k").body, b"two");
}

#[test]
fn versions_grow_by_one_per_mutation_including_delete() {
    let srv = start_with_p();
    assert_eq!(put(&srv, "/v1/kv/p/k", b"a").json()["version"], 1);
    assert_eq!(put(&srv, "/v1/kv/p/k", b"b").json()["version"], 2);
    assert_eq!(
        srv.req("DELETE", "/v1/kv/p/k", Some(ADMIN), b"").status,
        204
    );
    let r = put(&srv, "/v1/kv/p/k", b"c");
    assert_json(&r, 201);
    assert_eq!(r.json(), json!({"project":"p","key":"k","version":4}));
    assert_eq!(r.header("etag"), Some("\"4\""));
    assert_eq!(get(&srv, "/v1/projects/p").json()["version"], 4);
}

#[test]
fn versions_count_per_project_across_keys() {
    let srv = start_with_p();
    create_project(&srv, "q");
    assert_eq!(put_ok(&srv, "/v1/kv/p/a", b"1")["version"], 1);
    assert_eq!(put_ok(&srv, "/v1/kv/p/b", b"2")["version"], 2);
    assert_eq!(put_ok(&srv, "/v1/kv/q/a", b"3")["version"], 1);
    assert_eq!(put_ok(&srv, "/v1/kv/p/c", b"4")["version"], 3);
}

#[test]
fn get_etag_is_the_version_of_the_keys_last_write() {
    let srv = start_with_p();
    put_ok(&srv, "/v1/kv/p/a", b"1");
    put_ok(&srv, "/v1/kv/p/b", b"2");
    assert_eq!(get(&srv, "/v1/kv/p/a").header("etag"), Some("\"1\""));
    assert_eq!(get(&srv, "/v1/kv/p/b").header("etag"), Some("\"2\""));
}

// ---------------------------------------------------------------- GET, HEAD, DELETE

#[test]
fn get_returns_exact_bytes_with_stored_content_type_etag_and_length() {
    let srv = start_with_p();
    assert_eq!(
        put_typed(&srv, "/v1/kv/p/k", "text/plain", b"hello world").status,
        201
    );
    let r = get(&srv, "/v1/kv/p/k");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.header("content-length"), Some("11"));
}

#[test]
fn content_type_with_parameters_is_returned_unchanged() {
    let srv = start_with_p();
    let ct = "text/plain; charset=utf-8";
    assert_eq!(put_typed(&srv, "/v1/kv/p/k", ct, b"x").status, 201);
    assert_eq!(get(&srv, "/v1/kv/p/k").header("content-type"), Some(ct));
}

#[test]
fn get_without_stored_content_type_is_application_octet_stream() {
    let srv = start_with_p();
    put_ok(&srv, "/v1/kv/p/k", b"raw");
    let r = get(&srv, "/v1/kv/p/k");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.body, b"raw");
}

#[test]
fn head_returns_the_get_headers_and_no_body() {
    let srv = start_with_p();
    assert_eq!(
        put_typed(&srv, "/v1/kv/p/k", "text/plain", b"twelve bytes").status,
        201
    );
    let (r, rest) = req_close(&srv, "HEAD", "/v1/kv/p/k", b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.header("content-length"), Some("12"));
    assert!(rest.is_empty(), "HEAD sent a body: {rest:?}");
}

#[test]
fn get_absent_key_is_404_key_not_found() {
    let srv = start_with_p();
    get(&srv, "/v1/kv/p/missing").assert_error(404, "key_not_found");
}

#[test]
fn head_absent_key_is_404_without_body() {
    let srv = start_with_p();
    let (r, rest) = req_close(&srv, "HEAD", "/v1/kv/p/missing", b"");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(rest.is_empty(), "HEAD sent a body: {rest:?}");
}

#[test]
fn delete_returns_204_with_empty_body_then_get_is_404() {
    let srv = start_with_p();
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let (r, rest) = req_close(&srv, "DELETE", "/v1/kv/p/k", b"");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-type"), None);
    assert_eq!(r.header("content-length"), None);
    assert!(rest.is_empty(), "204 had a body: {rest:?}");
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
}

#[test]
fn delete_absent_key_is_404_key_not_found() {
    let srv = start_with_p();
    srv.req("DELETE", "/v1/kv/p/missing", Some(ADMIN), b"")
        .assert_error(404, "key_not_found");
}

// ---------------------------------------------------------------- values

#[test]
fn every_byte_value_round_trips_unchanged() {
    let srv = start_with_p();
    let value: Vec<u8> = (0..=255u8).collect();
    assert_eq!(put(&srv, "/v1/kv/p/bin", &value).status, 201);
    let r = get(&srv, "/v1/kv/p/bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("256"));
    assert_eq!(r.body, value);
}

#[test]
fn empty_value_round_trips() {
    let srv = start_with_p();
    assert_eq!(put(&srv, "/v1/kv/p/empty", b"").status, 201);
    let r = get(&srv, "/v1/kv/p/empty");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("0"));
    assert!(r.body.is_empty());
}

#[test]
fn value_of_exactly_max_value_bytes_is_accepted() {
    let srv = Server::start(json!({ "limits": { "max_value_bytes": 16 } }));
    create_project(&srv, "p");
    let value = [b'x'; 16];
    assert_eq!(put(&srv, "/v1/kv/p/k", &value).status, 201);
    assert_eq!(get(&srv, "/v1/kv/p/k").body, value);
}

#[test]
fn value_one_byte_over_max_value_bytes_is_413_and_not_stored() {
    let srv = Server::start(json!({ "limits": { "max_value_bytes": 16 } }));
    create_project(&srv, "p");
    put(&srv, "/v1/kv/p/k", &[b'x'; 17]).assert_error(413, "payload_too_large");
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
}

// ---------------------------------------------------------------- keys

#[test]
fn key_with_slashes_is_one_key() {
    let srv = start_with_p();
    let r = put(&srv, "/v1/kv/p/a/b/c", b"v");
    assert_eq!(r.status, 201);
    assert_eq!(r.json(), json!({"project":"p","key":"a/b/c","version":1}));
    assert_eq!(get(&srv, "/v1/kv/p/a/b/c").body, b"v");
    assert_eq!(list(&srv, "p", ""), json!({"keys":["a/b/c"],"next":null}));
}

#[test]
fn encoded_slash_is_the_same_key_as_a_literal_slash() {
    let srv = start_with_p();
    let r = put(&srv, "/v1/kv/p/a%2Fb", b"v1");
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["key"], "a/b");
    assert_eq!(get(&srv, "/v1/kv/p/a/b").body, b"v1");
    assert_eq!(put(&srv, "/v1/kv/p/a/b", b"v2").status, 200);
    assert_eq!(get(&srv, "/v1/kv/p/a%2fb").body, b"v2");
    assert_eq!(list(&srv, "p", ""), json!({"keys":["a/b"],"next":null}));
}

#[test]
fn encoded_space_is_decoded_in_the_key() {
    let srv = start_with_p();
    let r = put(&srv, "/v1/kv/p/hello%20world", b"v");
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["key"], "hello world");
    assert_eq!(get(&srv, "/v1/kv/p/hello%20world").body, b"v");
    assert_eq!(
        list(&srv, "p", ""),
        json!({"keys":["hello world"],"next":null})
    );
}

#[test]
fn percent_encoded_utf8_key_round_trips() {
    let srv = start_with_p();
    let r = put(&srv, "/v1/kv/p/%C3%A9t%C3%A9", b"summer");
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["key"], "été");
    assert_eq!(get(&srv, "/v1/kv/p/%c3%a9t%c3%a9").body, b"summer");
    assert_eq!(list(&srv, "p", ""), json!({"keys":["été"],"next":null}));
}

#[test]
fn key_of_exactly_1024_bytes_is_accepted() {
    let srv = start_with_p();
    let key = "k".repeat(1024);
    assert_eq!(put(&srv, &format!("/v1/kv/p/{key}"), b"v").status, 201);
    assert_eq!(get(&srv, &format!("/v1/kv/p/{key}")).body, b"v");
    assert_eq!(list(&srv, "p", ""), json!({"keys":[key],"next":null}));
}

#[test]
fn key_of_1025_bytes_is_invalid_key() {
    let srv = start_with_p();
    let key = "k".repeat(1025);
    put(&srv, &format!("/v1/kv/p/{key}"), b"v").assert_error(400, "invalid_key");
    get(&srv, &format!("/v1/kv/p/{key}")).assert_error(400, "invalid_key");
}

#[test]
fn key_length_limit_counts_decoded_bytes() {
    let srv = start_with_p();
    // 512 × "é" is 1024 bytes decoded but 3072 characters in the URL.
    let key = "é".repeat(512);
    let r = put(&srv, &format!("/v1/kv/p/{}", pct(key.as_bytes())), b"v");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["key"], key.as_str());
    let over = "é".repeat(513);
    put(&srv, &format!("/v1/kv/p/{}", pct(over.as_bytes())), b"v").assert_error(400, "invalid_key");
}

#[test]
fn empty_key_is_invalid_key() {
    let srv = start_with_p();
    put(&srv, "/v1/kv/p/", b"v").assert_error(400, "invalid_key");
    get(&srv, "/v1/kv/p/").assert_error(400, "invalid_key");
}

#[test]
fn invalid_utf8_key_is_invalid_key() {
    let srv = start_with_p();
    put(&srv, "/v1/kv/p/%FF", b"v").assert_error(400, "invalid_key");
    put(&srv, "/v1/kv/p/a%C3", b"v").assert_error(400, "invalid_key");
}

#[test]
fn bad_percent_escape_is_invalid_key() {
    let srv = start_with_p();
    for path in ["/v1/kv/p/%zz", "/v1/kv/p/a%4", "/v1/kv/p/a%"] {
        let r = put(&srv, path, b"v");
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        r.assert_error(400, "invalid_key");
    }
    assert_eq!(list(&srv, "p", ""), json!({"keys":[],"next":null}));
}

#[test]
fn admin_on_nonexistent_project_keys_is_404_project_not_found() {
    let srv = Server::start(json!({}));
    put(&srv, "/v1/kv/ghost/k", b"v").assert_error(404, "project_not_found");
    get(&srv, "/v1/kv/ghost/k").assert_error(404, "project_not_found");
    srv.req("DELETE", "/v1/kv/ghost/k", Some(ADMIN), b"")
        .assert_error(404, "project_not_found");
    get(&srv, "/v1/kv/ghost").assert_error(404, "project_not_found");
}

#[test]
fn admin_on_invalid_project_name_keys_is_400_invalid_project_name() {
    let srv = Server::start(json!({}));
    put(&srv, "/v1/kv/Bad/k", b"v").assert_error(400, "invalid_project_name");
    get(&srv, "/v1/kv/Bad").assert_error(400, "invalid_project_name");
}

// ---------------------------------------------------------------- listing

#[test]
fn listing_returns_all_keys_in_byte_order_with_null_next() {
    let srv = start_with_p();
    for k in ["b", "a", "B", "%C3%A9", "a/b", "aa"] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"v");
    }
    let r = get(&srv, "/v1/kv/p");
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({"keys":["B","a","a/b","aa","b","é"],"next":null})
    );
}

#[test]
fn listing_an_empty_project_is_empty() {
    let srv = start_with_p();
    assert_eq!(list(&srv, "p", ""), json!({"keys":[],"next":null}));
}

#[test]
fn listing_with_prefix_returns_only_matching_keys() {
    let srv = start_with_p();
    for k in ["a1", "b1", "ab", "a2", "ba"] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"v");
    }
    assert_eq!(
        list(&srv, "p", "prefix=a"),
        json!({"keys":["a1","a2","ab"],"next":null})
    );
    assert_eq!(list(&srv, "p", "prefix=zz"), json!({"keys":[],"next":null}));
}

#[test]
fn listing_after_returns_keys_strictly_after() {
    let srv = start_with_p();
    for k in ["k1", "k2", "k3", "k4", "k5"] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"v");
    }
    assert_eq!(
        list(&srv, "p", "after=k2"),
        json!({"keys":["k3","k4","k5"],"next":null})
    );
    // `after` need not be an existing key.
    assert_eq!(
        list(&srv, "p", "after=k25"),
        json!({"keys":["k3","k4","k5"],"next":null})
    );
    assert_eq!(list(&srv, "p", "after=k5"), json!({"keys":[],"next":null}));
}

#[test]
fn listing_with_prefix_and_after_combines_both() {
    let srv = start_with_p();
    for k in ["a1", "a2", "a3", "b1"] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"v");
    }
    assert_eq!(
        list(&srv, "p", "prefix=a&after=a1&limit=1"),
        json!({"keys":["a2"],"next":"a2"})
    );
    assert_eq!(
        list(&srv, "p", "prefix=a&after=a2&limit=1"),
        json!({"keys":["a3"],"next":null})
    );
}

#[test]
fn listing_pages_with_limit_until_next_is_null() {
    let srv = start_with_p();
    let all = ["k1", "k2", "k3", "k4", "k5"];
    for k in all {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"v");
    }
    assert_eq!(
        list(&srv, "p", "limit=2"),
        json!({"keys":["k1","k2"],"next":"k2"})
    );
    let mut seen = Vec::new();
    let mut query = "limit=2".to_string();
    for _ in 0..10 {
        let page = list(&srv, "p", &query);
        let page_keys = keys(&page);
        assert!(page_keys.len() <= 2, "page too long: {page}");
        seen.extend(page_keys);
        match page["next"].as_str() {
            Some(next) => query = format!("limit=2&after={next}"),
            None => {
                assert!(page["next"].is_null(), "{page}");
                break;
            }
        }
    }
    assert_eq!(seen, all);
}

#[test]
fn listing_next_is_null_when_the_page_ends_exactly_at_the_last_key() {
    let srv = start_with_p();
    for k in ["k1", "k2", "k3", "k4"] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"v");
    }
    assert_eq!(
        list(&srv, "p", "limit=2&after=k2"),
        json!({"keys":["k3","k4"],"next":null})
    );
    assert_eq!(
        list(&srv, "p", "limit=4"),
        json!({"keys":["k1","k2","k3","k4"],"next":null})
    );
}

#[test]
fn listing_limit_bounds_1_and_1000_are_accepted() {
    let srv = start_with_p();
    put_ok(&srv, "/v1/kv/p/a", b"v");
    put_ok(&srv, "/v1/kv/p/b", b"v");
    assert_eq!(list(&srv, "p", "limit=1"), json!({"keys":["a"],"next":"a"}));
    assert_eq!(
        list(&srv, "p", "limit=1000"),
        json!({"keys":["a","b"],"next":null})
    );
}

#[test]
fn listing_default_limit_is_100() {
    let srv = start_with_p();
    let all: Vec<String> = (0..150).map(|i| format!("k{i:03}")).collect();
    for k in &all {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"v");
    }
    let first = list(&srv, "p", "");
    assert_eq!(keys(&first), all[..100]);
    assert_eq!(first["next"], "k099");
    let second = list(&srv, "p", "after=k099");
    assert_eq!(keys(&second), all[100..]);
    assert!(second["next"].is_null(), "{second}");
}

#[test]
fn listing_rejects_out_of_range_or_non_numeric_limit() {
    let srv = start_with_p();
    for q in ["limit=0", "limit=1001", "limit=abc", "limit=-1", "limit="] {
        let r = get(&srv, &format!("/v1/kv/p?{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        r.assert_error(400, "invalid_parameter");
    }
}

#[test]
fn listing_rejects_unknown_parameter() {
    let srv = start_with_p();
    get(&srv, "/v1/kv/p?foo=1").assert_error(400, "unknown_parameter");
    get(&srv, "/v1/kv/p?limit=5&cursor=x").assert_error(400, "unknown_parameter");
}

// ---------------------------------------------------------------- quota

fn start_with_quota_2() -> Server {
    let srv = Server::start(json!({ "limits": { "max_keys_per_project": 2 } }));
    create_project(&srv, "p");
    put_ok(&srv, "/v1/kv/p/k1", b"v");
    put_ok(&srv, "/v1/kv/p/k2", b"v");
    srv
}

#[test]
fn new_key_past_max_keys_per_project_is_507_quota_exceeded() {
    let srv = start_with_quota_2();
    let r = put(&srv, "/v1/kv/p/k3", b"v");
    r.assert_error(507, "quota_exceeded");
    let msg = r.json()["message"].as_str().unwrap().to_string();
    assert!(msg.contains("max_keys_per_project"), "message: {msg}");
    get(&srv, "/v1/kv/p/k3").assert_error(404, "key_not_found");
}

#[test]
fn replacing_a_key_at_the_quota_still_works() {
    let srv = start_with_quota_2();
    let r = put(&srv, "/v1/kv/p/k1", b"new");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get(&srv, "/v1/kv/p/k1").body, b"new");
}

#[test]
fn deleting_a_key_frees_quota() {
    let srv = start_with_quota_2();
    assert_eq!(
        srv.req("DELETE", "/v1/kv/p/k1", Some(ADMIN), b"").status,
        204
    );
    assert_eq!(put(&srv, "/v1/kv/p/k3", b"v").status, 201);
}

// ---------------------------------------------------------------- projects

#[test]
fn create_project_returns_201_with_a_write_and_a_read_token() {
    let srv = Server::start(json!({}));
    let r = srv.req("POST", "/v1/projects", Some(ADMIN), br#"{"name":"p"}"#);
    assert_json(&r, 201);
    let j = r.json();
    let tokens = j["tokens"].as_array().expect("tokens").clone();
    assert_eq!(tokens.len(), 2, "{j}");
    for t in &tokens {
        let secret = t["secret"].as_str().expect("secret");
        assert!(is_generated_secret(secret), "secret {secret:?}");
    }
    assert_ne!(tokens[0]["secret"], tokens[1]["secret"]);
    assert_ne!(tokens[0]["id"], tokens[1]["id"]);
    let expected = json!({
        "name": "p", "keys": 0, "bytes": 0, "persistence": "sync", "source": "api", "version": 0,
        "max_keys": null, "max_bytes": null,
        "tokens": [
            {"id": tokens[0]["id"], "label": "write", "access": "write", "source": "api",
             "secret": tokens[0]["secret"]},
            {"id": tokens[1]["id"], "label": "read", "access": "read", "source": "api",
             "secret": tokens[1]["secret"]},
        ]
    });
    assert_eq!(j, expected);
    id_path(&tokens[0]["id"]);
}

#[test]
fn create_project_with_persistence_memory() {
    let srv = Server::start(json!({}));
    let r = srv.req(
        "POST",
        "/v1/projects",
        Some(ADMIN),
        br#"{"name":"m","persistence":"memory"}"#,
    );
    assert_json(&r, 201);
    assert_eq!(r.json()["persistence"], "memory");
    assert_eq!(get(&srv, "/v1/projects/m").json()["persistence"], "memory");
}

#[test]
fn creating_an_existing_project_is_409_project_exists() {
    let srv = start_with_p();
    srv.req("POST", "/v1/projects", Some(ADMIN), br#"{"name":"p"}"#)
        .assert_error(409, "project_exists");
}

#[test]
fn invalid_project_names_are_400_invalid_project_name() {
    let srv = Server::start(json!({}));
    let long = "a".repeat(65);
    for name in [
        "Bad",
        "-x",
        "_x",
        "a.b",
        long.as_str(),
        "",
        "../x",
        "a b",
        "é",
    ] {
        let body = json!({ "name": name }).to_string();
        let r = srv.req("POST", "/v1/projects", Some(ADMIN), body.as_bytes());
        assert_eq!(r.status, 400, "name {name:?}: {}", r.text());
        r.assert_error(400, "invalid_project_name");
    }
    assert_eq!(get(&srv, "/v1/projects").json(), json!({"projects":[]}));
}

#[test]
fn project_names_of_1_and_64_chars_are_accepted() {
    let srv = Server::start(json!({}));
    let long = format!("0{}", "a_-9".repeat(16))[..64].to_string();
    assert_eq!(long.len(), 64);
    for name in ["a", long.as_str()] {
        let body = json!({ "name": name }).to_string();
        let r = srv.req("POST", "/v1/projects", Some(ADMIN), body.as_bytes());
        assert_eq!(r.status, 201, "name {name:?}: {}", r.text());
        assert_eq!(r.json()["name"], name);
    }
    assert_eq!(
        get(&srv, &format!("/v1/projects/{long}")).json()["name"],
        long.as_str()
    );
}

#[test]
fn create_project_with_bad_json_is_400_invalid_json() {
    let srv = Server::start(json!({}));
    for body in [&br#"{"name":"#[..], b"not json", b""] {
        let r = srv.req("POST", "/v1/projects", Some(ADMIN), body);
        assert_eq!(
            r.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(body),
            r.text()
        );
        r.assert_error(400, "invalid_json");
    }
}

#[test]
fn create_project_with_unknown_persistence_is_400_and_creates_nothing() {
    let srv = Server::start(json!({}));
    let r = srv.req(
        "POST",
        "/v1/projects",
        Some(ADMIN),
        br#"{"name":"p","persistence":"disk"}"#,
    );
    assert_some_error(&r, 400);
    get(&srv, "/v1/projects/p").assert_error(404, "project_not_found");
}

#[test]
fn list_projects_is_sorted_by_name_with_key_and_byte_counts() {
    let srv = Server::start(config_project());
    for name in ["zeta", "alpha", "mid"] {
        create_project(&srv, name);
    }
    put_ok(&srv, "/v1/kv/mid/k1", b"abc"); // 2 + 3
    put_ok(&srv, "/v1/kv/mid/key2", b""); // 4 + 0
    put_ok(&srv, "/v1/kv/alpha/%C3%A9", b"xy"); // 2 + 2
    let r = get(&srv, "/v1/projects");
    assert_json(&r, 200);
    let row = |name: &str, keys: u64, bytes: u64, source: &str| json!({"name": name, "keys": keys, "bytes": bytes, "persistence": "sync", "source": source});
    assert_eq!(
        r.json(),
        json!({"projects": [
            row("alpha", 1, 4, "api"),
            row("cfg", 0, 0, "config"),
            row("mid", 2, 9, "api"),
            row("zeta", 0, 0, "api"),
        ]})
    );
}

#[test]
fn get_project_returns_counts_and_version() {
    let srv = start_with_p();
    put_ok(&srv, "/v1/kv/p/k1", b"abc");
    put_ok(&srv, "/v1/kv/p/key2", b"");
    let r = get(&srv, "/v1/projects/p");
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({"name":"p","keys":2,"bytes":9,"persistence":"sync","source":"api","version":2,"max_keys":null,"max_bytes":null})
    );
}

#[test]
fn project_counts_follow_replace_and_delete() {
    let srv = start_with_p();
    put_ok(&srv, "/v1/kv/p/k1", b"abc");
    put_ok(&srv, "/v1/kv/p/k2", b"abc");
    put_ok(&srv, "/v1/kv/p/k1", b"a"); // replace: 2 + 1
    assert_eq!(
        srv.req("DELETE", "/v1/kv/p/k2", Some(ADMIN), b"").status,
        204
    );
    assert_eq!(
        get(&srv, "/v1/projects/p").json(),
        json!({"name":"p","keys":1,"bytes":3,"persistence":"sync","source":"api","version":4,"max_keys":null,"max_bytes":null})
    );
}

#[test]
fn get_unknown_project_is_404_project_not_found() {
    let srv = Server::start(json!({}));
    get(&srv, "/v1/projects/ghost").assert_error(404, "project_not_found");
    srv.req("DELETE", "/v1/projects/ghost", Some(ADMIN), b"")
        .assert_error(404, "project_not_found");
    get(&srv, "/v1/projects/ghost/tokens").assert_error(404, "project_not_found");
}

#[test]
fn delete_project_returns_204_and_removes_it() {
    let srv = start_with_p();
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let (r, rest) = req_close(&srv, "DELETE", "/v1/projects/p", b"");
    assert_eq!(r.status, 204);
    assert!(rest.is_empty(), "204 had a body: {rest:?}");
    get(&srv, "/v1/projects/p").assert_error(404, "project_not_found");
    get(&srv, "/v1/kv/p/k").assert_error(404, "project_not_found");
    assert_eq!(get(&srv, "/v1/projects").json(), json!({"projects":[]}));
}

#[test]
fn recreated_project_is_empty_and_old_tokens_are_401() {
    let srv = Server::start(json!({}));
    let (old_write, old_read) = create_project(&srv, "p");
    assert_eq!(
        srv.req("PUT", "/v1/kv/p/k", Some(&old_write), b"v").status,
        201
    );
    assert_eq!(
        srv.req("DELETE", "/v1/projects/p", Some(ADMIN), b"").status,
        204
    );
    let (new_write, _) = create_project(&srv, "p");
    assert_ne!(new_write, old_write);
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
    assert_eq!(list(&srv, "p", ""), json!({"keys":[],"next":null}));
    assert_eq!(get(&srv, "/v1/projects/p").json()["version"], 0);
    for old in [&old_write, &old_read] {
        let r = srv.req("GET", "/v1/kv/p/k", Some(old), b"");
        r.assert_error(401, "unauthorized");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    assert_eq!(
        srv.req("PUT", "/v1/kv/p/k", Some(&new_write), b"v").status,
        201
    );
}

#[test]
fn config_project_is_listed_with_source_config() {
    let srv = Server::start(config_project());
    assert_eq!(
        get(&srv, "/v1/projects").json(),
        json!({"projects":[{"name":"cfg","keys":0,"bytes":0,"persistence":"sync","source":"config"}]})
    );
    assert_eq!(
        get(&srv, "/v1/projects/cfg").json(),
        json!({"name":"cfg","keys":0,"bytes":0,"persistence":"sync","source":"config","version":0,"max_keys":null,"max_bytes":null})
    );
}

#[test]
fn config_token_can_write_its_project() {
    let srv = Server::start(config_project());
    let r = srv.req("PUT", "/v1/kv/cfg/k", Some(CFG_SECRET), b"v");
    assert_eq!(r.status, 201, "{}", r.text());
    let r = srv.req("GET", "/v1/kv/cfg/k", Some(CFG_SECRET), b"");
    assert_eq!(r.body, b"v");
}

#[test]
fn deleting_a_config_project_is_409_project_in_config() {
    let srv = Server::start(config_project());
    srv.req("DELETE", "/v1/projects/cfg", Some(ADMIN), b"")
        .assert_error(409, "project_in_config");
    assert_eq!(get(&srv, "/v1/projects/cfg").status, 200);
}

#[test]
fn patching_a_config_project_is_409_project_in_config() {
    let srv = Server::start(config_project());
    srv.req(
        "PATCH",
        "/v1/projects/cfg",
        Some(ADMIN),
        br#"{"persistence":"memory"}"#,
    )
    .assert_error(409, "project_in_config");
    assert_eq!(get(&srv, "/v1/projects/cfg").json()["persistence"], "sync");
}

#[test]
fn patch_project_changes_persistence() {
    let srv = start_with_p();
    put_ok(&srv, "/v1/kv/p/k", b"abc");
    let r = srv.req(
        "PATCH",
        "/v1/projects/p",
        Some(ADMIN),
        br#"{"persistence":"memory"}"#,
    );
    assert_json(&r, 200);
    let j = r.json();
    assert_eq!(
        j,
        json!({"name":"p","keys":1,"bytes":4,"persistence":"memory","source":"api",
               "version": j["version"], "max_keys": null, "max_bytes": null})
    );
    assert!(j["version"].is_u64(), "{j}");
    assert_eq!(get(&srv, "/v1/projects/p").json(), j);
    assert_eq!(get(&srv, "/v1/kv/p/k").body, b"abc");
}

#[test]
fn patch_project_with_unknown_persistence_is_400() {
    let srv = start_with_p();
    let r = srv.req(
        "PATCH",
        "/v1/projects/p",
        Some(ADMIN),
        br#"{"persistence":"disk"}"#,
    );
    assert_some_error(&r, 400);
    assert_eq!(get(&srv, "/v1/projects/p").json()["persistence"], "sync");
}

// ---------------------------------------------------------------- tokens

#[test]
fn list_tokens_shows_id_label_access_source_and_never_secrets() {
    let srv = Server::start(json!({}));
    let created = srv
        .req("POST", "/v1/projects", Some(ADMIN), br#"{"name":"p"}"#)
        .json();
    let r = get(&srv, "/v1/projects/p/tokens");
    assert_json(&r, 200);
    let text = r.text();
    assert!(!text.contains("secret"), "body: {text}");
    for t in created["tokens"].as_array().unwrap() {
        assert!(
            !text.contains(t["secret"].as_str().unwrap()),
            "body: {text}"
        );
    }
    let mut listed = r.json()["tokens"].as_array().expect("tokens").clone();
    listed.sort_by_key(|t| t["label"].to_string());
    let c = &created["tokens"];
    assert_eq!(
        listed,
        vec![
            json!({"id": c[1]["id"], "label": "read", "access": "read", "source": "api"}),
            json!({"id": c[0]["id"], "label": "write", "access": "write", "source": "api"}),
        ]
    );
}

#[test]
fn config_tokens_are_listed_with_source_config_and_no_secret() {
    let srv = Server::start(config_project());
    let r = get(&srv, "/v1/projects/cfg/tokens");
    assert_json(&r, 200);
    assert!(!r.text().contains(CFG_SECRET), "body: {}", r.text());
    let j = r.json();
    let tokens = j["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 1, "{j}");
    assert_eq!(
        tokens[0],
        json!({"id": tokens[0]["id"], "label": "ci", "access": "write", "source": "config"})
    );
}

#[test]
fn created_read_token_can_read_but_not_write() {
    let srv = start_with_p();
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let r = srv.req(
        "POST",
        "/v1/projects/p/tokens",
        Some(ADMIN),
        br#"{"label":"ci","access":"read"}"#,
    );
    assert_json(&r, 201);
    let j = r.json();
    let secret = j["secret"].as_str().expect("secret").to_string();
    assert!(is_generated_secret(&secret), "secret {secret:?}");
    assert_eq!(
        j,
        json!({"id": j["id"], "label": "ci", "access": "read", "source": "api", "secret": secret})
    );
    id_path(&j["id"]);
    let g = srv.req("GET", "/v1/kv/p/k", Some(&secret), b"");
    assert_eq!(g.status, 200);
    assert_eq!(g.body, b"v");
    srv.req("PUT", "/v1/kv/p/k", Some(&secret), b"w")
        .assert_error(403, "forbidden");
    let listed = get(&srv, "/v1/projects/p/tokens").json();
    assert!(
        listed["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == j["id"] && t["label"] == "ci"),
        "{listed}"
    );
}

#[test]
fn created_write_token_can_write() {
    let srv = start_with_p();
    let j = srv
        .req(
            "POST",
            "/v1/projects/p/tokens",
            Some(ADMIN),
            br#"{"label":"deploy","access":"write"}"#,
        )
        .json();
    assert_eq!(j["access"], "write");
    let secret = j["secret"].as_str().expect("secret");
    assert_eq!(srv.req("PUT", "/v1/kv/p/k", Some(secret), b"v").status, 201);
}

#[test]
fn revoked_token_is_401_at_once() {
    let srv = start_with_p();
    let j = srv
        .req(
            "POST",
            "/v1/projects/p/tokens",
            Some(ADMIN),
            br#"{"label":"ci","access":"write"}"#,
        )
        .json();
    let secret = j["secret"].as_str().expect("secret");
    assert_eq!(srv.req("PUT", "/v1/kv/p/k", Some(secret), b"v").status, 201);
    let (r, rest) = req_close(
        &srv,
        "DELETE",
        &format!("/v1/projects/p/tokens/{}", id_path(&j["id"])),
        b"",
    );
    assert_eq!(r.status, 204);
    assert!(rest.is_empty(), "204 had a body: {rest:?}");
    let r = srv.req("GET", "/v1/kv/p/k", Some(secret), b"");
    r.assert_error(401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let listed = get(&srv, "/v1/projects/p/tokens").json();
    assert!(
        !listed["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == j["id"]),
        "{listed}"
    );
}

#[test]
fn deleting_an_unknown_token_is_404_token_not_found() {
    let srv = start_with_p();
    let j = srv
        .req(
            "POST",
            "/v1/projects/p/tokens",
            Some(ADMIN),
            br#"{"label":"ci","access":"read"}"#,
        )
        .json();
    let path = format!("/v1/projects/p/tokens/{}", id_path(&j["id"]));
    assert_eq!(srv.req("DELETE", &path, Some(ADMIN), b"").status, 204);
    srv.req("DELETE", &path, Some(ADMIN), b"")
        .assert_error(404, "token_not_found");
}

#[test]
fn deleting_a_config_token_is_409_token_in_config() {
    let srv = Server::start(config_project());
    let listed = get(&srv, "/v1/projects/cfg/tokens").json();
    let id = id_path(&listed["tokens"][0]["id"]);
    srv.req(
        "DELETE",
        &format!("/v1/projects/cfg/tokens/{id}"),
        Some(ADMIN),
        b"",
    )
    .assert_error(409, "token_in_config");
    assert_eq!(
        srv.req("PUT", "/v1/kv/cfg/k", Some(CFG_SECRET), b"v")
            .status,
        201
    );
}

#[test]
fn creating_a_token_with_bad_access_is_400() {
    let srv = start_with_p();
    for body in [
        &br#"{"label":"ci","access":"admin"}"#[..],
        br#"{"label":"ci","access":"READ"}"#,
    ] {
        let r = srv.req("POST", "/v1/projects/p/tokens", Some(ADMIN), body);
        assert_some_error(&r, 400);
    }
    assert_eq!(
        get(&srv, "/v1/projects/p/tokens").json()["tokens"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
