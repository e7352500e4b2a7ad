//! The event loop: one thread accepts, reads, parses, routes, touches the store, writes the
//! journals and answers. It owns the listener, every connection, the store and the timers.
//!
//! One turn of the loop: wait for readiness (or the next timer); read and answer what arrived,
//! each request routed, handled and its change handed to the commit; if changes wait, poll once
//! or twice more without waiting, so requests already on their way join the same group commit;
//! then `settle`: write the turn's changes (the commit: see `commit.rs` for the durability
//! rule), release the answers that waited for them, run the requests that waited, wake the
//! watches; then one slice of background work (a compaction); then the timers.
//!
//! - `conns.rs` — connections: accept, read, answer, time out, close; streamed exports.
//! - `parked.rs` — requests that wait: held answers, deferred requests, parked watches.
//! - `commit.rs` — the durability rule and the group commit.

mod commit;
mod conns;
mod parked;

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, UnixStream};
use mio::{Events, Interest, Poll, Token};

use crate::api::{self, Ctx, Outcome, Reply, Route, Uses, WatchPhase};
use crate::config::Config;
use crate::error::ApiError;
use crate::http::conn::{Conn, READ_CHUNK};
use crate::http::Request;
use crate::log::{self, Log};
use crate::persist::Disk;
use crate::status::Status;
use crate::store::Store;

use commit::Commit;
use parked::{Held, Waiting};

const LISTENER: Token = Token(0);
const SIGNAL: Token = Token(1);
const FIRST_CONN: usize = 2;
/// How long a shutdown waits for answers already queued to reach their clients.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Extra polls (that do not wait) a turn makes for requests to join its group commit.
const GATHER_POLLS: usize = 2;
/// Expired keys removed per loop turn at most; the rest wait for the next turn, so a mass
/// expiry never stalls the loop.
const EXPIRE_PER_TURN: usize = 1000;

pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    signal: UnixStream,
    conns: Vec<Option<Conn<Waiting>>>,
    free: Vec<usize>,
    open: usize,
    next_conn_id: u64,
    store: Store,
    commit: Commit<Held>,
    ctx: Ctx,
    scratch: Vec<u8>,
    log: Log,
    now: Instant,
    date: String,
    date_secs: u64,
    accept_paused_until: Option<Instant>,
    /// When interval-mode journals are next fdatasynced (None: nothing unsynced).
    next_sync: Option<Instant>,
    next_sweep: Instant,
    stopping: bool,
    /// Connections streaming a response body from the store.
    streaming: BTreeSet<usize>,
    /// Connections whose request waits for the commit (see `commit::must_wait`).
    deferred: BTreeSet<usize>,
    /// Parked watches by project, and by deadline (to time them out in order).
    watchers: HashMap<String, Vec<usize>>,
    watch_deadlines: BTreeSet<(Instant, usize)>,
}

impl Server {
    pub fn new(
        cfg: &Config,
        listener: TcpListener,
        signal: UnixStream,
        store: Store,
        disk: Disk,
        status: Status,
        admin_token: String,
    ) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = listener;
        let mut signal = signal;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        poll.registry()
            .register(&mut signal, SIGNAL, Interest::READABLE)?;
        let now = Instant::now();
        Ok(Server {
            poll,
            listener: Some(listener),
            signal,
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            next_conn_id: 0,
            store,
            commit: Commit::new(disk),
            ctx: Ctx {
                admin_token,
                config: cfg.clone(),
                status,
            },
            scratch: vec![0; READ_CHUNK],
            log: Log::default(),
            now,
            date: String::new(),
            date_secs: u64::MAX,
            accept_paused_until: None,
            next_sync: None,
            next_sweep: now,
            stopping: false,
            streaming: BTreeSet::new(),
            deferred: BTreeSet::new(),
            watchers: HashMap::new(),
            watch_deadlines: BTreeSet::new(),
        })
    }

    /// Run until SIGTERM or SIGINT; then finish what is in hand, sync, and return.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        while !self.stopping {
            let timeout = self.next_timeout();
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            self.tick_clock();
            self.handle(&events);
            self.gather(&mut events)?;
            self.settle(true);
            self.timers();
            self.settle(false);
            self.flush_log();
        }
        self.shutdown();
        Ok(())
    }

    /// Act on what a poll reported: accept, note a signal, read and answer connections.
    fn handle(&mut self, events: &Events) {
        for ev in events.iter() {
            match ev.token() {
                LISTENER => self.accept(),
                SIGNAL => {
                    let mut buf = [0u8; 16];
                    // Drain the wake-up bytes; how many signals came does not matter.
                    while matches!(io::Read::read(&mut self.signal, &mut buf), Ok(n) if n > 0) {}
                    self.stopping = true;
                }
                Token(t) => {
                    let idx = t - FIRST_CONN;
                    if let Some(Some(c)) = self.conns.get_mut(idx) {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            c.on_readable(ev.is_read_closed() || ev.is_error());
                        }
                        self.drive(idx);
                    }
                }
            }
        }
    }

    /// Before a group commit, take the requests that arrived while this turn's were handled (a
    /// poll that does not wait), so that they share its fdatasync instead of waiting for the
    /// next one: with many writers this is most of the difference between a sync group of 17
    /// and one of 30. Nothing pending: nothing to share, no extra poll.
    fn gather(&mut self, events: &mut Events) -> io::Result<()> {
        for _ in 0..GATHER_POLLS {
            if !self.commit.is_pending() {
                break;
            }
            match self.poll.poll(events, Some(Duration::ZERO)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if events.is_empty() {
                break;
            }
            self.handle(events);
        }
        Ok(())
    }

    fn tick_clock(&mut self) {
        self.now = Instant::now();
        let (secs, _) = log::unix_now();
        if secs != self.date_secs {
            self.date_secs = secs;
            self.date = log::http_date(secs);
        }
        self.store.set_clock(secs);
        self.commit.set_watching(!self.watch_deadlines.is_empty());
        for change in self.store.expire_due(EXPIRE_PER_TURN) {
            let none = self.commit.add(&self.store, change, None);
            debug_assert!(none.is_none());
        }
    }

    /// Write what the turn changed, and follow on until nothing is left: answers released by
    /// the commit may let their connections send more; deferred requests may run; woken watches
    /// answer. With `background`, one slice of a compaction or conversion runs once all that is
    /// done (nothing pending: the snapshot must hold only durable changes).
    fn settle(&mut self, background: bool) {
        let mut background = background;
        loop {
            let mut progressed = false;
            if self.commit.is_pending() {
                let settled = self.commit.flush(&mut self.store, &mut self.ctx.status);
                self.release(settled);
                progressed = true;
            }
            progressed |= self.run_deferred();
            progressed |= self.wake_watchers();
            if progressed {
                continue;
            }
            if !background || !self.commit.busy() {
                break;
            }
            background = false;
            let settled = self
                .commit
                .background(&mut self.store, &mut self.ctx.status);
            self.release(settled);
        }
        let streams: Vec<usize> = self.streaming.iter().copied().collect();
        for idx in streams {
            self.drive(idx);
        }
    }

    /// When the loop must wake even without I/O: never while nothing can time out; at once while
    /// background work is under way.
    fn next_timeout(&mut self) -> Option<Duration> {
        if self.commit.busy() {
            return Some(Duration::ZERO);
        }
        let sweep = (self.open > 0).then_some(self.next_sweep);
        let watch = self.watch_deadlines.first().map(|&(d, _)| d);
        // Expiry is in whole seconds: wake just after the second a key falls due.
        let expiry = self.store.next_expiry().map(|t| {
            self.now
                + Duration::from_secs(t.saturating_sub(self.store.clock()))
                + Duration::from_millis(5)
        });
        [
            self.next_sync,
            self.commit.retry_at(),
            sweep,
            self.accept_paused_until,
            watch,
            expiry,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|t| t.saturating_duration_since(Instant::now()))
    }

    fn timers(&mut self) {
        let now = self.now;
        if self.accept_paused_until.is_some_and(|t| now >= t) {
            self.accept_paused_until = None;
            self.accept();
        }
        if self.open > 0 && now >= self.next_sweep {
            self.next_sweep = now + self.sweep_every();
            self.sweep_timeouts();
        }
        if self.next_sync.is_some_and(|t| now >= t) {
            self.next_sync = None;
            self.commit.sync_interval(&mut self.ctx.status);
        }
        if self.next_sync.is_none() && self.commit.has_unsynced() {
            self.next_sync = Some(now + Duration::from_millis(self.ctx.config.interval_ms));
        }
        while let Some(&(deadline, idx)) = self.watch_deadlines.first() {
            if deadline > now {
                break;
            }
            self.rerun_watch(idx, |since| WatchPhase::TimedOut { since });
        }
    }

    /// Check timeouts often enough that the shortest one is honoured to within a fifth.
    fn sweep_every(&self) -> Duration {
        let l = &self.ctx.config.limits;
        let shortest = l
            .head_timeout_ms
            .min(l.body_timeout_ms)
            .min(l.idle_timeout_ms);
        Duration::from_millis((shortest / 5).clamp(20, 1000))
    }

    /// Route one request and act on its outcome, or defer it while the commit says it must
    /// wait. `phase` and `deadline` are a re-run watch's. Returns false when deferred.
    fn dispatch(
        &mut self,
        idx: usize,
        mut req: Request,
        started: Instant,
        phase: WatchPhase,
        deadline: Option<Instant>,
    ) -> bool {
        self.ctx.status.metrics.connections_open = self.open;
        self.ctx.status.metrics.watches_parked = self.watch_deadlines.len();
        let route = Route::parse(req.head.path(), self.ctx.config.compat_project.as_deref());
        let label = route.as_ref().map_or("unknown", Route::label);
        let uses = route.as_ref().map_or(Uses::Nothing, Route::uses);
        if self
            .commit
            .must_wait(uses, api::is_mutation(&req.head.method))
        {
            self.defer(idx, req, started, phase, deadline);
            return false;
        }
        let touched = match uses {
            Uses::Project(p) => Some(p.to_string()),
            _ => None,
        };
        let (ctx, store) = (&self.ctx, &mut self.store);
        let (outcome, panicked) =
            guarded(|| api::handle(ctx, store, &mut req, route.as_ref(), phase));
        if let (true, Some(p)) = (panicked, &touched) {
            self.commit
                .after_panic(&self.store, p, &mut self.ctx.status);
        }
        let Some(id) = self.conns[idx].as_ref().map(|c| c.id) else {
            // (Cannot happen: the connection is being served.) Its change still goes to disk.
            if let Some(change) = outcome.change {
                let _nobody = self.commit.add(&self.store, change, None);
            }
            return true;
        };
        let held = |request, response| Held {
            idx,
            id,
            request,
            response,
            started,
            label,
        };
        match outcome.reply {
            Reply::Now(response) => match outcome.change {
                Some(change) => {
                    let answer = held(req, response);
                    match self.commit.add(&self.store, change, Some(answer)) {
                        Some(answer) => self.answer(answer, None),
                        None => self.park(idx, Waiting::Held),
                    }
                }
                None => self.respond(idx, &req, response, started, label),
            },
            Reply::Stream(head, cursor) => {
                self.start_stream(idx, req, head, cursor, started, label)
            }
            Reply::Watch(w) => self.park_watch(idx, req, w, started, deadline, label),
            Reply::Convert(c) => {
                let answer = held(req, c.response);
                self.commit.convert(&c.project, c.mode, c.quota, answer);
                self.park(idx, Waiting::Held);
            }
        }
        true
    }

    /// Stop accepting, answer the requests already received, write and sync everything, return.
    fn shutdown(&mut self) {
        log::now(format_args!("pykv stopping: finishing requests in hand"));
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        for idx in 0..self.conns.len() {
            if self.conns[idx].is_some() {
                self.drive(idx);
            }
        }
        self.settle(false);
        // Parked watches end now, as if their time ran out.
        while let Some(&(_, idx)) = self.watch_deadlines.first() {
            self.rerun_watch(idx, |since| WatchPhase::TimedOut { since });
        }
        self.settle(false);
        let settled = self.commit.shutdown(&mut self.store, &mut self.ctx.status);
        self.release(settled);
        self.settle(false);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut events = Events::with_capacity(256);
        while self.open > 0 && Instant::now() < deadline {
            let _ = self.poll.poll(&mut events, Some(Duration::from_millis(50)));
            self.tick_clock();
            self.settle(false);
            for idx in 0..self.conns.len() {
                if let Some(c) = self.conns[idx].as_mut() {
                    c.on_readable(true);
                    c.flush(self.now);
                    if c.waiting.is_none() && (c.dead || c.idle_between_requests()) {
                        self.close(idx);
                    }
                }
            }
        }
        // Expiries of the last turns, and anything a late request changed.
        let settled = self.commit.shutdown(&mut self.store, &mut self.ctx.status);
        self.release(settled);
        self.flush_log();
        if self.ctx.status.is_healthy() && !self.commit.has_unsynced() {
            log::now(format_args!("pykv stopped: all data written and synced"));
        } else {
            let problems: Vec<String> = self.ctx.status.problems().collect();
            log::now(format_args!(
                "pykv stopped with problems: {}",
                problems.join("; ")
            ));
        }
    }

    /// Write this turn's log lines, the disk's included.
    fn flush_log(&mut self) {
        for line in std::mem::take(&mut self.ctx.status.log) {
            self.log.line(format_args!("{line}"));
        }
        self.log.flush();
    }
}

/// Run a handler so that a panic in it answers 500 and the loop carries on. (The panic message
/// goes to stderr through the default hook: a bug worth reading about.) Says whether it panicked.
fn guarded(handler: impl FnOnce() -> Outcome) -> (Outcome, bool) {
    match catch_unwind(AssertUnwindSafe(handler)) {
        Ok(outcome) => (outcome, false),
        Err(_) => {
            let e = ApiError::internal("the server hit a bug handling this request; it was logged");
            (Reply::Now(e.into_response()).into(), true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Response;

    #[test]
    fn a_panicking_handler_becomes_a_500() {
        let (outcome, panicked) = guarded(|| panic!("a bug in a handler"));
        assert!(panicked);
        let Reply::Now(r) = outcome.reply else {
            panic!("expected an answer");
        };
        assert_eq!(r.status, 500);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "internal_error");
    }

    #[test]
    fn a_handler_that_returns_is_passed_through() {
        let (outcome, panicked) = guarded(|| Reply::Now(Response::empty(204)).into());
        assert!(!panicked);
        assert!(matches!(outcome.reply, Reply::Now(r) if r.status == 204));
    }
}
