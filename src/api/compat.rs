//! Routes of the Python PyKV, for people moving from it: `POST /put` `{"key", "value"}` (any
//! JSON value), `GET /get/{key}` → `{"key", "value"}`, `DELETE /delete/{key}`, all on the project
//! named by `compat_project`, with that project's tokens. Values are stored as JSON text.

use serde::Deserialize;

use super::auth::require_project;
use super::keys::{key_not_found, project_not_found, quota_exceeded, target, validate_key};
use super::projects::json_body;
use super::{query, Ctx};
use crate::auth::Access;
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::store::{Change, Store, StoreError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    key: String,
    value: serde_json::Value,
}

pub fn put(
    ctx: &Ctx,
    store: &mut Store,
    req: &Request,
    project: &str,
) -> Result<(Response, Change), ApiError> {
    let scope = require_project(ctx, store, req, project, Access::Write)?;
    query::none(req.head.query())?;
    if store.project(project).is_none() {
        return Err(project_not_found(project));
    }
    let body: PutBody = json_body(req)?;
    validate_key(ctx, &body.key).map_err(|why| ApiError::new(400, "invalid_key", why))?;
    scope.check(&body.key)?;
    let data = serde_json::to_vec(&body.value).expect("a serde_json::Value always serializes");
    let (_, change) = store
        .put(project, &body.key, &data, Some("application/json"), None)
        .map_err(|e| match e {
            StoreError::Quota(hit) => quota_exceeded(hit),
            _ => project_not_found(project),
        })?;
    let response = Response::json(
        200,
        &serde_json::json!({"key": body.key, "value": body.value}),
    );
    Ok((response, change))
}

pub fn get(
    ctx: &Ctx,
    store: &Store,
    req: &Request,
    project: &str,
    raw_key: &str,
) -> Result<Response, ApiError> {
    let key = target(ctx, store, req, project, raw_key, Access::Read)?;
    query::none(req.head.query())?;
    let v = store.get(project, &key).map_err(|_| key_not_found(&key))?;
    // Values written through the native API may not be JSON: text comes back as a string, other
    // bytes as base64 with a flag.
    let body = match serde_json::from_slice::<serde_json::Value>(v.data) {
        Ok(value) => serde_json::json!({"key": key, "value": value}),
        Err(_) => match std::str::from_utf8(v.data) {
            Ok(text) => serde_json::json!({"key": key, "value": text}),
            Err(_) => serde_json::json!({
                "key": key, "value": crate::base64::encode(v.data), "base64": true,
            }),
        },
    };
    Ok(Response::json(200, &body))
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
    let change = store
        .delete(project, &key)
        .map_err(|_| key_not_found(&key))?;
    let response = Response::json(200, &serde_json::json!({"key": key, "deleted": true}));
    Ok((response, change))
}
