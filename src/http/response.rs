//! A response as a value, and the one function that turns it into bytes on the wire.
//! Handlers build `Response`s; only the connection layer calls `encode`.

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// None only for bodiless statuses (204, 304).
    pub content_type: Option<Cow<'static, str>>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON answer, ending with a newline (so `curl -s` leaves the shell prompt on a line of
    /// its own). For the API's own types: ones with string keys only, which always serialize.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Response {
        let mut body = serde_json::to_vec(value).expect("the API's types serialize to JSON");
        body.push(b'\n');
        Response::bytes(status, "application/json", body)
    }

    pub fn bytes(
        status: u16,
        content_type: impl Into<Cow<'static, str>>,
        body: Vec<u8>,
    ) -> Response {
        Response {
            status,
            content_type: Some(content_type.into()),
            headers: Vec::new(),
            body,
        }
    }

    /// 204 No Content (or 304): no body, no Content-Type.
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// What the connection says about itself in the `Connection` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionHeader {
    /// HTTP/1.1 keep-alive: nothing to say.
    None,
    /// HTTP/1.0 client that asked to keep the connection.
    KeepAlive,
    Close,
}

impl ConnectionHeader {
    /// What to say to a client on HTTP/1.`minor` whose connection stays open (`keep`) or not.
    pub fn choose(keep: bool, minor: u8) -> ConnectionHeader {
        match (keep, minor) {
            (false, _) => ConnectionHeader::Close,
            (true, 0) => ConnectionHeader::KeepAlive,
            (true, _) => ConnectionHeader::None,
        }
    }
}

/// One piece of a streamed body onto `out`: a chunk (HTTP/1.1), or the bytes as they are
/// (HTTP/1.0, where the body ends with the connection).
pub fn push_chunk(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    use std::io::Write;
    if data.is_empty() {
        return;
    }
    if chunked {
        let _ = write!(out, "{:x}\r\n", data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(data);
    }
}

/// The end of a streamed body: the last chunk (nothing for HTTP/1.0).
pub fn end_chunks(out: &mut Vec<u8>, chunked: bool) {
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

/// How a response's body is delimited on the wire.
enum Framing {
    Length(usize),
    Chunked,
    /// 204, 304 and 1xx carry no body and no length.
    None,
}

// Built from pieces rather than `write!`: this runs for every response.
fn write_head(
    r: &Response,
    out: &mut Vec<u8>,
    framing: Framing,
    connection: ConnectionHeader,
    date: &str,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, r.status as u64);
    out.push(b' ');
    out.extend_from_slice(reason(r.status).as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(ct) = &r.content_type {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(ct.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, n as u64);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::None => {}
    }
    out.extend_from_slice(b"X-Content-Type-Options: nosniff\r\n");
    for (k, v) in &r.headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match connection {
        ConnectionHeader::None => {}
        ConnectionHeader::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        ConnectionHeader::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

fn push_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(decimal(n).as_str().as_bytes());
}

/// The decimal digits of `n`, without the formatting machinery: numbers go into every
/// response head and key answer.
pub fn decimal(mut n: u64) -> Digits {
    let mut d = Digits {
        buf: [0; 20],
        start: 20,
    };
    loop {
        d.start -= 1;
        d.buf[d.start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return d;
        }
    }
}

pub struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[self.start..]).expect("ASCII digits")
    }
}

/// Append the head of a response whose body is produced while the client reads it: in chunks
/// (`Transfer-Encoding: chunked`), or for an HTTP/1.0 client, which knows no chunks, ended by
/// closing the connection.
pub fn encode_stream_head(
    r: &Response,
    out: &mut Vec<u8>,
    connection: ConnectionHeader,
    date: &str,
    chunked: bool,
) {
    let framing = if chunked {
        Framing::Chunked
    } else {
        Framing::None
    };
    write_head(r, out, framing, connection, date);
}

/// Append `r` to `out`. `head_only` (HEAD) keeps every header, Content-Length included, and
/// drops the body. Returns the number of body bytes written.
pub fn encode(
    r: &Response,
    out: &mut Vec<u8>,
    head_only: bool,
    connection: ConnectionHeader,
    date: &str,
) -> usize {
    let bodiless = r.status == 204 || r.status == 304 || r.status < 200;
    let framing = if bodiless {
        Framing::None
    } else {
        Framing::Length(r.body.len())
    };
    write_head(r, out, framing, connection, date);
    if head_only || bodiless {
        return 0;
    }
    out.extend_from_slice(&r.body);
    r.body.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_keeps_the_length_and_drops_the_body() {
        let r = Response::bytes(200, "text/plain", b"hello".to_vec());
        let mut out = Vec::new();
        encode(&r, &mut out, true, ConnectionHeader::None, "D");
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\
             X-Content-Type-Options: nosniff\r\n\r\n"
        );
    }

    #[test]
    fn no_content_has_no_length_and_no_body() {
        let mut out = Vec::new();
        encode(
            &Response::empty(204),
            &mut out,
            false,
            ConnectionHeader::Close,
            "D",
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 204 No Content\r\nDate: D\r\nX-Content-Type-Options: nosniff\r\n\
             Connection: close\r\n\r\n"
        );
    }
}
