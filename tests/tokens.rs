//! Tokens: create, list and revoke a project's tokens, what each access allows at once, and the
//! tokens config.json declares; secrets are shown once, at creation. In-process.

mod common;
use common::*;

use serde_json::json;

#[test]
fn list_tokens_shows_id_label_access_source_and_never_secrets() {
    let srv = InProc::start(json!({}));
    let created = srv
        .req("POST", "/v1/projects", Some(ADMIN), br#"{"name":"p"}"#)
        .json();
    let r = get(&srv, "/v1/projects/p/tokens");
    assert_json(&r, 200);
    let text = r.text();
    assert!(!text.contains("secret"), "body: {text}");
    for t in created["tokens"].as_array().unwrap() {
        assert!(
            !text.contains(t["secret"].as_str().unwrap()),
            "body: {text}"
        );
    }
    let mut listed = r.json()["tokens"].as_array().expect("tokens").clone();
    listed.sort_by_key(|t| t["label"].to_string());
    let c = &created["tokens"];
    assert_eq!(
        listed,
        vec![
            json!({"id": c[1]["id"], "label": "read", "access": "read", "source": "api"}),
            json!({"id": c[0]["id"], "label": "write", "access": "write", "source": "api"}),
        ]
    );
}

#[test]
fn config_tokens_are_listed_with_source_config_and_no_secret() {
    let srv = InProc::start(config_project());
    let r = get(&srv, "/v1/projects/cfg/tokens");
    assert_json(&r, 200);
    assert!(!r.text().contains(CFG_WRITE), "body: {}", r.text());
    let j = r.json();
    let tokens = j["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 1, "{j}");
    assert_eq!(
        tokens[0],
        json!({"id": tokens[0]["id"], "label": "ci", "access": "write", "source": "config"})
    );
}

#[test]
fn created_read_token_can_read_but_not_write() {
    let srv = InProc::with_p(json!({})).0;
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let r = srv.req(
        "POST",
        "/v1/projects/p/tokens",
        Some(ADMIN),
        br#"{"label":"ci","access":"read"}"#,
    );
    assert_json(&r, 201);
    let j = r.json();
    let secret = j["secret"].as_str().expect("secret").to_string();
    assert!(is_generated_secret(&secret), "secret {secret:?}");
    assert_eq!(
        j,
        json!({"id": j["id"], "label": "ci", "access": "read", "source": "api", "secret": secret})
    );
    id_path(&j["id"]);
    let g = srv.req("GET", "/v1/kv/p/k", Some(&secret), b"");
    assert_eq!(g.status, 200);
    assert_eq!(g.body, b"v");
    srv.req("PUT", "/v1/kv/p/k", Some(&secret), b"w")
        .assert_error(403, "forbidden");
    let listed = get(&srv, "/v1/projects/p/tokens").json();
    assert!(
        listed["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == j["id"] && t["label"] == "ci"),
        "{listed}"
    );
}

#[test]
fn created_write_token_can_write() {
    let srv = InProc::with_p(json!({})).0;
    let j = srv
        .req(
            "POST",
            "/v1/projects/p/tokens",
            Some(ADMIN),
            br#"{"label":"deploy","access":"write"}"#,
        )
        .json();
    assert_eq!(j["access"], "write");
    let secret = j["secret"].as_str().expect("secret");
    assert_eq!(srv.req("PUT", "/v1/kv/p/k", Some(secret), b"v").status, 201);
}

#[test]
fn revoked_token_is_401_at_once() {
    let srv = InProc::with_p(json!({})).0;
    let j = srv
        .req(
            "POST",
            "/v1/projects/p/tokens",
            Some(ADMIN),
            br#"{"label":"ci","access":"write"}"#,
        )
        .json();
    let secret = j["secret"].as_str().expect("secret");
    assert_eq!(srv.req("PUT", "/v1/kv/p/k", Some(secret), b"v").status, 201);
    let (r, rest) = srv.req_close(
        "DELETE",
        &format!("/v1/projects/p/tokens/{}", id_path(&j["id"])),
        &[],
        b"",
    );
    assert_eq!(r.status, 204);
    assert!(rest.is_empty(), "204 had a body: {rest:?}");
    let r = srv.req("GET", "/v1/kv/p/k", Some(secret), b"");
    r.assert_error(401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let listed = get(&srv, "/v1/projects/p/tokens").json();
    assert!(
        !listed["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == j["id"]),
        "{listed}"
    );
}

#[test]
fn deleting_an_unknown_token_is_404_token_not_found() {
    let srv = InProc::with_p(json!({})).0;
    let j = srv
        .req(
            "POST",
            "/v1/projects/p/tokens",
            Some(ADMIN),
            br#"{"label":"ci","access":"read"}"#,
        )
        .json();
    let path = format!("/v1/projects/p/tokens/{}", id_path(&j["id"]));
    assert_eq!(srv.req("DELETE", &path, Some(ADMIN), b"").status, 204);
    srv.req("DELETE", &path, Some(ADMIN), b"")
        .assert_error(404, "token_not_found");
}

#[test]
fn deleting_a_config_token_is_409_token_in_config() {
    let srv = InProc::start(config_project());
    let listed = get(&srv, "/v1/projects/cfg/tokens").json();
    let id = id_path(&listed["tokens"][0]["id"]);
    srv.req(
        "DELETE",
        &format!("/v1/projects/cfg/tokens/{id}"),
        Some(ADMIN),
        b"",
    )
    .assert_error(409, "token_in_config");
    assert_eq!(
        srv.req("PUT", "/v1/kv/cfg/k", Some(CFG_WRITE), b"v").status,
        201
    );
}

#[test]
fn creating_a_token_with_bad_access_is_400() {
    let srv = InProc::with_p(json!({})).0;
    for body in [
        &br#"{"label":"ci","access":"admin"}"#[..],
        br#"{"label":"ci","access":"READ"}"#,
    ] {
        let r = srv.req("POST", "/v1/projects/p/tokens", Some(ADMIN), body);
        assert_some_error(&r, 400);
    }
    assert_eq!(
        get(&srv, "/v1/projects/p/tokens").json()["tokens"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_label_is_1_to_64_characters_not_bytes() {
    let srv = InProc::with_p(json!({})).0;
    // 64 characters of 3 bytes each: 192 bytes, accepted.
    let label = "ह".repeat(64);
    let r = admin_json(
        &srv,
        "POST",
        "/v1/projects/p/tokens",
        json!({"label": label, "access": "read"}),
    );
    assert_json(&r, 201);
    assert_eq!(r.json()["label"], label);
    for bad in [String::new(), "ह".repeat(65)] {
        let r = admin_json(
            &srv,
            "POST",
            "/v1/projects/p/tokens",
            json!({"label": bad, "access": "read"}),
        );
        r.assert_error(400, "invalid_label");
        assert_eq!(r.json()["message"], "a token label is 1 to 64 characters");
    }
}
