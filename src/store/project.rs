//! A project: its settings, tokens and keys, and what it remembers of recent deletions (for
//! prefix watches). Pure data with its getters; the store's methods change it.

use std::collections::{BTreeSet, VecDeque};

use super::quota::{Quota, Usage};
use super::record::{Record, ValueRef};
use super::Persistence;
use crate::auth::{Source, Token};

/// A project: its settings, tokens and keys. Keys sit in a sorted set of records so listings
/// come out in byte order in O(log n + page) instead of sorting the whole project per request.
#[derive(Debug)]
pub struct Project {
    pub(super) persistence: Persistence,
    pub(super) quota: Quota,
    pub(super) source: Source,
    pub(super) tokens: Vec<Token>,
    pub(super) keys: BTreeSet<Record>,
    /// The last version handed out; every key mutation takes the next one.
    pub(super) version: u64,
    /// Sum of key and value lengths.
    pub(super) bytes: u64,
    /// Recent removals (version, key), so a prefix watch can tell a deletion happened.
    pub(super) deletions: VecDeque<(u64, Box<str>)>,
    /// The newest version dropped from `deletions` (0: none dropped yet).
    pub(super) deletions_forgotten_upto: u64,
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
    /// What it holds, as the quota rule counts it.
    pub(super) fn usage(&self) -> Usage {
        Usage {
            keys: self.keys.len() as u64,
            bytes: self.bytes,
        }
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

    pub(super) fn note_deletion(&mut self, version: u64, key: &str) {
        if self.deletions.len() == DELETIONS_KEPT {
            if let Some((v, _)) = self.deletions.pop_front() {
                self.deletions_forgotten_upto = v;
            }
        }
        self.deletions.push_back((version, key.into()));
    }

    pub(super) fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }
}
