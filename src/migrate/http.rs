//! A small HTTP/1.1 client for `pykv migrate`: one keep-alive connection to one host, POST of a
//! JSON body, a bounded answer (`Content-Length` or chunked). The only code of the migration that
//! sees sockets; it knows nothing of etcd, and never retries beyond reopening a stale connection.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// A response head larger than this is not from the server we meant to talk to.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// An answer larger than this is refused rather than buffered: the migration reads at most a
/// chunk of keys (about 1 MiB of values) at a time, so this leaves room for base64 and for keys
/// that someone else stored in etcd between ours.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Why one request got no answer.
#[derive(Debug)]
pub enum HttpError {
    /// No connection could be opened (refused, unreachable, unknown host, connect timeout).
    Connect(String),
    /// The connection failed or stalled before the whole answer arrived.
    Io(io::Error),
    /// Something answered, but not with HTTP/1.x that we can read.
    Protocol(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Connect(why) => write!(f, "cannot connect: {why}"),
            HttpError::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                write!(f, "no answer in time")
            }
            HttpError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                write!(f, "the connection closed before the answer was complete")
            }
            HttpError::Io(e) => write!(f, "{e}"),
            HttpError::Protocol(why) => write!(f, "not an HTTP answer we can read: {why}"),
        }
    }
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One host and port, and at most one open connection to it.
pub struct Client {
    host: String,
    port: u16,
    timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    /// `timeout` bounds connecting, and each request from its first byte to its last answer byte.
    pub fn new(host: &str, port: u16, timeout: Duration) -> Client {
        Client {
            host: host.to_string(),
            port,
            timeout,
            conn: None,
        }
    }

    /// Drop the connection (after a failure, or to stop using this host for a while).
    pub fn close(&mut self) {
        self.conn = None;
    }

    /// POST `body` to `path`. A kept-alive connection the server closed while idle is reopened
    /// once; any other failure is the caller's to handle.
    pub fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let request = self.request_bytes(path, headers, body);
        let reused = self.conn.is_some();
        match self.exchange(&request) {
            Err(Failure::BeforeAnswer(_)) if reused => {
                // The server may close an idle connection at any time; only then is a resend
                // sure not to be a second copy of a request it is working on.
                self.conn = None;
                self.exchange(&request).map_err(Failure::into_error)
            }
            other => other.map_err(Failure::into_error),
        }
    }

    fn request_bytes(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n",
            self.authority(),
            body.len()
        );
        for (name, value) in headers {
            r.push_str(&format!("{name}: {value}\r\n"));
        }
        r.push_str("\r\n");
        let mut bytes = r.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn exchange(&mut self, request: &[u8]) -> Result<Response, Failure> {
        let deadline = Instant::now() + self.timeout;
        if self.conn.is_none() {
            self.conn = Some(BufReader::with_capacity(64 * 1024, self.connect()?));
        }
        let conn = self.conn.as_mut().expect("opened above");
        let result = send_and_read(conn, request, deadline);
        match &result {
            Ok((_, keep_alive)) if *keep_alive => {}
            _ => self.conn = None,
        }
        result.map(|(response, _)| response)
    }

    fn connect(&self) -> Result<TcpStream, Failure> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| Failure::Connect(format!("{}: {e}", self.host)))?
            .collect();
        let mut last = format!("{} has no address", self.host);
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true).map_err(Failure::Before)?;
                    return Ok(stream);
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(Failure::Connect(last))
    }
}

/// Where a request failed: before any byte of the answer, the request may never have been read.
enum Failure {
    Connect(String),
    BeforeAnswer(io::Error),
    Before(io::Error),
    During(HttpError),
}

impl Failure {
    fn into_error(self) -> HttpError {
        match self {
            Failure::Connect(why) => HttpError::Connect(why),
            Failure::BeforeAnswer(e) | Failure::Before(e) => HttpError::Io(e),
            Failure::During(e) => e,
        }
    }
}

/// Time left before `deadline`, as a socket timeout (never zero, which would mean "none").
fn left(deadline: Instant) -> io::Result<Duration> {
    let now = Instant::now();
    if now >= deadline {
        return Err(io::Error::from(io::ErrorKind::TimedOut));
    }
    Ok((deadline - now).max(Duration::from_millis(1)))
}

/// Send the request, read one answer. Returns it and whether the connection may be reused.
fn send_and_read(
    conn: &mut BufReader<TcpStream>,
    request: &[u8],
    deadline: Instant,
) -> Result<(Response, bool), Failure> {
    let stream = conn.get_mut();
    stream
        .set_write_timeout(Some(left(deadline).map_err(Failure::Before)?))
        .map_err(Failure::Before)?;
    stream.write_all(request).map_err(|e| match e.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Failure::BeforeAnswer(e),
        _ => Failure::Before(e),
    })?;
    let head = read_head(conn, deadline)?;
    let mut parsed_headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut parsed_headers);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(protocol("a cut-off response head")),
        Err(e) => return Err(protocol(&e.to_string())),
    }
    let status = parsed.code.ok_or_else(|| protocol("no status code"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut keep_alive = parsed.version == Some(1);
    for h in parsed.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<usize>()
                .map_err(|_| protocol("a bad Content-Length"))?;
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
            if !chunked {
                return Err(protocol(&format!("Transfer-Encoding {value}")));
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            keep_alive &= !value.eq_ignore_ascii_case("close");
        }
    }
    let body = if chunked {
        read_chunked(conn, deadline)?
    } else if let Some(n) = length {
        if n > MAX_BODY_BYTES {
            return Err(protocol(&format!("an answer of {n} bytes")));
        }
        let mut body = vec![0u8; n];
        read_exact(conn, &mut body, deadline)?;
        body
    } else {
        // No length: the body runs to the end of the connection.
        keep_alive = false;
        read_to_end(conn, deadline)?
    };
    Ok((Response { status, body }, keep_alive))
}

fn protocol(why: &str) -> Failure {
    Failure::During(HttpError::Protocol(why.to_string()))
}

fn during(e: io::Error) -> Failure {
    Failure::During(HttpError::Io(e))
}

fn read_head(conn: &mut BufReader<TcpStream>, deadline: Instant) -> Result<Vec<u8>, Failure> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        conn.get_ref()
            .set_read_timeout(Some(left(deadline).map_err(during)?))
            .map_err(during)?;
        let buf = match conn.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if head.is_empty() && is_reset(&e) => return Err(Failure::BeforeAnswer(e)),
            Err(e) => return Err(during(e)),
        };
        if buf.is_empty() {
            let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
            return Err(if head.is_empty() {
                Failure::BeforeAnswer(eof)
            } else {
                during(eof)
            });
        }
        // Byte by byte up to the blank line, so the body stays in the buffer.
        let mut used = 0;
        for &b in buf {
            head.push(b);
            used += 1;
            if head.ends_with(b"\r\n\r\n") {
                break;
            }
        }
        conn.consume(used);
        if head.len() > MAX_HEAD_BYTES {
            return Err(protocol("a response head over 64 KiB"));
        }
    }
    Ok(head)
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

fn read_exact(
    conn: &mut BufReader<TcpStream>,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<(), Failure> {
    let mut filled = 0;
    while filled < buf.len() {
        conn.get_ref()
            .set_read_timeout(Some(left(deadline).map_err(during)?))
            .map_err(during)?;
        match conn.read(&mut buf[filled..]) {
            Ok(0) => return Err(during(io::Error::from(io::ErrorKind::UnexpectedEof))),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(during(e)),
        }
    }
    Ok(())
}

fn read_to_end(conn: &mut BufReader<TcpStream>, deadline: Instant) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        conn.get_ref()
            .set_read_timeout(Some(left(deadline).map_err(during)?))
            .map_err(during)?;
        match conn.read(&mut chunk) {
            Ok(0) => return Ok(body),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(during(e)),
        }
        if body.len() > MAX_BODY_BYTES {
            return Err(protocol("an answer over the size limit"));
        }
    }
}

/// One CRLF-terminated line of a chunked body (a size line or a trailer), at most 4 KiB.
fn read_line(conn: &mut BufReader<TcpStream>, deadline: Instant) -> Result<Vec<u8>, Failure> {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        let mut byte = [0u8; 1];
        read_exact(conn, &mut byte, deadline)?;
        line.push(byte[0]);
        if line.len() > 4096 {
            return Err(protocol("a chunk line over 4 KiB"));
        }
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

fn read_chunked(conn: &mut BufReader<TcpStream>, deadline: Instant) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    loop {
        let line = read_line(conn, deadline)?;
        let size_text = line.split(|&b| b == b';').next().unwrap_or(&[]);
        let size = std::str::from_utf8(size_text)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(|| protocol("a bad chunk size"))?;
        if size == 0 {
            // Trailers, if any, up to the blank line.
            while !read_line(conn, deadline)?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(protocol("an answer over the size limit"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        read_exact(conn, &mut body[start..], deadline)?;
        if !read_line(conn, deadline)?.is_empty() {
            return Err(protocol("a chunk longer than its size"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A one-connection server that answers each request with the next of `answers`.
    fn serve(answers: Vec<&'static [u8]>) -> (u16, thread::JoinHandle<Vec<Vec<u8>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let handle = thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut requests = Vec::new();
            for answer in answers {
                let mut req = Vec::new();
                let mut byte = [0u8; 1];
                while !req.ends_with(b"\r\n\r\n") {
                    if s.read(&mut byte).unwrap_or(0) == 0 {
                        return requests;
                    }
                    req.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&req).to_string();
                let len: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                s.read_exact(&mut body).expect("body");
                req.extend_from_slice(&body);
                requests.push(req);
                s.write_all(answer).expect("answer");
            }
            requests
        });
        (port, handle)
    }

    #[test]
    fn reads_length_and_chunked_answers_on_one_connection() {
        let (port, server) = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        ]);
        let mut c = Client::new("127.0.0.1", port, Duration::from_secs(5));
        let a = c
            .post("/v3/kv/range", &[], b"{\"key\":\"YQ==\"}")
            .expect("first");
        assert_eq!((a.status, &a.body[..]), (200, &b"{}"[..]));
        let b = c
            .post("/v3/kv/txn", &[("Authorization", "tok")], b"{}")
            .expect("second");
        assert_eq!((b.status, &b.body[..]), (503, &b"abcde"[..]));
        let requests = server.join().expect("server");
        assert_eq!(requests.len(), 2, "both on one connection");
        let first = String::from_utf8_lossy(&requests[0]).to_string();
        assert!(first.starts_with("POST /v3/kv/range HTTP/1.1\r\nHost: 127.0.0.1:"));
        assert!(first.ends_with("Content-Length: 14\r\n\r\n{\"key\":\"YQ==\"}"));
        assert!(String::from_utf8_lossy(&requests[1]).contains("\r\nAuthorization: tok\r\n"));
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut c = Client::new("127.0.0.1", port, Duration::from_millis(200));
        let started = Instant::now();
        let err = c.post("/", &[], b"{}").err().expect("a timeout");
        assert_eq!(err.to_string(), "no answer in time");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(listener);
    }

    #[test]
    fn a_closed_port_is_a_connect_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let mut c = Client::new("127.0.0.1", port, Duration::from_secs(2));
        match c.post("/", &[], b"{}") {
            Err(HttpError::Connect(_)) => {}
            other => panic!("expected a connect error, got {:?}", other.err()),
        }
    }
}
