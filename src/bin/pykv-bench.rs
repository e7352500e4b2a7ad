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

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

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

/// Time between checks of the deadline when no answer arrives: short enough that a run stops
/// on time, long enough not to spin.
const POLL_TICK: Duration = Duration::from_millis(50);
/// A read buffer per connection; it grows (up to `MAX_READ_BUFFER`) only for larger answers.
const READ_BUFFER: usize = 64 * 1024;
const MAX_READ_BUFFER: usize = 64 * 1024 * 1024;
/// Header fields parsed per answer; pykv sends about six, nginx about seven.
const MAX_RESPONSE_HEADERS: usize = 32;
/// The `limit` of every `list` request.
const LIST_LIMIT: u64 = 100;
/// How much of the first failing answer's body is shown.
const ERROR_BODY_SHOWN: usize = 300;

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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    Get,
    Put,
    Mixed,
    List,
    Health,
}

impl Workload {
    fn parse(s: &str) -> Result<Workload, String> {
        match s {
            "get" => Ok(Workload::Get),
            "put" => Ok(Workload::Put),
            "mixed" => Ok(Workload::Mixed),
            "list" => Ok(Workload::List),
            "health" => Ok(Workload::Health),
            _ => Err(format!(
                "--workload {s:?}: expected get, put, mixed, list or health"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Workload::Get => "get",
            Workload::Put => "put",
            Workload::Mixed => "mixed",
            Workload::List => "list",
            Workload::Health => "health",
        }
    }

    fn uses_keys(self) -> bool {
        self != Workload::Health
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Preload {
    Yes,
    Skip,
    Only,
}

struct Options {
    addr: SocketAddr,
    /// The `Host` header: the authority of `--url` as given.
    host: String,
    token: String,
    project: String,
    workload: Workload,
    connections: usize,
    pipeline: usize,
    seconds: f64,
    requests: Option<u64>,
    keys: u64,
    value_bytes: usize,
    prefix_keys: u64,
    path: String,
    preload: Preload,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut url = None;
        let mut token = None;
        let mut project = None;
        let mut opts = Options {
            addr: SocketAddr::from(([127, 0, 0, 1], 80)),
            host: String::new(),
            token: String::new(),
            project: String::new(),
            workload: Workload::Get,
            connections: 32,
            pipeline: 1,
            seconds: 10.0,
            requests: None,
            keys: 10_000,
            value_bytes: 100,
            prefix_keys: 100,
            path: "/health".into(),
            preload: Preload::Yes,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "--no-preload" => opts.preload = Preload::Skip,
                "--preload-only" => opts.preload = Preload::Only,
                _ => {
                    let value = it
                        .next()
                        .ok_or_else(|| format!("{flag} needs a value"))?
                        .as_str();
                    match flag.as_str() {
                        "--url" => url = Some(value.to_string()),
                        "--token" => token = Some(value.to_string()),
                        "--project" => project = Some(value.to_string()),
                        "--workload" => opts.workload = Workload::parse(value)?,
                        "--connections" => opts.connections = number(flag, value, 1, 10_000)?,
                        "--pipeline" => opts.pipeline = number(flag, value, 1, 1000)?,
                        "--seconds" => opts.seconds = seconds(value)?,
                        "--requests" => opts.requests = Some(number(flag, value, 1, u64::MAX)?),
                        "--keys" => opts.keys = number(flag, value, 1, 100_000_000)?,
                        "--value-bytes" => opts.value_bytes = number(flag, value, 0, 1 << 30)?,
                        "--prefix-keys" => opts.prefix_keys = number(flag, value, 1, u64::MAX)?,
                        "--path" => opts.path = request_path(value)?,
                        _ => return Err(format!("unknown option {flag}")),
                    }
                }
            }
        }
        let url = url.ok_or("--url is required")?;
        (opts.addr, opts.host) = loopback_target(&url)?;
        if opts.workload.uses_keys() {
            opts.token = token.ok_or("--token is required for this workload")?;
            opts.project = project.ok_or("--project is required for this workload")?;
            check_plain("--token", &opts.token)?;
            check_plain("--project", &opts.project)?;
        }
        if !is_power_of_ten(opts.prefix_keys) || opts.prefix_keys > 10u64.pow(key_digits(opts.keys))
        {
            return Err(format!(
                "--prefix-keys {}: expected a power of ten no larger than 10^{} (the key width)",
                opts.prefix_keys,
                key_digits(opts.keys)
            ));
        }
        Ok(opts)
    }
}

fn number<T: TryFrom<u64>>(flag: &str, value: &str, min: u64, max: u64) -> Result<T, String> {
    let bad = || format!("{flag} {value:?}: expected a whole number from {min} to {max}");
    let n: u64 = value.parse().map_err(|_| bad())?;
    if n < min || n > max {
        return Err(bad());
    }
    T::try_from(n).map_err(|_| bad())
}

fn seconds(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!(
            "--seconds {value:?}: expected a number of seconds above 0, at most 86400"
        )),
    }
}

fn request_path(value: &str) -> Result<String, String> {
    if !value.starts_with('/') || value.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!(
            "--path {value:?}: expected an absolute path without spaces"
        ));
    }
    Ok(value.to_string())
}

/// Tokens and project names go into request heads verbatim, so they must not hold spaces,
/// control characters or URL delimiters.
fn check_plain(flag: &str, value: &str) -> Result<(), String> {
    let bad = |b: u8| b <= b' ' || b == 0x7f || b == b'/' || b == b'?' || b == b'#';
    if value.is_empty() || (flag == "--project" && value.bytes().any(bad)) {
        return Err(format!("{flag} {value:?}: not a valid value"));
    }
    if value.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!(
            "{flag}: must not contain spaces or control characters"
        ));
    }
    Ok(())
}

/// The socket address and `Host` header of `url`, which must name this machine: a benchmark
/// is a denial of service to whoever else it is pointed at.
fn loopback_target(url: &str) -> Result<(SocketAddr, String), String> {
    let refuse = |why: &str| {
        format!("refusing --url {url:?}: {why}; only http://127.0.0.1:PORT, http://[::1]:PORT or http://localhost:PORT are allowed")
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| refuse("not an http:// URL"))?;
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => {
            let port: u16 = p.parse().map_err(|_| refuse("bad port"))?;
            (h, port)
        }
        _ => (authority, 80),
    };
    if !matches!(host, "127.0.0.1" | "[::1]" | "localhost") {
        return Err(refuse(&format!("{host:?} is not this machine")));
    }
    let name = host.trim_start_matches('[').trim_end_matches(']');
    let addr = (name, port)
        .to_socket_addrs()
        .map_err(|e| refuse(&format!("cannot resolve {host}: {e}")))?
        .find(|a| a.ip().is_loopback())
        .ok_or_else(|| refuse(&format!("{host} does not resolve to a loopback address")))?;
    Ok((addr, authority.to_string()))
}

fn is_power_of_ten(n: u64) -> bool {
    n == 10u64.pow(decimal_zeros(n))
}

/// Digits in a key's number: at least six (`key-000123`), more when `keys` needs them.
fn key_digits(keys: u64) -> u32 {
    let mut digits = 1;
    let mut n = keys.saturating_sub(1);
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits.max(6)
}

/// What a run sends: the keys first (each key once, in order), or the chosen workload.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Preload,
    Workload,
}

/// Builds request heads into a connection's output buffer without allocating.
struct RequestWriter {
    /// ` HTTP/1.1\r\nHost: …\r\nAuthorization: Bearer …\r\n` (no auth line for `health`).
    head_tail: Vec<u8>,
    key_path: Vec<u8>,
    list_path: Vec<u8>,
    health_path: Vec<u8>,
    value: Vec<u8>,
    digits: usize,
    keys: u64,
    /// How many trailing digits a `list` prefix leaves out.
    prefix_drop: u32,
    rng: u64,
    next_preload: u64,
}

impl RequestWriter {
    fn new(opts: &Options) -> RequestWriter {
        let mut head_tail = format!(" HTTP/1.1\r\nHost: {}\r\n", opts.host).into_bytes();
        if opts.workload.uses_keys() {
            head_tail
                .extend_from_slice(format!("Authorization: Bearer {}\r\n", opts.token).as_bytes());
        }
        // Printable bytes so that snapshots keep them as JSON strings, like most real values.
        let value = (0..opts.value_bytes)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        RequestWriter {
            head_tail,
            key_path: format!("/v1/kv/{}/key-", opts.project).into_bytes(),
            list_path: format!("/v1/kv/{}?prefix=key-", opts.project).into_bytes(),
            health_path: opts.path.clone().into_bytes(),
            value,
            digits: key_digits(opts.keys) as usize,
            keys: opts.keys,
            prefix_drop: decimal_zeros(opts.prefix_keys),
            rng: seed(),
            next_preload: 0,
        }
    }

    /// xorshift64*: plenty for picking keys, and a handful of instructions.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn random_key(&mut self) -> u64 {
        self.random() % self.keys
    }

    fn write(&mut self, mode: Mode, workload: Workload, out: &mut Vec<u8>) {
        if mode == Mode::Preload {
            let key = self.next_preload;
            self.next_preload += 1;
            return self.put(key, out);
        }
        match workload {
            Workload::Get => {
                let key = self.random_key();
                self.get(key, out);
            }
            Workload::Put => {
                let key = self.random_key();
                self.put(key, out);
            }
            Workload::Mixed => {
                let key = self.random_key();
                if self.random() % 10 == 0 {
                    self.put(key, out);
                } else {
                    self.get(key, out);
                }
            }
            Workload::List => {
                let key = self.random_key();
                self.list(key, out);
            }
            Workload::Health => {
                out.extend_from_slice(b"GET ");
                out.extend_from_slice(&self.health_path);
                out.extend_from_slice(&self.head_tail);
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    fn get(&self, key: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(&self.key_path);
        push_digits(out, key, self.digits);
        out.extend_from_slice(&self.head_tail);
        out.extend_from_slice(b"\r\n");
    }

    fn put(&self, key: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(b"PUT ");
        out.extend_from_slice(&self.key_path);
        push_digits(out, key, self.digits);
        out.extend_from_slice(&self.head_tail);
        out.extend_from_slice(b"Content-Type: application/octet-stream\r\nContent-Length: ");
        push_digits(out, self.value.len() as u64, 1);
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&self.value);
    }

    /// `GET /v1/kv/P?prefix=key-0001&limit=100`: the prefix is a random key's number without
    /// its last digits, so it matches `--prefix-keys` keys when they all exist.
    fn list(&self, key: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(&self.list_path);
        let kept = self.digits - self.prefix_drop as usize;
        if kept > 0 {
            push_digits(out, key / 10u64.pow(self.prefix_drop), kept);
        }
        out.extend_from_slice(b"&limit=");
        push_digits(out, LIST_LIMIT, 1);
        out.extend_from_slice(&self.head_tail);
        out.extend_from_slice(b"\r\n");
    }
}

/// How many times 10 divides `n`: the digits a `list` prefix of `n` keys leaves out.
fn decimal_zeros(mut n: u64) -> u32 {
    let mut zeros = 0;
    while n >= 10 && n % 10 == 0 {
        n /= 10;
        zeros += 1;
    }
    zeros
}

/// `n` in decimal, zero-padded to at least `width` digits.
fn push_digits(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while n > 0 {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let start = i.min(buf.len() - width.clamp(1, buf.len()));
    out.extend_from_slice(&buf[start..]);
}

fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        bytes = nanos.to_le_bytes();
    }
    u64::from_le_bytes(bytes) | 1
}

/// Latencies in nanoseconds, log-linear like HdrHistogram: exact below 128 ns, then 64 buckets
/// per power of two (at most 1.6 % wide), so memory is fixed however long the run.
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB_BUCKETS: u64 = 64;

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: vec![0; Histogram::index(u64::MAX) + 1],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < 2 * SUB_BUCKETS {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() - SUB_BUCKETS.trailing_zeros();
        (shift as u64 * SUB_BUCKETS + (v >> shift)) as usize
    }

    /// The highest value that falls in bucket `i`.
    fn upper(i: usize) -> u64 {
        let i = i as u64;
        if i < 2 * SUB_BUCKETS {
            return i;
        }
        let shift = i / SUB_BUCKETS - 1;
        let mantissa = i % SUB_BUCKETS + SUB_BUCKETS;
        ((mantissa + 1) << shift) - 1
    }

    fn record(&mut self, nanos: u64) {
        self.counts[Histogram::index(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Histogram::upper(i).min(self.max);
            }
        }
        self.max
    }
}

/// One keep-alive connection and the requests it has in flight.
struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    out_pos: usize,
    input: Vec<u8>,
    in_start: usize,
    in_end: usize,
    /// When each request in flight was queued, oldest first (answers come in order).
    sent: VecDeque<Instant>,
}

impl Conn {
    fn open(addr: SocketAddr, poll: &Poll, token: Token, pipeline: usize) -> io::Result<Conn> {
        let std_stream = std::net::TcpStream::connect(addr)?;
        std_stream.set_nodelay(true)?;
        std_stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std_stream);
        poll.registry()
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(Conn {
            stream,
            out: Vec::with_capacity(4096),
            out_pos: 0,
            input: vec![0; READ_BUFFER],
            in_start: 0,
            in_end: 0,
            sent: VecDeque::with_capacity(pipeline),
        })
    }

    /// Writes what is queued until done or the socket is full (a writable event follows).
    fn flush(&mut self) -> io::Result<()> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        Ok(())
    }

    /// Reads until the socket is empty; `Ok(false)` when the server closed the connection.
    /// A read that does not fill the buffer has emptied the socket: on Linux, epoll reports
    /// every later arrival again, so the usual extra read that only returns `WouldBlock` (a
    /// third of a closed-loop client's system calls) is skipped.
    fn fill(&mut self) -> io::Result<bool> {
        loop {
            if self.in_end == self.input.len() {
                self.make_room()?;
            }
            let room = self.input.len() - self.in_end;
            match self.stream.read(&mut self.input[self.in_end..]) {
                Ok(0) => return Ok(false),
                Ok(n) if n < room => {
                    self.in_end += n;
                    return Ok(true);
                }
                Ok(n) => self.in_end += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn make_room(&mut self) -> io::Result<()> {
        if self.in_start > 0 {
            self.input.copy_within(self.in_start..self.in_end, 0);
            self.in_end -= self.in_start;
            self.in_start = 0;
        } else if self.input.len() < MAX_READ_BUFFER {
            self.input.resize(self.input.len() * 2, 0);
        } else {
            return Err(io::Error::other("an answer larger than 64 MiB"));
        }
        Ok(())
    }
}

/// One complete answer at the front of a read buffer.
struct Answer {
    status: u16,
    body_start: usize,
    len: usize,
    close: bool,
}

/// `Ok(None)` while the answer is incomplete. Answers must carry `Content-Length` (pykv's and
/// nginx's all do), except those that never have a body.
fn parse_answer(buf: &[u8]) -> Result<Option<Answer>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed answer: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let mut length = None;
    let mut close = resp.version == Some(0);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).unwrap_or("");
            length = Some(
                text.trim()
                    .parse::<usize>()
                    .map_err(|_| "bad Content-Length")?,
            );
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = h.value.eq_ignore_ascii_case(b"close");
        }
    }
    let body = match length {
        Some(n) => n,
        None if status == 204 || status == 304 || (100..200).contains(&status) => 0,
        None => return Err(format!("answer {status} without Content-Length")),
    };
    if buf.len() < head_len + body {
        return Ok(None);
    }
    Ok(Some(Answer {
        status,
        body_start: head_len,
        len: head_len + body,
        close,
    }))
}

/// What a run measured.
struct Report {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    histogram: Histogram,
}

impl Report {
    fn print(&self, opts: &Options) {
        let secs = self.elapsed.as_secs_f64();
        let rps = self.requests as f64 / secs;
        let us = |nanos: u64| (nanos as f64 / 100.0).round() / 10.0;
        let (p50, p99, max) = (
            us(self.histogram.percentile(0.50)),
            us(self.histogram.percentile(0.99)),
            us(self.histogram.max),
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

/// The load loop: every connection keeps `pipeline` requests in flight until the deadline or
/// the request count is reached.
struct Bench<'a> {
    opts: &'a Options,
    mode: Mode,
    poll: Poll,
    conns: Vec<Conn>,
    writer: RequestWriter,
    histogram: Histogram,
    /// Requests queued so far, and at most this many (`None`: until the deadline).
    issued: u64,
    limit: Option<u64>,
    deadline: Option<Instant>,
    answered: u64,
    /// Requests that died with their connection: never answered, counted as errors.
    abandoned: u64,
    errors: u64,
    error_shown: bool,
}

impl<'a> Bench<'a> {
    fn new(opts: &'a Options, mode: Mode) -> Result<Bench<'a>, String> {
        let poll = Poll::new().map_err(|e| format!("cannot create a poller: {e}"))?;
        let limit = match mode {
            Mode::Preload => Some(opts.keys),
            Mode::Workload => opts.requests,
        };
        let conns = (0..opts.connections)
            .map(|i| Conn::open(opts.addr, &poll, Token(i), opts.pipeline))
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| format!("cannot connect to {}: {e}", opts.addr))?;
        Ok(Bench {
            opts,
            mode,
            poll,
            conns,
            writer: RequestWriter::new(opts),
            histogram: Histogram::new(),
            issued: 0,
            limit,
            deadline: None,
            answered: 0,
            abandoned: 0,
            errors: 0,
            error_shown: false,
        })
    }

    fn run(mut self) -> Result<Report, String> {
        let start = Instant::now();
        if self.limit.is_none() {
            self.deadline = Some(start + Duration::from_secs_f64(self.opts.seconds));
        }
        for i in 0..self.conns.len() {
            self.top_up(i);
            self.flush(i)?;
        }
        let mut events = Events::with_capacity(self.conns.len().max(64));
        while !self.finished() {
            let timeout = match self.deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(POLL_TICK),
                None => POLL_TICK,
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("poll failed: {e}")),
            }
            for event in events.iter() {
                let i = event.token().0;
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.receive(i)?;
                }
                self.flush(i)?;
            }
        }
        Ok(Report {
            requests: self.answered,
            errors: self.errors,
            elapsed: start.elapsed(),
            histogram: self.histogram,
        })
    }

    fn finished(&self) -> bool {
        match (self.deadline, self.limit) {
            (Some(d), _) => Instant::now() >= d,
            (None, Some(limit)) => self.answered + self.abandoned >= limit,
            (None, None) => true,
        }
    }

    fn may_issue(&self) -> bool {
        self.limit.is_none_or(|l| self.issued < l)
    }

    /// Queues requests on connection `i` until it has `pipeline` in flight.
    fn top_up(&mut self, i: usize) {
        while self.conns[i].sent.len() < self.opts.pipeline && self.may_issue() {
            let conn = &mut self.conns[i];
            self.writer
                .write(self.mode, self.opts.workload, &mut conn.out);
            conn.sent.push_back(Instant::now());
            self.issued += 1;
        }
    }

    fn flush(&mut self, i: usize) -> Result<(), String> {
        if let Err(e) = self.conns[i].flush() {
            self.lost(i, &format!("write failed: {e}"))?;
        }
        Ok(())
    }

    fn receive(&mut self, i: usize) -> Result<(), String> {
        let open = match self.conns[i].fill() {
            Ok(open) => open,
            Err(e) => return self.lost(i, &format!("read failed: {e}")),
        };
        let now = Instant::now();
        loop {
            let conn = &mut self.conns[i];
            let answer = match parse_answer(&conn.input[conn.in_start..conn.in_end]) {
                Ok(Some(a)) => a,
                Ok(None) => break,
                Err(msg) => return self.lost(i, &msg),
            };
            let Some(sent) = conn.sent.pop_front() else {
                return self.lost(i, "an answer to no request");
            };
            self.histogram
                .record(now.duration_since(sent).as_nanos() as u64);
            self.answered += 1;
            if !(200..300).contains(&answer.status) {
                let conn = &self.conns[i];
                let at = conn.in_start;
                let body = &conn.input[at + answer.body_start..at + answer.len];
                let shown =
                    String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_SHOWN)]).into_owned();
                self.error(1, &format!("status {}: {shown}", answer.status));
            }
            let conn = &mut self.conns[i];
            conn.in_start += answer.len;
            if answer.close {
                return self.lost(i, "the server closed the connection (Connection: close)");
            }
        }
        let conn = &mut self.conns[i];
        if conn.in_start == conn.in_end {
            conn.in_start = 0;
            conn.in_end = 0;
        }
        if !open {
            return self.lost(i, "the server closed the connection");
        }
        self.top_up(i);
        Ok(())
    }

    fn error(&mut self, count: u64, what: &str) {
        self.errors += count;
        if !self.error_shown {
            self.error_shown = true;
            eprintln!("pykv-bench: first error: {what}");
        }
    }

    /// Connection `i` is unusable: its unanswered requests count as errors, and a fresh
    /// connection takes its place (its first writable event sends what `top_up` queued).
    fn lost(&mut self, i: usize, why: &str) -> Result<(), String> {
        let unanswered = self.conns[i].sent.len() as u64;
        if unanswered > 0 {
            self.abandoned += unanswered;
            self.error(
                unanswered,
                &format!("{why}, {unanswered} requests unanswered"),
            );
        }
        let _ = self.poll.registry().deregister(&mut self.conns[i].stream);
        self.conns[i] = Conn::open(self.opts.addr, &self.poll, Token(i), self.opts.pipeline)
            .map_err(|e| format!("cannot reconnect to {}: {e}", self.opts.addr))?;
        self.top_up(i);
        Ok(())
    }
}
