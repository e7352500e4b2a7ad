//! `GET /metrics`: access, the Prometheus text, request counters and latency, project gauges.
//! In-process; what the event loop and the disk count (fsyncs, compactions, journal appends,
//! connections, parked watches, memory, uptime) on the real binary.

mod common;
use common::*;

use serde_json::json;
use std::io::Write;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A histogram's `(le, count)` buckets in order, its `_sum` and its `_count`.
fn histogram(text: &str, name: &str) -> (Vec<(String, f64)>, f64, f64) {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, value) = rest.split_once("\"} ")?;
            Some((le.to_string(), value.parse().expect("bucket count")))
        })
        .collect();
    let sum = sample(text, &format!("{name}_sum")).expect("_sum");
    let count = sample(text, &format!("{name}_count")).expect("_count");
    (buckets, sum, count)
}

fn assert_histogram_is_cumulative(text: &str, name: &str) {
    let (buckets, sum, count) = histogram(text, name);
    assert!(buckets.len() >= 2, "{name}: buckets {buckets:?}");
    let (last_le, last) = buckets.last().unwrap();
    assert_eq!(last_le, "+Inf", "{name}: the last bucket is +Inf");
    assert_eq!(*last, count, "{name}: +Inf equals _count");
    for w in buckets.windows(2) {
        assert!(w[0].1 <= w[1].1, "{name}: not cumulative: {buckets:?}");
    }
    let bounds: Vec<f64> = buckets[..buckets.len() - 1]
        .iter()
        .map(|(le, _)| le.parse().expect("le is a number"))
        .collect();
    for w in bounds.windows(2) {
        assert!(w[0] < w[1], "{name}: bounds not increasing: {bounds:?}");
    }
    assert!(sum >= 0.0, "{name}: _sum {sum}");
}

#[test]
fn metrics_without_a_token_is_401() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = srv.req("GET", "/metrics", None, b"");
    r.assert_error(401, "unauthorized");
    assert_eq!(challenges(&r), vec!["Bearer", "Basic realm=\"pykv\""]);
}

#[test]
fn metrics_with_a_project_token_is_403() {
    let (srv, write, read) = InProc::with_p(json!({}));
    get_as(&srv, &write, "/metrics").assert_error(403, "forbidden");
    get_as(&srv, &read, "/metrics").assert_error(403, "forbidden");
}

#[test]
fn metrics_is_prometheus_text_with_its_content_type() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let r = get_as(&srv, ADMIN, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.text();
    assert!(text.ends_with('\n'), "{text}");
    for line in text.lines() {
        assert!(
            line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line.starts_with("pykv_"),
            "not Prometheus text: {line:?}"
        );
        if !line.starts_with('#') {
            let (_, value) = line.rsplit_once(' ').expect("a sample has a value");
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("value of {line:?}"));
        }
    }
}

#[test]
fn every_metric_family_has_help_and_type() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let text = metrics(&srv);
    for (name, kind) in [
        ("pykv_requests_total", "counter"),
        ("pykv_request_duration_seconds", "histogram"),
        ("pykv_project_keys", "gauge"),
        ("pykv_project_bytes", "gauge"),
        ("pykv_journal_bytes", "gauge"),
        ("pykv_journal_appends_total", "counter"),
        ("pykv_journal_fsync_duration_seconds", "histogram"),
        ("pykv_compactions_total", "counter"),
        ("pykv_compaction_failures_total", "counter"),
        ("pykv_compaction_duration_seconds", "histogram"),
        ("pykv_watches_parked", "gauge"),
        ("pykv_connections_open", "gauge"),
        ("pykv_uptime_seconds", "gauge"),
        ("pykv_resident_memory_bytes", "gauge"),
    ] {
        let help = text
            .lines()
            .position(|l| {
                l.strip_prefix(&format!("# HELP {name} "))
                    .is_some_and(|h| !h.trim().is_empty())
            })
            .unwrap_or_else(|| panic!("no # HELP for {name}:\n{text}"));
        let type_line = format!("# TYPE {name} {kind}");
        let kind_at = text
            .lines()
            .position(|l| l == type_line)
            .unwrap_or_else(|| panic!("no {type_line:?}:\n{text}"));
        assert_eq!(kind_at, help + 1, "{name}: # TYPE right after # HELP");
    }
}

#[test]
fn request_counters_grow_by_exactly_the_requests_made() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let before = metrics(&srv);
    for _ in 0..3 {
        assert_eq!(get_as(&srv, ADMIN, "/v1/kv/p/missing").status, 404);
    }
    for _ in 0..2 {
        assert_eq!(srv.req("GET", "/health", None, b"").status, 200);
    }
    put_ok(&srv, "/v1/kv/p/k", b"v");
    assert_eq!(srv.req("GET", "/v1/kv/p", None, b"").status, 401);
    let after = metrics(&srv);
    assert_eq!(
        requests(&after, "kv_key", 404) - requests(&before, "kv_key", 404),
        3.0
    );
    assert_eq!(
        requests(&after, "health", 200) - requests(&before, "health", 200),
        2.0
    );
    assert_eq!(
        requests(&after, "kv_key", 201) - requests(&before, "kv_key", 201),
        1.0
    );
    assert_eq!(
        requests(&after, "kv_list", 401) - requests(&before, "kv_list", 401),
        1.0
    );
    assert_eq!(
        requests(&after, "metrics", 200) - requests(&before, "metrics", 200),
        1.0
    );
}

#[test]
fn request_counters_label_every_route() {
    let srv = InProc::start(compat_config(json!({})));
    create_project(&srv, "p");
    assert_eq!(get_as(&srv, ADMIN, "/v1/projects/p/tokens").status, 200);
    srv.req("GET", "/health", None, b"");
    srv.req("GET", "/openapi.json", None, b"");
    get_as(&srv, ADMIN, "/v1/projects");
    get_as(&srv, ADMIN, "/v1/projects/p");
    srv.req("DELETE", "/v1/projects/p/tokens/nope", Some(ADMIN), b"");
    export(&srv, "p", ADMIN);
    import(&srv, ADMIN, "p", "", "");
    get_as(&srv, ADMIN, "/v1/kv/p");
    get_as(&srv, ADMIN, "/v1/kv/p/k");
    get_as(&srv, ADMIN, "/get/k");
    get_as(&srv, ADMIN, "/nope");
    get_as(&srv, ADMIN, "/metrics");
    let text = metrics(&srv);
    for (route, status) in [
        ("health", 200),
        ("openapi", 200),
        ("projects", 200),
        ("projects", 201),
        ("project", 200),
        ("tokens", 200),
        ("token", 404),
        ("export", 200),
        ("import", 200),
        ("kv_list", 200),
        ("kv_key", 404),
        ("compat", 404),
        ("unknown", 404),
        ("metrics", 200),
    ] {
        assert!(
            requests(&text, route, status) >= 1.0,
            "no {route}/{status}:\n{text}"
        );
    }
}

#[test]
fn request_latency_histogram_is_cumulative_and_inf_equals_count() {
    let (srv, _, _) = InProc::with_p(json!({}));
    for i in 0..5 {
        put_ok(&srv, &format!("/v1/kv/p/k{i}"), b"v");
    }
    let first = metrics(&srv);
    assert_histogram_is_cumulative(&first, "pykv_request_duration_seconds");
    srv.req("GET", "/health", None, b"");
    let second = metrics(&srv);
    assert_histogram_is_cumulative(&second, "pykv_request_duration_seconds");
    let (_, _, c1) = histogram(&first, "pykv_request_duration_seconds");
    let (_, _, c2) = histogram(&second, "pykv_request_duration_seconds");
    assert_eq!(
        c2 - c1,
        2.0,
        "the health request and the first metrics request"
    );
}

/// sync mode: each PUT answered alone is one fdatasync of the journal.
#[test]
fn fsync_latency_histogram_is_cumulative_and_counts_each_sync() {
    let (srv, _, _) = Server::with_p(json!({"persistence": "sync"}));
    for i in 0..3 {
        put_ok(&srv, &format!("/v1/kv/p/k{i}"), b"v");
    }
    let text = metrics(&srv);
    assert_histogram_is_cumulative(&text, "pykv_journal_fsync_duration_seconds");
    let (_, _, count) = histogram(&text, "pykv_journal_fsync_duration_seconds");
    assert_eq!(count, 3.0, "{text}");
}

/// A journal outgrowing its snapshot is compacted, counted and timed.
#[test]
fn compactions_are_counted_and_timed() {
    let (srv, _, _) = Server::with_p(json!({"persistence": "sync", "compaction_min_bytes": 1}));
    put_ok(&srv, "/v1/kv/p/big", &[b'x'; 4096]);
    let mut text = String::new();
    let counted = wait_until(Duration::from_secs(5), || {
        text = metrics(&srv);
        sample(&text, "pykv_compactions_total{project=\"p\"}") == Some(1.0)
    });
    assert!(counted, "{text}");
    assert_histogram_is_cumulative(&text, "pykv_compaction_duration_seconds");
    assert_eq!(histogram(&text, "pykv_compaction_duration_seconds").2, 1.0);
    assert_eq!(
        sample(&text, "pykv_compaction_failures_total{project=\"p\"}"),
        None,
        "{text}"
    );
    // The fresh segment is empty: the snapshot holds everything.
    assert_eq!(
        sample(&text, "pykv_journal_bytes{project=\"p\"}"),
        Some(0.0)
    );
}

#[test]
fn project_gauges_match_the_project_answer() {
    let (srv, _, _) = InProc::with_p(json!({}));
    create_project(&srv, "empty");
    put_ok(&srv, "/v1/kv/p/a", b"hello");
    put_ok(&srv, "/v1/kv/p/bb", b"xyz");
    put_ok(&srv, "/v1/kv/p/c", &[0, 255]);
    let p = project(&srv, "p");
    assert_eq!(
        (p["keys"].clone(), p["bytes"].clone()),
        (json!(3), json!(14))
    );
    let text = metrics(&srv);
    assert_eq!(sample(&text, "pykv_project_keys{project=\"p\"}"), Some(3.0));
    assert_eq!(
        sample(&text, "pykv_project_bytes{project=\"p\"}"),
        Some(14.0)
    );
    assert_eq!(
        sample(&text, "pykv_project_keys{project=\"empty\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "pykv_project_bytes{project=\"empty\"}"),
        Some(0.0)
    );
}

#[test]
fn project_gauges_follow_deletes() {
    let (srv, _, _) = InProc::with_p(json!({}));
    put_ok(&srv, "/v1/kv/p/a", b"hello");
    put_ok(&srv, "/v1/kv/p/bb", b"xyz");
    assert_eq!(
        srv.req("DELETE", "/v1/kv/p/a", Some(ADMIN), b"").status,
        204
    );
    let text = metrics(&srv);
    assert_eq!(sample(&text, "pykv_project_keys{project=\"p\"}"), Some(1.0));
    assert_eq!(
        sample(&text, "pykv_project_bytes{project=\"p\"}"),
        Some(5.0)
    );
}

#[test]
fn resident_memory_is_above_zero() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let text = metrics(&srv);
    let rss = sample(&text, "pykv_resident_memory_bytes").expect("resident memory");
    assert!(rss > 0.0, "{text}");
}

#[test]
fn uptime_counts_seconds_since_the_start() {
    let (srv, _, _) = InProc::with_p(json!({}));
    let uptime = sample(&metrics(&srv), "pykv_uptime_seconds").expect("uptime");
    assert!((0.0..60.0).contains(&uptime), "{uptime}");
}

#[test]
fn connections_open_counts_the_open_client_connections() {
    let (srv, _, _) = Server::with_p(json!({}));
    // Two idle keep-alive connections, each known to be accepted: it has answered on it.
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut s = srv.connect();
        s.write_all(&request_bytes("GET", "/health", None, &[], b""))
            .unwrap();
        assert_eq!(read_response(&mut s, false).expect("health").status, 200);
        idle.push(s);
    }
    let open = sample(&metrics(&srv), "pykv_connections_open").expect("connections_open");
    // The two idle ones and the metrics request's own.
    assert_eq!(open, 3.0);
}

#[test]
fn journal_appends_and_bytes_are_counted_per_project() {
    let (srv, _, _) = Server::with_p(json!({ "persistence": "sync" }));
    for i in 0..3 {
        put_ok(&srv, &format!("/v1/kv/p/k{i}"), b"v");
    }
    let text = metrics(&srv);
    let appends = "pykv_journal_appends_total{project=\"p\"}";
    assert_eq!(sample(&text, appends), Some(3.0), "{text}");
    // Each one-key group: 41 bytes of framing and headers, the key and the value.
    let bytes = "pykv_journal_bytes{project=\"p\"}";
    assert_eq!(
        sample(&text, bytes),
        Some(3.0 * (41.0 + 2.0 + 1.0)),
        "{text}"
    );
}

#[test]
fn memory_projects_write_no_journal() {
    let (srv, _, _) = InProc::with_p(json!({ "persistence": "memory" }));
    for i in 0..3 {
        put_ok(&srv, &format!("/v1/kv/p/k{i}"), b"v");
    }
    let text = metrics(&srv);
    assert_eq!(
        sample(&text, "pykv_journal_appends_total{project=\"p\"}"),
        None,
        "{text}"
    );
    assert_eq!(sample(&text, "pykv_journal_bytes{project=\"p\"}"), None);
}

#[test]
fn parked_watches_are_counted() {
    let (srv, _, _) = Server::with_p(json!({}));
    let mut s = srv.connect();
    s.write_all(&request_bytes(
        "GET",
        "/v1/kv/p/k?watch=5",
        Some(ADMIN),
        &[],
        b"",
    ))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut parked = 0.0;
    while Instant::now() < deadline {
        parked = sample(&metrics(&srv), "pykv_watches_parked").expect("watches_parked");
        if parked == 1.0 {
            break;
        }
        sleep(Duration::from_millis(50));
    }
    assert_eq!(parked, 1.0);
    put_ok(&srv, "/v1/kv/p/k", b"v");
    assert_eq!(
        read_response(&mut s, false).expect("watch answer").status,
        200
    );
    assert_eq!(sample(&metrics(&srv), "pykv_watches_parked"), Some(0.0));
}
