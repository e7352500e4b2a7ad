//! The in-process harness (`common/inproc.rs`) answers as the real binary does: the same request
//! bytes give the same status, reason, headers (but `Date`) and body in-process and over TCP; its
//! clock moves only when a test says so; and it refuses what needs the event loop instead of
//! answering something else.

mod common;
use common::*;

use serde_json::json;

/// Headers without `Date` (the two servers' clocks differ by the time between the requests).
fn without_date(r: &Resp) -> Vec<(String, String)> {
    r.headers
        .iter()
        .filter(|(k, _)| k != "date")
        .cloned()
        .collect()
}

/// An expiry time in a header or a body, `T` instead of its digits: the two servers' clocks may
/// be a second apart when a TTL is set (`same_expiry` checks they are no further apart).
fn expiry_blanked(text: &str) -> (String, Vec<u64>) {
    let mut out = String::new();
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("\"expires_at\":") {
        let (head, tail) = rest.split_at(i + "\"expires_at\":".len());
        out.push_str(head);
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            found.push(tail[..digits].parse().unwrap());
            out.push('T');
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    (out, found)
}

fn same_expiry(a: &[u64], b: &[u64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!(x.abs_diff(*y) <= 1, "{what}: expiries {x} and {y}");
    }
}

/// The same requests, with the same secrets, to both; each answer must match byte for byte
/// (but `Date`, and an expiry time a second apart).
#[test]
fn the_same_requests_get_the_same_answers_in_process_and_over_tcp() {
    let extra = json!({
        "persistence": "sync",
        "cors_origins": [ORIGIN],
        "limits": {"max_value_bytes": 64},
        "projects": {"cfg": {"tokens": [{"label": "ci", "access": "write", "secret": CFG_WRITE}]}}
    });
    let app = InProc::start(extra.clone());
    let srv = Server::start(extra);
    let cfg = Some(CFG_WRITE);
    let origin = [("Origin", ORIGIN)];
    let requests: Vec<Vec<u8>> = vec![
        request_bytes("GET", "/health", None, &[], b""),
        request_bytes("HEAD", "/health", None, &[], b""),
        request_bytes("GET", "/nope", None, &[], b""),
        request_bytes("DELETE", "/health", None, &[], b""),
        request_bytes(
            "PUT",
            "/v1/kv/cfg/a",
            cfg,
            &[("Content-Type", "text/plain")],
            b"one",
        ),
        request_bytes("PUT", "/v1/kv/cfg/b?ttl=100000", cfg, &[], &[0, 1, 255]),
        request_bytes("PUT", "/v1/kv/cfg/c", cfg, &[], &[b'x'; 65]),
        request_bytes("GET", "/v1/kv/cfg/a", cfg, &origin, b""),
        request_bytes("HEAD", "/v1/kv/cfg/a", cfg, &[], b""),
        request_bytes(
            "GET",
            "/v1/kv/cfg/a",
            cfg,
            &[("If-None-Match", "\"1\"")],
            b"",
        ),
        request_bytes("PUT", "/v1/kv/cfg/a", cfg, &[("If-Match", "\"7\"")], b"two"),
        request_bytes("POST", "/v1/kv/cfg/n?incr=5", cfg, &[], b""),
        request_bytes("GET", "/v1/kv/cfg?values=true", cfg, &[], b""),
        request_bytes(
            "GET",
            "/v1/kv/cfg?format=text",
            cfg,
            &[("Connection", "close")],
            b"",
        ),
        request_bytes(
            "OPTIONS",
            "/v1/kv/cfg/a",
            None,
            &[("Origin", ORIGIN), ("Access-Control-Request-Method", "PUT")],
            b"",
        ),
        request_bytes("GET", "/v1/projects/cfg/export", cfg, &origin, b""),
        request_bytes(
            "GET",
            "/v1/kv/cfg/a",
            Some("pykv_00000000000000000000000000000000"),
            &[],
            b"",
        ),
        request_bytes("GET", "/v1/projects/cfg", Some(ADMIN), &[], b""),
        request_bytes("DELETE", "/v1/kv/cfg/a", cfg, &[], b""),
        request_bytes("GET", "/v1/kv/cfg/a", cfg, &[], b""),
        b"GET /health HTTP/1.0\r\n\r\n".to_vec(),
        b"PUT /v1/kv/cfg/z HTTP/1.1\r\nContent-Length: abc\r\n\r\n".to_vec(),
        b"PUT /v1/kv/cfg/z HTTP/1.1\r\nContent-Length: 100\r\n\r\n".to_vec(),
        b"GET /health HTTP/1.1\r\nExpect: something\r\n\r\n".to_vec(),
    ];
    for bytes in requests {
        let what = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
        let head_only = bytes.starts_with(b"HEAD ");
        let inproc = app.send(&bytes, head_only);
        let tcp = srv.send(&bytes, head_only);
        assert_eq!(inproc.status, tcp.status, "{what}: {}", tcp.text());
        assert_eq!(inproc.reason, tcp.reason, "{what}");
        let headers = |r: &Resp| {
            let mut h = without_date(r);
            let mut at = Vec::new();
            for (k, v) in h.iter_mut() {
                if k == "x-expires-at" {
                    at.push(v.parse::<u64>().unwrap());
                    *v = "T".into();
                }
            }
            (h, at)
        };
        let ((h1, at1), (h2, at2)) = (headers(&inproc), headers(&tcp));
        assert_eq!(h1, h2, "{what}");
        same_expiry(&at1, &at2, &what);
        match (
            std::str::from_utf8(&inproc.body),
            std::str::from_utf8(&tcp.body),
        ) {
            (Ok(t1), Ok(t2)) => {
                let ((b1, at1), (b2, at2)) = (expiry_blanked(t1), expiry_blanked(t2));
                assert_eq!(b1, b2, "{what}");
                same_expiry(&at1, &at2, &what);
            }
            _ => assert_eq!(inproc.body, tcp.body, "{what}"),
        }
    }
}

#[test]
fn the_date_header_is_the_harness_clock() {
    let app = InProc::start(json!({}));
    let r = app.req("GET", "/health", None, b"");
    let date = r.header("date").expect("Date");
    assert!(is_http_date(date), "{date}");
    assert_eq!(date, pykv::log::http_date(app.now()));
    app.pass(86_400);
    let later = app.req("GET", "/health", None, b"");
    assert_eq!(
        later.header("date"),
        Some(pykv::log::http_date(app.now()).as_str())
    );
    assert_ne!(later.header("date"), Some(date));
}

#[test]
fn moving_the_clock_expires_a_key_without_sleeping() {
    let (app, _, _) = InProc::with_p(json!({}));
    let r = put(&app, "/v1/kv/p/k?ttl=10", b"v");
    assert_eq!(r.status, 201, "{}", r.text());
    app.pass(9);
    assert_eq!(get(&app, "/v1/kv/p/k").status, 200);
    app.pass(1);
    get(&app, "/v1/kv/p/k").assert_error(404, "key_not_found");
    assert_eq!(
        project_version(&app),
        2,
        "the expiry is a change of its own"
    );
}

#[test]
fn a_change_is_final_at_once_in_process() {
    let (app, write, read) = InProc::with_p(json!({}));
    assert_eq!(put_as(&app, &write, "/v1/kv/p/k", b"v").status, 201);
    assert_value(
        &get_as(&app, &read, "/v1/kv/p/k"),
        b"v",
        "application/octet-stream",
        1,
    );
    assert_eq!(project(&app, "p")["persistence"], "memory");
}

#[test]
fn nothing_follows_an_answer_to_head_or_a_refused_request() {
    let (app, _, _) = InProc::with_p(json!({}));
    put_ok(&app, "/v1/kv/p/k", b"value");
    let (r, rest) = app.req_close("HEAD", "/v1/kv/p/k", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.header("content-length"), Some("5"));
    assert!(rest.is_empty(), "{rest:?}");
    let (r, rest) = app.send_then_close(b"GARBAGE\r\n\r\n", false);
    r.assert_error(400, "bad_request");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn in_process_requests_are_counted_in_the_metrics() {
    let app = InProc::start(json!({}));
    let before = requests(&metrics(&app), "health", 200);
    for _ in 0..3 {
        assert_eq!(app.req("GET", "/health", None, b"").status, 200);
    }
    assert_eq!(requests(&metrics(&app), "health", 200), before + 3.0);
}

#[test]
#[should_panic(expected = "watches need the real event loop")]
fn a_watch_that_would_park_is_refused_in_process() {
    let (app, _, read) = InProc::with_p(json!({}));
    put_ok(&app, "/v1/kv/p/k", b"v");
    get_as(&app, &read, "/v1/kv/p/k?watch=5");
}

#[test]
#[should_panic(expected = "that needs the real server")]
fn a_memory_project_switched_to_sync_is_refused_in_process() {
    let (app, _, _) = InProc::with_p(json!({}));
    patch(&app, "p", json!({"persistence": "sync"}));
}
