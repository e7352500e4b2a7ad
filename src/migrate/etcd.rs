//! `pykv migrate etcd`: every live key of a data directory into etcd, offline. Per chunk of keys:
//! read what etcd holds, write only what differs in transactions guarded by the revisions read
//! (so a retried or repeated run changes nothing twice), lease keys that expire, and at the end
//! count what etcd holds under each project's prefix. Reads the data directory only through
//! `persist::read_dir`; talks to etcd only through `gateway`.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use super::gateway::{Gateway, Guarded, Write as EtcdWrite};
use super::{is_live, unix_now, Credentials, Endpoint, MigrateError, Naming};
use crate::persist;
use crate::store::{Project, ValueRef};

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

/// etcd's default `--max-txn-ops`: no transaction of ours has more operations (or compares).
const MAX_TXN_OPS: usize = 128;
/// Key, value and content-type bytes per transaction: etcd refuses requests over its
/// `--max-request-bytes` (1.5 MiB by default), and encoding adds a little to each key.
const MAX_TXN_BYTES: usize = 1024 * 1024;
/// Keys read together: one transaction's worth.
const KEYS_PER_CHUNK: usize = MAX_TXN_OPS;
/// Keys per page when reading back a chunk's span of etcd (ours, and any others in between).
const READ_PAGE: i64 = 256;
/// Guarded transactions of one chunk that may find their keys changed before the chunk is
/// given up: each failure means another writer (or our own request, retried after a timeout,
/// that had gone through), and the chunk is read again.
const CHUNK_ATTEMPTS: usize = 5;
/// Projects larger than this get a progress line at each multiple of it.
const PROGRESS_EVERY: usize = 10_000;
/// Lease ids are "pykv" in ASCII followed by the expiry's Unix second: one lease per second,
/// the same id on every run, so a second run finds the keys already on the right lease.
const LEASE_ID_BASE: i64 = 0x7079_6b76 << 32;

pub fn lease_id(expires_at: u64) -> i64 {
    LEASE_ID_BASE | (expires_at & 0xffff_ffff) as i64
}

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
    writeln!(out, "{}", header(opts, projects.len()))?;
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

fn header(opts: &Options, projects: usize) -> String {
    let urls: Vec<&str> = opts.endpoints.iter().map(|e| e.url.as_str()).collect();
    let (verb, tail) = if opts.dry_run {
        ("dry run:", "; nothing will be written")
    } else {
        ("migrating", "")
    };
    format!(
        "{verb} {} from {} to etcd at {} under {:?}{tail}",
        plural(projects, "project"),
        opts.data_dir.display(),
        urls.join(","),
        opts.naming.prefix(),
    )
}

fn plural(n: usize, word: &str) -> String {
    match n {
        1 => format!("1 {word}"),
        _ => format!("{n} {word}s"),
    }
}

/// What happened to one project.
#[derive(Default)]
struct Report {
    name: String,
    /// Live keys in the data directory, and how many of them have a content type or a TTL.
    keys: usize,
    typed: usize,
    with_ttl: usize,
    /// Keys already expired in the data directory, not migrated.
    expired: usize,
    written: usize,
    unchanged: usize,
    /// Expiry seconds of the migrated keys (with and without a content type): keys expiring
    /// while the counts are taken may or may not be counted.
    expiries: Vec<u64>,
    typed_expiries: Vec<u64>,
}

impl Report {
    fn line(&self, dry_run: bool) -> String {
        let mut detail = vec![
            format!("{} with a content type", self.typed),
            format!("{} with a TTL", self.with_ttl),
        ];
        if self.expired > 0 {
            detail.push(format!("{} expired and skipped", self.expired));
        }
        let done = if dry_run {
            format!(
                "would write {}, {} already in etcd",
                self.written, self.unchanged
            )
        } else {
            format!(
                "{} written, {} already in etcd",
                self.written, self.unchanged
            )
        };
        format!(
            "project {}: {} ({}): {done}",
            self.name,
            plural(self.keys, "key"),
            detail.join(", ")
        )
    }
}

/// A key as etcd holds it, for comparing.
struct Held {
    value: Vec<u8>,
    lease: i64,
    mod_revision: i64,
}

/// One key's writes, guarded, and its expiry (for its lease).
struct Change<'k> {
    key: &'k str,
    writes: Vec<Guarded>,
    expires_at: Option<u64>,
}

/// What one key needs.
enum Need {
    Nothing,
    /// Its writes (the value, and the content type put or removed), guarded.
    Writes(Vec<Guarded>),
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
    /// The last lines: what a dry run would do; or the counts verified, and what was done.
    fn finish(&mut self, reports: &[Report]) -> Result<(), MigrateError> {
        let written: usize = reports.iter().map(|r| r.written).sum();
        let unchanged: usize = reports.iter().map(|r| r.unchanged).sum();
        if self.dry_run {
            writeln!(
                self.out,
                "dry run: would write {} in {} and grant {}; nothing was written",
                plural(written, "key"),
                plural(self.txns, "transaction"),
                plural(self.leases.len(), "lease"),
            )?;
            return Ok(());
        }
        let mut mismatches = Vec::new();
        for r in reports {
            if let Some(m) = self.verify(r)? {
                mismatches.push(m);
            }
        }
        if !mismatches.is_empty() {
            return Err(MigrateError::Mismatch(mismatches.join("; ")));
        }
        let done = match (written, unchanged) {
            (0, 0) => "done: nothing to change, no live keys to migrate".to_string(),
            (0, 1) => "done: nothing to change, the 1 key was already in etcd".to_string(),
            (0, n) => format!("done: nothing to change, all {n} keys were already in etcd"),
            (w, u) => format!(
                "done: {} written, {u} already in etcd, {} granted",
                plural(w, "key"),
                plural(self.leases.len(), "lease")
            ),
        };
        writeln!(self.out, "{done}")?;
        Ok(())
    }

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
                self.count_expiries(report, items);
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
                self.count_expiries(report, items);
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

    fn count_expiries(&self, report: &mut Report, items: &[(&str, ValueRef<'_>)]) {
        for (_, v) in items {
            if let Some(t) = v.expires_at {
                report.expiries.push(t);
                if v.content_type.is_some() {
                    report.typed_expiries.push(t);
                }
            }
        }
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

    /// Count what etcd holds under the project's prefixes against what was migrated. Returns
    /// the mismatch, if any, for the final error.
    fn verify(&mut self, r: &Report) -> Result<Option<String>, MigrateError> {
        let data_prefix = self.naming.project_prefix(&r.name);
        let meta_prefix = self.naming.meta_prefix(&r.name);
        let keys = self.gw.count(data_prefix.as_bytes())?;
        let types = self.gw.count(meta_prefix.as_bytes())?;
        self.notes()?;
        let now = unix_now();
        let migrated = r.written + r.unchanged;
        let typed = r.typed;
        let keys_ok = within(keys, migrated, &r.expiries, now);
        let types_ok = within(types, typed, &r.typed_expiries, now);
        let held = format!(
            "etcd holds {keys} keys under {data_prefix:?} and {types} under {meta_prefix:?}"
        );
        if keys_ok && types_ok {
            writeln!(self.out, "verified {}: {held}, as pykv has", r.name)?;
            return Ok(None);
        }
        writeln!(
            self.out,
            "MISMATCH {}: {held}; pykv has {migrated} and {typed}",
            r.name
        )?;
        let hint = if keys as usize > migrated || types as usize > typed {
            "etcd holds keys pykv does not have there (another writer, or keys deleted in pykv \
             since an earlier migration): remove them or use another --prefix"
        } else {
            "keys are missing in etcd"
        };
        Ok(Some(format!(
            "project {} has {migrated} keys and {typed} content types, etcd {keys} and {types}: {hint}",
            r.name
        )))
    }
}

/// Whether `count` is what etcd should hold: every migrated key, less any whose expiry has
/// come by now (those may or may not have been removed yet).
fn within(count: u64, migrated: usize, expiries: &[u64], now: u64) -> bool {
    // A second of slack: etcd checks for expired leases twice a second.
    let may_be_gone = expiries.iter().filter(|&&t| t <= now + 1).count();
    let count = count as usize;
    count <= migrated && count + may_be_gone >= migrated
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
    kvs: Vec<super::gateway::KeyValue>,
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

fn chunk_error(project: &str, key: &str, e: super::gateway::EtcdError) -> MigrateError {
    let mut why = e.to_string();
    if why.contains("request is too large") {
        why.push_str(" (raise --max-request-bytes on every etcd member)");
    }
    MigrateError::Etcd(format!("project {project}, keys from {key:?}: {why}"))
}

/// What etcd must do for one key to hold `value` (and its content type) on the right lease.
fn need(
    naming: &Naming,
    project: &str,
    key: &str,
    value: &ValueRef<'_>,
    held: &HashMap<Vec<u8>, Held>,
) -> Need {
    let lease = value.expires_at.map_or(0, lease_id);
    let mut writes = Vec::new();
    let data_key = naming.key(project, key).into_bytes();
    let current = held.get(&data_key);
    if !current.is_some_and(|h| h.value == value.data && h.lease == lease) {
        writes.push(Guarded {
            mod_revision: current.map_or(0, |h| h.mod_revision),
            write: EtcdWrite::Put {
                key: data_key,
                value: value.data.to_vec(),
                lease,
            },
        });
    }
    let meta_key = naming.meta_key(project, key).into_bytes();
    let current = held.get(&meta_key);
    match (value.content_type, current) {
        (Some(ct), Some(h)) if h.value == ct.as_bytes() && h.lease == lease => {}
        (Some(ct), _) => writes.push(Guarded {
            mod_revision: current.map_or(0, |h| h.mod_revision),
            write: EtcdWrite::Put {
                key: meta_key,
                value: ct.as_bytes().to_vec(),
                lease,
            },
        }),
        (None, Some(h)) => writes.push(Guarded {
            mod_revision: h.mod_revision,
            write: EtcdWrite::Delete { key: meta_key },
        }),
        (None, None) => {}
    }
    if writes.is_empty() {
        Need::Nothing
    } else {
        Need::Writes(writes)
    }
}

/// The bytes a key adds to a request: its names, value and content type.
fn weight(naming: &Naming, project: &str, key: &str, v: &ValueRef<'_>) -> usize {
    let names = naming.key(project, key).len() + naming.meta_key(project, key).len();
    names + v.data.len() + v.content_type.map_or(0, str::len)
}

/// Consecutive keys, at most `KEYS_PER_CHUNK` and `MAX_TXN_BYTES` (a larger key alone).
fn chunks<'i, 'v>(
    naming: &Naming,
    project: &str,
    items: &'i [(&'v str, ValueRef<'v>)],
) -> Vec<&'i [(&'v str, ValueRef<'v>)]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, (k, v)) in items.iter().enumerate() {
        let w = weight(naming, project, k, v);
        if i > start && (i - start == KEYS_PER_CHUNK || bytes + w > MAX_TXN_BYTES) {
            out.push(&items[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += w;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// The keys' writes as transactions of at most `MAX_TXN_OPS` operations and `MAX_TXN_BYTES`,
/// a key's value and content type always in the same one.
fn group<'c, 'k>(changes: &'c [Change<'k>]) -> Vec<&'c [Change<'k>]> {
    let size = |w: &Guarded| match &w.write {
        EtcdWrite::Put { key, value, .. } => key.len() + value.len(),
        EtcdWrite::Delete { key } => key.len(),
    };
    let mut out = Vec::new();
    let mut start = 0;
    let (mut ops, mut bytes) = (0, 0);
    for (i, c) in changes.iter().enumerate() {
        let (n, b) = (c.writes.len(), c.writes.iter().map(size).sum::<usize>());
        if i > start && (ops + n > MAX_TXN_OPS || bytes + b > MAX_TXN_BYTES) {
            out.push(&changes[start..i]);
            start = i;
            ops = 0;
            bytes = 0;
        }
        ops += n;
        bytes += b;
    }
    if start < changes.len() {
        out.push(&changes[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(data: &'a [u8], ct: Option<&'a str>, exp: Option<u64>) -> ValueRef<'a> {
        ValueRef {
            data,
            content_type: ct,
            version: 1,
            expires_at: exp,
        }
    }

    fn naming() -> Naming {
        Naming::new("/pykv/").expect("valid")
    }

    #[test]
    fn lease_ids_spell_pykv_and_the_second() {
        assert_eq!(lease_id(1_800_000_000), 0x7079_6b76_6b49_d200);
        assert_eq!(
            format!("{:x}", lease_id(1)),
            "7079_6b76_0000_0001".replace('_', "")
        );
    }

    #[test]
    fn a_key_held_as_is_needs_nothing() {
        let mut held = HashMap::new();
        held.insert(
            b"/pykv/p/k".to_vec(),
            Held {
                value: b"v".to_vec(),
                lease: lease_id(2_000_000_000),
                mod_revision: 9,
            },
        );
        let v = value(b"v", None, Some(2_000_000_000));
        assert!(matches!(
            need(&naming(), "p", "k", &v, &held),
            Need::Nothing
        ));
        // Another lease, a content type to add, a stale content type to remove: writes.
        let v2 = value(b"v", None, Some(2_000_000_001));
        let Need::Writes(w) = need(&naming(), "p", "k", &v2, &held) else {
            panic!("the lease differs")
        };
        assert_eq!((w.len(), w[0].mod_revision), (1, 9));
        let v3 = value(b"v", Some("text/plain"), Some(2_000_000_000));
        let Need::Writes(w) = need(&naming(), "p", "k", &v3, &held) else {
            panic!("the type is missing")
        };
        assert_eq!(
            (w.len(), w[0].write.key(), w[0].mod_revision),
            (1, &b"/pykv/.meta/p/k"[..], 0)
        );
        held.insert(
            b"/pykv/.meta/p/k".to_vec(),
            Held {
                value: b"text/plain".to_vec(),
                lease: 0,
                mod_revision: 4,
            },
        );
        let v4 = value(b"v", None, Some(2_000_000_000));
        let Need::Writes(w) = need(&naming(), "p", "k", &v4, &held) else {
            panic!("the type must go")
        };
        assert!(matches!(w[0].write, EtcdWrite::Delete { .. }));
        assert_eq!(w[0].mod_revision, 4);
    }

    #[test]
    fn chunks_and_transactions_stay_within_etcds_limits() {
        let keys: Vec<String> = (0..300).map(|i| format!("k{i:03}")).collect();
        let big = vec![7u8; 700 * 1024];
        let mut items: Vec<(&str, ValueRef<'_>)> = keys
            .iter()
            .map(|k| (k.as_str(), value(b"x", None, None)))
            .collect();
        items[200].1 = value(&big, None, None);
        items[201].1 = value(&big, None, None);
        let sizes: Vec<usize> = chunks(&naming(), "p", &items)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [128, 73, 99]);
        let changes: Vec<Change<'_>> = (0..100)
            .map(|i| {
                let put = |k: &str| Guarded {
                    mod_revision: 0,
                    write: EtcdWrite::Put {
                        key: k.as_bytes().to_vec(),
                        value: vec![],
                        lease: 0,
                    },
                };
                Change {
                    key: keys[i].as_str(),
                    writes: vec![put("a"), put("b")],
                    expires_at: None,
                }
            })
            .collect();
        let sizes: Vec<usize> = group(&changes).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, [64, 36]);
    }

    #[test]
    fn counts_allow_only_keys_whose_expiry_has_come() {
        assert!(within(5, 5, &[], 100));
        assert!(!within(6, 5, &[], 100));
        assert!(!within(4, 5, &[], 100));
        assert!(within(4, 5, &[101], 100));
        assert!(!within(4, 5, &[200], 100));
    }

    #[test]
    fn plurals_read_well() {
        assert_eq!(plural(1, "key"), "1 key");
        assert_eq!(plural(2, "key"), "2 keys");
    }
}
