//! Reading a data directory: at start-up, each project's snapshot and then its journal replayed
//! on top; and the offline commands `--check-data`, `export` and `repair`.
//!
//! Start-up reads everything first, touching nothing. Only if every project loads does it fix
//! what a crash leaves (cut a torn last record, remove a half-written snapshot, segments a
//! compaction made obsolete, files of a deleted project), so a refusal leaves every file as it
//! was. A torn last record was never acknowledged (its answer waits for the sync); a bad record
//! anywhere else is damage, and pykv refuses to guess.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::disk::OnDisk;
use super::journal::{self, End, Entry, Op};
use super::snapshot::{self, write_entry, Header, Snapshot};
use super::{journal_path, list_dir, snapshot_path, FileName, FORMAT_VERSION};
use crate::auth::Source;
use crate::store::{self, Persistence, Project, Record};

/// A project as loaded: its snapshot with its journal replayed on top, and its files.
pub struct Loaded {
    pub name: String,
    pub project: Project,
    pub files: OnDisk,
}

/// What start-up will do to a file once every project has loaded.
#[derive(Debug)]
enum Fix {
    Cut {
        path: PathBuf,
        len: u64,
        why: String,
    },
    Remove {
        path: PathBuf,
        why: &'static str,
    },
}

/// One project's files, read without changing them.
struct Read {
    name: String,
    /// None: the project is gone (deleted, or switched to memory) and its files are leftovers.
    loaded: Option<Loaded>,
    fixes: Vec<Fix>,
    records: u64,
    journal_bytes: u64,
    torn: Option<String>,
}

#[derive(Default)]
struct Found {
    snapshot: Option<PathBuf>,
    segments: Vec<(u64, PathBuf)>,
    tmp: Option<PathBuf>,
}

/// Every project's files, by project name. A missing directory holds none.
fn survey(dir: &Path) -> Result<BTreeMap<String, Found>, String> {
    let files = match list_dir(dir) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("cannot read data directory {}: {e}", dir.display())),
    };
    let mut by_project: BTreeMap<String, Found> = BTreeMap::new();
    for (name, path) in files {
        match name {
            FileName::Snapshot(p) => by_project.entry(p).or_default().snapshot = Some(path),
            FileName::SnapshotTmp(p) => by_project.entry(p).or_default().tmp = Some(path),
            FileName::Journal(p, seq) => {
                by_project.entry(p).or_default().segments.push((seq, path))
            }
        }
    }
    for f in by_project.values_mut() {
        f.segments.sort();
    }
    Ok(by_project)
}

/// What replaying a project's journal found: each key's last state (applied to the snapshot's
/// keys in one merge, not one tree search per record: a journal may hold a million records),
/// the last settings record, the highest version, and whether the project was deleted.
#[derive(Default)]
struct Replay {
    keys: HashSet<Last>,
    meta: Option<Header>,
    version: u64,
    deleted: bool,
}

/// A key's last state in the journal, hashed and compared by the key alone (one allocation a
/// record: the record itself, or the removed key). SipHash, not a faster hash: the keys are the
/// clients', and a restart must not be theirs to slow down.
enum Last {
    Put(Record),
    Delete(Box<str>),
}

impl Last {
    fn key(&self) -> &[u8] {
        match self {
            Last::Put(r) => r.key_bytes(),
            Last::Delete(k) => k.as_bytes(),
        }
    }
}

impl PartialEq for Last {
    fn eq(&self, other: &Last) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Last {}

impl Hash for Last {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl Replay {
    fn apply(&mut self, name: &str, group: Vec<Entry>) -> Result<(), String> {
        for entry in group {
            if self.deleted {
                return Err("records after the project's deletion".into());
            }
            match entry {
                Entry::Keys { version, ops } => {
                    for op in ops {
                        self.keys.replace(match op {
                            Op::Put(r) => Last::Put(r),
                            Op::Delete(key) => Last::Delete(key),
                        });
                    }
                    self.version = self.version.max(version);
                }
                Entry::Meta(json) => {
                    let h: Header = serde_json::from_slice(&json)
                        .map_err(|e| format!("a settings record that does not parse: {e}"))?;
                    if h.name != name {
                        return Err(format!("a settings record names project {:?}", h.name));
                    }
                    self.version = self.version.max(h.version);
                    self.meta = Some(h);
                }
                Entry::Deleted => self.deleted = true,
            }
        }
        Ok(())
    }

    /// The mode the journal left the project in (None: the snapshot's).
    fn persistence(&self) -> Option<Persistence> {
        self.meta.as_ref().map(|h| h.persistence)
    }

    /// The project: the snapshot's keys with the journal's last states merged in, both in key
    /// order, in one pass.
    fn build(self, snap: Snapshot) -> Project {
        let mut changed: Vec<Last> = self.keys.into_iter().collect();
        changed.sort_unstable_by(|a, b| a.key().cmp(b.key()));
        let mut merged = Vec::with_capacity(snap.records.len() + changed.len());
        let mut old = snap.records.into_iter().peekable();
        for last in changed {
            while let Some(r) = old.next_if(|r| r.key_bytes() < last.key()) {
                merged.push(r);
            }
            // The journal's state replaces the snapshot's.
            old.next_if(|r| r.key_bytes() == last.key());
            if let Last::Put(r) = last {
                merged.push(r);
            }
        }
        merged.extend(old);
        let h = self.meta.unwrap_or(snap.header);
        let version = h.version.max(self.version);
        Project::restore(h.persistence, h.source, h.tokens, version, merged).with_quota(h.quota)
    }
}

/// Replay one segment into `replay`. Returns the scan (how it ended) or the damage, named.
fn replay(replay: &mut Replay, name: &str, path: &Path) -> Result<journal::Scan, String> {
    let scan = journal::scan(path, |group| replay.apply(name, group))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let End::Corrupt { offset, why } = &scan.end {
        return Err(format!(
            "{}: byte {offset}: {why}; the journal is damaged after its last good record. \
             `pykv repair --data-dir {} --project {name}` cuts it there (keeping a copy)",
            path.display(),
            path.parent().unwrap_or(Path::new(".")).display()
        ));
    }
    Ok(scan)
}

/// Read one project: its snapshot, then every live segment in order.
fn read_project(name: &str, found: Found) -> Result<Read, String> {
    let mut fixes = Vec::new();
    if let Some(path) = found.tmp {
        fixes.push(Fix::Remove {
            path,
            why: "a snapshot write that never finished",
        });
    }
    let Some(snapshot_file) = found.snapshot else {
        return read_orphans(name, found.segments, fixes);
    };
    let snap = snapshot::load(&snapshot_file)?;
    let first = snap.journal();
    let mut live = Vec::new();
    for (seq, path) in found.segments {
        if seq < first {
            fixes.push(Fix::Remove {
                path,
                why: "a journal segment already folded into the snapshot",
            });
        } else {
            live.push((seq, path));
        }
    }
    for (i, (seq, path)) in live.iter().enumerate() {
        let expected = first + i as u64;
        if *seq != expected {
            return Err(format!(
                "{}: journal segment {} is missing before it (the snapshot {} names segment {})",
                path.display(),
                journal_path(Path::new(""), name, expected).display(),
                snapshot_file.display(),
                first
            ));
        }
    }
    let mut replayed = Replay::default();
    let mut segments = Vec::new();
    let mut records = 0;
    let mut journal_bytes = 0;
    let mut torn = None;
    let last = live.len().saturating_sub(1);
    for (i, (seq, path)) in live.iter().enumerate() {
        let scan = replay(&mut replayed, name, path)?;
        if let End::Torn { offset, why } = &scan.end {
            if i != last {
                return Err(format!(
                    "{}: byte {offset}: {why}, but a later segment exists; the journal is damaged",
                    path.display()
                ));
            }
            let note = format!(
                "{}: cut off a torn record at byte {offset} ({why}); it was never acknowledged",
                path.display()
            );
            torn = Some(note.clone());
            fixes.push(Fix::Cut {
                path: path.clone(),
                len: scan.good_len,
                why: note,
            });
        }
        records += scan.records;
        journal_bytes += scan.good_len;
        segments.push((*seq, scan.good_len));
    }
    let snapshot_bytes = snap.bytes;
    let deleted = replayed.deleted;
    let project = replayed.build(snap);
    let gone = deleted
        || (project.persistence() == Persistence::Memory && project.source() == Source::Api);
    if gone {
        fixes.retain(|f| !matches!(f, Fix::Cut { .. }));
        let files = std::iter::once(snapshot_file).chain(live.into_iter().map(|(_, p)| p));
        remove_all(
            &mut fixes,
            files,
            "a project deleted (or switched to memory) before the restart",
        );
    }
    Ok(Read {
        name: name.to_string(),
        loaded: (!gone).then(|| Loaded {
            name: name.to_string(),
            project,
            files: OnDisk {
                first,
                segments,
                snapshot_bytes,
            },
        }),
        fixes,
        records,
        journal_bytes,
        torn,
    })
}

/// Segments without a snapshot: what a deletion (or a switch to memory) leaves when a crash
/// stops it after removing the snapshot. Anything else is refused: pykv will not guess.
fn read_orphans(
    name: &str,
    segments: Vec<(u64, PathBuf)>,
    mut fixes: Vec<Fix>,
) -> Result<Read, String> {
    let mut replayed = Replay::default();
    let mut any = false;
    for (_, path) in &segments {
        let scan = replay(&mut replayed, name, path)?;
        any |= scan.records > 0;
    }
    let leftover = replayed.deleted || replayed.persistence() == Some(Persistence::Memory) || !any;
    if let (false, Some((_, path))) = (leftover, segments.first()) {
        return Err(format!(
            "{}: a journal without its snapshot {}; restore the snapshot or move the journal away",
            path.display(),
            snapshot_path(path.parent().unwrap_or(Path::new(".")), name).display()
        ));
    }
    remove_all(
        &mut fixes,
        segments.into_iter().map(|(_, p)| p),
        "a journal left by a deleted project",
    );
    Ok(Read {
        name: name.to_string(),
        loaded: None,
        fixes,
        records: 0,
        journal_bytes: 0,
        torn: None,
    })
}

fn remove_all(fixes: &mut Vec<Fix>, paths: impl IntoIterator<Item = PathBuf>, why: &'static str) {
    fixes.extend(paths.into_iter().map(|path| Fix::Remove { path, why }));
}

fn read_all(dir: &Path) -> Result<Vec<Read>, String> {
    survey(dir)?
        .into_iter()
        .map(|(name, found)| read_project(&name, found))
        .collect()
}

/// Start-up: load every project of `dir`, then fix what a crash left. Returns the projects and
/// one log line per fix.
pub fn load_dir(dir: &Path) -> Result<(Vec<Loaded>, Vec<String>), String> {
    let reads = read_all(dir)?;
    let mut notes = Vec::new();
    let mut loaded = Vec::new();
    for r in reads {
        for fix in r.fixes {
            match fix {
                Fix::Cut { path, len, why } => {
                    fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(len).and_then(|()| f.sync_all()))
                        .map_err(|e| format!("cannot cut {}: {e}", path.display()))?;
                    notes.push(why);
                }
                Fix::Remove { path, why } => {
                    fs::remove_file(&path)
                        .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
                    notes.push(format!("removed {} ({why})", path.display()));
                }
            }
        }
        loaded.extend(r.loaded);
    }
    Ok((loaded, notes))
}

/// Every project in `dir` (or only `project`) as the server would load it, without changing
/// any file: for offline readers (`pykv export`, `pykv migrate`). Sorted by name.
pub fn read_dir(dir: &Path, project: Option<&str>) -> Result<Vec<Loaded>, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let Some(p) = project else {
        return Ok(read_all(dir)?
            .into_iter()
            .filter_map(|r| r.loaded)
            .collect());
    };
    store::validate_project_name(p).map_err(|e| format!("--project {p:?}: {e}"))?;
    let path = snapshot_path(dir, p);
    let found = survey(dir)?.remove(p).filter(|f| f.snapshot.is_some());
    let Some(found) = found else {
        return Err(format!("{} does not exist", path.display()));
    };
    let read = read_project(p, found)?;
    read.loaded
        .map(|l| vec![l])
        .ok_or_else(|| format!("{}: project {p} was deleted", path.display()))
}

/// `pykv export --data-dir DIR [--project P]`: every key of one project (or of all, each line
/// then naming its project) as JSON lines, the format `POST /v1/projects/{p}/import` reads.
pub fn export_dir(dir: &Path, project: Option<&str>, out: &mut impl Write) -> Result<(), String> {
    let fail = |e: io::Error| format!("cannot write the export: {e}");
    for l in read_dir(dir, project)? {
        for (key, value) in l.project.entries() {
            let mut line = Vec::new();
            write_entry(&mut line, key, value).map_err(fail)?;
            if project.is_none() {
                out.write_all(b"{\"project\":").map_err(fail)?;
                serde_json::to_writer(&mut *out, &l.name).map_err(|e| fail(e.into()))?;
                out.write_all(b",").map_err(fail)?;
                out.write_all(&line[1..]).map_err(fail)?;
            } else {
                out.write_all(&line).map_err(fail)?;
            }
            out.write_all(b"\n").map_err(fail)?;
        }
    }
    out.flush().map_err(fail)
}

/// `pykv --check-data DIR`: load every project without starting or changing anything, one line
/// per project; an error names the first damaged file.
pub fn check_dir(dir: &Path) -> Result<Vec<String>, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let mut out = Vec::new();
    for r in read_all(dir)? {
        let Some(l) = &r.loaded else {
            out.push(format!(
                "{}: files of a deleted project (removed at the next start)",
                r.name
            ));
            continue;
        };
        let mut line = format!(
            "{}: keys={} bytes={} format={FORMAT_VERSION} journal={} records ({} B)",
            r.name,
            l.project.key_count(),
            l.project.bytes(),
            r.records,
            r.journal_bytes
        );
        if let Some(torn) = &r.torn {
            line.push_str(&format!("; torn tail, cut at the next start: {torn}"));
        }
        out.push(line);
    }
    Ok(out)
}

/// `pykv repair --data-dir DIR [--project P]`: cut each damaged journal at its last good record,
/// keeping a copy of everything cut (`<file>.damaged-<unix time>`), and say how many records
/// that dropped. Later segments go too: their changes came after what was lost.
pub fn repair(dir: &Path, project: Option<&str>) -> Result<Vec<String>, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let mut found = survey(dir)?;
    if let Some(p) = project {
        store::validate_project_name(p).map_err(|e| format!("--project {p:?}: {e}"))?;
        found.retain(|name, _| name == p);
        if found.is_empty() {
            return Err(format!("no files of project {p} in {}", dir.display()));
        }
    }
    let stamp = crate::log::unix_now().0;
    let mut out = Vec::new();
    for (name, f) in found {
        let first = match &f.snapshot {
            Some(path) => snapshot::load(path)?.journal(),
            None => 0,
        };
        let mut report = None;
        for (seq, path) in f.segments.iter().filter(|(s, _)| *s >= first) {
            if report.is_some() {
                let records = count_records(path, 0)?;
                let copy = keep_copy(path, stamp)?;
                fs::remove_file(path)
                    .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
                out.push(format!(
                    "{name}: removed {} ({records} records after the damage); copy kept as {}",
                    path.display(),
                    copy.display()
                ));
                continue;
            }
            let scan =
                journal::scan(path, |_| Ok(())).map_err(|e| format!("{}: {e}", path.display()))?;
            let (offset, why) = match scan.end {
                End::Clean => continue,
                End::Torn { offset, why } | End::Corrupt { offset, why } => (offset, why),
            };
            let dropped = count_records(path, offset)?;
            let copy = keep_copy(path, stamp)?;
            fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|file| file.set_len(offset).and_then(|()| file.sync_all()))
                .map_err(|e| format!("cannot cut {}: {e}", path.display()))?;
            out.push(format!(
                "{name}: cut {} at byte {offset} ({why}): dropped {dropped} records; copy kept as {}",
                path.display(),
                copy.display()
            ));
            report = Some(*seq);
        }
        if report.is_none() {
            out.push(format!("{name}: journal intact, nothing to repair"));
        }
    }
    Ok(out)
}

fn keep_copy(path: &Path, stamp: u64) -> Result<PathBuf, String> {
    let mut copy = path.as_os_str().to_owned();
    copy.push(format!(".damaged-{stamp}"));
    let copy = PathBuf::from(copy);
    fs::copy(path, &copy)
        .map_err(|e| format!("cannot copy {} to {}: {e}", path.display(), copy.display()))?;
    Ok(copy)
}

/// Records from `offset` to the end of a journal, the damaged one included: each position where
/// a well-framed record with a good checksum starts counts, so records after the damage are
/// found even when a length in between is garbage.
fn count_records(path: &Path, offset: u64) -> Result<u64, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let mut pos = start;
    let mut count = 0;
    // Each stretch of bytes that frames no record is one damaged (or torn) record.
    let mut in_damage = false;
    while pos < bytes.len() {
        match framed_at(&bytes, pos) {
            Some(len) => {
                count += 1;
                pos += len;
                in_damage = false;
            }
            None => {
                count += u64::from(!in_damage);
                in_damage = true;
                pos += 1;
            }
        }
    }
    Ok(count)
}

/// The length of a well-framed record with a good checksum starting at `pos`.
fn framed_at(bytes: &[u8], pos: usize) -> Option<usize> {
    let head = bytes.get(pos..pos + journal::HEADER)?;
    let word = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4 bytes"));
    let len = word(0) as usize;
    if word(4) != !word(0) {
        return None;
    }
    let payload = bytes.get(pos + journal::HEADER..pos + journal::HEADER + len)?;
    (journal::crc32c(payload) == word(8)).then_some(journal::HEADER + len)
}
