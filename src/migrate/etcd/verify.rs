//! The end of a migration: what etcd holds under each project's prefixes counted against what
//! was migrated, and the closing lines. Reads etcd only (counts); writes nothing there.

use super::report::{self, Report};
use super::Run;
use crate::migrate::{unix_now, MigrateError};

impl Run<'_> {
    /// The last lines: what a dry run would do; or the counts verified, and what was done.
    pub(super) fn finish(&mut self, reports: &[Report]) -> Result<(), MigrateError> {
        let written: usize = reports.iter().map(|r| r.written).sum();
        let unchanged: usize = reports.iter().map(|r| r.unchanged).sum();
        if self.dry_run {
            let line = report::dry_run_done(written, self.txns, self.leases.len());
            writeln!(self.out, "{line}")?;
            return Ok(());
        }
        let mut mismatches = Vec::new();
        for r in reports {
            if let Some(m) = self.verify(r)? {
                mismatches.push(m);
            }
        }
        if !mismatches.is_empty() {
            return Err(MigrateError::Mismatch(mismatches.join("; ")));
        }
        let line = report::done(written, unchanged, self.leases.len());
        writeln!(self.out, "{line}")?;
        Ok(())
    }

    /// Count what etcd holds under the project's prefixes against what was migrated. Returns
    /// the mismatch, if any, for the final error.
    fn verify(&mut self, r: &Report) -> Result<Option<String>, MigrateError> {
        let data_prefix = self.naming.project_prefix(&r.name);
        let meta_prefix = self.naming.meta_prefix(&r.name);
        let keys = self.gw.count(data_prefix.as_bytes())?;
        let types = self.gw.count(meta_prefix.as_bytes())?;
        self.notes()?;
        let now = unix_now();
        let migrated = r.written + r.unchanged;
        let typed = r.typed;
        let keys_ok = within(keys, migrated, &r.expiries, now);
        let types_ok = within(types, typed, &r.typed_expiries, now);
        let held = format!(
            "etcd holds {keys} keys under {data_prefix:?} and {types} under {meta_prefix:?}"
        );
        if keys_ok && types_ok {
            writeln!(self.out, "verified {}: {held}, as pykv has", r.name)?;
            return Ok(None);
        }
        writeln!(
            self.out,
            "MISMATCH {}: {held}; pykv has {migrated} and {typed}",
            r.name
        )?;
        let hint = if keys as usize > migrated || types as usize > typed {
            "etcd holds keys pykv does not have there (another writer, or keys deleted in pykv \
             since an earlier migration): remove them or use another --prefix"
        } else {
            "keys are missing in etcd"
        };
        Ok(Some(format!(
            "project {} has {migrated} keys and {typed} content types, etcd {keys} and {types}: {hint}",
            r.name
        )))
    }
}

/// Whether `count` is what etcd should hold: every migrated key, less any whose expiry has
/// come by now (those may or may not have been removed yet).
fn within(count: u64, migrated: usize, expiries: &[u64], now: u64) -> bool {
    // A second of slack: etcd checks for expired leases twice a second.
    let may_be_gone = expiries.iter().filter(|&&t| t <= now + 1).count();
    let count = count as usize;
    count <= migrated && count + may_be_gone >= migrated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_allow_only_keys_whose_expiry_has_come() {
        assert!(within(5, 5, &[], 100));
        assert!(!within(6, 5, &[], 100));
        assert!(!within(4, 5, &[], 100));
        assert!(within(4, 5, &[101], 100));
        assert!(!within(4, 5, &[200], 100));
    }
}
