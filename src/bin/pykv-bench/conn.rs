//! One keep-alive connection of `pykv-bench`: its socket, output and input buffers, the
//! requests in flight, and answers parsed off the front of its input (httparse). Sees bytes
//! only: what is sent comes from `request`, what is timed and counted is `load`'s business.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Poll, Token};

/// A read buffer per connection; it grows (up to `MAX_READ_BUFFER`) only for larger answers.
const READ_BUFFER: usize = 64 * 1024;
const MAX_READ_BUFFER: usize = 64 * 1024 * 1024;
/// Header fields parsed per answer; pykv sends about six, nginx about seven.
const MAX_RESPONSE_HEADERS: usize = 32;

/// One keep-alive connection and the requests it has in flight.
pub struct Conn {
    pub stream: TcpStream,
    pub out: Vec<u8>,
    pub out_pos: usize,
    pub input: Vec<u8>,
    pub in_start: usize,
    pub in_end: usize,
    /// When each request in flight was queued, oldest first (answers come in order).
    pub sent: VecDeque<Instant>,
}

impl Conn {
    pub fn open(addr: SocketAddr, poll: &Poll, token: Token, pipeline: usize) -> io::Result<Conn> {
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
    pub fn flush(&mut self) -> io::Result<()> {
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
    pub fn fill(&mut self) -> io::Result<bool> {
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
pub struct Answer {
    pub status: u16,
    pub body_start: usize,
    pub len: usize,
    pub close: bool,
}

/// `Ok(None)` while the answer is incomplete. Answers must carry `Content-Length` (pykv's and
/// nginx's all do), except those that never have a body.
pub fn parse_answer(buf: &[u8]) -> Result<Option<Answer>, String> {
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
