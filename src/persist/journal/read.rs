//! Reading a journal back: `scan` hands each complete group of records to its caller, and says
//! how the file ended: cleanly, torn (the last group never finished: never acknowledged), or
//! damaged before its end.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use super::{crc32c, KeyOp, Kind, HEADER, MORE};
use crate::store::Record;

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
