//! The requests `pykv-bench` sends: `RequestWriter` appends each next request (preload PUTs in
//! key order, or the workload's GET, PUT, list or health request) to a connection's output
//! buffer, without allocating. Builds bytes only: never touches a socket.

use crate::options::{decimal_zeros, key_digits, Options, Workload};

/// The `limit` of every `list` request.
const LIST_LIMIT: u64 = 100;

/// What a run sends: the keys first (each key once, in order), or the chosen workload.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Preload,
    Workload,
}

/// Builds request heads into a connection's output buffer without allocating.
pub struct RequestWriter {
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
    pub fn new(opts: &Options) -> RequestWriter {
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

    /// Appends the next request of this run to `out`.
    pub fn write(&mut self, mode: Mode, workload: Workload, out: &mut Vec<u8>) {
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
                self.end_bodiless(out);
            }
        }
    }

    fn get(&self, key: u64, out: &mut Vec<u8>) {
        self.key_line(b"GET ", key, out);
        self.end_bodiless(out);
    }

    fn put(&self, key: u64, out: &mut Vec<u8>) {
        self.key_line(b"PUT ", key, out);
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
        self.end_bodiless(out);
    }

    /// `METHOD /v1/kv/P/key-000123`: a request line up to its path.
    fn key_line(&self, method: &[u8], key: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(method);
        out.extend_from_slice(&self.key_path);
        push_digits(out, key, self.digits);
    }

    /// The rest of the head of a request without a body, after its path.
    fn end_bodiless(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head_tail);
        out.extend_from_slice(b"\r\n");
    }
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

/// A random seed for the key picker (the clock if the system has no randomness to give).
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

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = " HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer T\r\n";

    fn writer(workload: &str) -> RequestWriter {
        let args: Vec<String> = [
            "--url",
            "http://127.0.0.1:8080",
            "--token",
            "T",
            "--project",
            "p",
            "--keys",
            "1000",
            "--value-bytes",
            "3",
            "--prefix-keys",
            "10",
            "--workload",
            workload,
        ]
        .map(String::from)
        .into();
        RequestWriter::new(&Options::parse(&args).expect("valid options"))
    }

    fn text(out: &[u8]) -> &str {
        std::str::from_utf8(out).expect("requests are ASCII")
    }

    #[test]
    fn key_requests_are_exact_http() {
        let w = writer("get");
        let mut out = Vec::new();
        w.get(7, &mut out);
        assert_eq!(text(&out), format!("GET /v1/kv/p/key-000007{HEAD}\r\n"));
        out.clear();
        w.put(7, &mut out);
        assert_eq!(
            text(&out),
            format!(
                "PUT /v1/kv/p/key-000007{HEAD}Content-Type: application/octet-stream\r\n\
                 Content-Length: 3\r\n\r\nabc"
            )
        );
        out.clear();
        w.list(123, &mut out);
        assert_eq!(
            text(&out),
            format!("GET /v1/kv/p?prefix=key-00012&limit=100{HEAD}\r\n")
        );
    }

    #[test]
    fn preload_puts_each_key_in_order_and_health_sends_no_token() {
        let mut w = writer("get");
        let mut out = Vec::new();
        w.write(Mode::Preload, Workload::Get, &mut out);
        w.write(Mode::Preload, Workload::Get, &mut out);
        let heads: Vec<&str> = text(&out)
            .split("abc")
            .filter_map(|r| r.lines().next())
            .collect();
        assert_eq!(
            heads,
            [
                "PUT /v1/kv/p/key-000000 HTTP/1.1",
                "PUT /v1/kv/p/key-000001 HTTP/1.1"
            ]
        );
        let mut w = writer("health");
        out.clear();
        w.write(Mode::Workload, Workload::Health, &mut out);
        assert_eq!(
            text(&out),
            "GET /health HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
        );
    }
}
