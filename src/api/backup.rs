//! Backup and restore over HTTP: `GET /v1/projects/{p}/export` streams the project's keys as
//! JSON lines (the snapshot's key format), `POST /v1/projects/{p}/import?mode=merge|replace`
//! loads such a stream all or nothing.

use super::auth::{require_project, Scope};
use super::keys::{project_name, project_not_found, quota_exceeded, validate_key};
use super::{query, Ctx, Reply};
use crate::auth::Access;
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::persist;
use crate::store::{Change, Store, StoreError};

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
fn whole_project(
    ctx: &Ctx,
    store: &Store,
    req: &Request,
    project: &str,
    need: Access,
) -> Result<(), ApiError> {
    let scope: Scope = require_project(ctx, store, req, project, need)?;
    scope.require_all()?;
    project_name(project)?;
    if store.project(project).is_none() {
        return Err(project_not_found(project));
    }
    Ok(())
}

pub fn export(ctx: &Ctx, store: &Store, req: &Request, project: &str) -> Result<Reply, ApiError> {
    whole_project(ctx, store, req, project, Access::Read)?;
    query::none(req.head.query())?;
    let version = store.project(project).map_or(0, |p| p.version());
    let head = Response::bytes(200, "application/x-ndjson", Vec::new())
        .with_header("X-Project-Version", version.to_string());
    // HEAD gets the same (streamed) head; the server sends no body for it.
    Ok(Reply::Stream(
        head,
        Cursor {
            project: project.to_string(),
            after: None,
        },
    ))
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

pub fn import(
    ctx: &Ctx,
    store: &mut Store,
    req: &Request,
    project: &str,
) -> Result<(Response, Change), ApiError> {
    whole_project(ctx, store, req, project, Access::Write)?;
    let params = query::parse(req.head.query(), &["mode"])?;
    let replace = match query::get(&params, "mode") {
        None | Some("merge") => false,
        Some("replace") => true,
        Some(_) => return Err(query::invalid("mode must be merge or replace".into())),
    };
    let invalid = |line: usize, why: String| {
        ApiError::new(
            400,
            "invalid_import",
            format!("line {line}: {why}; nothing was imported"),
        )
        .with_field("line", line.into())
    };
    let clock = store.clock();
    let mut entries = Vec::new();
    for (i, line) in req.body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (key, mut value) = persist::decode_entry(line)
            .map_err(|(col, why)| invalid(i + 1, format!("column {col}: {why}")))?;
        validate_key(ctx, &key).map_err(|why| invalid(i + 1, why))?;
        if value.data.len() > ctx.limits.max_value_bytes {
            return Err(invalid(
                i + 1,
                format!(
                    "the value exceeds {} bytes (limits.max_value_bytes)",
                    ctx.limits.max_value_bytes
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
    let imported = entries.len();
    let (version, removed, change) =
        store
            .import(project, entries, replace)
            .map_err(|e| match e {
                StoreError::Quota(hit) => quota_exceeded(hit),
                _ => project_not_found(project),
            })?;
    let body = serde_json::json!({
        "project": project,
        "mode": if replace { "replace" } else { "merge" },
        "imported": imported,
        "removed": removed,
        "version": version,
    });
    Ok((Response::json(200, &body), change))
}
