//! Listing a project's keys: byte order, `prefix`, `after`, `limit` and paging, `values=true`,
//! the `text`, `jsonl` and `json` formats and `Accept`, `X-Next-After` and `X-Project-Version`.
//! In-process.

mod common;
use common::*;

use serde_json::{json, Value};

fn keys(list: &Value) -> Vec<String> {
    list["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .map(|k| k.as_str().expect("key string").to_string())
        .collect()
}

#[test]
fn listing_returns_all_keys_in_byte_order_with_null_next() {
    let srv = InProc::with_p(json!({})).0;
    for k in ["b", "a", "B", "%C3%A9", "a/b", "aa"] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"v");
    }
    let r = get(&srv, "/v1/kv/p");
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({"keys":["B","a","a/b","aa","b","é"],"next":null})
    );
}

#[test]
fn listing_an_empty_project_is_empty() {
    let srv = InProc::with_p(json!({})).0;
    assert_eq!(list_keys(&srv, "p", ""), json!({"keys":[],"next":null}));
}

#[test]
fn listing_with_prefix_returns_only_matching_keys() {
    let srv = InProc::with_p(json!({})).0;
    for k in ["a1", "b1", "ab", "a2", "ba"] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"v");
    }
    assert_eq!(
        list_keys(&srv, "p", "prefix=a"),
        json!({"keys":["a1","a2","ab"],"next":null})
    );
    assert_eq!(
        list_keys(&srv, "p", "prefix=zz"),
        json!({"keys":[],"next":null})
    );
}

#[test]
fn listing_after_returns_keys_strictly_after() {
    let srv = InProc::with_p(json!({})).0;
    for k in ["k1", "k2", "k3", "k4", "k5"] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"v");
    }
    assert_eq!(
        list_keys(&srv, "p", "after=k2"),
        json!({"keys":["k3","k4","k5"],"next":null})
    );
    // `after` need not be an existing key.
    assert_eq!(
        list_keys(&srv, "p", "after=k25"),
        json!({"keys":["k3","k4","k5"],"next":null})
    );
    assert_eq!(
        list_keys(&srv, "p", "after=k5"),
        json!({"keys":[],"next":null})
    );
}

#[test]
fn listing_with_prefix_and_after_combines_both() {
    let srv = InProc::with_p(json!({})).0;
    for k in ["a1", "a2", "a3", "b1"] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"v");
    }
    assert_eq!(
        list_keys(&srv, "p", "prefix=a&after=a1&limit=1"),
        json!({"keys":["a2"],"next":"a2"})
    );
    assert_eq!(
        list_keys(&srv, "p", "prefix=a&after=a2&limit=1"),
        json!({"keys":["a3"],"next":null})
    );
}

#[test]
fn listing_pages_with_limit_until_next_is_null() {
    let srv = InProc::with_p(json!({})).0;
    let all = ["k1", "k2", "k3", "k4", "k5"];
    for k in all {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"v");
    }
    assert_eq!(
        list_keys(&srv, "p", "limit=2"),
        json!({"keys":["k1","k2"],"next":"k2"})
    );
    let mut seen = Vec::new();
    let mut query = "limit=2".to_string();
    for _ in 0..10 {
        let page = list_keys(&srv, "p", &query);
        let page_keys = keys(&page);
        assert!(page_keys.len() <= 2, "page too long: {page}");
        seen.extend(page_keys);
        match page["next"].as_str() {
            Some(next) => query = format!("limit=2&after={next}"),
            None => {
                assert!(page["next"].is_null(), "{page}");
                break;
            }
        }
    }
    assert_eq!(seen, all);
}

#[test]
fn listing_next_is_null_when_the_page_ends_exactly_at_the_last_key() {
    let srv = InProc::with_p(json!({})).0;
    for k in ["k1", "k2", "k3", "k4"] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"v");
    }
    assert_eq!(
        list_keys(&srv, "p", "limit=2&after=k2"),
        json!({"keys":["k3","k4"],"next":null})
    );
    assert_eq!(
        list_keys(&srv, "p", "limit=4"),
        json!({"keys":["k1","k2","k3","k4"],"next":null})
    );
}

#[test]
fn listing_limit_bounds_1_and_1000_are_accepted() {
    let srv = InProc::with_p(json!({})).0;
    put_ok(&srv, "/v1/kv/p/a", b"v");
    put_ok(&srv, "/v1/kv/p/b", b"v");
    assert_eq!(
        list_keys(&srv, "p", "limit=1"),
        json!({"keys":["a"],"next":"a"})
    );
    assert_eq!(
        list_keys(&srv, "p", "limit=1000"),
        json!({"keys":["a","b"],"next":null})
    );
}

#[test]
fn listing_default_limit_is_100() {
    let srv = InProc::with_p(json!({})).0;
    let all: Vec<String> = (0..150).map(|i| format!("k{i:03}")).collect();
    for k in &all {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"v");
    }
    let first = list_keys(&srv, "p", "");
    assert_eq!(keys(&first), all[..100]);
    assert_eq!(first["next"], "k099");
    let second = list_keys(&srv, "p", "after=k099");
    assert_eq!(keys(&second), all[100..]);
    assert!(second["next"].is_null(), "{second}");
}

#[test]
fn listing_rejects_out_of_range_or_non_numeric_limit() {
    let srv = InProc::with_p(json!({})).0;
    for q in ["limit=0", "limit=1001", "limit=abc", "limit=-1", "limit="] {
        let r = get(&srv, &format!("/v1/kv/p?{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        r.assert_error(400, "invalid_parameter");
    }
}

#[test]
fn listing_rejects_unknown_parameter() {
    let srv = InProc::with_p(json!({})).0;
    get(&srv, "/v1/kv/p?foo=1").assert_error(400, "unknown_parameter");
    get(&srv, "/v1/kv/p?limit=5&cursor=x").assert_error(400, "unknown_parameter");
}

#[test]
fn list_values_true_gives_utf8_as_strings_and_other_bytes_as_base64_with_a_flag() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", "text é".as_bytes());
    put_ok(&srv, "/v1/kv/p/b", &[0xff, 0x00]);
    put_ok(&srv, "/v1/kv/p/c", b"");
    let r = get(&srv, "/v1/kv/p?values=true");
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({"keys": [
            {"key": "a", "value": "text é", "version": 1},
            {"key": "b", "value": "/wA=", "base64": true, "version": 2},
            {"key": "c", "value": "", "version": 3}
        ], "next": null})
    );
}

#[test]
fn list_values_true_pages_like_the_plain_listing() {
    let (srv, _, _) = InProc::with_p(json!({}));
    for k in ["a", "b", "c"] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), k.as_bytes());
    }
    assert_eq!(
        list_json(&srv, "values=true&limit=2"),
        json!({"keys": [
            {"key": "a", "value": "a", "version": 1},
            {"key": "b", "value": "b", "version": 2}
        ], "next": "b"})
    );
}

#[test]
fn list_format_text_is_one_escaped_key_per_line() {
    let (srv, _, _) = InProc::with_p(json!({}));
    for path in ["a", "b%0Ac", "d%25e", "f%0Dg", "h%20i"] {
        put_ok(&srv, &format!("/v1/kv/p/{path}"), b"v");
    }
    let r = get(&srv, "/v1/kv/p?format=text");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), "a\nb%0Ac\nd%25e\nf%0Dg\nh i\n");
    assert_eq!(r.header("x-next-after"), None);
}

#[test]
fn list_format_text_of_no_keys_is_an_empty_body() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = get(&srv, "/v1/kv/p?format=text");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.body, b"");
}

/// The lines of a JSON-lines body, each parsed; every line must end with `\n`.
fn jsonl(r: &Resp) -> Vec<Value> {
    let text = r.text();
    assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn list_format_jsonl_is_one_object_per_line() {
    let (srv, _, _) = InProc::with_p(json!({}));
    for path in ["a", "b%0Ac"] {
        put_ok(&srv, &format!("/v1/kv/p/{path}"), b"v");
    }
    let r = get(&srv, "/v1/kv/p?format=jsonl");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(r.text().matches('\n').count(), 2, "{:?}", r.text());
    assert_eq!(jsonl(&r), vec![json!({"key": "a"}), json!({"key": "b\nc"})]);
}

#[test]
fn list_format_jsonl_with_values_carries_the_value_fields() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"text");
    put_ok(&srv, "/v1/kv/p/b", &[0xff]);
    let r = get(&srv, "/v1/kv/p?format=jsonl&values=true");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(
        jsonl(&r),
        vec![
            json!({"key": "a", "value": "text", "version": 1}),
            json!({"key": "b", "value": "/w==", "base64": true, "version": 2})
        ]
    );
}

#[test]
fn list_format_json_is_the_default_listing() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"v");
    assert_eq!(
        list_json(&srv, "format=json"),
        json!({"keys": ["a"], "next": null})
    );
}

#[test]
fn list_with_accept_text_plain_answers_text() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"v");
    put_ok(&srv, "/v1/kv/p/b", b"v");
    let r = get_h(&srv, "/v1/kv/p", &[("Accept", "text/plain")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), "a\nb\n");
}

#[test]
fn list_with_accept_ndjson_answers_jsonl() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"v");
    let r = get_h(&srv, "/v1/kv/p", &[("Accept", "application/x-ndjson")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(jsonl(&r), vec![json!({"key": "a"})]);
}

#[test]
fn list_format_parameter_wins_over_accept() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"v");
    let r = get_h(&srv, "/v1/kv/p?format=json", &[("Accept", "text/plain")]);
    assert_json(&r, 200);
    assert_eq!(r.json(), json!({"keys": ["a"], "next": null}));
}

#[test]
fn list_text_page_gives_the_next_after_percent_encoded_in_x_next_after() {
    let (srv, _, _) = InProc::with_p(json!({}));
    for path in ["a", "b%20c", "d"] {
        put_ok(&srv, &format!("/v1/kv/p/{path}"), b"v");
    }
    let r = get(&srv, "/v1/kv/p?format=text&limit=2");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "a\nb c\n");
    assert_eq!(r.header("x-next-after"), Some("b%20c"));
    let r = get(&srv, "/v1/kv/p?format=text&limit=2&after=b%20c");
    assert_eq!(r.text(), "d\n");
    assert_eq!(r.header("x-next-after"), None);
}

#[test]
fn list_jsonl_page_gives_the_next_after_in_x_next_after() {
    let (srv, _, _) = InProc::with_p(json!({}));
    for k in ["a", "b", "c"] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"v");
    }
    let r = get(&srv, "/v1/kv/p?format=jsonl&limit=1");
    assert_eq!(jsonl(&r), vec![json!({"key": "a"})]);
    assert_eq!(r.header("x-next-after"), Some("a"));
    let r = get(&srv, "/v1/kv/p?format=jsonl&limit=2&after=a");
    assert_eq!(jsonl(&r), vec![json!({"key": "b"}), json!({"key": "c"})]);
    assert_eq!(r.header("x-next-after"), None);
}

#[test]
fn every_listing_answers_x_project_version() {
    let (srv, _, _) = InProc::with_p(json!({}));
    assert_eq!(get(&srv, "/v1/kv/p").header("x-project-version"), Some("0"));
    put_ok(&srv, "/v1/kv/p/a", b"v");
    put_ok(&srv, "/v1/kv/p/b", b"v");
    assert_eq!(delete(&srv, "/v1/kv/p/b").status, 204);
    for query in [
        "",
        "?format=text",
        "?format=jsonl",
        "?values=true",
        "?prefix=zzz",
    ] {
        let r = get(&srv, &format!("/v1/kv/p{query}"));
        assert_eq!(r.status, 200, "{query}");
        assert_eq!(r.header("x-project-version"), Some("3"), "{query}");
    }
}

#[test]
fn list_values_true_with_format_text_is_400_invalid_parameter() {
    let (srv, _, _) = InProc::with_p(json!({}));
    get(&srv, "/v1/kv/p?values=true&format=text").assert_error(400, "invalid_parameter");
}

#[test]
fn list_with_an_unknown_format_is_400_invalid_parameter() {
    let (srv, _, _) = InProc::with_p(json!({}));
    for format in ["xml", "", "TEXT"] {
        let r = get(&srv, &format!("/v1/kv/p?format={format}"));
        assert_eq!(r.status, 400, "format={format:?}: {}", r.text());
        r.assert_error(400, "invalid_parameter");
    }
}

#[test]
fn list_with_a_bad_values_flag_is_400_invalid_parameter() {
    let (srv, _, _) = InProc::with_p(json!({}));
    get(&srv, "/v1/kv/p?values=maybe").assert_error(400, "invalid_parameter");
}
