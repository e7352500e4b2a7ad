//! The issue-5 features over real HTTP: expiry (TTL), counters, conditional requests, atomic
//! batches, listing formats and watches, with the edge cases they name, restarts that keep TTLs
//! and versions, and many parked watches served by the single thread.

mod common;
use common::*;

use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a `ttl=1` key may take to disappear: up to a second to its expiry second, a loop turn
/// and slack for a loaded machine.
const EXPIRY_LIMIT: Duration = Duration::from_millis(3500);
/// How long after sending a watch we assume the server has read and parked it.
const PARK: Duration = Duration::from_millis(300);
/// A parked watch must wake this soon after the change (loose: the machine may be busy).
const WAKE_LIMIT: Duration = Duration::from_secs(2);

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

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn put(srv: &Server, path: &str, value: &[u8]) -> Resp {
    srv.req("PUT", path, Some(ADMIN), value)
}

fn put_h(srv: &Server, path: &str, headers: &[(&str, &str)], value: &[u8]) -> Resp {
    srv.req_h("PUT", path, Some(ADMIN), headers, value)
}

/// PUT that must succeed (201 or 200); returns the new version.
fn put_ok(srv: &Server, path: &str, value: &[u8]) -> u64 {
    let r = put(srv, path, value);
    assert!(
        r.status == 201 || r.status == 200,
        "PUT {path}: {} {}",
        r.status,
        r.text()
    );
    r.json()["version"].as_u64().expect("version")
}

fn get(srv: &Server, path: &str) -> Resp {
    srv.req("GET", path, Some(ADMIN), b"")
}

fn get_h(srv: &Server, path: &str, headers: &[(&str, &str)]) -> Resp {
    srv.req_h("GET", path, Some(ADMIN), headers, b"")
}

fn post(srv: &Server, path: &str, body: &[u8]) -> Resp {
    srv.req("POST", path, Some(ADMIN), body)
}

fn delete(srv: &Server, path: &str) -> Resp {
    srv.req("DELETE", path, Some(ADMIN), b"")
}

/// `GET /v1/projects/p`, which must answer 200.
fn project(srv: &Server) -> Value {
    let r = get(srv, "/v1/projects/p");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn project_version(srv: &Server) -> u64 {
    project(srv)["version"].as_u64().expect("project version")
}

/// `POST /v1/kv/p` with this batch.
fn batch(srv: &Server, body: Value) -> Resp {
    post(srv, "/v1/kv/p", &serde_json::to_vec(&body).unwrap())
}

fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// The `X-Expires-At` header as a number; it must be present.
fn expires_at(r: &Resp) -> u64 {
    r.header("x-expires-at")
        .unwrap_or_else(|| panic!("no X-Expires-At: {:?}", r.headers))
        .parse()
        .expect("X-Expires-At is whole seconds")
}

fn assert_json(r: &Resp, status: u16) {
    assert_eq!(r.status, status, "body: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
}

/// A value answer: status 200, these bytes, this Content-Type and ETag.
fn assert_value(r: &Resp, body: &[u8], content_type: &str, version: u64) {
    assert_eq!(r.status, 200, "body: {}", r.text());
    assert_eq!(r.body, body, "body: {}", r.text());
    assert_eq!(r.header("content-type"), Some(content_type));
    assert_eq!(r.header("etag"), Some(etag(version).as_str()));
}

/// A 412 with exactly `error`, `message` and `current_version`.
fn assert_precondition_failed(r: &Resp, current_version: Value) {
    assert_json(r, 412);
    let j = r.json();
    assert_eq!(j["error"], "precondition_failed", "{j}");
    assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
    assert_eq!(j["current_version"], current_version, "{j}");
    assert_eq!(j.as_object().unwrap().len(), 3, "fields: {j}");
}

/// A batch error with exactly `error`, `message` (naming the op) and `index`.
fn assert_batch_error(r: &Resp, status: u16, code: &str, index: u64) {
    assert_json(r, status);
    let j = r.json();
    assert_eq!(j["error"], code, "{j}");
    let message = j["message"].as_str().unwrap_or("");
    assert!(message.contains(&index.to_string()), "message: {j}");
    assert_eq!(j["index"], index, "{j}");
    assert_eq!(j.as_object().unwrap().len(), 3, "fields: {j}");
}

/// One request with `Connection: close`: the response and every byte sent after it.
fn req_close(srv: &Server, method: &str, path: &str, headers: &[(&str, &str)]) -> (Resp, Vec<u8>) {
    let mut all = vec![("Connection", "close")];
    all.extend_from_slice(headers);
    let mut s = srv.connect();
    s.write_all(&request_bytes(method, path, Some(ADMIN), &all, b""))
        .unwrap();
    let r = read_response(&mut s, method == "HEAD").expect("response");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("server closes after Connection: close");
    (r, rest)
}

/// Wait until GET `path` answers 404 (the key expired).
fn wait_expired(srv: &Server, path: &str) {
    assert!(
        wait_until(EXPIRY_LIMIT, || get(srv, path).status == 404),
        "{path} still there {EXPIRY_LIMIT:?} after a 1 s ttl"
    );
}

/// The JSON listing of p with this query, which must answer 200.
fn list_json(srv: &Server, query: &str) -> Value {
    let r = get(srv, &format!("/v1/kv/p?{query}"));
    assert_json(&r, 200);
    r.json()
}

/// Send a GET on a fresh connection and leave the answer unread (a watch parks there).
fn send(srv: &Server, path: &str, token: &str) -> TcpStream {
    let mut s = srv.connect();
    s.write_all(&request_bytes("GET", path, Some(token), &[], b""))
        .unwrap();
    s
}

/// Assert that no answer has arrived on `s` yet and the connection is open.
fn assert_waiting(s: &mut TcpStream) {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let peeked = s.peek(&mut b);
    s.set_nonblocking(false).unwrap();
    match peeked {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok(0) => panic!("the server closed a waiting watch"),
        Ok(_) => {
            let r = read_response(s, false);
            panic!("the watch answered before any change: {r:?}");
        }
        Err(e) => panic!("watch connection failed: {e}"),
    }
}

/// Read one answer from `s`, failing when none is complete by `deadline`.
fn read_by(s: &mut TcpStream, deadline: Instant) -> Resp {
    let left = deadline.saturating_duration_since(Instant::now());
    s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .unwrap();
    read_response(s, false).unwrap_or_else(|e| panic!("no answer by the deadline: {e}"))
}

fn read_within(s: &mut TcpStream, limit: Duration) -> Resp {
    read_by(s, Instant::now() + limit)
}

// ---------------------------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------------------------

#[test]
fn put_with_ttl_gives_x_expires_at_now_plus_ttl_on_get_and_head() {
    let (srv, _, _) = start_p(json!({}));
    let before = now_secs();
    assert_eq!(put(&srv, "/v1/kv/p/k?ttl=100", b"v").status, 201);
    let after = now_secs();
    let r = get(&srv, "/v1/kv/p/k");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"v");
    let at = expires_at(&r);
    assert!(
        at + 2 >= before + 100 && at <= after + 100 + 2,
        "X-Expires-At {at}, put between {before} and {after}"
    );
    let h = srv.req("HEAD", "/v1/kv/p/k", Some(ADMIN), b"");
    assert_eq!(h.status, 200);
    assert_eq!(h.header("x-expires-at"), Some(at.to_string().as_str()));
}

#[test]
fn key_without_ttl_has_no_x_expires_at() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let r = get(&srv, "/v1/kv/p/k");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-expires-at"), None);
}

#[test]
fn plain_put_clears_the_expiry() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=100", b"v1");
    expires_at(&get(&srv, "/v1/kv/p/k"));
    assert_eq!(put(&srv, "/v1/kv/p/k", b"v2").status, 200);
    let r = get(&srv, "/v1/kv/p/k");
    assert_eq!(r.body, b"v2");
    assert_eq!(r.header("x-expires-at"), None);
}

#[test]
fn put_with_a_new_ttl_replaces_the_expiry() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=100", b"v");
    let first = expires_at(&get(&srv, "/v1/kv/p/k"));
    put_ok(&srv, "/v1/kv/p/k?ttl=5000", b"v");
    let second = expires_at(&get(&srv, "/v1/kv/p/k"));
    assert!(second >= first + 4900 - 2, "first {first}, second {second}");
}

#[test]
fn ttl_that_is_not_a_whole_number_from_1_to_315360000_is_400_invalid_parameter() {
    let (srv, _, _) = start_p(json!({}));
    for ttl in [
        "0",
        "-1",
        "315360001",
        "1.5",
        "abc",
        "",
        "1e3",
        "99999999999999999999",
    ] {
        let r = put(&srv, &format!("/v1/kv/p/k?ttl={ttl}"), b"v");
        assert_eq!(r.status, 400, "ttl={ttl:?}: {}", r.text());
        r.assert_error(400, "invalid_parameter");
    }
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
    assert_eq!(project_version(&srv), 0);
}

#[test]
fn ttl_of_315360000_seconds_is_accepted() {
    let (srv, _, _) = start_p(json!({}));
    let before = now_secs();
    assert_eq!(put(&srv, "/v1/kv/p/k?ttl=315360000", b"v").status, 201);
    let at = expires_at(&get(&srv, "/v1/kv/p/k"));
    assert!(at + 2 >= before + 315360000 && at <= now_secs() + 315360000 + 2);
}

#[test]
fn key_with_ttl_2_is_still_there_at_once() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=2", b"v");
    assert_eq!(get(&srv, "/v1/kv/p/k").status, 200);
}

#[test]
fn expired_key_get_is_404_key_not_found() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"v");
    wait_expired(&srv, "/v1/kv/p/k");
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
}

#[test]
fn expired_key_head_is_404() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"v");
    wait_expired(&srv, "/v1/kv/p/k");
    let (r, rest) = req_close(&srv, "HEAD", "/v1/kv/p/k", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-expires-at"), None);
    assert!(rest.is_empty(), "HEAD sent a body: {rest:?}");
}

#[test]
fn expired_key_is_left_out_of_listings() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"1");
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"v");
    put_ok(&srv, "/v1/kv/p/z", b"2");
    assert_eq!(list_json(&srv, "")["keys"], json!(["a", "k", "z"]));
    wait_expired(&srv, "/v1/kv/p/k");
    assert_eq!(
        list_json(&srv, ""),
        json!({"keys": ["a", "z"], "next": null})
    );
    let r = get(&srv, "/v1/kv/p?format=text");
    assert_eq!(r.text(), "a\nz\n");
}

#[test]
fn expired_key_is_not_counted_in_project_keys_and_bytes() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/keep", b"x");
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"vv");
    let p = project(&srv);
    assert_eq!(
        (p["keys"].clone(), p["bytes"].clone()),
        (json!(2), json!(8))
    );
    wait_expired(&srv, "/v1/kv/p/k");
    let p = project(&srv);
    assert_eq!(
        (p["keys"].clone(), p["bytes"].clone()),
        (json!(1), json!(5))
    );
    let listed = get(&srv, "/v1/projects").json();
    let entry = &listed["projects"][0];
    assert_eq!(entry["name"], "p");
    assert_eq!(
        (entry["keys"].clone(), entry["bytes"].clone()),
        (json!(1), json!(5))
    );
}

#[test]
fn expiry_removal_takes_one_project_version() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"v");
    assert_eq!(project_version(&srv), 1);
    wait_expired(&srv, "/v1/kv/p/k");
    assert!(
        wait_until(Duration::from_secs(2), || project_version(&srv) == 2),
        "project version after the expiry: {}",
        project_version(&srv)
    );
    assert_eq!(put(&srv, "/v1/kv/p/other", b"x").json()["version"], 3);
}

#[test]
fn incr_on_an_expired_key_starts_again_at_zero() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/c?ttl=1", b"41");
    wait_expired(&srv, "/v1/kv/p/c");
    let r = post(&srv, "/v1/kv/p/c?incr=1", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "1");
    let g = get(&srv, "/v1/kv/p/c");
    assert_eq!(g.body, b"1");
    assert_eq!(g.header("x-expires-at"), None);
}

#[test]
fn batch_check_sees_an_expired_key_as_absent() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"v");
    wait_expired(&srv, "/v1/kv/p/k");
    let r = batch(
        &srv,
        json!({"ops": [{"op": "check", "key": "k", "version": 0}]}),
    );
    assert_json(&r, 200);
    assert_eq!(
        r.json()["results"],
        json!([{"op": "check", "key": "k", "version": 0}])
    );
    let r = batch(&srv, json!({"ops": [{"op": "check", "key": "k"}]}));
    assert_batch_error(&r, 409, "condition_failed", 0);
}

#[test]
fn delete_of_an_expired_key_is_404() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"v");
    wait_expired(&srv, "/v1/kv/p/k");
    delete(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
}

#[test]
fn put_on_an_expired_key_answers_201_created() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"old");
    wait_expired(&srv, "/v1/kv/p/k");
    let r = put(&srv, "/v1/kv/p/k", b"new");
    assert_json(&r, 201);
    assert_eq!(r.json()["key"], "k");
    let g = get(&srv, "/v1/kv/p/k");
    assert_eq!(g.body, b"new");
    assert_eq!(g.header("x-expires-at"), None);
}

/// Put a key with a long ttl and a plain one, restart, and find both as they were.
fn ttl_and_versions_survive_a_restart(mode: &str) {
    let (srv, _, _) = start_p(json!({"persistence": mode, "interval_ms": 200}));
    assert_eq!(put_ok(&srv, "/v1/kv/p/k?ttl=3600", b"ttl"), 1);
    assert_eq!(put_ok(&srv, "/v1/kv/p/plain", b"x"), 2);
    assert_eq!(put_ok(&srv, "/v1/kv/p/k?ttl=7200", b"ttl2"), 3);
    let before = get(&srv, "/v1/kv/p/k");
    let at = expires_at(&before);

    let srv = srv.restart();
    let r = get(&srv, "/v1/kv/p/k");
    assert_value(&r, b"ttl2", "application/octet-stream", 3);
    assert_eq!(expires_at(&r), at);
    let r = get(&srv, "/v1/kv/p/plain");
    assert_value(&r, b"x", "application/octet-stream", 2);
    assert_eq!(r.header("x-expires-at"), None);
    assert_eq!(project_version(&srv), 3);
    assert_eq!(put_ok(&srv, "/v1/kv/p/next", b"n"), 4);
}

#[test]
fn sync_restart_keeps_x_expires_at_and_versions() {
    ttl_and_versions_survive_a_restart("sync");
}

#[test]
fn interval_restart_keeps_x_expires_at_and_versions() {
    ttl_and_versions_survive_a_restart("interval");
}

/// Let a key expire while the server runs, restart, and find it still gone.
fn expired_key_stays_gone_after_restart(mode: &str) {
    let (srv, _, _) = start_p(json!({"persistence": mode, "interval_ms": 200}));
    put_ok(&srv, "/v1/kv/p/keep", b"x");
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"v");
    wait_expired(&srv, "/v1/kv/p/k");
    let srv = srv.restart();
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
    assert_eq!(list_json(&srv, ""), json!({"keys": ["keep"], "next": null}));
    assert_eq!(project(&srv)["keys"], 1);
}

#[test]
fn sync_key_that_expired_stays_gone_after_restart() {
    expired_key_stays_gone_after_restart("sync");
}

#[test]
fn interval_key_that_expired_stays_gone_after_restart() {
    expired_key_stays_gone_after_restart("interval");
}

#[test]
fn key_that_expired_while_the_server_was_down_is_gone_at_start() {
    let (srv, _, _) = start_p(json!({"persistence": "sync"}));
    put_ok(&srv, "/v1/kv/p/keep", b"x");
    put_ok(&srv, "/v1/kv/p/k?ttl=3", b"v");
    let at = expires_at(&get(&srv, "/v1/kv/p/k"));
    let mut srv = srv;
    srv.stop();
    assert!(
        now_secs() < at,
        "the server took until the expiry to stop; nothing to test"
    );
    // Wait past the expiry second while nothing runs.
    while now_secs() <= at {
        sleep(Duration::from_millis(100));
    }
    let srv = srv.restart();
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
    assert_eq!(list_json(&srv, ""), json!({"keys": ["keep"], "next": null}));
    assert_eq!(project(&srv)["keys"], 1);
}

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

#[test]
fn incr_on_a_missing_key_starts_at_zero_and_answers_the_new_value_as_text() {
    let (srv, _, _) = start_p(json!({}));
    let r = post(&srv, "/v1/kv/p/c?incr=5", b"");
    assert_value(&r, b"5", "text/plain", 1);
    assert_value(&get(&srv, "/v1/kv/p/c"), b"5", "text/plain", 1);
}

#[test]
fn incr_adds_to_the_stored_integer() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/c", b"40");
    assert_value(
        &post(&srv, "/v1/kv/p/c?incr=2", b""),
        b"42",
        "text/plain",
        2,
    );
    assert_eq!(get(&srv, "/v1/kv/p/c").body, b"42");
}

#[test]
fn incr_may_be_negative() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/c", b"10");
    assert_eq!(post(&srv, "/v1/kv/p/c?incr=-15", b"").text(), "-5");
    assert_eq!(post(&srv, "/v1/kv/p/d?incr=-3", b"").text(), "-3");
    assert_eq!(get(&srv, "/v1/kv/p/c").body, b"-5");
}

#[test]
fn incr_without_a_number_adds_one() {
    let (srv, _, _) = start_p(json!({}));
    assert_value(&post(&srv, "/v1/kv/p/c?incr", b""), b"1", "text/plain", 1);
    assert_value(&post(&srv, "/v1/kv/p/c?incr=", b""), b"2", "text/plain", 2);
}

#[test]
fn incr_trims_ascii_whitespace_around_the_stored_integer() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/c", b" 41\n");
    assert_eq!(post(&srv, "/v1/kv/p/c?incr=1", b"").text(), "42");
    assert_eq!(get(&srv, "/v1/kv/p/c").body, b"42");
}

#[test]
fn incr_on_a_value_that_is_not_an_integer_is_409_not_an_integer_and_changes_nothing() {
    let (srv, _, _) = start_p(json!({}));
    let values: [&[u8]; 5] = [b"abc", b"1.5", b"", b"9223372036854775808", b"\xff"];
    for (i, value) in values.iter().enumerate() {
        let path = format!("/v1/kv/p/c{i}");
        let version = put_ok(&srv, &path, value);
        post(&srv, &format!("{path}?incr=1"), b"").assert_error(409, "not_an_integer");
        assert_value(
            &get(&srv, &path),
            value,
            "application/octet-stream",
            version,
        );
    }
    assert_eq!(project_version(&srv), values.len() as u64);
}

#[test]
fn incr_past_i64_max_is_409_overflow_and_changes_nothing() {
    let (srv, _, _) = start_p(json!({}));
    let max = i64::MAX.to_string();
    put_ok(&srv, "/v1/kv/p/c", max.as_bytes());
    post(&srv, "/v1/kv/p/c?incr=1", b"").assert_error(409, "overflow");
    assert_value(
        &get(&srv, "/v1/kv/p/c"),
        max.as_bytes(),
        "application/octet-stream",
        1,
    );
    assert_eq!(project_version(&srv), 1);
}

#[test]
fn incr_past_i64_min_is_409_overflow_and_changes_nothing() {
    let (srv, _, _) = start_p(json!({}));
    let min = i64::MIN.to_string();
    put_ok(&srv, "/v1/kv/p/c", min.as_bytes());
    post(&srv, "/v1/kv/p/c?incr=-1", b"").assert_error(409, "overflow");
    assert_eq!(get(&srv, "/v1/kv/p/c").body, min.as_bytes());
    assert_eq!(project_version(&srv), 1);
}

#[test]
fn incr_keeps_the_expiry() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/c?ttl=3600", b"1");
    let at = expires_at(&get(&srv, "/v1/kv/p/c"));
    assert_eq!(post(&srv, "/v1/kv/p/c?incr=1", b"").status, 200);
    let r = get(&srv, "/v1/kv/p/c");
    assert_eq!(r.body, b"2");
    assert_eq!(expires_at(&r), at);
}

#[test]
fn incr_keeps_the_content_type() {
    let (srv, _, _) = start_p(json!({}));
    put_h(
        &srv,
        "/v1/kv/p/c",
        &[("Content-Type", "application/json")],
        b"7",
    );
    assert_value(&post(&srv, "/v1/kv/p/c?incr=1", b""), b"8", "text/plain", 2);
    assert_value(&get(&srv, "/v1/kv/p/c"), b"8", "application/json", 2);
}

#[test]
fn incr_etag_is_the_new_version_of_the_key() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"x");
    put_ok(&srv, "/v1/kv/p/c", b"1");
    let r = post(&srv, "/v1/kv/p/c?incr=1", b"");
    assert_eq!(r.header("etag"), Some("\"3\""));
    assert_eq!(get(&srv, "/v1/kv/p/c").header("etag"), Some("\"3\""));
    assert_eq!(project_version(&srv), 3);
}

#[test]
fn post_on_a_key_without_incr_is_400_invalid_parameter() {
    let (srv, _, _) = start_p(json!({}));
    post(&srv, "/v1/kv/p/c", b"").assert_error(400, "invalid_parameter");
    get(&srv, "/v1/kv/p/c").assert_error(404, "key_not_found");
}

#[test]
fn incr_that_is_not_a_64_bit_whole_number_is_400_invalid_parameter() {
    let (srv, _, _) = start_p(json!({}));
    for n in ["abc", "1.5", "9223372036854775808", "1e3", "%2B%2B1"] {
        let r = post(&srv, &format!("/v1/kv/p/c?incr={n}"), b"");
        assert_eq!(r.status, 400, "incr={n}: {}", r.text());
        r.assert_error(400, "invalid_parameter");
    }
    get(&srv, "/v1/kv/p/c").assert_error(404, "key_not_found");
}

#[test]
fn incr_with_a_body_is_400_bad_request() {
    let (srv, _, _) = start_p(json!({}));
    post(&srv, "/v1/kv/p/c?incr=1", b"5").assert_error(400, "bad_request");
    get(&srv, "/v1/kv/p/c").assert_error(404, "key_not_found");
}

#[test]
fn incr_with_a_read_token_is_403_forbidden() {
    let (srv, write, read) = start_p(json!({}));
    srv.req("POST", "/v1/kv/p/c?incr=1", Some(&read), b"")
        .assert_error(403, "forbidden");
    get(&srv, "/v1/kv/p/c").assert_error(404, "key_not_found");
    let r = srv.req("POST", "/v1/kv/p/c?incr=1", Some(&write), b"");
    assert_value(&r, b"1", "text/plain", 1);
}

// ---------------------------------------------------------------------------------------------
// Conditions
// ---------------------------------------------------------------------------------------------

#[test]
fn put_with_if_match_of_the_current_version_replaces_the_value() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"one");
    let r = put_h(&srv, "/v1/kv/p/k", &[("If-Match", "\"1\"")], b"two");
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({"project": "p", "key": "k", "version": 2}));
    assert_eq!(get(&srv, "/v1/kv/p/k").body, b"two");
}

#[test]
fn put_with_stale_if_match_is_412_with_the_current_version_and_changes_nothing() {
    let (srv, _, _) = start_p(json!({}));
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
    let (srv, _, _) = start_p(json!({}));
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
    let (srv, _, _) = start_p(json!({}));
    let r = put_h(&srv, "/v1/kv/p/k", &[("If-Match", "*")], b"v");
    assert_precondition_failed(&r, Value::Null);
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
    assert_eq!(project_version(&srv), 0);
}

#[test]
fn if_match_star_on_an_existing_key_replaces_it() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"one");
    let r = put_h(&srv, "/v1/kv/p/k", &[("If-Match", "*")], b"two");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get(&srv, "/v1/kv/p/k").body, b"two");
}

#[test]
fn put_if_match_a_version_on_an_absent_key_is_412_with_null() {
    let (srv, _, _) = start_p(json!({}));
    let r = put_h(&srv, "/v1/kv/p/k", &[("If-Match", "\"1\"")], b"v");
    assert_precondition_failed(&r, Value::Null);
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
}

#[test]
fn if_none_match_star_creates_only_when_absent() {
    let (srv, _, _) = start_p(json!({}));
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
    let (srv, _, _) = start_p(json!({}));
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
    let (srv, _, _) = start_p(json!({}));
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
    let (srv, _, _) = start_p(json!({}));
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
    let (srv, _, _) = start_p(json!({}));
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
    let (srv, _, _) = start_p(json!({}));
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
    let (srv, _, _) = start_p(json!({}));
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
    let (srv, _, _) = start_p(json!({}));
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
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"value");
    let (r, rest) = req_close(&srv, "GET", "/v1/kv/p/k", &[("If-None-Match", "\"1\"")]);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert!(rest.is_empty(), "304 sent a body: {rest:?}");
}

#[test]
fn get_with_if_none_match_star_on_an_existing_key_is_304() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"value");
    let (r, rest) = req_close(&srv, "GET", "/v1/kv/p/k", &[("If-None-Match", "*")]);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert!(rest.is_empty(), "304 sent a body: {rest:?}");
}

#[test]
fn head_with_if_none_match_of_the_current_version_is_304() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"value");
    let (r, rest) = req_close(&srv, "HEAD", "/v1/kv/p/k", &[("If-None-Match", "\"1\"")]);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert!(rest.is_empty(), "304 sent a body: {rest:?}");
}

#[test]
fn get_with_if_none_match_of_another_version_is_200_with_the_value() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"one");
    put_ok(&srv, "/v1/kv/p/k", b"two");
    let r = get_h(&srv, "/v1/kv/p/k", &[("If-None-Match", "\"1\"")]);
    assert_value(&r, b"two", "application/octet-stream", 2);
}

// ---------------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------------

#[test]
fn batch_answers_every_result_with_one_shared_version() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/x", b"old");
    put_ok(&srv, "/v1/kv/p/y", b"y");
    let r = batch(
        &srv,
        json!({"ops": [
            {"op": "check", "key": "x", "version": 1},
            {"op": "put", "key": "a", "value": "A"},
            {"op": "put", "key": "x", "value": "new", "content_type": "text/plain"},
            {"op": "delete", "key": "y"},
            {"op": "delete", "key": "gone"}
        ]}),
    );
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({"version": 3, "results": [
            {"op": "check", "key": "x", "version": 1},
            {"op": "put", "key": "a", "version": 3, "created": true},
            {"op": "put", "key": "x", "version": 3, "created": false},
            {"op": "delete", "key": "y", "deleted": true},
            {"op": "delete", "key": "gone", "deleted": false}
        ]})
    );
    assert_value(
        &get(&srv, "/v1/kv/p/a"),
        b"A",
        "application/octet-stream",
        3,
    );
    assert_value(&get(&srv, "/v1/kv/p/x"), b"new", "text/plain", 3);
    get(&srv, "/v1/kv/p/y").assert_error(404, "key_not_found");
    assert_eq!(project_version(&srv), 3);
}

#[test]
fn batch_of_many_puts_takes_one_project_version_step() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/x", b"x");
    let ops: Vec<Value> = (0..10)
        .map(|i| json!({"op": "put", "key": format!("k{i}"), "value": "v"}))
        .collect();
    let r = batch(&srv, json!({ "ops": ops }));
    assert_json(&r, 200);
    assert_eq!(r.json()["version"], 2);
    for i in 0..10 {
        assert_eq!(
            get(&srv, &format!("/v1/kv/p/k{i}")).header("etag"),
            Some("\"2\"")
        );
    }
    assert_eq!(project_version(&srv), 2);
    assert_eq!(put_ok(&srv, "/v1/kv/p/next", b"n"), 3);
}

#[test]
fn batch_of_only_checks_takes_no_version() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/x", b"x");
    let r = batch(
        &srv,
        json!({"ops": [{"op": "check", "key": "x"}, {"op": "check", "key": "y", "version": 0}]}),
    );
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({"version": 1, "results": [
            {"op": "check", "key": "x", "version": 1},
            {"op": "check", "key": "y", "version": 0}
        ]})
    );
    assert_eq!(project_version(&srv), 1);
}

#[test]
fn failed_check_at_index_2_undoes_the_earlier_puts() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/x", b"old");
    let r = batch(
        &srv,
        json!({"ops": [
            {"op": "put", "key": "a", "value": "A"},
            {"op": "put", "key": "x", "value": "new"},
            {"op": "check", "key": "missing"}
        ]}),
    );
    assert_batch_error(&r, 409, "condition_failed", 2);
    get(&srv, "/v1/kv/p/a").assert_error(404, "key_not_found");
    assert_value(
        &get(&srv, "/v1/kv/p/x"),
        b"old",
        "application/octet-stream",
        1,
    );
    assert_eq!(project_version(&srv), 1);
    assert_eq!(project(&srv)["keys"], 1);
    assert_eq!(put_ok(&srv, "/v1/kv/p/next", b"n"), 2);
}

#[test]
fn failed_check_undoes_an_earlier_delete() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/x", b"old");
    let r = batch(
        &srv,
        json!({"ops": [
            {"op": "delete", "key": "x"},
            {"op": "check", "key": "x", "version": 1}
        ]}),
    );
    assert_batch_error(&r, 409, "condition_failed", 1);
    assert_value(
        &get(&srv, "/v1/kv/p/x"),
        b"old",
        "application/octet-stream",
        1,
    );
    assert_eq!(project_version(&srv), 1);
}

#[test]
fn batch_version_0_requires_the_key_to_be_absent() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/x", b"x");
    let r = batch(
        &srv,
        json!({"ops": [{"op": "put", "key": "y", "value": "y", "version": 0}]}),
    );
    assert_json(&r, 200);
    assert_eq!(r.json()["results"][0]["created"], true);
    let r = batch(
        &srv,
        json!({"ops": [
            {"op": "put", "key": "z", "value": "z", "version": 0},
            {"op": "put", "key": "x", "value": "x2", "version": 0}
        ]}),
    );
    assert_batch_error(&r, 409, "condition_failed", 1);
    get(&srv, "/v1/kv/p/z").assert_error(404, "key_not_found");
    assert_eq!(get(&srv, "/v1/kv/p/x").body, b"x");
}

#[test]
fn batch_version_n_requires_the_key_at_that_version() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/x", b"x");
    let r = batch(
        &srv,
        json!({"ops": [{"op": "put", "key": "x", "value": "x2", "version": 1}]}),
    );
    assert_json(&r, 200);
    assert_eq!(
        r.json()["results"][0],
        json!({"op": "put", "key": "x", "version": 2, "created": false})
    );
    let r = batch(
        &srv,
        json!({"ops": [{"op": "delete", "key": "x", "version": 1}]}),
    );
    assert_batch_error(&r, 409, "condition_failed", 0);
    assert_value(
        &get(&srv, "/v1/kv/p/x"),
        b"x2",
        "application/octet-stream",
        2,
    );
    let r = batch(
        &srv,
        json!({"ops": [{"op": "delete", "key": "nothing", "version": 1}]}),
    );
    assert_batch_error(&r, 409, "condition_failed", 0);
}

#[test]
fn batch_check_without_version_requires_the_key_to_exist() {
    let (srv, _, _) = start_p(json!({}));
    let r = batch(&srv, json!({"ops": [{"op": "check", "key": "missing"}]}));
    assert_batch_error(&r, 409, "condition_failed", 0);
}

#[test]
fn batch_delete_of_an_absent_key_without_version_is_not_an_error() {
    let (srv, _, _) = start_p(json!({}));
    let r = batch(&srv, json!({"ops": [{"op": "delete", "key": "missing"}]}));
    assert_json(&r, 200);
    assert_eq!(
        r.json()["results"],
        json!([{"op": "delete", "key": "missing", "deleted": false}])
    );
}

#[test]
fn batch_past_the_key_quota_is_507_with_index_and_writes_nothing() {
    let (srv, _, _) = start_p(json!({"limits": {"max_keys_per_project": 2}}));
    put_ok(&srv, "/v1/kv/p/x", b"x");
    let r = batch(
        &srv,
        json!({"ops": [
            {"op": "put", "key": "x", "value": "x2"},
            {"op": "put", "key": "a", "value": "a"},
            {"op": "put", "key": "b", "value": "b"}
        ]}),
    );
    assert_batch_error(&r, 507, "quota_exceeded", 2);
    get(&srv, "/v1/kv/p/a").assert_error(404, "key_not_found");
    assert_value(
        &get(&srv, "/v1/kv/p/x"),
        b"x",
        "application/octet-stream",
        1,
    );
    assert_eq!(project_version(&srv), 1);
    assert_eq!(project(&srv)["keys"], 1);
}

#[test]
fn batch_of_1000_ops_is_accepted() {
    let (srv, _, _) = start_p(json!({}));
    let ops: Vec<Value> = (0..1000)
        .map(|i| json!({"op": "put", "key": format!("k{i:04}"), "value": "v"}))
        .collect();
    let r = batch(&srv, json!({ "ops": ops }));
    assert_json(&r, 200);
    assert_eq!(r.json()["results"].as_array().unwrap().len(), 1000);
    assert_eq!(project(&srv)["keys"], 1000);
}

#[test]
fn batch_of_1001_ops_is_400_invalid_batch() {
    let (srv, _, _) = start_p(json!({}));
    let ops: Vec<Value> = (0..1001)
        .map(|i| json!({"op": "put", "key": format!("k{i:04}"), "value": "v"}))
        .collect();
    batch(&srv, json!({ "ops": ops })).assert_error(400, "invalid_batch");
    assert_eq!(project(&srv)["keys"], 0);
}

#[test]
fn batch_with_no_ops_is_400_invalid_batch() {
    let (srv, _, _) = start_p(json!({}));
    batch(&srv, json!({"ops": []})).assert_error(400, "invalid_batch");
}

#[test]
fn batch_with_an_unknown_op_is_400_invalid_batch_with_its_index() {
    let (srv, _, _) = start_p(json!({}));
    let r = batch(
        &srv,
        json!({"ops": [{"op": "put", "key": "a", "value": "A"}, {"op": "frob", "key": "b"}]}),
    );
    assert_batch_error(&r, 400, "invalid_batch", 1);
    get(&srv, "/v1/kv/p/a").assert_error(404, "key_not_found");
}

#[test]
fn batch_value_or_ttl_on_a_non_put_op_is_400_invalid_batch_with_its_index() {
    let (srv, _, _) = start_p(json!({}));
    let r = batch(
        &srv,
        json!({"ops": [
            {"op": "put", "key": "a", "value": "A"},
            {"op": "put", "key": "b", "value": "B"},
            {"op": "delete", "key": "a", "value": "x"}
        ]}),
    );
    assert_batch_error(&r, 400, "invalid_batch", 2);
    let r = batch(
        &srv,
        json!({"ops": [{"op": "check", "key": "a", "ttl": 5}]}),
    );
    assert_batch_error(&r, 400, "invalid_batch", 0);
    assert_eq!(project_version(&srv), 0);
}

#[test]
fn batch_with_invalid_base64_is_400_invalid_batch_with_its_index() {
    let (srv, _, _) = start_p(json!({}));
    let r = batch(
        &srv,
        json!({"ops": [
            {"op": "put", "key": "a", "value": "A"},
            {"op": "put", "key": "b", "value": "not base64!", "base64": true}
        ]}),
    );
    assert_batch_error(&r, 400, "invalid_batch", 1);
    get(&srv, "/v1/kv/p/a").assert_error(404, "key_not_found");
}

#[test]
fn batch_op_with_an_unknown_field_is_400_invalid_json() {
    let (srv, _, _) = start_p(json!({}));
    let r = batch(
        &srv,
        json!({"ops": [{"op": "put", "key": "a", "value": "A", "colour": "red"}]}),
    );
    r.assert_error(400, "invalid_json");
    get(&srv, "/v1/kv/p/a").assert_error(404, "key_not_found");
}

#[test]
fn batch_base64_value_is_stored_as_raw_bytes() {
    let (srv, _, _) = start_p(json!({}));
    let r = batch(
        &srv,
        json!({"ops": [
            {"op": "put", "key": "bin", "value": "AAEC/w==", "base64": true},
            {"op": "put", "key": "img", "value": "iVBORw==", "base64": true, "content_type": "image/png"}
        ]}),
    );
    assert_json(&r, 200);
    assert_value(
        &get(&srv, "/v1/kv/p/bin"),
        &[0, 1, 2, 255],
        "application/octet-stream",
        1,
    );
    assert_value(
        &get(&srv, "/v1/kv/p/img"),
        &[0x89, b'P', b'N', b'G'],
        "image/png",
        1,
    );
}

#[test]
fn batch_put_with_ttl_sets_x_expires_at() {
    let (srv, _, _) = start_p(json!({}));
    let before = now_secs();
    let r = batch(
        &srv,
        json!({"ops": [{"op": "put", "key": "k", "value": "v", "ttl": 100}, {"op": "put", "key": "plain", "value": "v"}]}),
    );
    assert_json(&r, 200);
    let at = expires_at(&get(&srv, "/v1/kv/p/k"));
    assert!(at + 2 >= before + 100 && at <= now_secs() + 100 + 2, "{at}");
    assert_eq!(get(&srv, "/v1/kv/p/plain").header("x-expires-at"), None);
}

#[test]
fn batch_with_a_read_token_is_403_forbidden() {
    let (srv, _, read) = start_p(json!({}));
    let body =
        serde_json::to_vec(&json!({"ops": [{"op": "check", "key": "a", "version": 0}]})).unwrap();
    srv.req("POST", "/v1/kv/p", Some(&read), &body)
        .assert_error(403, "forbidden");
}

// ---------------------------------------------------------------------------------------------
// Listings
// ---------------------------------------------------------------------------------------------

#[test]
fn list_values_true_gives_utf8_as_strings_and_other_bytes_as_base64_with_a_flag() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", "text é".as_bytes());
    put_ok(&srv, "/v1/kv/p/b", &[0xff, 0x00]);
    put_ok(&srv, "/v1/kv/p/c", b"");
    let r = get(&srv, "/v1/kv/p?values=true");
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({"keys": [
            {"key": "a", "value": "text é", "version": 1},
            {"key": "b", "value": "/wA=", "base64": true, "version": 2},
            {"key": "c", "value": "", "version": 3}
        ], "next": null})
    );
}

#[test]
fn list_values_true_pages_like_the_plain_listing() {
    let (srv, _, _) = start_p(json!({}));
    for k in ["a", "b", "c"] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), k.as_bytes());
    }
    assert_eq!(
        list_json(&srv, "values=true&limit=2"),
        json!({"keys": [
            {"key": "a", "value": "a", "version": 1},
            {"key": "b", "value": "b", "version": 2}
        ], "next": "b"})
    );
}

#[test]
fn list_format_text_is_one_escaped_key_per_line() {
    let (srv, _, _) = start_p(json!({}));
    for path in ["a", "b%0Ac", "d%25e", "f%0Dg", "h%20i"] {
        put_ok(&srv, &format!("/v1/kv/p/{path}"), b"v");
    }
    let r = get(&srv, "/v1/kv/p?format=text");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), "a\nb%0Ac\nd%25e\nf%0Dg\nh i\n");
    assert_eq!(r.header("x-next-after"), None);
}

#[test]
fn list_format_text_of_no_keys_is_an_empty_body() {
    let (srv, _, _) = start_p(json!({}));
    let r = get(&srv, "/v1/kv/p?format=text");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.body, b"");
}

/// The lines of a JSON-lines body, each parsed; every line must end with `\n`.
fn jsonl(r: &Resp) -> Vec<Value> {
    let text = r.text();
    assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn list_format_jsonl_is_one_object_per_line() {
    let (srv, _, _) = start_p(json!({}));
    for path in ["a", "b%0Ac"] {
        put_ok(&srv, &format!("/v1/kv/p/{path}"), b"v");
    }
    let r = get(&srv, "/v1/kv/p?format=jsonl");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(r.text().matches('\n').count(), 2, "{:?}", r.text());
    assert_eq!(jsonl(&r), vec![json!({"key": "a"}), json!({"key": "b\nc"})]);
}

#[test]
fn list_format_jsonl_with_values_carries_the_value_fields() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"text");
    put_ok(&srv, "/v1/kv/p/b", &[0xff]);
    let r = get(&srv, "/v1/kv/p?format=jsonl&values=true");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(
        jsonl(&r),
        vec![
            json!({"key": "a", "value": "text", "version": 1}),
            json!({"key": "b", "value": "/w==", "base64": true, "version": 2})
        ]
    );
}

#[test]
fn list_format_json_is_the_default_listing() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"v");
    assert_eq!(
        list_json(&srv, "format=json"),
        json!({"keys": ["a"], "next": null})
    );
}

#[test]
fn list_with_accept_text_plain_answers_text() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"v");
    put_ok(&srv, "/v1/kv/p/b", b"v");
    let r = get_h(&srv, "/v1/kv/p", &[("Accept", "text/plain")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), "a\nb\n");
}

#[test]
fn list_with_accept_ndjson_answers_jsonl() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"v");
    let r = get_h(&srv, "/v1/kv/p", &[("Accept", "application/x-ndjson")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(jsonl(&r), vec![json!({"key": "a"})]);
}

#[test]
fn list_format_parameter_wins_over_accept() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"v");
    let r = get_h(&srv, "/v1/kv/p?format=json", &[("Accept", "text/plain")]);
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({"keys": ["a"], "next": null}));
}

#[test]
fn list_text_page_gives_the_next_after_percent_encoded_in_x_next_after() {
    let (srv, _, _) = start_p(json!({}));
    for path in ["a", "b%20c", "d"] {
        put_ok(&srv, &format!("/v1/kv/p/{path}"), b"v");
    }
    let r = get(&srv, "/v1/kv/p?format=text&limit=2");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "a\nb c\n");
    assert_eq!(r.header("x-next-after"), Some("b%20c"));
    let r = get(&srv, "/v1/kv/p?format=text&limit=2&after=b%20c");
    assert_eq!(r.text(), "d\n");
    assert_eq!(r.header("x-next-after"), None);
}

#[test]
fn list_jsonl_page_gives_the_next_after_in_x_next_after() {
    let (srv, _, _) = start_p(json!({}));
    for k in ["a", "b", "c"] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"v");
    }
    let r = get(&srv, "/v1/kv/p?format=jsonl&limit=1");
    assert_eq!(jsonl(&r), vec![json!({"key": "a"})]);
    assert_eq!(r.header("x-next-after"), Some("a"));
    let r = get(&srv, "/v1/kv/p?format=jsonl&limit=2&after=a");
    assert_eq!(jsonl(&r), vec![json!({"key": "b"}), json!({"key": "c"})]);
    assert_eq!(r.header("x-next-after"), None);
}

#[test]
fn every_listing_answers_x_project_version() {
    let (srv, _, _) = start_p(json!({}));
    assert_eq!(get(&srv, "/v1/kv/p").header("x-project-version"), Some("0"));
    put_ok(&srv, "/v1/kv/p/a", b"v");
    put_ok(&srv, "/v1/kv/p/b", b"v");
    assert_eq!(delete(&srv, "/v1/kv/p/b").status, 204);
    for query in [
        "",
        "?format=text",
        "?format=jsonl",
        "?values=true",
        "?prefix=zzz",
    ] {
        let r = get(&srv, &format!("/v1/kv/p{query}"));
        assert_eq!(r.status, 200, "{query}");
        assert_eq!(r.header("x-project-version"), Some("3"), "{query}");
    }
}

#[test]
fn list_values_true_with_format_text_is_400_invalid_parameter() {
    let (srv, _, _) = start_p(json!({}));
    get(&srv, "/v1/kv/p?values=true&format=text").assert_error(400, "invalid_parameter");
}

#[test]
fn list_with_an_unknown_format_is_400_invalid_parameter() {
    let (srv, _, _) = start_p(json!({}));
    for format in ["xml", "", "TEXT"] {
        let r = get(&srv, &format!("/v1/kv/p?format={format}"));
        assert_eq!(r.status, 400, "format={format:?}: {}", r.text());
        r.assert_error(400, "invalid_parameter");
    }
}

#[test]
fn list_with_a_bad_values_flag_is_400_invalid_parameter() {
    let (srv, _, _) = start_p(json!({}));
    get(&srv, "/v1/kv/p?values=maybe").assert_error(400, "invalid_parameter");
}

// ---------------------------------------------------------------------------------------------
// Watches
// ---------------------------------------------------------------------------------------------

#[test]
fn key_watch_with_another_version_answers_at_once() {
    let (srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"one");
    put_ok(&srv, "/v1/kv/p/k", b"two");
    let start = Instant::now();
    let mut s = send(&srv, "/v1/kv/p/k?watch=30&version=1", &read);
    let r = read_within(&mut s, WAKE_LIMIT);
    assert_value(&r, b"two", "application/octet-stream", 2);
    assert!(start.elapsed() < WAKE_LIMIT);
}

#[test]
fn key_watch_on_a_deleted_key_with_its_old_version_answers_404_at_once() {
    let (srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"one");
    assert_eq!(delete(&srv, "/v1/kv/p/k").status, 204);
    let mut s = send(&srv, "/v1/kv/p/k?watch=30&version=1", &read);
    read_within(&mut s, WAKE_LIMIT).assert_error(404, "key_not_found");
}

#[test]
fn key_watch_wakes_on_put_with_the_new_value() {
    let (srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"old");
    let mut s = send(&srv, "/v1/kv/p/k?watch=30&version=1", &read);
    sleep(PARK);
    assert_waiting(&mut s);
    let start = Instant::now();
    assert_eq!(put(&srv, "/v1/kv/p/k", b"new").status, 200);
    let r = read_within(&mut s, WAKE_LIMIT);
    assert_value(&r, b"new", "application/octet-stream", 2);
    assert!(start.elapsed() < WAKE_LIMIT);
}

#[test]
fn key_watch_without_version_waits_for_the_next_change() {
    let (srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"old");
    let mut s = send(&srv, "/v1/kv/p/k?watch=30", &read);
    sleep(PARK);
    assert_waiting(&mut s);
    put_ok(&srv, "/v1/kv/p/k", b"new");
    assert_value(
        &read_within(&mut s, WAKE_LIMIT),
        b"new",
        "application/octet-stream",
        2,
    );
}

#[test]
fn key_watch_on_an_absent_key_wakes_when_it_is_created() {
    let (srv, _, read) = start_p(json!({}));
    let mut s = send(&srv, "/v1/kv/p/k?watch=30", &read);
    sleep(PARK);
    assert_waiting(&mut s);
    put_ok(&srv, "/v1/kv/p/k", b"born");
    assert_value(
        &read_within(&mut s, WAKE_LIMIT),
        b"born",
        "application/octet-stream",
        1,
    );
}

#[test]
fn key_watch_wakes_with_404_on_delete() {
    let (srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let mut s = send(&srv, "/v1/kv/p/k?watch=30&version=1", &read);
    sleep(PARK);
    assert_waiting(&mut s);
    let start = Instant::now();
    assert_eq!(delete(&srv, "/v1/kv/p/k").status, 204);
    read_within(&mut s, WAKE_LIMIT).assert_error(404, "key_not_found");
    assert!(start.elapsed() < WAKE_LIMIT);
}

#[test]
fn key_watch_wakes_with_404_when_the_key_expires() {
    let (srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"v");
    let mut s = send(&srv, "/v1/kv/p/k?watch=30&version=1", &read);
    read_within(&mut s, EXPIRY_LIMIT).assert_error(404, "key_not_found");
}

#[test]
fn key_watch_wakes_on_incr_and_on_a_batch() {
    let (srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/c", b"1");
    let mut s = send(&srv, "/v1/kv/p/c?watch=30&version=1", &read);
    sleep(PARK);
    assert_waiting(&mut s);
    assert_eq!(post(&srv, "/v1/kv/p/c?incr=1", b"").status, 200);
    assert_value(
        &read_within(&mut s, WAKE_LIMIT),
        b"2",
        "application/octet-stream",
        2,
    );

    let mut s = send(&srv, "/v1/kv/p/c?watch=30&version=2", &read);
    sleep(PARK);
    assert_waiting(&mut s);
    let r = batch(
        &srv,
        json!({"ops": [{"op": "put", "key": "c", "value": "9"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_value(
        &read_within(&mut s, WAKE_LIMIT),
        b"9",
        "application/octet-stream",
        3,
    );
}

#[test]
fn key_watch_is_not_woken_by_another_key() {
    let (srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let mut s = send(&srv, "/v1/kv/p/k?watch=1&version=1", &read);
    sleep(PARK);
    put_ok(&srv, "/v1/kv/p/other", b"x");
    let r = read_within(&mut s, Duration::from_secs(3));
    assert_eq!(r.status, 304, "{}", r.text());
}

#[test]
fn key_watch_times_out_with_304_etag_and_no_body() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let start = Instant::now();
    let (r, rest) = req_close(&srv, "GET", "/v1/kv/p/k?watch=1&version=1", &[]);
    let took = start.elapsed();
    assert_eq!(r.status, 304, "{}", r.text());
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert!(rest.is_empty(), "304 sent a body: {rest:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn key_watch_on_an_absent_key_times_out_with_304_without_etag() {
    let (srv, _, _) = start_p(json!({}));
    let start = Instant::now();
    let (r, rest) = req_close(&srv, "GET", "/v1/kv/p/k?watch=1", &[]);
    let took = start.elapsed();
    assert_eq!(r.status, 304, "{}", r.text());
    assert_eq!(r.header("etag"), None);
    assert!(rest.is_empty(), "304 sent a body: {rest:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn watch_seconds_outside_1_to_300_is_400_invalid_parameter() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    for watch in ["0", "301", "-1", "abc", "1.5", ""] {
        for base in ["/v1/kv/p/k?", "/v1/kv/p?prefix=k&"] {
            let path = format!("{base}watch={watch}");
            let r = get(&srv, &path);
            assert_eq!(r.status, 400, "{path}: {}", r.text());
            r.assert_error(400, "invalid_parameter");
        }
    }
}

#[test]
fn version_without_watch_is_400_invalid_parameter() {
    let (srv, _, _) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    get(&srv, "/v1/kv/p/k?version=1").assert_error(400, "invalid_parameter");
    get(&srv, "/v1/kv/p?version=1").assert_error(400, "invalid_parameter");
}

#[test]
fn prefix_watch_wakes_on_a_change_under_the_prefix_with_the_listing() {
    let (srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a/1", b"v");
    put_ok(&srv, "/v1/kv/p/b/1", b"v");
    let mut s = send(&srv, "/v1/kv/p?prefix=a/&watch=30&version=2", &read);
    sleep(PARK);
    assert_waiting(&mut s);
    let start = Instant::now();
    put_ok(&srv, "/v1/kv/p/a/2", b"v");
    let r = read_within(&mut s, WAKE_LIMIT);
    assert!(start.elapsed() < WAKE_LIMIT);
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({"keys": ["a/1", "a/2"], "next": null}));
    assert_eq!(r.header("x-project-version"), Some("3"));
}

#[test]
fn prefix_watch_without_version_waits_from_the_current_project_version() {
    let (srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a/1", b"v");
    let mut s = send(&srv, "/v1/kv/p?prefix=a/&watch=30", &read);
    sleep(PARK);
    assert_waiting(&mut s);
    assert_eq!(delete(&srv, "/v1/kv/p/a/1").status, 204);
    let r = read_within(&mut s, WAKE_LIMIT);
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({"keys": [], "next": null}));
    assert_eq!(r.header("x-project-version"), Some("2"));
}

#[test]
fn prefix_watch_is_not_woken_by_a_change_outside_the_prefix() {
    let (srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a/1", b"v");
    let start = Instant::now();
    let mut s = send(&srv, "/v1/kv/p?prefix=a/&watch=1&version=1", &read);
    sleep(PARK);
    put_ok(&srv, "/v1/kv/p/b/1", b"v");
    put_ok(&srv, "/v1/kv/p/a", b"v");
    let r = read_within(&mut s, Duration::from_secs(3));
    let took = start.elapsed();
    assert_eq!(r.status, 304, "{}", r.text());
    assert_eq!(r.header("x-project-version"), Some("3"));
    assert!(r.body.is_empty());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn prefix_watch_with_an_old_version_answers_at_once() {
    let (srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a/1", b"v");
    put_ok(&srv, "/v1/kv/p/b/1", b"v");
    let start = Instant::now();
    let mut s = send(&srv, "/v1/kv/p?prefix=a/&watch=30&version=0", &read);
    let r = read_within(&mut s, WAKE_LIMIT);
    assert!(start.elapsed() < WAKE_LIMIT);
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({"keys": ["a/1"], "next": null}));
    assert_eq!(r.header("x-project-version"), Some("2"));
}

#[test]
fn prefix_watch_answers_at_once_when_a_key_under_it_was_deleted_after_the_version() {
    let (srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a/1", b"v");
    put_ok(&srv, "/v1/kv/p/b/1", b"v");
    assert_eq!(delete(&srv, "/v1/kv/p/a/1").status, 204);
    let mut s = send(&srv, "/v1/kv/p?prefix=a/&watch=30&version=2", &read);
    let r = read_within(&mut s, WAKE_LIMIT);
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({"keys": [], "next": null}));
    assert_eq!(r.header("x-project-version"), Some("3"));
}

#[test]
fn prefix_watch_answers_in_the_requested_format() {
    let (srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a/1", b"v");
    let mut s = send(
        &srv,
        "/v1/kv/p?prefix=a/&format=text&watch=30&version=1",
        &read,
    );
    sleep(PARK);
    assert_waiting(&mut s);
    put_ok(&srv, "/v1/kv/p/a/2", b"v");
    let r = read_within(&mut s, WAKE_LIMIT);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), "a/1\na/2\n");
}

#[test]
fn two_hundred_watchers_are_all_woken_by_one_put() {
    let (srv, _, read) = start_p(json!({"log_requests": false}));
    put_ok(&srv, "/v1/kv/p/k", b"old");
    let mut watchers: Vec<TcpStream> = (0..200)
        .map(|_| send(&srv, "/v1/kv/p/k?watch=30&version=1", &read))
        .collect();
    sleep(PARK);
    for s in &mut watchers {
        assert_waiting(s);
    }
    assert_eq!(put(&srv, "/v1/kv/p/k", b"new").status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    for (i, s) in watchers.iter_mut().enumerate() {
        let r = read_by(s, deadline);
        assert_eq!(r.status, 200, "watcher {i}: {}", r.text());
        assert_eq!(r.body, b"new", "watcher {i}");
        assert_eq!(r.header("etag"), Some("\"2\""), "watcher {i}");
    }
}

#[test]
fn requests_are_answered_promptly_while_fifty_watches_wait() {
    let (srv, _, read) = start_p(json!({"log_requests": false}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let mut watchers: Vec<TcpStream> = (0..50)
        .map(|_| send(&srv, "/v1/kv/p/k?watch=30&version=1", &read))
        .collect();
    sleep(PARK);
    for i in 0..5 {
        let start = Instant::now();
        let r = srv.req("GET", "/health", None, b"");
        assert_eq!(r.status, 200);
        assert!(start.elapsed() < Duration::from_secs(1), "health {i}");
        let start = Instant::now();
        assert_eq!(put_ok(&srv, "/v1/kv/p/other", b"x"), i + 2);
        assert!(start.elapsed() < Duration::from_secs(1), "put {i}");
        let start = Instant::now();
        assert_eq!(get(&srv, "/v1/kv/p/other").body, b"x");
        assert!(start.elapsed() < Duration::from_secs(1), "get {i}");
    }
    for s in &mut watchers {
        assert_waiting(s);
    }
}

#[test]
fn watch_past_max_watches_is_503_too_many_watches() {
    let (srv, _, read) = start_p(json!({"max_watches": 2}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let mut a = send(&srv, "/v1/kv/p/k?watch=30&version=1", &read);
    let mut b = send(&srv, "/v1/kv/p?prefix=&watch=30&version=1", &read);
    sleep(PARK);
    assert_waiting(&mut a);
    assert_waiting(&mut b);
    get(&srv, "/v1/kv/p/k?watch=30&version=1").assert_error(503, "too_many_watches");
    get(&srv, "/v1/kv/p?watch=30&version=1").assert_error(503, "too_many_watches");
    assert_eq!(get(&srv, "/v1/kv/p/k").status, 200);
}

#[test]
fn a_disconnected_watcher_frees_its_slot() {
    let (srv, _, read) = start_p(json!({"max_watches": 1}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let mut a = send(&srv, "/v1/kv/p/k?watch=30&version=1", &read);
    sleep(PARK);
    assert_waiting(&mut a);
    get(&srv, "/v1/kv/p/k?watch=1&version=1").assert_error(503, "too_many_watches");
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut s = send(&srv, "/v1/kv/p/k?watch=1&version=1", &read);
        let r = read_within(&mut s, Duration::from_secs(3));
        if r.status == 304 {
            break;
        }
        r.assert_error(503, "too_many_watches");
        assert!(
            Instant::now() < deadline,
            "the slot was not freed within 2 s"
        );
        sleep(Duration::from_millis(100));
    }
}

#[test]
fn sync_watch_wakes_once_the_put_is_durable() {
    let (srv, _, read) = start_p(json!({"persistence": "sync"}));
    put_ok(&srv, "/v1/kv/p/k", b"old");
    let mut w = send(&srv, "/v1/kv/p/k?watch=30&version=1", &read);
    sleep(PARK);
    assert_waiting(&mut w);
    let mut p = srv.connect();
    p.write_all(&request_bytes(
        "PUT",
        "/v1/kv/p/k",
        Some(ADMIN),
        &[],
        b"durable-value",
    ))
    .unwrap();
    let r = read_within(&mut w, WAKE_LIMIT);
    let saved = on_disk(&srv, "p");
    assert_value(&r, b"durable-value", "application/octet-stream", 2);
    assert!(
        saved.contains("durable-value"),
        "the watcher woke before the journal held the change:\n{saved}"
    );
    let ack = read_within(&mut p, WAKE_LIMIT);
    assert_eq!(ack.status, 200, "{}", ack.text());
    assert_eq!(
        ack.json(),
        json!({"project": "p", "key": "k", "version": 2})
    );
}

#[test]
fn sigterm_answers_parked_watches_304_before_exit() {
    let (mut srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let mut s = send(&srv, "/v1/kv/p/k?watch=30&version=1", &read);
    sleep(PARK);
    assert_waiting(&mut s);
    srv.signal("TERM");
    let r = read_within(&mut s, Duration::from_secs(5));
    assert_eq!(r.status, 304, "{}", r.text());
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(srv.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn prefix_watch_wakes_when_a_key_under_it_expires() {
    let (srv, _, read) = start_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a/keep", b"v");
    put_ok(&srv, "/v1/kv/p/a/k?ttl=1", b"v");
    let mut s = send(&srv, "/v1/kv/p?prefix=a/&watch=30&version=2", &read);
    let r = read_within(&mut s, EXPIRY_LIMIT);
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({"keys": ["a/keep"], "next": null}));
    assert_eq!(r.header("x-project-version"), Some("3"));
}

#[test]
fn batch_put_with_a_ttl_outside_1_to_315360000_is_400_invalid_batch_with_its_index() {
    let (srv, _, _) = start_p(json!({}));
    for ttl in [0u64, 315360001] {
        let r = batch(
            &srv,
            json!({"ops": [
                {"op": "put", "key": "a", "value": "A"},
                {"op": "put", "key": "b", "value": "B", "ttl": ttl}
            ]}),
        );
        assert_batch_error(&r, 400, "invalid_batch", 1);
    }
    assert_eq!(project_version(&srv), 0);
}

#[test]
fn batch_put_with_a_ttl_that_is_not_a_whole_number_is_400_and_writes_nothing() {
    let (srv, _, _) = start_p(json!({}));
    for ttl in [json!(-1), json!(1.5), json!("5")] {
        let r = batch(
            &srv,
            json!({"ops": [
                {"op": "put", "key": "a", "value": "A"},
                {"op": "put", "key": "b", "value": "B", "ttl": ttl}
            ]}),
        );
        // The spec names no code for a ttl of the wrong JSON type: a shape error or a bad op.
        assert_json(&r, 400);
        let code = r.json()["error"].clone();
        assert!(
            code == "invalid_json" || code == "invalid_batch",
            "ttl {ttl}: {}",
            r.text()
        );
    }
    get(&srv, "/v1/kv/p/a").assert_error(404, "key_not_found");
    assert_eq!(project_version(&srv), 0);
}

/// Let a key expire and see the data directory drop it (what a restart would load), without
/// any restart: the expiry is journaled like a DELETE.
fn expired_key_leaves_the_data_directory(mode: &str) {
    let (srv, _, _) = start_p(json!({"persistence": mode, "interval_ms": 200}));
    put_ok(&srv, "/v1/kv/p/keep", b"x");
    put_ok(&srv, "/v1/kv/p/ephemeral?ttl=1", b"v");
    let saved = on_disk(&srv, "p");
    assert!(saved.contains("\"ephemeral\""), "{saved}");
    wait_expired(&srv, "/v1/kv/p/ephemeral");
    let mut saved = String::new();
    assert!(
        wait_until(Duration::from_secs(2), || {
            saved = on_disk(&srv, "p");
            saved.contains("\"keep\"") && !saved.contains("\"ephemeral\"")
        }),
        "the data directory still holds the expired key (or lost the other):\n{saved}"
    );
}

#[test]
fn sync_expired_key_leaves_the_data_directory() {
    expired_key_leaves_the_data_directory("sync");
}

#[test]
fn interval_expired_key_leaves_the_data_directory() {
    expired_key_leaves_the_data_directory("interval");
}
