//! `pykv-bench`: a load generator for a running pykv server, in the spirit of redis-benchmark.
//!
//! It starts nothing: it opens keep-alive HTTP/1.1 connections to a server given by `--url`,
//! preloads keys through the public API, then keeps a fixed number of requests in flight per
//! connection (a closed loop) for a fixed time or a fixed count, and prints one human line and
//! one JSON line with requests/s and latency percentiles.
//!
//! It must not touch the server crate (no `pykv::` imports: it measures the server from the
//! outside, like any client), must not be the bottleneck (one thread, one mio loop, no allocation
//! per request, latencies in a fixed-size histogram rather than a growing list), and must never
//! load a machine other than this one: only `127.0.0.1`, `::1` and `localhost` are accepted.
//!
//! Here: `--help`, exit statuses, and a run's two phases (the preload, then the workload).
//!
//! - `options` — the command line, checked (loopback targets only).
//! - `request` — the bytes of each request, written without allocating.
//! - `conn` — one keep-alive connection and the answers parsed off it.
//! - `load` — the load loop: requests in flight, timing, errors, reconnects.
//! - `histogram` — latencies in fixed memory, percentiles.
//! - `report` — the human line and the JSON line.

mod conn;
mod histogram;
mod load;
mod options;
mod report;
mod request;

use std::process::ExitCode;
use std::time::Instant;

use load::Bench;
use options::{Options, Preload};
use request::Mode;

const USAGE: &str = "\
pykv-bench — a load generator for a running pykv server (it starts nothing itself)

Usage:
  pykv-bench --url http://127.0.0.1:8080 --token T --project P [options]

Options:
  --url URL            the server, http://127.0.0.1:PORT or http://localhost:PORT only
  --token T            a write or admin token (not needed for --workload health)
  --project P          the project whose keys are used (not needed for --workload health)
  --workload W         get | put | mixed (90 % get, 10 % put) | list | health   [get]
  --connections N      concurrent keep-alive connections                         [32]
  --pipeline N         requests in flight per connection                         [1]
  --seconds S          how long to run (may be fractional)                       [10]
  --requests N         run exactly N requests instead of for --seconds
  --keys N             keys key-000000 .. key-(N-1)                              [10000]
  --value-bytes N      size of each value PUT                                    [100]
  --prefix-keys N      keys matched by each `list` prefix, a power of ten        [100]
  --path PATH          the path the `health` workload GETs, for any server       [/health]
  --no-preload         do not PUT the keys first (they are already there)
  --preload-only       PUT the keys, then exit without running a workload
  --help

Output: a line `workload=… conns=… secs=… req/s=… p50=…us p99=…us max=…us errors=…` and a
JSON line with the same figures. Answers other than 2xx count as errors; the first one's status
and body are printed once on stderr. Exit status: 0 after a run, 1 when the server cannot be
reached or the preload fails, 2 for bad arguments.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let opts = match Options::parse(&args) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("pykv-bench: {msg}\n(see pykv-bench --help)");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("pykv-bench: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run(opts: &Options) -> Result<(), String> {
    if opts.preload != Preload::Skip && opts.workload.uses_keys() {
        let started = Instant::now();
        let report = Bench::new(opts, Mode::Preload)?.run()?;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "preload: {} keys of {} B in {secs:.2} s ({:.0} PUT/s), errors={}",
            opts.keys,
            opts.value_bytes,
            opts.keys as f64 / secs,
            report.errors
        );
        if report.errors > 0 {
            return Err(format!(
                "preload failed: {} PUTs not acknowledged",
                report.errors
            ));
        }
    }
    if opts.preload == Preload::Only {
        return Ok(());
    }
    let report = Bench::new(opts, Mode::Workload)?.run()?;
    report.print(opts);
    Ok(())
}
