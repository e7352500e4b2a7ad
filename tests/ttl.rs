//! Expiry (`?ttl=`): `X-Expires-At`, its bounds, and what an expired key is everywhere (GET,
//! HEAD, listings, counts, versions, counters, batches, DELETE, PUT). In-process, where the
//! test moves the clock instead of sleeping; restarts and the data directory use the real
//! binary.

mod common;
use common::*;

use serde_json::json;
use std::thread::sleep;
use std::time::Duration;

/// Move the clock second by second until GET `path` answers 404 (a `ttl=1` key expired), within
/// `EXPIRY_LIMIT`.
fn expire(srv: &InProc, path: &str) {
    let gone = (0..EXPIRY_LIMIT.as_secs()).any(|_| {
        srv.pass(1);
        get(srv, path).status == 404
    });
    assert!(gone, "{path} still there {EXPIRY_LIMIT:?} after a 1 s ttl");
}

/// Wait until GET `path` answers 404 (the key expired on the real server).
fn wait_expired(srv: &Server, path: &str) {
    assert!(
        wait_until(EXPIRY_LIMIT, || get(srv, path).status == 404),
        "{path} still there {EXPIRY_LIMIT:?} after a 1 s ttl"
    );
}

#[test]
fn put_with_ttl_gives_x_expires_at_now_plus_ttl_on_get_and_head() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let before = now_secs();
    assert_eq!(put(&srv, "/v1/kv/p/k?ttl=100", b"v").status, 201);
    let after = now_secs();
    let r = get(&srv, "/v1/kv/p/k");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"v");
    let at = expires_at(&r);
    assert!(
        at + 2 >= before + 100 && at <= after + 100 + 2,
        "X-Expires-At {at}, put between {before} and {after}"
    );
    let h = srv.req("HEAD", "/v1/kv/p/k", Some(ADMIN), b"");
    assert_eq!(h.status, 200);
    assert_eq!(h.header("x-expires-at"), Some(at.to_string().as_str()));
}

#[test]
fn key_without_ttl_has_no_x_expires_at() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k", b"v");
    let r = get(&srv, "/v1/kv/p/k");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-expires-at"), None);
}

#[test]
fn plain_put_clears_the_expiry() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=100", b"v1");
    expires_at(&get(&srv, "/v1/kv/p/k"));
    assert_eq!(put(&srv, "/v1/kv/p/k", b"v2").status, 200);
    let r = get(&srv, "/v1/kv/p/k");
    assert_eq!(r.body, b"v2");
    assert_eq!(r.header("x-expires-at"), None);
}

#[test]
fn put_with_a_new_ttl_replaces_the_expiry() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=100", b"v");
    let first = expires_at(&get(&srv, "/v1/kv/p/k"));
    put_ok(&srv, "/v1/kv/p/k?ttl=5000", b"v");
    let second = expires_at(&get(&srv, "/v1/kv/p/k"));
    assert!(second >= first + 4900 - 2, "first {first}, second {second}");
}

#[test]
fn ttl_that_is_not_a_whole_number_from_1_to_315360000_is_400_invalid_parameter() {
    let (srv, _, _) = InProc::with_p(json!({}));
    for ttl in [
        "0",
        "-1",
        "315360001",
        "1.5",
        "abc",
        "",
        "1e3",
        "99999999999999999999",
    ] {
        let r = put(&srv, &format!("/v1/kv/p/k?ttl={ttl}"), b"v");
        assert_eq!(r.status, 400, "ttl={ttl:?}: {}", r.text());
        r.assert_error(400, "invalid_parameter");
    }
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
    assert_eq!(project_version(&srv), 0);
}

#[test]
fn ttl_of_315360000_seconds_is_accepted() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let before = now_secs();
    assert_eq!(put(&srv, "/v1/kv/p/k?ttl=315360000", b"v").status, 201);
    let at = expires_at(&get(&srv, "/v1/kv/p/k"));
    assert!(at + 2 >= before + 315360000 && at <= now_secs() + 315360000 + 2);
}

#[test]
fn key_with_ttl_2_is_still_there_at_once() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=2", b"v");
    assert_eq!(get(&srv, "/v1/kv/p/k").status, 200);
}

#[test]
fn expired_key_get_is_404_key_not_found() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"v");
    expire(&srv, "/v1/kv/p/k");
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
}

#[test]
fn expired_key_head_is_404() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"v");
    expire(&srv, "/v1/kv/p/k");
    let (r, rest) = srv.req_close("HEAD", "/v1/kv/p/k", &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-expires-at"), None);
    assert!(rest.is_empty(), "HEAD sent a body: {rest:?}");
}

#[test]
fn expired_key_is_left_out_of_listings() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"1");
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"v");
    put_ok(&srv, "/v1/kv/p/z", b"2");
    assert_eq!(list_json(&srv, "")["keys"], json!(["a", "k", "z"]));
    expire(&srv, "/v1/kv/p/k");
    assert_eq!(
        list_json(&srv, ""),
        json!({"keys": ["a", "z"], "next": null})
    );
    let r = get(&srv, "/v1/kv/p?format=text");
    assert_eq!(r.text(), "a\nz\n");
}

#[test]
fn expired_key_is_not_counted_in_project_keys_and_bytes() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/keep", b"x");
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"vv");
    let p = project(&srv, "p");
    assert_eq!(
        (p["keys"].clone(), p["bytes"].clone()),
        (json!(2), json!(8))
    );
    expire(&srv, "/v1/kv/p/k");
    let p = project(&srv, "p");
    assert_eq!(
        (p["keys"].clone(), p["bytes"].clone()),
        (json!(1), json!(5))
    );
    let listed = get(&srv, "/v1/projects").json();
    let entry = &listed["projects"][0];
    assert_eq!(entry["name"], "p");
    assert_eq!(
        (entry["keys"].clone(), entry["bytes"].clone()),
        (json!(1), json!(5))
    );
}

#[test]
fn expiry_removal_takes_one_project_version() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"v");
    assert_eq!(project_version(&srv), 1);
    expire(&srv, "/v1/kv/p/k");
    assert!(
        wait_until(Duration::from_secs(2), || project_version(&srv) == 2),
        "project version after the expiry: {}",
        project_version(&srv)
    );
    assert_eq!(put(&srv, "/v1/kv/p/other", b"x").json()["version"], 3);
}

#[test]
fn incr_on_an_expired_key_starts_again_at_zero() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/c?ttl=1", b"41");
    expire(&srv, "/v1/kv/p/c");
    let r = post(&srv, "/v1/kv/p/c?incr=1", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "1");
    let g = get(&srv, "/v1/kv/p/c");
    assert_eq!(g.body, b"1");
    assert_eq!(g.header("x-expires-at"), None);
}

#[test]
fn batch_check_sees_an_expired_key_as_absent() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"v");
    expire(&srv, "/v1/kv/p/k");
    let r = batch(
        &srv,
        json!({"ops": [{"op": "check", "key": "k", "version": 0}]}),
    );
    assert_json(&r, 200);
    assert_eq!(
        r.json()["results"],
        json!([{"op": "check", "key": "k", "version": 0}])
    );
    let r = batch(&srv, json!({"ops": [{"op": "check", "key": "k"}]}));
    assert_batch_error(&r, 409, "condition_failed", 0);
}

#[test]
fn delete_of_an_expired_key_is_404() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"v");
    expire(&srv, "/v1/kv/p/k");
    delete(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
}

#[test]
fn put_on_an_expired_key_answers_201_created() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"old");
    expire(&srv, "/v1/kv/p/k");
    let r = put(&srv, "/v1/kv/p/k", b"new");
    assert_json(&r, 201);
    assert_eq!(r.json()["key"], "k");
    let g = get(&srv, "/v1/kv/p/k");
    assert_eq!(g.body, b"new");
    assert_eq!(g.header("x-expires-at"), None);
}

/// Put a key with a long ttl and a plain one, restart, and find both as they were.
fn ttl_and_versions_survive_a_restart(mode: &str) {
    let (srv, _, _) = Server::with_p(json!({"persistence": mode, "interval_ms": 200}));
    assert_eq!(put_ok(&srv, "/v1/kv/p/k?ttl=3600", b"ttl"), 1);
    assert_eq!(put_ok(&srv, "/v1/kv/p/plain", b"x"), 2);
    assert_eq!(put_ok(&srv, "/v1/kv/p/k?ttl=7200", b"ttl2"), 3);
    let before = get(&srv, "/v1/kv/p/k");
    let at = expires_at(&before);

    let srv = srv.restart();
    let r = get(&srv, "/v1/kv/p/k");
    assert_value(&r, b"ttl2", "application/octet-stream", 3);
    assert_eq!(expires_at(&r), at);
    let r = get(&srv, "/v1/kv/p/plain");
    assert_value(&r, b"x", "application/octet-stream", 2);
    assert_eq!(r.header("x-expires-at"), None);
    assert_eq!(project_version(&srv), 3);
    assert_eq!(put_ok(&srv, "/v1/kv/p/next", b"n"), 4);
}

#[test]
fn sync_restart_keeps_x_expires_at_and_versions() {
    ttl_and_versions_survive_a_restart("sync");
}

#[test]
fn interval_restart_keeps_x_expires_at_and_versions() {
    ttl_and_versions_survive_a_restart("interval");
}

/// Let a key expire while the server runs, restart, and find it still gone.
fn expired_key_stays_gone_after_restart(mode: &str) {
    let (srv, _, _) = Server::with_p(json!({"persistence": mode, "interval_ms": 200}));
    put_ok(&srv, "/v1/kv/p/keep", b"x");
    put_ok(&srv, "/v1/kv/p/k?ttl=1", b"v");
    wait_expired(&srv, "/v1/kv/p/k");
    let srv = srv.restart();
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
    assert_eq!(list_json(&srv, ""), json!({"keys": ["keep"], "next": null}));
    assert_eq!(project(&srv, "p")["keys"], 1);
}

#[test]
fn sync_key_that_expired_stays_gone_after_restart() {
    expired_key_stays_gone_after_restart("sync");
}

#[test]
fn interval_key_that_expired_stays_gone_after_restart() {
    expired_key_stays_gone_after_restart("interval");
}

#[test]
fn key_that_expired_while_the_server_was_down_is_gone_at_start() {
    let (srv, _, _) = Server::with_p(json!({"persistence": "sync"}));
    put_ok(&srv, "/v1/kv/p/keep", b"x");
    put_ok(&srv, "/v1/kv/p/k?ttl=3", b"v");
    let at = expires_at(&get(&srv, "/v1/kv/p/k"));
    let mut srv = srv;
    srv.stop();
    assert!(
        now_secs() < at,
        "the server took until the expiry to stop; nothing to test"
    );
    // Wait past the expiry second while nothing runs.
    while now_secs() <= at {
        sleep(Duration::from_millis(100));
    }
    let srv = srv.restart();
    get(&srv, "/v1/kv/p/k").assert_error(404, "key_not_found");
    assert_eq!(list_json(&srv, ""), json!({"keys": ["keep"], "next": null}));
    assert_eq!(project(&srv, "p")["keys"], 1);
}

/// Let a key expire and see the data directory drop it (what a restart would load), without
/// any restart: the expiry is journaled like a DELETE.
fn expired_key_leaves_the_data_directory(mode: &str) {
    let (srv, _, _) = Server::with_p(json!({"persistence": mode, "interval_ms": 200}));
    put_ok(&srv, "/v1/kv/p/keep", b"x");
    put_ok(&srv, "/v1/kv/p/ephemeral?ttl=1", b"v");
    let saved = on_disk(&srv, "p");
    assert!(saved.contains("\"ephemeral\""), "{saved}");
    wait_expired(&srv, "/v1/kv/p/ephemeral");
    let mut saved = String::new();
    assert!(
        wait_until(Duration::from_secs(2), || {
            saved = on_disk(&srv, "p");
            saved.contains("\"keep\"") && !saved.contains("\"ephemeral\"")
        }),
        "the data directory still holds the expired key (or lost the other):\n{saved}"
    );
}

#[test]
fn sync_expired_key_leaves_the_data_directory() {
    expired_key_leaves_the_data_directory("sync");
}

#[test]
fn interval_expired_key_leaves_the_data_directory() {
    expired_key_leaves_the_data_directory("interval");
}
