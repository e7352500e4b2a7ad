//! `pykv migrate etcd`: every live key of a data directory into etcd, offline. Per chunk of keys:
//! read what etcd holds, write only what differs in transactions guarded by the revisions read
//! (so a retried or repeated run changes nothing twice), lease keys that expire, and at the end
//! count what etcd holds under each project's prefix. Here: the order of that work and the
//! reading and writing of each chunk. Reads the data directory only through
//! `persist::read_dir`; talks to etcd only through `gateway`.
//!
//! - `plan` — what to write: comparisons, leases, chunks and transactions (no I/O).
//! - `verify` — the counts at the end, and the closing lines.
//! - `report` — the lines printed.

mod plan;
mod report;
mod verify;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use super::gateway::{EtcdError, Gateway, Guarded, KeyValue};
use super::{is_live, unix_now, Credentials, Endpoint, MigrateError, Naming};
use crate::persist;
use crate::store::{Project, ValueRef};
use plan::{chunks, group, lease_id, need, Change, Held, Need};
use report::Report;

/// What `pykv migrate etcd` was asked to do.
#[derive(Debug)]
pub struct Options {
    pub data_dir: PathBuf,
    pub endpoints: Vec<Endpoint>,
    pub project: Option<String>,
    pub naming: Naming,
    pub credentials: Option<Credentials>,
    pub dry_run: bool,
}

/// Keys per page when reading back a chunk's span of etcd (ours, and any others in between).
const READ_PAGE: i64 = 256;
/// Guarded transactions of one chunk that may find their keys changed before the chunk is
/// given up: each failure means another writer (or our own request, retried after a timeout,
/// that had gone through), and the chunk is read again.
const CHUNK_ATTEMPTS: usize = 5;
/// Projects larger than this get a progress line at each multiple of it.
const PROGRESS_EVERY: usize = 10_000;

/// Run the migration, printing its report to `out`.
pub fn run(opts: &Options, out: &mut dyn Write) -> Result<(), MigrateError> {
    let started = Instant::now();
    let projects =
        persist::read_dir(&opts.data_dir, opts.project.as_deref()).map_err(MigrateError::Data)?;
    if projects.is_empty() {
        return Err(MigrateError::Data(format!(
            "no project snapshots in {}: nothing to migrate",
            opts.data_dir.display()
        )));
    }
    writeln!(out, "{}", report::header(opts, projects.len()))?;
    let mut run = Run {
        gw: Gateway::new(opts.endpoints.clone(), opts.credentials.clone()),
        out,
        naming: &opts.naming,
        dry_run: opts.dry_run,
        leases: HashSet::new(),
        txns: 0,
    };
    run.gw.login()?;
    // A first request that changes nothing, on a prefix the user must be allowed to read
    // anyway: a wrong address or a refusal shows here, before any key is read.
    run.gw
        .count(opts.naming.project_prefix(&projects[0].name).as_bytes())?;
    run.notes()?;
    let mut reports = Vec::new();
    for l in &projects {
        let report = run.project(&l.name, &l.project)?;
        writeln!(run.out, "{}", report.line(opts.dry_run))?;
        reports.push(report);
    }
    run.finish(&reports)?;
    writeln!(run.out, "took {:.2} s", started.elapsed().as_secs_f64())?;
    Ok(())
}

struct Run<'a> {
    gw: Gateway,
    out: &'a mut dyn Write,
    naming: &'a Naming,
    dry_run: bool,
    /// Expiry seconds whose lease was granted (or, in a dry run, would be).
    leases: HashSet<u64>,
    txns: usize,
}

impl Run<'_> {
    fn notes(&mut self) -> Result<(), MigrateError> {
        for note in self.gw.take_notes() {
            writeln!(self.out, "note: {note}")?;
        }
        self.out.flush()?;
        Ok(())
    }

    fn project(&mut self, name: &str, project: &Project) -> Result<Report, MigrateError> {
        let now = unix_now();
        let mut report = Report {
            name: name.to_string(),
            ..Report::default()
        };
        let mut live: Vec<(&str, ValueRef<'_>)> = Vec::new();
        for (key, value) in project.entries() {
            if is_live(value.expires_at, now) {
                report.typed += usize::from(value.content_type.is_some());
                report.with_ttl += usize::from(value.expires_at.is_some());
                live.push((key, value));
            } else {
                report.expired += 1;
            }
        }
        report.keys = live.len();
        let mut done = 0;
        for chunk in chunks(self.naming, name, &live) {
            self.chunk(name, chunk, &mut report)?;
            let before = done / PROGRESS_EVERY;
            done += chunk.len();
            if live.len() > PROGRESS_EVERY && done < live.len() && done / PROGRESS_EVERY > before {
                writeln!(
                    self.out,
                    "project {name}: past {} of {} keys",
                    done / PROGRESS_EVERY * PROGRESS_EVERY,
                    live.len()
                )?;
                self.out.flush()?;
            }
        }
        Ok(report)
    }

    /// Bring one chunk of keys into etcd: read, write what differs, and read again when a
    /// guard failed, until etcd holds them all.
    fn chunk(
        &mut self,
        project: &str,
        items: &[(&str, ValueRef<'_>)],
        report: &mut Report,
    ) -> Result<(), MigrateError> {
        // Keys this run sent in a transaction: found unchanged later, they were written by it.
        let mut sent: HashSet<&str> = HashSet::new();
        for _ in 0..CHUNK_ATTEMPTS {
            let held = self.read(project, items)?;
            let mut changes: Vec<Change<'_>> = Vec::new();
            let mut same: Vec<&str> = Vec::new();
            for (key, value) in items {
                match need(self.naming, project, key, value, &held) {
                    Need::Nothing => same.push(key),
                    Need::Writes(writes) => changes.push(Change {
                        key,
                        writes,
                        expires_at: value.expires_at,
                    }),
                }
            }
            if self.dry_run {
                self.txns += group(&changes).len();
                self.leases
                    .extend(changes.iter().filter_map(|c| c.expires_at));
                report.written += changes.len();
                report.unchanged += same.len();
                count_expiries(report, items);
                return Ok(());
            }
            self.grant_leases(changes.iter().filter_map(|c| c.expires_at))?;
            let mut all_applied = true;
            for txn in group(&changes) {
                let writes: Vec<&Guarded> = txn.iter().flat_map(|c| c.writes.iter()).collect();
                sent.extend(txn.iter().map(|c| c.key));
                self.txns += 1;
                let applied = self
                    .gw
                    .guarded_txn(&writes)
                    .map_err(|e| chunk_error(project, txn[0].key, e))?;
                self.notes()?;
                all_applied &= applied;
            }
            if all_applied {
                let sent_before = same.iter().filter(|k| sent.contains(*k)).count();
                report.written += changes.len() + sent_before;
                report.unchanged += same.len() - sent_before;
                count_expiries(report, items);
                return Ok(());
            }
        }
        Err(MigrateError::Etcd(format!(
            "keys of project {project} from {:?} kept changing in etcd while they were written \
             ({CHUNK_ATTEMPTS} tries): is something else writing under {:?}?",
            items[0].0,
            self.naming.project_prefix(project)
        )))
    }

    /// What etcd holds under this chunk's keys and content-type keys: the span from its first to
    /// its last key, a page at a time, keeping only the keys we asked about.
    fn read(
        &mut self,
        project: &str,
        items: &[(&str, ValueRef<'_>)],
    ) -> Result<HashMap<Vec<u8>, Held>, MigrateError> {
        let first = items[0].0;
        let last = items[items.len() - 1].0;
        let spans = [
            (
                self.naming.key(project, first).into_bytes(),
                after(self.naming.key(project, last).into_bytes()),
            ),
            (
                self.naming.meta_key(project, first).into_bytes(),
                after(self.naming.meta_key(project, last).into_bytes()),
            ),
        ];
        let wanted: HashSet<Vec<u8>> = items
            .iter()
            .flat_map(|(k, _)| {
                [
                    self.naming.key(project, k).into_bytes(),
                    self.naming.meta_key(project, k).into_bytes(),
                ]
            })
            .collect();
        let pages = self
            .gw
            .ranges(&[
                (&spans[0].0, &spans[0].1, READ_PAGE),
                (&spans[1].0, &spans[1].1, READ_PAGE),
            ])
            .map_err(|e| chunk_error(project, first, e))?;
        self.notes()?;
        let mut held = HashMap::new();
        for ((kvs, mut more), (_, end)) in pages.into_iter().zip(&spans) {
            let mut next = keep(&mut held, &wanted, kvs);
            while more {
                let Some(from) = next else { break };
                let (kvs, m) = self
                    .gw
                    .range(&from, end, READ_PAGE)
                    .map_err(|e| chunk_error(project, first, e))?;
                self.notes()?;
                more = m;
                next = keep(&mut held, &wanted, kvs);
            }
        }
        Ok(held)
    }

    fn grant_leases(&mut self, expiries: impl Iterator<Item = u64>) -> Result<(), MigrateError> {
        for t in expiries {
            if self.leases.contains(&t) {
                continue;
            }
            // From this moment, not from when the data directory was read; at least 1 s (etcd
            // raises it to its minimum TTL anyway): a key due this very second still goes, and
            // expires in etcd at once.
            let ttl = t.saturating_sub(unix_now()).max(1);
            self.gw.grant_lease(lease_id(t), ttl as i64).map_err(|e| {
                MigrateError::Etcd(format!("cannot grant the lease for expiry {t}: {e}"))
            })?;
            self.notes()?;
            self.leases.insert(t);
        }
        Ok(())
    }
}

/// Note the expiry seconds of a chunk's keys, for the counts at the end.
fn count_expiries(report: &mut Report, items: &[(&str, ValueRef<'_>)]) {
    for (_, v) in items {
        if let Some(t) = v.expires_at {
            report.expiries.push(t);
            if v.content_type.is_some() {
                report.typed_expiries.push(t);
            }
        }
    }
}

/// The smallest key after `key`.
fn after(mut key: Vec<u8>) -> Vec<u8> {
    key.push(0);
    key
}

/// Keep the wanted keys of a page; returns where the next page starts.
fn keep(
    held: &mut HashMap<Vec<u8>, Held>,
    wanted: &HashSet<Vec<u8>>,
    kvs: Vec<KeyValue>,
) -> Option<Vec<u8>> {
    let next = kvs.last().map(|kv| after(kv.key.clone()));
    for kv in kvs {
        if wanted.contains(&kv.key) {
            held.insert(
                kv.key,
                Held {
                    value: kv.value,
                    lease: kv.lease,
                    mod_revision: kv.mod_revision,
                },
            );
        }
    }
    next
}

fn chunk_error(project: &str, key: &str, e: EtcdError) -> MigrateError {
    let mut why = e.to_string();
    if why.contains("request is too large") {
        why.push_str(" (raise --max-request-bytes on every etcd member)");
    }
    MigrateError::Etcd(format!("project {project}, keys from {key:?}: {why}"))
}
