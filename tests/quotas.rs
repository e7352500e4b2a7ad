//! Quotas: `limits.max_keys_per_project`, a project's `max_keys` and `max_bytes` from
//! config.json or PATCH, against PUT, POST ?incr, batches and imports. In-process, but for a
//! restart that keeps them (the real binary).

mod common;
use common::*;

use serde_json::{json, Value};

fn start_with_quota_2() -> InProc {
    let srv = InProc::start(json!({ "limits": { "max_keys_per_project": 2 } }));
    create_project(&srv, "p");
    put_ok(&srv, "/v1/kv/p/k1", b"v");
    put_ok(&srv, "/v1/kv/p/k2", b"v");
    srv
}

#[test]
fn new_key_past_max_keys_per_project_is_507_quota_exceeded() {
    let srv = start_with_quota_2();
    let r = put(&srv, "/v1/kv/p/k3", b"v");
    r.assert_error(507, "quota_exceeded");
    let msg = r.json()["message"].as_str().unwrap().to_string();
    assert!(msg.contains("max_keys_per_project"), "message: {msg}");
    get(&srv, "/v1/kv/p/k3").assert_error(404, "key_not_found");
}

#[test]
fn replacing_a_key_at_the_quota_still_works() {
    let srv = start_with_quota_2();
    let r = put(&srv, "/v1/kv/p/k1", b"new");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get(&srv, "/v1/kv/p/k1").body, b"new");
}

#[test]
fn deleting_a_key_frees_quota() {
    let srv = start_with_quota_2();
    assert_eq!(
        srv.req("DELETE", "/v1/kv/p/k1", Some(ADMIN), b"").status,
        204
    );
    assert_eq!(put(&srv, "/v1/kv/p/k3", b"v").status, 201);
}

/// Config project `q` with these quota fields and a write token.
fn start_q(quota: Value) -> InProc {
    let mut q = json!({ "tokens": [{ "label": "ci", "access": "write", "secret": CFG_WRITE }] });
    for (k, v) in quota.as_object().unwrap() {
        q[k] = v.clone();
    }
    InProc::start(json!({ "persistence": "sync", "projects": { "q": q } }))
}

#[test]
fn project_answers_show_null_quotas_by_default() {
    let (srv, _, _) = InProc::with_p(json!({"persistence": "sync"}));
    assert_eq!(
        project(&srv, "p"),
        json!({ "name": "p", "keys": 0, "bytes": 0, "persistence": "sync", "source": "api",
                "version": 0, "max_keys": null, "max_bytes": null })
    );
}

#[test]
fn config_quotas_show_in_the_project_answer() {
    let srv = start_q(json!({ "max_keys": 2, "max_bytes": 64 }));
    put_ok(&srv, "/v1/kv/q/ab", b"xyz");
    assert_eq!(
        project(&srv, "q"),
        json!({ "name": "q", "keys": 1, "bytes": 5, "persistence": "sync", "source": "config",
                "version": 1, "max_keys": 2, "max_bytes": 64 })
    );
}

#[test]
fn config_max_keys_refuses_a_new_key_with_507_naming_it() {
    let srv = start_q(json!({ "max_keys": 2 }));
    put_ok(&srv, "/v1/kv/q/a", b"1");
    put_ok(&srv, "/v1/kv/q/b", b"2");
    assert_quota(&put_as(&srv, CFG_WRITE, "/v1/kv/q/c", b"3"), "max_keys", 2);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/q/c").status, 404);
    let p = project(&srv, "q");
    assert_eq!(
        (p["keys"].clone(), p["version"].clone()),
        (json!(2), json!(2))
    );
}

#[test]
fn config_max_bytes_refuses_a_put_that_would_pass_it_with_507_naming_it() {
    let srv = start_q(json!({ "max_bytes": 10 }));
    put_ok(&srv, "/v1/kv/q/a", b"123456789"); // 1 + 9 = 10 bytes: exactly at the quota
    assert_quota(&put_as(&srv, CFG_WRITE, "/v1/kv/q/b", b""), "max_bytes", 10);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/q/b").status, 404);
    assert_eq!(project(&srv, "q")["bytes"], 10);
}

#[test]
fn growing_replace_past_max_bytes_is_507_and_keeps_the_old_value() {
    let srv = start_q(json!({ "max_bytes": 10 }));
    put_ok(&srv, "/v1/kv/q/a", b"12345");
    assert_quota(
        &put_as(&srv, CFG_WRITE, "/v1/kv/q/a", b"1234567890"),
        "max_bytes",
        10,
    );
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/q/a").body, b"12345");
}

#[test]
fn replace_at_max_keys_is_allowed() {
    let srv = start_q(json!({ "max_keys": 1 }));
    put_ok(&srv, "/v1/kv/q/a", b"1");
    let r = put_as(&srv, CFG_WRITE, "/v1/kv/q/a", b"2");
    assert_json(&r, 200);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/q/a").body, b"2");
}

#[test]
fn patch_on_a_config_project_is_409_project_in_config() {
    let srv = start_q(json!({ "max_keys": 2 }));
    patch(&srv, "q", json!({ "max_keys": 5 })).assert_error(409, "project_in_config");
    assert_eq!(project(&srv, "q")["max_keys"], 2);
}

#[test]
fn patch_sets_quotas_and_answers_the_project() {
    let (srv, _, _) = InProc::with_p(json!({"persistence": "sync"}));
    put_ok(&srv, "/v1/kv/p/ab", b"xyz");
    let r = patch(&srv, "p", json!({ "max_keys": 3, "max_bytes": 100 }));
    assert_json(&r, 200);
    let expected = json!({ "name": "p", "keys": 1, "bytes": 5, "persistence": "sync",
                           "source": "api", "version": 1, "max_keys": 3, "max_bytes": 100 });
    assert_eq!(r.json(), expected);
    assert_eq!(project(&srv, "p"), expected);
}

#[test]
fn patch_leaves_an_absent_quota_field_unchanged() {
    let (srv, _, _) = InProc::with_p(json!({}));
    assert_json(&patch(&srv, "p", json!({ "max_keys": 3 })), 200);
    let r = patch(&srv, "p", json!({ "max_bytes": 100 }));
    assert_json(&r, 200);
    assert_eq!(
        (r.json()["max_keys"].clone(), r.json()["max_bytes"].clone()),
        (json!(3), json!(100))
    );
}

#[test]
fn patch_with_null_clears_a_quota() {
    let (srv, _, _) = InProc::with_p(json!({}));
    assert_json(
        &patch(&srv, "p", json!({ "max_keys": 1, "max_bytes": 100 })),
        200,
    );
    put_ok(&srv, "/v1/kv/p/a", b"1");
    let r = patch(&srv, "p", json!({ "max_keys": null }));
    assert_json(&r, 200);
    assert_eq!(r.json()["max_keys"], Value::Null);
    assert_eq!(r.json()["max_bytes"], 100);
    assert_eq!(put_as(&srv, ADMIN, "/v1/kv/p/b", b"2").status, 201);
}

#[test]
fn patch_with_a_quota_that_is_not_a_number_or_null_is_400_invalid_json() {
    let (srv, _, _) = InProc::with_p(json!({}));
    for body in [json!({ "max_keys": -1 }), json!({ "max_bytes": "10" })] {
        patch(&srv, "p", body).assert_error(400, "invalid_json");
    }
    assert_eq!(project(&srv, "p")["max_keys"], Value::Null);
}

#[test]
fn replace_with_a_smaller_value_passes_above_a_lowered_max_bytes() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"0123456789");
    put_ok(&srv, "/v1/kv/p/b", b"0123456789"); // 22 bytes in all
    assert_json(&patch(&srv, "p", json!({ "max_bytes": 15 })), 200);
    let r = put_as(&srv, ADMIN, "/v1/kv/p/a", b"01234"); // 17 bytes: still above, but smaller
    assert_json(&r, 200);
    assert_eq!(project(&srv, "p")["bytes"], 17);
    let r = put_as(&srv, ADMIN, "/v1/kv/p/a", b"56789"); // the same size: no growth
    assert_json(&r, 200);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/a").body, b"56789");
}

#[test]
fn growing_replace_above_a_lowered_max_bytes_is_507() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"0123456789");
    put_ok(&srv, "/v1/kv/p/b", b"0123456789");
    assert_json(&patch(&srv, "p", json!({ "max_bytes": 15 })), 200);
    assert_quota(
        &put_as(&srv, ADMIN, "/v1/kv/p/a", b"0123456789x"),
        "max_bytes",
        15,
    );
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/a").body, b"0123456789");
    assert_eq!(project(&srv, "p")["bytes"], 22);
}

#[test]
fn delete_passes_above_a_lowered_quota() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"0123456789");
    put_ok(&srv, "/v1/kv/p/b", b"0123456789");
    assert_json(
        &patch(&srv, "p", json!({ "max_keys": 1, "max_bytes": 5 })),
        200,
    );
    assert_eq!(
        srv.req("DELETE", "/v1/kv/p/a", Some(ADMIN), b"").status,
        204
    );
    assert_eq!(project(&srv, "p")["keys"], 1);
}

#[test]
fn new_key_above_a_lowered_max_keys_is_507_but_replace_passes() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"1");
    put_ok(&srv, "/v1/kv/p/b", b"2");
    assert_json(&patch(&srv, "p", json!({ "max_keys": 1 })), 200);
    assert_quota(&put_as(&srv, ADMIN, "/v1/kv/p/c", b"3"), "max_keys", 1);
    assert_json(&put_as(&srv, ADMIN, "/v1/kv/p/a", b"9"), 200);
    assert_eq!(project(&srv, "p")["keys"], 2);
}

#[test]
fn incr_creating_a_key_past_max_keys_is_507() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"1");
    assert_json(&patch(&srv, "p", json!({ "max_keys": 1 })), 200);
    let r = srv.req("POST", "/v1/kv/p/n?incr=1", Some(ADMIN), b"");
    assert_quota(&r, "max_keys", 1);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/n").status, 404);
}

#[test]
fn incr_growing_a_value_past_max_bytes_is_507_and_keeps_the_value() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/c", b"9"); // 2 bytes; "10" would make 3
    assert_json(&patch(&srv, "p", json!({ "max_bytes": 2 })), 200);
    let r = srv.req("POST", "/v1/kv/p/c?incr=1", Some(ADMIN), b"");
    assert_quota(&r, "max_bytes", 2);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/c").body, b"9");
    let r = srv.req("POST", "/v1/kv/p/c?incr=-1", Some(ADMIN), b"");
    assert_eq!((r.status, r.body), (200, b"8".to_vec()));
}

#[test]
fn batch_past_a_quota_is_507_with_the_index_and_applies_nothing() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"1");
    assert_json(&patch(&srv, "p", json!({ "max_keys": 2 })), 200);
    let version = project(&srv, "p")["version"].clone();
    let r = batch_as(
        &srv,
        ADMIN,
        json!({ "ops": [
            { "op": "put", "key": "a", "value": "replaced" },
            { "op": "put", "key": "b", "value": "2" },
            { "op": "put", "key": "c", "value": "3" },
        ] }),
    );
    assert_indexed_error(&r, 507, "quota_exceeded", 2);
    assert_quota_message(&r, "max_keys", 2);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/a").body, b"1");
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/b").status, 404);
    assert_eq!(project(&srv, "p")["version"], version);
}

#[test]
fn import_past_a_quota_is_507_and_imports_nothing() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"1");
    assert_json(&patch(&srv, "p", json!({ "max_keys": 2 })), 200);
    let body = [
        r#"{"key":"b","value":"2","content_type":null,"version":1,"expires_at":null}"#,
        r#"{"key":"c","value":"3","content_type":null,"version":1,"expires_at":null}"#,
    ]
    .join("\n");
    assert_quota(&import(&srv, ADMIN, "p", "", &body), "max_keys", 2);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/b").status, 404);
    assert_eq!(project(&srv, "p")["keys"], 1);
}

#[test]
fn global_max_keys_per_project_is_named_in_the_507() {
    let (srv, _, _) = InProc::with_p(json!({ "limits": { "max_keys_per_project": 1 } }));
    put_ok(&srv, "/v1/kv/p/a", b"1");
    assert_quota(
        &put_as(&srv, ADMIN, "/v1/kv/p/b", b"2"),
        "limits.max_keys_per_project",
        1,
    );
}

#[test]
fn restart_keeps_quotas_set_through_the_api() {
    let (srv, _, _) = Server::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"1");
    assert_json(
        &patch(&srv, "p", json!({ "max_keys": 1, "max_bytes": 500 })),
        200,
    );
    let srv = srv.restart();
    let p = project(&srv, "p");
    assert_eq!(
        (p["max_keys"].clone(), p["max_bytes"].clone()),
        (json!(1), json!(500))
    );
    assert_quota(&put_as(&srv, ADMIN, "/v1/kv/p/b", b"2"), "max_keys", 1);
}
