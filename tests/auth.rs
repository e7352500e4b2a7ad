//! Who may do what: the token matrix (every route against every kind of credential), Basic
//! auth and `X-API-Key`, the 401 challenges, and secrets never leaking into responses or the
//! log. In-process, but for curl and the log (the real binary).

mod common;
use common::*;

use serde_json::{json, Value};
use std::time::Duration;

/// Every route the matrix covers. `DeleteProject` must stay last: for the admin it deletes the
/// fixture project.
#[derive(Clone, Copy, Debug)]
enum Route {
    PutKey,
    GetKey,
    HeadKey,
    DeleteKey,
    ListKeys,
    GhostPutKey,
    GhostGetKey,
    GhostHeadKey,
    GhostDeleteKey,
    GhostListKeys,
    ListProjects,
    CreateProject,
    GetProject,
    PatchProject,
    ListTokens,
    CreateToken,
    DeleteToken,
    DeleteProject,
}
use Route::*;

#[derive(Clone, Copy, Debug)]
enum Want {
    /// This success status.
    Status(u16),
    /// A JSON error with this status and code.
    Error(u16, &'static str),
}

const OK: Want = Want::Status(200);
const CREATED: Want = Want::Status(201);
const NO_CONTENT: Want = Want::Status(204);
const FORBIDDEN: Want = Want::Error(403, "forbidden");
const NO_PROJECT: Want = Want::Error(404, "project_not_found");
const UNAUTHORIZED: Want = Want::Error(401, "unauthorized");

/// Expected result per route for each valid token: the admin, project `p`'s write and read
/// tokens, and project `q`'s write token (always used on `p` or on the nonexistent `ghost`).
#[rustfmt::skip]
const MATRIX: &[(Route, [Want; 4])] = &[
    //                admin        p write      p read       q write
    (PutKey,         [OK,         OK,          FORBIDDEN,   FORBIDDEN]),
    (GetKey,         [OK,         OK,          OK,          FORBIDDEN]),
    (HeadKey,        [OK,         OK,          OK,          FORBIDDEN]),
    (DeleteKey,      [NO_CONTENT, NO_CONTENT,  FORBIDDEN,   FORBIDDEN]),
    (ListKeys,       [OK,         OK,          OK,          FORBIDDEN]),
    (GhostPutKey,    [NO_PROJECT, FORBIDDEN,   FORBIDDEN,   FORBIDDEN]),
    (GhostGetKey,    [NO_PROJECT, FORBIDDEN,   FORBIDDEN,   FORBIDDEN]),
    (GhostHeadKey,   [NO_PROJECT, FORBIDDEN,   FORBIDDEN,   FORBIDDEN]),
    (GhostDeleteKey, [NO_PROJECT, FORBIDDEN,   FORBIDDEN,   FORBIDDEN]),
    (GhostListKeys,  [NO_PROJECT, FORBIDDEN,   FORBIDDEN,   FORBIDDEN]),
    (ListProjects,   [OK,         FORBIDDEN,   FORBIDDEN,   FORBIDDEN]),
    (CreateProject,  [CREATED,    FORBIDDEN,   FORBIDDEN,   FORBIDDEN]),
    (GetProject,     [OK,         FORBIDDEN,   FORBIDDEN,   FORBIDDEN]),
    (PatchProject,   [OK,         FORBIDDEN,   FORBIDDEN,   FORBIDDEN]),
    (ListTokens,     [OK,         FORBIDDEN,   FORBIDDEN,   FORBIDDEN]),
    (CreateToken,    [CREATED,    FORBIDDEN,   FORBIDDEN,   FORBIDDEN]),
    (DeleteToken,    [NO_CONTENT, FORBIDDEN,   FORBIDDEN,   FORBIDDEN]),
    (DeleteProject,  [NO_CONTENT, FORBIDDEN,   FORBIDDEN,   FORBIDDEN]),
];

const ADMIN_COLUMN: usize = 0;
const WRITE_COLUMN: usize = 1;
const READ_COLUMN: usize = 2;
const OTHER_COLUMN: usize = 3;

/// How a request authenticates.
enum Cred {
    Bearer(String),
    /// A raw `Authorization` header value.
    Header(String),
    Missing,
}

/// A server with API projects `p` and `q`.
struct Fixture {
    srv: InProc,
    p_write: String,
    p_read: String,
    q_write: String,
}

fn fixture() -> Fixture {
    let srv = InProc::start(json!({"persistence": "sync"}));
    let (p_write, p_read) = create_project(&srv, "p");
    let (q_write, _) = create_project(&srv, "q");
    Fixture {
        srv,
        p_write,
        p_read,
        q_write,
    }
}

/// Put the state in place (as the admin) under which `route` would succeed, and return the
/// request: (method, path, body).
fn prepare(srv: &impl Api, route: Route, n: usize) -> (&'static str, String, Vec<u8>) {
    let seed_key = || {
        let r = srv.req("PUT", "/v1/kv/p/k", Some(ADMIN), b"seed");
        assert!(
            r.status == 200 || r.status == 201,
            "seeding p/k: {} {}",
            r.status,
            r.text()
        );
    };
    let none = Vec::new();
    match route {
        PutKey => {
            seed_key();
            ("PUT", "/v1/kv/p/k".into(), b"value".to_vec())
        }
        GetKey => {
            seed_key();
            ("GET", "/v1/kv/p/k".into(), none)
        }
        HeadKey => {
            seed_key();
            ("HEAD", "/v1/kv/p/k".into(), none)
        }
        DeleteKey => {
            seed_key();
            ("DELETE", "/v1/kv/p/k".into(), none)
        }
        ListKeys => ("GET", "/v1/kv/p".into(), none),
        GhostPutKey => ("PUT", "/v1/kv/ghost/k".into(), b"value".to_vec()),
        GhostGetKey => ("GET", "/v1/kv/ghost/k".into(), none),
        GhostHeadKey => ("HEAD", "/v1/kv/ghost/k".into(), none),
        GhostDeleteKey => ("DELETE", "/v1/kv/ghost/k".into(), none),
        GhostListKeys => ("GET", "/v1/kv/ghost".into(), none),
        ListProjects => ("GET", "/v1/projects".into(), none),
        CreateProject => (
            "POST",
            "/v1/projects".into(),
            json!({ "name": format!("new{n}") })
                .to_string()
                .into_bytes(),
        ),
        GetProject => ("GET", "/v1/projects/p".into(), none),
        PatchProject => (
            "PATCH",
            "/v1/projects/p".into(),
            br#"{"persistence":"sync"}"#.to_vec(),
        ),
        ListTokens => ("GET", "/v1/projects/p/tokens".into(), none),
        CreateToken => (
            "POST",
            "/v1/projects/p/tokens".into(),
            br#"{"label":"more","access":"read"}"#.to_vec(),
        ),
        DeleteToken => {
            let (id, _) = create_token(srv, "extra", "read", None);
            ("DELETE", format!("/v1/projects/p/tokens/{id}"), none)
        }
        DeleteProject => ("DELETE", "/v1/projects/p".into(), none),
    }
}

fn send_as(srv: &impl Api, method: &str, path: &str, cred: &Cred, body: &[u8]) -> Resp {
    match cred {
        Cred::Bearer(t) => srv.req(method, path, Some(t), body),
        Cred::Header(v) => srv.req_h(method, path, None, &[("Authorization", v)], body),
        Cred::Missing => srv.req(method, path, None, body),
    }
}

/// Why `r` does not match `want`, if it does not.
fn mismatch(r: &Resp, method: &str, want: Want) -> Option<String> {
    let got = format!("got {} {}", r.status, r.text());
    match want {
        Want::Status(s) => (r.status != s).then(|| format!("want {s}, {got}")),
        Want::Error(s, code) => {
            if r.status != s {
                return Some(format!("want {s} {code}, {got}"));
            }
            if r.header("content-type") != Some("application/json") {
                return Some(format!(
                    "want Content-Type application/json, got {:?}",
                    r.header("content-type")
                ));
            }
            if s == 401 && r.header("www-authenticate") != Some("Bearer") {
                return Some(format!(
                    "want WWW-Authenticate: Bearer, got {:?}",
                    r.header("www-authenticate")
                ));
            }
            if method == "HEAD" {
                return None;
            }
            let j: Value = match serde_json::from_slice(&r.body) {
                Ok(j) => j,
                Err(_) => return Some(format!("want JSON error {code}, {got}")),
            };
            let well_formed = j["error"] == code
                && j["message"].as_str().is_some_and(|m| !m.is_empty())
                && j.as_object().is_some_and(|o| o.len() == 2);
            (!well_formed).then(|| format!("want error {code} with a message only, {got}"))
        }
    }
}

/// Run every route with `cred`, expecting `want(row)` for each; fail listing every bad cell.
fn run_matrix(fx: &Fixture, token_kind: &str, cred: &Cred, want: impl Fn(&[Want; 4]) -> Want) {
    let mut failures = Vec::new();
    for (n, (route, row)) in MATRIX.iter().enumerate() {
        let (method, path, body) = prepare(&fx.srv, *route, n);
        let r = send_as(&fx.srv, method, &path, cred, &body);
        if let Some(why) = mismatch(&r, method, want(row)) {
            failures.push(format!(
                "({route:?} = {method} {path}, {token_kind}): {why}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cell(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn run_column(fx: &Fixture, token_kind: &str, token: &str, column: usize) {
    run_matrix(fx, token_kind, &Cred::Bearer(token.to_string()), |row| {
        row[column]
    });
}

fn run_unauthorized(fx: &Fixture, token_kind: &str, cred: &Cred) {
    run_matrix(fx, token_kind, cred, |_| UNAUTHORIZED);
}

#[test]
fn admin_token_succeeds_on_every_route() {
    let fx = fixture();
    run_column(&fx, "admin", ADMIN, ADMIN_COLUMN);
}

#[test]
fn write_token_is_limited_to_its_own_projects_keys() {
    let fx = fixture();
    run_column(&fx, "p write", &fx.p_write, WRITE_COLUMN);
}

#[test]
fn read_token_can_only_read_its_own_projects_keys() {
    let fx = fixture();
    run_column(&fx, "p read", &fx.p_read, READ_COLUMN);
}

#[test]
fn another_projects_token_is_forbidden_everywhere() {
    let fx = fixture();
    run_column(&fx, "q write", &fx.q_write, OTHER_COLUMN);
}

#[test]
fn missing_authorization_is_401_everywhere() {
    let fx = fixture();
    run_unauthorized(&fx, "missing", &Cred::Missing);
}

#[test]
fn unknown_token_is_401_everywhere() {
    let fx = fixture();
    let unknown = Cred::Bearer("pykv_0123456789abcdef0123456789abcdef".into());
    run_unauthorized(&fx, "unknown", &unknown);
}

#[test]
fn near_miss_of_a_valid_token_is_401_everywhere() {
    let fx = fixture();
    let longer = format!("{}0", fx.p_write);
    run_unauthorized(&fx, "write+0", &Cred::Bearer(longer));
    let shorter = fx.p_write[..fx.p_write.len() - 1].to_string();
    run_unauthorized(&fx, "write-1", &Cred::Bearer(shorter));
    let admin_longer = format!("{ADMIN}x");
    run_unauthorized(&fx, "admin+x", &Cred::Bearer(admin_longer));
}

#[test]
fn revoked_token_is_401_everywhere() {
    let fx = fixture();
    let (id, secret) = create_token(&fx.srv, "extra", "write", None);
    let r = fx.srv.req("PUT", "/v1/kv/p/k", Some(&secret), b"v");
    assert_eq!(r.status, 201, "token works before revocation: {}", r.text());
    let r = fx.srv.req(
        "DELETE",
        &format!("/v1/projects/p/tokens/{id}"),
        Some(ADMIN),
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    run_unauthorized(&fx, "revoked", &Cred::Bearer(secret));
}

#[test]
fn basic_authorization_is_401_everywhere() {
    let fx = fixture();
    run_unauthorized(&fx, "Basic xyz", &Cred::Header("Basic xyz".into()));
    run_unauthorized(
        &fx,
        "Basic <admin token>",
        &Cred::Header(format!("Basic {ADMIN}")),
    );
}

#[test]
fn bearer_without_a_token_is_401_everywhere() {
    let fx = fixture();
    run_unauthorized(&fx, "Bearer", &Cred::Header("Bearer".into()));
    run_unauthorized(&fx, "Bearer + spaces", &Cred::Header("Bearer  ".into()));
}

#[test]
fn basic_auth_with_an_empty_user_and_the_token_as_password_works() {
    let (srv, write, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let auth = basic(&format!(":{write}"));
    let r = srv.req_h("GET", "/v1/kv/p/k", None, &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"v");
}

#[test]
fn basic_auth_with_the_token_as_user_and_an_empty_password_works() {
    let (srv, write, _) = InProc::with_p(json!({}));
    let auth = basic(&format!("{write}:"));
    let r = srv.req_h("PUT", "/v1/kv/p/k", None, &[("Authorization", &auth)], b"v");
    assert_json(&r, 201);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/k").body, b"v");
}

#[test]
fn basic_auth_with_any_user_and_the_token_as_password_works() {
    let (srv, _, read) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let auth = basic(&format!("pi:{read}"));
    let r = srv.req_h("GET", "/v1/kv/p/k", None, &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"v");
}

#[test]
fn basic_auth_with_a_wrong_password_is_401() {
    let (srv, write, _) = InProc::with_p(json!({}));
    for creds in [
        "pi:wrong-token-0123456789".to_string(),
        format!("{write}:wrong-token-0123456789"),
        format!(":{write}x"),
    ] {
        let auth = basic(&creds);
        let r = srv.req_h("GET", "/v1/kv/p/k", None, &[("Authorization", &auth)], b"");
        r.assert_error(401, "unauthorized");
    }
}

#[test]
fn basic_auth_with_the_admin_token_reaches_admin_routes() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let auth = basic(&format!(":{ADMIN}"));
    let r = srv.req_h(
        "GET",
        "/v1/projects/p",
        None,
        &[("Authorization", &auth)],
        b"",
    );
    assert_json(&r, 200);
    assert_eq!(r.json()["name"], "p");
}

#[test]
fn x_api_key_header_authenticates() {
    let (srv, write, _) = InProc::with_p(json!({}));
    let r = srv.req_h("PUT", "/v1/kv/p/k", None, &[("X-API-Key", &write)], b"v");
    assert_json(&r, 201);
    let r = srv.req_h("GET", "/v1/kv/p/k", None, &[("X-API-Key", &write)], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"v");
}

#[test]
fn x_api_key_read_token_cannot_write() {
    let (srv, _, read) = InProc::with_p(json!({}));
    let r = srv.req_h("PUT", "/v1/kv/p/k", None, &[("X-API-Key", &read)], b"v");
    r.assert_error(403, "forbidden");
}

#[test]
fn x_api_key_is_ignored_when_an_authorization_header_is_present() {
    let (srv, write, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let r = srv.req_h(
        "GET",
        "/v1/kv/p/k",
        Some("not-a-valid-token-0123456789"),
        &[("X-API-Key", &write)],
        b"",
    );
    r.assert_error(401, "unauthorized");
}

#[test]
fn every_401_carries_a_bearer_then_a_basic_challenge() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let wrong = "not-a-valid-token-0123456789";
    let basic_wrong = basic(&format!(":{wrong}"));
    let bearer_wrong = format!("Bearer {wrong}");
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("Authorization", bearer_wrong.as_str())],
        vec![("Authorization", basic_wrong.as_str())],
        vec![("Authorization", "Basic !!!")],
        vec![("X-API-Key", wrong)],
    ];
    for headers in cases {
        for path in ["/v1/kv/p/k", "/v1/projects", "/metrics"] {
            let r = srv.req_h("GET", path, None, &headers, b"");
            r.assert_error(401, "unauthorized");
            assert_eq!(
                challenges(&r),
                vec!["Bearer", "Basic realm=\"pykv\""],
                "{path} {headers:?}: {:?}",
                r.headers
            );
        }
    }
}

#[test]
fn curl_u_with_the_token_as_password_or_user_reads_a_key() {
    let (srv, write, _) = Server::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/greeting", b"hello world");
    let target = format!("{}/v1/kv/p/greeting", srv.url());
    let r = curl(&["-u", &format!(":{write}"), &target]);
    assert_eq!(r.stdout, "hello world");
    let r = curl(&["-u", &format!("{write}:"), &target]);
    assert_eq!(r.stdout, "hello world");
    let r = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-u",
        "pi:wrong",
        &target,
    ]);
    assert_eq!(r.stdout, "401");
}

const CFG_READ: &str = "cfg-read-secret-0123456789abc";

const WRONG: &str = "wrong-secret-ZYXWVUTSRQ9876543210";

const WRONG_GENERATED_SHAPE: &str = "pykv_fedcba9876543210fedcba9876543210";

#[test]
fn no_secret_appears_in_the_log_or_in_any_non_creation_response() {
    let srv = Server::start(json!({ "projects": { "cfg": { "tokens": [
        { "label": "ci", "access": "write", "secret": CFG_WRITE },
        { "label": "reader", "access": "read", "secret": CFG_READ },
    ] } } }));
    let mut secrets: Vec<String> = vec![
        ADMIN.into(),
        CFG_WRITE.into(),
        CFG_READ.into(),
        WRONG.into(),
        WRONG_GENERATED_SHAPE.into(),
    ];
    let (p_write, p_read) = create_project(&srv, "p");
    let (q_write, q_read) = create_project(&srv, "q");
    secrets.extend([p_write.clone(), p_read.clone(), q_write.clone(), q_read]);
    let (kept_id, kept) = create_token(&srv, "extra", "write", None);
    let (revoked_id, revoked) = create_token(&srv, "extra", "read", None);
    secrets.extend([kept.clone(), revoked.clone()]);
    let r = srv.req(
        "DELETE",
        &format!("/v1/projects/p/tokens/{revoked_id}"),
        Some(ADMIN),
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.text());

    // Every response below must be free of secrets: none of them creates a token.
    let mut responses: Vec<(String, Resp)> = Vec::new();
    let mut go = |label: String, r: Resp| responses.push((label, r));
    let bearers: [&str; 10] = [
        ADMIN,
        CFG_WRITE,
        CFG_READ,
        WRONG,
        WRONG_GENERATED_SHAPE,
        &p_write,
        &p_read,
        &q_write,
        &kept,
        &revoked,
    ];
    let requests: [(&str, &str, &[u8]); 12] = [
        ("PUT", "/v1/kv/p/k", b"v"),
        ("GET", "/v1/kv/p/k", b""),
        ("GET", "/v1/kv/p/missing", b""),
        ("DELETE", "/v1/kv/p/missing", b""),
        ("PUT", "/v1/kv/cfg/k", b"v"),
        ("GET", "/v1/kv/cfg", b""),
        ("PUT", "/v1/kv/ghost/k", b"v"),
        ("GET", "/v1/projects", b""),
        ("GET", "/v1/projects/p/tokens", b""),
        ("GET", "/v1/projects/cfg/tokens", b""),
        ("POST", "/v1/projects", b"{\"name\":"),
        ("DELETE", "/v1/projects/cfg/tokens/nope", b""),
    ];
    for (i, token) in bearers.iter().enumerate() {
        for (method, path, body) in requests {
            let r = srv.req(method, path, Some(token), body);
            go(format!("{method} {path} with bearer #{i}"), r);
        }
        for scheme in ["Basic", "Token", "bearer"] {
            let value = format!("{scheme} {token}");
            let r = srv.req_h("GET", "/v1/kv/p/k", None, &[("Authorization", &value)], b"");
            go(format!("GET /v1/kv/p/k with {scheme} #{i}"), r);
        }
        let value = format!("Bearer {token} extra");
        let r = srv.req_h("GET", "/v1/kv/p/k", None, &[("Authorization", &value)], b"");
        go(format!("GET /v1/kv/p/k with trailing junk #{i}"), r);
    }
    let r = srv.req(
        "DELETE",
        &format!("/v1/projects/p/tokens/{kept_id}"),
        Some(ADMIN),
        b"",
    );
    go("DELETE kept token".into(), r);

    let statuses: Vec<u16> = responses.iter().map(|(_, r)| r.status).collect();
    assert!(statuses.contains(&401), "no 401 was provoked: {statuses:?}");
    assert!(statuses.contains(&403), "no 403 was provoked: {statuses:?}");
    for (label, r) in &responses {
        let text = r.text();
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "{label}: response {} contains secret {s:?}: {text}",
                r.status
            );
        }
        for (name, value) in &r.headers {
            for s in &secrets {
                assert!(
                    !value.contains(s.as_str()),
                    "{label}: header {name} contains secret {s:?}"
                );
            }
        }
    }

    // Let the log thread catch up with the last request lines.
    std::thread::sleep(Duration::from_millis(300));
    let log = srv.log();
    assert!(
        log.contains(" 401 "),
        "request lines missing from log:\n{log}"
    );
    for s in &secrets {
        assert!(
            !log.contains(s.as_str()),
            "log contains secret {s:?}:\n{log}"
        );
    }
}
