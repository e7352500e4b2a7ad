//! The event loop: one thread accepts, reads, parses, routes, touches the store, saves snapshots
//! and writes responses. It owns the listener, every connection, the store and the timers.
//!
//! Durability ordering (sync mode): a change is applied in memory at once, but its answer is held
//! until the end of the loop turn, when one snapshot per changed project is written (group
//! commit: every change that arrived in the same turn shares it). Until then, any request that
//! would *read* that project is deferred, so no client ever sees a value that a failed write
//! later rolls back; a request that changes it joins the group and shares its fate.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, UnixStream};
use mio::{Events, Interest, Poll, Token};

use crate::api::{self, Ctx, Reply, Route, Touches, WatchPhase};
use crate::config::{Config, Limits};
use crate::error::ApiError;
use crate::http::conn::{Conn, Next, Waiting, READ_CHUNK};
use crate::http::parse::Head;
use crate::http::{Method, Request, Response};
use crate::log::{self, Log};
use crate::persist::{self, SaveError};
use crate::store::{Persistence, Store};

const LISTENER: Token = Token(0);
const SIGNAL: Token = Token(1);
const FIRST_CONN: usize = 2;
/// After an accept error (EMFILE, ENFILE, ENOMEM), wait this long before accepting again rather
/// than spin on a listener that stays readable.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How long a shutdown waits for answers already queued to reach their clients.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Expired keys removed per loop turn at most; the rest wait for the next turn, so a mass
/// expiry never stalls the loop.
const EXPIRE_PER_TURN: usize = 1000;

pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    signal: UnixStream,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    open: usize,
    /// Connections with a held answer or a deferred request, to revisit after the snapshot.
    waiting: Vec<usize>,
    store: Store,
    ctx: Ctx,
    limits: Limits,
    data_dir: PathBuf,
    interval: Duration,
    max_connections: usize,
    log_requests: bool,
    scratch: Vec<u8>,
    log: Log,
    now: Instant,
    date: String,
    date_secs: u64,
    accept_paused_until: Option<Instant>,
    next_save: Option<Instant>,
    next_sweep: Instant,
    stopping: bool,
    /// Connections streaming a response body from the store.
    streaming: BTreeSet<usize>,
    /// Parked watches by project, and by deadline (to time them out in order).
    watchers: HashMap<String, Vec<usize>>,
    watch_deadlines: BTreeSet<(Instant, usize)>,
    max_watches: usize,
}

impl Server {
    pub fn new(
        cfg: &Config,
        listener: TcpListener,
        signal: UnixStream,
        store: Store,
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
            waiting: Vec::new(),
            store,
            ctx: Ctx {
                admin_token,
                limits: cfg.limits.clone(),
                default_persistence: cfg.persistence,
                problems: Default::default(),
                watch: WatchPhase::Fresh,
                watch_since: None,
                cors_origins: cfg.cors_origins.clone(),
                compat_project: cfg.compat_project.clone(),
                metrics: Default::default(),
            },
            limits: cfg.limits.clone(),
            data_dir: cfg.data_dir.clone(),
            interval: Duration::from_millis(cfg.interval_ms),
            max_connections: cfg.max_connections,
            log_requests: cfg.log_requests,
            scratch: vec![0; READ_CHUNK],
            log: Log::default(),
            now,
            date: String::new(),
            date_secs: u64::MAX,
            accept_paused_until: None,
            next_save: None,
            next_sweep: now,
            stopping: false,
            streaming: BTreeSet::new(),
            watchers: HashMap::new(),
            watch_deadlines: BTreeSet::new(),
            max_watches: cfg.max_watches,
        })
    }

    /// Run until SIGTERM or SIGINT; then finish what is in hand, save, and return.
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
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    SIGNAL => {
                        let mut buf = [0u8; 16];
                        // Drain the wake-up bytes; how many signals came does not matter.
                        while matches!(io::Read::read(&mut self.signal, &mut buf), Ok(n) if n > 0) {
                        }
                        self.stopping = true;
                    }
                    Token(t) => {
                        let idx = t - FIRST_CONN;
                        if let Some(Some(c)) = self.conns.get_mut(idx) {
                            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                                c.on_readable();
                            }
                            self.drive(idx);
                        }
                    }
                }
            }
            self.settle();
            self.timers();
            self.settle();
            self.log.flush();
        }
        self.shutdown();
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
        self.store.track_changes(!self.watch_deadlines.is_empty());
        self.store.expire_due(EXPIRE_PER_TURN);
    }

    /// Save what waits for a snapshot and wake the watches of what changed, until neither is
    /// left (a woken connection may send more requests); then let streams that waited go on.
    fn settle(&mut self) {
        loop {
            self.commit_pending();
            if !self.wake_watchers() {
                break;
            }
        }
        let streams: Vec<usize> = self.streaming.iter().copied().collect();
        for idx in streams {
            self.drive(idx);
        }
    }

    /// Feed a streaming response while its client keeps up, never from a project whose changes
    /// are not yet durable. At the end, count and log it and let the connection go on.
    fn pump_stream(&mut self, idx: usize) {
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
            let Some(Waiting::Streaming { cursor, sent, .. }) = c.waiting.as_mut() else {
                self.streaming.remove(&idx);
                return;
            };
            if !wants || self.store.is_pending(&cursor.project) {
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
            let Some(Waiting::Streaming {
                request,
                started,
                label,
                sent,
                ..
            }) = c.waiting.take()
            else {
                return;
            };
            self.streaming.remove(&idx);
            let status = if more.is_ok() { 200 } else { 500 };
            self.record(&request, status, sent, started, label);
            return;
        }
    }

    /// When the loop must wake even without I/O: never while nothing can time out.
    fn next_timeout(&mut self) -> Option<Duration> {
        let sweep = (self.open > 0).then_some(self.next_sweep);
        let watch = self.watch_deadlines.first().map(|&(d, _)| d);
        // Expiry is in whole seconds: wake just after the second a key falls due.
        let expiry = self.store.next_expiry().map(|t| {
            self.now
                + Duration::from_secs(t.saturating_sub(self.store.clock()))
                + Duration::from_millis(5)
        });
        [
            self.next_save,
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
        if self.next_save.is_some_and(|t| now >= t) {
            self.next_save = None;
            self.save_dirty();
        }
        if self.next_save.is_none() && !self.store.unsaved_projects().is_empty() {
            self.next_save = Some(now + self.interval);
        }
        while let Some(&(deadline, idx)) = self.watch_deadlines.first() {
            if deadline > now {
                break;
            }
            self.rerun_watch(idx, WatchPhase::TimedOut);
        }
    }

    /// Check timeouts often enough that the shortest one is honoured to within a fifth.
    fn sweep_every(&self) -> Duration {
        let l = &self.limits;
        let shortest = l
            .head_timeout_ms
            .min(l.body_timeout_ms)
            .min(l.idle_timeout_ms);
        Duration::from_millis((shortest / 5).clamp(20, 1000))
    }

    fn sweep_timeouts(&mut self) {
        for idx in 0..self.conns.len() {
            let Some(c) = self.conns[idx].as_mut() else {
                continue;
            };
            if let Some(r) = c.check_timeouts(self.now, &self.limits, &self.date) {
                if self.log_requests {
                    self.log
                        .line(format_args!("- - {} {}B 0us", r.status, r.body.len()));
                }
            }
            if c.dead {
                self.close(idx);
            }
        }
    }

    fn accept(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, _)) => {
                    if self.open >= self.max_connections {
                        // Dropping closes it at once: past the limit, refusing is the answer.
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let idx = self.free.pop().unwrap_or_else(|| {
                        self.conns.push(None);
                        self.conns.len() - 1
                    });
                    let mut conn = Conn::new(stream, self.now);
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

    fn close(&mut self, idx: usize) {
        self.streaming.remove(&idx);
        if let Some(mut c) = self.conns[idx].take() {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.free.push(idx);
            self.open -= 1;
        }
    }

    /// Take every complete request a connection has, in order, until it must wait.
    fn drive(&mut self, idx: usize) {
        if self.streaming.contains(&idx) {
            self.pump_stream(idx);
        }
        if let Some(c) = self.conns[idx].as_mut() {
            if matches!(c.waiting, Some(Waiting::Watch { .. }))
                && c.peer_gone(&mut self.scratch, &self.limits, self.now)
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
            match c.next_request(&mut self.scratch, &self.limits, self.now, &body_limit) {
                Next::Request(req) => self.dispatch(idx, req, Instant::now(), None),
                Next::NeedMore => break,
                Next::Fail(e) => {
                    let r = c.fail(e, &self.date);
                    if self.log_requests {
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

    /// Route one request, or park it (see the module doc). `deadline` is a re-run watch's.
    fn dispatch(
        &mut self,
        idx: usize,
        mut req: Request,
        started: Instant,
        deadline: Option<Instant>,
    ) {
        self.ctx.metrics.connections_open = self.open;
        self.ctx.metrics.watches_parked = self.watch_deadlines.len();
        self.store.track_changes(!self.watch_deadlines.is_empty());
        let route = Route::parse(req.head.path(), self.ctx.compat_project.as_deref());
        let label = route.as_ref().map_or("unknown", Route::label);
        let touched: Option<&str> = match route.as_ref().map(Route::touches) {
            Some(Touches::One(p)) => Some(p),
            _ => None,
        };
        let touches_all = matches!(route.as_ref().map(Route::touches), Some(Touches::All));
        let mutation = api::is_mutation(&req.head.method);
        let reads_pending = match touched {
            Some(p) => self.store.is_pending(p),
            None => touches_all && self.store.any_pending(),
        };
        if reads_pending && !mutation {
            self.park(
                idx,
                Waiting::Deferred {
                    request: req,
                    started,
                    watch: deadline.map(|d| (self.ctx.watch, self.ctx.watch_since.unwrap_or(0), d)),
                },
            );
            return;
        }
        let (ctx, store) = (&mut self.ctx, &mut self.store);
        let reply = guarded(|| api::handle(ctx, store, &mut req, route.as_ref()));
        let response = match reply {
            Reply::Now(r) => r,
            Reply::Stream(mut head, cursor) => {
                api::decorate(&self.ctx, &req, &mut head);
                if req.head.method == Method::Head {
                    // The same head as GET (chunked, so no length to promise), and no body.
                    if let Some(c) = self.conns[idx].as_mut() {
                        c.start_chunks(&head, &req, &self.date);
                    }
                    self.record(&req, head.status, 0, started, label);
                    return;
                }
                if let Some(c) = self.conns[idx].as_mut() {
                    c.start_chunks(&head, &req, &self.date);
                    c.waiting = Some(Waiting::Streaming {
                        request: req,
                        started,
                        label,
                        cursor,
                        sent: 0,
                    });
                    self.streaming.insert(idx);
                }
                return;
            }
            Reply::Watch(w) => {
                if self.watch_deadlines.len() >= self.max_watches {
                    let e = ApiError::new(
                        503,
                        "too_many_watches",
                        format!(
                            "{} watches are waiting already (max_watches); try again later",
                            self.max_watches
                        ),
                    );
                    self.respond(idx, &req, e.into_response(), started, label);
                    return;
                }
                let deadline = deadline.unwrap_or(self.now + Duration::from_secs(w.seconds));
                self.watchers
                    .entry(w.project.clone())
                    .or_default()
                    .push(idx);
                self.watch_deadlines.insert((deadline, idx));
                self.store.track_changes(true);
                self.park(
                    idx,
                    Waiting::Watch {
                        request: req,
                        started,
                        deadline,
                        project: w.project,
                        target: w.target,
                        since: w.since,
                    },
                );
                return;
            }
        };
        let held_on = self.store.take_last_recorded().or_else(|| {
            touched
                .filter(|p| mutation && self.store.is_pending(p))
                .map(str::to_string)
        });
        match held_on {
            Some(project) => self.park(
                idx,
                Waiting::Held {
                    project,
                    response,
                    request: req,
                    started,
                    label,
                },
            ),
            None => self.respond(idx, &req, response, started, label),
        }
    }

    /// Wake every parked watch that a committed change concerns. Returns whether any woke.
    fn wake_watchers(&mut self) -> bool {
        let changes = self.store.take_changes();
        if changes.is_empty() || self.watchers.is_empty() {
            return false;
        }
        let mut woken = BTreeSet::new();
        for (project, key) in &changes {
            let Some(list) = self.watchers.get(project) else {
                continue;
            };
            for &idx in list {
                if let Some(Some(c)) = self.conns.get(idx) {
                    if let Some(Waiting::Watch { target, .. }) = &c.waiting {
                        if target.matches(key) {
                            woken.insert(idx);
                        }
                    }
                }
            }
        }
        for &idx in &woken {
            self.rerun_watch(idx, WatchPhase::Fired);
        }
        !woken.is_empty()
    }

    /// Run a parked watch's request again: it answers (or parks again, keeping its deadline).
    fn rerun_watch(&mut self, idx: usize, phase: WatchPhase) {
        let Some((request, started, deadline, since)) = self.unpark_watch(idx) else {
            return;
        };
        self.dispatch_watch(idx, request, started, (phase, since, deadline));
        if self.conns[idx]
            .as_ref()
            .is_some_and(|c| c.waiting.is_none())
        {
            self.drive(idx);
        }
    }

    /// Dispatch a watch's request in `phase`, waiting on `since` until `deadline`.
    fn dispatch_watch(
        &mut self,
        idx: usize,
        request: Request,
        started: Instant,
        (phase, since, deadline): (WatchPhase, u64, Instant),
    ) {
        self.ctx.watch = phase;
        self.ctx.watch_since = Some(since);
        self.dispatch(idx, request, started, Some(deadline));
        self.ctx.watch = WatchPhase::Fresh;
        self.ctx.watch_since = None;
    }

    /// Take a connection's parked watch out of the registries.
    fn unpark_watch(&mut self, idx: usize) -> Option<(Request, Instant, Instant, u64)> {
        let c = self.conns[idx].as_mut()?;
        let Some(Waiting::Watch {
            request,
            started,
            deadline,
            project,
            since,
            ..
        }) = c.waiting.take()
        else {
            return None;
        };
        self.watch_deadlines.remove(&(deadline, idx));
        if let Some(list) = self.watchers.get_mut(&project) {
            list.retain(|&i| i != idx);
            if list.is_empty() {
                self.watchers.remove(&project);
            }
        }
        Some((request, started, deadline, since))
    }

    fn park(&mut self, idx: usize, w: Waiting) {
        if let Some(c) = self.conns[idx].as_mut() {
            // Watches are revisited on changes and deadlines, the rest after the snapshot.
            if !matches!(w, Waiting::Watch { .. }) {
                self.waiting.push(idx);
            }
            c.waiting = Some(w);
        }
    }

    /// Queue an answer, count it under the route's `label`, and log it.
    fn respond(
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
        self.record(req, r.status, bytes, started, label);
    }

    /// Count an answer in the metrics and write its log line.
    fn record(
        &mut self,
        req: &Request,
        status: u16,
        bytes: usize,
        started: Instant,
        label: &'static str,
    ) {
        self.ctx
            .metrics
            .record_request(label, status, started.elapsed());
        if self.log_requests {
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

    /// Write one snapshot per project with changes waiting, then release or fail their held
    /// answers and run the deferred requests. Repeats while those create new changes.
    fn commit_pending(&mut self) {
        while self.store.any_pending() || !self.waiting.is_empty() {
            let mut failed: HashMap<String, SaveError> = HashMap::new();
            for name in self.store.pending_projects() {
                let result = self.write_project(&name);
                match result {
                    Ok(()) => {
                        self.store.commit(&name);
                        self.ctx.problems.remove(&name);
                    }
                    Err(e) => {
                        self.log.line(format_args!(
                            "snapshot of project {name} failed, change undone: {e}"
                        ));
                        self.ctx
                            .problems
                            .insert(name.clone(), format!("last snapshot failed: {e}"));
                        self.store.rollback(&name);
                        failed.insert(name, e);
                    }
                }
            }
            for idx in std::mem::take(&mut self.waiting) {
                let Some(c) = self.conns[idx].as_mut() else {
                    continue;
                };
                match c.waiting.take() {
                    Some(Waiting::Held {
                        project,
                        response,
                        request,
                        started,
                        label,
                    }) => {
                        let r = match failed.get(&project) {
                            Some(e) => not_saved(e).into_response(),
                            None => response,
                        };
                        self.respond(idx, &request, r, started, label);
                    }
                    Some(Waiting::Deferred {
                        request,
                        started,
                        watch: None,
                    }) => self.dispatch(idx, request, started, None),
                    Some(Waiting::Deferred {
                        request,
                        started,
                        watch: Some((phase, since, deadline)),
                    }) => self.dispatch_watch(idx, request, started, (phase, since, deadline)),
                    Some(w @ (Waiting::Watch { .. } | Waiting::Streaming { .. })) => {
                        c.waiting = Some(w)
                    }
                    None => {}
                }
                if self.conns[idx]
                    .as_ref()
                    .is_some_and(|c| c.waiting.is_none())
                {
                    self.drive(idx);
                }
            }
        }
    }

    /// Save or remove one project's snapshot to match memory.
    fn write_project(&mut self, name: &str) -> Result<(), SaveError> {
        let started = Instant::now();
        let result = match self.store.project(name) {
            Some(p) if p.persistence() != Persistence::Memory => {
                persist::save(&self.data_dir, name, p)
            }
            _ => persist::remove(&self.data_dir, name),
        };
        self.ctx
            .metrics
            .record_snapshot(name, result.is_ok(), started.elapsed());
        if result.is_ok() && self.store.project(name).is_none() {
            self.ctx.metrics.forget_project(name);
        }
        result
    }

    /// Interval mode: save every dirty project; a failure is logged and retried next time.
    fn save_dirty(&mut self) {
        for name in self.store.unsaved_projects() {
            match self.write_project(&name) {
                Ok(()) => {
                    self.store.mark_clean(&name);
                    self.ctx.problems.remove(&name);
                }
                Err(e) => {
                    self.log.line(format_args!(
                        "snapshot of project {name} failed, will retry: {e}"
                    ));
                    self.ctx
                        .problems
                        .insert(name, format!("unsaved changes: {e}"));
                }
            }
        }
    }

    /// Stop accepting, answer the requests already received, save everything, return.
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
        self.settle();
        // Parked watches end now, as if their time ran out.
        while let Some(&(_, idx)) = self.watch_deadlines.first() {
            self.rerun_watch(idx, WatchPhase::TimedOut);
        }
        self.commit_pending();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut events = Events::with_capacity(256);
        while self.open > 0 && Instant::now() < deadline {
            let _ = self.poll.poll(&mut events, Some(Duration::from_millis(50)));
            self.tick_clock();
            let streams: Vec<usize> = self.streaming.iter().copied().collect();
            for idx in streams {
                self.pump_stream(idx);
            }
            for idx in 0..self.conns.len() {
                if let Some(c) = self.conns[idx].as_mut() {
                    c.on_readable();
                    c.flush(self.now);
                    if c.waiting.is_none() && (c.dead || c.idle_between_requests()) {
                        self.close(idx);
                    }
                }
            }
        }
        self.save_dirty();
        let unsaved = self.store.unsaved_projects();
        self.log.flush();
        if unsaved.is_empty() {
            log::now(format_args!("pykv stopped: all data saved"));
        } else {
            log::now(format_args!(
                "pykv stopped: could not save projects {}",
                unsaved.join(", ")
            ));
        }
    }
}

/// Run a handler so that a panic in it answers 500 and the loop carries on. (The panic message
/// goes to stderr through the default hook: a bug worth reading about.)
fn guarded(handler: impl FnOnce() -> Reply) -> Reply {
    catch_unwind(AssertUnwindSafe(handler)).unwrap_or_else(|_| {
        Reply::Now(
            ApiError::internal("the server hit a bug handling this request; it was logged")
                .into_response(),
        )
    })
}

fn not_saved(e: &SaveError) -> ApiError {
    match e {
        SaveError::Full(_) => ApiError::new(
            507,
            "storage_full",
            "the disk is full: the change was not saved and has been undone",
        ),
        SaveError::Io(err) => ApiError::new(
            500,
            "storage_error",
            format!("the snapshot could not be written ({err}): the change was not saved and has been undone"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Response;

    #[test]
    fn a_panicking_handler_becomes_a_500() {
        let reply = guarded(|| panic!("a bug in a handler"));
        let Reply::Now(r) = reply else {
            panic!("expected an answer");
        };
        assert_eq!(r.status, 500);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "internal_error");
    }

    #[test]
    fn a_handler_that_returns_is_passed_through() {
        let reply = guarded(|| Reply::Now(Response::empty(204)));
        assert!(matches!(reply, Reply::Now(r) if r.status == 204));
    }
}
