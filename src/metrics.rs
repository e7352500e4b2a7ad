//! Counters and histograms the server keeps about itself, rendered in the Prometheus text format
//! for `GET /metrics`. Plain numbers: the server and the disk record into them, the handler
//! renders them.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use crate::store::Store;

/// Upper bounds (seconds) of the latency histogram buckets, fine where requests usually fall.
const LATENCY_BOUNDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[derive(Debug, Clone)]
struct Histogram {
    buckets: [u64; LATENCY_BOUNDS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: [0; LATENCY_BOUNDS.len()],
            count: 0,
            sum: 0.0,
        }
    }

    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = LATENCY_BOUNDS.iter().position(|b| s <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += s;
    }

    fn render(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (b, n) in LATENCY_BOUNDS.iter().zip(self.buckets) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

#[derive(Debug, Clone)]
pub struct Metrics {
    started: Instant,
    /// (route label, status, count). A short list searched by the label's address first: it is
    /// touched on every request, and a map keyed by strings cost more than the rest of a GET.
    requests: Vec<(&'static str, u16, u64)>,
    latency: Histogram,
    journal_bytes: BTreeMap<String, u64>,
    journal_appends: BTreeMap<String, u64>,
    fsync_latency: Histogram,
    compactions: BTreeMap<String, u64>,
    compaction_failures: BTreeMap<String, u64>,
    compaction_duration: Histogram,
    pub connections_open: usize,
    pub watches_parked: usize,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            started: Instant::now(),
            requests: Vec::new(),
            latency: Histogram::new(),
            journal_bytes: BTreeMap::new(),
            journal_appends: BTreeMap::new(),
            fsync_latency: Histogram::new(),
            compactions: BTreeMap::new(),
            compaction_failures: BTreeMap::new(),
            compaction_duration: Histogram::new(),
            connections_open: 0,
            watches_parked: 0,
        }
    }
}

impl Metrics {
    pub fn record_request(&mut self, route: &'static str, status: u16, took: Duration) {
        let found = self
            .requests
            .iter_mut()
            .find(|(r, s, _)| *s == status && (std::ptr::eq(*r, route) || *r == route));
        match found {
            Some((_, _, n)) => *n += 1,
            None => self.requests.push((route, status, 1)),
        }
        self.latency.observe(took);
    }

    /// A group of records appended to `project`'s journal, which now holds `bytes` in all.
    pub fn record_append(&mut self, project: &str, bytes: u64) {
        bump(&mut self.journal_appends, project);
        self.set_journal_bytes(project, bytes);
    }

    pub fn set_journal_bytes(&mut self, project: &str, bytes: u64) {
        match self.journal_bytes.get_mut(project) {
            Some(b) => *b = bytes,
            None => {
                self.journal_bytes.insert(project.to_string(), bytes);
            }
        }
    }

    pub fn record_fsync(&mut self, took: Duration) {
        self.fsync_latency.observe(took);
    }

    /// A compaction (or a first snapshot) ended, well or not, after `took`.
    pub fn record_compaction(&mut self, project: &str, ok: bool, took: Duration) {
        if ok {
            bump(&mut self.compactions, project);
            self.compaction_duration.observe(took);
        } else {
            bump(&mut self.compaction_failures, project);
        }
    }

    /// Forget a deleted project's series, so they do not grow without bound.
    pub fn forget_project(&mut self, project: &str) {
        for map in [
            &mut self.journal_bytes,
            &mut self.journal_appends,
            &mut self.compactions,
            &mut self.compaction_failures,
        ] {
            map.remove(project);
        }
    }

    pub fn render(&self, store: &Store) -> String {
        let mut o = String::new();
        let family = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut o,
            "pykv_requests_total",
            "counter",
            "Requests answered, by route and status.",
        );
        let mut requests = self.requests.clone();
        requests.sort();
        for (route, status, n) in &requests {
            let _ = writeln!(
                o,
                "pykv_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        family(
            &mut o,
            "pykv_request_duration_seconds",
            "histogram",
            "Time from a complete request to its answer.",
        );
        self.latency.render(&mut o, "pykv_request_duration_seconds");
        family(&mut o, "pykv_project_keys", "gauge", "Keys per project.");
        for (name, p) in store.projects() {
            let _ = writeln!(
                o,
                "pykv_project_keys{{project=\"{name}\"}} {}",
                p.key_count()
            );
        }
        family(
            &mut o,
            "pykv_project_bytes",
            "gauge",
            "Key and value bytes per project.",
        );
        for (name, p) in store.projects() {
            let _ = writeln!(o, "pykv_project_bytes{{project=\"{name}\"}} {}", p.bytes());
        }
        let per_project = |o: &mut String, name: &str, map: &BTreeMap<String, u64>| {
            for (p, n) in map {
                let _ = writeln!(o, "{name}{{project=\"{p}\"}} {n}");
            }
        };
        family(
            &mut o,
            "pykv_journal_bytes",
            "gauge",
            "Bytes in each project's journal (every segment not yet folded into a snapshot).",
        );
        per_project(&mut o, "pykv_journal_bytes", &self.journal_bytes);
        family(
            &mut o,
            "pykv_journal_appends_total",
            "counter",
            "Groups of changes appended to each project's journal (one per project per loop turn).",
        );
        per_project(&mut o, "pykv_journal_appends_total", &self.journal_appends);
        family(
            &mut o,
            "pykv_journal_fsync_duration_seconds",
            "histogram",
            "Time to fdatasync a journal.",
        );
        self.fsync_latency
            .render(&mut o, "pykv_journal_fsync_duration_seconds");
        family(
            &mut o,
            "pykv_compactions_total",
            "counter",
            "Fresh snapshots written to replace a journal, by project.",
        );
        per_project(&mut o, "pykv_compactions_total", &self.compactions);
        family(
            &mut o,
            "pykv_compaction_failures_total",
            "counter",
            "Compactions that failed (retried later), by project.",
        );
        per_project(
            &mut o,
            "pykv_compaction_failures_total",
            &self.compaction_failures,
        );
        family(
            &mut o,
            "pykv_compaction_duration_seconds",
            "histogram",
            "Time from a compaction's start to its fresh snapshot in place.",
        );
        self.compaction_duration
            .render(&mut o, "pykv_compaction_duration_seconds");
        family(
            &mut o,
            "pykv_watches_parked",
            "gauge",
            "Watches waiting for a change.",
        );
        let _ = writeln!(o, "pykv_watches_parked {}", self.watches_parked);
        family(
            &mut o,
            "pykv_connections_open",
            "gauge",
            "Open client connections.",
        );
        let _ = writeln!(o, "pykv_connections_open {}", self.connections_open);
        family(
            &mut o,
            "pykv_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
        );
        let _ = writeln!(
            o,
            "pykv_uptime_seconds {}",
            self.started.elapsed().as_secs()
        );
        family(
            &mut o,
            "pykv_resident_memory_bytes",
            "gauge",
            "Resident set size of the process.",
        );
        let _ = writeln!(o, "pykv_resident_memory_bytes {}", resident_bytes());
        o
    }
}

fn bump(map: &mut BTreeMap<String, u64>, project: &str) {
    match map.get_mut(project) {
        Some(n) => *n += 1,
        None => {
            map.insert(project.to_string(), 1);
        }
    }
}

/// The process's resident memory, from /proc/self/status (0 where there is none).
pub fn resident_bytes() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counters_labelled() {
        let mut m = Metrics::default();
        m.record_request("kv_key", 200, Duration::from_micros(50));
        m.record_request("kv_key", 200, Duration::from_millis(3));
        let text = m.render(&Store::new(None));
        assert!(text.contains("pykv_requests_total{route=\"kv_key\",status=\"200\"} 2\n"));
        assert!(text.contains("pykv_request_duration_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("pykv_request_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("pykv_request_duration_seconds_count 2\n"));
    }
}
