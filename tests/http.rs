//! The HTTP connection layer, exercised over raw TCP against the real binary: keep-alive,
//! pipelining, HEAD, `Expect`, chunked bodies, every limit and timeout, request smuggling
//! defences, slow and hostile clients, connection limits and the request log line.

mod common;
use common::*;

use serde_json::json;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
/// The server's resident memory must stay under this whatever a client does.
const RSS_LIMIT_KIB: u64 = 64 * 1024;

/// Tests that load the machine (floods, hundreds of sockets) or measure latency run one at a
/// time, so that they neither disturb each other nor the timing tests.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

fn get_bytes(path: &str) -> Vec<u8> {
    request_bytes("GET", path, None, &[], b"")
}

fn send_bytes(s: &mut TcpStream, bytes: &[u8]) {
    s.write_all(bytes).expect("write request");
}

fn read(s: &mut TcpStream) -> Resp {
    read_response(s, false).unwrap_or_else(|e| panic!("no response: {e}"))
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Assert the peer closes the connection within `limit` without sending another byte.
fn assert_closed_without_data(s: &mut TcpStream, limit: Duration) {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "expected the connection to close, got {n} more bytes: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) if is_timeout(&e) => panic!("connection still open after {limit:?}"),
        Err(_) => {} // reset: closed as well
    }
}

fn assert_keeps_alive(r: &Resp) {
    assert_ne!(r.header("connection"), Some("close"), "{r:?}");
}

fn assert_says_close(r: &Resp) {
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
}

/// Resident set size of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("VmRSS line")
}

/// GET /health on a fresh connection answers 200 with the health body.
fn assert_alive(srv: &Server) {
    assert_health(&srv.req("GET", "/health", None, b""));
}

/// A server with one API project `p`; returns it with the project's write and read secrets.
fn server_with_project(extra: serde_json::Value) -> (Server, String, String) {
    let srv = Server::start(extra);
    let (w, r) = create_project(&srv, "p");
    (srv, w, r)
}

/// Assert key `p/k` does not exist (the rejected request was not executed).
fn assert_key_absent(srv: &Server, token: &str) {
    srv.req("GET", "/v1/kv/p/k", Some(token), b"")
        .assert_error(404, "key_not_found");
}

/// Send `bytes` on a fresh connection and expect an error response that closes the connection.
fn assert_rejected_and_closed(srv: &Server, bytes: &[u8], status: u16, code: &str) {
    let mut s = srv.connect();
    send_bytes(&mut s, bytes);
    let r = read(&mut s);
    r.assert_error(status, code);
    assert_standard_headers(&r);
    assert_says_close(&r);
    assert_closed_without_data(&mut s, Duration::from_secs(5));
}

// ---------------------------------------------------------------------------------------------
// Connection management

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let srv = Server::start(json!({}));
    let mut s = srv.connect();
    for _ in 0..3 {
        send_bytes(&mut s, &get_bytes("/health"));
        let r = read(&mut s);
        assert_health(&r);
        assert_keeps_alive(&r);
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let srv = Server::start(json!({}));
    let mut s = srv.connect();
    let mut all = get_bytes("/health");
    all.extend(get_bytes("/no-such-path"));
    all.extend(request_bytes("DELETE", "/health", None, &[], b""));
    all.extend(get_bytes("/health"));
    send_bytes(&mut s, &all);
    assert_health(&read(&mut s));
    read(&mut s).assert_error(404, "not_found");
    read(&mut s).assert_error(405, "method_not_allowed");
    let last = read(&mut s);
    assert_health(&last);
    assert_keeps_alive(&last);
}

#[test]
fn connection_close_request_is_answered_with_connection_close_then_closed() {
    let srv = Server::start(json!({}));
    let mut s = srv.connect();
    send_bytes(
        &mut s,
        &request_bytes("GET", "/health", None, &[("Connection", "close")], b""),
    );
    let r = read(&mut s);
    assert_health(&r);
    assert_says_close(&r);
    assert_closed_without_data(&mut s, Duration::from_secs(5));
}

#[test]
fn http10_request_is_answered_then_closed() {
    let srv = Server::start(json!({}));
    let mut s = srv.connect();
    send_bytes(&mut s, b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let r = read(&mut s);
    assert_health(&r);
    assert_says_close(&r);
    assert_closed_without_data(&mut s, Duration::from_secs(5));
}

#[test]
fn http10_with_connection_keep_alive_stays_open() {
    let srv = Server::start(json!({}));
    let mut s = srv.connect();
    let req = b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n";
    for _ in 0..2 {
        send_bytes(&mut s, req);
        let r = read(&mut s);
        assert_health(&r);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
}

#[test]
fn over_max_connections_a_new_connection_is_closed_at_once() {
    let _g = heavy();
    let srv = Server::start(json!({ "max_connections": 5 }));
    let mut held: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut s = srv.connect();
            send_bytes(&mut s, &get_bytes("/health"));
            assert_health(&read(&mut s));
            s
        })
        .collect();

    let mut sixth = srv.connect();
    assert_closed_without_data(&mut sixth, Duration::from_secs(3));
    for s in &mut held {
        send_bytes(s, &get_bytes("/health"));
        assert_health(&read(s));
    }

    drop(held.remove(0));
    // The server notices the close on its next turn of the loop; give it a bounded moment.
    let start = Instant::now();
    loop {
        let mut s = srv.connect();
        let answered = s
            .write_all(&get_bytes("/health"))
            .ok()
            .and_then(|_| read_response(&mut s, false).ok());
        if let Some(r) = answered {
            assert_health(&r);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "no connection accepted after one of the five closed"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Responses and routing

#[test]
fn every_response_has_date_nosniff_and_exact_content_length() {
    let srv = Server::start(json!({}));
    let requests: [(&[u8], u16); 4] = [
        (
            b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            200,
        ),
        (
            b"GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            404,
        ),
        (
            b"DELETE /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            405,
        ),
        (b"NOT A REQUEST\r\n\r\n", 400),
    ];
    for (req, status) in requests {
        let mut s = srv.connect();
        send_bytes(&mut s, req);
        let r = read(&mut s);
        assert_eq!(r.status, status, "{}", r.text());
        assert_standard_headers(&r);
        // Nothing beyond Content-Length bytes follows before the close.
        assert_closed_without_data(&mut s, Duration::from_secs(5));
    }
}

#[test]
fn no_content_response_has_no_body_headers_and_the_connection_continues() {
    let (srv, w, _) = server_with_project(json!({}));
    assert_eq!(srv.req("PUT", "/v1/kv/p/k", Some(&w), b"x").status, 201);
    let mut s = srv.connect();
    let mut all = request_bytes("DELETE", "/v1/kv/p/k", Some(&w), &[], b"");
    all.extend(get_bytes("/health"));
    send_bytes(&mut s, &all);
    let r = read(&mut s);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("content-type"), None);
    assert_eq!(r.header("content-length"), None);
    assert_standard_headers(&r);
    assert_health(&read(&mut s));
}

#[test]
fn head_health_has_the_get_headers_and_no_body() {
    let srv = Server::start(json!({}));
    let mut s = srv.connect();
    let mut both = request_bytes("HEAD", "/health", None, &[], b"");
    both.extend(get_bytes("/health"));
    send_bytes(&mut s, &both);
    let head = read_response(&mut s, true).expect("HEAD response");
    // If HEAD carried a body, its bytes would be read here as the next status line.
    let get = read(&mut s);
    assert_health(&get);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("34"));
    let without_date = |r: &Resp| {
        let mut h: Vec<_> = r
            .headers
            .iter()
            .filter(|(k, _)| k != "date")
            .cloned()
            .collect();
        h.sort();
        h
    };
    assert_eq!(without_date(&head), without_date(&get));
    assert!(head.header("date").is_some_and(is_http_date));
}

#[test]
fn unknown_path_is_404_not_found() {
    let srv = Server::start(json!({}));
    let r = srv.req("GET", "/no/such/path", None, b"");
    r.assert_error(404, "not_found");
    assert_standard_headers(&r);
}

#[test]
fn malformed_request_line_is_400_and_closes() {
    let srv = Server::start(json!({}));
    assert_rejected_and_closed(&srv, b"GARBAGE\r\n\r\n", 400, "bad_request");
}

// ---------------------------------------------------------------------------------------------
// Expect

#[test]
fn expect_100_continue_gets_interim_response_before_the_body() {
    let (srv, w, _) = server_with_project(json!({}));
    let mut s = srv.connect();
    let head = request_bytes(
        "PUT",
        "/v1/kv/p/k",
        Some(&w),
        &[("Expect", "100-continue"), ("Content-Length", "5")],
        b"",
    );
    send_bytes(&mut s, &head);
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim)
        .expect("interim response before the body is sent");
    assert_eq!(
        String::from_utf8_lossy(&interim),
        "HTTP/1.1 100 Continue\r\n\r\n"
    );
    send_bytes(&mut s, b"hello");
    let r = read(&mut s);
    assert_eq!(r.status, 201, "{}", r.text());
    let j = r.json();
    assert_eq!(j["project"], "p");
    assert_eq!(j["key"], "k");
    assert_eq!(
        r.header("etag"),
        Some(format!("\"{}\"", j["version"]).as_str())
    );
    let got = srv.req("GET", "/v1/kv/p/k", Some(&w), b"");
    assert_eq!(got.body, b"hello");
}

#[test]
fn unknown_expectation_is_417_and_the_request_is_not_executed() {
    let (srv, w, _) = server_with_project(json!({}));
    let r = srv.req_h(
        "PUT",
        "/v1/kv/p/k",
        Some(&w),
        &[("Expect", "something-else")],
        b"hello",
    );
    r.assert_error(417, "expectation_failed");
    assert_standard_headers(&r);
    assert_key_absent(&srv, &w);
}

// ---------------------------------------------------------------------------------------------
// Chunked bodies

fn chunked_put(token: &str, body: &[u8]) -> Vec<u8> {
    request_bytes(
        "PUT",
        "/v1/kv/p/k",
        Some(token),
        &[("Transfer-Encoding", "chunked")],
        body,
    )
}

#[test]
fn chunked_body_is_stored_as_the_concatenation_of_its_chunks() {
    let (srv, w, _) = server_with_project(json!({}));
    let mut s = srv.connect();
    send_bytes(
        &mut s,
        &chunked_put(&w, b"5\r\nhello\r\n1\r\n \r\na\r\n0123456789\r\n0\r\n\r\n"),
    );
    let r = read(&mut s);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_keeps_alive(&r);
    // The connection stays usable after the terminating chunk.
    send_bytes(
        &mut s,
        &request_bytes("GET", "/v1/kv/p/k", Some(&w), &[], b""),
    );
    let got = read(&mut s);
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"hello 0123456789");
}

#[test]
fn bad_chunk_size_is_400_and_closes() {
    let (srv, w, _) = server_with_project(json!({}));
    assert_rejected_and_closed(
        &srv,
        &chunked_put(&w, b"zz\r\nhello\r\n0\r\n\r\n"),
        400,
        "bad_request",
    );
    assert_key_absent(&srv, &w);
}

#[test]
fn chunked_body_growing_past_max_value_bytes_is_413_and_closes() {
    let (srv, w, _) = server_with_project(json!({ "limits": { "max_value_bytes": 1024 } }));
    let mut body = Vec::new();
    for _ in 0..3 {
        body.extend_from_slice(b"200\r\n");
        body.extend(std::iter::repeat_n(b'x', 512));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    assert_rejected_and_closed(&srv, &chunked_put(&w, &body), 413, "payload_too_large");
    assert_key_absent(&srv, &w);
}

// ---------------------------------------------------------------------------------------------
// Limits

#[test]
fn head_larger_than_max_head_bytes_is_431_and_closes() {
    let srv = Server::start(json!({}));
    let mut req = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 17_000));
    req.extend_from_slice(b"\r\n\r\n");
    assert_rejected_and_closed(&srv, &req, 431, "header_too_large");
    assert_alive(&srv);
}

/// `count` headers in all, Host included.
fn request_with_headers(count: usize) -> Vec<u8> {
    let mut req = String::from("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for i in 1..count {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

#[test]
fn more_than_max_headers_is_431_and_closes() {
    let srv = Server::start(json!({}));
    assert_rejected_and_closed(&srv, &request_with_headers(101), 431, "header_too_large");
}

#[test]
fn exactly_max_headers_is_accepted() {
    let srv = Server::start(json!({}));
    let mut s = srv.connect();
    send_bytes(&mut s, &request_with_headers(100));
    assert_health(&read(&mut s));
}

#[test]
fn url_longer_than_max_url_bytes_is_414_and_closes() {
    let srv = Server::start(json!({}));
    let target = format!("/health?{}", "a".repeat(8200));
    assert_rejected_and_closed(&srv, &get_bytes(&target), 414, "uri_too_long");
}

#[test]
fn url_of_exactly_max_url_bytes_is_routed() {
    let srv = Server::start(json!({}));
    let target = format!("/{}", "a".repeat(8191));
    assert_eq!(target.len(), 8192);
    srv.req("GET", &target, None, b"")
        .assert_error(404, "not_found");
}

#[test]
fn content_length_over_max_value_bytes_is_413_before_any_body_is_sent() {
    let (srv, w, _) = server_with_project(json!({ "limits": { "max_value_bytes": 1024 } }));
    let start = Instant::now();
    let head = request_bytes(
        "PUT",
        "/v1/kv/p/k",
        Some(&w),
        &[("Content-Length", "1025")],
        b"",
    );
    assert_rejected_and_closed(&srv, &head, 413, "payload_too_large");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "413 not sent at once"
    );
    assert_key_absent(&srv, &w);
}

#[test]
fn content_length_equal_to_max_value_bytes_is_accepted() {
    let (srv, w, _) = server_with_project(json!({ "limits": { "max_value_bytes": 1024 } }));
    let r = srv.req("PUT", "/v1/kv/p/k", Some(&w), &[b'x'; 1024]);
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn huge_content_length_is_413_and_the_server_survives() {
    let (srv, w, _) = server_with_project(json!({}));
    let head = request_bytes(
        "PUT",
        "/v1/kv/p/k",
        Some(&w),
        &[("Content-Length", "1000000000000")],
        b"",
    );
    assert_rejected_and_closed(&srv, &head, 413, "payload_too_large");
    assert_alive(&srv);
}

// ---------------------------------------------------------------------------------------------
// Request smuggling

#[test]
fn content_length_with_transfer_encoding_is_400_and_closes() {
    let (srv, w, _) = server_with_project(json!({}));
    let body = b"5\r\nhello\r\n0\r\n\r\n";
    let req = request_bytes(
        "PUT",
        "/v1/kv/p/k",
        Some(&w),
        &[
            ("Content-Length", &body.len().to_string()),
            ("Transfer-Encoding", "chunked"),
        ],
        body,
    );
    assert_rejected_and_closed(&srv, &req, 400, "bad_request");
    assert_key_absent(&srv, &w);
}

#[test]
fn two_different_content_lengths_are_400() {
    let (srv, w, _) = server_with_project(json!({}));
    let r = srv.req_h(
        "PUT",
        "/v1/kv/p/k",
        Some(&w),
        &[("Content-Length", "5"), ("Content-Length", "6")],
        b"hello!",
    );
    r.assert_error(400, "bad_request");
    assert_key_absent(&srv, &w);
}

#[test]
fn non_numeric_content_length_is_400() {
    let (srv, w, _) = server_with_project(json!({}));
    let r = srv.req_h(
        "PUT",
        "/v1/kv/p/k",
        Some(&w),
        &[("Content-Length", "5x")],
        b"hello",
    );
    r.assert_error(400, "bad_request");
    assert_key_absent(&srv, &w);
}

#[test]
fn transfer_encoding_other_than_chunked_is_501_and_closes() {
    let (srv, w, _) = server_with_project(json!({}));
    let req = request_bytes(
        "PUT",
        "/v1/kv/p/k",
        Some(&w),
        &[("Transfer-Encoding", "gzip")],
        b"",
    );
    assert_rejected_and_closed(&srv, &req, 501, "not_implemented");
    assert_key_absent(&srv, &w);
}

// ---------------------------------------------------------------------------------------------
// Timeouts

#[test]
fn partial_head_times_out_with_408_and_closes() {
    let srv = Server::start(json!({ "limits": { "head_timeout_ms": 500 } }));
    let mut s = srv.connect();
    let start = Instant::now();
    send_bytes(&mut s, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    let r = read(&mut s);
    let waited = start.elapsed();
    r.assert_error(408, "request_timeout");
    assert_says_close(&r);
    assert!(waited >= Duration::from_millis(400), "408 after {waited:?}");
    assert!(waited < Duration::from_secs(5), "408 after {waited:?}");
    assert_closed_without_data(&mut s, Duration::from_secs(5));
}

#[test]
fn head_trickling_in_byte_by_byte_still_times_out() {
    let srv = Server::start(json!({ "limits": { "head_timeout_ms": 1000 } }));
    let mut s = srv.connect();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let line = b"GET /health HTTP/1.1\r\nX-Slow: ";
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(6) {
        let _ = s.write(&[*line.get(i).unwrap_or(&b'a')]);
        i += 1;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(900), "cut after {waited:?}");
    assert!(waited < Duration::from_secs(4), "not cut after {waited:?}");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    got.extend(rest);
    let r = read_response(&mut got.as_slice(), false)
        .unwrap_or_else(|e| panic!("no 408 ({e}): {:?}", String::from_utf8_lossy(&got)));
    r.assert_error(408, "request_timeout");
}

#[test]
fn idle_keep_alive_connection_is_closed_silently() {
    let srv = Server::start(json!({ "limits": { "idle_timeout_ms": 500 } }));
    let mut s = srv.connect();
    send_bytes(&mut s, &get_bytes("/health"));
    assert_health(&read(&mut s));
    let start = Instant::now();
    assert_closed_without_data(&mut s, Duration::from_secs(5));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "closed after {waited:?}"
    );
}

#[test]
fn stalled_body_times_out_with_408_and_closes() {
    let (srv, w, _) = server_with_project(json!({ "limits": { "body_timeout_ms": 500 } }));
    let mut s = srv.connect();
    let head = request_bytes(
        "PUT",
        "/v1/kv/p/k",
        Some(&w),
        &[("Content-Length", "10")],
        b"abc",
    );
    let start = Instant::now();
    send_bytes(&mut s, &head);
    let r = read(&mut s);
    let waited = start.elapsed();
    r.assert_error(408, "request_timeout");
    assert_says_close(&r);
    assert!(waited >= Duration::from_millis(400), "408 after {waited:?}");
    assert!(waited < Duration::from_secs(5), "408 after {waited:?}");
    assert_closed_without_data(&mut s, Duration::from_secs(5));
    assert_key_absent(&srv, &w);
}

// ---------------------------------------------------------------------------------------------
// Hostile clients

#[test]
fn endless_header_line_is_cut_off_with_bounded_memory() {
    let _g = heavy();
    let srv = Server::start(json!({}));
    let pid = srv.pid();
    let s = srv.connect();
    let sent = Arc::new(AtomicU64::new(0));
    // Bytes sent when the server was first seen to react (response bytes, EOF or a failed write).
    let cut_at = Arc::new(AtomicU64::new(u64::MAX));
    let stop = Arc::new(AtomicBool::new(false));

    let mut w = s.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let writer = {
        let (sent, cut_at, stop) = (sent.clone(), cut_at.clone(), stop.clone());
        thread::spawn(move || {
            let start = Instant::now();
            let chunk = vec![b'a'; 64 * 1024];
            let _ = w.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ");
            while !stop.load(Ordering::SeqCst)
                && sent.load(Ordering::SeqCst) < 1024 * MIB
                && start.elapsed() < Duration::from_secs(30)
            {
                match w.write(&chunk) {
                    Ok(n) => {
                        sent.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => {
                        let _ = cut_at.compare_exchange(
                            u64::MAX,
                            sent.load(Ordering::SeqCst),
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        );
                        return;
                    }
                }
            }
        })
    };

    let mut r = s;
    r.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let reader = {
        let (sent, cut_at, stop) = (sent.clone(), cut_at.clone(), stop.clone());
        thread::spawn(move || {
            let start = Instant::now();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let mut closed = false;
            while start.elapsed() < Duration::from_secs(40) {
                match r.read(&mut buf) {
                    Ok(0) => closed = true,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => closed = true,
                }
                if closed || !got.is_empty() {
                    let _ = cut_at.compare_exchange(
                        u64::MAX,
                        sent.load(Ordering::SeqCst),
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                    stop.store(true, Ordering::SeqCst);
                }
                if closed {
                    break;
                }
            }
            (got, closed)
        })
    };

    let mut max_rss = 0;
    while !writer.is_finished() {
        max_rss = max_rss.max(rss_kib(pid));
        thread::sleep(Duration::from_millis(20));
    }
    writer.join().unwrap();
    max_rss = max_rss.max(rss_kib(pid));
    let (got, closed) = reader.join().unwrap();

    let cut = cut_at.load(Ordering::SeqCst);
    assert!(
        cut < 64 * MIB,
        "server had not reacted after {} MiB",
        sent.load(Ordering::SeqCst) / MIB
    );
    assert!(closed, "connection never closed");
    if !got.is_empty() {
        let resp = read_response(&mut got.as_slice(), false)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&got)));
        resp.assert_error(431, "header_too_large");
    }
    assert!(max_rss < RSS_LIMIT_KIB, "server RSS reached {max_rss} KiB");
    assert_alive(&srv);
}

#[test]
fn health_answers_quickly_under_idle_connections_and_slowloris() {
    let _g = heavy();
    let srv = Server::start(json!({}));
    let idle: Vec<TcpStream> = (0..500).map(|_| srv.connect()).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let slowloris = {
        let (addr, stop) = (srv.addr.clone(), stop.clone());
        thread::spawn(move || {
            let mut conns: Vec<TcpStream> = (0..50)
                .filter_map(|_| TcpStream::connect(&addr).ok())
                .collect();
            for c in &conns {
                c.set_write_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                c.set_nodelay(true).unwrap();
            }
            let line = b"GET /health HTTP/1.1\r\nX-Slow: ";
            let start = Instant::now();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(30) {
                let byte = *line.get(i).unwrap_or(&b'a');
                for c in &mut conns {
                    let _ = c.write(&[byte]);
                }
                i += 1;
                thread::sleep(Duration::from_millis(200));
            }
            conns.len()
        })
    };
    thread::sleep(Duration::from_millis(500));

    let mut latencies = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let r = srv.req("GET", "/health", None, b"");
        latencies.push(start.elapsed());
        assert_health(&r);
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    let opened = slowloris.join().unwrap();
    assert_eq!(opened, 50, "slowloris could not open its connections");
    drop(idle);

    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let worst = *latencies.last().unwrap();
    assert!(median < Duration::from_millis(100), "median {median:?}");
    assert!(worst < Duration::from_secs(2), "worst {worst:?}");
}

#[test]
fn client_that_never_reads_does_not_grow_server_memory() {
    let _g = heavy();
    let (srv, w, r) = server_with_project(json!({}));
    let pid = srv.pid();
    let value = vec![b'v'; 64 * 1024];
    assert_eq!(srv.req("PUT", "/v1/kv/p/big", Some(&w), &value).status, 201);

    let all = request_bytes("GET", "/v1/kv/p/big", Some(&r), &[], b"").repeat(4000);
    let mut s = srv.connect();
    s.set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let mut pos = 0;
    let mut max_rss = 0;
    // Write as much as the server takes for a few seconds; never read.
    while start.elapsed() < Duration::from_secs(4) {
        if pos < all.len() {
            match s.write(&all[pos..]) {
                Ok(n) => pos += n,
                Err(e) if is_timeout(&e) => {}
                Err(e) => panic!("server dropped the connection: {e}"),
            }
        } else {
            thread::sleep(Duration::from_millis(50));
        }
        max_rss = max_rss.max(rss_kib(pid));
        assert!(max_rss < RSS_LIMIT_KIB, "server RSS reached {max_rss} KiB");
    }

    let t = Instant::now();
    assert_alive(&srv);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "health took {:?}",
        t.elapsed()
    );
    max_rss = max_rss.max(rss_kib(pid));
    assert!(max_rss < RSS_LIMIT_KIB, "server RSS reached {max_rss} KiB");

    // Held back, not lost: the first answers arrive intact and in order once the client reads.
    for _ in 0..3 {
        let got = read(&mut s);
        assert_eq!(got.status, 200);
        assert_eq!(got.body, value);
    }
}

// ---------------------------------------------------------------------------------------------
// Request log

/// The first request line in the log whose method field is `method`.
fn wait_for_log_line(srv: &Server, method: &str) -> String {
    let start = Instant::now();
    loop {
        let log = srv.log();
        let found = log
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(method))
            .map(str::to_string);
        if let Some(l) = found {
            return l;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "no {method} request line in:\n{log}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Splits `<time> <METHOD> <path> <status> <n>B <n>us`, checking the time and the numbers.
fn request_line_fields(line: &str) -> Vec<&str> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.len(), 6, "{line:?}");
    let time = fields[0].as_bytes();
    assert!(
        time.len() >= 20
            && time[4] == b'-'
            && time[7] == b'-'
            && time[10] == b'T'
            && time[13] == b':'
            && time[16] == b':'
            && fields[0].ends_with('Z'),
        "not an RFC 3339 UTC time: {line:?}"
    );
    let number_with = |f: &str, unit: &str| {
        f.strip_suffix(unit)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    assert!(number_with(fields[4], "B"), "{line:?}");
    assert!(number_with(fields[5], "us"), "{line:?}");
    fields
}

#[test]
fn request_is_logged_with_method_path_status_bytes_and_micros() {
    let srv = Server::start(json!({}));
    assert_health(&srv.req("GET", "/health", None, b""));
    let line = wait_for_log_line(&srv, "GET");
    let fields = request_line_fields(&line);
    assert_eq!(&fields[1..4], ["GET", "/health", "200"], "{line:?}");
}

#[test]
fn request_log_line_omits_the_query_string() {
    let (srv, _, r) = server_with_project(json!({}));
    let resp = srv.req("GET", "/v1/kv/p?prefix=probe", Some(&r), b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let line = wait_for_log_line(&srv, "GET");
    let fields = request_line_fields(&line);
    assert_eq!(&fields[1..4], ["GET", "/v1/kv/p", "200"], "{line:?}");
    assert!(!srv.log().contains("probe"), "query string logged");
}
