//! A request being parsed (`Call`: the request, the settings, and the store it is checked
//! against), with the checks every resource makes through it: who may call, the project, the
//! key, the query, the JSON body; and what resources share besides (names, keys, whole numbers,
//! ETags). Parsing reads the store, never changes it.

use std::borrow::Cow;

use serde::Deserialize;

use super::auth::{require_admin, require_project, Scope};
use super::{query, Ctx};
use crate::auth::Access;
use crate::error::{ApiError, Code};
use crate::http::response::decimal;
use crate::http::Request;
use crate::store::{self, Store, StoreError};

/// The longest a watch may wait.
pub const MAX_WATCH_SECONDS: u64 = 300;

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
    if key.len() > ctx.config.limits.max_key_bytes {
        return Err(format!(
            "the key is {} bytes; the limit is {} (limits.max_key_bytes)",
            key.len(),
            ctx.config.limits.max_key_bytes
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

/// What a caller has seen (`version`) and how long it will wait for a change after it
/// (`watch`, seconds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Since {
    pub watch: Option<u64>,
    pub version: Option<u64>,
}

/// The key a request is about, its caller authorized to use it.
pub struct KeyTarget<'r> {
    pub project: &'r str,
    pub key: Cow<'r, str>,
}

/// One request being parsed, and what it is checked against: the settings and the store (for
/// tokens, and whether a project exists).
#[derive(Clone, Copy)]
pub struct Call<'a, 'r> {
    pub ctx: &'a Ctx,
    pub store: &'a Store,
    pub req: &'r Request,
}

impl<'a, 'r> Call<'a, 'r> {
    pub fn new(ctx: &'a Ctx, store: &'a Store, req: &'r Request) -> Call<'a, 'r> {
        Call { ctx, store, req }
    }

    /// Routes that manage projects and tokens: the admin token only.
    pub fn admin(&self) -> Result<(), ApiError> {
        require_admin(self.ctx, self.store, self.req)
    }

    /// The caller's scope in `project`, for a route that needs `need` (auth first, then the
    /// project's name: an unauthorized caller learns nothing from a 400).
    pub fn project(&self, project: &str, need: Access) -> Result<Scope, ApiError> {
        let scope = require_project(self.ctx, self.store, self.req, project, need)?;
        project_name(project)?;
        Ok(scope)
    }

    /// The key a request names in its path, once the caller may use it: auth, the project's
    /// name, the key and the token's scope, and only then whether the project exists, so
    /// nothing is revealed to a caller who may not see the project.
    pub fn key(
        &self,
        project: &'r str,
        raw_key: &'r str,
        need: Access,
    ) -> Result<KeyTarget<'r>, ApiError> {
        let scope = self.project(project, need)?;
        let key = decode_key(self.ctx, raw_key)?;
        scope.check(&key)?;
        self.exists(project)?;
        Ok(KeyTarget { project, key })
    }

    /// 404 unless `project` exists.
    pub fn exists(&self, project: &str) -> Result<(), ApiError> {
        require_exists(self.store, project)
    }

    /// The query's parameters, each one of `allowed`, at most once.
    pub fn params(&self, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
        query::parse(self.req.head.query(), allowed)
    }

    /// A route that takes no query parameters.
    pub fn no_params(&self) -> Result<(), ApiError> {
        query::none(self.req.head.query())
    }

    /// The JSON body as `T`, naming what is wrong with it.
    pub fn json<T: Deserialize<'r>>(&self) -> Result<T, ApiError> {
        // Serde would also take an array for a struct; the API's bodies are objects only.
        let body = &self.req.body;
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(ApiError::new(
                Code::InvalidJson,
                "the body must be a JSON object",
            ));
        }
        crate::jsonerr::parse(body)
            .map_err(|e| ApiError::new(Code::InvalidJson, format!("the JSON body is invalid: {e}")))
    }

    /// `watch=S` and `version=V` among `params`: with both, wait up to S seconds for a change
    /// after version V; `version` alone: only answer if something changed since V (else 304).
    pub fn since(params: &[(String, String)]) -> Result<Since, ApiError> {
        Ok(Since {
            watch: whole_number(params, "watch", 1..=MAX_WATCH_SECONDS)?,
            version: whole_number(params, "version", 0..=u64::MAX)?,
        })
    }

    /// A request header, None when absent or blank (an empty `If-Match:` asks for nothing).
    pub fn header(&self, name: &str) -> Option<&'r str> {
        self.req.header(name).filter(|v| !v.trim().is_empty())
    }
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
