//! Routes of the Python PyKV, for people moving from it: `POST /put` `{"key", "value"}` (any
//! JSON value), `GET /get/{key}` → `{"key", "value"}`, `DELETE /delete/{key}`, all on the project
//! named by `compat_project`, with that project's tokens. A value is stored as the JSON text it
//! was sent as, and comes back as exactly that text (`12345678901234567890123` stays itself, not
//! a float). Each request is parsed once, then applied.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::auth::require_project;
use super::call::{validate_key, Call, KeyTarget};
use crate::auth::Access;
use crate::error::{ApiError, Code};
use crate::http::Response;
use crate::store::{Change, Store};

/// `POST /put` `{"key": …, "value": <any JSON>}`.
pub struct CompatPut<'r> {
    project: &'r str,
    key: String,
    /// The value's JSON text, as sent.
    value: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    key: String,
    value: Box<RawValue>,
}

/// `{"key", "value"}` with the value's JSON text as it is.
#[derive(Serialize)]
struct KeyValue<'a> {
    key: &'a str,
    value: &'a RawValue,
}

impl<'r> CompatPut<'r> {
    pub fn parse(call: Call<'_, '_>, project: &'r str) -> Result<CompatPut<'r>, ApiError> {
        let scope = require_project(call.ctx, call.store, call.req, project, Access::Write)?;
        call.no_params()?;
        call.exists(project)?;
        let body: PutBody = call.json()?;
        validate_key(call.ctx, &body.key).map_err(|why| ApiError::new(Code::InvalidKey, why))?;
        scope.check(&body.key)?;
        Ok(CompatPut {
            project,
            key: body.key,
            value: body.value,
        })
    }

    pub fn apply(self, store: &mut Store) -> Result<(Response, Change), ApiError> {
        let data = self.value.get().as_bytes();
        let (_, change) = store.put(
            self.project,
            &self.key,
            data,
            Some("application/json"),
            None,
        )?;
        let response = Response::json(
            200,
            &KeyValue {
                key: &self.key,
                value: &self.value,
            },
        );
        Ok((response, change))
    }
}

/// `GET /get/{key}` or `DELETE /delete/{key}`: the project and the key, authorized.
pub struct CompatKey<'r> {
    target: KeyTarget<'r>,
}

impl<'r> CompatKey<'r> {
    pub fn parse(call: Call<'_, 'r>, target: KeyTarget<'r>) -> Result<CompatKey<'r>, ApiError> {
        call.no_params()?;
        Ok(CompatKey { target })
    }

    /// `{"key", "value"}`: the value as the JSON text it was stored as; a value written through
    /// the native API that is not JSON comes back as a string, other bytes as base64 with a
    /// flag.
    pub fn get(self, store: &Store) -> Result<Response, ApiError> {
        let v = store.get(self.target.project, &self.target.key)?;
        let key = &*self.target.key;
        if let Ok(value) = serde_json::from_slice::<&RawValue>(v.data) {
            return Ok(Response::json(200, &KeyValue { key, value }));
        }
        let body = match std::str::from_utf8(v.data) {
            Ok(text) => serde_json::json!({"key": key, "value": text}),
            Err(_) => serde_json::json!({
                "key": key, "value": crate::base64::encode(v.data), "base64": true,
            }),
        };
        Ok(Response::json(200, &body))
    }

    pub fn delete(self, store: &mut Store) -> Result<(Response, Change), ApiError> {
        let change = store.delete(self.target.project, &self.target.key)?;
        let response = Response::json(
            200,
            &serde_json::json!({"key": self.target.key, "deleted": true}),
        );
        Ok((response, change))
    }
}
