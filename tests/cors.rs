//! CORS (`cors_origins`): preflights, the grant on answers (errors, exports, woken watches),
//! what a disallowed origin gets, config checks at start; and `nosniff` with an explicit
//! Content-Type on every answer. In-process, but for the woken watch and the refused configs
//! (the real binary).

mod common;
use common::*;

use serde_json::json;
use std::io::Write;
use std::thread::sleep;
use std::time::Duration;

const ALLOW_HEADERS: &str = "Authorization, Content-Type, If-Match, If-None-Match, X-API-Key";

const EXPOSE_HEADERS: &str = "ETag, X-Expires-At, X-Project-Version, X-Next-After";

fn cors_server() -> InProc {
    let (srv, _, _) = InProc::with_p(json!({ "cors_origins": [ORIGIN, "http://localhost:8080"] }));
    srv
}

fn assert_no_cors_grant(r: &Resp) {
    for (k, v) in &r.headers {
        assert!(
            !k.starts_with("access-control-"),
            "unexpected {k}: {v} in {:?}",
            r.headers
        );
    }
}

#[test]
fn preflight_from_an_allowed_origin_gets_exactly_the_cors_grant() {
    let srv = cors_server();
    let r = srv.req_h(
        "OPTIONS",
        "/v1/kv/p/some/key",
        None,
        &[
            ("Origin", ORIGIN),
            ("Access-Control-Request-Method", "PUT"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("allow"),
        Some("GET, HEAD, PUT, POST, DELETE, OPTIONS")
    );
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, HEAD, PUT, POST, DELETE")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some(ALLOW_HEADERS)
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some(EXPOSE_HEADERS)
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    assert_eq!(r.header("content-type"), None);
    let granted: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("access-control-"))
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(granted.len(), 5, "{:?}", r.headers);
}

#[test]
fn preflight_lists_the_methods_of_the_route_asked_about() {
    let srv = cors_server();
    for (path, methods) in [
        ("/v1/projects/p/import", "POST"),
        ("/v1/projects/p/export", "GET, HEAD"),
        ("/v1/kv/p", "GET, HEAD, POST"),
        ("/v1/projects/p", "GET, HEAD, PATCH, DELETE"),
    ] {
        let r = srv.req_h(
            "OPTIONS",
            path,
            None,
            &[
                ("Origin", ORIGIN),
                ("Access-Control-Request-Method", "POST"),
            ],
            b"",
        );
        assert_eq!(r.status, 204, "{path}");
        assert_eq!(
            r.header("allow"),
            Some(format!("{methods}, OPTIONS").as_str()),
            "{path}"
        );
        assert_eq!(
            r.header("access-control-allow-methods"),
            Some(methods),
            "{path}"
        );
    }
}

#[test]
fn options_without_a_preflight_answers_allow_only() {
    let srv = cors_server();
    let r = srv.req("OPTIONS", "/v1/kv/p", None, b"");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
    assert_eq!(r.header("vary"), Some("Origin"));
    assert_no_cors_grant(&r);
}

#[test]
fn options_on_an_unknown_path_is_404() {
    let srv = cors_server();
    let r = srv.req_h(
        "OPTIONS",
        "/nope",
        None,
        &[("Origin", ORIGIN), ("Access-Control-Request-Method", "GET")],
        b"",
    );
    r.assert_error(404, "not_found");
}

#[test]
fn preflight_from_a_disallowed_origin_is_204_without_access_control_headers() {
    let srv = cors_server();
    let r = srv.req_h(
        "OPTIONS",
        "/v1/kv/p/k",
        None,
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "PUT"),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("allow"),
        Some("GET, HEAD, PUT, POST, DELETE, OPTIONS")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    assert_no_cors_grant(&r);
}

#[test]
fn simple_request_from_an_allowed_origin_gets_allow_origin_and_expose_headers() {
    let srv = cors_server();
    put_ok(&srv, "/v1/kv/p/k", b"v");
    for origin in [ORIGIN, "http://localhost:8080"] {
        let r = srv.req_h("GET", "/v1/kv/p/k", Some(ADMIN), &[("Origin", origin)], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        assert_eq!(
            r.header("access-control-expose-headers"),
            Some(EXPOSE_HEADERS)
        );
        assert_eq!(r.header("vary"), Some("Origin"));
        assert_eq!(r.header("access-control-allow-methods"), None);
    }
}

#[test]
fn error_answers_to_an_allowed_origin_carry_the_cors_headers() {
    let srv = cors_server();
    let r = srv.req_h("GET", "/v1/kv/p/k", None, &[("Origin", ORIGIN)], b"");
    r.assert_error(401, "unauthorized");
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some(EXPOSE_HEADERS)
    );
    assert_eq!(r.header("vary"), Some("Origin"));
}

#[test]
fn export_to_an_allowed_origin_carries_the_cors_headers() {
    let srv = cors_server();
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let r = srv.req_h(
        "GET",
        "/v1/projects/p/export",
        Some(ADMIN),
        &[("Origin", ORIGIN)],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some(EXPOSE_HEADERS)
    );
    assert_eq!(r.header("vary"), Some("Origin"));
}

#[test]
fn woken_watch_answer_to_an_allowed_origin_carries_the_cors_headers() {
    let (srv, _, _) = Server::with_p(json!({ "cors_origins": [ORIGIN, "http://localhost:8080"] }));
    let mut s = srv.connect();
    s.write_all(&request_bytes(
        "GET",
        "/v1/kv/p/k?watch=5",
        Some(ADMIN),
        &[("Origin", ORIGIN)],
        b"",
    ))
    .unwrap();
    sleep(Duration::from_millis(300));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let r = read_response(&mut s, false).expect("watch answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"v");
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some(EXPOSE_HEADERS)
    );
    assert_eq!(r.header("vary"), Some("Origin"));
}

#[test]
fn request_from_a_disallowed_origin_gets_vary_but_no_access_control_headers() {
    let srv = cors_server();
    put_ok(&srv, "/v1/kv/p/k", b"v");
    for origin in ["https://evil.example", "https://app.example:8443", "null"] {
        let r = srv.req_h("GET", "/v1/kv/p/k", Some(ADMIN), &[("Origin", origin)], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"v");
        assert_eq!(r.header("vary"), Some("Origin"));
        assert_no_cors_grant(&r);
    }
}

#[test]
fn request_without_an_origin_gets_vary_but_no_access_control_headers() {
    let srv = cors_server();
    let r = srv.req("GET", "/health", None, b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("vary"), Some("Origin"));
    assert_no_cors_grant(&r);
}

#[test]
fn star_allows_every_origin() {
    let (srv, _, _) = InProc::with_p(json!({ "cors_origins": ["*"] }));
    let r = srv.req_h(
        "OPTIONS",
        "/v1/kv/p/k",
        None,
        &[
            ("Origin", "https://anything.example"),
            ("Access-Control-Request-Method", "DELETE"),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://anything.example")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
}

#[test]
fn without_cors_origins_there_are_no_cors_headers_and_no_vary() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = srv.req_h(
        "OPTIONS",
        "/v1/kv/p/k",
        None,
        &[("Origin", ORIGIN), ("Access-Control-Request-Method", "PUT")],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("allow"),
        Some("GET, HEAD, PUT, POST, DELETE, OPTIONS")
    );
    assert_eq!(r.header("vary"), None);
    assert_no_cors_grant(&r);
    let r = srv.req_h("GET", "/health", None, &[("Origin", ORIGIN)], b"");
    assert_eq!(r.header("vary"), None);
    assert_no_cors_grant(&r);
}

#[test]
fn cors_origins_without_a_scheme_or_with_a_trailing_slash_stop_the_server() {
    for bad in [
        json!(["app.example"]),
        json!(["https://app.example/"]),
        json!(["ftp://app.example"]),
        json!([""]),
    ] {
        let mut cfg = common::config(json!({ "cors_origins": bad }));
        let log = Server::try_start(&mut cfg, std::sync::Arc::new(TempDir::new()), &[])
            .err()
            .unwrap_or_else(|| panic!("started with cors_origins {bad}"));
        assert!(log.contains("cors_origins"), "{bad}: {log}");
        assert_config_error(
            &serve_bad_config(json!({ "cors_origins": bad })),
            "cors_origins",
        );
    }
}

#[test]
fn cors_origin_with_a_path_stops_the_server_with_exit_2() {
    let bad = json!({ "cors_origins": ["https://app.example/app"] });
    let mut cfg = common::config(bad.clone());
    let started = Server::try_start(&mut cfg, std::sync::Arc::new(TempDir::new()), &[]);
    assert!(started.is_err(), "started with an origin that has a path");
    assert_config_error(&serve_bad_config(bad), "cors_origins");
}

#[test]
fn cors_origin_without_a_host_stops_the_server_with_exit_2() {
    assert_config_error(
        &serve_bad_config(json!({ "cors_origins": ["https://"] })),
        "cors_origins",
    );
}

#[test]
fn cors_origins_with_a_port_or_star_start() {
    for ok in [
        json!(["http://localhost:8080", "https://app.example"]),
        json!(["*"]),
    ] {
        let mut cfg = common::config(json!({ "cors_origins": ok }));
        Server::try_start(&mut cfg, std::sync::Arc::new(TempDir::new()), &[])
            .unwrap_or_else(|log| panic!("{ok}: {log}"));
    }
}

#[test]
fn every_answer_has_nosniff_and_every_body_an_explicit_content_type() {
    let srv = cors_server();
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let answers = vec![
        get_as(&srv, ADMIN, "/v1/kv/p/k"),
        get_as(&srv, ADMIN, "/v1/kv/p/missing"),
        get_as(&srv, ADMIN, "/metrics"),
        get_as(&srv, ADMIN, "/openapi.json"),
        srv.req("GET", "/health", None, b""),
        srv.req("GET", "/v1/kv/p", None, b""),
        srv.req("GET", "/nope", Some(ADMIN), b""),
        srv.req("OPTIONS", "/v1/kv/p", None, b""),
        srv.req("DELETE", "/v1/kv/p/k", Some(ADMIN), b""),
        export(&srv, "p", ADMIN),
    ];
    for r in answers {
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{r:?}");
        if r.status == 204 || r.status == 304 {
            assert_eq!(r.header("content-type"), None, "{r:?}");
        } else {
            assert!(r.header("content-type").is_some(), "{r:?}");
        }
    }
}

#[test]
fn value_stored_without_a_content_type_is_served_as_octet_stream() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/page", b"<html><script>alert(1)</script>");
    let r = get_as(&srv, ADMIN, "/v1/kv/p/page");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}
