//! The PyKV-compatible routes (`/put`, `/get/{key}`, `/delete/{key}` on `compat_project`): their
//! answers, errors, credentials and quotas. In-process, but for a Python client and curl, which
//! need a real server.

mod common;
use common::*;

use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// The Python PyKV user's client: urllib only, `json.dumps` of a dict, the `X-API-Key` header.
const PYKV_CLIENT_PY: &str = r#"
import json, os, urllib.error, urllib.request

BASE = os.environ["PYKV_URL"]
API_KEY = os.environ["PYKV_API_KEY"]

def call(method, path, payload=None):
    data = None if payload is None else json.dumps(payload).encode("utf-8")
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("X-API-Key", API_KEY)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read().decode("utf-8"))

user = {"name": "Ada", "langs": ["python", "rust"], "age": 36, "admin": False, "note": None}
got = call("POST", "/put", {"key": "users/ada", "value": user})
assert got == (200, {"key": "users/ada", "value": user}), got
got = call("GET", "/get/users/ada")
assert got == (200, {"key": "users/ada", "value": user}), got

for value in [42, -7, 2.5, "text", "", False, None, [1, "two", {"x": []}]]:
    got = call("POST", "/put", {"key": "scalar", "value": value})
    assert got == (200, {"key": "scalar", "value": value}), got
    got = call("GET", "/get/scalar")
    assert got == (200, {"key": "scalar", "value": value}), got
    assert type(got[1]["value"]) is type(value), got

got = call("DELETE", "/delete/users/ada")
assert got == (200, {"key": "users/ada", "deleted": True}), got
status, body = call("GET", "/get/users/ada")
assert (status, body["error"]) == (404, "key_not_found"), (status, body)
status, body = call("DELETE", "/delete/users/ada")
assert (status, body["error"]) == (404, "key_not_found"), (status, body)
print("OK")
"#;

#[test]
fn python_pykv_client_puts_gets_and_deletes_with_x_api_key() {
    let probe = run_within(
        Command::new("python3").arg("--version"),
        Duration::from_secs(10),
    );
    if probe.code != Some(0) {
        eprintln!("python3 is not usable here; skipping the Python client");
        return;
    }
    let srv = Server::start(compat_config(json!({})));
    let r = run(Command::new("python3")
        .arg("-c")
        .arg(PYKV_CLIENT_PY)
        .env("PYKV_URL", srv.url())
        .env("PYKV_API_KEY", LEGACY_WRITE));
    assert_eq!(
        r.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        r.stdout,
        r.stderr
    );
    assert_eq!(r.stdout, "OK\n", "stderr: {}", r.stderr);
    // The last scalar it stored is JSON text, readable through the native API.
    let v = get_as(&srv, ADMIN, "/v1/kv/legacy/scalar");
    assert_eq!(v.header("content-type"), Some("application/json"));
    assert_eq!(v.json(), json!([1, "two", { "x": [] }]));
}

#[test]
fn curl_user_puts_gets_and_deletes_through_the_compat_routes() {
    let srv = Server::start(compat_config(json!({})));
    let base = srv.url();
    let api_key = format!("X-API-Key: {LEGACY_WRITE}");
    let value = json!({ "text": "hi there", "n": 1, "tags": ["a", "b"] });
    let body = json!({ "key": "greeting", "value": value }).to_string();
    let r = curl(&[
        "-X",
        "POST",
        "-H",
        &api_key,
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
        "-w",
        "\n%{http_code}",
        &format!("{base}/put"),
    ]);
    let (answer, status) = r.stdout.rsplit_once('\n').unwrap();
    assert_eq!(status, "200");
    assert_eq!(
        serde_json::from_str::<Value>(answer).unwrap(),
        json!({ "key": "greeting", "value": value })
    );

    let r = curl(&[
        "-u",
        &format!(":{LEGACY_WRITE}"),
        &format!("{base}/get/greeting"),
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&r.stdout).unwrap(),
        json!({ "key": "greeting", "value": value })
    );

    let r = curl(&[
        "-X",
        "DELETE",
        "-H",
        &api_key,
        &format!("{base}/delete/greeting"),
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&r.stdout).unwrap(),
        json!({ "key": "greeting", "deleted": true })
    );

    let r = curl(&[
        "-w",
        "\n%{http_code}",
        "-H",
        &api_key,
        &format!("{base}/get/greeting"),
    ]);
    let (answer, status) = r.stdout.rsplit_once('\n').unwrap();
    assert_eq!(status, "404");
    assert_eq!(
        serde_json::from_str::<Value>(answer).unwrap()["error"],
        "key_not_found"
    );
}

#[test]
fn compat_put_answers_200_with_the_key_and_the_same_json_value() {
    let srv = InProc::start(compat_config(json!({})));
    for value in [
        json!({ "a": 1, "b": [true, null, "x"], "c": { "d": 2.5 } }),
        json!(42),
        json!("text"),
        json!(null),
        json!([]),
    ] {
        let body = json!({ "key": "k", "value": value });
        let r = srv.req(
            "POST",
            "/put",
            Some(LEGACY_WRITE),
            &serde_json::to_vec(&body).unwrap(),
        );
        assert_json(&r, 200);
        assert_eq!(r.json(), body);
        assert_eq!(r.json().as_object().unwrap().len(), 2);
    }
}

#[test]
fn compat_put_stores_json_text_served_as_application_json() {
    let srv = InProc::start(compat_config(json!({})));
    let value = json!({ "a": 1, "b": [true, null, "x"] });
    let body = json!({ "key": "cfg", "value": value });
    let r = srv.req(
        "POST",
        "/put",
        Some(LEGACY_WRITE),
        &serde_json::to_vec(&body).unwrap(),
    );
    assert_json(&r, 200);
    let r = get_as(&srv, ADMIN, "/v1/kv/legacy/cfg");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(serde_json::from_slice::<Value>(&r.body).unwrap(), value);
    // A string is stored as its JSON text, quotes included.
    let r = srv.req(
        "POST",
        "/put",
        Some(LEGACY_WRITE),
        br#"{"key":"s","value":"hi"}"#,
    );
    assert_json(&r, 200);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/legacy/s").body, br#""hi""#);
}

#[test]
fn compat_get_answers_the_key_and_its_json_value() {
    let srv = InProc::start(compat_config(json!({})));
    put_ok(&srv, "/v1/kv/legacy/n", b"[1,2,3]");
    let r = get_as(&srv, LEGACY_READ, "/get/n");
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({ "key": "n", "value": [1, 2, 3] }));
}

#[test]
fn compat_get_of_a_value_that_is_not_json_answers_it_as_a_string() {
    let srv = InProc::start(compat_config(json!({})));
    let r = srv.req_h(
        "PUT",
        "/v1/kv/legacy/plain",
        Some(LEGACY_WRITE),
        &[("Content-Type", "text/plain")],
        b"hello world",
    );
    assert_json(&r, 201);
    let r = get_as(&srv, LEGACY_WRITE, "/get/plain");
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({ "key": "plain", "value": "hello world" }));
}

#[test]
fn compat_get_of_a_value_that_is_not_utf8_answers_base64() {
    let srv = InProc::start(compat_config(json!({})));
    put_ok(&srv, "/v1/kv/legacy/raw", &[0, 1, 2, 255]);
    let r = get_as(&srv, LEGACY_WRITE, "/get/raw");
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({ "key": "raw", "value": "AAEC/w==", "base64": true })
    );
}

#[test]
fn compat_get_of_an_absent_key_is_404_key_not_found() {
    let srv = InProc::start(compat_config(json!({})));
    get_as(&srv, LEGACY_WRITE, "/get/nothing").assert_error(404, "key_not_found");
}

#[test]
fn compat_delete_answers_deleted_and_removes_the_key() {
    let srv = InProc::start(compat_config(json!({})));
    put_ok(&srv, "/v1/kv/legacy/k", b"1");
    let r = srv.req("DELETE", "/delete/k", Some(LEGACY_WRITE), b"");
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({ "key": "k", "deleted": true }));
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/legacy/k").status, 404);
}

#[test]
fn compat_delete_of_an_absent_key_is_404_key_not_found() {
    let srv = InProc::start(compat_config(json!({})));
    srv.req("DELETE", "/delete/nothing", Some(LEGACY_WRITE), b"")
        .assert_error(404, "key_not_found");
}

#[test]
fn compat_put_with_an_unknown_field_or_bad_json_is_400_invalid_json() {
    let srv = InProc::start(compat_config(json!({})));
    for body in [
        &br#"{"key":"k","value":1,"ttl":5}"#[..],
        b"{\"key\":\"k\",\"value\":",
        b"not json",
        br#"{"value":1}"#,
    ] {
        let r = srv.req("POST", "/put", Some(LEGACY_WRITE), body);
        r.assert_error(400, "invalid_json");
    }
    assert_eq!(project(&srv, "legacy")["keys"], 0);
}

#[test]
fn compat_put_with_a_body_that_is_not_an_object_is_400_invalid_json() {
    let srv = InProc::start(compat_config(json!({})));
    for body in [&br#"["k",1]"#[..], b"\"k\"", b"1"] {
        let r = srv.req("POST", "/put", Some(LEGACY_WRITE), body);
        r.assert_error(400, "invalid_json");
    }
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/legacy/k").status, 404);
}

#[test]
fn compat_put_with_a_bad_key_is_400_invalid_key() {
    let srv = InProc::start(json!({
        "compat_project": "legacy",
        "limits": { "max_key_bytes": 8 },
        "projects": { "legacy": { "tokens": [
            { "label": "app", "access": "write", "secret": LEGACY_WRITE }
        ] } }
    }));
    for key in ["", "123456789"] {
        let body = json!({ "key": key, "value": 1 });
        let r = srv.req(
            "POST",
            "/put",
            Some(LEGACY_WRITE),
            &serde_json::to_vec(&body).unwrap(),
        );
        r.assert_error(400, "invalid_key");
    }
}

#[test]
fn compat_put_with_a_read_token_is_403() {
    let srv = InProc::start(compat_config(json!({})));
    let r = srv.req(
        "POST",
        "/put",
        Some(LEGACY_READ),
        br#"{"key":"k","value":1}"#,
    );
    r.assert_error(403, "forbidden");
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/legacy/k").status, 404);
}

#[test]
fn compat_delete_with_a_read_token_is_403() {
    let srv = InProc::start(compat_config(json!({})));
    put_ok(&srv, "/v1/kv/legacy/k", b"1");
    srv.req("DELETE", "/delete/k", Some(LEGACY_READ), b"")
        .assert_error(403, "forbidden");
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/legacy/k").status, 200);
}

#[test]
fn compat_routes_without_a_token_are_401() {
    let srv = InProc::start(compat_config(json!({})));
    srv.req("POST", "/put", None, br#"{"key":"k","value":1}"#)
        .assert_error(401, "unauthorized");
    srv.req("GET", "/get/k", None, b"")
        .assert_error(401, "unauthorized");
    srv.req("DELETE", "/delete/k", None, b"")
        .assert_error(401, "unauthorized");
}

#[test]
fn compat_routes_refuse_another_projects_token_with_403() {
    let srv = InProc::start(compat_config(json!({})));
    let (write, _) = create_project(&srv, "p");
    srv.req("POST", "/put", Some(&write), br#"{"key":"k","value":1}"#)
        .assert_error(403, "forbidden");
    get_as(&srv, &write, "/get/k").assert_error(403, "forbidden");
}

#[test]
fn compat_routes_accept_bearer_basic_x_api_key_and_the_admin_token() {
    let srv = InProc::start(compat_config(json!({})));
    put_ok(&srv, "/v1/kv/legacy/k", b"7");
    let basic_auth = basic(&format!(":{LEGACY_READ}"));
    let bearer_admin = format!("Bearer {ADMIN}");
    for header in [
        ("Authorization", basic_auth.as_str()),
        ("X-API-Key", LEGACY_READ),
        ("Authorization", bearer_admin.as_str()),
    ] {
        let r = srv.req_h("GET", "/get/k", None, &[header], b"");
        assert_json(&r, 200);
        assert_eq!(r.json(), json!({ "key": "k", "value": 7 }));
    }
    let r = get_as(&srv, LEGACY_READ, "/get/k");
    assert_json(&r, 200);
}

#[test]
fn compat_keys_in_paths_are_percent_decoded() {
    let srv = InProc::start(compat_config(json!({})));
    let r = srv.req(
        "POST",
        "/put",
        Some(LEGACY_WRITE),
        r#"{"key":"dir/a b é","value":true}"#.as_bytes(),
    );
    assert_json(&r, 200);
    let r = get_as(&srv, LEGACY_WRITE, "/get/dir%2Fa%20b%20%C3%A9");
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({ "key": "dir/a b é", "value": true }));
    let r = srv.req(
        "DELETE",
        "/delete/dir/a%20b%20%C3%A9",
        Some(LEGACY_WRITE),
        b"",
    );
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({ "key": "dir/a b é", "deleted": true }));
    srv.req("GET", "/get/%ZZ", Some(LEGACY_WRITE), b"")
        .assert_error(400, "invalid_key");
}

#[test]
fn compat_routes_are_404_without_compat_project_saying_how_to_turn_them_on() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let off = "the PyKV-compatible routes (/put, /get/{key}, /delete/{key}) are off: set \
               \"compat_project\" in config.json to the project they should use, and restart";
    for r in [
        srv.req("POST", "/put", Some(ADMIN), br#"{"key":"k","value":1}"#),
        get_as(&srv, ADMIN, "/get/k"),
        srv.req("DELETE", "/delete/k", Some(ADMIN), b""),
        srv.req("OPTIONS", "/put", None, b""),
        srv.req("TRACE", "/put", None, b""),
    ] {
        r.assert_error(404, "not_found");
        assert_eq!(r.json()["message"], off);
    }
}

#[test]
fn compat_routes_answer_405_with_allow_even_for_trace() {
    let srv = InProc::start(compat_config(json!({})));
    let r = srv.req("TRACE", "/put", Some(ADMIN), b"");
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));
}

#[test]
fn compat_values_come_back_as_the_json_text_sent() {
    let srv = InProc::start(compat_config(json!({})));
    // Numbers past f64's precision, exponents and spacing inside the value are kept as written.
    for value in [
        "12345678901234567890123",
        "1e400",
        "-0.10",
        "{\"n\": 12345678901234567890123, \"x\": [1.0, 2]}",
    ] {
        let body = format!("{{\"key\":\"big\",\"value\":{value}}}");
        let r = srv.req("POST", "/put", Some(LEGACY_WRITE), body.as_bytes());
        assert_json(&r, 200);
        assert_eq!(r.text(), format!("{{\"key\":\"big\",\"value\":{value}}}\n"));
        let r = srv.req("GET", "/get/big", Some(LEGACY_WRITE), b"");
        assert_json(&r, 200);
        assert_eq!(r.text(), format!("{{\"key\":\"big\",\"value\":{value}}}\n"));
        assert_eq!(get_as(&srv, ADMIN, "/v1/kv/legacy/big").text(), value);
    }
}

#[test]
fn compat_routes_answer_405_with_allow_for_other_methods() {
    let srv = InProc::start(compat_config(json!({})));
    let r = srv.req("GET", "/put", Some(ADMIN), b"");
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = srv.req("PUT", "/get/k", Some(ADMIN), b"x");
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

#[test]
fn compat_put_past_a_quota_is_507() {
    let srv = InProc::start(compat_config(json!({ "max_keys": 1 })));
    let put1 = srv.req(
        "POST",
        "/put",
        Some(LEGACY_WRITE),
        br#"{"key":"a","value":1}"#,
    );
    assert_json(&put1, 200);
    let r = srv.req(
        "POST",
        "/put",
        Some(LEGACY_WRITE),
        br#"{"key":"b","value":2}"#,
    );
    assert_quota(&r, "max_keys", 1);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/legacy/b").status, 404);
}
