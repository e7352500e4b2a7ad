//! Persistence: everything pykv writes to or reads from its data directory. Reads the store and
//! never changes it (loading builds projects that `main` then hands to the store); what a
//! failed write means for clients is the commit's business (`server/commit.rs`).
//!
//! Per project, `data_dir` holds a snapshot `<project>.json` and journal segments
//! `<project>.<seq>.journal` beside it: the snapshot names the first segment to replay after it.
//!
//! - [`snapshot`] — the snapshot format; writing one whole or a slice at a time; loading one.
//! - [`journal`] — the journal's record format, appending, syncing, cutting back, scanning.
//! - [`disk`] — the files of a running server: journals per project, and what a group of
//!   changes does to them; `compact.rs` — the one background job: compaction or conversion.
//! - [`load`] — start-up (snapshot plus journal, torn tails cut), and the offline commands:
//!   `--check-data`, `export`, `repair`.
//! - [`writeback`] — data pushed to the disk without waiting; large files freed in steps.

pub mod compact;
pub mod disk;
pub mod journal;
pub mod load;
pub mod snapshot;
pub mod writeback;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub use disk::Disk;
pub use load::{check_dir, export_dir, load_dir, read_dir, repair, Loaded};
pub use snapshot::{decode_entry, write_entry, FORMAT_VERSION};

/// A write that failed, and the file it was for.
#[derive(Debug)]
pub struct DiskError {
    pub path: PathBuf,
    /// What was being done: "appending to", "syncing", "writing the snapshot".
    pub doing: &'static str,
    pub cause: io::Error,
}

impl DiskError {
    pub fn new(doing: &'static str, path: &Path, cause: io::Error) -> DiskError {
        DiskError {
            path: path.to_path_buf(),
            doing,
            cause,
        }
    }

    /// The disk (or a size limit) is full: the client's fault is nobody's, 507 rather than 500.
    pub fn is_full(&self) -> bool {
        use io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
        matches!(
            self.cause.kind(),
            StorageFull | QuotaExceeded | FileTooLarge
        )
    }
}

impl std::fmt::Display for DiskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let full = if self.is_full() {
            "the disk is full: "
        } else {
            ""
        };
        write!(
            f,
            "{full}{} {}: {}",
            self.doing,
            self.path.display(),
            self.cause
        )
    }
}

/// What a file in the data directory is, by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileName {
    Snapshot(String),
    /// A snapshot being written (left by a crash: never complete).
    SnapshotTmp(String),
    Journal(String, u64),
}

impl FileName {
    pub fn parse(name: &str) -> Option<FileName> {
        let valid = |p: &str| crate::store::validate_project_name(p).is_ok();
        if let Some(p) = name.strip_suffix(".json.tmp") {
            return valid(p).then(|| FileName::SnapshotTmp(p.to_string()));
        }
        if let Some(p) = name.strip_suffix(".json") {
            return valid(p).then(|| FileName::Snapshot(p.to_string()));
        }
        let (p, seq) = name.strip_suffix(".journal")?.split_once('.')?;
        let seq: u64 = seq
            .parse()
            .ok()
            .filter(|_| seq.bytes().all(|b| b.is_ascii_digit()))?;
        valid(p).then(|| FileName::Journal(p.to_string(), seq))
    }
}

pub fn snapshot_path(dir: &Path, project: &str) -> PathBuf {
    dir.join(format!("{project}.json"))
}

pub fn journal_path(dir: &Path, project: &str, seq: u64) -> PathBuf {
    dir.join(format!("{project}.{seq}.journal"))
}

/// Every file of the data directory pykv knows, with its path, sorted by name.
pub fn list_dir(dir: &Path) -> io::Result<Vec<(FileName, PathBuf)>> {
    let mut out: Vec<(FileName, PathBuf)> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            FileName::parse(name.to_str()?).map(|f| (f, e.path()))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Create the data directory if needed and make it private (snapshots hold tokens).
pub fn prepare_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    if fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
        return Err(format!("data_dir {shown} is a file, not a directory"));
    }
    fs::create_dir_all(dir).map_err(|e| format!("data_dir {shown} cannot be created: {e}"))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
        format!("data_dir {shown}: cannot make it private to its owner (mode 0700): {e}")
    })
}

/// The whole rename-on-write dance for a small file (the admin token): temp file, write, fsync,
/// rename, fsync the directory. On any error the temp file is removed and the previous file is
/// untouched.
pub fn write_atomic(
    dir: &Path,
    file_name: &str,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let final_path = dir.join(file_name);
    let tmp_path = dir.join(format!("{file_name}.tmp"));
    let result = (|| {
        let mut w = BufWriter::new(create_private(&tmp_path)?);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp_path, &final_path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp_path);
    }
    result
}

/// Create (or empty) a file only its owner may read: every file pykv writes holds tokens.
pub fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Make the directory's entries (a rename, a new or removed file) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_parse_strictly() {
        assert_eq!(
            FileName::parse("demo.json"),
            Some(FileName::Snapshot("demo".into()))
        );
        assert_eq!(
            FileName::parse("demo.json.tmp"),
            Some(FileName::SnapshotTmp("demo".into()))
        );
        assert_eq!(
            FileName::parse("demo.12.journal"),
            Some(FileName::Journal("demo".into(), 12))
        );
        for other in [
            "admin.token",
            "Demo.json",
            "demo.+1.journal",
            "demo..journal",
            "demo.1.journal.bad-1",
            ".json",
        ] {
            assert_eq!(FileName::parse(other), None, "{other}");
        }
    }
}
