//! What several resources share when they parse a request: project names, keys (from a path
//! segment or a JSON body), whole-number parameters, ETags, JSON bodies, and the check that a
//! caller may use a key. No store changes here.

use std::borrow::Cow;

use serde::Deserialize;

use super::auth::{require_project, Scope};
use super::{query, Ctx};
use crate::auth::Access;
use crate::error::{ApiError, Code};
use crate::http::response::decimal;
use crate::http::Request;
use crate::store::{self, Store, StoreError};

/// 400 for a name that cannot be a project's.
pub fn project_name(project: &str) -> Result<(), ApiError> {
    store::validate_project_name(project)
        .map_err(|why| ApiError::new(Code::InvalidProjectName, why))
}

pub fn project_not_found(project: &str) -> ApiError {
    StoreError::ProjectNotFound(project.to_string()).into()
}

/// 404 unless `project` exists.
pub fn require_exists(store: &Store, project: &str) -> Result<(), ApiError> {
    match store.project(project) {
        Some(_) => Ok(()),
        None => Err(project_not_found(project)),
    }
}

/// A key from a path segment (percent-decoded) or from a JSON body (as is): 1 byte to
/// `limits.max_key_bytes`.
pub fn validate_key(ctx: &Ctx, key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    if key.len() > ctx.limits.max_key_bytes {
        return Err(format!(
            "the key is {} bytes; the limit is {} (limits.max_key_bytes)",
            key.len(),
            ctx.limits.max_key_bytes
        ));
    }
    Ok(())
}

/// The key is the rest of the path, percent-decoded (so `a%2Fb` and `a/b` are the same key).
fn decode_key<'a>(ctx: &Ctx, raw: &'a str) -> Result<Cow<'a, str>, ApiError> {
    let invalid = |why: String| ApiError::new(Code::InvalidKey, why);
    // Most keys have no escapes: then the path segment is the key, with nothing to copy.
    let key = if raw.contains('%') {
        let bytes = query::percent_decode(raw, false)
            .ok_or_else(|| invalid("the key has a bad percent-escape".into()))?;
        Cow::Owned(
            String::from_utf8(bytes).map_err(|_| invalid("the key is not valid UTF-8".into()))?,
        )
    } else {
        Cow::Borrowed(raw)
    };
    validate_key(ctx, &key).map_err(invalid)?;
    Ok(key)
}

/// The key a request names in its path, once the caller may use it: auth first, then the
/// project's name, the key and the token's scope, and only then whether the project exists, so
/// nothing is revealed to a caller who may not see the project.
pub fn authorize_key<'a>(
    ctx: &Ctx,
    store: &Store,
    req: &Request,
    project: &str,
    raw_key: &'a str,
    need: Access,
) -> Result<Cow<'a, str>, ApiError> {
    let scope = require_project(ctx, store, req, project, need)?;
    project_name(project)?;
    let key = decode_key(ctx, raw_key)?;
    scope.check(&key)?;
    require_exists(store, project)?;
    Ok(key)
}

/// The project a whole-project route (listing, batch, export, import) names, once the caller
/// may use it; returns the caller's scope.
pub fn authorize_project(
    ctx: &Ctx,
    store: &Store,
    req: &Request,
    project: &str,
    need: Access,
) -> Result<Scope, ApiError> {
    let scope = require_project(ctx, store, req, project, need)?;
    project_name(project)?;
    Ok(scope)
}

/// The value of parameter `name`, a whole number within `range`, if given.
pub fn whole_number(
    params: &[(String, String)],
    name: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, ApiError> {
    let Some(s) = query::get(params, name) else {
        return Ok(None);
    };
    s.parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
        .map(Some)
        .ok_or_else(|| {
            query::invalid(format!(
                "{name} must be a whole number from {} to {}",
                range.start(),
                range.end()
            ))
        })
}

/// A version as an ETag: `"7"`.
pub fn etag(version: u64) -> String {
    let mut s = String::with_capacity(22);
    s.push('"');
    s.push_str(decimal(version).as_str());
    s.push('"');
    s
}

/// The ETags listed in an If-Match / If-None-Match header; None for `*`.
pub fn etag_list(value: &str) -> Option<Vec<u64>> {
    if value.trim() == "*" {
        return None;
    }
    Some(
        value
            .split(',')
            .filter_map(|t| t.trim().trim_matches('"').parse().ok())
            .collect(),
    )
}

/// Parse a JSON body into `T`, naming what is wrong with it.
pub fn json_body<'a, T: Deserialize<'a>>(req: &'a Request) -> Result<T, ApiError> {
    // Serde would also take an array for a struct; the API's bodies are objects only.
    let first = req.body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::new(
            Code::InvalidJson,
            "the body must be a JSON object",
        ));
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::new(Code::InvalidJson, format!("the JSON body is invalid: {e}")))
}
