//! Keys: PUT, GET, HEAD and DELETE of one key, versions and ETags, values of every byte and
//! size, Content-Types, and key names (length, encoding, slashes). In-process.

mod common;
use common::*;

use serde_json::json;

fn put_typed(srv: &impl Api, path: &str, content_type: &str, value: &[u8]) -> Resp {
    srv.req_h(
        "PUT",
        path,
        Some(ADMIN),
        &[("Content-Type", content_type)],
        value,
    )
}

#[test]
fn put_new_key_returns_201_with_version_and_etag() {
    let srv = InProc::with_p(json!({})).0;
    let r = put(&srv, "/v1/kv/p/k", b"hello");
    assert_json(&r, 201);
    assert_eq!(r.json(), json!({"project":"p","key":"k","version":1}));
    assert_eq!(r.header("etag"), Some("\"1\""));
}

#[test]
fn put_existing_key_returns_200_with_next_version() {
    let srv = InProc::with_p(json!({})).0;
    put_ok(&srv, "/v1/kv/p/k", b"one");
    let r = put(&srv, "/v1/kv/p/k", b"two");
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({"project":"p","key":"k","version":2}));
    assert_eq!(r.header("etag"), Some("\"2\""));
    assert_eq!(get(&srv, "/v1/kv/p/k").body, b"two");
}

#[test]
fn versions_grow_by_one_per_mutation_including_delete() {
    let srv = InProc::with_p(json!({})).0;
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
    let srv = InProc::with_p(json!({})).0;
    create_project(&srv, "q");
    assert_eq!(put_ok(&srv, "/v1/kv/p/a", b"1"), 1);
    assert_eq!(put_ok(&srv, "/v1/kv/p/b", b"2"), 2);
    assert_eq!(put_ok(&srv, "/v1/kv/q/a", b"3"), 1);
    assert_eq!(put_ok(&srv, "/v1/kv/p/c", b"4"), 3);
}

#[test]
fn get_etag_is_the_version_of_the_keys_last_write() {
    let srv = InProc::with_p(json!({})).0;
    put_ok(&srv, "/v1/kv/p/a", b"1");
    put_ok(&srv, "/v1/kv/p/b", b"2");
    assert_eq!(get(&srv, "/v1/kv/p/a").header("etag"), Some("\"1\""));
    assert_eq!(get(&srv, "/v1/kv/p/b").header("etag"), Some("\"2\""));
}

// ---------------------------------------------------------------- GET, HEAD, DELETE

#[test]
fn get_returns_exact_bytes_with_stored_content_type_etag_and_length() {
    let srv = InProc::with_p(json!({})).0;
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
    let srv = InProc::with_p(json!({})).0;
    let ct = "text/plain; charset=utf-8";
    assert_eq!(put_typed(&srv, "/v1/kv/p/k", ct, b"x").status, 201);
    assert_eq!(get(&srv, "/v1/kv/p/k").header("content-type"), Some(ct));
}

#[test]
fn get_without_stored_content_type_is_application_octet_stream() {
    let srv = InProc::with_p(json!({})).0;
    put_ok(&srv, "/v1/kv/p/k", b"raw");
    let r = get(&srv, "/v1/kv/p/k");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.body, b"raw");
}

#[test]
fn head_returns_the_get_headers_and_no_body() {
    let srv = InProc::with_p(json!({})).0;
    assert_eq!(
        put_typed(&srv, "/v1/kv/p/k", "text/plain", b"twelve bytes").status,
        201
    );
    let (r, rest) = srv.req_close("HEAD", "/v1/kv/p/k", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.header("content-length"), Some("12"));
    assert!(rest.is_empty(), "HEAD sent a body: {rest:?}");
}

#[test]
fn get_absent_key_is_404_key_not_found() {
    let srv = InProc::with_p(json!({})).0;
    get(&srv, "/v1/kv/p/missing").assert_error(404, "key_not_found");
}

#[test]
fn head_absent_key_is_404_without_body() {
    let srv = InProc::with_p(json!({})).0;
    let (r, rest) = srv.req_close("HEAD", "/v1/kv/p/missing", &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(rest.is_empty(), "HEAD sent a body: {rest:?}");
}

#[test]
fn delete_returns_204_with_empty_body_then_get_is_404() {
    let srv = InProc::with_p(json!({})).0;
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let (r, rest) = srv.req_close("DELETE", "/v1/kv/p/k", &[], b"");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-type"), None);
    assert_eq!(r.header("content-length"), None);
    assert!(rest.is_empty(), "204 had a body: {rest:?}");
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
}

#[test]
fn delete_absent_key_is_404_key_not_found() {
    let srv = InProc::with_p(json!({})).0;
    srv.req("DELETE", "/v1/kv/p/missing", Some(ADMIN), b"")
        .assert_error(404, "key_not_found");
}

// ---------------------------------------------------------------- values

#[test]
fn every_byte_value_round_trips_unchanged() {
    let srv = InProc::with_p(json!({})).0;
    let value: Vec<u8> = (0..=255u8).collect();
    assert_eq!(put(&srv, "/v1/kv/p/bin", &value).status, 201);
    let r = get(&srv, "/v1/kv/p/bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("256"));
    assert_eq!(r.body, value);
}

#[test]
fn empty_value_round_trips() {
    let srv = InProc::with_p(json!({})).0;
    assert_eq!(put(&srv, "/v1/kv/p/empty", b"").status, 201);
    let r = get(&srv, "/v1/kv/p/empty");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("0"));
    assert!(r.body.is_empty());
}

#[test]
fn value_of_exactly_max_value_bytes_is_accepted() {
    let srv = InProc::start(json!({ "limits": { "max_value_bytes": 16 } }));
    create_project(&srv, "p");
    let value = [b'x'; 16];
    assert_eq!(put(&srv, "/v1/kv/p/k", &value).status, 201);
    assert_eq!(get(&srv, "/v1/kv/p/k").body, value);
}

#[test]
fn value_one_byte_over_max_value_bytes_is_413_and_not_stored() {
    let srv = InProc::start(json!({ "limits": { "max_value_bytes": 16 } }));
    create_project(&srv, "p");
    put(&srv, "/v1/kv/p/k", &[b'x'; 17]).assert_error(413, "payload_too_large");
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
}

// ---------------------------------------------------------------- keys

#[test]
fn key_with_slashes_is_one_key() {
    let srv = InProc::with_p(json!({})).0;
    let r = put(&srv, "/v1/kv/p/a/b/c", b"v");
    assert_eq!(r.status, 201);
    assert_eq!(r.json(), json!({"project":"p","key":"a/b/c","version":1}));
    assert_eq!(get(&srv, "/v1/kv/p/a/b/c").body, b"v");
    assert_eq!(
        list_keys(&srv, "p", ""),
        json!({"keys":["a/b/c"],"next":null})
    );
}

#[test]
fn encoded_slash_is_the_same_key_as_a_literal_slash() {
    let srv = InProc::with_p(json!({})).0;
    let r = put(&srv, "/v1/kv/p/a%2Fb", b"v1");
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["key"], "a/b");
    assert_eq!(get(&srv, "/v1/kv/p/a/b").body, b"v1");
    assert_eq!(put(&srv, "/v1/kv/p/a/b", b"v2").status, 200);
    assert_eq!(get(&srv, "/v1/kv/p/a%2fb").body, b"v2");
    assert_eq!(
        list_keys(&srv, "p", ""),
        json!({"keys":["a/b"],"next":null})
    );
}

#[test]
fn encoded_space_is_decoded_in_the_key() {
    let srv = InProc::with_p(json!({})).0;
    let r = put(&srv, "/v1/kv/p/hello%20world", b"v");
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["key"], "hello world");
    assert_eq!(get(&srv, "/v1/kv/p/hello%20world").body, b"v");
    assert_eq!(
        list_keys(&srv, "p", ""),
        json!({"keys":["hello world"],"next":null})
    );
}

#[test]
fn percent_encoded_utf8_key_round_trips() {
    let srv = InProc::with_p(json!({})).0;
    let r = put(&srv, "/v1/kv/p/%C3%A9t%C3%A9", b"summer");
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["key"], "été");
    assert_eq!(get(&srv, "/v1/kv/p/%c3%a9t%c3%a9").body, b"summer");
    assert_eq!(
        list_keys(&srv, "p", ""),
        json!({"keys":["été"],"next":null})
    );
}

#[test]
fn key_of_exactly_1024_bytes_is_accepted() {
    let srv = InProc::with_p(json!({})).0;
    let key = "k".repeat(1024);
    assert_eq!(put(&srv, &format!("/v1/kv/p/{key}"), b"v").status, 201);
    assert_eq!(get(&srv, &format!("/v1/kv/p/{key}")).body, b"v");
    assert_eq!(list_keys(&srv, "p", ""), json!({"keys":[key],"next":null}));
}

#[test]
fn key_of_1025_bytes_is_invalid_key() {
    let srv = InProc::with_p(json!({})).0;
    let key = "k".repeat(1025);
    put(&srv, &format!("/v1/kv/p/{key}"), b"v").assert_error(400, "invalid_key");
    get(&srv, &format!("/v1/kv/p/{key}")).assert_error(400, "invalid_key");
}

#[test]
fn key_length_limit_counts_decoded_bytes() {
    let srv = InProc::with_p(json!({})).0;
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
    let srv = InProc::with_p(json!({})).0;
    put(&srv, "/v1/kv/p/", b"v").assert_error(400, "invalid_key");
    get(&srv, "/v1/kv/p/").assert_error(400, "invalid_key");
}

#[test]
fn invalid_utf8_key_is_invalid_key() {
    let srv = InProc::with_p(json!({})).0;
    put(&srv, "/v1/kv/p/%FF", b"v").assert_error(400, "invalid_key");
    put(&srv, "/v1/kv/p/a%C3", b"v").assert_error(400, "invalid_key");
}

#[test]
fn bad_percent_escape_is_invalid_key() {
    let srv = InProc::with_p(json!({})).0;
    for path in ["/v1/kv/p/%zz", "/v1/kv/p/a%4", "/v1/kv/p/a%"] {
        let r = put(&srv, path, b"v");
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        r.assert_error(400, "invalid_key");
    }
    assert_eq!(list_keys(&srv, "p", ""), json!({"keys":[],"next":null}));
}

#[test]
fn admin_on_nonexistent_project_keys_is_404_project_not_found() {
    let srv = InProc::start(json!({}));
    put(&srv, "/v1/kv/ghost/k", b"v").assert_error(404, "project_not_found");
    get(&srv, "/v1/kv/ghost/k").assert_error(404, "project_not_found");
    srv.req("DELETE", "/v1/kv/ghost/k", Some(ADMIN), b"")
        .assert_error(404, "project_not_found");
    get(&srv, "/v1/kv/ghost").assert_error(404, "project_not_found");
}

#[test]
fn admin_on_invalid_project_name_keys_is_400_invalid_project_name() {
    let srv = InProc::start(json!({}));
    put(&srv, "/v1/kv/Bad/k", b"v").assert_error(400, "invalid_project_name");
    get(&srv, "/v1/kv/Bad").assert_error(400, "invalid_project_name");
}

// ---------------------------------------------------------------------------------------------
// Paths a newcomer gets wrong
// ---------------------------------------------------------------------------------------------

#[test]
fn a_key_answer_is_one_json_line_with_an_exact_length() {
    let srv = InProc::with_p(json!({})).0;
    let r = put(&srv, "/v1/kv/p/k", b"v");
    let body = b"{\"project\":\"p\",\"key\":\"k\",\"version\":1}\n";
    assert_eq!(r.body, body);
    assert_eq!(
        r.header("content-length"),
        Some(body.len().to_string().as_str())
    );
}

#[test]
fn a_key_path_without_its_project_names_the_project_it_looked_for() {
    let (srv, write, _) = InProc::with_p(json!({}));
    // The project was left out: "greetings" is taken for the project, "en" for the key.
    let r = put_as(&srv, &write, "/v1/kv/greetings/en", b"hello");
    r.assert_error(403, "forbidden");
    assert_eq!(
        r.json()["message"],
        "this token is not valid for project \"greetings\" (a key's route is \
         /v1/kv/{project}/{key}: is the project missing from the path?)"
    );
}

#[test]
fn dot_segments_are_400_saying_why() {
    let srv = InProc::with_p(json!({})).0;
    for path in ["/v1/kv/p/a/../b", "/v1/kv/p/./k", "/v1/kv/p/.."] {
        let r = get(&srv, path);
        r.assert_error(400, "bad_request");
        let m = r.json()["message"].as_str().unwrap().to_string();
        assert!(m.starts_with("the path has a \""), "{m}");
        assert!(
            m.ends_with("percent-encode its dots (a/%2E%2E for the key \"a/..\")"),
            "{m}"
        );
    }
    // Percent-encoded, the dots are a key's own.
    put_ok(&srv, "/v1/kv/p/a/%2E%2E", b"x");
    assert_eq!(get(&srv, "/v1/kv/p/a/%2E%2E").body, b"x");
    assert_eq!(
        list_json(&srv, "prefix=a/"),
        json!({"keys": ["a/.."], "next": null})
    );
    // A key that is only dots (the page sends it so too).
    put_ok(&srv, "/v1/kv/p/%2E%2E", b"y");
    put_ok(&srv, "/v1/kv/p/%2E", b"z");
    assert_eq!(get(&srv, "/v1/kv/p/%2E%2E").body, b"y");
    assert_eq!(
        list_json(&srv, "prefix=."),
        json!({"keys": [".", ".."], "next": null})
    );
}
