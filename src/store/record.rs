//! One key and its value packed into a single allocation, so a stored key costs one heap block
//! and a 16-byte slot in the project's sorted set (the footprint target is ≤ 80 bytes of overhead
//! per key). Records are immutable: a change writes a new record. Pure data, no I/O.
//!
//! Layout: `version: u64 LE | expires_at: u32 LE (0 = none) | key_len: u16 LE | type_len: u8 |
//! key | content type | value`. Unix seconds fit in 32 bits until 2106; callers keep expiries
//! within `MAX_EXPIRES_AT`. `application/octet-stream`, what GET answers for a value stored
//! without a type, is stored as no type: the same answer in 24 fewer bytes per key.

use std::borrow::Borrow;
use std::cmp::Ordering;

const HEADER: usize = 8 + 4 + 2 + 1;
/// The latest expiry a record can hold (Unix seconds, the year 2106).
pub const MAX_EXPIRES_AT: u64 = u32::MAX as u64;
/// What a value without a stored type is served as.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// A Content-Type longer than this cannot be stored (its length is one byte).
pub const MAX_CONTENT_TYPE: usize = 255;
/// A key longer than this cannot be stored (its length is two bytes).
pub const MAX_KEY: usize = u16::MAX as usize;

#[derive(Clone)]
pub struct Record(Box<[u8]>);

/// A stored value as handlers and snapshots see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueRef<'a> {
    pub data: &'a [u8],
    pub content_type: Option<&'a str>,
    pub version: u64,
    /// Unix seconds after which the key counts as absent.
    pub expires_at: Option<u64>,
}

impl Record {
    /// Callers keep `key` within `MAX_KEY` and `content_type` within `MAX_CONTENT_TYPE` bytes
    /// (config limits and request validation guarantee it).
    pub fn new(key: &str, v: ValueRef<'_>) -> Record {
        let ct = v
            .content_type
            .filter(|t| *t != DEFAULT_CONTENT_TYPE)
            .unwrap_or("");
        // Clamped, not trusted: an expiry past 2106 is as good as none for a while yet.
        let expires = v.expires_at.map_or(0, |t| t.min(MAX_EXPIRES_AT) as u32);
        assert!(
            key.len() <= MAX_KEY && ct.len() <= MAX_CONTENT_TYPE,
            "validated by callers"
        );
        let mut b = Vec::with_capacity(HEADER + key.len() + ct.len() + v.data.len());
        b.extend_from_slice(&v.version.to_le_bytes());
        b.extend_from_slice(&expires.to_le_bytes());
        b.extend_from_slice(&(key.len() as u16).to_le_bytes());
        b.push(ct.len() as u8);
        b.extend_from_slice(key.as_bytes());
        b.extend_from_slice(ct.as_bytes());
        b.extend_from_slice(v.data);
        Record(b.into_boxed_slice())
    }

    /// A record from its packed bytes (as `as_bytes` gives them, e.g. read back from a
    /// journal): None unless the layout holds together and the key and type are UTF-8.
    pub fn from_bytes(bytes: &[u8]) -> Option<Record> {
        if bytes.len() < HEADER {
            return None;
        }
        let key_len = u16::from_le_bytes([bytes[12], bytes[13]]) as usize;
        let type_len = bytes[14] as usize;
        let end = HEADER + key_len + type_len;
        if key_len == 0 || bytes.len() < end {
            return None;
        }
        std::str::from_utf8(&bytes[HEADER..HEADER + key_len]).ok()?;
        let ct = std::str::from_utf8(&bytes[HEADER + key_len..end]).ok()?;
        if !ct.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return None;
        }
        Some(Record(bytes.into()))
    }

    /// The packed bytes: what the journal writes for a key's new state.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn key_len(&self) -> usize {
        u16::from_le_bytes([self.0[12], self.0[13]]) as usize
    }

    fn type_len(&self) -> usize {
        self.0[14] as usize
    }

    pub fn key_bytes(&self) -> &[u8] {
        &self.0[HEADER..HEADER + self.key_len()]
    }

    pub fn key(&self) -> &str {
        std::str::from_utf8(self.key_bytes()).expect("records are built from a &str key")
    }

    pub fn version(&self) -> u64 {
        u64::from_le_bytes(self.0[0..8].try_into().expect("8 bytes"))
    }

    pub fn expires_at(&self) -> Option<u64> {
        let t = u32::from_le_bytes(self.0[8..12].try_into().expect("4 bytes"));
        (t != 0).then_some(u64::from(t))
    }

    /// Key and value bytes, what a project's `bytes` counts.
    pub fn size(&self) -> usize {
        self.key_len() + self.data().len()
    }

    pub fn data(&self) -> &[u8] {
        &self.0[HEADER + self.key_len() + self.type_len()..]
    }

    pub fn value(&self) -> ValueRef<'_> {
        let start = HEADER + self.key_len();
        let ct = &self.0[start..start + self.type_len()];
        ValueRef {
            data: self.data(),
            content_type: (!ct.is_empty())
                .then(|| std::str::from_utf8(ct).expect("records are built from a &str type")),
            version: self.version(),
            expires_at: self.expires_at(),
        }
    }
}

// Records are ordered and found by their key alone, so a set of records is a map by key.
impl Borrow<[u8]> for Record {
    fn borrow(&self) -> &[u8] {
        self.key_bytes()
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        self.key_bytes() == other.key_bytes()
    }
}

impl Eq for Record {}

impl PartialOrd for Record {
    fn partial_cmp(&self, other: &Record) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Record {
    fn cmp(&self, other: &Record) -> Ordering {
        self.key_bytes().cmp(other.key_bytes())
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("key", &self.key())
            .field("value", &self.value())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_gives_back_what_it_was_built_from() {
        let v = ValueRef {
            data: &[0, 1, 255],
            content_type: Some("text/plain"),
            version: 7,
            expires_at: Some(1_800_000_000),
        };
        let r = Record::new("a/ké", v);
        assert_eq!(r.key(), "a/ké");
        assert_eq!(r.value(), v);
        assert_eq!(r.size(), "a/ké".len() + 3);
        let bare = Record::new(
            "k",
            ValueRef {
                data: b"",
                content_type: None,
                version: 1,
                expires_at: None,
            },
        );
        assert_eq!(bare.value().content_type, None);
        assert_eq!(bare.value().expires_at, None);
        let typed = Record::new(
            "k",
            ValueRef {
                data: b"",
                content_type: Some(DEFAULT_CONTENT_TYPE),
                version: 1,
                expires_at: Some(u64::MAX),
            },
        );
        assert_eq!(typed.value().content_type, None);
        assert_eq!(typed.value().expires_at, Some(MAX_EXPIRES_AT));
    }

    #[test]
    fn a_record_survives_its_bytes_and_bad_bytes_are_refused() {
        let v = ValueRef {
            data: b"value",
            content_type: Some("text/plain"),
            version: 9,
            expires_at: Some(7),
        };
        let r = Record::new("k/é", v);
        let back = Record::from_bytes(r.as_bytes()).expect("valid");
        assert_eq!((back.key(), back.value()), ("k/é", v));
        let bytes = r.as_bytes();
        assert!(
            Record::from_bytes(&bytes[..HEADER + 2]).is_none(),
            "cut in the key"
        );
        let mut bad = bytes.to_vec();
        bad[12] = 0;
        bad[13] = 0;
        assert!(Record::from_bytes(&bad).is_none(), "empty key");
        let mut bad = bytes.to_vec();
        bad[HEADER] = 0xff;
        assert!(Record::from_bytes(&bad).is_none(), "key not UTF-8");
    }

    #[test]
    fn records_order_by_key_bytes() {
        let v = ValueRef {
            data: b"",
            content_type: None,
            version: 1,
            expires_at: None,
        };
        let mut set = std::collections::BTreeSet::new();
        for k in ["b", "a", "ab"] {
            set.insert(Record::new(k, v));
        }
        let keys: Vec<&str> = set.iter().map(Record::key).collect();
        assert_eq!(keys, ["a", "ab", "b"]);
        assert!(set.contains(b"ab".as_slice()));
    }
}
