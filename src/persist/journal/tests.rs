//! The journal's format, written and read back: round trips, torn tails at every cut, damage
//! at every byte, and what a write costs.

use super::*;
use crate::auth::Source;
use crate::store::{Persistence, Project, Record, ValueRef};
use std::path::{Path, PathBuf};

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
