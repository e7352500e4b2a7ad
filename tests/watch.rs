//! Watches (`?watch=N`): a key or a prefix waited on until a change, a delete, an expiry or the
//! timeout; what answers at once; many parked watches on the single thread; sync mode and
//! SIGTERM. Parking needs the real event loop: the real binary, but for the watches that answer
//! at once and the parameter errors (in-process).

mod common;
use common::*;

use serde_json::json;
use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long after sending a watch we assume the server has read and parked it.
const PARK: Duration = Duration::from_millis(300);

/// A parked watch must wake this soon after the change (loose: the machine may be busy).
const WAKE_LIMIT: Duration = Duration::from_secs(2);

/// Send a GET on a fresh connection and leave the answer unread (a watch parks there).
fn start_get(srv: &Server, path: &str, token: &str) -> TcpStream {
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

#[test]
fn key_watch_with_another_version_answers_at_once() {
    let (srv, _, read) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"one");
    put_ok(&srv, "/v1/kv/p/k", b"two");
    let start = Instant::now();
    let r = get_as(&srv, &read, "/v1/kv/p/k?watch=30&version=1");
    assert_value(&r, b"two", "application/octet-stream", 2);
    assert!(start.elapsed() < WAKE_LIMIT);
}

#[test]
fn key_watch_on_a_deleted_key_with_its_old_version_answers_404_at_once() {
    let (srv, _, read) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"one");
    assert_eq!(delete(&srv, "/v1/kv/p/k").status, 204);
    get_as(&srv, &read, "/v1/kv/p/k?watch=30&version=1").assert_error(404, "key_not_found");
}

#[test]
fn key_watch_wakes_on_put_with_the_new_value() {
    let (srv, _, read) = Server::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"old");
    let mut s = start_get(&srv, "/v1/kv/p/k?watch=30&version=1", &read);
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
    let (srv, _, read) = Server::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"old");
    let mut s = start_get(&srv, "/v1/kv/p/k?watch=30", &read);
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
    let (srv, _, read) = Server::with_p(json!({}));
    let mut s = start_get(&srv, "/v1/kv/p/k?watch=30", &read);
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
    let (srv, _, read) = Server::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let mut s = start_get(&srv, "/v1/kv/p/k?watch=30&version=1", &read);
    sleep(PARK);
    assert_waiting(&mut s);
    let start = Instant::now();
    assert_eq!(delete(&srv, "/v1/kv/p/k").status, 204);
    read_within(&mut s, WAKE_LIMIT).assert_error(404, "key_not_found");
    assert!(start.elapsed() < WAKE_LIMIT);
}

#[test]
fn key_watch_wakes_with_404_when_the_key_expires() {
    let (srv, _, read) = Server::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"v");
    let mut s = start_get(&srv, "/v1/kv/p/k?watch=30&version=1", &read);
    read_within(&mut s, EXPIRY_LIMIT).assert_error(404, "key_not_found");
}

#[test]
fn key_watch_wakes_on_incr_and_on_a_batch() {
    let (srv, _, read) = Server::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/c", b"1");
    let mut s = start_get(&srv, "/v1/kv/p/c?watch=30&version=1", &read);
    sleep(PARK);
    assert_waiting(&mut s);
    assert_eq!(post(&srv, "/v1/kv/p/c?incr=1", b"").status, 200);
    assert_value(
        &read_within(&mut s, WAKE_LIMIT),
        b"2",
        "application/octet-stream",
        2,
    );

    let mut s = start_get(&srv, "/v1/kv/p/c?watch=30&version=2", &read);
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
    let (srv, _, read) = Server::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let mut s = start_get(&srv, "/v1/kv/p/k?watch=1&version=1", &read);
    sleep(PARK);
    put_ok(&srv, "/v1/kv/p/other", b"x");
    let r = read_within(&mut s, Duration::from_secs(3));
    assert_eq!(r.status, 304, "{}", r.text());
}

#[test]
fn key_watch_times_out_with_304_etag_and_no_body() {
    let (srv, _, _) = Server::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let start = Instant::now();
    let (r, rest) = srv.req_close("GET", "/v1/kv/p/k?watch=1&version=1", &[], b"");
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
    let (srv, _, _) = Server::with_p(json!({}));
    let start = Instant::now();
    let (r, rest) = srv.req_close("GET", "/v1/kv/p/k?watch=1", &[], b"");
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
    let (srv, _, _) = InProc::with_p(json!({}));
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
fn version_without_watch_answers_304_while_nothing_changed() {
    let (srv, _, _) = InProc::with_p(json!({}));
    // A key: 304 while it is at that version (0: still absent), else the value.
    let r = get(&srv, "/v1/kv/p/k?version=0");
    assert_eq!((r.status, r.body.as_slice()), (304, &b""[..]));
    assert_eq!(r.header("etag"), None);
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let r = get(&srv, "/v1/kv/p/k?version=1");
    assert_eq!((r.status, r.body.as_slice()), (304, &b""[..]));
    assert_eq!(r.header("etag"), Some("\"1\""));
    let r = get(&srv, "/v1/kv/p/k?version=0");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"v"[..]));
    // A listing: 304 while the project is at that version, else the list.
    let r = get(&srv, "/v1/kv/p?version=1");
    assert_eq!((r.status, r.body.as_slice()), (304, &b""[..]));
    assert_eq!(r.header("x-project-version"), Some("1"));
    let r = get(&srv, "/v1/kv/p?version=0");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"{\"keys\":[\"k\"],\"next\":null}\n");
    get(&srv, "/v1/kv/p/k?version=x").assert_error(400, "invalid_parameter");
}

#[test]
fn prefix_watch_wakes_on_a_change_under_the_prefix_with_the_listing() {
    let (srv, _, read) = Server::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a/1", b"v");
    put_ok(&srv, "/v1/kv/p/b/1", b"v");
    let mut s = start_get(&srv, "/v1/kv/p?prefix=a/&watch=30&version=2", &read);
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
    let (srv, _, read) = Server::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a/1", b"v");
    let mut s = start_get(&srv, "/v1/kv/p?prefix=a/&watch=30", &read);
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
    let (srv, _, read) = Server::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a/1", b"v");
    let start = Instant::now();
    let mut s = start_get(&srv, "/v1/kv/p?prefix=a/&watch=1&version=1", &read);
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
    let (srv, _, read) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a/1", b"v");
    put_ok(&srv, "/v1/kv/p/b/1", b"v");
    let start = Instant::now();
    let r = get_as(&srv, &read, "/v1/kv/p?prefix=a/&watch=30&version=0");
    assert!(start.elapsed() < WAKE_LIMIT);
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({"keys": ["a/1"], "next": null}));
    assert_eq!(r.header("x-project-version"), Some("2"));
}

#[test]
fn prefix_watch_answers_at_once_when_a_key_under_it_was_deleted_after_the_version() {
    let (srv, _, read) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a/1", b"v");
    put_ok(&srv, "/v1/kv/p/b/1", b"v");
    assert_eq!(delete(&srv, "/v1/kv/p/a/1").status, 204);
    let r = get_as(&srv, &read, "/v1/kv/p?prefix=a/&watch=30&version=2");
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({"keys": [], "next": null}));
    assert_eq!(r.header("x-project-version"), Some("3"));
}

#[test]
fn prefix_watch_answers_in_the_requested_format() {
    let (srv, _, read) = Server::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a/1", b"v");
    let mut s = start_get(
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
    let (srv, _, read) = Server::with_p(json!({"log_requests": false}));
    put_ok(&srv, "/v1/kv/p/k", b"old");
    let mut watchers: Vec<TcpStream> = (0..200)
        .map(|_| start_get(&srv, "/v1/kv/p/k?watch=30&version=1", &read))
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
    let (srv, _, read) = Server::with_p(json!({"log_requests": false}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let mut watchers: Vec<TcpStream> = (0..50)
        .map(|_| start_get(&srv, "/v1/kv/p/k?watch=30&version=1", &read))
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
    let (srv, _, read) = Server::with_p(json!({"max_watches": 2}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let mut a = start_get(&srv, "/v1/kv/p/k?watch=30&version=1", &read);
    let mut b = start_get(&srv, "/v1/kv/p?prefix=&watch=30&version=1", &read);
    sleep(PARK);
    assert_waiting(&mut a);
    assert_waiting(&mut b);
    get(&srv, "/v1/kv/p/k?watch=30&version=1").assert_error(503, "too_many_watches");
    get(&srv, "/v1/kv/p?watch=30&version=1").assert_error(503, "too_many_watches");
    assert_eq!(get(&srv, "/v1/kv/p/k").status, 200);
}

#[test]
fn a_disconnected_watcher_frees_its_slot() {
    let (srv, _, read) = Server::with_p(json!({"max_watches": 1}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let mut a = start_get(&srv, "/v1/kv/p/k?watch=30&version=1", &read);
    sleep(PARK);
    assert_waiting(&mut a);
    get(&srv, "/v1/kv/p/k?watch=1&version=1").assert_error(503, "too_many_watches");
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut s = start_get(&srv, "/v1/kv/p/k?watch=1&version=1", &read);
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
    let (srv, _, read) = Server::with_p(json!({"persistence": "sync"}));
    put_ok(&srv, "/v1/kv/p/k", b"old");
    let mut w = start_get(&srv, "/v1/kv/p/k?watch=30&version=1", &read);
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
    let (mut srv, _, read) = Server::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let mut s = start_get(&srv, "/v1/kv/p/k?watch=30&version=1", &read);
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
    let (srv, _, read) = Server::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a/keep", b"v");
    put_ok(&srv, "/v1/kv/p/a/k?ttl=1", b"v");
    let mut s = start_get(&srv, "/v1/kv/p?prefix=a/&watch=30&version=2", &read);
    let r = read_within(&mut s, EXPIRY_LIMIT);
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({"keys": ["a/keep"], "next": null}));
    assert_eq!(r.header("x-project-version"), Some("3"));
}
