//! `GET /health`: its exact answer, its methods, and that it needs no token. In-process.

mod common;
use common::*;

use serde_json::json;

#[test]
fn health_answers_exact_body_and_headers() {
    let srv = Server::start(json!({}));
    let r = srv.req("GET", "/health", None, b"");
    assert_health(&r);
    assert_eq!(r.header("content-length"), Some("34"));
}

#[test]
fn wrong_method_on_health_is_405_with_allow() {
    let srv = Server::start(json!({}));
    for method in ["DELETE", "POST"] {
        let r = srv.req(method, "/health", None, b"");
        r.assert_error(405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        assert_standard_headers(&r);
    }
}

#[test]
fn health_needs_no_token() {
    let srv = Server::start(json!({}));
    let r = srv.req("GET", "/health", None, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({"status":"ok","version":"0.1.0"}));
}
