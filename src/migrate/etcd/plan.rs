//! What a migration must write, decided without talking to anyone: which keys' writes a
//! comparison with etcd calls for, the lease each expiry gets, and how keys and writes are cut
//! into chunks and transactions within etcd's limits. Pure functions: no I/O, no `Gateway`.

use std::collections::HashMap;

use crate::migrate::gateway::{Guarded, Write};
use crate::migrate::Naming;
use crate::store::ValueRef;

/// etcd's default `--max-txn-ops`: no transaction of ours has more operations (or compares).
const MAX_TXN_OPS: usize = 128;
/// Key, value and content-type bytes per transaction: etcd refuses requests over its
/// `--max-request-bytes` (1.5 MiB by default), and encoding adds a little to each key.
const MAX_TXN_BYTES: usize = 1024 * 1024;
/// Keys read together: one transaction's worth.
const KEYS_PER_CHUNK: usize = MAX_TXN_OPS;
/// Lease ids are "pykv" in ASCII followed by the expiry's Unix second: one lease per second,
/// the same id on every run, so a second run finds the keys already on the right lease.
const LEASE_ID_BASE: i64 = 0x7079_6b76 << 32;

pub fn lease_id(expires_at: u64) -> i64 {
    LEASE_ID_BASE | (expires_at & 0xffff_ffff) as i64
}

/// A key as etcd holds it, for comparing.
pub struct Held {
    pub value: Vec<u8>,
    pub lease: i64,
    pub mod_revision: i64,
}

/// One key's writes, guarded, and its expiry (for its lease).
pub struct Change<'k> {
    pub key: &'k str,
    pub writes: Vec<Guarded>,
    pub expires_at: Option<u64>,
}

/// What one key needs.
pub enum Need {
    Nothing,
    /// Its writes (the value, and the content type put or removed), guarded.
    Writes(Vec<Guarded>),
}

/// What etcd must do for one key to hold `value` (and its content type) on the right lease.
pub fn need(
    naming: &Naming,
    project: &str,
    key: &str,
    value: &ValueRef<'_>,
    held: &HashMap<Vec<u8>, Held>,
) -> Need {
    let lease = value.expires_at.map_or(0, lease_id);
    let mut writes = Vec::new();
    let data_key = naming.key(project, key).into_bytes();
    let current = held.get(&data_key);
    if !current.is_some_and(|h| h.value == value.data && h.lease == lease) {
        writes.push(Guarded {
            mod_revision: current.map_or(0, |h| h.mod_revision),
            write: Write::Put {
                key: data_key,
                value: value.data.to_vec(),
                lease,
            },
        });
    }
    let meta_key = naming.meta_key(project, key).into_bytes();
    let current = held.get(&meta_key);
    match (value.content_type, current) {
        (Some(ct), Some(h)) if h.value == ct.as_bytes() && h.lease == lease => {}
        (Some(ct), _) => writes.push(Guarded {
            mod_revision: current.map_or(0, |h| h.mod_revision),
            write: Write::Put {
                key: meta_key,
                value: ct.as_bytes().to_vec(),
                lease,
            },
        }),
        (None, Some(h)) => writes.push(Guarded {
            mod_revision: h.mod_revision,
            write: Write::Delete { key: meta_key },
        }),
        (None, None) => {}
    }
    if writes.is_empty() {
        Need::Nothing
    } else {
        Need::Writes(writes)
    }
}

/// The bytes a key adds to a request: its names, value and content type.
fn weight(naming: &Naming, project: &str, key: &str, v: &ValueRef<'_>) -> usize {
    let names = naming.key(project, key).len() + naming.meta_key(project, key).len();
    names + v.data.len() + v.content_type.map_or(0, str::len)
}

/// Consecutive keys, at most `KEYS_PER_CHUNK` and `MAX_TXN_BYTES` (a larger key alone).
pub fn chunks<'i, 'v>(
    naming: &Naming,
    project: &str,
    items: &'i [(&'v str, ValueRef<'v>)],
) -> Vec<&'i [(&'v str, ValueRef<'v>)]> {
    runs(items, KEYS_PER_CHUNK, |(k, v)| {
        (1, weight(naming, project, k, v))
    })
}

/// The keys' writes as transactions of at most `MAX_TXN_OPS` operations and `MAX_TXN_BYTES`,
/// a key's value and content type always in the same one.
pub fn group<'c, 'k>(changes: &'c [Change<'k>]) -> Vec<&'c [Change<'k>]> {
    let size = |w: &Guarded| match &w.write {
        Write::Put { key, value, .. } => key.len() + value.len(),
        Write::Delete { key } => key.len(),
    };
    runs(changes, MAX_TXN_OPS, |c| {
        (c.writes.len(), c.writes.iter().map(size).sum())
    })
}

/// `items` cut into consecutive runs of at most `max_ops` operations and `MAX_TXN_BYTES`,
/// `cost` giving each item's operations and bytes; an item over either limit goes alone.
fn runs<T>(items: &[T], max_ops: usize, cost: impl Fn(&T) -> (usize, usize)) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut start = 0;
    let (mut ops, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let (n, b) = cost(item);
        if i > start && (ops + n > max_ops || bytes + b > MAX_TXN_BYTES) {
            out.push(&items[start..i]);
            start = i;
            ops = 0;
            bytes = 0;
        }
        ops += n;
        bytes += b;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(data: &'a [u8], ct: Option<&'a str>, exp: Option<u64>) -> ValueRef<'a> {
        ValueRef {
            data,
            content_type: ct,
            version: 1,
            expires_at: exp,
        }
    }

    fn naming() -> Naming {
        Naming::new("/pykv/").expect("valid")
    }

    #[test]
    fn lease_ids_spell_pykv_and_the_second() {
        assert_eq!(lease_id(1_800_000_000), 0x7079_6b76_6b49_d200);
        assert_eq!(
            format!("{:x}", lease_id(1)),
            "7079_6b76_0000_0001".replace('_', "")
        );
    }

    #[test]
    fn a_key_held_as_is_needs_nothing() {
        let mut held = HashMap::new();
        held.insert(
            b"/pykv/p/k".to_vec(),
            Held {
                value: b"v".to_vec(),
                lease: lease_id(2_000_000_000),
                mod_revision: 9,
            },
        );
        let v = value(b"v", None, Some(2_000_000_000));
        assert!(matches!(
            need(&naming(), "p", "k", &v, &held),
            Need::Nothing
        ));
        // Another lease, a content type to add, a stale content type to remove: writes.
        let v2 = value(b"v", None, Some(2_000_000_001));
        let Need::Writes(w) = need(&naming(), "p", "k", &v2, &held) else {
            panic!("the lease differs")
        };
        assert_eq!((w.len(), w[0].mod_revision), (1, 9));
        let v3 = value(b"v", Some("text/plain"), Some(2_000_000_000));
        let Need::Writes(w) = need(&naming(), "p", "k", &v3, &held) else {
            panic!("the type is missing")
        };
        assert_eq!(
            (w.len(), w[0].write.key(), w[0].mod_revision),
            (1, &b"/pykv/.meta/p/k"[..], 0)
        );
        held.insert(
            b"/pykv/.meta/p/k".to_vec(),
            Held {
                value: b"text/plain".to_vec(),
                lease: 0,
                mod_revision: 4,
            },
        );
        let v4 = value(b"v", None, Some(2_000_000_000));
        let Need::Writes(w) = need(&naming(), "p", "k", &v4, &held) else {
            panic!("the type must go")
        };
        assert!(matches!(w[0].write, Write::Delete { .. }));
        assert_eq!(w[0].mod_revision, 4);
    }

    #[test]
    fn chunks_and_transactions_stay_within_etcds_limits() {
        let keys: Vec<String> = (0..300).map(|i| format!("k{i:03}")).collect();
        let big = vec![7u8; 700 * 1024];
        let mut items: Vec<(&str, ValueRef<'_>)> = keys
            .iter()
            .map(|k| (k.as_str(), value(b"x", None, None)))
            .collect();
        items[200].1 = value(&big, None, None);
        items[201].1 = value(&big, None, None);
        let sizes: Vec<usize> = chunks(&naming(), "p", &items)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [128, 73, 99]);
        let changes: Vec<Change<'_>> = (0..100)
            .map(|i| {
                let put = |k: &str| Guarded {
                    mod_revision: 0,
                    write: Write::Put {
                        key: k.as_bytes().to_vec(),
                        value: vec![],
                        lease: 0,
                    },
                };
                Change {
                    key: keys[i].as_str(),
                    writes: vec![put("a"), put("b")],
                    expires_at: None,
                }
            })
            .collect();
        let sizes: Vec<usize> = group(&changes).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, [64, 36]);
    }
}
