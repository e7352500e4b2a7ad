//! The files of a running server. Per project: the journal segment it appends each group of
//! changes to, the older segments a compaction has not yet folded into a snapshot, and the size
//! of its snapshot. And the one background job at a time that writes a snapshot a slice per loop
//! turn: a *compaction* (a journal grew past its snapshot) or a *conversion* (a memory project's
//! first snapshot). Reads the store, never changes it; the commit decides what a failure means.
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
use std::time::{Duration, Instant};

use super::journal::{self, Journal};
use super::snapshot::{self, Header, SnapshotWriter};
use super::writeback::Retiring;
use super::{journal_path, list_dir, snapshot_path, sync_dir, DiskError, FileName};
use crate::status::{Status, Trouble};
use crate::store::{Change, Persistence, Project, Quota, Record, Store};

/// Bytes of keys a background job writes (and syncs) per loop turn: small enough that a turn
/// stays within a few milliseconds even on an SD card, large enough to finish 1M keys in seconds.
const SLICE_BYTES: usize = 256 * 1024;
/// After a failed compaction, wait this long before trying again (the disk may be full).
const RETRY_AFTER: Duration = Duration::from_secs(5);

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
struct Files {
    /// The segment appended to; None until the first append creates segment `seq`.
    journal: Option<Journal>,
    seq: u64,
    /// Segments before `seq` that a compaction has not yet made obsolete: (seq, bytes).
    older: Vec<(u64, u64)>,
    snapshot_bytes: u64,
    /// Set when a failed append could not be cut back: records of undone changes may follow
    /// the good ones, so nothing more is appended until a compaction replaces the segment.
    broken: Option<String>,
}

impl Files {
    fn journal_bytes(&self) -> u64 {
        let older: u64 = self.older.iter().map(|(_, b)| b).sum();
        older + self.journal.as_ref().map_or(0, Journal::len)
    }
}

enum JobKind {
    Compaction,
    /// A memory project's first snapshot, with the settings it will have.
    Conversion {
        mode: Persistence,
        quota: Quota,
    },
}

struct Job {
    project: String,
    kind: JobKind,
    writer: SnapshotWriter,
    /// The segment the new snapshot names.
    seq: u64,
    started: Instant,
}

/// A conversion that ended: the project may now switch (`Ok`), or stays in memory.
pub struct Converted {
    pub project: String,
    pub mode: Persistence,
    pub quota: Quota,
    pub result: Result<(), DiskError>,
}

pub struct Disk {
    dir: PathBuf,
    files: HashMap<String, Files>,
    job: Option<Job>,
    /// Conversions asked for, waiting for the job slot (they go before compactions).
    conversions: Vec<(String, Persistence, Quota)>,
    /// Projects whose journal outgrew their snapshot, or that need a fresh one.
    due: BTreeSet<String>,
    min_compact_bytes: u64,
    /// No compaction starts before this (one failed).
    pause_until: Option<Instant>,
    /// Files no longer named whose blocks are freed a step per turn.
    retiring: Retiring,
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
    fn segments_in_dir(&self, project: &str) -> Vec<u64> {
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

    // ---- background jobs: compactions and conversions ----

    fn grew_past_snapshot(&self, files: &Files) -> bool {
        files.journal_bytes() > files.snapshot_bytes.max(self.min_compact_bytes)
    }

    fn note_growth(&mut self, name: &str, files: &Files) {
        if self.grew_past_snapshot(files) {
            self.due.insert(name.to_string());
        }
    }

    /// Write a fresh snapshot of `project` as soon as the job slot is free.
    pub fn compact_soon(&mut self, project: &str, status: &mut Status) {
        if self.files.contains_key(project) {
            status.log.push(format!(
                "project {project}: a fresh snapshot will be written"
            ));
            self.due.insert(project.to_string());
        }
    }

    /// Ask for a memory project's first snapshot, with the settings it will have. Until it ends
    /// (see `step`), the caller keeps every request away from the project.
    pub fn convert(&mut self, project: &str, mode: Persistence, quota: Quota) {
        self.conversions.push((project.to_string(), mode, quota));
    }

    /// Whether `project` is being converted (or waits to be).
    pub fn converting(&self, project: &str) -> bool {
        self.conversions.iter().any(|(p, _, _)| p == project)
            || self.job.as_ref().is_some_and(|j| {
                j.project == project && matches!(j.kind, JobKind::Conversion { .. })
            })
    }

    /// One slice of the background job, starting one if none runs. Call it only when no group
    /// of changes is waiting to be written (the snapshot must hold nothing a failure undoes).
    /// Returns a conversion that ended.
    pub fn step(&mut self, store: &Store, status: &mut Status) -> Option<Converted> {
        self.retiring.step();
        if self.job.is_none() {
            if let Some(done) = self.start_job(store, status) {
                return Some(done);
            }
        }
        let job = self.job.as_mut()?;
        let Some(p) = store.project(&job.project) else {
            // Deleted meanwhile: a compaction has nothing left to do; a conversion (whose
            // project nothing may touch) cannot end this way, but would say so.
            let job = self.job.take().expect("matched above");
            if matches!(job.kind, JobKind::Compaction) {
                return None;
            }
            let path = snapshot_path(&self.dir, &job.project);
            let gone = io::Error::new(io::ErrorKind::NotFound, "the project was deleted");
            return self.job_failed(
                job,
                DiskError::new("writing the snapshot", &path, gone),
                status,
            );
        };
        match job.writer.write_slice(p, SLICE_BYTES) {
            Ok(false) => None,
            Ok(true) => {
                let job = self.job.take().expect("matched above");
                self.finish_job(job, status)
            }
            Err(e) => {
                let job = self.job.take().expect("matched above");
                let path = snapshot_path(&self.dir, &job.project);
                self.job_failed(
                    job,
                    DiskError::new("writing the snapshot", &path, e),
                    status,
                )
            }
        }
    }

    /// Start the next job: a conversion first, else a compaction that is due.
    fn start_job(&mut self, store: &Store, status: &mut Status) -> Option<Converted> {
        if !self.conversions.is_empty() {
            let (name, mode, quota) = self.conversions.remove(0);
            let seq = self.segments_in_dir(&name).last().map_or(1, |s| s + 1);
            let path = snapshot_path(&self.dir, &name);
            let Some(p) = store.project(&name) else {
                let gone = io::Error::new(io::ErrorKind::NotFound, "the project was deleted");
                return Some(Converted {
                    project: name,
                    mode,
                    quota,
                    result: Err(DiskError::new("writing the snapshot", &path, gone)),
                });
            };
            let mut header = Header::of(&name, p, Some(seq));
            header.persistence = mode;
            header.quota = quota;
            return match SnapshotWriter::begin(&self.dir, &header) {
                Ok(writer) => {
                    self.job = Some(Job {
                        project: name,
                        kind: JobKind::Conversion { mode, quota },
                        writer,
                        seq,
                        started: Instant::now(),
                    });
                    None
                }
                Err(e) => Some(Converted {
                    project: name,
                    mode,
                    quota,
                    result: Err(DiskError::new("writing the snapshot", &path, e)),
                }),
            };
        }
        if self.pause_until.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        self.pause_until = None;
        let name = self.due.pop_first()?;
        if let Err(e) = self.start_compaction(&name, store) {
            self.compaction_failed(name, &e, status);
        }
        None
    }

    /// Sync the current segment, open the next one for new changes, and begin the snapshot
    /// that will name it.
    fn start_compaction(&mut self, name: &str, store: &Store) -> Result<(), DiskError> {
        let Some(p) = store.project(name) else {
            return Ok(());
        };
        let dir = self.dir.clone();
        let Some(files) = self.files.get_mut(name) else {
            return Ok(());
        };
        if let Some(j) = files.journal.as_mut() {
            // Only the last segment may end torn: this one is complete before the next begins.
            j.sync()
                .map_err(|e| DiskError::new("syncing", j.path(), e))?;
        }
        let next = files.seq + 1;
        let path = journal_path(&dir, name, next);
        let journal = Journal::create(path.clone(), next)
            .map_err(|e| DiskError::new("creating", &path, e))?;
        // (A segment never created holds nothing to keep.)
        if let Some(old) = files.journal.replace(journal) {
            files.older.push((old.seq(), old.len()));
        }
        files.seq = next;
        files.broken = None;
        let header = Header::of(name, p, Some(next));
        let snap = snapshot_path(&dir, name);
        let writer = SnapshotWriter::begin(&dir, &header)
            .map_err(|e| DiskError::new("writing the snapshot", &snap, e))?;
        self.job = Some(Job {
            project: name.to_string(),
            kind: JobKind::Compaction,
            writer,
            seq: next,
            started: Instant::now(),
        });
        Ok(())
    }

    fn finish_job(&mut self, job: Job, status: &mut Status) -> Option<Converted> {
        let Job {
            project,
            kind,
            writer,
            seq,
            started,
        } = job;
        let path = snapshot_path(&self.dir, &project);
        let size = match writer.finish() {
            Ok((size, replaced)) => {
                self.retiring.adopt_all(replaced);
                size
            }
            Err(e) => {
                let err = DiskError::new("writing the snapshot", &path, e);
                let job_kind = kind;
                return self.failed(project, job_kind, err, status);
            }
        };
        status
            .metrics
            .record_compaction(&project, true, started.elapsed());
        status.solved(&project, Trouble::Compaction);
        // Segments before `seq` are obsolete now; a crash before they go leaves them for the
        // next start to remove.
        for old in self.segments_in_dir(&project) {
            if old < seq {
                let _ = self
                    .retiring
                    .retire(&journal_path(&self.dir, &project, old));
            }
        }
        match kind {
            JobKind::Compaction => {
                if let Some(files) = self.files.get_mut(&project) {
                    files.older.clear();
                    files.snapshot_bytes = size;
                    let bytes = files.journal_bytes();
                    status.metrics.set_journal_bytes(&project, bytes);
                }
                None
            }
            JobKind::Conversion { mode, quota } => {
                self.files.insert(
                    project.clone(),
                    Files {
                        journal: None,
                        seq,
                        older: Vec::new(),
                        snapshot_bytes: size,
                        broken: None,
                    },
                );
                status.metrics.set_journal_bytes(&project, 0);
                Some(Converted {
                    project,
                    mode,
                    quota,
                    result: Ok(()),
                })
            }
        }
    }

    fn job_failed(&mut self, job: Job, err: DiskError, status: &mut Status) -> Option<Converted> {
        let Job { project, kind, .. } = job;
        self.failed(project, kind, err, status)
    }

    fn failed(
        &mut self,
        project: String,
        kind: JobKind,
        err: DiskError,
        status: &mut Status,
    ) -> Option<Converted> {
        match kind {
            JobKind::Compaction => {
                self.compaction_failed(project, &err, status);
                None
            }
            JobKind::Conversion { mode, quota } => Some(Converted {
                project,
                mode,
                quota,
                result: Err(err),
            }),
        }
    }

    /// Say so (log, /health, metrics) and try again after a pause: the disk may be full.
    fn compaction_failed(&mut self, project: String, err: &DiskError, status: &mut Status) {
        let why = format!("compaction failed, will retry: {err}");
        status.log.push(format!("project {project}: {why}"));
        status.problem(&project, Trouble::Compaction, why);
        status
            .metrics
            .record_compaction(&project, false, Duration::ZERO);
        self.due.insert(project);
        self.pause_until = Some(Instant::now() + RETRY_AFTER);
    }

    fn abandon_job_of(&mut self, project: &str) {
        if self.job.as_ref().is_some_and(|j| j.project == project) {
            // Dropping the writer removes its temporary file.
            self.job = None;
        }
        self.due.remove(project);
    }

    /// Stopping: a conversion under way is finished (its request is waiting for it), a
    /// compaction is abandoned (the journal holds everything), every journal is synced.
    pub fn shutdown(&mut self, store: &Store, status: &mut Status) -> Vec<Converted> {
        let mut ended = Vec::new();
        self.due.clear();
        if self
            .job
            .as_ref()
            .is_some_and(|j| matches!(j.kind, JobKind::Compaction))
        {
            self.job = None;
        }
        while self.job.is_some() || !self.conversions.is_empty() {
            if let Some(c) = self.step(store, status) {
                ended.push(c);
            }
        }
        self.sync_all(status);
        ended
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
