//! Scoped tokens (a token with a key `prefix`): what they may read, write, list, batch, watch,
//! export and import, and scoped tokens in config.json. In-process, but for the watches that
//! wait (the real binary).

mod common;
use common::*;

use serde_json::json;
use std::io::Write;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A scoped token of the config-declared project `cfg` (its write token is `CFG_WRITE`).
const CFG_SCOPED: &str = "cfg-scoped-secret-0123456789";

/// A 403 `forbidden` whose message names the token's prefix.
fn assert_forbidden_naming(r: &Resp, prefix: &str) {
    r.assert_error(403, "forbidden");
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(prefix),
        "message does not name {prefix:?}: {message}"
    );
}

/// Create a token on project `p`; returns its secret.
fn scoped_token(srv: &impl Api, access: &str, prefix: &str) -> String {
    create_token(srv, "scoped", access, Some(prefix)).1
}

/// Project `p` with `sensors/t1`, `sensors/t2`, `other/x` and `sx`, and a write token scoped to
/// `sensors/`; returns the server and the scoped secret.
fn start_scoped() -> (InProc, String) {
    scoped(InProc::with_p(json!({})).0)
}

/// `srv` with `p` given `sensors/t1`, `sensors/t2`, `other/x` and `sx`, and a write token
/// scoped to `sensors/`; returns it and the scoped secret.
fn scoped<S: Api>(srv: S) -> (S, String) {
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

#[test]
fn token_created_with_a_prefix_shows_it_in_the_answer_and_the_listing() {
    let (srv, _, _) = InProc::with_p(json!({}));
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

    let r = get_as(&srv, ADMIN, "/v1/projects/p/tokens");
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
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = get_as(&srv, ADMIN, "/v1/projects/p/tokens");
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
    let (srv, _, _) = InProc::with_p(json!({ "limits": { "max_key_bytes": 8 } }));
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
    let r = get_as(&srv, &token, "/v1/kv/p/sensors/t1");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"20");
}

#[test]
fn scoped_token_puts_a_key_inside_its_prefix() {
    let (srv, token) = start_scoped();
    let r = put_as(&srv, &token, "/v1/kv/p/sensors/t3", b"22");
    assert_json(&r, 201);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/sensors/t3").body, b"22");
}

#[test]
fn scoped_token_deletes_a_key_inside_its_prefix() {
    let (srv, token) = start_scoped();
    let r = srv.req("DELETE", "/v1/kv/p/sensors/t1", Some(&token), b"");
    assert_eq!(r.status, 204);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/sensors/t1").status, 404);
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
    assert_forbidden_naming(&get_as(&srv, &token, "/v1/kv/p/other/x"), "sensors/");
}

#[test]
fn scoped_token_get_of_an_absent_key_outside_its_prefix_is_403_not_404() {
    let (srv, token) = start_scoped();
    assert_forbidden_naming(&get_as(&srv, &token, "/v1/kv/p/nothing/here"), "sensors/");
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
    assert_forbidden_naming(&put_as(&srv, &token, "/v1/kv/p/other/x", b"9"), "sensors/");
    // A key that shares the prefix's first letters but not the whole prefix is outside too.
    assert_forbidden_naming(&put_as(&srv, &token, "/v1/kv/p/sensors", b"9"), "sensors/");
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/other/x").body, b"1");
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/sensors").status, 404);
    assert_eq!(project(&srv, "p")["version"], before);
}

#[test]
fn scoped_token_delete_outside_its_prefix_is_403_and_keeps_the_key() {
    let (srv, token) = start_scoped();
    let r = srv.req("DELETE", "/v1/kv/p/other/x", Some(&token), b"");
    assert_forbidden_naming(&r, "sensors/");
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/other/x").body, b"1");
}

#[test]
fn scoped_token_incr_outside_its_prefix_is_403_and_keeps_the_value() {
    let (srv, token) = start_scoped();
    let r = srv.req("POST", "/v1/kv/p/other/x?incr=1", Some(&token), b"");
    assert_forbidden_naming(&r, "sensors/");
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/other/x").body, b"1");
}

#[test]
fn scoped_read_token_cannot_write_inside_its_prefix() {
    let (srv, _) = start_scoped();
    let token = scoped_token(&srv, "read", "sensors/");
    assert_eq!(get_as(&srv, &token, "/v1/kv/p/sensors/t1").body, b"20");
    put_as(&srv, &token, "/v1/kv/p/sensors/t1", b"0").assert_error(403, "forbidden");
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/sensors/t1").body, b"20");
}

#[test]
fn scoped_token_listing_without_a_prefix_lists_only_its_prefix() {
    let (srv, token) = start_scoped();
    assert_eq!(
        list_as(&srv, &token, ""),
        json!({ "keys": ["sensors/t1", "sensors/t2"], "next": null })
    );
}

#[test]
fn scoped_token_listing_with_a_narrower_prefix_uses_the_requested_one() {
    let (srv, token) = start_scoped();
    assert_eq!(
        list_as(&srv, &token, "prefix=sensors/t2"),
        json!({ "keys": ["sensors/t2"], "next": null })
    );
}

#[test]
fn scoped_token_listing_with_a_wider_prefix_is_narrowed_to_the_token_prefix() {
    let (srv, token) = start_scoped();
    assert_eq!(
        list_as(&srv, &token, "prefix=s"),
        json!({ "keys": ["sensors/t1", "sensors/t2"], "next": null })
    );
}

#[test]
fn scoped_token_listing_with_a_disjoint_prefix_is_empty() {
    let (srv, token) = start_scoped();
    let r = get_as(&srv, &token, "/v1/kv/p?prefix=other/");
    assert_json(&r, 200);
    assert_eq!(r.body, b"{\"keys\":[],\"next\":null}\n");
}

#[test]
fn scoped_token_listing_pages_stay_inside_the_prefix() {
    let (srv, token) = start_scoped();
    assert_eq!(
        list_as(&srv, &token, "limit=1"),
        json!({ "keys": ["sensors/t1"], "next": "sensors/t1" })
    );
    assert_eq!(
        list_as(&srv, &token, "limit=1&after=sensors/t1"),
        json!({ "keys": ["sensors/t2"], "next": null })
    );
}

#[test]
fn scoped_token_batch_with_an_op_outside_its_prefix_is_403_with_its_index_and_applies_nothing() {
    let (srv, token) = start_scoped();
    let before = project(&srv, "p")["version"].clone();
    let r = batch_as(
        &srv,
        &token,
        json!({ "ops": [
            { "op": "put", "key": "sensors/new", "value": "1" },
            { "op": "delete", "key": "sensors/t1" },
            { "op": "put", "key": "other/y", "value": "2" },
        ] }),
    );
    assert_indexed_error(&r, 403, "forbidden", 2);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/sensors/new").status, 404);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/sensors/t1").body, b"20");
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/other/y").status, 404);
    assert_eq!(project(&srv, "p")["version"], before);
}

#[test]
fn scoped_token_batch_check_outside_its_prefix_is_403_with_its_index() {
    let (srv, token) = start_scoped();
    let r = batch_as(
        &srv,
        &token,
        json!({ "ops": [
            { "op": "check", "key": "other/x" },
            { "op": "put", "key": "sensors/new", "value": "1" },
        ] }),
    );
    assert_indexed_error(&r, 403, "forbidden", 0);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/sensors/new").status, 404);
}

#[test]
fn scoped_token_batch_inside_its_prefix_is_applied() {
    let (srv, token) = start_scoped();
    let r = batch_as(
        &srv,
        &token,
        json!({ "ops": [
            { "op": "put", "key": "sensors/new", "value": "1" },
            { "op": "delete", "key": "sensors/t1" },
        ] }),
    );
    assert_json(&r, 200);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/sensors/new").body, b"1");
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/sensors/t1").status, 404);
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
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/sensors/t9").status, 404);
}

#[test]
fn scoped_token_watch_on_a_key_outside_its_prefix_is_403_at_once() {
    let (srv, token) = start_scoped();
    let start = Instant::now();
    let r = get_as(&srv, &token, "/v1/kv/p/other/x?watch=3");
    assert_forbidden_naming(&r, "sensors/");
    assert!(start.elapsed() < Duration::from_secs(2), "the watch parked");
}

#[test]
fn scoped_token_watch_on_a_key_inside_its_prefix_wakes_on_a_change() {
    let (srv, token) = scoped(Server::with_p(json!({})).0);
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
    let (srv, token) = scoped(Server::with_p(json!({})).0);
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
    let srv = InProc::start(json!({ "projects": { "cfg": { "tokens": [
        { "label": "ci", "access": "write", "secret": CFG_WRITE },
        { "label": "probe", "access": "write", "secret": CFG_SCOPED, "prefix": "sensors/" },
    ] } } }));
    put_ok(&srv, "/v1/kv/cfg/other", b"o");
    assert_eq!(
        put_as(&srv, CFG_SCOPED, "/v1/kv/cfg/sensors/a", b"1").status,
        201
    );
    assert_forbidden_naming(&get_as(&srv, CFG_SCOPED, "/v1/kv/cfg/other"), "sensors/");
    assert_eq!(get_as(&srv, CFG_WRITE, "/v1/kv/cfg/other").body, b"o");

    let r = get_as(&srv, ADMIN, "/v1/projects/cfg/tokens");
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
