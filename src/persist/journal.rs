//! The journal: an append-only file per project beside its snapshot. Each loop turn appends one
//! *group* of records per changed project, framed so that a torn or corrupted record is always
//! caught. This file encodes what the store holds (it never changes the store), appends, syncs
//! and cuts back a journal file, and scans one back record by record.
//!
//! Framing (integers little-endian):
//!
//! ```text
//! record:  len: u32 | !len: u32 | crc32c(payload): u32 | payload (len bytes)
//! payload: kind: u8 | body        (kind's top bit set: more records of this group follow)
//!   KEYS    = 1: project version: u64 | op*
//!                  put:    1 | record length: u32 | the key's packed record (see store/record.rs)
//!                  delete: 2 | key length: u16 | key
//!   META    = 2: the project's settings and tokens, as the snapshot header's JSON
//!   DELETED = 3: (empty) the project was deleted
//! ```
//!
//! A record states the resulting state (a key's whole new value, version and expiry; a removal;
//! all settings), never an operation, so replaying a record twice changes nothing. A group is
//! applied only once its last record is read: a batch or an import is all or nothing across a
//! crash. `!len` guards the length itself, so a flipped length is corruption, not a torn tail.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::writeback;
use crate::store::Record;

pub const HEADER: usize = 12;
/// The top bit of a record's kind: more records of its group follow.
const MORE: u8 = 0x80;

/// What a record holds (its first byte, but for `MORE`).
#[derive(Clone, Copy)]
#[repr(u8)]
enum Kind {
    Keys = 1,
    Meta = 2,
    Deleted = 3,
}

/// What a KEYS record says of one key.
#[repr(u8)]
enum KeyOp {
    Put = 1,
    Delete = 2,
}
/// Key records are cut at about this size, so no single record needs a huge buffer to check.
const SPLIT_BYTES: usize = 1024 * 1024;

/// CRC-32C (Castagnoli), the checksum etcd's WAL and ext4's metadata use, eight bytes at a time
/// (slice-by-8): start-up checks every byte of a journal that may be as large as its snapshot.
pub fn crc32c(data: &[u8]) -> u32 {
    const fn tables() -> [[u32; 256]; 8] {
        let mut t = [[0u32; 256]; 8];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0x82F6_3B78 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[0][i] = c;
            i += 1;
        }
        let mut i = 0;
        while i < 256 {
            let mut s = 1;
            while s < 8 {
                let prev = t[s - 1][i];
                t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
                s += 1;
            }
            i += 1;
        }
        t
    }
    static T: [[u32; 256]; 8] = tables();
    let mut c = !0u32;
    let mut chunks = data.chunks_exact(8);
    for b in chunks.by_ref() {
        let lo = c ^ u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        c = T[7][(lo & 0xff) as usize]
            ^ T[6][((lo >> 8) & 0xff) as usize]
            ^ T[5][((lo >> 16) & 0xff) as usize]
            ^ T[4][(lo >> 24) as usize]
            ^ T[3][b[4] as usize]
            ^ T[2][b[5] as usize]
            ^ T[1][b[6] as usize]
            ^ T[0][b[7] as usize];
    }
    for &b in chunks.remainder() {
        c = T[0][((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

// ---- writing ----

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
            super::sync_dir(dir)?;
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

// ---- reading ----

/// One decoded record.
#[derive(Debug)]
pub enum Entry {
    Keys {
        version: u64,
        ops: Vec<Op>,
    },
    /// The project header's JSON.
    Meta(Vec<u8>),
    Deleted,
}

#[derive(Debug)]
pub enum Op {
    Put(Record),
    Delete(Box<str>),
}

/// How a scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every byte belongs to a whole group.
    Clean,
    /// The file ends inside a group that was never finished: everything from `offset` on was
    /// never acknowledged, and may be cut off.
    Torn { offset: u64, why: String },
    /// A bad record before the end: the journal cannot be trusted past `offset`.
    Corrupt { offset: u64, why: String },
}

/// What a scan found.
#[derive(Debug)]
pub struct Scan {
    /// Bytes of whole, good groups from the start.
    pub good_len: u64,
    /// Records in those groups.
    pub records: u64,
    pub end: End,
}

/// Read a journal from the start, handing each complete group to `apply` (which may refuse it:
/// that is corruption at the group's offset). Stops at the first torn or bad record.
pub fn scan(
    path: &Path,
    mut apply: impl FnMut(Vec<Entry>) -> Result<(), String>,
) -> io::Result<Scan> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(256 * 1024, file);
    let mut pos = 0u64;
    let mut scan = Scan {
        good_len: 0,
        records: 0,
        end: End::Clean,
    };
    let mut group: Vec<Entry> = Vec::new();
    let mut group_records = 0;
    let mut payload = Vec::new();
    loop {
        let torn = |why: String| End::Torn {
            offset: scan.good_len,
            why,
        };
        if pos == file_len {
            if !group.is_empty() {
                scan.end = torn(format!(
                    "the group of records starting at byte {} never finished",
                    scan.good_len
                ));
            }
            return Ok(scan);
        }
        let left = file_len - pos;
        if left < HEADER as u64 {
            scan.end = torn(format!("a record header cut short at byte {pos}"));
            return Ok(scan);
        }
        let mut head = [0u8; HEADER];
        r.read_exact(&mut head)?;
        let word = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4 bytes"));
        let (len, not_len, crc) = (word(0), word(4), word(8));
        if not_len != !len {
            // A file extended but never written (zeros) is a torn write, not a bad record.
            scan.end = if head.iter().all(|&b| b == 0) && rest_is_zero(&mut r)? {
                torn(format!("zeros from byte {pos} to the end"))
            } else {
                corrupt_at(pos, "bad record header at byte", "(its length check fails)")
            };
            return Ok(scan);
        }
        let end = pos + HEADER as u64 + u64::from(len);
        if end > file_len {
            scan.end = torn(format!(
                "the record at byte {pos} runs past the end of the file"
            ));
            return Ok(scan);
        }
        // Bounded by the file's real size (checked above), never by the length alone.
        payload.clear();
        payload.resize(len as usize, 0);
        r.read_exact(&mut payload)?;
        if crc32c(&payload) != crc {
            scan.end = if end == file_len {
                torn(format!("the last record, at byte {pos}, is incomplete"))
            } else {
                corrupt_at(pos, "checksum mismatch in the record at byte", "")
            };
            return Ok(scan);
        }
        let Some((entry, more)) = decode(&payload) else {
            scan.end = corrupt_at(pos, "the record at byte", "is not a pykv journal record");
            return Ok(scan);
        };
        group.push(entry);
        group_records += 1;
        pos = end;
        if !more {
            let offset = scan.good_len;
            if let Err(why) = apply(std::mem::take(&mut group)) {
                scan.end = End::Corrupt {
                    offset,
                    why: format!("the records from byte {offset}: {why}"),
                };
                return Ok(scan);
            }
            scan.good_len = pos;
            scan.records += group_records;
            group_records = 0;
        }
    }
}

/// Damage at byte `pos`: "`before` <pos> `after`".
fn corrupt_at(pos: u64, before: &str, after: &str) -> End {
    let why = format!("{before} {pos} {after}");
    End::Corrupt {
        offset: pos,
        why: why.trim_end().to_string(),
    }
}

fn rest_is_zero(r: &mut impl Read) -> io::Result<bool> {
    let mut buf = [0u8; 8192];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

/// A payload to an entry, and whether more records of its group follow. None: malformed.
fn decode(payload: &[u8]) -> Option<(Entry, bool)> {
    let (&kind, body) = payload.split_first()?;
    let more = kind & MORE != 0;
    let entry = match kind & !MORE {
        k if k == Kind::Keys as u8 => {
            let (version, mut rest) = body.split_first_chunk::<8>()?;
            let mut ops = Vec::new();
            while let Some((&op, tail)) = rest.split_first() {
                match op {
                    o if o == KeyOp::Put as u8 => {
                        let (len, tail) = tail.split_first_chunk::<4>()?;
                        let len = u32::from_le_bytes(*len) as usize;
                        let bytes = tail.get(..len)?;
                        ops.push(Op::Put(Record::from_bytes(bytes)?));
                        rest = &tail[len..];
                    }
                    o if o == KeyOp::Delete as u8 => {
                        let (len, tail) = tail.split_first_chunk::<2>()?;
                        let len = u16::from_le_bytes(*len) as usize;
                        let key = std::str::from_utf8(tail.get(..len)?).ok()?;
                        if key.is_empty() {
                            return None;
                        }
                        ops.push(Op::Delete(key.into()));
                        rest = &tail[len..];
                    }
                    _ => return None,
                }
            }
            Entry::Keys {
                version: u64::from_le_bytes(*version),
                ops,
            }
        }
        k if k == Kind::Meta as u8 => Entry::Meta(body.to_vec()),
        k if k == Kind::Deleted as u8 && body.is_empty() => Entry::Deleted,
        _ => return None,
    };
    Some((entry, more))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Source;
    use crate::store::{Persistence, Project, ValueRef};

    /// The current state of `keys` in `p`, as the server hands them to `Group::keys`.
    fn keys<'p>(g: &mut Group<'_>, p: &'p Project, keys: &[&'p str]) {
        g.keys(p.version(), keys.iter().map(|k| (*k, p.record(k))));
    }

    fn project() -> Project {
        let mut p = Project::new(Persistence::Sync, Source::Api, vec![]);
        for (i, k) in ["a", "b/é"].iter().enumerate() {
            p.replay_put(Record::new(
                k,
                ValueRef {
                    data: b"value",
                    content_type: Some("text/plain"),
                    version: i as u64 + 1,
                    expires_at: None,
                },
            ));
        }
        p
    }

    fn write(dir: &Path, bytes: &[u8]) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("p.1.journal");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("pykv-journal-{name}-{}", std::process::id()))
    }

    fn groups(path: &Path) -> (Vec<Vec<Entry>>, Scan) {
        let mut seen = Vec::new();
        let scan = scan(path, |g| {
            seen.push(g);
            Ok(())
        })
        .unwrap();
        (seen, scan)
    }

    /// `n` groups, each of key `a` of `p`.
    fn one_key_groups(p: &Project, n: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        for _ in 0..n {
            let mut g = Group::new(&mut buf);
            keys(&mut g, p, &["a"]);
            g.finish();
        }
        buf
    }

    /// The scan applied one group, then found a torn (or, not `torn`, a corrupt) record at
    /// byte `at`.
    fn ends_after_one_group(seen: &[Vec<Entry>], scan: &Scan, torn: bool, at: usize, what: &str) {
        assert_eq!(seen.len(), 1, "{what}");
        let offset = match &scan.end {
            End::Torn { offset, .. } if torn => *offset,
            End::Corrupt { offset, .. } if !torn => *offset,
            other => panic!("{what}: {other:?}"),
        };
        assert_eq!(offset, at as u64, "{what}");
    }

    #[test]
    fn crc32c_matches_the_standard_check_values() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        // Eight at a time and one at a time agree, at every length and alignment.
        let data: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37)).collect();
        for len in 0..data.len() {
            let mut one = !0u32;
            for &b in &data[..len] {
                one ^= u32::from(b);
                for _ in 0..8 {
                    one = if one & 1 != 0 {
                        0x82F6_3B78 ^ (one >> 1)
                    } else {
                        one >> 1
                    };
                }
            }
            assert_eq!(crc32c(&data[..len]), !one, "length {len}");
        }
    }

    #[test]
    fn a_group_reads_back_as_written() {
        let p = project();
        let mut buf = Vec::new();
        let mut g = Group::new(&mut buf);
        g.meta(br#"{"x":1}"#);
        keys(&mut g, &p, &["a", "gone"]);
        assert_eq!(g.finish(), 2);
        let dir = temp("roundtrip");
        let path = write(&dir, &buf);
        let (seen, scan) = groups(&path);
        assert_eq!(scan.end, End::Clean);
        assert_eq!((scan.good_len, scan.records), (buf.len() as u64, 2));
        assert_eq!(seen.len(), 1);
        assert!(matches!(&seen[0][0], Entry::Meta(j) if j == br#"{"x":1}"#));
        let Entry::Keys { version, ops } = &seen[0][1] else {
            panic!("keys expected")
        };
        assert_eq!(*version, 2);
        assert!(matches!(&ops[0], Op::Put(r) if r.key() == "a" && r.data() == b"value"));
        assert!(matches!(&ops[1], Op::Delete(k) if &**k == "gone"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn every_cut_inside_the_last_group_is_torn_and_keeps_the_groups_before() {
        let p = project();
        // An empty group writes nothing.
        let mut buf = one_key_groups(&p, 0);
        Group::new(&mut buf).finish();
        assert!(buf.is_empty());
        buf = one_key_groups(&p, 1);
        let first = buf.len();
        let mut g = Group::new(&mut buf);
        g.meta(b"{}");
        keys(&mut g, &p, &["b/é"]);
        g.finish();
        let dir = temp("torn");
        for cut in first + 1..buf.len() {
            let (seen, scan) = groups(&write(&dir, &buf[..cut]));
            assert_eq!(scan.good_len, first as u64, "cut at {cut}");
            ends_after_one_group(&seen, &scan, true, first, &format!("cut at {cut}"));
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_flipped_byte_before_the_last_record_is_corruption_at_its_record() {
        let buf = one_key_groups(&project(), 3);
        let one = buf.len() / 3;
        let dir = temp("flip");
        for i in one..2 * one {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            let (seen, scan) = groups(&write(&dir, &bad));
            ends_after_one_group(&seen, &scan, false, one, &format!("flip at {i}"));
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn trailing_zeros_are_a_torn_write() {
        let mut buf = one_key_groups(&project(), 1);
        let good = buf.len() as u64;
        buf.extend_from_slice(&[0; 4096]);
        let dir = temp("zeros");
        let (_, scan) = groups(&write(&dir, &buf));
        assert!(matches!(scan.end, End::Torn { offset, .. } if offset == good));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_hundred_byte_put_costs_well_under_300_bytes() {
        let mut p = Project::new(Persistence::Sync, Source::Api, vec![]);
        p.replay_put(Record::new(
            "key-000123",
            ValueRef {
                data: &[7; 100],
                content_type: None,
                version: 1,
                expires_at: None,
            },
        ));
        let mut buf = Vec::new();
        let mut g = Group::new(&mut buf);
        keys(&mut g, &p, &["key-000123"]);
        g.finish();
        assert_eq!(buf.len(), 151);
    }
}
