//! The files of a running server. Per project: the journal segment it appends each group of
//! changes to, the older segments a compaction has not yet folded into a snapshot, and the size
//! of its snapshot; and what a group of changes does to them. (The background job that writes
//! snapshots a slice per loop turn is in `compact.rs`.) Reads the store, never changes it; the
//! commit decides what a failure means.
//!
//! How a project's files change, and the instant each change takes effect (its commit point):
//! - a new project (or one deleted and re-created): a whole snapshot naming segment S, renamed
//!   into place (the commit point); then segment S is created and older segments removed;
//! - a change: one group appended to segment S (and fdatasynced when asked); the append and sync
//!   are the commit point; a failure cuts the segment back to its last good record;
//! - a compaction: segment S is synced and S+1 created, new changes go there; a snapshot naming
//!   S+1 is written a slice per turn and renamed into place (the commit point); then segments
//!   up to S are removed. A crash before the rename leaves the old snapshot and S, S+1: all there;
//! - a deletion (or a switch to memory): a DELETED (or META) group appended and synced (the
//!   commit point), then every file removed; files a crash leaves are removed at the next start.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::compact::Job;
use super::journal::{self, Journal};
use super::snapshot::{self, Header};
use super::writeback::Retiring;
use super::{journal_path, list_dir, snapshot_path, sync_dir, DiskError, FileName};
use crate::status::{Status, Trouble};
use crate::store::{Change, Persistence, Project, Quota, Record, Store};

/// A project's files as found at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnDisk {
    /// The segment the snapshot names (the first to replay).
    pub first: u64,
    /// Live segments in order: (seq, bytes of good records).
    pub segments: Vec<(u64, u64)>,
    pub snapshot_bytes: u64,
}

#[derive(Debug)]
pub(super) struct Files {
    /// The segment appended to; None until the first append creates segment `seq`.
    pub(super) journal: Option<Journal>,
    pub(super) seq: u64,
    /// Segments before `seq` that a compaction has not yet made obsolete: (seq, bytes).
    pub(super) older: Vec<(u64, u64)>,
    pub(super) snapshot_bytes: u64,
    /// Set when a failed append could not be cut back: records of undone changes may follow
    /// the good ones, so nothing more is appended until a compaction replaces the segment.
    pub(super) broken: Option<String>,
}

impl Files {
    pub(super) fn journal_bytes(&self) -> u64 {
        let older: u64 = self.older.iter().map(|(_, b)| b).sum();
        older + self.journal.as_ref().map_or(0, Journal::len)
    }
}

pub struct Disk {
    pub(super) dir: PathBuf,
    pub(super) files: HashMap<String, Files>,
    pub(super) job: Option<Job>,
    /// Conversions asked for, waiting for the job slot (they go before compactions).
    pub(super) conversions: Vec<(String, Persistence, Quota)>,
    /// Projects whose journal outgrew their snapshot, or that need a fresh one.
    pub(super) due: BTreeSet<String>,
    pub(super) min_compact_bytes: u64,
    /// No compaction starts before this (one failed).
    pub(super) pause_until: Option<Instant>,
    /// Files no longer named whose blocks are freed a step per turn.
    pub(super) retiring: Retiring,
}

impl Disk {
    pub fn new(dir: &Path, min_compact_bytes: u64) -> Disk {
        Disk {
            dir: dir.to_path_buf(),
            files: HashMap::new(),
            job: None,
            conversions: Vec::new(),
            due: BTreeSet::new(),
            min_compact_bytes,
            pause_until: None,
            retiring: Retiring::default(),
        }
    }

    /// Take over a project's files as loaded at start-up (torn tails already cut).
    pub fn adopt(&mut self, project: &str, on: OnDisk, status: &mut Status) -> io::Result<()> {
        let mut segments = on.segments;
        let (journal, seq) = match segments.pop() {
            Some((seq, len)) => {
                let path = journal_path(&self.dir, project, seq);
                (Some(Journal::open(path, seq, len)?), seq)
            }
            None => (None, on.first),
        };
        let files = Files {
            journal,
            seq,
            older: segments,
            snapshot_bytes: on.snapshot_bytes,
            broken: None,
        };
        status
            .metrics
            .set_journal_bytes(project, files.journal_bytes());
        self.note_growth(project, &files);
        self.files.insert(project.to_string(), files);
        Ok(())
    }

    pub fn has_files(&self, project: &str) -> bool {
        self.files.contains_key(project)
    }

    /// A background job is under way or waiting: the loop must not sleep.
    pub fn busy(&self) -> bool {
        self.job.is_some()
            || !self.conversions.is_empty()
            || !self.retiring.is_empty()
            || (!self.due.is_empty() && self.pause_until.is_none_or(|t| Instant::now() >= t))
    }

    /// When a paused compaction may be retried (the loop must wake for it).
    pub fn retry_at(&self) -> Option<Instant> {
        self.pause_until.filter(|_| !self.due.is_empty())
    }

    /// Whether any journal has records not yet synced (interval mode).
    pub fn has_unsynced(&self) -> bool {
        self.files
            .values()
            .any(|f| f.journal.as_ref().is_some_and(|j| j.unsynced() > 0))
    }

    // ---- groups of changes ----

    /// Make `project`'s files match the store after `changes` (one loop turn's, oldest first):
    /// append them to its journal as one group, fdatasynced when `sync`; or create, delete or
    /// release its files. On error nothing of the group is on disk.
    pub fn write_group(
        &mut self,
        store: &Store,
        project: &str,
        changes: &[Change],
        sync: bool,
        status: &mut Status,
    ) -> Result<(), DiskError> {
        let result = match store.project(project) {
            None => self.remove(project, None, status),
            Some(p) if p.persistence() == Persistence::Memory => {
                self.remove(project, Some(p), status)
            }
            Some(p) => {
                let fresh = !self.files.contains_key(project)
                    || changes.iter().any(Change::creates_or_deletes);
                if fresh {
                    self.create(project, p, status)
                } else {
                    self.append(project, p, changes, sync, status)
                }
            }
        };
        match &result {
            Ok(()) => status.solved(project, Trouble::Journal),
            Err(e) => status.problem(project, Trouble::Journal, format!("{e}")),
        }
        result
    }

    /// A new project, or one replaced within the turn: a whole snapshot naming a segment above
    /// any that exists, then that segment, then the old segments go.
    fn create(&mut self, name: &str, p: &Project, status: &mut Status) -> Result<(), DiskError> {
        self.abandon_job_of(name);
        let existing = self.segments_in_dir(name);
        let seq = existing.last().map_or(1, |s| s + 1);
        let path = snapshot_path(&self.dir, name);
        let (snapshot_bytes, replaced) = snapshot::save(&self.dir, name, p, seq)
            .map_err(|e| DiskError::new("writing the snapshot", &path, e))?;
        self.retiring.adopt_all(replaced);
        for old in existing {
            // Obsolete now; one left behind is removed at the next start.
            let _ = self.retiring.retire(&journal_path(&self.dir, name, old));
        }
        let mut files = Files {
            journal: None,
            seq,
            older: Vec::new(),
            snapshot_bytes,
            broken: None,
        };
        // The snapshot holds everything now: a segment that cannot be created yet only means
        // the next change tries again (and fails, if the disk still refuses).
        let path = journal_path(&self.dir, name, seq);
        match Journal::create(path.clone(), seq) {
            Ok(j) => files.journal = Some(j),
            Err(e) => status.problem(
                name,
                Trouble::Journal,
                format!("{}", DiskError::new("creating", &path, e)),
            ),
        }
        status.metrics.set_journal_bytes(name, 0);
        self.files.insert(name.to_string(), files);
        Ok(())
    }

    fn append(
        &mut self,
        name: &str,
        p: &Project,
        changes: &[Change],
        sync: bool,
        status: &mut Status,
    ) -> Result<(), DiskError> {
        let mut buf = Vec::new();
        let mut group = journal::Group::new(&mut buf);
        let meta = changes.iter().any(Change::touches_meta);
        if meta {
            group.meta(&Header::of(name, p, None).to_json());
        }
        // Each key's last state in the turn is its state now.
        let mut last: BTreeMap<&str, Option<&Record>> = BTreeMap::new();
        for (key, state) in changes.iter().flat_map(Change::written) {
            last.insert(key, state);
        }
        group.keys(p.version(), last);
        if group.finish() == 0 {
            return Ok(());
        }
        let dir = self.dir.clone();
        let files = self.files.get_mut(name).expect("checked by write_group");
        let journal = open_journal(&dir, name, files)?;
        let before = journal.len();
        if let Err(e) = journal.append(&buf) {
            let err = DiskError::new("appending to", journal.path(), e.cause);
            if !e.cut {
                files.broken = Some(format!("{err}; the failed records could not be cut off"));
                self.due.insert(name.to_string());
            }
            return Err(err);
        }
        if !(sync || meta) {
            journal.write_behind();
        } else {
            let started = Instant::now();
            if let Err(cause) = journal.sync() {
                let err = DiskError::new("syncing", journal.path(), cause);
                let cut = journal.cut_to(before, io::Error::other("sync failed"));
                if !cut.cut {
                    files.broken = Some(format!("{err}; the failed records could not be cut off"));
                    self.due.insert(name.to_string());
                }
                return Err(err);
            }
            status.metrics.record_fsync(started.elapsed());
        }
        status.metrics.record_append(name, files.journal_bytes());
        let files = &self.files[name];
        if self.grew_past_snapshot(files) {
            self.due.insert(name.to_string());
        }
        Ok(())
    }

    /// Remove a deleted project's files (`now` None), or those of one switched to memory: first
    /// a group that says so, synced (the commit point), then the files.
    fn remove(
        &mut self,
        name: &str,
        now: Option<&Project>,
        status: &mut Status,
    ) -> Result<(), DiskError> {
        let Some(files) = self.files.get_mut(name) else {
            return Ok(());
        };
        let mut buf = Vec::new();
        let mut group = journal::Group::new(&mut buf);
        match now {
            Some(p) => group.meta(&Header::of(name, p, None).to_json()),
            None => group.deleted(),
        }
        group.finish();
        match files.journal.as_mut() {
            Some(j) => {
                let before = j.len();
                j.append(&buf)
                    .map_err(|e| DiskError::new("appending to", j.path(), e.cause))?;
                if let Err(cause) = j.sync() {
                    let err = DiskError::new("syncing", j.path(), cause);
                    j.cut_to(before, io::Error::other("sync failed"));
                    return Err(err);
                }
            }
            // No journal yet: removing the snapshot is the commit point.
            None => {
                let path = snapshot_path(&self.dir, name);
                fs::remove_file(&path)
                    .and_then(|()| sync_dir(&self.dir))
                    .map_err(|e| DiskError::new("removing", &path, e))?;
            }
        }
        self.abandon_job_of(name);
        self.files.remove(name);
        self.due.remove(name);
        let mut left = Vec::new();
        let snapshot = snapshot_path(&self.dir, name);
        let segments = self.segments_in_dir(name);
        let paths = std::iter::once(snapshot)
            .chain(segments.iter().map(|s| journal_path(&self.dir, name, *s)));
        for path in paths {
            if let Err(e) = self.retiring.retire(&path) {
                left.push(format!("{}: {e}", path.display()));
            }
        }
        if now.is_none() {
            status.forget(name);
        }
        if left.is_empty() {
            status.solved(name, Trouble::Cleanup);
        } else {
            let why = format!(
                "files left behind (removed at the next start): {}",
                left.join("; ")
            );
            status.log.push(format!("project {name}: {why}"));
            status.problem(name, Trouble::Cleanup, why);
        }
        Ok(())
    }

    /// Segment numbers of `project` in the data directory, ascending.
    pub(super) fn segments_in_dir(&self, project: &str) -> Vec<u64> {
        let mut seqs: Vec<u64> = list_dir(&self.dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(f, _)| match f {
                FileName::Journal(p, seq) if p == project => Some(seq),
                _ => None,
            })
            .collect();
        seqs.sort_unstable();
        seqs
    }

    // ---- interval mode ----

    /// fdatasync every journal with unsynced records. A failure cannot be undone (the changes
    /// were answered): it is reported, and a fresh snapshot of memory is written to make up.
    pub fn sync_all(&mut self, status: &mut Status) {
        for (name, files) in &mut self.files {
            let Some(j) = files.journal.as_mut() else {
                continue;
            };
            if j.unsynced() == 0 {
                continue;
            }
            let started = Instant::now();
            match j.sync() {
                Ok(()) => status.metrics.record_fsync(started.elapsed()),
                Err(e) => {
                    let err = DiskError::new("syncing", j.path(), e);
                    status.log.push(format!(
                        "project {name}: {err}; a fresh snapshot will be written"
                    ));
                    status.problem(name, Trouble::Journal, format!("{err}"));
                    self.due.insert(name.clone());
                }
            }
        }
    }
}

/// The segment to append to, created if the project has none yet.
fn open_journal<'f>(
    dir: &Path,
    name: &str,
    files: &'f mut Files,
) -> Result<&'f mut Journal, DiskError> {
    if let Some(why) = &files.broken {
        let path = journal_path(dir, name, files.seq);
        return Err(DiskError::new(
            "appending to",
            &path,
            io::Error::other(format!(
                "the journal is damaged until a compaction replaces it ({why})"
            )),
        ));
    }
    if files.journal.is_none() {
        let path = journal_path(dir, name, files.seq);
        let j = Journal::create(path.clone(), files.seq)
            .map_err(|e| DiskError::new("creating", &path, e))?;
        files.journal = Some(j);
    }
    Ok(files.journal.as_mut().expect("created above"))
}
