//! Counters: `POST /v1/kv/{project}/{key}?incr=N`, its text answer, bounds, errors, and what it
//! keeps (expiry, Content-Type). In-process.

mod common;
use common::*;

use serde_json::json;

#[test]
fn incr_on_a_missing_key_starts_at_zero_and_answers_the_new_value_as_text() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = post(&srv, "/v1/kv/p/c?incr=5", b"");
    assert_value(&r, b"5", "text/plain", 1);
    assert_value(&get(&srv, "/v1/kv/p/c"), b"5", "text/plain", 1);
}

#[test]
fn incr_adds_to_the_stored_integer() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/c", b"40");
    assert_value(
        &post(&srv, "/v1/kv/p/c?incr=2", b""),
        b"42",
        "text/plain",
        2,
    );
    assert_eq!(get(&srv, "/v1/kv/p/c").body, b"42");
}

#[test]
fn incr_may_be_negative() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/c", b"10");
    assert_eq!(post(&srv, "/v1/kv/p/c?incr=-15", b"").text(), "-5");
    assert_eq!(post(&srv, "/v1/kv/p/d?incr=-3", b"").text(), "-3");
    assert_eq!(get(&srv, "/v1/kv/p/c").body, b"-5");
}

#[test]
fn incr_without_a_number_adds_one() {
    let (srv, _, _) = InProc::with_p(json!({}));
    assert_value(&post(&srv, "/v1/kv/p/c?incr", b""), b"1", "text/plain", 1);
    assert_value(&post(&srv, "/v1/kv/p/c?incr=", b""), b"2", "text/plain", 2);
}

#[test]
fn incr_trims_ascii_whitespace_around_the_stored_integer() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/c", b" 41\n");
    assert_eq!(post(&srv, "/v1/kv/p/c?incr=1", b"").text(), "42");
    assert_eq!(get(&srv, "/v1/kv/p/c").body, b"42");
}

#[test]
fn incr_on_a_value_that_is_not_an_integer_is_409_not_an_integer_and_changes_nothing() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let values: [&[u8]; 5] = [b"abc", b"1.5", b"", b"9223372036854775808", b"\xff"];
    for (i, value) in values.iter().enumerate() {
        let path = format!("/v1/kv/p/c{i}");
        let version = put_ok(&srv, &path, value);
        post(&srv, &format!("{path}?incr=1"), b"").assert_error(409, "not_an_integer");
        assert_value(
            &get(&srv, &path),
            value,
            "application/octet-stream",
            version,
        );
    }
    assert_eq!(project_version(&srv), values.len() as u64);
}

#[test]
fn incr_past_i64_max_is_409_overflow_and_changes_nothing() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let max = i64::MAX.to_string();
    put_ok(&srv, "/v1/kv/p/c", max.as_bytes());
    post(&srv, "/v1/kv/p/c?incr=1", b"").assert_error(409, "overflow");
    assert_value(
        &get(&srv, "/v1/kv/p/c"),
        max.as_bytes(),
        "application/octet-stream",
        1,
    );
    assert_eq!(project_version(&srv), 1);
}

#[test]
fn incr_past_i64_min_is_409_overflow_and_changes_nothing() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let min = i64::MIN.to_string();
    put_ok(&srv, "/v1/kv/p/c", min.as_bytes());
    post(&srv, "/v1/kv/p/c?incr=-1", b"").assert_error(409, "overflow");
    assert_eq!(get(&srv, "/v1/kv/p/c").body, min.as_bytes());
    assert_eq!(project_version(&srv), 1);
}

#[test]
fn incr_keeps_the_expiry() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/c?ttl=3600", b"1");
    let at = expires_at(&get(&srv, "/v1/kv/p/c"));
    assert_eq!(post(&srv, "/v1/kv/p/c?incr=1", b"").status, 200);
    let r = get(&srv, "/v1/kv/p/c");
    assert_eq!(r.body, b"2");
    assert_eq!(expires_at(&r), at);
}

#[test]
fn incr_keeps_the_content_type() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_h(
        &srv,
        "/v1/kv/p/c",
        &[("Content-Type", "application/json")],
        b"7",
    );
    assert_value(&post(&srv, "/v1/kv/p/c?incr=1", b""), b"8", "text/plain", 2);
    assert_value(&get(&srv, "/v1/kv/p/c"), b"8", "application/json", 2);
}

#[test]
fn incr_etag_is_the_new_version_of_the_key() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"x");
    put_ok(&srv, "/v1/kv/p/c", b"1");
    let r = post(&srv, "/v1/kv/p/c?incr=1", b"");
    assert_eq!(r.header("etag"), Some("\"3\""));
    assert_eq!(get(&srv, "/v1/kv/p/c").header("etag"), Some("\"3\""));
    assert_eq!(project_version(&srv), 3);
}

#[test]
fn post_on_a_key_without_incr_is_400_invalid_parameter() {
    let (srv, _, _) = InProc::with_p(json!({}));
    post(&srv, "/v1/kv/p/c", b"").assert_error(400, "invalid_parameter");
    get(&srv, "/v1/kv/p/c").assert_error(404, "key_not_found");
}

#[test]
fn incr_that_is_not_a_64_bit_whole_number_is_400_invalid_parameter() {
    let (srv, _, _) = InProc::with_p(json!({}));
    for n in ["abc", "1.5", "9223372036854775808", "1e3", "%2B%2B1"] {
        let r = post(&srv, &format!("/v1/kv/p/c?incr={n}"), b"");
        assert_eq!(r.status, 400, "incr={n}: {}", r.text());
        r.assert_error(400, "invalid_parameter");
    }
    get(&srv, "/v1/kv/p/c").assert_error(404, "key_not_found");
}

#[test]
fn incr_with_a_body_is_400_bad_request() {
    let (srv, _, _) = InProc::with_p(json!({}));
    post(&srv, "/v1/kv/p/c?incr=1", b"5").assert_error(400, "bad_request");
    get(&srv, "/v1/kv/p/c").assert_error(404, "key_not_found");
}

#[test]
fn incr_with_a_read_token_is_403_forbidden() {
    let (srv, write, read) = InProc::with_p(json!({}));
    srv.req("POST", "/v1/kv/p/c?incr=1", Some(&read), b"")
        .assert_error(403, "forbidden");
    get(&srv, "/v1/kv/p/c").assert_error(404, "key_not_found");
    let r = srv.req("POST", "/v1/kv/p/c?incr=1", Some(&write), b"");
    assert_value(&r, b"1", "text/plain", 1);
}
