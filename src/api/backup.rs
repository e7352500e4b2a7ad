//! Backup and restore over HTTP: `GET /v1/projects/{p}/export` streams the project's keys as
//! JSON lines (the snapshot's key format), `POST /v1/projects/{p}/import?mode=merge|replace`
//! loads such a stream all or nothing. Each parsed once (`Export`, `Import`), then applied.

use super::call::{validate_key, Call};
use super::{query, Reply};
use crate::auth::Access;
use crate::error::{ApiError, Code};
use crate::http::Response;
use crate::persist;
use crate::store::{Change, Store, StoreError, Value};

/// Keys written per chunk of an export: small enough to keep the loop responsive, large enough
/// that chunk framing costs nothing.
const KEYS_PER_CHUNK: usize = 256;

/// Where an export stands: the project and the last key sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub project: String,
    after: Option<String>,
}

/// Whole-project routes need the admin token or an unscoped project token.
fn whole_project(call: Call<'_, '_>, project: &str, need: Access) -> Result<(), ApiError> {
    call.project(project, need)?.require_all()?;
    call.exists(project)
}

/// `GET /v1/projects/{p}/export`.
pub struct Export<'r> {
    project: &'r str,
}

impl<'r> Export<'r> {
    pub fn parse(call: Call<'_, '_>, project: &'r str) -> Result<Export<'r>, ApiError> {
        whole_project(call, project, Access::Read)?;
        call.no_params()?;
        Ok(Export { project })
    }

    /// The answer's head; its body is streamed from the store as the client reads it (HEAD
    /// gets the same head and no body).
    pub fn apply(self, store: &Store) -> Reply {
        let version = store.project(self.project).map_or(0, |p| p.version());
        let head = Response::bytes(200, "application/x-ndjson", Vec::new())
            .with_header("X-Project-Version", version.to_string());
        Reply::Stream(
            head,
            Cursor {
                project: self.project.to_string(),
                after: None,
            },
        )
    }
}

/// Append the next keys of an export to `out`. Returns false once the export is complete;
/// an error when the project went away mid-way (the stream must be cut, not completed).
pub fn next_chunk(
    store: &Store,
    cursor: &mut Cursor,
    out: &mut Vec<u8>,
) -> Result<bool, StoreError> {
    let (page, next) = store.list(&cursor.project, "", cursor.after.as_deref(), KEYS_PER_CHUNK)?;
    for (key, value) in &page {
        persist::write_entry(out, key, *value).expect("writing to a Vec cannot fail");
        out.push(b'\n');
    }
    cursor.after = page.last().map(|(k, _)| k.to_string());
    Ok(next.is_some())
}

/// `POST /v1/projects/{p}/import?mode=merge|replace`, every line decoded and checked.
pub struct Import<'r> {
    project: &'r str,
    replace: bool,
    entries: Vec<(String, Value)>,
}

impl<'r> Import<'r> {
    pub fn parse(call: Call<'_, '_>, project: &'r str) -> Result<Import<'r>, ApiError> {
        whole_project(call, project, Access::Write)?;
        let params = call.params(&["mode"])?;
        let replace = match query::get(&params, "mode") {
            None | Some("merge") => false,
            Some("replace") => true,
            Some(_) => return Err(query::invalid("mode must be merge or replace".into())),
        };
        let invalid = |line: usize, why: String| {
            ApiError::new(
                Code::InvalidImport,
                format!("line {line}: {why}; nothing was imported"),
            )
            .with_field("line", line.into())
        };
        let (ctx, clock) = (call.ctx, call.store.clock());
        let mut entries = Vec::new();
        for (i, line) in call.req.body.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (key, mut value) = persist::decode_entry(line)
                .map_err(|(col, why)| invalid(i + 1, format!("column {col}: {why}")))?;
            validate_key(ctx, &key).map_err(|why| invalid(i + 1, why))?;
            if value.data.len() > ctx.config.limits.max_value_bytes {
                return Err(invalid(
                    i + 1,
                    format!(
                        "the value exceeds {} bytes (limits.max_value_bytes)",
                        ctx.config.limits.max_value_bytes
                    ),
                ));
            }
            // Already expired: nothing to restore.
            if value.expires_at.is_some_and(|t| t <= clock) {
                continue;
            }
            value.version = 0;
            entries.push((key, value));
        }
        Ok(Import {
            project,
            replace,
            entries,
        })
    }

    pub fn apply(self, store: &mut Store) -> Result<(Response, Change), ApiError> {
        let imported = self.entries.len();
        let (version, removed, change) = store
            .import(self.project, self.entries, self.replace)
            .map_err(ApiError::from)?;
        let body = serde_json::json!({
            "project": self.project,
            "mode": if self.replace { "replace" } else { "merge" },
            "imported": imported,
            "removed": removed,
            "version": version,
        });
        Ok((Response::json(200, &body), change))
    }
}
