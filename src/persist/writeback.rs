//! Keeping long disk jobs out of the event loop's way: pushing written data towards the disk
//! without waiting for it (so a later fdatasync has little left to do), and freeing a large file
//! a few MiB per loop turn (so a file dropped by a compaction or a deletion does not stall the
//! loop while the filesystem frees its blocks). No knowledge of pykv's formats.
//!
//! std cannot start writeback of a file range without waiting for it: that is Linux's
//! `sync_file_range`, reached through libc (which pykv already links for its signal handlers).
//! Elsewhere these calls do nothing and the final fdatasync does all the work.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// How much of a file is freed per step: about a millisecond's work for ext4.
const FREE_STEP: u64 = 4 * 1024 * 1024;

/// Start writing bytes `[from, to)` of `file` to the disk; returns at once. Advisory: an error
/// only means the final fdatasync does the work.
pub fn start(file: &File, from: u64, to: u64) {
    range(file, from, to, false);
}

/// Wait until bytes `[from, to)` of `file` are on the disk (their writeback started earlier).
pub fn wait(file: &File, from: u64, to: u64) {
    range(file, from, to, true);
}

#[cfg(target_os = "linux")]
fn range(file: &File, from: u64, to: u64, wait: bool) {
    use std::os::fd::AsRawFd;
    if to <= from {
        return;
    }
    let flags = if wait {
        libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE
    } else {
        libc::SYNC_FILE_RANGE_WRITE
    };
    let (Ok(off), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
        return;
    };
    // SAFETY: a valid open descriptor and plain integers; the call reads no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), off, len, flags);
    }
}

#[cfg(not(target_os = "linux"))]
fn range(_: &File, _: u64, _: u64, _: bool) {}

/// Files that no longer have a name (removed, or renamed over) but whose blocks are not yet
/// freed: kept open, and truncated a step at a time.
#[derive(Debug, Default)]
pub struct Retiring {
    files: Vec<(File, u64)>,
}

impl Retiring {
    /// Remove `path` from the directory now, and free its blocks over the next steps.
    pub fn retire(&mut self, path: &Path) -> io::Result<()> {
        let file = match OpenOptions::new().write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        fs::remove_file(path)?;
        self.adopt(file);
        Ok(())
    }

    /// Free an already unnamed file's blocks over the next steps.
    pub fn adopt(&mut self, file: File) {
        let len = file.metadata().map_or(0, |m| m.len());
        self.files.push((file, len));
    }

    pub fn adopt_all(&mut self, files: impl IntoIterator<Item = File>) {
        for f in files {
            self.adopt(f);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Free one step's worth of blocks. A file is closed once empty.
    pub fn step(&mut self) {
        let Some((file, len)) = self.files.last_mut() else {
            return;
        };
        *len = len.saturating_sub(FREE_STEP);
        // On failure the file is simply closed: the filesystem frees it then, all at once.
        if *len == 0 || file.set_len(*len).is_err() {
            self.files.pop();
        }
    }
}
