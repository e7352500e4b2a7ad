//! Request heads (httparse), body framing (Content-Length, chunked) and every limit on them.
//! Pure functions over byte buffers: no sockets, no store. Nothing here allocates according to
//! a number the client sent; bodies grow only as their bytes arrive.

use std::mem::MaybeUninit;
use std::ops::Range;

use crate::config::Limits;
use crate::error::{ApiError, Code};

/// Header slots kept on the stack while parsing; more than this (a raised limit) go on the heap.
const STACK_HEADERS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Put,
    Post,
    Delete,
    Patch,
    Options,
    Other(String),
}

impl Method {
    fn from_str(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "PUT" => Method::Put,
            "POST" => Method::Post,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Other(s) => s,
        }
    }
}

/// A parsed request head: its text kept in one allocation, with the places of the path, the
/// query and each header in it (one allocation per request instead of two per header).
#[derive(Debug, Clone)]
pub struct Head {
    pub method: Method,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    text: String,
    path: Range<usize>,
    query: Option<Range<usize>>,
    /// (name, value) of each header; values without surrounding white space.
    headers: Vec<(Range<usize>, Range<usize>)>,
}

impl Head {
    /// The path, still percent-encoded, without the query.
    pub fn path(&self) -> &str {
        &self.text[self.path.clone()]
    }

    pub fn query(&self) -> Option<&str> {
        self.query.clone().map(|q| &self.text[q])
    }

    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .map(|(k, v)| (&self.text[k.clone()], &self.text[v.clone()]))
    }

    /// Whether the client wants the connection kept after this request.
    pub fn keep_alive(&self) -> bool {
        let mut close = self.minor_version == 0;
        for (k, v) in self.headers() {
            if !k.eq_ignore_ascii_case("connection") {
                continue;
            }
            for token in v.split(',') {
                let t = token.trim();
                if t.eq_ignore_ascii_case("close") {
                    return false;
                }
                if t.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            }
        }
        !close
    }

    pub fn expects_continue(&self) -> bool {
        self.header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }
}

/// `Expect`: only `100-continue` is understood; anything else is 417 (RFC 9110 §10.1.1).
pub fn check_expect(head: &Head) -> Result<(), ApiError> {
    match head.header("expect") {
        Some(e) if !e.eq_ignore_ascii_case("100-continue") => Err(ApiError::new(
            Code::ExpectationFailed,
            "only \"Expect: 100-continue\" is supported",
        )),
        _ => Ok(()),
    }
}

/// A whole request, as handed to the router.
#[derive(Debug, Clone)]
pub struct Request {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(usize),
    Chunked,
}

/// Parse a request head at the start of `buf`. `Ok(None)`: incomplete, read more.
/// On success, returns the head, its length in bytes, and the body framing.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<(Head, usize, Framing)>, ApiError> {
    check_request_line(buf, limits)?;
    // The header slots live on the stack for the usual limits; they need no initialising.
    let mut on_stack = [const { MaybeUninit::<httparse::Header>::uninit() }; STACK_HEADERS];
    let mut on_heap;
    let slots: &mut [MaybeUninit<httparse::Header>] = if limits.max_headers <= STACK_HEADERS {
        &mut on_stack[..limits.max_headers]
    } else {
        on_heap = Vec::with_capacity(limits.max_headers);
        on_heap.resize_with(limits.max_headers, MaybeUninit::uninit);
        &mut on_heap[..]
    };
    let mut req = httparse::Request::new(&mut []);
    let status = match req.parse_with_uninit_headers(buf, slots) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => {
            return Err(too_large(format!(
                "more than {} header fields (limits.max_headers)",
                limits.max_headers
            )));
        }
        Err(e) => return Err(ApiError::bad_request(format!("malformed request: {e}"))),
    };
    let len = match status {
        httparse::Status::Partial => {
            if buf.len() > limits.max_head_bytes {
                return Err(too_large(format!(
                    "the request head exceeds {} bytes (limits.max_head_bytes)",
                    limits.max_head_bytes
                )));
            }
            return Ok(None);
        }
        httparse::Status::Complete(n) => n,
    };
    if len > limits.max_head_bytes {
        return Err(too_large(format!(
            "the request head exceeds {} bytes (limits.max_head_bytes)",
            limits.max_head_bytes
        )));
    }
    let method = Method::from_str(req.method.unwrap_or(""));
    let target = req.path.unwrap_or("");
    if !target.starts_with('/') {
        return Err(ApiError::bad_request(
            "the request target must be a path starting with /",
        ));
    }
    // Places are offsets into `buf`, where httparse's slices point.
    let at = |s: &[u8]| s.as_ptr() as usize - buf.as_ptr() as usize;
    let target_at = at(target.as_bytes());
    let (path, query) = match target.find('?') {
        Some(q) => (
            target_at..target_at + q,
            Some(target_at + q + 1..target_at + target.len()),
        ),
        None => (target_at..target_at + target.len(), None),
    };
    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = at(h.name.as_bytes());
        let value = trim_ascii_ws(h.value);
        let value_at = if value.is_empty() {
            at(h.value)
        } else {
            at(value)
        };
        headers.push((name..name + h.name.len(), value_at..value_at + value.len()));
    }
    let text = String::from_utf8(buf[..len].to_vec())
        .map_err(|_| ApiError::bad_request("the request head is not UTF-8"))?;
    let head = Head {
        method,
        minor_version: req.version.unwrap_or(1),
        text,
        path,
        query,
        headers,
    };
    let framing = framing(&head)?;
    Ok(Some((head, len, framing)))
}

fn too_large(message: String) -> ApiError {
    ApiError::new(Code::HeaderTooLarge, message)
}

/// A request target over the limit gets 414 as soon as the request line shows it, without
/// waiting for (or buffering) the rest of the head.
fn check_request_line(buf: &[u8], limits: &Limits) -> Result<(), ApiError> {
    // "METHOD " and " HTTP/1.1\r" around the target: allow for a generous method name.
    const LINE_SLACK: usize = 32;
    let line_end = buf.iter().position(|&b| b == b'\n');
    let line = &buf[..line_end.unwrap_or(buf.len())];
    let target_len = match line.iter().position(|&b| b == b' ') {
        Some(sp) => {
            let rest = &line[sp + 1..];
            match (line_end, rest.iter().position(|&b| b == b' ')) {
                (_, Some(end)) => end,
                (None, None) => rest.len().saturating_sub(LINE_SLACK),
                (Some(_), None) => rest.len(),
            }
        }
        None if line_end.is_none() => line.len().saturating_sub(LINE_SLACK),
        None => 0,
    };
    if target_len > limits.max_url_bytes {
        return Err(ApiError::new(
            Code::UriTooLong,
            format!(
                "the request target exceeds {} bytes (limits.max_url_bytes)",
                limits.max_url_bytes
            ),
        ));
    }
    Ok(())
}

/// Decide the body framing, refusing anything two parsers could read two ways (smuggling).
fn framing(head: &Head) -> Result<Framing, ApiError> {
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut has_te = false;
    for (k, v) in head.headers() {
        if k.eq_ignore_ascii_case("content-length") {
            if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::bad_request(
                    "Content-Length must be a single decimal number",
                ));
            }
            let n: u64 = v.parse().map_err(|_| {
                ApiError::bad_request("Content-Length must be a single decimal number")
            })?;
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if length.is_some_and(|l| l != n) {
                return Err(ApiError::bad_request(
                    "several different Content-Length headers",
                ));
            }
            length = Some(n);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            if has_te || !v.eq_ignore_ascii_case("chunked") {
                return Err(ApiError::new(
                    Code::NotImplemented,
                    "the only Transfer-Encoding accepted is a single \"chunked\"",
                ));
            }
            has_te = true;
            chunked = true;
        }
    }
    if chunked && length.is_some() {
        return Err(ApiError::bad_request(
            "Content-Length and Transfer-Encoding together are refused",
        ));
    }
    if chunked && head.minor_version == 0 {
        return Err(ApiError::bad_request(
            "Transfer-Encoding is not allowed in HTTP/1.0",
        ));
    }
    Ok(match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(0)) | (false, None) => Framing::None,
        (false, Some(n)) => Framing::Length(n),
    })
}

pub fn body_too_large(limit: usize) -> ApiError {
    ApiError::new(Code::PayloadTooLarge, format!("the body exceeds {limit} bytes (limits.max_value_bytes, or max_import_bytes for imports)"),
    )
}

/// Incremental decoder of a chunked body, bounded by `limit` decoded bytes.
#[derive(Debug)]
pub struct Chunked {
    state: ChunkState,
    limit: usize,
    trailer_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(usize),
    DataEnd,
    Trailer,
    Done,
}

/// A chunk-size line or a trailer line longer than this is not a real client.
const MAX_CHUNK_LINE: usize = 1024;
/// Trailers are read and dropped; bound them like a head.
const MAX_TRAILER_BYTES: usize = 8 * 1024;

impl Chunked {
    pub fn new(limit: usize) -> Chunked {
        Chunked {
            state: ChunkState::Size,
            limit,
            trailer_bytes: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decode from `input` into `body`; returns how many input bytes were consumed.
    pub fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<usize, ApiError> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                ChunkState::Done => return Ok(pos),
                ChunkState::Size => {
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() > MAX_CHUNK_LINE {
                            return Err(bad_chunk("chunk-size line too long"));
                        }
                        return Ok(pos);
                    };
                    let size = parse_chunk_size(&rest[..nl])?;
                    pos += nl + 1;
                    if size > self.limit - body.len() {
                        return Err(body_too_large(self.limit));
                    }
                    self.state = if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(remaining) => {
                    if rest.is_empty() {
                        return Ok(pos);
                    }
                    let n = remaining.min(rest.len());
                    body.extend_from_slice(&rest[..n]);
                    pos += n;
                    self.state = if n == remaining {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(remaining - n)
                    };
                }
                ChunkState::DataEnd => {
                    if rest.len() < 2 {
                        if rest.first().is_some_and(|&b| b != b'\r') {
                            return Err(bad_chunk("chunk data not followed by CRLF"));
                        }
                        return Ok(pos);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(bad_chunk("chunk data not followed by CRLF"));
                    }
                    pos += 2;
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => {
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        if self.trailer_bytes + rest.len() > MAX_TRAILER_BYTES {
                            return Err(bad_chunk("chunked trailer too long"));
                        }
                        return Ok(pos);
                    };
                    self.trailer_bytes += nl + 1;
                    if self.trailer_bytes > MAX_TRAILER_BYTES {
                        return Err(bad_chunk("chunked trailer too long"));
                    }
                    let line = &rest[..nl];
                    pos += nl + 1;
                    if line == b"\r" || line.is_empty() {
                        self.state = ChunkState::Done;
                    }
                }
            }
        }
    }
}

fn bad_chunk(what: &str) -> ApiError {
    ApiError::bad_request(format!("bad chunked body: {what}"))
}

fn parse_chunk_size(line: &[u8]) -> Result<usize, ApiError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // Chunk extensions (";name=value") carry nothing we use.
    let digits = match line.iter().position(|&b| b == b';') {
        Some(i) => &line[..i],
        None => line,
    };
    let digits = trim_ascii_ws(digits);
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad_chunk("invalid chunk size"));
    }
    let text = std::str::from_utf8(digits).map_err(|_| bad_chunk("invalid chunk size"))?;
    usize::from_str_radix(text, 16).map_err(|_| bad_chunk("invalid chunk size"))
}

fn trim_ascii_ws(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if *first == b' ' || *first == b'\t' {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if *last == b' ' || *last == b'\t' {
            b = rest;
        } else {
            break;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn a_partial_head_asks_for_more() {
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n", &limits())
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_query_is_split_from_the_path() {
        let (h, n, f) = parse_head(b"GET /a/b?x=1 HTTP/1.1\r\n\r\n", &limits())
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.path(), h.query(), n, f),
            ("/a/b", Some("x=1"), 25, Framing::None)
        );
    }

    #[test]
    fn content_length_and_chunked_together_are_refused() {
        let e = parse_head(
            b"PUT / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            &limits(),
        )
        .unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn a_long_target_is_refused_before_the_line_ends() {
        let mut buf = b"GET /".to_vec();
        buf.extend(std::iter::repeat_n(b'a', 9000));
        assert_eq!(parse_head(&buf, &limits()).unwrap_err().status(), 414);
    }

    #[test]
    fn chunked_bodies_decode_across_feeds() {
        let mut c = Chunked::new(100);
        let mut body = Vec::new();
        let input = b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: 1\r\n\r\n";
        let mut consumed = 0;
        for end in 1..=input.len() {
            consumed += c.feed(&input[consumed..end], &mut body).unwrap();
        }
        assert!(c.is_done());
        assert_eq!(body, b"abcde");
        assert_eq!(consumed, input.len());
    }

    #[test]
    fn chunked_bodies_stop_at_the_limit() {
        let mut c = Chunked::new(4);
        let e = c.feed(b"5\r\nabcde\r\n", &mut Vec::new()).unwrap_err();
        assert_eq!(e.status(), 413);
        let e = Chunked::new(4)
            .feed(b"zz\r\n", &mut Vec::new())
            .unwrap_err();
        assert_eq!(e.status(), 400);
    }
}
