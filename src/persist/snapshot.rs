//! Snapshots: the file format, writing one (whole, or a slice of keys at a time across loop
//! turns), and loading one. Reads the store and never changes it.
//!
//! A snapshot is one JSON document laid out one key per line, so it is both valid JSON (for jq)
//! and streamed line by line in both directions (never the whole project in memory twice):
//!
//! ```text
//! {"pykv_snapshot": 1,
//! "project": {"name":"p","persistence":"sync","source":"api","version":7,"journal":3,"tokens":[...]},
//! "keys": [
//! {"key":"a","value":"text","content_type":"text/plain","version":3,"expires_at":null},
//! {"key":"b","base64":"AAEC","content_type":null,"version":7,"expires_at":null}
//! ]}
//! ```
//!
//! `journal` names the first journal segment to replay after it (absent in files written before
//! the journal existed: 1).

use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{create_private, snapshot_path, sync_dir, writeback};
use crate::auth::{Source, Token};
use crate::base64::{decode as base64_decode, encode as base64_encode};
use crate::store::{self, Persistence, Project, Quota, Record, Value, ValueRef};
use crate::wholenum;

pub const FORMAT_VERSION: u64 = 1;
const FIRST_LINE: &str = "{\"pykv_snapshot\": 1,";
const KEYS_LINE: &str = "\"keys\": [";
const LAST_LINE: &str = "]}";

/// A project's settings and tokens: the snapshot's second line, and a journal's META record.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub name: String,
    pub persistence: Persistence,
    #[serde(default, skip_serializing_if = "is_unlimited")]
    pub quota: Quota,
    pub source: Source,
    pub version: u64,
    /// The first journal segment to replay after this snapshot (None in a META record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<u64>,
    pub tokens: Vec<Token>,
}

impl Header {
    pub fn of(name: &str, p: &Project, journal: Option<u64>) -> Header {
        Header {
            name: name.to_string(),
            persistence: p.persistence(),
            quota: p.quota(),
            source: p.source(),
            version: p.version(),
            journal,
            tokens: p.tokens().to_vec(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a header always serializes")
    }
}

fn is_unlimited(q: &Quota) -> bool {
    *q == Quota::default()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// Present in multi-project exports; a snapshot or an import ignores it.
    #[serde(default)]
    #[allow(dead_code)]
    project: Option<String>,
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    base64: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default, deserialize_with = "wholenum::one")]
    version: u64,
    #[serde(default, deserialize_with = "wholenum::opt")]
    expires_at: Option<u64>,
}

/// Data written but not known to be on the disk is kept under this much: writeback is started
/// after every slice, and waited for once it falls this far behind (on a slow SD card this paces
/// the job at the card's speed instead of leaving it all to the final fdatasync).
const WRITEBACK_WINDOW: u64 = 2 * 1024 * 1024;

/// A snapshot being written to `<project>.json.tmp`, key by key in byte order, and renamed over
/// `<project>.json` once whole: the rename-on-write dance of rust-atomicwrites, spread over as
/// many calls as the caller likes. Dropped unfinished, it removes its temporary file.
pub struct SnapshotWriter {
    w: Option<BufWriter<File>>,
    tmp: PathBuf,
    path: PathBuf,
    /// The last key written (the next slice starts after it); None before the first.
    after: Option<Box<str>>,
    keys: u64,
    /// Bytes handed to the file so far; writeback started up to `started`, waited for up to
    /// `waited`.
    bytes: u64,
    started: u64,
    waited: u64,
}

impl SnapshotWriter {
    /// Create the temporary file and write the lines before the keys.
    pub fn begin(dir: &Path, header: &Header) -> io::Result<SnapshotWriter> {
        let path = snapshot_path(dir, &header.name);
        let tmp = dir.join(format!("{}.json.tmp", header.name));
        let file = create_private(&tmp)?;
        let mut sw = SnapshotWriter {
            w: Some(BufWriter::with_capacity(64 * 1024, file)),
            tmp,
            path,
            after: None,
            keys: 0,
            bytes: 0,
            started: 0,
            waited: 0,
        };
        let mut head = Vec::new();
        writeln!(head, "{FIRST_LINE}")?;
        head.extend_from_slice(b"\"project\": ");
        head.extend_from_slice(&header.to_json());
        writeln!(head, ",\n{KEYS_LINE}")?;
        sw.writer().write_all(&head)?;
        sw.bytes = head.len() as u64;
        Ok(sw)
    }

    fn writer(&mut self) -> &mut BufWriter<File> {
        self.w
            .as_mut()
            .expect("only finish and drop take the writer")
    }

    /// Write the next keys of `project` (those after the last one written, as they are now)
    /// until about `budget` bytes went out, then start pushing them to the disk, so that
    /// finishing never has a large file to sync in one piece. Returns true once every key is
    /// written.
    pub fn write_slice(&mut self, project: &Project, budget: usize) -> io::Result<bool> {
        let mut written = 0;
        let mut done = true;
        let mut last = None;
        let mut line = Vec::with_capacity(256);
        for r in project.records_after(self.after.as_deref(), usize::MAX) {
            if written >= budget {
                done = false;
                break;
            }
            line.clear();
            if self.keys > 0 {
                line.extend_from_slice(b",\n");
            }
            write_entry(&mut line, r.key(), r.value())?;
            self.writer().write_all(&line)?;
            written += line.len();
            self.bytes += line.len() as u64;
            self.keys += 1;
            last = Some(r.key());
        }
        if let Some(k) = last {
            self.after = Some(k.into());
        }
        let (bytes, started, waited) = (self.bytes, self.started, self.waited);
        let w = self.writer();
        w.flush()?;
        writeback::start(w.get_ref(), started, bytes);
        if bytes - waited > WRITEBACK_WINDOW {
            let upto = bytes - WRITEBACK_WINDOW / 2;
            writeback::wait(w.get_ref(), waited, upto);
            self.waited = upto;
        }
        self.started = bytes;
        Ok(done)
    }

    /// Close the document, sync it, rename it into place and sync the directory. Returns the
    /// snapshot's size in bytes, and the snapshot it replaced, still open: closing it frees its
    /// blocks, which for a large one is better done a step at a time (see `writeback`).
    pub fn finish(mut self) -> io::Result<(u64, Option<File>)> {
        let w = self.w.take().expect("finish runs once");
        let result = self.close(w);
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        result
    }

    fn close(&self, mut w: BufWriter<File>) -> io::Result<(u64, Option<File>)> {
        if self.keys > 0 {
            w.write_all(b"\n")?;
        }
        writeln!(w, "{LAST_LINE}")?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        // The size is the only metadata a reader needs: fdatasync covers it.
        file.sync_data()?;
        let size = file.metadata()?.len();
        let old = match OpenOptions::new().write(true).open(&self.path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        fs::rename(&self.tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok((size, old))
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if self.w.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Write a whole snapshot of `project` at once, replaying from journal segment `journal` on.
/// Returns its size and the snapshot it replaced (see `SnapshotWriter::finish`). For small
/// projects (a new one) and offline tools; the server writes large ones a slice per loop turn.
pub fn save(
    dir: &Path,
    name: &str,
    project: &Project,
    journal: u64,
) -> io::Result<(u64, Option<File>)> {
    let mut w = SnapshotWriter::begin(dir, &Header::of(name, project, Some(journal)))?;
    w.write_slice(project, usize::MAX)?;
    w.finish()
}

/// One key as a JSON object on one line: the snapshot's key lines, and the export format.
pub fn write_entry(w: &mut impl Write, key: &str, v: ValueRef<'_>) -> io::Result<()> {
    w.write_all(b"{\"key\":")?;
    serde_json::to_writer(&mut *w, key)?;
    match std::str::from_utf8(v.data) {
        Ok(text) => {
            w.write_all(b",\"value\":")?;
            serde_json::to_writer(&mut *w, text)?;
        }
        Err(_) => {
            w.write_all(b",\"base64\":\"")?;
            w.write_all(base64_encode(v.data).as_bytes())?;
            w.write_all(b"\"")?;
        }
    }
    w.write_all(b",\"content_type\":")?;
    serde_json::to_writer(&mut *w, &v.content_type)?;
    write!(w, ",\"version\":{},\"expires_at\":", v.version)?;
    serde_json::to_writer(&mut *w, &v.expires_at)?;
    w.write_all(b"}")
}

/// A snapshot as loaded: its header and its keys (a project once the journal is merged in).
pub struct Snapshot {
    pub header: Header,
    /// Its keys, in byte order, each once.
    pub records: Vec<Record>,
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

impl Snapshot {
    /// The first journal segment to replay after it (files from before the journal: 1).
    pub fn journal(&self) -> u64 {
        self.header.journal.unwrap_or(1)
    }
}

/// Why a snapshot could not be loaded: the file, and the line and column at fault (none when
/// the file could not be read at all).
#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub at: Option<(usize, usize)>,
    pub why: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some((line, column)) => write!(
                f,
                "{}: line {line} column {column}: {}",
                self.path.display(),
                self.why
            ),
            None => write!(f, "{}: {}", self.path.display(), self.why),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<LoadError> for String {
    fn from(e: LoadError) -> String {
        e.to_string()
    }
}

/// Load one snapshot. The error names the file and the line and column at fault.
pub fn load(path: &Path) -> Result<Snapshot, LoadError> {
    let fail = |line: usize, col: usize, why: &dyn std::fmt::Display| LoadError {
        path: path.to_path_buf(),
        at: Some((line, col)),
        why: why.to_string(),
    };
    let unreadable = |e: io::Error| LoadError {
        path: path.to_path_buf(),
        at: None,
        why: e.to_string(),
    };
    let file = File::open(path).map_err(unreadable)?;
    let bytes = file.metadata().map_err(unreadable)?.len();
    let mut lines = LineReader::new(BufReader::with_capacity(256 * 1024, file));

    let first = lines.next_line().map_err(|e| fail(1, 1, &e))?;
    if first.as_deref() != Some(FIRST_LINE.as_bytes()) {
        return Err(fail(1, 1, &"not a pykv snapshot of format 1 (first line)"));
    }
    let line = lines
        .next_line()
        .map_err(|e| fail(2, 1, &e))?
        .unwrap_or_default();
    let body = line
        .strip_prefix(b"\"project\": ")
        .and_then(|l| l.strip_suffix(b","))
        .ok_or_else(|| fail(2, 1, &"expected \"project\": {...},"))?;
    let header: Header = serde_json::from_slice(body)
        .map_err(|e| fail(2, e.column() + "\"project\": ".len(), &e))?;
    let expected = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if header.name != expected {
        return Err(fail(
            2,
            1,
            &format!("names project {:?}, not {expected:?}", header.name),
        ));
    }
    store::validate_project_name(&header.name).map_err(|e| fail(2, 1, &e))?;
    let line = lines.next_line().map_err(|e| fail(3, 1, &e))?;
    if line.as_deref() != Some(KEYS_LINE.as_bytes()) {
        return Err(fail(3, 1, &"expected \"keys\": ["));
    }

    let mut records: Vec<Record> = Vec::new();
    let mut sorted = true;
    let mut closed = false;
    let mut last_had_comma = false;
    while let Some(line) = lines.next_line().map_err(|e| fail(lines.number, 1, &e))? {
        let n = lines.number;
        if line == LAST_LINE.as_bytes() {
            if last_had_comma {
                return Err(fail(n, 1, &"a comma before the closing ]}"));
            }
            closed = true;
            break;
        }
        let (json, comma) = match line.strip_suffix(b",") {
            Some(j) => (j, true),
            None => (&line[..], false),
        };
        if !records.is_empty() && !last_had_comma {
            return Err(fail(n, 1, &"missing comma after the previous key"));
        }
        last_had_comma = comma;
        let (key, value) = decode_entry(json).map_err(|(col, why)| fail(n, col, &why))?;
        if let Some(last) = records.last() {
            match last.key_bytes().cmp(key.as_bytes()) {
                std::cmp::Ordering::Equal => {
                    return Err(fail(n, 1, &"the same key appears twice"));
                }
                std::cmp::Ordering::Greater => sorted = false,
                std::cmp::Ordering::Less => {}
            }
        }
        records.push(Record::new(&key, value.as_ref()));
    }
    // pykv writes keys in order; a file edited by hand may not be.
    if !sorted {
        records.sort();
        if records.windows(2).any(|w| w[0] == w[1]) {
            return Err(fail(1, 1, &"the same key appears twice"));
        }
    }
    if !closed {
        return Err(fail(
            lines.number + 1,
            1,
            &"the file ends before the closing ]}",
        ));
    }
    if lines
        .next_line()
        .map_err(|e| fail(lines.number, 1, &e))?
        .is_some()
    {
        return Err(fail(lines.number, 1, &"text after the closing ]}"));
    }
    Ok(Snapshot {
        header,
        records,
        path: path.to_path_buf(),
        bytes,
    })
}

/// Parse one key line (snapshot or export format). The error carries a column and a reason.
pub fn decode_entry(json: &[u8]) -> Result<(String, Value), (usize, String)> {
    let e: Entry = crate::jsonerr::parse(json).map_err(|e| (e.column, e.what()))?;
    let data = match (e.value, e.base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(b64)) => {
            base64_decode(&b64).ok_or_else(|| (1, "invalid base64 value".to_string()))?
        }
        _ => return Err((1, "a key needs exactly one of value and base64".into())),
    };
    if e.key.is_empty() || e.key.len() > store::MAX_KEY {
        return Err((1, format!("a key is 1 to {} bytes", store::MAX_KEY)));
    }
    if let Some(ct) = &e.content_type {
        store::validate_content_type(ct).map_err(|why| (1, why))?;
    }
    if e.expires_at.is_some_and(|t| t > store::MAX_EXPIRES_AT) {
        return Err((1, format!("expires_at is after {}", store::MAX_EXPIRES_AT)));
    }
    let value = Value {
        data: data.into_boxed_slice(),
        content_type: e.content_type.map(Into::into),
        version: e.version,
        expires_at: e.expires_at,
    };
    Ok((e.key, value))
}

/// Reads lines (without their `\n`), counting them.
struct LineReader<R> {
    inner: R,
    number: usize,
}

impl<R: BufRead> LineReader<R> {
    fn new(inner: R) -> Self {
        LineReader { inner, number: 0 }
    }
    fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        if self.inner.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        self.number += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        Ok(Some(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_valid_json_and_loads_back() {
        let dir = std::env::temp_dir().join(format!("pykv-unit-{}", std::process::id()));
        super::super::prepare_dir(&dir).unwrap();
        let mut s = store::Store::new(None);
        let _ = s.create_project("p", Persistence::Sync, vec![]).unwrap();
        let _ = s
            .put(
                "p",
                "text",
                b"h\"i\n",
                Some("text/plain"),
                Some(4_000_000_000),
            )
            .unwrap();
        let _ = s.put("p", "bin", &[0, 255, 1], None, None).unwrap();
        let (size, replaced) = save(&dir, "p", s.project("p").unwrap(), 4).unwrap();
        assert!(replaced.is_none());
        let text = fs::read(snapshot_path(&dir, "p")).unwrap();
        assert_eq!(size, text.len() as u64);
        let json: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(json["keys"].as_array().unwrap().len(), 2);
        assert_eq!(json["project"]["journal"], 4);
        let l = load(&snapshot_path(&dir, "p")).unwrap();
        assert_eq!(l.journal(), 4);
        let entries: Vec<_> = l
            .records
            .iter()
            .map(|r| (r.key().to_string(), r.value()))
            .collect();
        let orig: Vec<_> = s
            .project("p")
            .unwrap()
            .entries()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(entries, orig);
        assert_eq!(l.header.version, 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
