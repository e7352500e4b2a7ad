//! Connections: accept them (within `max_connections`), read and route their requests, queue
//! and log their answers, apply timeouts, stream export bodies as clients read them, close them.

use std::io;
use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::parked::{Stream, Waiting};
use super::{Server, FIRST_CONN};
use crate::api::{self, Cursor, Uses, WatchPhase};
use crate::http::conn::{Conn, Next};
use crate::http::parse::Head;
use crate::http::{Method, Request, Response};

/// After an accept error (EMFILE, ENFILE, ENOMEM), wait this long before accepting again rather
/// than spin on a listener that stays readable.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

impl Server {
    pub(super) fn accept(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, _)) => {
                    if self.open >= self.ctx.config.max_connections {
                        // Dropping closes it at once: past the limit, refusing is the answer.
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let idx = self.free.pop().unwrap_or_else(|| {
                        self.conns.push(None);
                        self.conns.len() - 1
                    });
                    self.next_conn_id += 1;
                    let mut conn = Conn::new(stream, self.now, self.next_conn_id);
                    let token = Token(idx + FIRST_CONN);
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if self
                        .poll
                        .registry()
                        .register(&mut conn.stream, token, interest)
                        .is_err()
                    {
                        self.free.push(idx);
                        continue;
                    }
                    self.conns[idx] = Some(conn);
                    self.open += 1;
                    // Data may have arrived with the connection; edge-triggered events for it
                    // will come, but reading now saves a turn.
                    self.drive(idx);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    self.log.line(format_args!(
                        "accept failed: {e}; pausing accepts for {} ms",
                        ACCEPT_PAUSE.as_millis()
                    ));
                    self.accept_paused_until = Some(self.now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    pub(super) fn close(&mut self, idx: usize) {
        self.streaming.remove(&idx);
        self.deferred.remove(&idx);
        if let Some(mut c) = self.conns[idx].take() {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.free.push(idx);
            self.open -= 1;
        }
    }

    /// Take every complete request a connection has, in order, until it must wait.
    pub(super) fn drive(&mut self, idx: usize) {
        if self.streaming.contains(&idx) {
            self.pump_stream(idx);
        }
        if let Some(c) = self.conns[idx].as_mut() {
            if matches!(c.waiting, Some(Waiting::Watch { .. }))
                && c.peer_gone(&mut self.scratch, &self.ctx.config.limits, self.now)
            {
                // A watcher that hung up: forget its watch and the connection.
                self.unpark_watch(idx);
                self.close(idx);
                return;
            }
        }
        loop {
            let Some(c) = self.conns[idx].as_mut() else {
                return;
            };
            if !c.can_take_request() {
                break;
            }
            let (ctx, store) = (&self.ctx, &self.store);
            let body_limit = |head: &Head| api::body_limit(ctx, store, head);
            match c.next_request(
                &mut self.scratch,
                &self.ctx.config.limits,
                self.now,
                &body_limit,
            ) {
                Next::Request(req) => {
                    self.dispatch(idx, req, Instant::now(), WatchPhase::Fresh, None);
                }
                Next::NeedMore => break,
                Next::Fail(e) => {
                    let r = c.fail(e, &self.date);
                    if self.ctx.config.log_requests {
                        self.log
                            .line(format_args!("- - {} {}B 0us", r.status, r.body.len()));
                    }
                    break;
                }
            }
        }
        let Some(c) = self.conns[idx].as_mut() else {
            return;
        };
        c.flush(self.now);
        if c.dead && c.waiting.is_none() {
            self.close(idx);
        }
    }

    pub(super) fn sweep_timeouts(&mut self) {
        for idx in 0..self.conns.len() {
            let Some(c) = self.conns[idx].as_mut() else {
                continue;
            };
            if let Some(r) = c.check_timeouts(self.now, &self.ctx.config.limits, &self.date) {
                if self.ctx.config.log_requests {
                    self.log
                        .line(format_args!("- - {} {}B 0us", r.status, r.body.len()));
                }
            }
            // A connection with a parked request stays until it is answered (or, for a watch,
            // until `drive` sees the client gone).
            if c.dead && c.waiting.is_none() {
                self.close(idx);
            }
        }
    }

    /// Send a streamed answer's head, and its body as the client reads it (HEAD: the head only).
    pub(super) fn start_stream(
        &mut self,
        idx: usize,
        req: Request,
        mut head: Response,
        cursor: Cursor,
        started: Instant,
        label: &'static str,
    ) {
        api::decorate(&self.ctx, &req, &mut head);
        let Some(c) = self.conns[idx].as_mut() else {
            return;
        };
        // HEAD gets the same (chunked, so no length to promise) head as GET, and no body.
        c.start_chunks(&head, &req, &self.date);
        if req.head.method == Method::Head {
            self.count_and_log(&req, head.status, 0, started, label);
            return;
        }
        c.waiting = Some(Waiting::Streaming(Stream {
            request: req,
            started,
            label,
            cursor,
            sent: 0,
        }));
        self.streaming.insert(idx);
    }

    /// Feed a streaming response while its client keeps up, never from a project whose changes
    /// are not yet durable. At the end, count and log it and let the connection go on.
    pub(super) fn pump_stream(&mut self, idx: usize) {
        loop {
            let Some(c) = self.conns[idx].as_mut() else {
                self.streaming.remove(&idx);
                return;
            };
            if c.dead {
                // The client went away mid-stream: nothing more to send.
                c.waiting = None;
                self.streaming.remove(&idx);
                return;
            }
            let wants = c.wants_chunk();
            let Some(Waiting::Streaming(Stream { cursor, sent, .. })) = c.waiting.as_mut() else {
                self.streaming.remove(&idx);
                return;
            };
            if !wants || self.commit.must_wait(Uses::Project(&cursor.project), false) {
                return;
            }
            let mut chunk = Vec::new();
            let more = api::next_chunk(&self.store, cursor, &mut chunk);
            *sent += chunk.len();
            c.push_chunk(&chunk);
            match more {
                Ok(true) => {
                    c.flush(self.now);
                    continue;
                }
                Ok(false) => c.end_chunks(),
                Err(_) => c.abort(),
            }
            let Some(Waiting::Streaming(st)) = c.waiting.take() else {
                return;
            };
            self.streaming.remove(&idx);
            let status = if more.is_ok() { 200 } else { 500 };
            self.count_and_log(&st.request, status, st.sent, st.started, st.label);
            return;
        }
    }

    /// Queue an answer, count it under the route's `label`, and log it.
    pub(super) fn respond(
        &mut self,
        idx: usize,
        req: &Request,
        mut r: Response,
        started: Instant,
        label: &'static str,
    ) {
        let Some(c) = self.conns[idx].as_mut() else {
            return;
        };
        api::decorate(&self.ctx, req, &mut r);
        let bytes = c.send(&r, req, &self.date);
        self.count_and_log(req, r.status, bytes, started, label);
    }

    /// Count an answer in the metrics and write its log line.
    fn count_and_log(
        &mut self,
        req: &Request,
        status: u16,
        bytes: usize,
        started: Instant,
        label: &'static str,
    ) {
        self.ctx
            .status
            .metrics
            .record_request(label, status, started.elapsed());
        if self.ctx.config.log_requests {
            self.log.line(format_args!(
                "{} {} {} {}B {}us",
                req.head.method.as_str(),
                req.head.path(),
                status,
                bytes,
                started.elapsed().as_micros()
            ));
        }
    }
}
