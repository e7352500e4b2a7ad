//! `POST /v1/kv/{project}` with `{"ops": [...]}`: puts, deletes and checks applied all or
//! nothing, as one change (one version, one group of journal records). Parsed once into a
//! `Batch` (every op checked), then applied.

use serde::Deserialize;

use super::call::{project_not_found, validate_key, Call};
use super::keys::MAX_TTL_SECONDS;
use super::Ctx;
use crate::auth::Access;
use crate::base64::decode as base64_decode;
use crate::error::{ApiError, Code};
use crate::http::Response;
use crate::store::{BatchDone, BatchFail, BatchOp, Change, Store, StoreError};
use crate::wholenum;

/// The most operations one batch may hold.
pub const MAX_OPS: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    ops: Vec<OpIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpIn {
    op: String,
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    base64: bool,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default, deserialize_with = "wholenum::opt")]
    ttl: Option<u64>,
    #[serde(default, deserialize_with = "wholenum::opt")]
    version: Option<u64>,
}

fn invalid(i: usize, why: impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::InvalidBatch, format!("op {i}: {why}")).with_field("index", i.into())
}

/// Turn one op of the body into a store operation, or say what is wrong with it.
fn parse_op(ctx: &Ctx, clock: u64, i: usize, op: OpIn) -> Result<BatchOp, ApiError> {
    validate_key(ctx, &op.key).map_err(|why| invalid(i, why))?;
    let only_put = |field: &str| invalid(i, format!("{field} goes only with op \"put\""));
    if op.op != "put" {
        if op.value.is_some() || op.base64 || op.content_type.is_some() {
            return Err(only_put("value, base64 and content_type"));
        }
        if op.ttl.is_some() {
            return Err(only_put("ttl"));
        }
    }
    match op.op.as_str() {
        "put" => {
            let value = op.value.ok_or_else(|| invalid(i, "a put needs a value"))?;
            if let Some(ct) = &op.content_type {
                crate::store::validate_content_type(ct).map_err(|why| invalid(i, why))?;
            }
            let data = if op.base64 {
                base64_decode(&value).ok_or_else(|| invalid(i, "value is not valid base64"))?
            } else {
                value.into_bytes()
            };
            if data.len() > ctx.config.limits.max_value_bytes {
                return Err(invalid(
                    i,
                    format!(
                        "the value exceeds {} bytes (limits.max_value_bytes)",
                        ctx.config.limits.max_value_bytes
                    ),
                ));
            }
            let expires_at = match op.ttl {
                Some(t) if t == 0 || t > MAX_TTL_SECONDS => {
                    return Err(invalid(
                        i,
                        format!("ttl must be from 1 to {MAX_TTL_SECONDS}"),
                    ));
                }
                Some(t) => Some(clock + t),
                None => None,
            };
            Ok(BatchOp::Put {
                key: op.key,
                data,
                content_type: op.content_type,
                expires_at,
                version: op.version,
            })
        }
        "delete" => Ok(BatchOp::Delete {
            key: op.key,
            version: op.version,
        }),
        "check" => Ok(BatchOp::Check {
            key: op.key,
            version: op.version,
        }),
        other => Err(invalid(
            i,
            format!("unknown op {other:?}: use put, delete or check"),
        )),
    }
}

fn key_of(op: &BatchOp) -> &str {
    match op {
        BatchOp::Put { key, .. } | BatchOp::Delete { key, .. } | BatchOp::Check { key, .. } => key,
    }
}

/// A batch, parsed: every op checked and within the caller's scope.
pub struct Batch<'r> {
    project: &'r str,
    ops: Vec<BatchOp>,
    /// Each op's key, for the answer and for errors that name one.
    keys: Vec<String>,
}

impl<'r> Batch<'r> {
    pub fn parse(call: Call<'_, '_>, project: &'r str) -> Result<Batch<'r>, ApiError> {
        let scope = call.project(project, Access::Write)?;
        call.no_params()?;
        call.exists(project)?;
        let body: Body = call.json()?;
        if body.ops.is_empty() || body.ops.len() > MAX_OPS {
            return Err(ApiError::new(
                Code::InvalidBatch,
                format!("a batch holds 1 to {MAX_OPS} ops"),
            ));
        }
        let clock = call.store.clock();
        let ops = body
            .ops
            .into_iter()
            .enumerate()
            .map(|(i, op)| parse_op(call.ctx, clock, i, op))
            .collect::<Result<Vec<_>, _>>()?;
        let keys: Vec<String> = ops.iter().map(|op| key_of(op).to_string()).collect();
        for (i, key) in keys.iter().enumerate() {
            scope.check(key).map_err(|e| {
                ApiError::forbidden(format!("op {i}: {}", e.message)).with_field("index", i.into())
            })?;
        }
        Ok(Batch { project, ops, keys })
    }

    pub fn apply(self, store: &mut Store) -> Result<(Response, Change), ApiError> {
        let Batch { project, ops, keys } = self;
        let (version, done, change) = store
            .batch(project, ops)
            .map_err(|(i, fail)| failed(project, i, &keys[i], fail))?;
        let results: Vec<serde_json::Value> = done
            .iter()
            .zip(&keys)
            .map(|(d, key)| match d {
                BatchDone::Put { created, version } => serde_json::json!(
                    {"op": "put", "key": key, "version": version, "created": created}),
                BatchDone::Delete { deleted } => serde_json::json!(
                    {"op": "delete", "key": key, "deleted": deleted}),
                BatchDone::Check { version } => serde_json::json!(
                    {"op": "check", "key": key, "version": version}),
            })
            .collect();
        let response = Response::json(
            200,
            &serde_json::json!({"version": version, "results": results}),
        );
        Ok((response, change))
    }
}

/// Why op `i` (on `key`) made the batch fail: nothing was changed.
fn failed(project: &str, i: usize, key: &str, fail: BatchFail) -> ApiError {
    let e = match fail {
        BatchFail::Version { expected, actual } => ApiError::new(
            Code::ConditionFailed,
            format!(
                "op {i} on {key:?}: the key is at version {actual}, not {expected} \
                 (0 means absent); nothing was changed"
            ),
        ),
        BatchFail::Missing => ApiError::new(
            Code::ConditionFailed,
            format!("op {i}: check of {key:?}: the key does not exist; nothing was changed"),
        ),
        BatchFail::Quota(hit) => {
            let e = ApiError::from(StoreError::Quota(hit));
            ApiError::new(e.code, format!("op {i} on {key:?}: {}", e.message))
        }
        BatchFail::ProjectNotFound => return project_not_found(project),
    };
    e.with_field("index", i.into())
}
