//! Time and expiry: the store's clock (set by the server each loop turn), and the index of keys
//! with an expiry, ordered by time, so the sweep removes what is due without scanning anything.

use super::project::Project;
use super::{Change, Store};

impl Store {
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

    /// Drop a project's keys from the expiry index (it was deleted).
    pub(super) fn forget_expiries(&mut self, name: &str, p: &Project) {
        for r in &p.keys {
            if let Some(t) = r.expires_at() {
                self.expiry.remove(&(t, name.to_string(), r.key().into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{store_with, Persistence, Store};

    /// Project `p` with each key expiring at the time given (Unix seconds).
    fn with_expiring(keys: &[(&str, u64)]) -> Store {
        let mut s = store_with(Persistence::Sync);
        for (key, at) in keys {
            let _ = s.put("p", key, b"v", None, Some(*at)).unwrap();
        }
        s
    }

    #[test]
    fn expiry_removes_due_keys_as_changes() {
        let mut s = with_expiring(&[("soon", 10), ("later", 20)]);
        s.set_clock(15);
        let changes = s.expire_due(10);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].keys().collect::<Vec<_>>(), ["soon"]);
        assert_eq!(s.project("p").unwrap().key_count(), 1);
        assert_eq!(s.next_expiry(), Some(20));
    }

    #[test]
    fn expiry_removes_at_most_its_budget_a_turn() {
        let mut s = with_expiring(&[("a", 10), ("b", 11), ("c", 12)]);
        s.set_clock(100);
        assert_eq!(s.expire_due(2).len(), 2);
        assert_eq!(s.next_expiry(), Some(12));
        assert_eq!(s.expire_due(2).len(), 1);
        assert_eq!(s.next_expiry(), None);
    }

    #[test]
    fn a_recreated_project_does_not_inherit_the_old_ones_expiries() {
        let mut s = with_expiring(&[("k", 100)]);
        let _ = s.delete_project("p").unwrap();
        let _ = s.create_project("p", Persistence::Memory, vec![]).unwrap();
        let _ = s.put("p", "k", b"new", None, None).unwrap();
        s.set_clock(200);
        assert!(s.expire_due(10).is_empty());
        assert_eq!(s.get("p", "k").unwrap().data, b"new");
    }
}
