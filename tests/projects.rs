//! Projects: create, list, get, patch and delete through the API, their counts and versions,
//! names, and the projects config.json declares. In-process.

mod common;
use common::*;

use serde_json::{json, Value};

/// The binary's default persistence, which these answers show.
fn sync(mut cfg: Value) -> Value {
    cfg["persistence"] = json!("sync");
    cfg
}

#[test]
fn create_project_returns_201_with_a_write_and_a_read_token() {
    let srv = InProc::start(json!({"persistence": "sync"}));
    let r = srv.req("POST", "/v1/projects", Some(ADMIN), br#"{"name":"p"}"#);
    assert_json(&r, 201);
    let j = r.json();
    let tokens = j["tokens"].as_array().expect("tokens").clone();
    assert_eq!(tokens.len(), 2, "{j}");
    for t in &tokens {
        let secret = t["secret"].as_str().expect("secret");
        assert!(is_generated_secret(secret), "secret {secret:?}");
    }
    assert_ne!(tokens[0]["secret"], tokens[1]["secret"]);
    assert_ne!(tokens[0]["id"], tokens[1]["id"]);
    let expected = json!({
        "name": "p", "keys": 0, "bytes": 0, "persistence": "sync", "source": "api", "version": 0,
        "max_keys": null, "max_bytes": null,
        "tokens": [
            {"id": tokens[0]["id"], "label": "write", "access": "write", "source": "api",
             "secret": tokens[0]["secret"]},
            {"id": tokens[1]["id"], "label": "read", "access": "read", "source": "api",
             "secret": tokens[1]["secret"]},
        ]
    });
    assert_eq!(j, expected);
    id_path(&tokens[0]["id"]);
}

#[test]
fn create_project_with_persistence_memory() {
    let srv = InProc::start(json!({"persistence": "sync"}));
    let r = srv.req(
        "POST",
        "/v1/projects",
        Some(ADMIN),
        br#"{"name":"m","persistence":"memory"}"#,
    );
    assert_json(&r, 201);
    assert_eq!(r.json()["persistence"], "memory");
    assert_eq!(get(&srv, "/v1/projects/m").json()["persistence"], "memory");
}

#[test]
fn creating_an_existing_project_is_409_project_exists() {
    let srv = InProc::with_p(json!({"persistence": "sync"})).0;
    srv.req("POST", "/v1/projects", Some(ADMIN), br#"{"name":"p"}"#)
        .assert_error(409, "project_exists");
}

#[test]
fn invalid_project_names_are_400_invalid_project_name() {
    let srv = InProc::start(json!({"persistence": "sync"}));
    let long = "a".repeat(65);
    for name in [
        "Bad",
        "-x",
        "_x",
        "a.b",
        long.as_str(),
        "",
        "../x",
        "a b",
        "é",
    ] {
        let body = json!({ "name": name }).to_string();
        let r = srv.req("POST", "/v1/projects", Some(ADMIN), body.as_bytes());
        assert_eq!(r.status, 400, "name {name:?}: {}", r.text());
        r.assert_error(400, "invalid_project_name");
    }
    assert_eq!(get(&srv, "/v1/projects").json(), json!({"projects":[]}));
}

#[test]
fn project_names_of_1_and_64_chars_are_accepted() {
    let srv = InProc::start(json!({"persistence": "sync"}));
    let long = format!("0{}", "a_-9".repeat(16))[..64].to_string();
    assert_eq!(long.len(), 64);
    for name in ["a", long.as_str()] {
        let body = json!({ "name": name }).to_string();
        let r = srv.req("POST", "/v1/projects", Some(ADMIN), body.as_bytes());
        assert_eq!(r.status, 201, "name {name:?}: {}", r.text());
        assert_eq!(r.json()["name"], name);
    }
    assert_eq!(
        get(&srv, &format!("/v1/projects/{long}")).json()["name"],
        long.as_str()
    );
}

#[test]
fn create_project_with_bad_json_is_400_invalid_json() {
    let srv = InProc::start(json!({"persistence": "sync"}));
    for body in [&br#"{"name":"#[..], b"not json", b""] {
        let r = srv.req("POST", "/v1/projects", Some(ADMIN), body);
        assert_eq!(
            r.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(body),
            r.text()
        );
        r.assert_error(400, "invalid_json");
    }
}

#[test]
fn create_project_with_unknown_persistence_is_400_and_creates_nothing() {
    let srv = InProc::start(json!({"persistence": "sync"}));
    let r = srv.req(
        "POST",
        "/v1/projects",
        Some(ADMIN),
        br#"{"name":"p","persistence":"disk"}"#,
    );
    assert_some_error(&r, 400);
    get(&srv, "/v1/projects/p").assert_error(404, "project_not_found");
}

#[test]
fn list_projects_is_sorted_by_name_with_key_and_byte_counts() {
    let srv = InProc::start(sync(config_project()));
    for name in ["zeta", "alpha", "mid"] {
        create_project(&srv, name);
    }
    put_ok(&srv, "/v1/kv/mid/k1", b"abc"); // 2 + 3
    put_ok(&srv, "/v1/kv/mid/key2", b""); // 4 + 0
    put_ok(&srv, "/v1/kv/alpha/%C3%A9", b"xy"); // 2 + 2
    let r = get(&srv, "/v1/projects");
    assert_json(&r, 200);
    let row = |name: &str, keys: u64, bytes: u64, source: &str| json!({"name": name, "keys": keys, "bytes": bytes, "persistence": "sync", "source": source});
    assert_eq!(
        r.json(),
        json!({"projects": [
            row("alpha", 1, 4, "api"),
            row("cfg", 0, 0, "config"),
            row("mid", 2, 9, "api"),
            row("zeta", 0, 0, "api"),
        ]})
    );
}

#[test]
fn get_project_returns_counts_and_version() {
    let srv = InProc::with_p(json!({"persistence": "sync"})).0;
    put_ok(&srv, "/v1/kv/p/k1", b"abc");
    put_ok(&srv, "/v1/kv/p/key2", b"");
    let r = get(&srv, "/v1/projects/p");
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({"name":"p","keys":2,"bytes":9,"persistence":"sync","source":"api","version":2,"max_keys":null,"max_bytes":null})
    );
}

#[test]
fn project_counts_follow_replace_and_delete() {
    let srv = InProc::with_p(json!({"persistence": "sync"})).0;
    put_ok(&srv, "/v1/kv/p/k1", b"abc");
    put_ok(&srv, "/v1/kv/p/k2", b"abc");
    put_ok(&srv, "/v1/kv/p/k1", b"a"); // replace: 2 + 1
    assert_eq!(
        srv.req("DELETE", "/v1/kv/p/k2", Some(ADMIN), b"").status,
        204
    );
    assert_eq!(
        get(&srv, "/v1/projects/p").json(),
        json!({"name":"p","keys":1,"bytes":3,"persistence":"sync","source":"api","version":4,"max_keys":null,"max_bytes":null})
    );
}

#[test]
fn get_unknown_project_is_404_project_not_found() {
    let srv = InProc::start(json!({"persistence": "sync"}));
    get(&srv, "/v1/projects/ghost").assert_error(404, "project_not_found");
    srv.req("DELETE", "/v1/projects/ghost", Some(ADMIN), b"")
        .assert_error(404, "project_not_found");
    get(&srv, "/v1/projects/ghost/tokens").assert_error(404, "project_not_found");
}

#[test]
fn delete_project_returns_204_and_removes_it() {
    let srv = InProc::with_p(json!({"persistence": "sync"})).0;
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let (r, rest) = srv.req_close("DELETE", "/v1/projects/p", &[], b"");
    assert_eq!(r.status, 204);
    assert!(rest.is_empty(), "204 had a body: {rest:?}");
    get(&srv, "/v1/projects/p").assert_error(404, "project_not_found");
    get(&srv, "/v1/kv/p/k").assert_error(404, "project_not_found");
    assert_eq!(get(&srv, "/v1/projects").json(), json!({"projects":[]}));
}

#[test]
fn recreated_project_is_empty_and_old_tokens_are_401() {
    let srv = InProc::start(json!({"persistence": "sync"}));
    let (old_write, old_read) = create_project(&srv, "p");
    assert_eq!(
        srv.req("PUT", "/v1/kv/p/k", Some(&old_write), b"v").status,
        201
    );
    assert_eq!(
        srv.req("DELETE", "/v1/projects/p", Some(ADMIN), b"").status,
        204
    );
    let (new_write, _) = create_project(&srv, "p");
    assert_ne!(new_write, old_write);
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
    assert_eq!(list_keys(&srv, "p", ""), json!({"keys":[],"next":null}));
    assert_eq!(get(&srv, "/v1/projects/p").json()["version"], 0);
    for old in [&old_write, &old_read] {
        let r = srv.req("GET", "/v1/kv/p/k", Some(old), b"");
        r.assert_error(401, "unauthorized");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    assert_eq!(
        srv.req("PUT", "/v1/kv/p/k", Some(&new_write), b"v").status,
        201
    );
}

#[test]
fn config_project_is_listed_with_source_config() {
    let srv = InProc::start(sync(config_project()));
    assert_eq!(
        get(&srv, "/v1/projects").json(),
        json!({"projects":[{"name":"cfg","keys":0,"bytes":0,"persistence":"sync","source":"config"}]})
    );
    assert_eq!(
        get(&srv, "/v1/projects/cfg").json(),
        json!({"name":"cfg","keys":0,"bytes":0,"persistence":"sync","source":"config","version":0,"max_keys":null,"max_bytes":null})
    );
}

#[test]
fn config_token_can_write_its_project() {
    let srv = InProc::start(sync(config_project()));
    let r = srv.req("PUT", "/v1/kv/cfg/k", Some(CFG_WRITE), b"v");
    assert_eq!(r.status, 201, "{}", r.text());
    let r = srv.req("GET", "/v1/kv/cfg/k", Some(CFG_WRITE), b"");
    assert_eq!(r.body, b"v");
}

#[test]
fn deleting_a_config_project_is_409_project_in_config() {
    let srv = InProc::start(sync(config_project()));
    srv.req("DELETE", "/v1/projects/cfg", Some(ADMIN), b"")
        .assert_error(409, "project_in_config");
    assert_eq!(get(&srv, "/v1/projects/cfg").status, 200);
}

#[test]
fn patching_a_config_project_is_409_project_in_config() {
    let srv = InProc::start(sync(config_project()));
    srv.req(
        "PATCH",
        "/v1/projects/cfg",
        Some(ADMIN),
        br#"{"persistence":"memory"}"#,
    )
    .assert_error(409, "project_in_config");
    assert_eq!(get(&srv, "/v1/projects/cfg").json()["persistence"], "sync");
}

#[test]
fn patch_project_changes_persistence() {
    let srv = InProc::with_p(json!({"persistence": "sync"})).0;
    put_ok(&srv, "/v1/kv/p/k", b"abc");
    let r = srv.req(
        "PATCH",
        "/v1/projects/p",
        Some(ADMIN),
        br#"{"persistence":"memory"}"#,
    );
    assert_json(&r, 200);
    let j = r.json();
    assert_eq!(
        j,
        json!({"name":"p","keys":1,"bytes":4,"persistence":"memory","source":"api",
               "version": j["version"], "max_keys": null, "max_bytes": null})
    );
    assert!(j["version"].is_u64(), "{j}");
    assert_eq!(get(&srv, "/v1/projects/p").json(), j);
    assert_eq!(get(&srv, "/v1/kv/p/k").body, b"abc");
}

#[test]
fn patch_project_with_unknown_persistence_is_400() {
    let srv = InProc::with_p(json!({"persistence": "sync"})).0;
    let r = srv.req(
        "PATCH",
        "/v1/projects/p",
        Some(ADMIN),
        br#"{"persistence":"disk"}"#,
    );
    assert_some_error(&r, 400);
    assert_eq!(get(&srv, "/v1/projects/p").json()["persistence"], "sync");
}
