//! Snapshots: the file format, the atomic write, loading and checking a data directory.
//! Reads the store and never changes it; the server decides what a write's outcome means.
//!
//! A snapshot is one JSON document laid out one key per line, so it is both valid JSON (for jq)
//! and streamed line by line in both directions (never the whole project in memory twice):
//!
//! ```text
//! {"pykv_snapshot": 1,
//! "project": {"name":"p","persistence":"sync","source":"api","version":7,"tokens":[...]},
//! "keys": [
//! {"key":"a","value":"text","content_type":"text/plain","version":3,"expires_at":null},
//! {"key":"b","base64":"AAEC","content_type":null,"version":7,"expires_at":null}
//! ]}
//! ```

use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::auth::{Source, Token};
use crate::base64::{decode as base64_decode, encode as base64_encode};
use crate::store::{self, Persistence, Project, Quota, Record, Value, ValueRef};

pub const FORMAT_VERSION: u64 = 1;
const FIRST_LINE: &str = "{\"pykv_snapshot\": 1,";
const KEYS_LINE: &str = "\"keys\": [";
const LAST_LINE: &str = "]}";

/// Why a snapshot could not be saved; `Full` is the disk's fault (507), `Io` anything else (500).
#[derive(Debug)]
pub enum SaveError {
    Full(io::Error),
    Io(io::Error),
}

impl SaveError {
    fn from_io(e: io::Error) -> SaveError {
        use io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
        match e.kind() {
            StorageFull | QuotaExceeded | FileTooLarge => SaveError::Full(e),
            _ => SaveError::Io(e),
        }
    }
}

impl std::fmt::Display for SaveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaveError::Full(e) => write!(f, "the disk is full: {e}"),
            SaveError::Io(e) => write!(f, "{e}"),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    name: String,
    persistence: Persistence,
    #[serde(default, skip_serializing_if = "is_unlimited")]
    quota: Quota,
    source: Source,
    version: u64,
    tokens: Vec<Token>,
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
    #[serde(default)]
    version: u64,
    #[serde(default)]
    expires_at: Option<u64>,
}

pub fn snapshot_path(dir: &Path, project: &str) -> PathBuf {
    dir.join(format!("{project}.json"))
}

/// Create the data directory if needed and make it private (snapshots hold tokens).
pub fn prepare_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Write `project`'s snapshot atomically: temp file, fsync, rename, fsync the directory.
pub fn save(dir: &Path, name: &str, project: &Project) -> Result<(), SaveError> {
    write_atomic(dir, &format!("{name}.json"), |w| {
        write_snapshot(w, name, project)
    })
    .map_err(SaveError::from_io)
}

/// Remove a project's snapshot (project deleted, or switched to memory), durably.
pub fn remove(dir: &Path, name: &str) -> Result<(), SaveError> {
    match fs::remove_file(snapshot_path(dir, name)) {
        Ok(()) => sync_dir(dir).map_err(SaveError::from_io),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SaveError::from_io(e)),
    }
}

/// The whole rename-on-write dance in one place. On any error the temp file is removed and the
/// previous file is untouched.
pub fn write_atomic(
    dir: &Path,
    file_name: &str,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let final_path = dir.join(file_name);
    let tmp_path = dir.join(format!("{file_name}.tmp"));
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp_path)?;
        let mut w = BufWriter::with_capacity(64 * 1024, file);
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

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn write_snapshot(w: &mut impl Write, name: &str, p: &Project) -> io::Result<()> {
    let header = Header {
        name: name.to_string(),
        persistence: p.persistence(),
        quota: p.quota(),
        source: p.source(),
        version: p.version(),
        tokens: p.tokens().to_vec(),
    };
    writeln!(w, "{FIRST_LINE}")?;
    w.write_all(b"\"project\": ")?;
    serde_json::to_writer(&mut *w, &header)?;
    writeln!(w, ",\n{KEYS_LINE}")?;
    let mut first = true;
    for (key, v) in p.entries() {
        if !first {
            w.write_all(b",\n")?;
        }
        first = false;
        write_entry(w, key, v)?;
    }
    if !first {
        w.write_all(b"\n")?;
    }
    writeln!(w, "{LAST_LINE}")
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

/// A snapshot as loaded.
pub struct Loaded {
    pub name: String,
    pub project: Project,
    pub path: PathBuf,
}

/// Load one snapshot. The error names the file and the line and column at fault.
pub fn load_file(path: &Path) -> Result<Loaded, String> {
    let fail = |line: usize, col: usize, why: &dyn std::fmt::Display| {
        format!("{}: line {line} column {col}: {why}", path.display())
    };
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
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
    let project = Project::restore(
        header.persistence,
        header.source,
        header.tokens,
        header.version,
        records,
    )
    .with_quota(header.quota);
    Ok(Loaded {
        name: header.name,
        project,
        path: path.to_path_buf(),
    })
}

/// Parse one key line (snapshot or export format). The error carries a column and a reason.
pub fn decode_entry(json: &[u8]) -> Result<(String, Value), (usize, String)> {
    let e: Entry = serde_json::from_slice(json).map_err(|e| (e.column(), e.to_string()))?;
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

/// Load every snapshot in `dir`, removing leftover temp files (a write that never completed).
/// Returns the loaded projects and the temp files removed.
pub fn load_dir(dir: &Path) -> Result<(Vec<Loaded>, Vec<PathBuf>), String> {
    let mut loaded = Vec::new();
    let mut removed = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((loaded, removed)),
        Err(e) => return Err(format!("cannot read data directory {}: {e}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".json.tmp") {
            fs::remove_file(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
            removed.push(path);
        } else if name.ends_with(".json") {
            loaded.push(load_file(&path)?);
        }
    }
    Ok((loaded, removed))
}

/// Every project in `dir` (or only `project`) as the server would load it, without changing
/// any file: for offline readers (`pykv export`, `pykv migrate`). Sorted by name.
pub fn read_dir(dir: &Path, project: Option<&str>) -> Result<Vec<Loaded>, String> {
    let paths: Vec<PathBuf> = match project {
        Some(p) => {
            store::validate_project_name(p).map_err(|e| format!("--project {p:?}: {e}"))?;
            let path = snapshot_path(dir, p);
            if !path.is_file() {
                return Err(format!("{} does not exist", path.display()));
            }
            vec![path]
        }
        None => snapshot_paths(dir)?,
    };
    paths.iter().map(|p| load_file(p)).collect()
}

/// `pykv export --data-dir DIR [--project P]`: every key of one project (or of all, each line
/// then naming its project) as JSON lines, the format `POST /v1/projects/{p}/import` reads.
pub fn export_dir(dir: &Path, project: Option<&str>, out: &mut impl Write) -> Result<(), String> {
    let fail = |e: io::Error| format!("cannot write the export: {e}");
    for l in read_dir(dir, project)? {
        for (key, value) in l.project.entries() {
            let mut line = Vec::new();
            write_entry(&mut line, key, value).map_err(fail)?;
            if project.is_none() {
                out.write_all(b"{\"project\":").map_err(fail)?;
                serde_json::to_writer(&mut *out, &l.name).map_err(|e| fail(e.into()))?;
                out.write_all(b",").map_err(fail)?;
                out.write_all(&line[1..]).map_err(fail)?;
            } else {
                out.write_all(&line).map_err(fail)?;
            }
            out.write_all(b"\n").map_err(fail)?;
        }
    }
    out.flush().map_err(fail)
}

fn snapshot_paths(dir: &Path) -> Result<Vec<PathBuf>, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// `pykv --check-data DIR`: load every snapshot without starting, one line per project.
pub fn check_dir(dir: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for path in snapshot_paths(dir)? {
        let l = load_file(&path)?;
        out.push(format!(
            "{}: keys={} bytes={} format={FORMAT_VERSION}",
            l.name,
            l.project.key_count(),
            l.project.bytes()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_valid_json_and_loads_back() {
        let dir = std::env::temp_dir().join(format!("pykv-unit-{}", std::process::id()));
        prepare_dir(&dir).unwrap();
        let mut s = store::Store::new(None);
        s.create_project("p", Persistence::Sync, vec![]).unwrap();
        s.put(
            "p",
            "text",
            b"h\"i\n",
            Some("text/plain"),
            Some(4_000_000_000),
        )
        .unwrap();
        s.put("p", "bin", &[0, 255, 1], None, None).unwrap();
        save(&dir, "p", s.project("p").unwrap()).unwrap();
        let text = fs::read(snapshot_path(&dir, "p")).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(json["keys"].as_array().unwrap().len(), 2);
        let l = load_file(&snapshot_path(&dir, "p")).unwrap();
        let entries: Vec<_> = l
            .project
            .entries()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let orig: Vec<_> = s
            .project("p")
            .unwrap()
            .entries()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(entries, orig);
        assert_eq!(l.project.version(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
