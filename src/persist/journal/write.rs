//! Writing a journal: a group of records encoded from what the store holds (`Group`), and one
//! journal file appended to, synced, and cut back to its last good record on failure
//! (`Journal`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{crc32c, KeyOp, Kind, HEADER, MORE, SPLIT_BYTES};
use crate::persist::writeback;
use crate::store::Record;

/// The records of one group, framed into a buffer. The last record is sealed by `finish`,
/// without the "more" bit: a group that never got its last record never happened.
pub struct Group<'a> {
    out: &'a mut Vec<u8>,
    /// Where the record being written starts (not yet sealed).
    open: Option<usize>,
    records: u64,
}

impl<'a> Group<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Group<'a> {
        Group {
            out,
            open: None,
            records: 0,
        }
    }

    fn begin(&mut self, kind: Kind) {
        if let Some(start) = self.open.take() {
            self.seal(start, true);
        }
        self.open = Some(self.out.len());
        self.out.extend_from_slice(&[0; HEADER]);
        self.out.push(kind as u8);
        self.records += 1;
    }

    fn seal(&mut self, start: usize, more: bool) {
        if more {
            self.out[start + HEADER] |= MORE;
        }
        let payload = &self.out[start + HEADER..];
        let len = u32::try_from(payload.len()).expect("records are split well below 4 GiB");
        let crc = crc32c(payload);
        self.out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.out[start + 4..start + 8].copy_from_slice(&(!len).to_le_bytes());
        self.out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    }

    /// The project's settings and tokens, as `header` (the snapshot header's JSON).
    pub fn meta(&mut self, header: &[u8]) {
        self.begin(Kind::Meta);
        self.out.extend_from_slice(header);
    }

    /// The project is gone.
    pub fn deleted(&mut self) {
        self.begin(Kind::Deleted);
    }

    /// The state of each key (None: absent, a removal) as of project version `version`.
    pub fn keys<'k>(
        &mut self,
        version: u64,
        states: impl IntoIterator<Item = (&'k str, Option<&'k Record>)>,
    ) {
        let mut states = states.into_iter().peekable();
        while states.peek().is_some() {
            self.begin(Kind::Keys);
            let start = self.out.len();
            self.out.extend_from_slice(&version.to_le_bytes());
            for (key, state) in states.by_ref() {
                match state {
                    Some(r) => {
                        let bytes = r.as_bytes();
                        self.out.push(KeyOp::Put as u8);
                        let len = u32::try_from(bytes.len()).expect("a value is at most 1 GiB");
                        self.out.extend_from_slice(&len.to_le_bytes());
                        self.out.extend_from_slice(bytes);
                    }
                    None => {
                        self.out.push(KeyOp::Delete as u8);
                        let len = u16::try_from(key.len()).expect("keys are at most 64 KiB");
                        self.out.extend_from_slice(&len.to_le_bytes());
                        self.out.extend_from_slice(key.as_bytes());
                    }
                }
                if self.out.len() - start >= SPLIT_BYTES {
                    break;
                }
            }
        }
    }

    /// Seal the last record; returns how many records the group holds.
    pub fn finish(mut self) -> u64 {
        if let Some(start) = self.open.take() {
            self.seal(start, false);
        }
        self.records
    }
}

/// One journal file being appended to: its length (every byte a whole, good record) and how
/// much of it is known to be on disk.
#[derive(Debug)]
pub struct Journal {
    seq: u64,
    path: PathBuf,
    file: File,
    len: u64,
    synced: u64,
    /// Writeback started up to here (see `write_behind`).
    behind: u64,
}

impl Journal {
    /// Create segment `seq` (it must not exist), private, and make its name durable.
    pub fn create(path: PathBuf, seq: u64) -> io::Result<Journal> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        if let Some(dir) = path.parent() {
            crate::persist::sync_dir(dir)?;
        }
        Ok(Journal {
            seq,
            path,
            file,
            len: 0,
            synced: 0,
            behind: 0,
        })
    }

    /// Go on appending to an existing segment whose first `len` bytes are good (start-up,
    /// after any torn tail was cut).
    pub fn open(path: PathBuf, seq: u64, len: u64) -> io::Result<Journal> {
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(Journal {
            seq,
            path,
            file,
            len,
            synced: len,
            behind: len,
        })
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Bytes written but not yet known to be on disk.
    pub fn unsynced(&self) -> u64 {
        self.len - self.synced
    }

    /// Append `bytes` (whole records). On failure the file is cut back to its last good record;
    /// if even that fails, the error says so and the caller must stop appending here.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), AppendError> {
        match self.file.write_all(bytes) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => Err(self.cut_after(e)),
        }
    }

    /// fdatasync what was appended since the last sync.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.synced == self.len {
            return Ok(());
        }
        self.file.sync_data()?;
        self.synced = self.len;
        Ok(())
    }

    /// Start writing the whole MiBs appended since the last call to the disk, without waiting:
    /// a journal synced only now and then (interval mode) never leaves much for its fdatasync.
    /// Whole MiBs only, so no block goes to the disk twice.
    pub fn write_behind(&mut self) {
        const STEP: u64 = 1024 * 1024;
        let upto = self.len / STEP * STEP;
        if upto > self.behind {
            writeback::start(&self.file, self.behind, upto);
            self.behind = upto;
        }
    }

    /// Undo the appends after `len` (a group whose sync failed): cut the file back to it.
    pub fn cut_to(&mut self, len: u64, cause: io::Error) -> AppendError {
        self.len = len.min(self.len);
        self.synced = self.synced.min(self.len);
        self.behind = self.behind.min(self.len);
        self.cut_after(cause)
    }

    fn cut_after(&mut self, cause: io::Error) -> AppendError {
        match self.file.set_len(self.len) {
            Ok(()) => AppendError { cause, cut: true },
            Err(_) => AppendError { cause, cut: false },
        }
    }
}

/// An append or sync that failed. `cut`: the journal was cut back to its last good record; when
/// false, records of undone changes may remain after it, so nothing more may be appended.
#[derive(Debug)]
pub struct AppendError {
    pub cause: io::Error,
    pub cut: bool,
}
