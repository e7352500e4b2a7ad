//! The wire format as a client sees it: request bytes, and responses parsed back from bytes
//! (a `Content-Length` body or a strictly checked chunked one). Shared by the real server's
//! client (`server.rs`) and the in-process harness (`inproc.rs`), so both assert on the same
//! `Resp`.

use std::io::Read;

/// The bytes of one HTTP/1.1 request. A `Content-Length` is added for a body, and for PUT, POST
/// and PATCH, unless `headers` name a length or a transfer coding.
pub fn request_bytes(
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if let Some(t) = token {
        r.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let mut has_len = false;
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding") {
            has_len = true;
        }
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len && (!body.is_empty() || method == "PUT" || method == "POST" || method == "PATCH") {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut v = r.into_bytes();
    v.extend_from_slice(body);
    v
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub reason: String,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Assert a JSON error response with this status and error code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"));
        let j = self.json();
        assert_eq!(j["error"], code, "body: {j}");
        assert!(
            j["message"].as_str().is_some_and(|m| !m.is_empty()),
            "message missing: {j}"
        );
        assert_eq!(j.as_object().unwrap().len(), 2, "extra fields: {j}");
        // One JSON object on one line, then a newline (so a shell prompt starts on its own line).
        assert!(
            self.body.ends_with(b"}\n") && self.body.iter().filter(|&&b| b == b'\n').count() == 1,
            "not one line ending in a newline: {:?}",
            self.text()
        );
    }
}

/// Read one response from the stream (a 100 Continue interim response is returned as such).
/// `head_only`: the request was HEAD, so no body follows whatever Content-Length says. A chunked
/// body is decoded strictly (see `read_chunked_body`).
pub fn read_response(s: &mut impl Read, head_only: bool) -> Result<Resp, String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) => return Err(format!("eof after {} head bytes", head.len())),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(format!("read error: {e}")),
        }
        if head.len() > 65536 {
            return Err("response head too long".into());
        }
    }
    let text = String::from_utf8(head).map_err(|e| e.to_string())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if version != "HTTP/1.1" {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let reason = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    for l in lines {
        if l.is_empty() {
            continue;
        }
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| format!("bad header {l:?}"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut resp = Resp {
        status,
        reason,
        headers,
        body: Vec::new(),
    };
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(resp);
    }
    if resp.header("transfer-encoding") == Some("chunked") {
        if resp.header("content-length").is_some() {
            return Err(format!("both framings: {:?}", resp.headers));
        }
        resp.body = read_chunked_body(s)?;
        return Ok(resp);
    }
    let len: usize = resp
        .header("content-length")
        .ok_or("no content-length")?
        .parse()
        .map_err(|_| "bad content-length")?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).map_err(|e| format!("body: {e}"))?;
    resp.body = body;
    Ok(resp)
}

/// Read one line ending in CRLF (without it).
fn read_crlf_line(s: &mut impl Read) -> Result<Vec<u8>, String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match s.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            Ok(_) => return Err(format!("eof inside chunk framing after {line:?}")),
            Err(e) => return Err(format!("read error in chunk framing: {e}")),
        }
        if line.len() >= 4096 {
            return Err("chunk framing line too long".into());
        }
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

/// A `Transfer-Encoding: chunked` body, decoded strictly: hex sizes, CRLF after every chunk,
/// the last chunk `0` and no trailers.
pub fn read_chunked_body(s: &mut impl Read) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line = read_crlf_line(s)?;
        let text = String::from_utf8(line).map_err(|_| "chunk size is not ASCII")?;
        let size = usize::from_str_radix(&text, 16)
            .map_err(|_| format!("chunk size is not hex: {text:?}"))?;
        if size == 0 {
            let end = read_crlf_line(s)?;
            if !end.is_empty() {
                return Err(format!("a trailer after the last chunk: {end:?}"));
            }
            return Ok(body);
        }
        let mut chunk = vec![0u8; size];
        s.read_exact(&mut chunk)
            .map_err(|e| format!("chunk data: {e}"))?;
        body.extend_from_slice(&chunk);
        let end = read_crlf_line(s)?;
        if !end.is_empty() {
            return Err(format!("no CRLF after chunk data: {end:?}"));
        }
    }
}

/// Standard base64 with padding, as HTTP Basic and the export's `base64` field use.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An `Authorization: Basic` value for `user:password`.
pub fn basic(credentials: &str) -> String {
    format!("Basic {}", base64(credentials.as_bytes()))
}

/// Percent-encode every byte.
pub fn pct(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}
