//! Projects and their keys, in memory, behind a small method API.
//! No I/O and no HTTP: persistence reads this through `Project`'s getters. Every call that changes
//! something returns a `Change` saying what it did and how to undo it; the store keeps none of
//! them (the commit does, until the change is durable).

mod change;
mod record;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

pub use change::Change;
use change::Undo;
pub use record::{
    Record, ValueRef, DEFAULT_CONTENT_TYPE, MAX_CONTENT_TYPE, MAX_EXPIRES_AT, MAX_KEY,
};

use crate::auth::{self, Access, Source, Token};

/// When a project's changes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// Answered only once the change is in the journal and fdatasynced.
    Sync,
    /// Answered once the change is in the journal (written, not yet synced); the journal is
    /// fdatasynced every `interval_ms`.
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
    /// Up to `n` records after `after` (from the first when None), in byte order: a snapshot
    /// written a slice at a time across loop turns.
    pub fn records_after(&self, after: Option<&str>, n: usize) -> impl Iterator<Item = &Record> {
        use std::ops::Bound;
        let start = match after {
            Some(a) => Bound::Excluded(a.as_bytes()),
            None => Bound::Unbounded,
        };
        self.keys
            .range::<[u8], _>((start, Bound::Unbounded))
            .take(n)
    }
    /// The record of `key`, expired or not (the journal writes what the store holds).
    pub fn record(&self, key: &str) -> Option<&Record> {
        self.keys.get(key.as_bytes())
    }

    // ---- replay: persistence rebuilding a project from its journal (never the live store) ----

    /// A journal's key record: the key now holds `record`.
    pub fn replay_put(&mut self, record: Record) {
        self.bytes += record.size() as u64;
        self.version = self.version.max(record.version());
        if let Some(old) = self.keys.replace(record) {
            self.bytes -= old.size() as u64;
        }
    }
    /// A journal's removal: the key is absent.
    pub fn replay_delete(&mut self, key: &str) {
        if let Some(old) = self.keys.take(key.as_bytes()) {
            self.bytes -= old.size() as u64;
        }
    }
    /// A journal's settings and tokens record.
    pub fn replay_meta(
        &mut self,
        persistence: Persistence,
        quota: Quota,
        source: Source,
        tokens: Vec<Token>,
    ) {
        self.persistence = persistence;
        self.quota = quota;
        self.source = source;
        self.tokens = tokens;
    }
    /// The project had handed out versions up to `version` (deletions leave no record).
    pub fn replay_version(&mut self, version: u64) {
        self.version = self.version.max(version);
        // Removals replayed are not in `deletions`: prefix watches on older versions wake.
        self.deletions_forgotten_upto = self.version;
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

/// All projects, and the index of keys with an expiry.
#[derive(Debug, Default)]
pub struct Store {
    projects: HashMap<String, Project, BuildHasherDefault<Fnv>>,
    max_keys: Option<usize>,
    /// Unix seconds, set by the server each loop turn: a key whose `expires_at` is not after
    /// this is absent.
    clock: u64,
    /// (expires_at, project, key) for every key with an expiry, so the sweep finds due keys
    /// without scanning.
    expiry: BTreeSet<(u64, String, Box<str>)>,
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

    // ---- undo ----

    /// Take back `change` (its write failed), newest step first. Changes to the same project
    /// must be undone newest first too: the commit undoes a whole group in reverse.
    pub fn undo(&mut self, change: Change) {
        let name = change.project;
        for step in change.steps.into_iter().rev() {
            match step {
                Undo::Created => {
                    if let Some(p) = self.projects.remove(&name) {
                        self.forget_expiries(&name, &p);
                    }
                }
                Undo::Deleted(p) => {
                    self.insert_loaded(name.clone(), *p);
                }
                Undo::Meta {
                    persistence,
                    quota,
                    tokens,
                } => {
                    if let Some(p) = self.projects.get_mut(&name) {
                        p.persistence = persistence;
                        p.quota = quota;
                        p.tokens = tokens;
                    }
                }
                Undo::Key { key, old, .. } => {
                    self.swap(&name, &key, old);
                }
            }
        }
    }

    fn forget_expiries(&mut self, name: &str, p: &Project) {
        for r in &p.keys {
            if let Some(t) = r.expires_at() {
                self.expiry.remove(&(t, name.to_string(), r.key().into()));
            }
        }
    }

    // ---- projects ----

    pub fn create_project(
        &mut self,
        name: &str,
        persistence: Persistence,
        tokens: Vec<Token>,
    ) -> Result<Change, StoreError> {
        if self.projects.contains_key(name) {
            return Err(StoreError::ProjectExists);
        }
        self.projects.insert(
            name.to_string(),
            Project::new(persistence, Source::Api, tokens),
        );
        Ok(Change::new(name, vec![Undo::Created]))
    }

    pub fn delete_project(&mut self, name: &str) -> Result<Change, StoreError> {
        let p = self
            .projects
            .remove(name)
            .ok_or(StoreError::ProjectNotFound)?;
        // Its keys leave the expiry index: a new project of the same name must not inherit them.
        self.forget_expiries(name, &p);
        Ok(Change::new(name, vec![Undo::Deleted(Box::new(p))]))
    }

    /// Change a project's settings or tokens through `f`, keeping how to undo it.
    fn change_meta<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Project) -> Result<T, StoreError>,
    ) -> Result<(T, Change), StoreError> {
        let p = self
            .projects
            .get_mut(name)
            .ok_or(StoreError::ProjectNotFound)?;
        let before = Undo::Meta {
            persistence: p.persistence,
            quota: p.quota,
            tokens: p.tokens.clone(),
        };
        let out = f(p)?;
        Ok((out, Change::new(name, vec![before])))
    }

    /// Set a project's persistence and quota (as given, changed or not) in one change.
    pub fn set_settings(
        &mut self,
        name: &str,
        mode: Persistence,
        quota: Quota,
    ) -> Result<Change, StoreError> {
        self.change_meta(name, |p| {
            p.persistence = mode;
            p.quota = quota;
            Ok(())
        })
        .map(|((), c)| c)
    }

    pub fn add_token(&mut self, name: &str, token: Token) -> Result<Change, StoreError> {
        self.change_meta(name, |p| {
            p.tokens.push(token);
            Ok(())
        })
        .map(|((), c)| c)
    }

    /// Remove an API token; config tokens are the caller's to refuse before calling this.
    pub fn revoke_token(&mut self, name: &str, id: &str) -> Result<(Token, Change), StoreError> {
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

    /// `swap`, keeping the step as part of a change: what the key held and a copy of what it
    /// holds now (the journal writes that copy, with no search of the tree at commit time).
    fn change_key(&mut self, project: &str, key: Box<str>, new: Option<Record>) -> Undo {
        let copy = new.clone();
        let old = self.swap(project, &key, new);
        Undo::Key {
            key,
            old,
            new: copy,
        }
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
        // The common case: no limit, so no search of the key (a few cache misses at 1M keys).
        if self.max_keys.is_none() && p.quota == Quota::default() {
            return Ok(());
        }
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
    ) -> Result<(Written, Change), StoreError> {
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
        let step = self.change_key(project, key.into(), Some(record));
        let Undo::Key { old, .. } = &step else {
            unreachable!("change_key makes key steps");
        };
        let created = old.as_ref().is_none_or(|o| !self.live(o.expires_at()));
        Ok((
            Written { created, version },
            Change::new(project, vec![step]),
        ))
    }

    pub fn delete(&mut self, project: &str, key: &str) -> Result<Change, StoreError> {
        self.get(project, key)?;
        let step = self.change_key(project, key.into(), None);
        let p = self.projects.get_mut(project).expect("checked by get");
        let version = p.next_version();
        p.note_deletion(version, key);
        Ok(Change::new(project, vec![step]))
    }

    /// Add `delta` to a counter: a missing key counts as 0; the expiry and Content-Type stay.
    pub fn incr(
        &mut self,
        project: &str,
        key: &str,
        delta: i64,
    ) -> Result<(i64, Written, Change), StoreError> {
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
        let (written, change) = self.put(
            project,
            key,
            next.to_string().as_bytes(),
            content_type.as_deref(),
            expires_at,
        )?;
        Ok((next, written, change))
    }

    /// Apply `ops` all or nothing, as one change with one version. On failure nothing changed
    /// and the error names the op's index.
    pub fn batch(
        &mut self,
        project: &str,
        ops: Vec<BatchOp>,
    ) -> Result<(u64, Vec<BatchDone>, Change), (usize, BatchFail)> {
        let Some(p) = self.projects.get(project) else {
            return Err((0, BatchFail::ProjectNotFound));
        };
        let version = p.version + 1;
        let mut steps: Vec<Undo> = Vec::new();
        let mut done = Vec::with_capacity(ops.len());
        for (i, op) in ops.into_iter().enumerate() {
            match self.batch_op(project, op, version, &mut steps) {
                Ok(d) => done.push(d),
                Err(fail) => {
                    self.undo(Change::new(project, steps));
                    return Err((i, fail));
                }
            }
        }
        if steps.is_empty() {
            // Only checks: nothing changed, no version is used.
            let version = self.projects[project].version;
            return Ok((version, done, Change::new(project, steps)));
        }
        let p = self.projects.get_mut(project).expect("checked above");
        p.version = version;
        for step in &steps {
            if let Undo::Key { key, .. } = step {
                if !p.keys.contains(key.as_bytes()) {
                    p.note_deletion(version, key);
                }
            }
        }
        Ok((version, done, Change::new(project, steps)))
    }

    fn batch_op(
        &mut self,
        project: &str,
        op: BatchOp,
        version: u64,
        steps: &mut Vec<Undo>,
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
                steps.push(self.change_key(project, key.into_boxed_str(), None));
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
                steps.push(self.change_key(project, key.into_boxed_str(), Some(record)));
                Ok(BatchDone::Put {
                    created: actual == 0,
                    version,
                })
            }
        }
    }

    /// Load `entries` (later duplicates win) as one change with one version: `replace` first
    /// removes every key not among them. All or nothing: a quota refuses the whole import.
    /// Returns the version used, how many keys `replace` removed, and the change.
    pub fn import(
        &mut self,
        project: &str,
        entries: Vec<(String, Value)>,
        replace: bool,
    ) -> Result<(u64, usize, Change), StoreError> {
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
            return Ok((p.version, 0, Change::new(project, Vec::new())));
        }
        let version = p.version + 1;
        let removed = removing.len();
        let mut steps = Vec::with_capacity(removed + incoming.len());
        for key in removing {
            if let Some(p) = self.projects.get_mut(project) {
                p.note_deletion(version, &key);
            }
            steps.push(self.change_key(project, key, None));
        }
        for (key, mut value) in incoming {
            value.version = version;
            let record = Record::new(&key, value.as_ref());
            steps.push(self.change_key(project, key.into_boxed_str(), Some(record)));
        }
        if let Some(p) = self.projects.get_mut(project) {
            p.version = version;
        }
        Ok((version, removed, Change::new(project, steps)))
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
    /// what it removes, not the size of the store). Each removal is a change like a DELETE's.
    pub fn expire_due(&mut self, budget: usize) -> Vec<Change> {
        let mut changes = Vec::new();
        while changes.len() < budget {
            let Some((t, project, key)) = self.expiry.first().cloned() else {
                break;
            };
            if t > self.clock {
                break;
            }
            self.expiry.remove(&(t, project.clone(), key.clone()));
            if !self.projects.contains_key(&project) {
                continue;
            }
            let step = self.change_key(&project, key.clone(), None);
            let p = self.projects.get_mut(&project).expect("checked above");
            let version = p.next_version();
            p.note_deletion(version, &key);
            changes.push(Change::new(&project, vec![step]));
        }
        changes
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
        let _created = s.create_project("p", mode, vec![]).unwrap();
        s
    }

    #[test]
    fn listing_pages_in_byte_order_within_the_prefix() {
        let mut s = store_with(Persistence::Memory);
        for k in ["b/2", "a", "b/1", "b/3", "c"] {
            let _ = s.put("p", k, b"", None, None).unwrap();
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
    fn undo_restores_keys_bytes_and_the_expiry_index_newest_first() {
        let mut s = store_with(Persistence::Sync);
        let _ = s.put("p", "k", b"old", None, Some(100)).unwrap();
        let (_, a) = s.put("p", "k", b"newer", None, None).unwrap();
        let (_, b) = s.put("p", "x", b"1", None, Some(50)).unwrap();
        let c = s.delete("p", "x").unwrap();
        assert_eq!(a.keys().collect::<Vec<_>>(), ["k"]);
        for change in [c, b, a] {
            s.undo(change);
        }
        assert_eq!(s.get("p", "k").unwrap().data, b"old");
        assert_eq!(s.get("p", "k").unwrap().expires_at, Some(100));
        assert_eq!(s.get("p", "x"), Err(StoreError::KeyNotFound));
        assert_eq!(s.project("p").unwrap().bytes(), 4);
        assert_eq!(s.next_expiry(), Some(100));
    }

    #[test]
    fn undo_of_a_created_project_removes_it_and_of_a_deleted_one_restores_it() {
        let mut s = Store::new(None);
        let created = s.create_project("n", Persistence::Sync, vec![]).unwrap();
        assert!(created.creates_or_deletes());
        s.undo(created);
        assert!(s.project("n").is_none());
        let mut s = store_with(Persistence::Sync);
        let _ = s.put("p", "t", b"v", None, Some(100)).unwrap();
        let deleted = s.delete_project("p").unwrap();
        assert_eq!(
            s.next_expiry(),
            None,
            "a deleted project's keys leave the index"
        );
        s.undo(deleted);
        assert_eq!(s.get("p", "t").unwrap().data, b"v");
        assert_eq!(s.next_expiry(), Some(100));
    }

    #[test]
    fn a_recreated_project_does_not_inherit_the_old_ones_expiries() {
        let mut s = store_with(Persistence::Memory);
        let _ = s.put("p", "k", b"old", None, Some(100)).unwrap();
        let _ = s.delete_project("p").unwrap();
        let _ = s.create_project("p", Persistence::Memory, vec![]).unwrap();
        let _ = s.put("p", "k", b"new", None, None).unwrap();
        s.set_clock(200);
        assert!(s.expire_due(10).is_empty());
        assert_eq!(s.get("p", "k").unwrap().data, b"new");
    }

    #[test]
    fn a_failed_batch_changes_nothing_and_an_undone_one_restores_versions() {
        let mut s = store_with(Persistence::Sync);
        let (w, _) = s.put("p", "a", b"1", None, None).unwrap();
        let put = |key: &str, version| BatchOp::Put {
            key: key.into(),
            data: b"2".to_vec(),
            content_type: None,
            expires_at: None,
            version,
        };
        let err = s.batch("p", vec![put("b", None), put("a", Some(99))]);
        assert!(matches!(err, Err((1, BatchFail::Version { .. }))));
        assert_eq!(s.get("p", "b"), Err(StoreError::KeyNotFound));
        let (v, _, change) = s.batch("p", vec![put("a", None), put("b", None)]).unwrap();
        assert_eq!(v, w.version + 1);
        assert_eq!(s.current_version("p", "b"), v);
        s.undo(change);
        assert_eq!(s.current_version("p", "a"), w.version);
        assert_eq!(s.get("p", "a").unwrap().data, b"1");
        assert_eq!(s.project("p").unwrap().bytes(), 2);
    }

    #[test]
    fn an_undone_replace_import_brings_back_every_key() {
        let mut s = store_with(Persistence::Sync);
        for k in ["a", "b"] {
            let _ = s.put("p", k, b"old", None, None).unwrap();
        }
        let value = Value {
            data: b"new".to_vec().into_boxed_slice(),
            content_type: None,
            version: 0,
            expires_at: None,
        };
        let (_, removed, change) = s.import("p", vec![("c".into(), value)], true).unwrap();
        assert_eq!(removed, 2);
        assert_eq!(s.project("p").unwrap().key_count(), 1);
        s.undo(change);
        let keys: Vec<&str> = s.project("p").unwrap().entries().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(s.project("p").unwrap().bytes(), 8);
    }

    #[test]
    fn expiry_removes_due_keys_as_changes() {
        let mut s = store_with(Persistence::Sync);
        let _ = s.put("p", "soon", b"v", None, Some(10)).unwrap();
        let _ = s.put("p", "later", b"v", None, Some(20)).unwrap();
        s.set_clock(15);
        let changes = s.expire_due(10);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].keys().collect::<Vec<_>>(), ["soon"]);
        assert_eq!(s.project("p").unwrap().key_count(), 1);
        assert_eq!(s.next_expiry(), Some(20));
    }

    #[test]
    fn the_key_quota_counts_only_new_keys() {
        let mut s = Store::new(Some(1));
        let _ = s.create_project("p", Persistence::Memory, vec![]).unwrap();
        let _ = s.put("p", "a", b"", None, None).unwrap();
        let _ = s.put("p", "a", &[1], None, None).unwrap();
        assert_eq!(
            s.put("p", "b", b"", None, None).map(|(w, _)| w),
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
