//! Projects and their keys, in memory, behind a small method API. No I/O and no HTTP:
//! persistence reads this through `Project`'s getters. Every call that changes something
//! returns a `Change` saying what it did and how to undo it; the store keeps none of them (the
//! commit does, until the change is durable).
//!
//! - `mod.rs` — the store's data (projects, the expiry index, the clock), its errors, undo.
//! - `project.rs` — one project: settings, tokens, keys, recent deletions.
//! - `record.rs` — one key and its value packed in one allocation.
//! - `change.rs` — what one call changed, and how to take it back.
//! - `projects.rs` — creating, deleting and setting projects; their tokens.
//! - `keys.rs` — reading and writing keys, listings, counters.
//! - `txn.rs` — batches and imports: many keys, all or nothing.
//! - `quota.rs` — per-project limits and the one rule that enforces them.
//! - `expiry.rs` — the clock and the expiry index.

mod change;
mod expiry;
mod keys;
mod project;
mod projects;
mod quota;
mod record;
mod txn;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

pub use change::Change;
use change::Undo;
pub use keys::Page;
pub use project::Project;
pub use quota::{Quota, QuotaHit};
pub use record::{
    Record, ValueRef, DEFAULT_CONTENT_TYPE, MAX_CONTENT_TYPE, MAX_EXPIRES_AT, MAX_KEY,
};
pub use txn::{BatchDone, BatchFail, BatchOp};

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

/// What a key mutation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub created: bool,
    pub version: u64,
}

/// What the store refused, and about what (the message an API client reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    ProjectNotFound(String),
    ProjectExists(String),
    KeyNotFound(String),
    TokenNotFound {
        project: String,
        id: String,
    },
    /// A write would pass a key or byte quota.
    Quota(QuotaHit),
    /// `incr` on a value that is not a 64-bit integer.
    NotAnInteger(String),
    /// `incr` past the range of a 64-bit integer.
    Overflow {
        key: String,
        delta: i64,
    },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::ProjectNotFound(p) => write!(f, "no project named {p:?}"),
            StoreError::ProjectExists(p) => write!(f, "a project named {p:?} exists already"),
            StoreError::KeyNotFound(k) => write!(f, "no key {k:?} in this project"),
            StoreError::TokenNotFound { project, id } => {
                write!(f, "project {project:?} has no token with id {id:?}")
            }
            StoreError::Quota(hit) => write!(
                f,
                "this write would pass the project's quota {} = {}; nothing was changed",
                hit.name, hit.limit
            ),
            StoreError::NotAnInteger(k) => write!(
                f,
                "the value of {k:?} is not a 64-bit integer; it was left unchanged"
            ),
            StoreError::Overflow { key, delta } => write!(
                f,
                "adding {delta} to {key:?} would leave the 64-bit range; it was left unchanged"
            ),
        }
    }
}

impl std::error::Error for StoreError {}

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
}

/// A store with one project `p`, for the unit tests of every file here.
#[cfg(test)]
pub(crate) fn store_with(mode: Persistence) -> Store {
    let mut s = Store::new(None);
    let _created = s.create_project("p", mode, vec![]).unwrap();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(s.get("p", "x"), Err(StoreError::KeyNotFound("x".into())));
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
    fn project_names_are_strict() {
        for ok in ["a", "0", "a-b_c", &"x".repeat(64)] {
            assert!(validate_project_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "-a", "_a", "a.b", "../x", "a/b", &"x".repeat(65)] {
            assert!(validate_project_name(bad).is_err(), "{bad}");
        }
    }
}
