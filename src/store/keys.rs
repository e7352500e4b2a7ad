//! Keys: the one place a key changes (`swap`, keeping the byte count and the expiry index in
//! step), reads, writes, counters, listings, and the check a prefix watch makes.

use super::change::Undo;
use super::record::{Record, ValueRef};
use super::{Change, Store, StoreError, Written};

/// A listing page: (key, value) pairs in byte order, and the `after` of the next page.
pub type Page<'a> = (Vec<(&'a str, ValueRef<'a>)>, Option<&'a str>);

impl Store {
    /// Replace `key` with `new` (None removes it), keeping the byte count and the expiry index
    /// in step. Every change to a key goes through here. Returns the previous record.
    pub(super) fn swap(&mut self, project: &str, key: &str, new: Option<Record>) -> Option<Record> {
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
    pub(super) fn change_key(&mut self, project: &str, key: Box<str>, new: Option<Record>) -> Undo {
        let copy = new.clone();
        let old = self.swap(project, &key, new);
        Undo::Key {
            key,
            old,
            new: copy,
        }
    }

    pub(super) fn live(&self, expires_at: Option<u64>) -> bool {
        expires_at.is_none_or(|t| t > self.clock)
    }

    /// The key's value, unless absent or expired.
    pub fn get(&self, project: &str, key: &str) -> Result<ValueRef<'_>, StoreError> {
        let p = self
            .projects
            .get(project)
            .ok_or_else(|| StoreError::ProjectNotFound(project.to_string()))?;
        p.keys
            .get(key.as_bytes())
            .filter(|r| self.live(r.expires_at()))
            .map(Record::value)
            .ok_or_else(|| StoreError::KeyNotFound(key.to_string()))
    }

    /// The key's version, 0 when absent or expired.
    pub fn current_version(&self, project: &str, key: &str) -> u64 {
        self.get(project, key).map_or(0, |v| v.version)
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
        let p = self
            .projects
            .get(project)
            .ok_or_else(|| StoreError::ProjectNotFound(project.to_string()))?;
        self.check_put_quota(p, key, data.len())
            .map_err(StoreError::Quota)?;
        let p = self.projects.get_mut(project).expect("found above");
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
                let not_an_integer = || StoreError::NotAnInteger(key.to_string());
                let text = std::str::from_utf8(v.data).map_err(|_| not_an_integer())?;
                let n: i64 = text.trim().parse().map_err(|_| not_an_integer())?;
                (n, v.content_type.map(str::to_string), v.expires_at)
            }
            Err(StoreError::KeyNotFound(_)) => (0, Some("text/plain".to_string()), None),
            Err(e) => return Err(e),
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| StoreError::Overflow {
                key: key.to_string(),
                delta,
            })?;
        let (written, change) = self.put(
            project,
            key,
            next.to_string().as_bytes(),
            content_type.as_deref(),
            expires_at,
        )?;
        Ok((next, written, change))
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
            .ok_or_else(|| StoreError::ProjectNotFound(project.to_string()))?;
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
}

#[cfg(test)]
mod tests {
    use super::super::{store_with, Persistence};

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
}
