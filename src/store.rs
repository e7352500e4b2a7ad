//! Projects and their keys, in memory, behind a small method API.
//! No I/O and no HTTP: persistence reads this through `Project`'s getters, and sync-mode changes
//! keep an undo log here until the server says their snapshot is durable (`commit`) or failed
//! (`rollback`).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

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

/// One stored value with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub data: Box<[u8]>,
    pub content_type: Option<Box<str>>,
    pub version: u64,
    /// Unix seconds after which the key counts as absent.
    pub expires_at: Option<u64>,
}

/// A project: its settings, tokens and keys. Keys sit in a `BTreeMap` so listings come out in
/// byte order in O(log n + page) instead of sorting the whole project per request.
#[derive(Debug, Clone)]
pub struct Project {
    persistence: Persistence,
    source: Source,
    tokens: Vec<Token>,
    keys: BTreeMap<Box<str>, Value>,
    /// The last version handed out; every key mutation takes the next one.
    version: u64,
    /// Sum of key and value lengths.
    bytes: u64,
    /// Changed since its last successful snapshot.
    dirty: bool,
}

impl Project {
    pub fn new(persistence: Persistence, source: Source, tokens: Vec<Token>) -> Project {
        Project {
            persistence,
            source,
            tokens,
            keys: BTreeMap::new(),
            version: 0,
            bytes: 0,
            dirty: false,
        }
    }

    /// Rebuild a project from a snapshot's parts (used by persistence when loading).
    pub fn restore(
        persistence: Persistence,
        source: Source,
        tokens: Vec<Token>,
        version: u64,
        keys: BTreeMap<Box<str>, Value>,
    ) -> Project {
        let bytes = keys
            .iter()
            .map(|(k, v)| (k.len() + v.data.len()) as u64)
            .sum();
        let top = keys.values().map(|v| v.version).max().unwrap_or(0);
        Project {
            persistence,
            source,
            tokens,
            keys,
            version: version.max(top),
            bytes,
            dirty: false,
        }
    }

    pub fn persistence(&self) -> Persistence {
        self.persistence
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
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }
    /// Every key in byte order, for snapshots.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.keys.iter().map(|(k, v)| (&**k, v))
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
    pub fn adopt_config(&mut self, persistence: Persistence, tokens: Vec<Token>) {
        self.persistence = persistence;
        self.source = Source::Config;
        self.tokens = tokens;
    }

    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }
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
    /// The project already holds `max_keys_per_project` keys.
    KeyQuota(usize),
}

/// How to take back one change whose snapshot failed.
#[derive(Debug)]
enum Undo {
    Key {
        key: Box<str>,
        old: Option<Value>,
    },
    Meta {
        persistence: Persistence,
        tokens: Vec<Token>,
    },
    Created,
    Deleted(Box<Project>),
}

/// All projects, plus the undo logs of changes whose snapshot is not yet durable.
#[derive(Debug, Default)]
pub struct Store {
    projects: HashMap<String, Project>,
    pending: HashMap<String, Vec<Undo>>,
    /// The project whose undo log grew last, so the server knows which snapshot an answer
    /// must wait for.
    last_recorded: Option<String>,
    max_keys: Option<usize>,
}

/// Names become file names: lower-case letters, digits, `_` and `-`, at most 64, no leading
/// punctuation (so no `.`/`..`, no hidden files, nothing a shell or a URL would mangle).
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
        self.pending.remove(name);
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
                    tokens,
                } => {
                    if let Some(p) = self.projects.get_mut(name) {
                        p.persistence = persistence;
                        p.tokens = tokens;
                    }
                }
                Undo::Key { key, old } => {
                    if let Some(p) = self.projects.get_mut(name) {
                        if let Some(cur) = p.keys.remove(&key) {
                            p.bytes -= (key.len() + cur.data.len()) as u64;
                        }
                        if let Some(old) = old {
                            p.bytes += (key.len() + old.data.len()) as u64;
                            p.keys.insert(key, old);
                        }
                    }
                }
            }
        }
    }

    /// Projects in `interval` mode changed since their last snapshot.
    pub fn dirty_interval_projects(&self) -> Vec<String> {
        self.projects
            .iter()
            .filter(|(_, p)| p.dirty && p.persistence == Persistence::Interval)
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
    fn record_key(&mut self, name: &str, key: Box<str>, old: Option<Value>) {
        let Some(p) = self.projects.get_mut(name) else {
            return;
        };
        p.dirty = true;
        if p.persistence == Persistence::Sync {
            self.record(name, Undo::Key { key, old });
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

    pub fn set_persistence(&mut self, name: &str, mode: Persistence) -> Result<(), StoreError> {
        let p = self
            .projects
            .get_mut(name)
            .ok_or(StoreError::ProjectNotFound)?;
        let before = Undo::Meta {
            persistence: p.persistence,
            tokens: p.tokens.clone(),
        };
        let was = p.persistence;
        p.persistence = mode;
        self.record_meta(name, before, was);
        Ok(())
    }

    pub fn add_token(&mut self, name: &str, token: Token) -> Result<(), StoreError> {
        let p = self
            .projects
            .get_mut(name)
            .ok_or(StoreError::ProjectNotFound)?;
        let before = Undo::Meta {
            persistence: p.persistence,
            tokens: p.tokens.clone(),
        };
        p.tokens.push(token);
        let was = p.persistence;
        self.record_meta(name, before, was);
        Ok(())
    }

    /// Remove an API token; config tokens are the caller's to refuse before calling this.
    pub fn revoke_token(&mut self, name: &str, id: &str) -> Result<Token, StoreError> {
        let p = self
            .projects
            .get_mut(name)
            .ok_or(StoreError::ProjectNotFound)?;
        let i = p
            .tokens
            .iter()
            .position(|t| t.id == id)
            .ok_or(StoreError::TokenNotFound)?;
        let before = Undo::Meta {
            persistence: p.persistence,
            tokens: p.tokens.clone(),
        };
        let t = p.tokens.remove(i);
        let was = p.persistence;
        self.record_meta(name, before, was);
        Ok(t)
    }

    // ---- tokens ----

    /// The access a token has on `project`, compared in constant time against each of its tokens.
    pub fn token_access(&self, project: &str, presented: &str) -> Option<Access> {
        let p = self.projects.get(project)?;
        auth::find_token(&p.tokens, presented).map(|t| t.access)
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

    pub fn get(&self, project: &str, key: &str) -> Result<&Value, StoreError> {
        let p = self
            .projects
            .get(project)
            .ok_or(StoreError::ProjectNotFound)?;
        p.keys.get(key).ok_or(StoreError::KeyNotFound)
    }

    pub fn put(
        &mut self,
        project: &str,
        key: &str,
        data: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<Written, StoreError> {
        let max_keys = self.max_keys;
        let p = self
            .projects
            .get_mut(project)
            .ok_or(StoreError::ProjectNotFound)?;
        let exists = p.keys.contains_key(key);
        if let Some(max) = max_keys {
            if !exists && p.keys.len() >= max {
                return Err(StoreError::KeyQuota(max));
            }
        }
        let version = p.next_version();
        let value = Value {
            data: data.into_boxed_slice(),
            content_type: content_type.map(Into::into),
            version,
            expires_at: None,
        };
        p.bytes += (key.len() + value.data.len()) as u64;
        let old = p.keys.insert(key.into(), value);
        if let Some(old) = &old {
            p.bytes -= (key.len() + old.data.len()) as u64;
        }
        let created = old.is_none();
        self.record_key(project, key.into(), old);
        Ok(Written { created, version })
    }

    pub fn delete(&mut self, project: &str, key: &str) -> Result<u64, StoreError> {
        let p = self
            .projects
            .get_mut(project)
            .ok_or(StoreError::ProjectNotFound)?;
        let old = p.keys.remove(key).ok_or(StoreError::KeyNotFound)?;
        p.bytes -= (key.len() + old.data.len()) as u64;
        let version = p.next_version();
        self.record_key(project, key.into(), Some(old));
        Ok(version)
    }

    /// Up to `limit` keys starting with `prefix` and after `after`, in byte order, and the key to
    /// pass as `after` for the next page when more follow.
    pub fn list(
        &self,
        project: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<&str>, Option<&str>), StoreError> {
        use std::ops::Bound;
        let p = self
            .projects
            .get(project)
            .ok_or(StoreError::ProjectNotFound)?;
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let mut keys = Vec::with_capacity(limit.min(p.keys.len()));
        let mut iter = p
            .keys
            .range::<str, _>((start, Bound::Unbounded))
            .map(|(k, _)| &**k)
            .take_while(|k| k.starts_with(prefix));
        for k in iter.by_ref().take(limit) {
            keys.push(k);
        }
        let more = iter.next().is_some();
        let next = if more { keys.last().copied() } else { None };
        Ok((keys, next))
    }
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
            s.put("p", k, vec![], None).unwrap();
        }
        let (keys, next) = s.list("p", "b/", None, 2).unwrap();
        assert_eq!(keys, ["b/1", "b/2"]);
        assert_eq!(next, Some("b/2"));
        let (keys, next) = s.list("p", "b/", Some("b/2"), 2).unwrap();
        assert_eq!(keys, ["b/3"]);
        assert_eq!(next, None);
    }

    #[test]
    fn rollback_restores_keys_bytes_and_tokens() {
        let mut s = store_with(Persistence::Sync);
        s.put("p", "k", b"old".to_vec(), None).unwrap();
        s.commit("p");
        s.put("p", "k", b"newer".to_vec(), None).unwrap();
        s.put("p", "x", b"1".to_vec(), None).unwrap();
        s.delete("p", "x").unwrap();
        s.rollback("p");
        assert_eq!(&*s.get("p", "k").unwrap().data, b"old");
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
        s.put("p", "k", b"v".to_vec(), None).unwrap();
        assert!(!s.is_pending("p"));
        assert_eq!(s.dirty_interval_projects(), ["p"]);
    }

    #[test]
    fn the_key_quota_counts_only_new_keys() {
        let mut s = Store::new(Some(1));
        s.create_project("p", Persistence::Memory, vec![]).unwrap();
        s.put("p", "a", vec![], None).unwrap();
        s.put("p", "a", vec![1], None).unwrap();
        assert_eq!(s.put("p", "b", vec![], None), Err(StoreError::KeyQuota(1)));
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
