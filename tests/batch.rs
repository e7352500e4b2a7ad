//! Atomic batches (`POST /v1/kv/{project}`): results and the one shared version, checks,
//! all-or-nothing undo, limits, base64 values, TTLs and errors by index. In-process.

mod common;
use common::*;

use serde_json::{json, Value};

#[test]
fn batch_answers_every_result_with_one_shared_version() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/x", b"old");
    put_ok(&srv, "/v1/kv/p/y", b"y");
    let r = batch(
        &srv,
        json!({"ops": [
            {"op": "check", "key": "x", "version": 1},
            {"op": "put", "key": "a", "value": "A"},
            {"op": "put", "key": "x", "value": "new", "content_type": "text/plain"},
            {"op": "delete", "key": "y"},
            {"op": "delete", "key": "gone"}
        ]}),
    );
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({"version": 3, "results": [
            {"op": "check", "key": "x", "version": 1},
            {"op": "put", "key": "a", "version": 3, "created": true},
            {"op": "put", "key": "x", "version": 3, "created": false},
            {"op": "delete", "key": "y", "deleted": true},
            {"op": "delete", "key": "gone", "deleted": false}
        ]})
    );
    assert_value(
        &get(&srv, "/v1/kv/p/a"),
        b"A",
        "application/octet-stream",
        3,
    );
    assert_value(&get(&srv, "/v1/kv/p/x"), b"new", "text/plain", 3);
    get(&srv, "/v1/kv/p/y").assert_error(404, "key_not_found");
    assert_eq!(project_version(&srv), 3);
}

#[test]
fn batch_of_many_puts_takes_one_project_version_step() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/x", b"x");
    let ops: Vec<Value> = (0..10)
        .map(|i| json!({"op": "put", "key": format!("k{i}"), "value": "v"}))
        .collect();
    let r = batch(&srv, json!({ "ops": ops }));
    assert_json(&r, 200);
    assert_eq!(r.json()["version"], 2);
    for i in 0..10 {
        assert_eq!(
            get(&srv, &format!("/v1/kv/p/k{i}")).header("etag"),
            Some("\"2\"")
        );
    }
    assert_eq!(project_version(&srv), 2);
    assert_eq!(put_ok(&srv, "/v1/kv/p/next", b"n"), 3);
}

#[test]
fn batch_of_only_checks_takes_no_version() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/x", b"x");
    let r = batch(
        &srv,
        json!({"ops": [{"op": "check", "key": "x"}, {"op": "check", "key": "y", "version": 0}]}),
    );
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({"version": 1, "results": [
            {"op": "check", "key": "x", "version": 1},
            {"op": "check", "key": "y", "version": 0}
        ]})
    );
    assert_eq!(project_version(&srv), 1);
}

#[test]
fn failed_check_at_index_2_undoes_the_earlier_puts() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/x", b"old");
    let r = batch(
        &srv,
        json!({"ops": [
            {"op": "put", "key": "a", "value": "A"},
            {"op": "put", "key": "x", "value": "new"},
            {"op": "check", "key": "missing"}
        ]}),
    );
    assert_batch_error(&r, 409, "condition_failed", 2);
    get(&srv, "/v1/kv/p/a").assert_error(404, "key_not_found");
    assert_value(
        &get(&srv, "/v1/kv/p/x"),
        b"old",
        "application/octet-stream",
        1,
    );
    assert_eq!(project_version(&srv), 1);
    assert_eq!(project(&srv, "p")["keys"], 1);
    assert_eq!(put_ok(&srv, "/v1/kv/p/next", b"n"), 2);
}

#[test]
fn failed_check_undoes_an_earlier_delete() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/x", b"old");
    let r = batch(
        &srv,
        json!({"ops": [
            {"op": "delete", "key": "x"},
            {"op": "check", "key": "x", "version": 1}
        ]}),
    );
    assert_batch_error(&r, 409, "condition_failed", 1);
    assert_value(
        &get(&srv, "/v1/kv/p/x"),
        b"old",
        "application/octet-stream",
        1,
    );
    assert_eq!(project_version(&srv), 1);
}

#[test]
fn batch_version_0_requires_the_key_to_be_absent() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/x", b"x");
    let r = batch(
        &srv,
        json!({"ops": [{"op": "put", "key": "y", "value": "y", "version": 0}]}),
    );
    assert_json(&r, 200);
    assert_eq!(r.json()["results"][0]["created"], true);
    let r = batch(
        &srv,
        json!({"ops": [
            {"op": "put", "key": "z", "value": "z", "version": 0},
            {"op": "put", "key": "x", "value": "x2", "version": 0}
        ]}),
    );
    assert_batch_error(&r, 409, "condition_failed", 1);
    get(&srv, "/v1/kv/p/z").assert_error(404, "key_not_found");
    assert_eq!(get(&srv, "/v1/kv/p/x").body, b"x");
}

#[test]
fn batch_version_n_requires_the_key_at_that_version() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/x", b"x");
    let r = batch(
        &srv,
        json!({"ops": [{"op": "put", "key": "x", "value": "x2", "version": 1}]}),
    );
    assert_json(&r, 200);
    assert_eq!(
        r.json()["results"][0],
        json!({"op": "put", "key": "x", "version": 2, "created": false})
    );
    let r = batch(
        &srv,
        json!({"ops": [{"op": "delete", "key": "x", "version": 1}]}),
    );
    assert_batch_error(&r, 409, "condition_failed", 0);
    assert_value(
        &get(&srv, "/v1/kv/p/x"),
        b"x2",
        "application/octet-stream",
        2,
    );
    let r = batch(
        &srv,
        json!({"ops": [{"op": "delete", "key": "nothing", "version": 1}]}),
    );
    assert_batch_error(&r, 409, "condition_failed", 0);
}

#[test]
fn batch_check_without_version_requires_the_key_to_exist() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = batch(&srv, json!({"ops": [{"op": "check", "key": "missing"}]}));
    assert_batch_error(&r, 409, "condition_failed", 0);
}

#[test]
fn batch_delete_of_an_absent_key_without_version_is_not_an_error() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = batch(&srv, json!({"ops": [{"op": "delete", "key": "missing"}]}));
    assert_json(&r, 200);
    assert_eq!(
        r.json()["results"],
        json!([{"op": "delete", "key": "missing", "deleted": false}])
    );
}

#[test]
fn batch_past_the_key_quota_is_507_with_index_and_writes_nothing() {
    let (srv, _, _) = InProc::with_p(json!({"limits": {"max_keys_per_project": 2}}));
    put_ok(&srv, "/v1/kv/p/x", b"x");
    let r = batch(
        &srv,
        json!({"ops": [
            {"op": "put", "key": "x", "value": "x2"},
            {"op": "put", "key": "a", "value": "a"},
            {"op": "put", "key": "b", "value": "b"}
        ]}),
    );
    assert_batch_error(&r, 507, "quota_exceeded", 2);
    get(&srv, "/v1/kv/p/a").assert_error(404, "key_not_found");
    assert_value(
        &get(&srv, "/v1/kv/p/x"),
        b"x",
        "application/octet-stream",
        1,
    );
    assert_eq!(project_version(&srv), 1);
    assert_eq!(project(&srv, "p")["keys"], 1);
}

#[test]
fn batch_of_1000_ops_is_accepted() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let ops: Vec<Value> = (0..1000)
        .map(|i| json!({"op": "put", "key": format!("k{i:04}"), "value": "v"}))
        .collect();
    let r = batch(&srv, json!({ "ops": ops }));
    assert_json(&r, 200);
    assert_eq!(r.json()["results"].as_array().unwrap().len(), 1000);
    assert_eq!(project(&srv, "p")["keys"], 1000);
}

#[test]
fn batch_of_1001_ops_is_400_invalid_batch() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let ops: Vec<Value> = (0..1001)
        .map(|i| json!({"op": "put", "key": format!("k{i:04}"), "value": "v"}))
        .collect();
    batch(&srv, json!({ "ops": ops })).assert_error(400, "invalid_batch");
    assert_eq!(project(&srv, "p")["keys"], 0);
}

#[test]
fn batch_with_no_ops_is_400_invalid_batch() {
    let (srv, _, _) = InProc::with_p(json!({}));
    batch(&srv, json!({"ops": []})).assert_error(400, "invalid_batch");
}

#[test]
fn batch_with_an_unknown_op_is_400_invalid_batch_with_its_index() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = batch(
        &srv,
        json!({"ops": [{"op": "put", "key": "a", "value": "A"}, {"op": "frob", "key": "b"}]}),
    );
    assert_batch_error(&r, 400, "invalid_batch", 1);
    get(&srv, "/v1/kv/p/a").assert_error(404, "key_not_found");
}

#[test]
fn batch_value_or_ttl_on_a_non_put_op_is_400_invalid_batch_with_its_index() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = batch(
        &srv,
        json!({"ops": [
            {"op": "put", "key": "a", "value": "A"},
            {"op": "put", "key": "b", "value": "B"},
            {"op": "delete", "key": "a", "value": "x"}
        ]}),
    );
    assert_batch_error(&r, 400, "invalid_batch", 2);
    let r = batch(
        &srv,
        json!({"ops": [{"op": "check", "key": "a", "ttl": 5}]}),
    );
    assert_batch_error(&r, 400, "invalid_batch", 0);
    assert_eq!(project_version(&srv), 0);
}

#[test]
fn batch_with_invalid_base64_is_400_invalid_batch_with_its_index() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = batch(
        &srv,
        json!({"ops": [
            {"op": "put", "key": "a", "value": "A"},
            {"op": "put", "key": "b", "value": "not base64!", "base64": true}
        ]}),
    );
    assert_batch_error(&r, 400, "invalid_batch", 1);
    get(&srv, "/v1/kv/p/a").assert_error(404, "key_not_found");
}

#[test]
fn batch_op_with_an_unknown_field_is_400_invalid_json() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = batch(
        &srv,
        json!({"ops": [{"op": "put", "key": "a", "value": "A", "colour": "red"}]}),
    );
    r.assert_error(400, "invalid_json");
    get(&srv, "/v1/kv/p/a").assert_error(404, "key_not_found");
}

#[test]
fn batch_base64_value_is_stored_as_raw_bytes() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = batch(
        &srv,
        json!({"ops": [
            {"op": "put", "key": "bin", "value": "AAEC/w==", "base64": true},
            {"op": "put", "key": "img", "value": "iVBORw==", "base64": true, "content_type": "image/png"}
        ]}),
    );
    assert_json(&r, 200);
    assert_value(
        &get(&srv, "/v1/kv/p/bin"),
        &[0, 1, 2, 255],
        "application/octet-stream",
        1,
    );
    assert_value(
        &get(&srv, "/v1/kv/p/img"),
        &[0x89, b'P', b'N', b'G'],
        "image/png",
        1,
    );
}

#[test]
fn batch_put_with_ttl_sets_x_expires_at() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let before = now_secs();
    let r = batch(
        &srv,
        json!({"ops": [{"op": "put", "key": "k", "value": "v", "ttl": 100}, {"op": "put", "key": "plain", "value": "v"}]}),
    );
    assert_json(&r, 200);
    let at = expires_at(&get(&srv, "/v1/kv/p/k"));
    assert!(at + 2 >= before + 100 && at <= now_secs() + 100 + 2, "{at}");
    assert_eq!(get(&srv, "/v1/kv/p/plain").header("x-expires-at"), None);
}

#[test]
fn batch_with_a_read_token_is_403_forbidden() {
    let (srv, _, read) = InProc::with_p(json!({}));
    let body =
        serde_json::to_vec(&json!({"ops": [{"op": "check", "key": "a", "version": 0}]})).unwrap();
    srv.req("POST", "/v1/kv/p", Some(&read), &body)
        .assert_error(403, "forbidden");
}

#[test]
fn batch_put_with_a_ttl_outside_1_to_315360000_is_400_invalid_batch_with_its_index() {
    let (srv, _, _) = InProc::with_p(json!({}));
    for ttl in [0u64, 315360001] {
        let r = batch(
            &srv,
            json!({"ops": [
                {"op": "put", "key": "a", "value": "A"},
                {"op": "put", "key": "b", "value": "B", "ttl": ttl}
            ]}),
        );
        assert_batch_error(&r, 400, "invalid_batch", 1);
    }
    assert_eq!(project_version(&srv), 0);
}

#[test]
fn batch_put_with_a_ttl_that_is_not_a_whole_number_is_400_and_writes_nothing() {
    let (srv, _, _) = InProc::with_p(json!({}));
    for ttl in [json!(-1), json!(1.5), json!("5")] {
        let r = batch(
            &srv,
            json!({"ops": [
                {"op": "put", "key": "a", "value": "A"},
                {"op": "put", "key": "b", "value": "B", "ttl": ttl}
            ]}),
        );
        // The spec names no code for a ttl of the wrong JSON type: a shape error or a bad op.
        assert_json(&r, 400);
        let code = r.json()["error"].clone();
        assert!(
            code == "invalid_json" || code == "invalid_batch",
            "ttl {ttl}: {}",
            r.text()
        );
    }
    get(&srv, "/v1/kv/p/a").assert_error(404, "key_not_found");
    assert_eq!(project_version(&srv), 0);
}

#[test]
fn whole_numbers_written_as_floats_are_whole_numbers() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = batch(
        &srv,
        json!({"ops": [{"op": "put", "key": "a", "value": "A", "ttl": 60.0, "version": 0.0}]}),
    );
    assert_json(&r, 200);
    assert_eq!(r.json()["results"][0]["version"], 1);
    assert!(get(&srv, "/v1/kv/p/a").header("x-expires-at").is_some());
}

#[test]
fn a_wrong_type_names_the_op_and_field() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = batch(
        &srv,
        json!({"ops": [{"op": "put", "key": "a", "value": "A"}, {"op": "put", "key": "b", "value": "B", "ttl": "5"}]}),
    );
    r.assert_error(400, "invalid_json");
    assert_eq!(
        r.json()["message"],
        "the JSON body is invalid: ops[1].ttl: expected a whole number, got the string \"5\""
    );
}
