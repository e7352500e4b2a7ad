//! Backups: `GET /v1/projects/{project}/export` (chunked NDJSON, byte order, expiry), `POST
//! …/import` (merge, replace, errors by line, limits), and the offline `pykv export`. In-process,
//! but for what the connection does around a streamed body, curl and the command (the real
//! binary).

mod common;
use common::*;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

/// `GET /v1/projects/{project}/export` with `token`, read on a keep-alive connection.
fn export_on(s: &mut TcpStream, project: &str, token: &str) -> Resp {
    let path = format!("/v1/projects/{project}/export");
    s.write_all(&request_bytes("GET", &path, Some(token), &[], b""))
        .unwrap();
    read_response(s, false).expect("response")
}

/// The export of `project` as admin, which must answer 200; its body as text.
fn export_text(srv: &impl Api, project: &str) -> String {
    let r = export(srv, project, ADMIN);
    assert_eq!(r.status, 200, "{}", r.text());
    String::from_utf8(r.body).expect("an export is UTF-8")
}

/// Project `p` holding text, binary, TTL, JSON and multi-line values; returns the exact lines
/// its export must have.
fn fill_known(srv: &impl Api) -> Vec<String> {
    let va = put_typed_ok(srv, "/v1/kv/p/a", Some("text/plain"), b"hello");
    let vb = put_ok(srv, "/v1/kv/p/b", &[0, 1, 2, 255]);
    let vc = put_typed_ok(
        srv,
        "/v1/kv/p/c?ttl=3600",
        Some("application/json"),
        br#"{"n":1}"#,
    );
    let vd = put_typed_ok(srv, "/v1/kv/p/d/e", Some("text/plain"), b"line1\nline2");
    let r = get_as(srv, ADMIN, "/v1/kv/p/c");
    assert_eq!(r.status, 200);
    let expires: u64 = r
        .header("x-expires-at")
        .expect("X-Expires-At")
        .parse()
        .unwrap();
    assert!(expires >= now_secs() + 3590, "{expires}");
    vec![
        format!(
            r#"{{"key":"a","value":"hello","content_type":"text/plain","version":{va},"expires_at":null}}"#
        ),
        format!(
            r#"{{"key":"b","base64":"AAEC/w==","content_type":null,"version":{vb},"expires_at":null}}"#
        ),
        format!(
            r#"{{"key":"c","value":"{{\"n\":1}}","content_type":"application/json","version":{vc},"expires_at":{expires}}}"#
        ),
        format!(
            r#"{{"key":"d/e","value":"line1\nline2","content_type":"text/plain","version":{vd},"expires_at":null}}"#
        ),
    ]
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// Export lines without their `version` (which an import renumbers).
fn without_versions(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("an export line is JSON");
            v.as_object_mut().unwrap().remove("version");
            v
        })
        .collect()
}

/// `pykv export` with these arguments.
fn pykv_export(args: &[&str]) -> Run {
    run(Command::new(bin())
        .arg("export")
        .args(args)
        .env_remove("PYKV_CONFIG")
        .env_remove("PYKV_ADMIN_TOKEN"))
}

#[test]
fn export_streams_one_exact_line_per_key_in_byte_order() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let expected = fill_known(&srv);
    assert_eq!(lines(&export_text(&srv, "p")), expected);
}

#[test]
fn export_is_chunked_ndjson_with_the_project_version() {
    let (srv, _, _) = InProc::with_p(json!({}));
    fill_known(&srv);
    let version = project(&srv, "p")["version"].as_u64().unwrap();
    let r = export(&srv, "p", ADMIN);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    assert_eq!(
        r.header("x-project-version"),
        Some(version.to_string().as_str())
    );
    assert!(r.body.ends_with(b"}\n"), "{}", r.text());
}

#[test]
fn export_with_connection_close_sends_the_whole_body_then_closes() {
    let (srv, _, _) = Server::with_p(json!({}));
    let expected = fill_known(&srv);
    let mut s = srv.connect();
    s.write_all(&request_bytes(
        "GET",
        "/v1/projects/p/export",
        Some(ADMIN),
        &[("Connection", "close")],
        b"",
    ))
    .unwrap();
    let r = read_response(&mut s, false).expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(lines(&String::from_utf8(r.body).unwrap()), expected);
    assert!(is_closed(&mut s));
}

#[test]
fn export_to_an_http10_client_is_unframed_and_ends_with_the_connection() {
    let (srv, _, _) = Server::with_p(json!({}));
    let expected = fill_known(&srv);
    let mut s = srv.connect();
    let req =
        format!("GET /v1/projects/p/export HTTP/1.0\r\nAuthorization: Bearer {ADMIN}\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .expect("the server closes after the body");
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    assert!(head.contains("\r\nConnection: close"), "{head}");
    assert_eq!(lines(body), expected);
}

#[test]
fn export_leaves_the_connection_ready_for_the_next_request() {
    let (srv, _, _) = Server::with_p(json!({}));
    let expected = fill_known(&srv);
    let mut s = srv.connect();
    for _ in 0..2 {
        let r = export_on(&mut s, "p", ADMIN);
        assert_eq!(r.status, 200);
        assert_eq!(lines(&r.text()), expected);
    }
    s.write_all(&request_bytes("GET", "/health", None, &[], b""))
        .unwrap();
    let r = read_response(&mut s, false).expect("health after the exports");
    assert_eq!(r.status, 200);
}

#[test]
fn export_of_many_keys_spans_chunks_and_keeps_byte_order() {
    let (srv, _, _) = InProc::with_p(json!({ "persistence": "memory" }));
    let ops: Vec<Value> = (0..700)
        .map(|i| json!({ "op": "put", "key": format!("k{i:04}"), "value": i.to_string() }))
        .collect();
    let r = batch_as(&srv, ADMIN, json!({ "ops": ops }));
    assert_json(&r, 200);
    let version = r.json()["version"].as_u64().unwrap();
    let text = export_text(&srv, "p");
    let expected: Vec<String> = (0..700)
        .map(|i| {
            format!(
                r#"{{"key":"k{i:04}","value":"{i}","content_type":null,"version":{version},"expires_at":null}}"#
            )
        })
        .collect();
    assert_eq!(lines(&text), expected);
}

#[test]
fn export_read_with_curl_gives_the_same_lines() {
    let (srv, _, read) = Server::with_p(json!({}));
    let expected = fill_known(&srv);
    let r = curl(&[
        "-H",
        &format!("Authorization: Bearer {read}"),
        &format!("{}/v1/projects/p/export", srv.url()),
    ]);
    assert_eq!(lines(&r.stdout), expected);
    assert!(r.stdout.ends_with('\n'));
}

#[test]
fn export_of_an_empty_project_is_an_empty_body() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = export(&srv, "p", ADMIN);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-project-version"), Some("0"));
    assert_eq!(r.body, b"");
}

#[test]
fn export_leaves_out_expired_keys() {
    let (srv, _, _) = InProc::with_p(json!({ "persistence": "memory" }));
    put_ok(&srv, "/v1/kv/p/short?ttl=1", b"x");
    let v = put_ok(&srv, "/v1/kv/p/stays", b"y");
    srv.pass(2);
    assert_eq!(
        lines(&export_text(&srv, "p")),
        vec![format!(
            r#"{{"key":"stays","value":"y","content_type":null,"version":{v},"expires_at":null}}"#
        )]
    );
}

#[test]
fn head_export_sends_the_headers_without_a_body() {
    let (srv, _, _) = Server::with_p(json!({}));
    fill_known(&srv);
    let version = project(&srv, "p")["version"].as_u64().unwrap();
    let full = export(&srv, "p", ADMIN).body.len();
    let mut s = srv.connect();
    s.write_all(&request_bytes(
        "HEAD",
        "/v1/projects/p/export",
        Some(ADMIN),
        &[],
        b"",
    ))
    .unwrap();
    let r = read_response(&mut s, true).expect("HEAD answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(
        r.header("x-project-version"),
        Some(version.to_string().as_str())
    );
    // RFC 9110 8.6: a Content-Length on HEAD must be the length a GET would send.
    if let Some(len) = r.header("content-length") {
        assert_eq!(
            len,
            full.to_string(),
            "HEAD Content-Length vs GET body length"
        );
    }
    // No body bytes follow: the next answer on the connection is the health check's.
    s.write_all(&request_bytes("GET", "/health", None, &[], b""))
        .unwrap();
    let r = read_response(&mut s, false).expect("health after HEAD");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
}

#[test]
fn export_with_an_unscoped_read_token_works() {
    let (srv, _, read) = InProc::with_p(json!({}));
    let expected = fill_known(&srv);
    let r = export(&srv, "p", &read);
    assert_eq!(r.status, 200);
    assert_eq!(lines(&r.text()), expected);
}

#[test]
fn export_with_another_projects_token_is_403_and_without_a_token_401() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let (other, _) = create_project(&srv, "other");
    export(&srv, "p", &other).assert_error(403, "forbidden");
    let r = srv.req("GET", "/v1/projects/p/export", None, b"");
    r.assert_error(401, "unauthorized");
}

#[test]
fn export_of_a_missing_project_is_404_project_not_found() {
    let (srv, _, _) = InProc::with_p(json!({}));
    export(&srv, "nope", ADMIN).assert_error(404, "project_not_found");
}

// ---------------------------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------------------------

fn entry(key: &str, value: &str) -> String {
    format!(
        r#"{{"key":"{key}","value":"{value}","content_type":"text/plain","version":1,"expires_at":null}}"#
    )
}

#[test]
fn import_merge_answers_the_counts_and_gives_every_key_one_new_version() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/keep", b"k");
    put_ok(&srv, "/v1/kv/p/b", b"old");
    let before = project(&srv, "p")["version"].as_u64().unwrap();
    let body = [entry("a", "1"), entry("b", "2")].join("\n") + "\n";
    let r = import(&srv, ADMIN, "p", "?mode=merge", &body);
    assert_json(&r, 200);
    let v = before + 1;
    assert_eq!(
        r.json(),
        json!({ "project": "p", "mode": "merge", "imported": 2, "removed": 0, "version": v })
    );
    for (key, value) in [("a", "1"), ("b", "2")] {
        let g = get_as(&srv, ADMIN, &format!("/v1/kv/p/{key}"));
        assert_eq!(g.body, value.as_bytes());
        assert_eq!(g.header("etag"), Some(format!("\"{v}\"").as_str()));
        assert_eq!(g.header("content-type"), Some("text/plain"));
    }
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/keep").body, b"k");
    assert_eq!(project(&srv, "p")["version"], v);
}

#[test]
fn import_without_a_mode_merges() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/keep", b"k");
    let r = import(&srv, ADMIN, "p", "", &entry("a", "1"));
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({ "project": "p", "mode": "merge", "imported": 1, "removed": 0, "version": 2 })
    );
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/keep").body, b"k");
}

#[test]
fn import_replace_removes_the_keys_not_imported() {
    let (srv, _, _) = InProc::with_p(json!({}));
    for k in ["a", "b", "c"] {
        put_ok(&srv, &format!("/v1/kv/p/{k}"), b"old");
    }
    let body = [entry("b", "new"), entry("d", "new")].join("\n");
    let r = import(&srv, ADMIN, "p", "?mode=replace", &body);
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({ "project": "p", "mode": "replace", "imported": 2, "removed": 2, "version": 4 })
    );
    assert_eq!(
        list_as(&srv, ADMIN, "values=true"),
        json!({ "keys": [
            { "key": "b", "value": "new", "version": 4 },
            { "key": "d", "value": "new", "version": 4 },
        ], "next": null })
    );
    let p = project(&srv, "p");
    assert_eq!(
        (p["keys"].clone(), p["version"].clone()),
        (json!(2), json!(4))
    );
}

#[test]
fn import_replace_with_an_empty_body_empties_the_project() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"1");
    put_ok(&srv, "/v1/kv/p/b", b"2");
    let r = import(&srv, ADMIN, "p", "?mode=replace", "");
    assert_json(&r, 200);
    let j = r.json();
    assert_eq!(
        (j["imported"].clone(), j["removed"].clone()),
        (json!(0), json!(2))
    );
    assert_eq!(project(&srv, "p")["keys"], 0);
}

#[test]
fn import_with_a_bad_mode_is_400_invalid_parameter() {
    let (srv, _, _) = InProc::with_p(json!({}));
    import(&srv, ADMIN, "p", "?mode=overwrite", &entry("a", "1"))
        .assert_error(400, "invalid_parameter");
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/a").status, 404);
}

#[test]
fn import_with_a_bad_line_is_400_naming_the_line_and_imports_nothing() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/keep", b"k");
    let before = project(&srv, "p");
    for (body, line) in [
        (
            format!("{}\n{{\"key\":\"b\",\"value\":", entry("a", "1")),
            2,
        ),
        (
            format!("{}\n{}\nnot json\n", entry("a", "1"), entry("b", "2")),
            3,
        ),
        (
            r#"{"key":"","value":"x","content_type":null,"version":1,"expires_at":null}"#
                .to_string(),
            1,
        ),
        (
            format!(
                "{}\n{}",
                entry("a", "1"),
                r#"{"key":"b","value":"x","content_type":null,"version":1,"expires_at":null,"colour":"red"}"#
            ),
            2,
        ),
    ] {
        let r = import(&srv, ADMIN, "p", "", &body);
        assert_json(&r, 400);
        let j = r.json();
        assert_eq!(j["error"], "invalid_import", "{j}");
        assert_eq!(j["line"], line, "{body}: {j}");
        assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
        assert_eq!(j.as_object().unwrap().len(), 3, "extra fields: {j}");
        assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/a").status, 404);
        assert_eq!(project(&srv, "p"), before);
    }
}

#[test]
fn import_skips_blank_lines_and_ignores_project_and_version_fields() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let body = format!(
        "\n{}\n\n{}\n\n",
        r#"{"project":"elsewhere","key":"a","value":"1","content_type":null,"version":999,"expires_at":null}"#,
        r#"{"key":"b","value":"2","content_type":null,"version":7,"expires_at":null}"#,
    );
    let r = import(&srv, ADMIN, "p", "", &body);
    assert_json(&r, 200);
    assert_eq!(
        r.json(),
        json!({ "project": "p", "mode": "merge", "imported": 2, "removed": 0, "version": 1 })
    );
    assert_eq!(
        get_as(&srv, ADMIN, "/v1/kv/p/a").header("etag"),
        Some("\"1\"")
    );
    assert_eq!(
        get_as(&srv, ADMIN, "/v1/kv/p/b").header("etag"),
        Some("\"1\"")
    );
    assert_eq!(project(&srv, "p")["version"], 1);
}

#[test]
fn import_skips_entries_already_expired() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let future = now_secs() + 3600;
    let body = format!(
        "{}\n{}",
        r#"{"key":"old","value":"1","content_type":null,"version":1,"expires_at":1}"#,
        format_args!(
            r#"{{"key":"new","value":"2","content_type":null,"version":1,"expires_at":{future}}}"#
        ),
    );
    let r = import(&srv, ADMIN, "p", "", &body);
    assert_json(&r, 200);
    assert_eq!(r.json()["imported"], 1);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/old").status, 404);
    let g = get_as(&srv, ADMIN, "/v1/kv/p/new");
    assert_eq!(g.status, 200);
    assert_eq!(g.header("x-expires-at"), Some(future.to_string().as_str()));
}

#[test]
fn import_restores_base64_values_and_content_types_exactly() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let body = r#"{"key":"raw","base64":"AAEC/w==","content_type":"application/x-thing","version":3,"expires_at":null}"#;
    let r = import(&srv, ADMIN, "p", "", body);
    assert_json(&r, 200);
    let g = get_as(&srv, ADMIN, "/v1/kv/p/raw");
    assert_eq!(g.body, [0, 1, 2, 255]);
    assert_eq!(g.header("content-type"), Some("application/x-thing"));
}

#[test]
fn import_with_a_write_token_works_and_with_a_read_token_is_403() {
    let (srv, write, read) = InProc::with_p(json!({}));
    import(&srv, &read, "p", "", &entry("a", "1")).assert_error(403, "forbidden");
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/a").status, 404);
    let r = import(&srv, &write, "p", "", &entry("a", "1"));
    assert_json(&r, 200);
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/a").body, b"1");
}

#[test]
fn import_into_a_missing_project_is_404_project_not_found() {
    let (srv, _, _) = InProc::with_p(json!({}));
    import(&srv, ADMIN, "nope", "", &entry("a", "1")).assert_error(404, "project_not_found");
}

#[test]
fn import_body_over_max_import_bytes_is_413() {
    let (srv, _, _) = InProc::with_p(json!({ "limits": { "max_import_bytes": 200 } }));
    let line = entry("a", "1");
    let fits = format!("{line}{}", "\n".repeat(200 - line.len()));
    assert_eq!(fits.len(), 200);
    let r = import(&srv, ADMIN, "p", "", &fits);
    assert_json(&r, 200);
    let over = format!("{line}{}", "\n".repeat(201 - line.len()));
    import(&srv, ADMIN, "p", "?mode=replace", &over).assert_error(413, "payload_too_large");
    assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/a").body, b"1");
}

#[test]
fn import_body_may_exceed_max_value_bytes() {
    let (srv, _, _) =
        InProc::with_p(json!({ "limits": { "max_value_bytes": 64, "max_import_bytes": 4096 } }));
    let body: Vec<String> = (0..20).map(|i| entry(&format!("k{i:02}"), "v")).collect();
    let body = body.join("\n");
    assert!(body.len() > 64 * 10);
    let r = import(&srv, ADMIN, "p", "", &body);
    assert_json(&r, 200);
    assert_eq!(r.json()["imported"], 20);
}

/// Only a caller who may import can send an import-sized body: others are held to
/// max_value_bytes before any body byte is read, so strangers cannot make the server buffer
/// whole projects.
#[test]
fn import_sized_bodies_need_a_token_that_may_import() {
    let (srv, write, read) =
        InProc::with_p(json!({ "limits": { "max_value_bytes": 64, "max_import_bytes": 4096 } }));
    let body: Vec<String> = (0..20).map(|i| entry(&format!("k{i:02}"), "v")).collect();
    let body = body.join("\n");
    assert!(body.len() > 64);
    for token in ["pykv_00000000000000000000000000000000", read.as_str()] {
        import(&srv, token, "p", "", &body).assert_error(413, "payload_too_large");
    }
    let r = srv.req("POST", "/v1/projects/p/import", None, body.as_bytes());
    r.assert_error(413, "payload_too_large");
    let r = import(&srv, &write, "p", "", &body);
    assert_json(&r, 200);
    assert_eq!(r.json()["imported"], 20);
}

#[test]
fn export_then_import_into_another_project_gives_the_same_keys_and_values() {
    let (srv, _, _) = InProc::with_p(json!({}));
    fill_known(&srv);
    put_ok(&srv, "/v1/kv/p/%C3%BCn%C3%AF/%20quote%22", b"q\"\\\t");
    create_project(&srv, "q");
    let exported = export_text(&srv, "p");
    let r = import(&srv, ADMIN, "q", "?mode=replace", &exported);
    assert_json(&r, 200);
    assert_eq!(r.json()["imported"], 5);

    let strip = |mut listing: Value| {
        for e in listing["keys"].as_array_mut().unwrap() {
            e.as_object_mut().unwrap().remove("version");
        }
        listing
    };
    let from = strip(all_keys(&srv, "p"));
    assert_eq!(from["keys"].as_array().unwrap().len(), 5);
    assert_eq!(strip(all_keys(&srv, "q")), from);
    assert_eq!(
        without_versions(&export_text(&srv, "q")),
        without_versions(&exported)
    );
}

// ---------------------------------------------------------------------------------------------
// `pykv export` (offline)
// ---------------------------------------------------------------------------------------------

#[test]
fn pykv_export_prints_a_projects_lines_from_its_snapshot() {
    let (mut srv, _, _) = Server::with_p(json!({}));
    let expected = fill_known(&srv);
    srv.stop();
    let data = srv.data_dir();
    let r = pykv_export(&["--data-dir", data.to_str().unwrap(), "--project", "p"]);
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    assert_eq!(lines(&r.stdout), expected);
    assert!(r.stdout.ends_with('\n'));
    assert_eq!(r.stderr, "");
}

#[test]
fn pykv_export_without_a_project_prints_every_project_with_its_name() {
    let (mut srv, _, _) = Server::with_p(json!({}));
    let p_lines = fill_known(&srv);
    create_project(&srv, "q");
    let vq = put_typed_ok(&srv, "/v1/kv/q/x", Some("text/plain"), b"1");
    create_project(&srv, "empty");
    srv.stop();
    let data = srv.data_dir();
    let r = pykv_export(&["--data-dir", data.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    let mut expected: Vec<String> = p_lines
        .iter()
        .map(|l| format!(r#"{{"project":"p",{}"#, &l[1..]))
        .collect();
    expected.push(format!(
        r#"{{"project":"q","key":"x","value":"1","content_type":"text/plain","version":{vq},"expires_at":null}}"#
    ));
    let mut got = lines(&r.stdout);
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    // Lines of one project stay in key order.
    let p_order: Vec<String> = lines(&r.stdout)
        .into_iter()
        .filter(|l| l.starts_with(r#"{"project":"p","#))
        .collect();
    assert_eq!(
        p_order,
        p_lines
            .iter()
            .map(|l| format!(r#"{{"project":"p",{}"#, &l[1..]))
            .collect::<Vec<_>>()
    );
}

#[test]
fn pykv_export_output_imports_back() {
    let (mut srv, _, _) = Server::with_p(json!({}));
    fill_known(&srv);
    let before = export_text(&srv, "p");
    srv.stop();
    let data = srv.data_dir();
    let r = pykv_export(&["--data-dir", data.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    let srv = srv.restart();
    create_project(&srv, "copy");
    let imported = import(&srv, ADMIN, "copy", "", &r.stdout);
    assert_json(&imported, 200);
    assert_eq!(imported.json()["imported"], 4);
    assert_eq!(
        without_versions(&export_text(&srv, "copy")),
        without_versions(&before)
    );
}

#[test]
fn pykv_export_of_an_unknown_project_exits_2_with_one_line() {
    let (mut srv, _, _) = Server::with_p(json!({}));
    srv.stop();
    let data = srv.data_dir();
    let r = pykv_export(&["--data-dir", data.to_str().unwrap(), "--project", "nope"]);
    assert_eq!(r.code, Some(2), "stdout: {}", r.stdout);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr.lines().count(), 1, "stderr: {}", r.stderr);
    assert!(r.stderr.starts_with("pykv: "), "stderr: {}", r.stderr);
}

#[test]
fn pykv_export_of_a_missing_data_dir_exits_2_with_one_line() {
    let dir = TempDir::new();
    let missing = dir.path().join("no-such-dir");
    let r = pykv_export(&["--data-dir", missing.to_str().unwrap()]);
    assert_eq!(r.code, Some(2), "stdout: {}", r.stdout);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr.lines().count(), 1, "stderr: {}", r.stderr);
    assert!(r.stderr.starts_with("pykv: "), "stderr: {}", r.stderr);
}

/// `pykv export … | head`: the reader leaves early, and pykv ends quietly with status 0.
#[test]
fn pykv_export_into_a_pipe_closed_early_exits_0_quietly() {
    let (mut srv, _, _) = Server::with_p(json!({}));
    // Far more than a pipe holds (64 KiB), so pykv is still writing when the reader goes.
    let body: String = (0..4000)
        .map(|i| {
            format!(
                "{{\"key\":\"k{i:05}\",\"value\":\"{}\"}}\n",
                "v".repeat(100)
            )
        })
        .collect();
    assert_eq!(import(&srv, ADMIN, "p", "", &body).status, 200);
    srv.stop();
    let data = srv.data_dir();
    for format in ["jsonl", "consul"] {
        let mut child = Command::new(bin())
            .args([
                "export",
                "--data-dir",
                data.to_str().unwrap(),
                "--format",
                format,
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 10];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut first)
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{format}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{format}");
    }
}
