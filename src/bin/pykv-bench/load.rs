//! The load loop of `pykv-bench`: one mio poll over every connection, each kept at
//! `--pipeline` requests in flight until the deadline or the request count; latencies into the
//! histogram, failures counted, a lost connection replaced. Sends what `request` writes and
//! parses answers through `conn`; prints nothing but the first error.

use std::io;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use crate::conn::{parse_answer, Conn};
use crate::histogram::Histogram;
use crate::options::Options;
use crate::report::Report;
use crate::request::{Mode, RequestWriter};

/// Time between checks of the deadline when no answer arrives: short enough that a run stops
/// on time, long enough not to spin.
const POLL_TICK: Duration = Duration::from_millis(50);
/// How much of the first failing answer's body is shown.
const ERROR_BODY_SHOWN: usize = 300;

/// The load loop: every connection keeps `pipeline` requests in flight until the deadline or
/// the request count is reached.
pub struct Bench<'a> {
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
    pub fn new(opts: &'a Options, mode: Mode) -> Result<Bench<'a>, String> {
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

    pub fn run(mut self) -> Result<Report, String> {
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
