//! Requests that cannot be answered yet, parked on their connection: an answer held by the
//! commit until its change is durable, a request deferred until the commit lets it read, a
//! watch waiting for a durable change or its deadline, a body being streamed.

use std::time::{Duration, Instant};

use super::commit::Settled;
use super::Server;
use crate::api::{Cursor, Watch, WatchPhase, WatchTarget};
use crate::error::{ApiError, Code};
use crate::http::{Request, Response};

/// What a connection waits on.
pub enum Waiting {
    /// Its answer is held by the commit (a `Held`).
    Held,
    /// Its request must wait for the commit before it may run (see `Commit::must_wait`).
    Deferred(Deferred),
    /// A response body produced chunk by chunk as the client reads it.
    Streaming(Stream),
    /// A watch parked until a durable change to `target` in `project`, or `deadline`.
    Watch {
        request: Request,
        started: Instant,
        deadline: Instant,
        project: String,
        target: WatchTarget,
        since: u64,
    },
}

/// A request that waits for the commit before it runs.
pub struct Deferred {
    pub request: Request,
    pub started: Instant,
    /// A re-run watch keeps where it stood: its phase and deadline.
    pub phase: WatchPhase,
    pub deadline: Option<Instant>,
}

/// An answer whose body is being streamed from the store.
pub struct Stream {
    pub request: Request,
    pub started: Instant,
    pub label: &'static str,
    pub cursor: Cursor,
    /// Body bytes sent so far (for the log).
    pub sent: usize,
}

/// An answer the commit holds until its change is durable.
pub struct Held {
    pub idx: usize,
    /// The connection's id: the slot may hold another connection by the time it is released.
    pub id: u64,
    pub request: Request,
    pub response: Response,
    pub started: Instant,
    pub label: &'static str,
}

impl Server {
    pub(super) fn park(&mut self, idx: usize, w: Waiting) {
        if let Some(c) = self.conns[idx].as_mut() {
            c.waiting = Some(w);
        }
    }

    pub(super) fn defer(
        &mut self,
        idx: usize,
        request: Request,
        started: Instant,
        phase: WatchPhase,
        deadline: Option<Instant>,
    ) {
        self.park(
            idx,
            Waiting::Deferred(Deferred {
                request,
                started,
                phase,
                deadline,
            }),
        );
        self.deferred.insert(idx);
    }

    /// Run the deferred requests that may run now. Returns whether any did.
    pub(super) fn run_deferred(&mut self) -> bool {
        let mut ran = false;
        for idx in std::mem::take(&mut self.deferred) {
            let Some(c) = self.conns[idx].as_mut() else {
                continue;
            };
            let Some(Waiting::Deferred(d)) = c.waiting.take() else {
                continue;
            };
            if self.dispatch(idx, d.request, d.started, d.phase, d.deadline) {
                ran = true;
                self.continue_after(idx);
            }
        }
        ran
    }

    /// Send each answer the commit released, as it is or as the error its write met.
    pub(super) fn release(&mut self, settled: Vec<Settled<Held>>) {
        for (held, error) in settled {
            self.answer(held, error);
        }
    }

    pub(super) fn answer(&mut self, held: Held, error: Option<ApiError>) {
        let idx = held.idx;
        match self.conns[idx].as_mut() {
            Some(c) if c.id == held.id => {
                if matches!(c.waiting, Some(Waiting::Held)) {
                    c.waiting = None;
                }
            }
            // The client is gone: nobody to tell.
            _ => return,
        }
        let response = error.map_or(held.response, ApiError::into_response);
        self.respond(idx, &held.request, response, held.started, held.label);
        self.continue_after(idx);
    }

    /// A connection that stopped waiting may have more requests queued: take them.
    pub(super) fn continue_after(&mut self, idx: usize) {
        if self.conns[idx]
            .as_ref()
            .is_some_and(|c| c.waiting.is_none())
        {
            self.drive(idx);
        }
    }

    pub(super) fn park_watch(
        &mut self,
        idx: usize,
        request: Request,
        w: Watch,
        started: Instant,
        deadline: Option<Instant>,
        label: &'static str,
    ) {
        if self.watch_deadlines.len() >= self.ctx.config.max_watches {
            let e = ApiError::new(
                Code::TooManyWatches,
                format!(
                    "{} watches are waiting already (max_watches); try again later",
                    self.ctx.config.max_watches
                ),
            );
            self.respond(idx, &request, e.into_response(), started, label);
            return;
        }
        let deadline = deadline.unwrap_or(self.now + Duration::from_secs(w.seconds));
        self.watchers
            .entry(w.project.clone())
            .or_default()
            .push(idx);
        self.watch_deadlines.insert((deadline, idx));
        self.commit.set_watching(true);
        self.park(
            idx,
            Waiting::Watch {
                request,
                started,
                deadline,
                project: w.project,
                target: w.target,
                since: w.since,
            },
        );
    }

    /// Wake every parked watch that a durable change concerns. Returns whether any woke.
    pub(super) fn wake_watchers(&mut self) -> bool {
        let changed = self.commit.take_changed();
        if changed.is_empty() || self.watchers.is_empty() {
            return false;
        }
        let mut woken = std::collections::BTreeSet::new();
        for (project, key) in &changed {
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
            self.rerun_watch(idx, |since| WatchPhase::Fired { since });
        }
        !woken.is_empty()
    }

    /// Run a parked watch's request again in the phase `phase(since)` gives: it answers (or
    /// parks again, keeping its deadline).
    pub(super) fn rerun_watch(&mut self, idx: usize, phase: impl Fn(u64) -> WatchPhase) {
        let Some((request, started, deadline, since)) = self.unpark_watch(idx) else {
            return;
        };
        self.dispatch(idx, request, started, phase(since), Some(deadline));
        self.continue_after(idx);
    }

    /// Take a connection's parked watch out of the registries.
    pub(super) fn unpark_watch(&mut self, idx: usize) -> Option<(Request, Instant, Instant, u64)> {
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
}
