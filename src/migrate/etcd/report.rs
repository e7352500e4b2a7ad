//! What `pykv migrate etcd` prints: the opening line, each project's tally and line, and the
//! closing line. Only counts and words: nothing here reads data or talks to etcd.

use super::Options;

/// The first line: what is migrated, from where, to where.
pub fn header(opts: &Options, projects: usize) -> String {
    let urls: Vec<&str> = opts.endpoints.iter().map(|e| e.url.as_str()).collect();
    let (verb, tail) = if opts.dry_run {
        ("dry run:", "; nothing will be written")
    } else {
        ("migrating", "")
    };
    format!(
        "{verb} {} from {} to etcd at {} under {:?}{tail}",
        plural(projects, "project"),
        opts.data_dir.display(),
        urls.join(","),
        opts.naming.prefix(),
    )
}

pub fn plural(n: usize, word: &str) -> String {
    match n {
        1 => format!("1 {word}"),
        _ => format!("{n} {word}s"),
    }
}

/// What happened to one project.
#[derive(Default)]
pub(super) struct Report {
    pub(super) name: String,
    /// Live keys in the data directory, and how many of them have a content type or a TTL.
    pub(super) keys: usize,
    pub(super) typed: usize,
    pub(super) with_ttl: usize,
    /// Keys already expired in the data directory, not migrated.
    pub(super) expired: usize,
    pub(super) written: usize,
    pub(super) unchanged: usize,
    /// Expiry seconds of the migrated keys (with and without a content type): keys expiring
    /// while the counts are taken may or may not be counted.
    pub(super) expiries: Vec<u64>,
    pub(super) typed_expiries: Vec<u64>,
}

impl Report {
    pub fn line(&self, dry_run: bool) -> String {
        let mut detail = vec![
            format!("{} with a content type", self.typed),
            format!("{} with a TTL", self.with_ttl),
        ];
        if self.expired > 0 {
            detail.push(format!("{} expired and skipped", self.expired));
        }
        let done = if dry_run {
            format!(
                "would write {}, {} already in etcd",
                self.written, self.unchanged
            )
        } else {
            format!(
                "{} written, {} already in etcd",
                self.written, self.unchanged
            )
        };
        format!(
            "project {}: {} ({}): {done}",
            self.name,
            plural(self.keys, "key"),
            detail.join(", ")
        )
    }
}

/// The last line of a dry run.
pub fn dry_run_done(written: usize, txns: usize, leases: usize) -> String {
    format!(
        "dry run: would write {} in {} and grant {}; nothing was written",
        plural(written, "key"),
        plural(txns, "transaction"),
        plural(leases, "lease"),
    )
}

/// The last line of a migration whose counts were verified.
pub fn done(written: usize, unchanged: usize, leases: usize) -> String {
    match (written, unchanged) {
        (0, 0) => "done: nothing to change, no live keys to migrate".to_string(),
        (0, 1) => "done: nothing to change, the 1 key was already in etcd".to_string(),
        (0, n) => format!("done: nothing to change, all {n} keys were already in etcd"),
        (w, u) => format!(
            "done: {} written, {u} already in etcd, {} granted",
            plural(w, "key"),
            plural(leases, "lease")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_read_well() {
        assert_eq!(plural(1, "key"), "1 key");
        assert_eq!(plural(2, "key"), "2 keys");
    }
}
