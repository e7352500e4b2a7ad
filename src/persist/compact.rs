//! The one background job a running server has at a time, a slice per loop turn: a
//! *compaction* (a journal grew past its snapshot: write a fresh snapshot naming the next
//! segment, then drop the old segments) or a *conversion* (a memory project's first snapshot).
//! Reads the store, never changes it; `disk.rs` has the files it works on.

use std::io;
use std::time::{Duration, Instant};

use super::disk::{Disk, Files};
use super::journal::Journal;
use super::snapshot::{Header, SnapshotWriter};
use super::{journal_path, snapshot_path, DiskError};
use crate::status::{Status, Trouble};
use crate::store::{Persistence, Quota, Store};

/// Bytes of keys a background job writes (and syncs) per loop turn: small enough that a turn
/// stays within a few milliseconds even on an SD card, large enough to finish 1M keys in seconds.
pub(super) const SLICE_BYTES: usize = 256 * 1024;
/// After a failed compaction, wait this long before trying again (the disk may be full).
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(5);

pub(super) enum JobKind {
    Compaction,
    /// A memory project's first snapshot, with the settings it will have.
    Conversion {
        mode: Persistence,
        quota: Quota,
    },
}

pub(super) struct Job {
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

impl Disk {
    pub(super) fn grew_past_snapshot(&self, files: &Files) -> bool {
        files.journal_bytes() > files.snapshot_bytes.max(self.min_compact_bytes)
    }

    pub(super) fn note_growth(&mut self, name: &str, files: &Files) {
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

    pub(super) fn abandon_job_of(&mut self, project: &str) {
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
