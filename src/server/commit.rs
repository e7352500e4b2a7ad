//! The commit: pykv's durability rule, and all of the protocol that keeps it.
//!
//! **A change is answered only once it is as durable as its project's mode promises, and no
//! client ever sees a change that a failed write then undoes.**
//!
//! 1. A handler changes the store at once and returns the `Change` it made with its answer
//!    (`add`). A change to a memory project is final at once. Any other joins its project's
//!    *group* for the rest of the loop turn, and its answer is held.
//! 2. While a project has a group waiting, any request that would read it waits too
//!    (`must_wait`), so nobody sees a change before it is durable. A request that changes it
//!    joins the group and shares its fate.
//! 3. At the end of the turn (`flush`) each group goes to its project's journal as one atomic
//!    group of records, fdatasynced once for the whole group in `sync` mode (and for any change
//!    of settings or tokens, in any mode); `interval` journals are fdatasynced on a timer. Then
//!    the held answers go out and the watches on the changed keys wake: a watch only ever sees
//!    durable changes.
//! 4. If the append or the sync fails, the journal is cut back to its last good record, every
//!    change of the group is undone in memory (newest first), and every held request is answered
//!    507 `storage_full` or 500 `storage_error`. Nothing of the group was ever visible.
//! 5. A memory project switched to `sync` or `interval` is *frozen*: every request to it waits
//!    while its first snapshot is written, a slice per turn, so the snapshot is exact; the switch
//!    is answered once the snapshot is in place. Compactions run the same way but freeze
//!    nothing: new changes go to the next journal segment meanwhile.
//!
//! This file never sees a socket: the answers it holds are the server's, of any type `A`.

use std::collections::BTreeMap;

use crate::api::Uses;
use crate::error::ApiError;
use crate::persist::compact::Converted;
use crate::persist::Disk;
use crate::status::Status;
use crate::store::{Change, Persistence, Quota, Store};

/// One project's changes of this loop turn, not yet durable, and the answers waiting for them.
struct Group<A> {
    changes: Vec<Change>,
    held: Vec<A>,
}

/// An answer and what became of the write it waited for (None: durable, send it).
pub type Settled<A> = (A, Option<ApiError>);

pub struct Commit<A> {
    disk: Disk,
    groups: BTreeMap<String, Group<A>>,
    /// Frozen projects, and the answer waiting for each one's first snapshot.
    converting: BTreeMap<String, A>,
    /// Keys whose change became durable (or final, in memory) since `take_changed`, noted only
    /// while `watching`: most writes have no one to tell.
    changed: Vec<(String, Box<str>)>,
    watching: bool,
}

impl<A> Commit<A> {
    pub fn new(disk: Disk) -> Commit<A> {
        Commit {
            disk,
            groups: BTreeMap::new(),
            converting: BTreeMap::new(),
            changed: Vec::new(),
            watching: false,
        }
    }

    /// Whether a request that touches `touches` must wait until the groups are flushed (or a
    /// conversion ends) before it runs: rules 2 and 5.
    pub fn must_wait(&self, uses: Uses<'_>, mutation: bool) -> bool {
        match uses {
            Uses::Project(p) => {
                self.converting.contains_key(p) || (!mutation && self.groups.contains_key(p))
            }
            Uses::AllProjects => !mutation && !self.groups.is_empty(),
            Uses::Nothing => false,
        }
    }

    /// Whether anything waits to be written.
    pub fn is_pending(&self) -> bool {
        !self.groups.is_empty()
    }

    /// Take a change and its answer (rule 1). Returns the answer when it may go out at once.
    pub fn add(&mut self, store: &Store, change: Change, answer: Option<A>) -> Option<A> {
        if change.is_empty() {
            return answer;
        }
        let project = change.project();
        let has_files = self.disk.has_files(project)
            || store
                .project(project)
                .is_some_and(|p| p.persistence() != Persistence::Memory);
        if !has_files {
            // A memory project: nothing to write, nothing that could fail.
            self.note_changed(&change);
            return answer;
        }
        let group = self
            .groups
            .entry(project.to_string())
            .or_insert_with(|| Group {
                changes: Vec::new(),
                held: Vec::new(),
            });
        group.changes.push(change);
        group.held.extend(answer);
        None
    }

    /// Note changed keys for `take_changed` from now on (true: a watch is parked) or not. A
    /// watch reads the store's state when it parks, so nothing before it needs noting.
    pub fn set_watching(&mut self, on: bool) {
        self.watching = on;
    }

    fn note_changed(&mut self, change: &Change) {
        if !self.watching {
            return;
        }
        let project = change.project();
        self.changed
            .extend(change.keys().map(|k| (project.to_string(), k.into())));
    }

    /// Write every group (rules 3 and 4). Returns each held answer with its fate.
    pub fn flush(&mut self, store: &mut Store, status: &mut Status) -> Vec<Settled<A>> {
        let mut settled = Vec::new();
        for (project, group) in std::mem::take(&mut self.groups) {
            // Answers waiting in sync mode need the sync; expiries alone (nobody waits) and
            // interval mode do not.
            let sync = !group.held.is_empty()
                && store
                    .project(&project)
                    .is_some_and(|p| p.persistence() == Persistence::Sync);
            match self
                .disk
                .write_group(store, &project, &group.changes, sync, status)
            {
                Ok(()) => {
                    for c in &group.changes {
                        self.note_changed(c);
                    }
                    settled.extend(group.held.into_iter().map(|a| (a, None)));
                }
                Err(e) => {
                    status.log.push(format!(
                        "project {project}: {e}; {} change(s) undone",
                        group.changes.len()
                    ));
                    for c in group.changes.into_iter().rev() {
                        store.undo(c);
                    }
                    let err = ApiError::from(&e);
                    settled.extend(group.held.into_iter().map(|a| (a, Some(err.clone()))));
                }
            }
        }
        settled
    }

    /// Freeze a memory project and write its first snapshot; `answer` waits for the end
    /// (rule 5).
    pub fn convert(&mut self, project: &str, mode: Persistence, quota: Quota, answer: A) {
        self.disk.convert(project, mode, quota);
        self.converting.insert(project.to_string(), answer);
    }

    /// Whether background work (a compaction, a conversion) wants the loop to keep turning.
    pub fn busy(&self) -> bool {
        self.disk.busy()
    }

    /// One slice of background work; call it after `flush`, when nothing is pending. Returns
    /// the answer of a conversion that ended.
    pub fn background(&mut self, store: &mut Store, status: &mut Status) -> Vec<Settled<A>> {
        debug_assert!(
            self.groups.is_empty(),
            "background work runs only after a flush"
        );
        let ended = self.disk.step(store, status);
        ended
            .into_iter()
            .filter_map(|c| self.converted(store, c))
            .collect()
    }

    /// A conversion ended: on success the snapshot already holds the new settings, so the
    /// switch in memory is final at once; on failure the project stays in memory.
    fn converted(&mut self, store: &mut Store, c: Converted) -> Option<Settled<A>> {
        let answer = self.converting.remove(&c.project)?;
        match c.result {
            Ok(()) => {
                let _durable_already = store.set_settings(&c.project, c.mode, c.quota);
                Some((answer, None))
            }
            Err(e) => Some((answer, Some(crate::error::not_converted(&e)))),
        }
    }

    /// The interval timer: fdatasync every journal with unsynced records.
    pub fn sync_interval(&mut self, status: &mut Status) {
        self.disk.sync_all(status);
    }

    /// When background work paused after a failure wants to try again.
    pub fn retry_at(&self) -> Option<std::time::Instant> {
        self.disk.retry_at()
    }

    pub fn has_unsynced(&self) -> bool {
        self.disk.has_unsynced()
    }

    /// A handler panicked after it may have changed `project` without saying so: write a fresh
    /// snapshot of it, so whatever it did is durable rather than half-known.
    pub fn after_panic(&mut self, store: &Store, project: &str, status: &mut Status) {
        if store
            .project(project)
            .is_some_and(|p| p.persistence() != Persistence::Memory)
        {
            self.disk.compact_soon(project, status);
        }
    }

    /// Keys whose change is now durable, for the watches.
    pub fn take_changed(&mut self) -> Vec<(String, Box<str>)> {
        std::mem::take(&mut self.changed)
    }

    /// Stopping: write what is pending, finish conversions, sync every journal.
    pub fn shutdown(&mut self, store: &mut Store, status: &mut Status) -> Vec<Settled<A>> {
        let mut settled = self.flush(store, status);
        for c in self.disk.shutdown(store, status) {
            settled.extend(self.converted(store, c));
        }
        settled
    }
}
