//! The journal: an append-only file per project beside its snapshot. Each loop turn appends one
//! *group* of records per changed project, framed so that a torn or corrupted record is always
//! caught. This module holds the format (below, and its constants and checksum here); `write.rs`
//! encodes groups and appends, syncs and cuts back a journal file; `read.rs` scans one back.
//! Neither changes the store.
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

mod read;
#[cfg(test)]
mod tests;
mod write;

pub use read::{scan, End, Entry, Op, Scan};
pub use write::{AppendError, Group, Journal};

pub const HEADER: usize = 12;
/// The top bit of a record's kind: more records of its group follow.
pub(super) const MORE: u8 = 0x80;

/// What a record holds (its first byte, but for `MORE`).
#[derive(Clone, Copy)]
#[repr(u8)]
pub(super) enum Kind {
    Keys = 1,
    Meta = 2,
    Deleted = 3,
}

/// What a KEYS record says of one key.
#[repr(u8)]
pub(super) enum KeyOp {
    Put = 1,
    Delete = 2,
}
/// Key records are cut at about this size, so no single record needs a huge buffer to check.
pub(super) const SPLIT_BYTES: usize = 1024 * 1024;

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
