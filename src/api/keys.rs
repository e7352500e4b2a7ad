//! Key routes: `GET|HEAD|PUT|DELETE /v1/kv/{project}/{key}` (with expiry, conditions and
//! watches), `POST /v1/kv/{project}/{key}?incr=N` (counters) and the listing
//! `GET /v1/kv/{project}?prefix=&after=&limit=&values=&format=` (with prefix watches).

use std::borrow::Cow;

use super::auth::require_project;
use super::{query, Ctx, Reply, Watch, WatchPhase, WatchTarget};
use crate::auth::Access;
use crate::base64::encode as base64_encode;
use crate::error::ApiError;
use crate::http::response::decimal;
use crate::http::{Request, Response};
use crate::store::{self, Change, Store, StoreError, ValueRef};

/// Page size when the client gives no `limit`, and the most it may ask for.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// The longest expiry a PUT may ask for: ten years.
pub const MAX_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;
/// The longest a watch may wait.
pub const MAX_WATCH_SECONDS: u64 = 300;

pub fn project_name(project: &str) -> Result<(), ApiError> {
    store::validate_project_name(project)
        .map_err(|why| ApiError::new(400, "invalid_project_name", why))
}

/// A key from a path segment (percent-decoded) or from a JSON body (as is).
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
    let invalid = |why: String| ApiError::new(400, "invalid_key", why);
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

/// Check auth, then the project name, then the key and the token's scope: in that order, so
/// nothing is revealed to a caller who may not see the project.
pub(super) fn target<'a>(
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
    if store.project(project).is_none() {
        return Err(project_not_found(project));
    }
    Ok(key)
}

/// 507 naming the quota a write would pass.
pub fn quota_exceeded(hit: store::QuotaHit) -> ApiError {
    ApiError::new(
        507,
        "quota_exceeded",
        format!(
            "this write would pass the project's quota {} = {}; nothing was changed",
            hit.name, hit.limit
        ),
    )
}

pub fn project_not_found(project: &str) -> ApiError {
    ApiError::new(
        404,
        "project_not_found",
        format!("no project named {project:?}"),
    )
}

pub(super) fn key_not_found(key: &str) -> ApiError {
    ApiError::new(
        404,
        "key_not_found",
        format!("no key {key:?} in this project"),
    )
}

fn etag(version: u64) -> String {
    let mut s = String::with_capacity(22);
    s.push('"');
    s.push_str(decimal(version).as_str());
    s.push('"');
    s
}

/// Parse a number parameter within `range`.
fn number(
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

/// The ETags listed in an If-Match / If-None-Match header; None for `*`.
fn etag_list(value: &str) -> Option<Vec<u64>> {
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

/// `If-Match` (only if unchanged) and `If-None-Match` (`*`: only if absent) for a change to a
/// key whose version is `current` (0 when absent). A failure is 412 with the current version.
fn check_conditions(
    req: &Request,
    store: &Store,
    project: &str,
    key: &str,
) -> Result<(), ApiError> {
    let (if_match, if_none_match) = (req.header("if-match"), req.header("if-none-match"));
    if if_match.is_none() && if_none_match.is_none() {
        return Ok(());
    }
    let current = store.current_version(project, key);
    let failed = |why: &str| {
        ApiError::new(412, "precondition_failed", why.to_string()).with_field(
            "current_version",
            if current == 0 {
                serde_json::Value::Null
            } else {
                current.into()
            },
        )
    };
    if let Some(v) = if_match {
        let ok = match etag_list(v) {
            None => current != 0,
            Some(tags) => current != 0 && tags.contains(&current),
        };
        if !ok {
            return Err(failed("If-Match: the key is not at that version"));
        }
    }
    if let Some(v) = if_none_match {
        let ok = match etag_list(v) {
            None => current == 0,
            Some(tags) => !tags.contains(&current),
        };
        if !ok {
            return Err(failed("If-None-Match: the key exists at that version"));
        }
    }
    Ok(())
}

fn value_response(v: ValueRef<'_>) -> Response {
    let content_type: Cow<'static, str> = match v.content_type {
        Some(t) => Cow::Owned(t.to_string()),
        None => Cow::Borrowed(store::DEFAULT_CONTENT_TYPE),
    };
    let r =
        Response::bytes(200, content_type, v.data.to_vec()).with_header("ETag", etag(v.version));
    match v.expires_at {
        Some(t) => r.with_header("X-Expires-At", t.to_string()),
        None => r,
    }
}

fn not_modified(version: u64) -> Response {
    let r = Response::empty(304);
    if version == 0 {
        r
    } else {
        r.with_header("ETag", etag(version))
    }
}

pub fn get(
    ctx: &Ctx,
    store: &Store,
    req: &Request,
    project: &str,
    raw_key: &str,
    phase: WatchPhase,
) -> Result<Reply, ApiError> {
    let key = target(ctx, store, req, project, raw_key, Access::Read)?;
    let params = query::parse(req.head.query(), &["watch", "version"])?;
    let watch = number(&params, "watch", 1..=MAX_WATCH_SECONDS)?;
    let since = number(&params, "version", 0..=u64::MAX)?;
    if let Some(seconds) = watch {
        let current = store.current_version(project, &key);
        let since = since.or(phase.since()).unwrap_or(current);
        if matches!(phase, WatchPhase::TimedOut { .. }) {
            return Ok(Reply::Now(not_modified(current)));
        }
        if current == since {
            return Ok(Reply::Watch(Watch {
                project: project.to_string(),
                target: WatchTarget::Key(key.into_owned()),
                seconds,
                since,
            }));
        }
    } else if since.is_some() {
        return Err(query::invalid("version goes with watch".into()));
    }
    let v = store.get(project, &key).map_err(|_| key_not_found(&key))?;
    if let Some(inm) = req.header("if-none-match") {
        if etag_list(inm).is_none_or(|tags| tags.contains(&v.version)) {
            return Ok(Reply::Now(not_modified(v.version)));
        }
    }
    Ok(Reply::Now(value_response(v)))
}

/// The media type of a PUT's body, kept to be returned by GET.
fn content_type(req: &Request) -> Result<Option<String>, ApiError> {
    match req.header("content-type") {
        Some("") | None => Ok(None),
        Some(ct) => store::validate_content_type(ct)
            .map(|()| Some(ct.to_string()))
            .map_err(|why| ApiError::new(400, "invalid_content_type", why)),
    }
}

fn quota_or_missing(project: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::Quota(hit) => quota_exceeded(hit),
        _ => project_not_found(project),
    }
}

pub fn put(
    ctx: &Ctx,
    store: &mut Store,
    req: &mut Request,
    project: &str,
    raw_key: &str,
) -> Result<(Response, Change), ApiError> {
    let key = target(ctx, store, req, project, raw_key, Access::Write)?;
    let params = query::parse(req.head.query(), &["ttl"])?;
    let ttl = number(&params, "ttl", 1..=MAX_TTL_SECONDS)?;
    let content_type = content_type(req)?;
    check_conditions(req, store, project, &key)?;
    let expires_at = ttl.map(|t| store.clock() + t);
    let body = std::mem::take(&mut req.body);
    let (written, change) = store
        .put(project, &key, &body, content_type.as_deref(), expires_at)
        .map_err(quota_or_missing(project))?;
    let status = if written.created { 201 } else { 200 };
    // Written field by field: this is the hot path of every write.
    let mut body = Vec::with_capacity(48 + project.len() + key.len());
    body.extend_from_slice(b"{\"project\":");
    serde_json::to_writer(&mut body, project).expect("writing to a Vec cannot fail");
    body.extend_from_slice(b",\"key\":");
    serde_json::to_writer(&mut body, &key).expect("writing to a Vec cannot fail");
    body.extend_from_slice(b",\"version\":");
    body.extend_from_slice(decimal(written.version).as_str().as_bytes());
    body.push(b'}');
    let response = Response::bytes(status, "application/json", body)
        .with_header("ETag", etag(written.version));
    Ok((response, change))
}

pub fn delete(
    ctx: &Ctx,
    store: &mut Store,
    req: &Request,
    project: &str,
    raw_key: &str,
) -> Result<(Response, Change), ApiError> {
    let key = target(ctx, store, req, project, raw_key, Access::Write)?;
    query::none(req.head.query())?;
    check_conditions(req, store, project, &key)?;
    let change = store
        .delete(project, &key)
        .map_err(|_| key_not_found(&key))?;
    Ok((Response::empty(204), change))
}

/// `POST /v1/kv/{p}/{key}?incr=N`: add N (default 1, may be negative); answers the new value.
pub fn incr(
    ctx: &Ctx,
    store: &mut Store,
    req: &Request,
    project: &str,
    raw_key: &str,
) -> Result<(Response, Change), ApiError> {
    let key = target(ctx, store, req, project, raw_key, Access::Write)?;
    let params = query::parse(req.head.query(), &["incr"])?;
    let Some(text) = query::get(&params, "incr") else {
        return Err(query::invalid(
            "POST on a key is a counter increment: add ?incr=N (PUT sets a value)".into(),
        ));
    };
    let delta: i64 = if text.is_empty() {
        1
    } else {
        text.parse().map_err(|_| {
            query::invalid("incr must be a whole number (64-bit, may be negative)".into())
        })?
    };
    if !req.body.is_empty() {
        return Err(ApiError::bad_request("an increment takes no body"));
    }
    check_conditions(req, store, project, &key)?;
    let (value, written, change) = store.incr(project, &key, delta).map_err(|e| match e {
        StoreError::NotAnInteger => ApiError::new(
            409,
            "not_an_integer",
            format!("the value of {key:?} is not a 64-bit integer; it was left unchanged"),
        ),
        StoreError::Overflow => ApiError::new(
            409,
            "overflow",
            format!(
                "adding {delta} to {key:?} would leave the 64-bit range; it was left unchanged"
            ),
        ),
        other => quota_or_missing(project)(other),
    })?;
    let response = Response::bytes(200, "text/plain", value.to_string().into_bytes())
        .with_header("ETag", etag(written.version));
    Ok((response, change))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Text,
    Jsonl,
}

fn listing_format(req: &Request, params: &[(String, String)]) -> Result<Format, ApiError> {
    match query::get(params, "format") {
        Some("json") => Ok(Format::Json),
        Some("text") => Ok(Format::Text),
        Some("jsonl") => Ok(Format::Jsonl),
        Some(_) => Err(query::invalid("format must be json, text or jsonl".into())),
        None => {
            let accept = req.header("accept").unwrap_or("");
            Ok(if accept.starts_with("text/plain") {
                Format::Text
            } else if accept.starts_with("application/x-ndjson")
                || accept.starts_with("application/jsonl")
            {
                Format::Jsonl
            } else {
                Format::Json
            })
        }
    }
}

/// A listed value: UTF-8 as a string, anything else as base64 with a flag.
fn entry_json(key: &str, v: &ValueRef<'_>, with_value: bool) -> serde_json::Value {
    if !with_value {
        return serde_json::json!({ "key": key });
    }
    match std::str::from_utf8(v.data) {
        Ok(text) => serde_json::json!({"key": key, "value": text, "version": v.version}),
        Err(_) => serde_json::json!({
            "key": key, "value": base64_encode(v.data), "base64": true, "version": v.version,
        }),
    }
}

/// Keys in text listings are escaped so that each line is exactly one key, usable in a URL.
fn text_line(key: &str, out: &mut Vec<u8>) {
    for b in key.bytes() {
        match b {
            b'%' => out.extend_from_slice(b"%25"),
            b'\n' => out.extend_from_slice(b"%0A"),
            b'\r' => out.extend_from_slice(b"%0D"),
            _ => out.push(b),
        }
    }
    out.push(b'\n');
}

pub fn list(
    ctx: &Ctx,
    store: &Store,
    req: &Request,
    project: &str,
    phase: WatchPhase,
) -> Result<Reply, ApiError> {
    let scope = require_project(ctx, store, req, project, Access::Read)?;
    project_name(project)?;
    let params = query::parse(
        req.head.query(),
        &[
            "prefix", "after", "limit", "values", "format", "watch", "version",
        ],
    )?;
    // A scoped token lists only its own keys; a prefix outside its scope lists nothing.
    let (prefix, disjoint) = match scope.narrow(query::get(&params, "prefix").unwrap_or("")) {
        Some(p) => (p, false),
        None => ("", true),
    };
    let after = query::get(&params, "after");
    let limit =
        number(&params, "limit", 1..=MAX_LIMIT as u64)?.map_or(DEFAULT_LIMIT, |n| n as usize);
    let values = match query::get(&params, "values") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(query::invalid("values must be true or false".into())),
    };
    let format = listing_format(req, &params)?;
    if values && format == Format::Text {
        return Err(query::invalid(
            "values=true needs format=json or jsonl".into(),
        ));
    }
    let p = store
        .project(project)
        .ok_or_else(|| project_not_found(project))?;
    let project_version = p.version();
    let watch = number(&params, "watch", 1..=MAX_WATCH_SECONDS)?;
    let since = number(&params, "version", 0..=u64::MAX)?;
    if let Some(seconds) = watch {
        let since = since.or(phase.since()).unwrap_or(project_version);
        match phase {
            WatchPhase::TimedOut { .. } => {
                return Ok(Reply::Now(
                    Response::empty(304)
                        .with_header("X-Project-Version", project_version.to_string()),
                ));
            }
            WatchPhase::Fired { .. } => {}
            WatchPhase::Fresh => {
                if !store.prefix_changed_since(project, prefix, since) {
                    return Ok(Reply::Watch(Watch {
                        project: project.to_string(),
                        target: WatchTarget::Prefix(prefix.to_string()),
                        seconds,
                        since,
                    }));
                }
            }
        }
    } else if since.is_some() {
        return Err(query::invalid("version goes with watch".into()));
    }
    let (page, next) = if disjoint {
        (Vec::new(), None)
    } else {
        store
            .list(project, prefix, after, limit)
            .map_err(|_| project_not_found(project))?
    };
    let response = match format {
        Format::Json if !values => {
            // Serialized straight from the page: no JSON tree per key.
            #[derive(serde::Serialize)]
            struct Keys<'a> {
                keys: Vec<&'a str>,
                next: Option<&'a str>,
            }
            let keys = Keys {
                keys: page.iter().map(|(k, _)| *k).collect(),
                next,
            };
            let body = serde_json::to_vec(&keys).expect("a listing always serializes");
            Response::bytes(200, "application/json", body)
        }
        Format::Json => {
            let keys: Vec<serde_json::Value> =
                page.iter().map(|(k, v)| entry_json(k, v, true)).collect();
            Response::json(200, &serde_json::json!({"keys": keys, "next": next}))
        }
        Format::Jsonl => {
            let mut out = Vec::new();
            for (k, v) in &page {
                serde_json::to_writer(&mut out, &entry_json(k, v, values))
                    .expect("a Value serializes");
                out.push(b'\n');
            }
            Response::bytes(200, "application/x-ndjson", out)
        }
        Format::Text => {
            let mut out = Vec::new();
            for (k, _) in &page {
                text_line(k, &mut out);
            }
            Response::bytes(200, "text/plain; charset=utf-8", out)
        }
    };
    let mut response = response.with_header("X-Project-Version", project_version.to_string());
    if let (Some(n), Format::Text | Format::Jsonl) = (next, format) {
        response = response.with_header("X-Next-After", encode_header(n));
    }
    Ok(Reply::Now(response))
}

/// Header values must be visible ASCII: percent-encode anything else (and `%`).
fn encode_header(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
