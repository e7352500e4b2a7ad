//! The command line of `pykv-bench`: flags parsed and checked into `Options` (only loopback
//! targets are accepted, and names that go into request heads verbatim are checked here), and
//! the key numbering they imply. Opens no connection and sends nothing.

use std::net::{SocketAddr, ToSocketAddrs};

/// What the timed run sends (`--workload`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Workload {
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

    pub fn name(self) -> &'static str {
        match self {
            Workload::Get => "get",
            Workload::Put => "put",
            Workload::Mixed => "mixed",
            Workload::List => "list",
            Workload::Health => "health",
        }
    }

    pub fn uses_keys(self) -> bool {
        self != Workload::Health
    }
}

/// Whether the keys are PUT before the run (`--no-preload`, `--preload-only`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Preload {
    Yes,
    Skip,
    Only,
}

/// The command line, checked.
pub struct Options {
    pub addr: SocketAddr,
    /// The `Host` header: the authority of `--url` as given.
    pub host: String,
    pub token: String,
    pub project: String,
    pub workload: Workload,
    pub connections: usize,
    pub pipeline: usize,
    pub seconds: f64,
    pub requests: Option<u64>,
    pub keys: u64,
    pub value_bytes: usize,
    pub prefix_keys: u64,
    pub path: String,
    pub preload: Preload,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options, String> {
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
pub fn key_digits(keys: u64) -> u32 {
    let mut digits = 1;
    let mut n = keys.saturating_sub(1);
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits.max(6)
}

/// How many times 10 divides `n`: the digits a `list` prefix of `n` keys leaves out.
pub fn decimal_zeros(mut n: u64) -> u32 {
    let mut zeros = 0;
    while n >= 10 && n % 10 == 0 {
        n /= 10;
        zeros += 1;
    }
    zeros
}
