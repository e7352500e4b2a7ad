//! Projects and their keys, in memory, behind a small method API.
//! No I/O and no HTTP: persistence reads this through `Project`'s getters, and sync-mode changes
//! keep an undo log here until the server says their snapshot is durable (`commit`) or failed
//! (`rollback`).

mod record;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

pub use record::{
    Record, ValueRef, DEFAULT_CONTENT_TYPE, MAX_CONTENT_TYPE, MAX_EXPIRES_AT, MAX_KEY,
};

use crate::auth::{self, Access, Source, Token};

/// When a project's changes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// Answered only once a snapshot holding the change is durable.
    Sync,
    /// Answered at once; the project is snapshotted on the next timer tick.
    Interval,
    /// Never written.
    Memory,
}

impl Persistence {
    pub fn as_str(self) -> &'static str {
        match self {
            Persistence::Sync => "sync",
            Persistence::Interval => "interval",
            Persistence::Memory => "memory",
        }
    }
}

/// A value on its way in (from a request body, a batch, an import or a snapshot line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub data: Box<[u8]>,
    pub content_type: Option<Box<str>>,
    pub version: u64,
    /// Unix seconds after which the key counts as absent.
    pub expires_at: Option<u64>,
}

impl Value {
    pub fn as_ref(&self) -> ValueRef<'_> {
        ValueRef {
            data: &self.data,
            content_type: self.content_type.as_deref(),
            version: self.version,
            expires_at: self.expires_at,
        }
    }
}

/// A project: its settings, tokens and keys. Keys sit in a sorted set of records so listings
/// come out in byte order in O(log n + page) instead of sorting the whole project per request.
#[derive(Debug)]
pub struct Project {
    persistence: Persistence,
    quota: Quota,
    source: Source,
    tokens: Vec<Token>,
    keys: BTreeSet<Record>,
    /// The last version handed out; every key mutation takes the next one.
    version: u64,
    /// Sum of key and value lengths.
    bytes: u64,
    /// Changed since its last successful snapshot.
    dirty: bool,
    /// Recent removals (version, key), so a prefix watch can tell a deletion happened.
    deletions: VecDeque<(u64, Box<str>)>,
    /// The newest version dropped from `deletions` (0: none dropped yet).
    deletions_forgotten_upto: u64,
}

/// How many recent deletions a project remembers for prefix watches.
const DELETIONS_KEPT: usize = 256;

impl Project {
    pub fn new(persistence: Persistence, source: Source, tokens: Vec<Token>) -> Project {
        Project {
            persistence,
            quota: Quota::default(),
            source,
            tokens,
            keys: BTreeSet::new(),
            version: 0,
            bytes: 0,
            dirty: false,
            deletions: VecDeque::new(),
            deletions_forgotten_upto: 0,
        }
    }

    /// Rebuild a project from a snapshot's parts (used by persistence when loading). `records`
    /// hold distinct keys; sorted, they are packed into full tree nodes.
    pub fn restore(
        persistence: Persistence,
        source: Source,
        tokens: Vec<Token>,
        version: u64,
        records: Vec<Record>,
    ) -> Project {
        let bytes = records.iter().map(|r| r.size() as u64).sum();
        let top = records.iter().map(Record::version).max().unwrap_or(0);
        let keys: BTreeSet<Record> = records.into_iter().collect();
        Project {
            persistence,
            quota: Quota::default(),
            source,
            tokens,
            keys,
            version: version.max(top),
            bytes,
            dirty: false,
            deletions: VecDeque::new(),
            // Deletions before the restart are unknown: prefix watches on older versions wake.
            deletions_forgotten_upto: version.max(top),
        }
    }

    pub fn persistence(&self) -> Persistence {
        self.persistence
    }
    pub fn quota(&self) -> Quota {
        self.quota
    }
    /// Set the quota of a project being loaded or declared (no undo).
    pub fn with_quota(mut self, quota: Quota) -> Project {
        self.quota = quota;
        self
    }
    pub fn source(&self) -> Source {
        self.source
    }
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }
    pub fn version(&self) -> u64 {
        self.version
    }
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    /// Every key in byte order, for snapshots.
    pub fn entries(&self) -> impl Iterator<Item = (&str, ValueRef<'_>)> {
        self.keys.iter().map(|r| (r.key(), r.value()))
    }
    /// A project loaded from its file that config.json no longer declares: it and its tokens
    /// now belong to the API (and can be deleted or revoked there).
    pub fn release_from_config(&mut self) {
        self.source = Source::Api;
        for t in &mut self.tokens {
            t.source = Source::Api;
        }
    }

    /// Take config.json's settings and tokens for a project whose keys came from its file.
    pub fn adopt_config(&mut self, persistence: Persistence, quota: Quota, tokens: Vec<Token>) {
        self.persistence = persistence;
        self.quota = quota;
        self.source = Source::Config;
        self.tokens = tokens;
    }

    fn note_deletion(&mut self, version: u64, key: &str) {
        if self.deletions.len() == DELETIONS_KEPT {
            if let Some((v, _)) = self.deletions.pop_front() {
                self.deletions_forgotten_upto = v;
            }
        }
        self.deletions.push_back((version, key.into()));
    }

    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }
}

/// Per-project limits on keys and bytes (None: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Quota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_keys: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

/// Which limit a write ran into, named as the user sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaHit {
    pub name: &'static str,
    pub limit: u64,
}

/// What a key mutation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub created: bool,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    ProjectNotFound,
    ProjectExists,
    KeyNotFound,
    TokenNotFound,
    /// A write would pass a key or byte quota.
    Quota(QuotaHit),
    /// `incr` on a value that is not a 64-bit integer.
    NotAnInteger,
    /// `incr` past the range of a 64-bit integer.
    Overflow,
}

/// How to take back one change whose snapshot failed.
#[derive(Debug)]
enum Undo {
    Key {
        key: Box<str>,
        old: Option<Record>,
    },
    Meta {
        persistence: Persistence,
        quota: Quota,
        tokens: Vec<Token>,
    },
    Created,
    Deleted(Box<Project>),
}

/// All projects, plus the undo logs of changes whose snapshot is not yet durable.
#[derive(Debug, Default)]
pub struct Store {
    projects: HashMap<String, Project, BuildHasherDefault<Fnv>>,
    pending: HashMap<String, Vec<Undo>>,
    /// The project whose undo log grew last, so the server knows which snapshot an answer
    /// must wait for.
    last_recorded: Option<String>,
    max_keys: Option<usize>,
    /// Unix seconds, set by the server each loop turn: a key whose `expires_at` is not after
    /// this is absent.
    clock: u64,
    /// (expires_at, project, key) for every key with an expiry, so the sweep finds due keys
    /// without scanning.
    expiry: BTreeSet<(u64, String, Box<str>)>,
    /// Keys changed since the server last asked (see `take_changes`), noted only while
    /// `tracking` (someone watches): most writes have no one to tell.
    changed: Vec<(String, Box<str>)>,
    tracking: bool,
}

/// A Content-Type worth storing: printable ASCII, at most `MAX_CONTENT_TYPE` bytes.
pub fn validate_content_type(ct: &str) -> Result<(), String> {
    if ct.len() > MAX_CONTENT_TYPE || !ct.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(format!(
            "a Content-Type is printable ASCII of at most {MAX_CONTENT_TYPE} bytes"
        ));
    }
    Ok(())
}

/// FNV-1a for the project map, looked up several times per request. Project names are short
/// and only the admin adds them, so SipHash's protection against chosen keys buys nothing here.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Names become file names: lower-case letters, digits, `_` and `-`, at most 64, no leading
/// punctuation (so no `.`/`..`, no hidden files, nothing a shell or a URL would mangle).
///
/// ```
/// use pykv::store::validate_project_name;
/// assert!(validate_project_name("home-sensors").is_ok());
/// assert!(validate_project_name("../etc").is_err());
/// ```
pub fn validate_project_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err("a project name is 1 to 64 of a-z 0-9 _ -, starting with a letter or digit".into())
    }
}

impl Store {
    pub fn new(max_keys: Option<usize>) -> Store {
        Store {
            max_keys,
            ..Store::default()
        }
    }

    pub fn project(&self, name: &str) -> Option<&Project> {
        self.projects.get(name)
    }

    /// Every project, sorted by name.
    pub fn projects(&self) -> Vec<(&str, &Project)> {
        let mut v: Vec<_> = self.projects.iter().map(|(k, p)| (k.as_str(), p)).collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// Add a project as loaded or declared at start-up (no undo: nothing to save yet).
    pub fn insert_loaded(&mut self, name: String, project: Project) {
        for r in &project.keys {
            if let Some(t) = r.expires_at() {
                self.expiry.insert((t, name.clone(), r.key().into()));
            }
        }
        self.projects.insert(name, project);
    }

    pub fn project_mut_for_startup(&mut self, name: &str) -> Option<&mut Project> {
        self.projects.get_mut(name)
    }

    // ---- durability bookkeeping ----

    /// True while `name` has changes waiting for their snapshot.
    pub fn is_pending(&self, name: &str) -> bool {
        self.pending.contains_key(name)
    }

    pub fn any_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn pending_projects(&self) -> Vec<String> {
        self.pending.keys().cloned().collect()
    }

    /// The snapshot holding `name`'s pending changes is durable: forget how to undo them.
    pub fn commit(&mut self, name: &str) {
        for u in self.pending.remove(name).unwrap_or_default() {
            if let Undo::Key { key, .. } = u {
                if self.tracking {
                    self.changed.push((name.to_string(), key));
                }
            }
        }
        self.mark_clean(name);
    }

    /// The snapshot failed: undo `name`'s pending changes, newest first.
    pub fn rollback(&mut self, name: &str) {
        let Some(undo) = self.pending.remove(name) else {
            return;
        };
        for u in undo.into_iter().rev() {
            match u {
                Undo::Created => {
                    self.projects.remove(name);
                }
                Undo::Deleted(p) => {
                    self.projects.insert(name.to_string(), *p);
                }
                Undo::Meta {
                    persistence,
                    quota,
                    tokens,
                } => {
                    if let Some(p) = self.projects.get_mut(name) {
                        p.persistence = persistence;
                        p.quota = quota;
                        p.tokens = tokens;
                    }
                }
                Undo::Key { key, old } => {
                    self.swap(name, &key, old);
                }
            }
        }
    }

    /// Projects changed since their last snapshot that no sync write is about to save:
    /// `interval` projects, and `sync` projects whose keys expired.
    pub fn unsaved_projects(&self) -> Vec<String> {
        self.projects
            .iter()
            .filter(|(n, p)| {
                p.dirty && p.persistence != Persistence::Memory && !self.pending.contains_key(*n)
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub fn mark_clean(&mut self, name: &str) {
        if let Some(p) = self.projects.get_mut(name) {
            p.dirty = false;
        }
    }

    fn record(&mut self, name: &str, undo: Undo) {
        self.pending.entry(name.to_string()).or_default().push(undo);
        self.last_recorded = Some(name.to_string());
    }

    /// The project the last change was recorded for, if any since the previous call.
    pub fn take_last_recorded(&mut self) -> Option<String> {
        self.last_recorded.take()
    }

    /// A key change: sync projects keep an undo entry, interval projects become dirty.
    fn record_key(&mut self, name: &str, key: &str, old: Option<Record>) {
        let Some(p) = self.projects.get_mut(name) else {
            return;
        };
        p.dirty = true;
        if p.persistence == Persistence::Sync {
            self.record(
                name,
                Undo::Key {
                    key: key.into(),
                    old,
                },
            );
        } else if self.tracking {
            self.changed.push((name.to_string(), key.into()));
        }
    }

    /// A settings or token change: saved at once in any mode but memory.
    fn record_meta(&mut self, name: &str, before: Undo, was: Persistence) {
        let Some(p) = self.projects.get_mut(name) else {
            return;
        };
        if was == Persistence::Memory && p.persistence == Persistence::Memory {
            return;
        }
        p.dirty = true;
        self.record(name, before);
    }

    // ---- projects ----

    pub fn create_project(
        &mut self,
        name: &str,
        persistence: Persistence,
        tokens: Vec<Token>,
    ) -> Result<(), StoreError> {
        if self.projects.contains_key(name) {
            return Err(StoreError::ProjectExists);
        }
        let mut p = Project::new(persistence, Source::Api, tokens);
        p.dirty = persistence != Persistence::Memory;
        self.projects.insert(name.to_string(), p);
        if persistence != Persistence::Memory {
            self.record(name, Undo::Created);
        }
        Ok(())
    }

    pub fn delete_project(&mut self, name: &str) -> Result<(), StoreError> {
        let p = self
            .projects
            .remove(name)
            .ok_or(StoreError::ProjectNotFound)?;
        if p.persistence != Persistence::Memory {
            self.record(name, Undo::Deleted(Box::new(p)));
        }
        Ok(())
    }

    /// Change a project's settings or tokens through `f`, keeping how to undo it.
    fn change_meta<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Project) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let p = self
            .projects
            .get_mut(name)
            .ok_or(StoreError::ProjectNotFound)?;
        let before = Undo::Meta {
            persistence: p.persistence,
            quota: p.quota,
            tokens: p.tokens.clone(),
        };
        let was = p.persistence;
        let out = f(p)?;
        self.record_meta(name, before, was);
        Ok(out)
    }

    pub fn set_persistence(&mut self, name: &str, mode: Persistence) -> Result<(), StoreError> {
        self.change_meta(name, |p| {
            p.persistence = mode;
            Ok(())
        })
    }

    pub fn set_quota(&mut self, name: &str, quota: Quota) -> Result<(), StoreError> {
        self.change_meta(name, |p| {
            p.quota = quota;
            Ok(())
        })
    }

    pub fn add_token(&mut self, name: &str, token: Token) -> Result<(), StoreError> {
        self.change_meta(name, |p| {
            p.tokens.push(token);
            Ok(())
        })
    }

    /// Remove an API token; config tokens are the caller's to refuse before calling this.
    pub fn revoke_token(&mut self, name: &str, id: &str) -> Result<Token, StoreError> {
        self.change_meta(name, |p| {
            let i = p
                .tokens
                .iter()
                .position(|t| t.id == id)
                .ok_or(StoreError::TokenNotFound)?;
            Ok(p.tokens.remove(i))
        })
    }

    // ---- tokens ----

    /// The access (and any key prefix) a token has on `project`, compared in constant time
    /// against each of its tokens.
    pub fn token_access(&self, project: &str, presented: &str) -> Option<(Access, Option<String>)> {
        let p = self.projects.get(project)?;
        auth::find_token(&p.tokens, presented).map(|t| (t.access, t.prefix.clone()))
    }

    /// Whether `presented` is any project's token (to tell 403 from 401 off the hot path).
    pub fn is_known_token(&self, presented: &str) -> bool {
        let mut known = false;
        for p in self.projects.values() {
            known |= auth::find_token(&p.tokens, presented).is_some();
        }
        known
    }

    // ---- keys ----

    /// Replace `key` with `new` (None removes it), keeping the byte count and the expiry index
    /// in step. Every change to a key goes through here. Returns the previous record.
    fn swap(&mut self, project: &str, key: &str, new: Option<Record>) -> Option<Record> {
        let p = self.projects.get_mut(project)?;
        if let Some(r) = &new {
            p.bytes += r.size() as u64;
            if let Some(t) = r.expires_at() {
                self.expiry.insert((t, project.to_string(), key.into()));
            }
        }
        let old = match new {
            Some(r) => p.keys.replace(r),
            None => p.keys.take(key.as_bytes()),
        };
        if let Some(o) = &old {
            p.bytes -= o.size() as u64;
            if let Some(t) = o.expires_at() {
                self.expiry.remove(&(t, project.to_string(), key.into()));
            }
        }
        old
    }

    fn live(&self, expires_at: Option<u64>) -> bool {
        expires_at.is_none_or(|t| t > self.clock)
    }

    /// The key's value, unless absent or expired.
    pub fn get(&self, project: &str, key: &str) -> Result<ValueRef<'_>, StoreError> {
        let p = self
            .projects
            .get(project)
            .ok_or(StoreError::ProjectNotFound)?;
        p.keys
            .get(key.as_bytes())
            .filter(|r| self.live(r.expires_at()))
            .map(Record::value)
            .ok_or(StoreError::KeyNotFound)
    }

    /// The key's version, 0 when absent or expired.
    pub fn current_version(&self, project: &str, key: &str) -> u64 {
        self.get(project, key).map_or(0, |v| v.version)
    }

    /// Would writing `new_len` value bytes to `key` pass a limit? Expired keys still count
    /// until the sweep removes them (a turn at most).
    fn check_quota(&self, project: &str, key: &str, new_len: usize) -> Result<(), StoreError> {
        let Some(p) = self.projects.get(project) else {
            return Ok(());
        };
        let old = p.keys.get(key.as_bytes());
        let hit = |name, limit| Err(StoreError::Quota(QuotaHit { name, limit }));
        if old.is_none() {
            let count = p.keys.len() as u64;
            if let Some(max) = self.max_keys.map(|m| m as u64) {
                if count >= max {
                    return hit("limits.max_keys_per_project", max);
                }
            }
            if let Some(max) = p.quota.max_keys {
                if count >= max {
                    return hit("max_keys", max);
                }
            }
        }
        if let Some(max) = p.quota.max_bytes {
            let freed = old.map_or(0, |r| r.size() as u64);
            let after = p.bytes - freed + (key.len() + new_len) as u64;
            // A write that does not grow the project passes even above a lowered quota.
            if after > max && after > p.bytes {
                return hit("max_bytes", max);
            }
        }
        Ok(())
    }

    /// Set a key. `expires_at` None clears any expiry.
    pub fn put(
        &mut self,
        project: &str,
        key: &str,
        data: &[u8],
        content_type: Option<&str>,
        expires_at: Option<u64>,
    ) -> Result<Written, StoreError> {
        self.check_quota(project, key, data.len())?;
        let p = self
            .projects
            .get_mut(project)
            .ok_or(StoreError::ProjectNotFound)?;
        let version = p.next_version();
        let record = Record::new(
            key,
            ValueRef {
                data,
                content_type,
                version,
                expires_at,
            },
        );
        let old = self.swap(project, key, Some(record));
        let created = old.as_ref().is_none_or(|o| !self.live(o.expires_at()));
        self.record_key(project, key, old);
        Ok(Written { created, version })
    }

    pub fn delete(&mut self, project: &str, key: &str) -> Result<u64, StoreError> {
        self.get(project, key)?;
        let old = self.swap(project, key, None);
        let p = self.projects.get_mut(project).expect("checked by get");
        let version = p.next_version();
        p.note_deletion(version, key);
        self.record_key(project, key, old);
        Ok(version)
    }

    /// Add `delta` to a counter: a missing key counts as 0; the expiry and Content-Type stay.
    pub fn incr(
        &mut self,
        project: &str,
        key: &str,
        delta: i64,
    ) -> Result<(i64, Written), StoreError> {
        let (current, content_type, expires_at) = match self.get(project, key) {
            Ok(v) => {
                let text = std::str::from_utf8(v.data).map_err(|_| StoreError::NotAnInteger)?;
                let n: i64 = text.trim().parse().map_err(|_| StoreError::NotAnInteger)?;
                (n, v.content_type.map(str::to_string), v.expires_at)
            }
            Err(StoreError::KeyNotFound) => (0, Some("text/plain".to_string()), None),
            Err(e) => return Err(e),
        };
        let next = current.checked_add(delta).ok_or(StoreError::Overflow)?;
        let written = self.put(
            project,
            key,
            next.to_string().as_bytes(),
            content_type.as_deref(),
            expires_at,
        )?;
        Ok((next, written))
    }

    /// Apply `ops` all or nothing, as one change with one version. On failure nothing changed
    /// and the error names the op's index.
    pub fn batch(
        &mut self,
        project: &str,
        ops: Vec<BatchOp>,
    ) -> Result<(u64, Vec<BatchDone>), (usize, BatchFail)> {
        let Some(p) = self.projects.get(project) else {
            return Err((0, BatchFail::ProjectNotFound));
        };
        let version = p.version + 1;
        let mut undo: Vec<(Box<str>, Option<Record>)> = Vec::new();
        let mut done = Vec::with_capacity(ops.len());
        for (i, op) in ops.into_iter().enumerate() {
            match self.batch_op(project, op, version, &mut undo) {
                Ok(d) => done.push(d),
                Err(fail) => {
                    for (key, old) in undo.into_iter().rev() {
                        self.swap(project, &key, old);
                    }
                    return Err((i, fail));
                }
            }
        }
        if undo.is_empty() {
            // Only checks: nothing changed, no version is used.
            return Ok((self.projects[project].version, done));
        }
        let p = self.projects.get_mut(project).expect("checked above");
        p.version = version;
        for (key, _) in &undo {
            if !p.keys.contains(key.as_bytes()) {
                p.note_deletion(version, key);
            }
        }
        for (key, old) in undo {
            self.record_key(project, &key, old);
        }
        Ok((version, done))
    }

    fn batch_op(
        &mut self,
        project: &str,
        op: BatchOp,
        version: u64,
        undo: &mut Vec<(Box<str>, Option<Record>)>,
    ) -> Result<BatchDone, BatchFail> {
        let expect = |want: Option<u64>, actual: u64| match want {
            Some(w) if w != actual => Err(BatchFail::Version {
                expected: w,
                actual,
            }),
            _ => Ok(()),
        };
        match op {
            BatchOp::Check { key, version: want } => {
                let actual = self.current_version(project, &key);
                match want {
                    None if actual == 0 => Err(BatchFail::Missing),
                    _ => expect(want, actual).map(|()| BatchDone::Check { version: actual }),
                }
            }
            BatchOp::Delete { key, version: want } => {
                let actual = self.current_version(project, &key);
                expect(want, actual)?;
                if actual == 0 {
                    return Ok(BatchDone::Delete { deleted: false });
                }
                let old = self.swap(project, &key, None);
                undo.push((key.into_boxed_str(), old));
                Ok(BatchDone::Delete { deleted: true })
            }
            BatchOp::Put {
                key,
                data,
                content_type,
                expires_at,
                version: want,
            } => {
                let actual = self.current_version(project, &key);
                expect(want, actual)?;
                self.check_quota(project, &key, data.len())
                    .map_err(|e| match e {
                        StoreError::Quota(hit) => BatchFail::Quota(hit),
                        _ => BatchFail::ProjectNotFound,
                    })?;
                let record = Record::new(
                    &key,
                    ValueRef {
                        data: &data,
                        content_type: content_type.as_deref(),
                        version,
                        expires_at,
                    },
                );
                let old = self.swap(project, &key, Some(record));
                undo.push((key.into_boxed_str(), old));
                Ok(BatchDone::Put {
                    created: actual == 0,
                    version,
                })
            }
        }
    }

    /// Load `entries` (later duplicates win) as one change with one version: `replace` first
    /// removes every key not among them. All or nothing: a quota refuses the whole import.
    /// Returns the version used and how many keys `replace` removed.
    pub fn import(
        &mut self,
        project: &str,
        entries: Vec<(String, Value)>,
        replace: bool,
    ) -> Result<(u64, usize), StoreError> {
        let p = self
            .projects
            .get(project)
            .ok_or(StoreError::ProjectNotFound)?;
        let incoming: BTreeMap<String, Value> = entries.into_iter().collect();
        let removing: Vec<Box<str>> = if replace {
            p.keys
                .iter()
                .map(Record::key)
                .filter(|k| !incoming.contains_key(*k))
                .map(Into::into)
                .collect()
        } else {
            Vec::new()
        };
        // The project as it would be afterwards, against its limits.
        let size = |k: &str, v: &Value| (k.len() + v.data.len()) as u64;
        let (mut count, mut bytes) = if replace {
            (0u64, 0u64)
        } else {
            (p.keys.len() as u64, p.bytes)
        };
        for (k, v) in &incoming {
            match p.keys.get(k.as_bytes()) {
                Some(old) if !replace => bytes -= old.size() as u64,
                _ => count += 1,
            }
            bytes += size(k, v);
        }
        let hit = |name, limit| Err(StoreError::Quota(QuotaHit { name, limit }));
        let grows_keys = count > p.keys.len() as u64;
        if let Some(max) = self.max_keys.map(|m| m as u64) {
            if count > max && grows_keys {
                return hit("limits.max_keys_per_project", max);
            }
        }
        if let Some(max) = p.quota.max_keys {
            if count > max && grows_keys {
                return hit("max_keys", max);
            }
        }
        if let Some(max) = p.quota.max_bytes {
            if bytes > max && bytes > p.bytes {
                return hit("max_bytes", max);
            }
        }
        if incoming.is_empty() && removing.is_empty() {
            return Ok((p.version, 0));
        }
        let version = p.version + 1;
        let removed = removing.len();
        for key in removing {
            let old = self.swap(project, &key, None);
            if let Some(p) = self.projects.get_mut(project) {
                p.note_deletion(version, &key);
            }
            self.record_key(project, &key, old);
        }
        for (key, mut value) in incoming {
            value.version = version;
            let old = self.swap(project, &key, Some(Record::new(&key, value.as_ref())));
            self.record_key(project, &key, old);
        }
        if let Some(p) = self.projects.get_mut(project) {
            p.version = version;
        }
        Ok((version, removed))
    }

    /// Up to `limit` live keys starting with `prefix` and after `after`, in byte order, and the
    /// key to pass as `after` for the next page when more follow.
    pub fn list(
        &self,
        project: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<'_>, StoreError> {
        use std::ops::Bound;
        let p = self
            .projects
            .get(project)
            .ok_or(StoreError::ProjectNotFound)?;
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let mut page = Vec::with_capacity(limit.min(p.keys.len()));
        let start = match start {
            Bound::Excluded(a) => Bound::Excluded(a.as_bytes()),
            Bound::Included(a) => Bound::Included(a.as_bytes()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut iter = p
            .keys
            .range::<[u8], _>((start, Bound::Unbounded))
            .take_while(|r| r.key_bytes().starts_with(prefix.as_bytes()))
            .filter(|r| self.live(r.expires_at()))
            .map(|r| (r.key(), r.value()));
        for kv in iter.by_ref().take(limit) {
            page.push(kv);
        }
        let more = iter.next().is_some();
        let next = if more {
            page.last().map(|(k, _)| *k)
        } else {
            None
        };
        Ok((page, next))
    }

    /// Whether any key under `prefix` changed after project version `since` (a write by its
    /// live version, a removal by the project's recent-deletions log). When the log no longer
    /// reaches back to `since`, answers true: a watcher may wake early, never late.
    pub fn prefix_changed_since(&self, project: &str, prefix: &str, since: u64) -> bool {
        let Some(p) = self.projects.get(project) else {
            return true;
        };
        if p.version <= since {
            return false;
        }
        if p.deletions_forgotten_upto > since {
            return true;
        }
        let deleted = p
            .deletions
            .iter()
            .any(|(v, k)| *v > since && k.starts_with(prefix));
        deleted
            || p.keys
                .range::<[u8], _>((
                    std::ops::Bound::Included(prefix.as_bytes()),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|r| r.key_bytes().starts_with(prefix.as_bytes()))
                .any(|r| r.version() > since)
    }

    // ---- time ----

    /// Set the store's notion of now (Unix seconds); the server calls this every loop turn.
    pub fn set_clock(&mut self, now: u64) {
        self.clock = now;
    }

    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// The earliest expiry still in the index.
    pub fn next_expiry(&self) -> Option<u64> {
        self.expiry.first().map(|(t, _, _)| *t)
    }

    /// Remove up to `budget` keys whose time has come, oldest first (the index makes this cost
    /// what it removes, not the size of the store). Returns how many were removed.
    pub fn expire_due(&mut self, budget: usize) -> usize {
        let mut removed = 0;
        while removed < budget {
            let Some((t, project, key)) = self.expiry.first().cloned() else {
                break;
            };
            if t > self.clock {
                break;
            }
            self.swap(&project, &key, None);
            self.expiry.remove(&(t, project.clone(), key.clone()));
            if let Some(p) = self.projects.get_mut(&project) {
                let version = p.next_version();
                p.note_deletion(version, &key);
                p.dirty = true;
            }
            if self.tracking {
                self.changed.push((project, key));
            }
            removed += 1;
        }
        removed
    }

    /// Note changed keys for `take_changes` from now on (true) or not (false). A watch checks the
    /// store's state when it parks, so nothing before it needs noting.
    pub fn track_changes(&mut self, on: bool) {
        self.tracking = on;
    }

    /// Keys changed (durably, for sync projects) since the last call, for watchers.
    pub fn take_changes(&mut self) -> Vec<(String, Box<str>)> {
        std::mem::take(&mut self.changed)
    }
}

/// A listing page: (key, value) pairs in byte order, and the `after` of the next page.
pub type Page<'a> = (Vec<(&'a str, ValueRef<'a>)>, Option<&'a str>);

/// One operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// `version`: Some(0) = only if absent, Some(n) = only if at version n.
    Put {
        key: String,
        data: Vec<u8>,
        content_type: Option<String>,
        expires_at: Option<u64>,
        version: Option<u64>,
    },
    Delete {
        key: String,
        version: Option<u64>,
    },
    /// None: the key must exist; Some(0): it must not; Some(n): it must be at version n.
    Check {
        key: String,
        version: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchDone {
    Put { created: bool, version: u64 },
    Delete { deleted: bool },
    Check { version: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchFail {
    Version { expected: u64, actual: u64 },
    Missing,
    Quota(QuotaHit),
    ProjectNotFound,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(mode: Persistence) -> Store {
        let mut s = Store::new(None);
        s.create_project("p", mode, vec![]).unwrap();
        s.commit("p");
        s
    }

    #[test]
    fn listing_pages_in_byte_order_within_the_prefix() {
        let mut s = store_with(Persistence::Memory);
        for k in ["b/2", "a", "b/1", "b/3", "c"] {
            s.put("p", k, b"", None, None).unwrap();
        }
        let (keys, next) = s.list("p", "b/", None, 2).unwrap();
        let keys: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["b/1", "b/2"]);
        assert_eq!(next, Some("b/2"));
        let (keys, next) = s.list("p", "b/", Some("b/2"), 2).unwrap();
        let keys: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["b/3"]);
        assert_eq!(next, None);
    }

    #[test]
    fn rollback_restores_keys_bytes_and_tokens() {
        let mut s = store_with(Persistence::Sync);
        s.put("p", "k", b"old", None, None).unwrap();
        s.commit("p");
        s.put("p", "k", b"newer", None, None).unwrap();
        s.put("p", "x", b"1", None, None).unwrap();
        s.delete("p", "x").unwrap();
        s.rollback("p");
        assert_eq!(s.get("p", "k").unwrap().data, b"old");
        assert_eq!(s.get("p", "x"), Err(StoreError::KeyNotFound));
        assert_eq!(s.project("p").unwrap().bytes(), 4);
        assert!(!s.is_pending("p"));
    }

    #[test]
    fn rollback_of_a_created_project_removes_it_and_of_a_deleted_one_restores_it() {
        let mut s = Store::new(None);
        s.create_project("n", Persistence::Sync, vec![]).unwrap();
        s.rollback("n");
        assert!(s.project("n").is_none());
        let mut s = store_with(Persistence::Sync);
        s.delete_project("p").unwrap();
        s.rollback("p");
        assert!(s.project("p").is_some());
    }

    #[test]
    fn memory_and_interval_changes_leave_no_undo_log() {
        let mut s = store_with(Persistence::Interval);
        s.put("p", "k", b"v", None, None).unwrap();
        assert!(!s.is_pending("p"));
        assert_eq!(s.unsaved_projects(), ["p"]);
    }

    #[test]
    fn the_key_quota_counts_only_new_keys() {
        let mut s = Store::new(Some(1));
        s.create_project("p", Persistence::Memory, vec![]).unwrap();
        s.put("p", "a", b"", None, None).unwrap();
        s.put("p", "a", &[1], None, None).unwrap();
        assert_eq!(
            s.put("p", "b", b"", None, None),
            Err(StoreError::Quota(QuotaHit {
                name: "limits.max_keys_per_project",
                limit: 1
            }))
        );
    }

    #[test]
    fn project_names_are_strict() {
        for ok in ["a", "0", "a-b_c", &"x".repeat(64)] {
            assert!(validate_project_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "-a", "_a", "a.b", "../x", "a/b", &"x".repeat(65)] {
            assert!(validate_project_name(bad).is_err(), "{bad}");
        }
    }
}
