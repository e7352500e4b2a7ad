//! Changes of many keys at once, all or nothing: a batch (puts, deletes and checks under one
//! version) and an import (many keys, merged or replacing the project). One `Change` each.

use std::collections::BTreeMap;

use super::change::Undo;
use super::quota::{QuotaHit, Usage};
use super::record::{Record, ValueRef};
use super::{Change, Store, StoreError, Value};

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

impl Store {
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
                let p = self
                    .projects
                    .get(project)
                    .ok_or(BatchFail::ProjectNotFound)?;
                self.check_put_quota(p, &key, data.len())
                    .map_err(BatchFail::Quota)?;
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
            .ok_or_else(|| StoreError::ProjectNotFound(project.to_string()))?;
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
        let mut after = if replace {
            Usage { keys: 0, bytes: 0 }
        } else {
            p.usage()
        };
        for (k, v) in &incoming {
            match p.keys.get(k.as_bytes()) {
                Some(old) if !replace => after.bytes -= old.size() as u64,
                _ => after.keys += 1,
            }
            after.bytes += size(k, v);
        }
        self.check_quota(p, after).map_err(StoreError::Quota)?;
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
}

#[cfg(test)]
mod tests {
    use super::super::{store_with, Persistence, StoreError};
    use super::*;

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
        assert_eq!(s.get("p", "b"), Err(StoreError::KeyNotFound("b".into())));
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
}
