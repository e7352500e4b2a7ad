//! What a `pykv-bench` run measured, and how it is printed: one human line and one JSON line
//! (fields in a documented order) on standard output. Prints only; measures nothing.

use std::io::{self, Write};
use std::time::Duration;

use crate::histogram::Histogram;
use crate::options::Options;

/// What a run measured.
pub struct Report {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub histogram: Histogram,
}

impl Report {
    /// The human line and the JSON line, on standard output.
    pub fn print(&self, opts: &Options) {
        let secs = self.elapsed.as_secs_f64();
        let rps = self.requests as f64 / secs;
        let us = |nanos: u64| (nanos as f64 / 100.0).round() / 10.0;
        let (p50, p99, max) = (
            us(self.histogram.percentile(0.50)),
            us(self.histogram.percentile(0.99)),
            us(self.histogram.max()),
        );
        let mut out = io::stdout().lock();
        // A closed stdout (`| head -1`) is the reader's choice, not an error of the run.
        let _ = writeln!(
            out,
            "workload={} conns={} pipeline={} secs={secs:.1} requests={} req/s={rps:.0} p50={p50}us p99={p99}us max={max}us errors={}",
            opts.workload.name(),
            opts.connections,
            opts.pipeline,
            self.requests,
            self.errors
        );
        // Written by hand to keep the documented field order (serde_json would sort them).
        let _ = writeln!(
            out,
            "{{\"workload\":\"{}\",\"connections\":{},\"seconds\":{:.3},\"requests\":{},\"rps\":{rps:.0},\"p50_us\":{p50},\"p99_us\":{p99},\"max_us\":{max},\"errors\":{},\"pipeline\":{},\"keys\":{},\"value_bytes\":{}}}",
            opts.workload.name(),
            opts.connections,
            secs,
            self.requests,
            self.errors,
            opts.pipeline,
            opts.keys,
            opts.value_bytes
        );
    }
}
