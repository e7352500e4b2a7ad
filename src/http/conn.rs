//! One client connection: its buffers, its timeouts and the state machine that turns bytes into
//! requests and responses into bytes. It never sees the store or a route: the server hands each
//! complete request to the router and gives back a `Response`, or parks something on it.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::parse::{self, Chunked, Framing, Head, Request};
use super::response::{self, ConnectionHeader, Response};
use crate::config::Limits;
use crate::error::{ApiError, Code};

/// Stop taking new requests from a client while this much of its output is unsent: a client that
/// does not read cannot make us buffer without bound.
const MAX_PENDING_OUTPUT: usize = 256 * 1024;
/// Bytes read from a socket per call.
pub const READ_CHUNK: usize = 64 * 1024;
/// After an error that closes the connection, keep discarding what the client still sends for
/// this long, so it reads our answer instead of a reset.
const LINGER: Duration = Duration::from_secs(2);

/// How large a body a request head may announce (the router's rule, handed in).
pub type BodyLimit<'a> = &'a dyn Fn(&Head) -> usize;

/// What `next_request` found in the buffer.
pub enum Next {
    Request(Request),
    /// Incomplete: wait for more bytes.
    NeedMore,
    /// The request is refused at the HTTP level; answer it and close.
    Fail(ApiError),
}

enum Phase {
    Head,
    Body {
        head: Head,
        body: Vec<u8>,
        framing: BodyFraming,
    },
    /// Write side shut down; discarding input until EOF or the deadline.
    Lingering {
        since: Instant,
    },
}

enum BodyFraming {
    Length(usize),
    Chunked(Chunked),
}

/// One connection. `W` is what the server parks on it while its request cannot be answered yet
/// (this layer only asks whether something is parked: then it reads no further requests and
/// applies no timeouts).
pub struct Conn<W> {
    /// Tells this connection from a later one in the same slot.
    pub id: u64,
    pub stream: TcpStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    phase: Phase,
    /// The socket is known to be drained (a read returned WouldBlock, or fewer bytes than asked
    /// for): wait for a readable event before reading again.
    read_blocked: bool,
    /// The last readable event said the peer closed its side: read on to the end of the stream.
    peer_closing: bool,
    peer_closed: bool,
    close_after_flush: bool,
    /// Last time bytes moved in either direction.
    last_activity: Instant,
    /// When the first byte of the current request head arrived.
    head_started: Option<Instant>,
    pub waiting: Option<W>,
    /// Set once the connection should be dropped.
    pub dead: bool,
    /// Whether the body being streamed is chunk-framed (HTTP/1.1) or ends with the connection.
    chunked: bool,
}

impl<W> Conn<W> {
    pub fn new(stream: TcpStream, now: Instant, id: u64) -> Conn<W> {
        Conn {
            id,
            stream,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            phase: Phase::Head,
            read_blocked: false,
            peer_closing: false,
            peer_closed: false,
            close_after_flush: false,
            last_activity: now,
            head_started: None,
            waiting: None,
            dead: false,
            chunked: true,
        }
    }

    /// Read what has arrived (kept for later) and tell whether the client has hung up.
    pub fn peer_gone(&mut self, scratch: &mut [u8], limits: &Limits, now: Instant) -> bool {
        self.fill(scratch, limits, now);
        self.peer_closed || self.dead
    }

    /// Nothing sent is unanswered and nothing received is half-parsed.
    pub fn idle_between_requests(&self) -> bool {
        self.out_pos == self.out.len() && self.inbuf.is_empty() && matches!(self.phase, Phase::Head)
    }

    /// A readable event arrived; `closing`: it also said the peer closed its side.
    pub fn on_readable(&mut self, closing: bool) {
        self.read_blocked = false;
        self.peer_closing |= closing;
    }

    /// Whether the server may parse and dispatch another request now.
    pub fn can_take_request(&self) -> bool {
        !self.dead
            && self.waiting.is_none()
            && !self.close_after_flush
            && matches!(self.phase, Phase::Head | Phase::Body { .. })
            && self.out.len() - self.out_pos < MAX_PENDING_OUTPUT
    }

    fn inbuf_cap(limits: &Limits) -> usize {
        limits.max_head_bytes + READ_CHUNK
    }

    /// Read what the socket has, up to the buffer's cap. Returns whether anything arrived.
    fn fill(&mut self, scratch: &mut [u8], limits: &Limits, now: Instant) -> bool {
        let mut got = false;
        while !self.read_blocked && !self.peer_closed {
            let room = Self::inbuf_cap(limits).saturating_sub(self.inbuf.len());
            if room == 0 {
                break;
            }
            let want = room.min(scratch.len());
            match self.stream.read(&mut scratch[..want]) {
                Ok(0) => self.peer_closed = true,
                Ok(n) => {
                    if self.inbuf.is_empty() && matches!(self.phase, Phase::Head) {
                        self.head_started.get_or_insert(now);
                    }
                    self.inbuf.extend_from_slice(&scratch[..n]);
                    self.last_activity = now;
                    got = true;
                    // A short read drained the socket: on Linux any later data raises a new
                    // edge, so asking again would only return WouldBlock (a syscall a request).
                    // A FIN that came with the data raised no edge of its own: read on for it.
                    if n < want && !self.peer_closing {
                        self.read_blocked = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.read_blocked = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.peer_closed = true;
                    self.dead = true;
                }
            }
        }
        got
    }

    /// Parse the next complete request, reading more from the socket as needed. `body_limit`
    /// says how large a body the request's head may announce.
    pub fn next_request(
        &mut self,
        scratch: &mut [u8],
        limits: &Limits,
        now: Instant,
        body_limit: BodyLimit<'_>,
    ) -> Next {
        loop {
            match self.step(limits, body_limit) {
                Next::NeedMore => {
                    if !self.fill(scratch, limits, now) {
                        if self.peer_closed {
                            // EOF between requests, or mid-request: nothing more will come, but
                            // answers already queued still go out.
                            if self.out_pos == self.out.len() {
                                self.dead = true;
                            } else {
                                self.close_after_flush = true;
                            }
                        }
                        return Next::NeedMore;
                    }
                }
                other => return other,
            }
        }
    }

    fn step(&mut self, limits: &Limits, body_limit: BodyLimit<'_>) -> Next {
        match &mut self.phase {
            Phase::Lingering { .. } => Next::NeedMore,
            Phase::Head => {
                if self.inbuf.is_empty() {
                    return Next::NeedMore;
                }
                if self.head_started.is_none() {
                    self.head_started = Some(Instant::now());
                }
                let (head, len, framing) = match parse::parse_head(&self.inbuf, limits) {
                    Ok(Some(parsed)) => parsed,
                    Ok(None) => return Next::NeedMore,
                    Err(e) => return Next::Fail(e),
                };
                self.inbuf.drain(..len);
                if let Err(e) = parse::check_expect(&head) {
                    return Next::Fail(e);
                }
                let max_body = body_limit(&head);
                let framing = match framing {
                    Framing::None => {
                        return self.complete(Request {
                            head,
                            body: Vec::new(),
                        });
                    }
                    Framing::Length(n) if n > max_body => {
                        return Next::Fail(parse::body_too_large(max_body));
                    }
                    Framing::Length(n) => BodyFraming::Length(n),
                    Framing::Chunked => BodyFraming::Chunked(Chunked::new(max_body)),
                };
                if head.expects_continue() && head.minor_version == 1 && self.inbuf.is_empty() {
                    self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
                self.phase = Phase::Body {
                    head,
                    body: Vec::new(),
                    framing,
                };
                self.step(limits, body_limit)
            }
            Phase::Body { body, framing, .. } => {
                let done = match framing {
                    BodyFraming::Length(remaining) => {
                        let n = (*remaining).min(self.inbuf.len());
                        body.extend_from_slice(&self.inbuf[..n]);
                        self.inbuf.drain(..n);
                        *remaining -= n;
                        *remaining == 0
                    }
                    BodyFraming::Chunked(c) => match c.feed(&self.inbuf, body) {
                        Ok(n) => {
                            self.inbuf.drain(..n);
                            c.is_done()
                        }
                        Err(e) => return Next::Fail(e),
                    },
                };
                if !done {
                    return Next::NeedMore;
                }
                let Phase::Body { head, body, .. } =
                    std::mem::replace(&mut self.phase, Phase::Head)
                else {
                    unreachable!("matched Phase::Body above");
                };
                self.complete(Request { head, body })
            }
        }
    }

    fn complete(&mut self, request: Request) -> Next {
        self.phase = Phase::Head;
        self.head_started = None;
        Next::Request(request)
    }

    /// Queue a response. Returns the body bytes queued (for the log).
    pub fn send(&mut self, r: &Response, request: &Request, date: &str) -> usize {
        let connection = self.connection_header(request);
        let head_only = request.head.method == parse::Method::Head;
        response::encode(r, &mut self.out, head_only, connection, date)
    }

    fn connection_header(&mut self, request: &Request) -> ConnectionHeader {
        let keep = request.head.keep_alive() && !self.close_after_flush;
        if !keep {
            self.close_after_flush = true;
        }
        ConnectionHeader::choose(keep, request.head.minor_version)
    }

    /// Queue the head of a response whose body follows through `push_chunk` and `end_chunks`.
    /// HTTP/1.0 clients get the body unframed, ended by closing the connection.
    pub fn start_chunks(&mut self, r: &Response, request: &Request, date: &str) {
        self.chunked = request.head.minor_version == 1;
        if !self.chunked {
            self.close_after_flush = true;
        }
        let connection = self.connection_header(request);
        response::encode_stream_head(r, &mut self.out, connection, date, self.chunked);
    }

    /// Queue one chunk of a streamed body.
    pub fn push_chunk(&mut self, data: &[u8]) {
        response::push_chunk(&mut self.out, data, self.chunked);
    }

    /// Close a streamed body.
    pub fn end_chunks(&mut self) {
        response::end_chunks(&mut self.out, self.chunked);
    }

    /// Abandon a streamed body half-way: the client sees the transfer cut, not a complete body.
    pub fn abort(&mut self) {
        self.dead = true;
    }

    /// Whether a streamed body may take another chunk without piling up output.
    pub fn wants_chunk(&self) -> bool {
        !self.dead && self.out.len() - self.out_pos < MAX_PENDING_OUTPUT / 4
    }

    /// Queue an HTTP-level error and close after it.
    pub fn fail(&mut self, e: ApiError, date: &str) -> Response {
        self.close_after_flush = true;
        self.inbuf.clear();
        let r = e.into_response();
        response::encode(&r, &mut self.out, false, ConnectionHeader::Close, date);
        r
    }

    /// Write what is queued. Moves to lingering close when a closing response is fully sent.
    pub fn flush(&mut self, now: Instant) {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => {
                    self.dead = true;
                    return;
                }
                Ok(n) => {
                    self.out_pos += n;
                    self.last_activity = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            // A streamed answer is still being produced: closing waits for its end.
            if self.close_after_flush
                && self.waiting.is_none()
                && !matches!(self.phase, Phase::Lingering { .. })
            {
                let _ = self.stream.shutdown(Shutdown::Write);
                self.phase = Phase::Lingering { since: now };
                self.inbuf = Vec::new();
            }
        } else if self.out_pos > MAX_PENDING_OUTPUT {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        if let Phase::Lingering { .. } = self.phase {
            self.discard_input();
        }
    }

    fn discard_input(&mut self) {
        let mut sink = [0u8; 4096];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => {
                    self.dead = true;
                    return;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
    }

    /// Apply the timeouts. A slow head or a stalled body gets 408; an idle connection, a client
    /// that stopped reading, or a finished linger is closed silently.
    pub fn check_timeouts(
        &mut self,
        now: Instant,
        limits: &Limits,
        date: &str,
    ) -> Option<Response> {
        if self.dead || self.waiting.is_some() {
            return None;
        }
        let ms = Duration::from_millis;
        if let Phase::Lingering { since } = self.phase {
            if now.duration_since(since) >= LINGER {
                self.dead = true;
            }
            return None;
        }
        let idle = now.duration_since(self.last_activity);
        if self.out_pos < self.out.len() || self.close_after_flush {
            if idle >= ms(limits.idle_timeout_ms) {
                self.dead = true;
            }
            return None;
        }
        let slow = match (&self.phase, self.head_started) {
            (Phase::Body { .. }, _) => idle >= ms(limits.body_timeout_ms),
            (Phase::Head, Some(start)) if !self.inbuf.is_empty() => {
                now.duration_since(start) >= ms(limits.head_timeout_ms)
            }
            _ => {
                if idle >= ms(limits.idle_timeout_ms) {
                    self.dead = true;
                }
                false
            }
        };
        if !slow {
            return None;
        }
        let e = ApiError::new(
            Code::RequestTimeout,
            "the request did not arrive in time (limits.head_timeout_ms / body_timeout_ms)",
        );
        let r = self.fail(e, date);
        self.flush(now);
        Some(r)
    }
}
