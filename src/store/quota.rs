//! Per-project limits on keys and bytes, and the one rule that enforces them, for a PUT, each op
//! of a batch, and an import alike.

use serde::{Deserialize, Serialize};

use super::project::Project;
use super::Store;

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

/// What a project holds: how many keys, and their key and value bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Usage {
    pub keys: u64,
    pub bytes: u64,
}

impl Store {
    /// The one quota rule: a write may not leave `p` holding `after` past a limit, unless it
    /// does not grow what that limit counts (a lowered quota never blocks a write that keeps or
    /// shrinks the project). The limits, in this order: the server's
    /// `limits.max_keys_per_project`, the project's `max_keys`, its `max_bytes`.
    pub(super) fn check_quota(&self, p: &Project, after: Usage) -> Result<(), QuotaHit> {
        let before = p.usage();
        let hit = |name, limit| Err(QuotaHit { name, limit });
        if after.keys > before.keys {
            if let Some(max) = self.max_keys.map(|m| m as u64) {
                if after.keys > max {
                    return hit("limits.max_keys_per_project", max);
                }
            }
            if let Some(max) = p.quota.max_keys {
                if after.keys > max {
                    return hit("max_keys", max);
                }
            }
        }
        if let Some(max) = p.quota.max_bytes {
            if after.bytes > max && after.bytes > before.bytes {
                return hit("max_bytes", max);
            }
        }
        Ok(())
    }

    /// `check_quota` for writing `len` value bytes to `key`. An expired key still counts until
    /// the sweep removes it (a loop turn at most). Without limits, the key is not even looked up
    /// (a few cache misses at a million keys).
    pub(super) fn check_put_quota(
        &self,
        p: &Project,
        key: &str,
        len: usize,
    ) -> Result<(), QuotaHit> {
        if self.max_keys.is_none() && p.quota == Quota::default() {
            return Ok(());
        }
        let before = p.usage();
        let old = p.keys.get(key.as_bytes()).map(|r| r.size() as u64);
        let after = Usage {
            keys: before.keys + u64::from(old.is_none()),
            bytes: before.bytes - old.unwrap_or(0) + (key.len() + len) as u64,
        };
        self.check_quota(p, after)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{store_with, BatchFail, BatchOp, Persistence, StoreError, Value};
    use super::*;

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

    fn value(len: usize) -> Value {
        Value {
            data: vec![b'v'; len].into_boxed_slice(),
            content_type: None,
            version: 0,
            expires_at: None,
        }
    }

    fn put(key: &str, len: usize) -> BatchOp {
        BatchOp::Put {
            key: key.into(),
            data: vec![b'v'; len],
            content_type: None,
            expires_at: None,
            version: None,
        }
    }

    /// PUT, a batch and an import meet the same limit at the same point.
    #[test]
    fn put_batch_and_import_share_one_byte_quota() {
        let quota = Quota {
            max_keys: None,
            max_bytes: Some(10),
        };
        let mut s = store_with(Persistence::Memory);
        let _ = s.set_settings("p", Persistence::Memory, quota).unwrap();
        let _ = s.put("p", "a", &[1; 4], None, None).unwrap();
        let hit = QuotaHit {
            name: "max_bytes",
            limit: 10,
        };
        assert_eq!(
            s.put("p", "b", &[1; 5], None, None).map(|(w, _)| w),
            Err(StoreError::Quota(hit))
        );
        assert!(matches!(
            s.batch("p", vec![put("b", 4), put("c", 1)]),
            Err((1, BatchFail::Quota(h))) if h == hit
        ));
        assert!(matches!(
            s.import("p", vec![("b".into(), value(5))], false),
            Err(StoreError::Quota(h)) if h == hit
        ));
        // At the limit exactly, each passes.
        let _ = s.put("p", "b", &[1; 4], None, None).unwrap();
        assert_eq!(s.project("p").unwrap().bytes(), 10);
    }

    /// A lowered quota blocks growth, never a write that keeps or shrinks the project.
    #[test]
    fn a_lowered_quota_still_lets_the_project_shrink() {
        let mut s = store_with(Persistence::Memory);
        let _ = s.put("p", "a", &[1; 9], None, None).unwrap();
        let quota = Quota {
            max_keys: Some(0),
            max_bytes: Some(2),
        };
        let _ = s.set_settings("p", Persistence::Memory, quota).unwrap();
        let _ = s.put("p", "a", &[2; 3], None, None).unwrap();
        let (_, _, _) = s.import("p", vec![("a".into(), value(1))], true).unwrap();
        assert!(matches!(
            s.put("p", "new", b"", None, None),
            Err(StoreError::Quota(QuotaHit {
                name: "max_keys",
                limit: 0
            }))
        ));
    }
}
