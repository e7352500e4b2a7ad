//! Key routes: `GET|HEAD|PUT|DELETE /v1/kv/{project}/{key}` and the listing
//! `GET /v1/kv/{project}?prefix=&after=&limit=`.

use super::auth::require_project;
use super::{query, Ctx};
use crate::auth::Access;
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::store::{self, Store};

/// Page size when the client gives no `limit`, and the most it may ask for.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// A stored Content-Type longer than this is not a media type.
const MAX_CONTENT_TYPE: usize = 256;

fn project_name(project: &str) -> Result<(), ApiError> {
    store::validate_project_name(project)
        .map_err(|why| ApiError::new(400, "invalid_project_name", why))
}

/// The key is the rest of the path, percent-decoded (so `a%2Fb` and `a/b` are the same key).
fn decode_key(ctx: &Ctx, raw: &str) -> Result<String, ApiError> {
    let invalid = |why: String| ApiError::new(400, "invalid_key", why);
    let bytes = query::percent_decode(raw, false)
        .ok_or_else(|| invalid("the key has a bad percent-escape".into()))?;
    let key = String::from_utf8(bytes).map_err(|_| invalid("the key is not valid UTF-8".into()))?;
    if key.is_empty() {
        return Err(invalid("the key is empty".into()));
    }
    if key.len() > ctx.limits.max_key_bytes {
        return Err(invalid(format!(
            "the key is {} bytes; the limit is {} (limits.max_key_bytes)",
            key.len(),
            ctx.limits.max_key_bytes
        )));
    }
    Ok(key)
}

/// Check auth, then the project name, then the key: in that order, so nothing is revealed to a
/// caller who may not see the project.
fn target(
    ctx: &Ctx,
    store: &Store,
    req: &Request,
    project: &str,
    raw_key: &str,
    need: Access,
) -> Result<String, ApiError> {
    require_project(ctx, store, req, project, need)?;
    project_name(project)?;
    let key = decode_key(ctx, raw_key)?;
    if store.project(project).is_none() {
        return Err(project_not_found(project));
    }
    Ok(key)
}

pub fn project_not_found(project: &str) -> ApiError {
    ApiError::new(
        404,
        "project_not_found",
        format!("no project named {project:?}"),
    )
}

fn key_not_found(key: &str) -> ApiError {
    ApiError::new(
        404,
        "key_not_found",
        format!("no key {key:?} in this project"),
    )
}

fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

pub fn get(
    ctx: &Ctx,
    store: &Store,
    req: &Request,
    project: &str,
    raw_key: &str,
) -> Result<Response, ApiError> {
    let key = target(ctx, store, req, project, raw_key, Access::Read)?;
    query::none(req.head.query.as_deref())?;
    let v = store.get(project, &key).map_err(|_| key_not_found(&key))?;
    let content_type = v
        .content_type
        .as_deref()
        .unwrap_or("application/octet-stream")
        .to_string();
    Ok(Response::bytes(200, content_type, v.data.to_vec()).with_header("ETag", etag(v.version)))
}

pub fn put(
    ctx: &Ctx,
    store: &mut Store,
    req: &mut Request,
    project: &str,
    raw_key: &str,
) -> Result<Response, ApiError> {
    let key = target(ctx, store, req, project, raw_key, Access::Write)?;
    query::none(req.head.query.as_deref())?;
    let content_type = match req.header("content-type") {
        Some(ct)
            if ct.len() > MAX_CONTENT_TYPE || !ct.bytes().all(|b| (b' '..=b'~').contains(&b)) =>
        {
            return Err(ApiError::new(
                400,
                "invalid_content_type",
                format!("Content-Type must be printable ASCII of at most {MAX_CONTENT_TYPE} bytes"),
            ));
        }
        Some("") | None => None,
        Some(ct) => Some(ct.to_string()),
    };
    let body = std::mem::take(&mut req.body);
    let written = store
        .put(project, &key, body, content_type.as_deref())
        .map_err(|e| match e {
            store::StoreError::KeyQuota(max) => ApiError::new(
                507,
                "quota_exceeded",
                format!(
                    "the project holds its maximum of {max} keys (limits.max_keys_per_project)"
                ),
            ),
            _ => project_not_found(project),
        })?;
    let status = if written.created { 201 } else { 200 };
    let body = serde_json::json!({"project": project, "key": key, "version": written.version});
    Ok(Response::json(status, &body).with_header("ETag", etag(written.version)))
}

pub fn delete(
    ctx: &Ctx,
    store: &mut Store,
    req: &Request,
    project: &str,
    raw_key: &str,
) -> Result<Response, ApiError> {
    let key = target(ctx, store, req, project, raw_key, Access::Write)?;
    query::none(req.head.query.as_deref())?;
    store
        .delete(project, &key)
        .map_err(|_| key_not_found(&key))?;
    Ok(Response::empty(204))
}

pub fn list(ctx: &Ctx, store: &Store, req: &Request, project: &str) -> Result<Response, ApiError> {
    require_project(ctx, store, req, project, Access::Read)?;
    project_name(project)?;
    let params = query::parse(req.head.query.as_deref(), &["prefix", "after", "limit"])?;
    let prefix = query::get(&params, "prefix").unwrap_or("");
    let after = query::get(&params, "after");
    let limit = match query::get(&params, "limit") {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                query::invalid(format!("limit must be a number from 1 to {MAX_LIMIT}"))
            })?,
    };
    let (keys, next) = store
        .list(project, prefix, after, limit)
        .map_err(|_| project_not_found(project))?;
    let body = serde_json::json!({"keys": keys, "next": next});
    Ok(Response::json(200, &body))
}
