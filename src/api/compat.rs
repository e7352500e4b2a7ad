//! Routes of the Python PyKV, for people moving from it: `POST /put` `{"key", "value"}` (any
//! JSON value), `GET /get/{key}` → `{"key", "value"}`, `DELETE /delete/{key}`, all on the project
//! named by `compat_project`, with that project's tokens. Values are stored as JSON text. Each
//! request is parsed once, then applied.

use std::borrow::Cow;

use serde::Deserialize;

use super::auth::require_project;
use super::common::{authorize_key, json_body, require_exists, validate_key};
use super::{query, Ctx};
use crate::auth::Access;
use crate::error::{ApiError, Code};
use crate::http::{Request, Response};
use crate::store::{Change, Store};

/// `POST /put` `{"key": …, "value": <any JSON>}`.
pub struct CompatPut<'r> {
    project: &'r str,
    key: String,
    value: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    key: String,
    value: serde_json::Value,
}

impl<'r> CompatPut<'r> {
    pub fn parse(
        ctx: &Ctx,
        store: &Store,
        req: &Request,
        project: &'r str,
    ) -> Result<CompatPut<'r>, ApiError> {
        let scope = require_project(ctx, store, req, project, Access::Write)?;
        query::none(req.head.query())?;
        require_exists(store, project)?;
        let body: PutBody = json_body(req)?;
        validate_key(ctx, &body.key).map_err(|why| ApiError::new(Code::InvalidKey, why))?;
        scope.check(&body.key)?;
        Ok(CompatPut {
            project,
            key: body.key,
            value: body.value,
        })
    }

    pub fn apply(self, store: &mut Store) -> Result<(Response, Change), ApiError> {
        let data = serde_json::to_vec(&self.value).expect("a serde_json::Value always serializes");
        let (_, change) = store.put(
            self.project,
            &self.key,
            &data,
            Some("application/json"),
            None,
        )?;
        let response = Response::json(
            200,
            &serde_json::json!({"key": self.key, "value": self.value}),
        );
        Ok((response, change))
    }
}

/// `GET /get/{key}` or `DELETE /delete/{key}`: the project and the key, authorized.
pub struct CompatKey<'r> {
    project: &'r str,
    key: Cow<'r, str>,
}

impl<'r> CompatKey<'r> {
    pub fn parse(
        ctx: &Ctx,
        store: &Store,
        req: &'r Request,
        project: &'r str,
        raw_key: &'r str,
        need: Access,
    ) -> Result<CompatKey<'r>, ApiError> {
        let key = authorize_key(ctx, store, req, project, raw_key, need)?;
        query::none(req.head.query())?;
        Ok(CompatKey { project, key })
    }

    /// `{"key", "value"}`: the value as the JSON it was stored as; a value written through the
    /// native API that is not JSON comes back as a string, other bytes as base64 with a flag.
    pub fn get(self, store: &Store) -> Result<Response, ApiError> {
        let v = store.get(self.project, &self.key)?;
        let key = &*self.key;
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

    pub fn delete(self, store: &mut Store) -> Result<(Response, Change), ApiError> {
        let change = store.delete(self.project, &self.key)?;
        let response = Response::json(200, &serde_json::json!({"key": self.key, "deleted": true}));
        Ok((response, change))
    }
}
