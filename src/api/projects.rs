//! Project routes (admin token): list, create, show, change persistence, delete.

use serde::Deserialize;

use super::auth::require_admin;
use super::keys::project_not_found;
use super::{query, Conversion, Ctx, Outcome, Reply};
use crate::auth::{self, Access, Source, Token};
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::store::{self, Change, Persistence, Project, Quota, Store};

pub fn summary(name: &str, p: &Project) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "keys": p.key_count(),
        "bytes": p.bytes(),
        "persistence": p.persistence().as_str(),
        "source": p.source().as_str(),
    })
}

/// One project in full: usage beside its quotas (null: no limit).
fn detail(name: &str, p: &Project) -> serde_json::Value {
    let mut v = summary(name, p);
    v["version"] = p.version().into();
    v["max_keys"] = p.quota().max_keys.into();
    v["max_bytes"] = p.quota().max_bytes.into();
    v
}

/// Parse a JSON body into `T`, naming what is wrong with it.
pub fn json_body<'a, T: Deserialize<'a>>(req: &'a Request) -> Result<T, ApiError> {
    // Serde would also take an array for a struct; the API's bodies are objects only.
    let first = req.body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::new(
            400,
            "invalid_json",
            "the body must be a JSON object",
        ));
    }
    serde_json::from_slice(&req.body).map_err(|e| {
        ApiError::new(
            400,
            "invalid_json",
            format!("the JSON body is invalid: {e}"),
        )
    })
}

fn valid_name(name: &str) -> Result<(), ApiError> {
    store::validate_project_name(name)
        .map_err(|why| ApiError::new(400, "invalid_project_name", why))
}

/// The project named `name`: 400 for a bad name, 404 for none.
pub fn existing<'a>(store: &'a Store, name: &str) -> Result<&'a Project, ApiError> {
    valid_name(name)?;
    store.project(name).ok_or_else(|| project_not_found(name))
}

pub fn new_token(label: &str, access: Access, prefix: Option<String>) -> Result<Token, ApiError> {
    let fail = |_| ApiError::internal("the system random number generator failed");
    Ok(Token {
        id: auth::generate_id().map_err(fail)?,
        label: label.to_string(),
        access,
        secret: auth::generate_secret().map_err(fail)?,
        source: Source::Api,
        prefix,
    })
}

pub fn token_json(t: &Token, with_secret: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": t.id, "label": t.label, "access": t.access.as_str(), "source": t.source.as_str(),
    });
    if let Some(p) = &t.prefix {
        v["prefix"] = p.clone().into();
    }
    if with_secret {
        v["secret"] = t.secret.clone().into();
    }
    v
}

pub fn list(ctx: &Ctx, store: &Store, req: &Request) -> Result<Response, ApiError> {
    require_admin(ctx, store, req)?;
    query::none(req.head.query())?;
    let projects: Vec<_> = store
        .projects()
        .into_iter()
        .map(|(n, p)| summary(n, p))
        .collect();
    Ok(Response::json(
        200,
        &serde_json::json!({ "projects": projects }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    persistence: Option<Persistence>,
}

pub fn create(ctx: &Ctx, store: &mut Store, req: &Request) -> Result<(Response, Change), ApiError> {
    require_admin(ctx, store, req)?;
    query::none(req.head.query())?;
    let body: CreateBody = json_body(req)?;
    valid_name(&body.name)?;
    if store.project(&body.name).is_some() {
        return Err(ApiError::new(
            409,
            "project_exists",
            format!("a project named {:?} exists already", body.name),
        ));
    }
    let tokens = vec![
        new_token("write", Access::Write, None)?,
        new_token("read", Access::Read, None)?,
    ];
    let mode = body.persistence.unwrap_or(ctx.default_persistence);
    let change = store
        .create_project(&body.name, mode, tokens.clone())
        .map_err(|_| ApiError::internal("the project could not be created"))?;
    let p = store.project(&body.name).expect("created just above");
    let mut v = detail(&body.name, p);
    v["tokens"] = tokens.iter().map(|t| token_json(t, true)).collect();
    Ok((Response::json(201, &v), change))
}

pub fn get(ctx: &Ctx, store: &Store, req: &Request, name: &str) -> Result<Response, ApiError> {
    require_admin(ctx, store, req)?;
    query::none(req.head.query())?;
    let p = existing(store, name)?;
    Ok(Response::json(200, &detail(name, p)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default)]
    persistence: Option<Persistence>,
    /// Absent: unchanged; null: no limit; a number: the limit.
    #[serde(default, deserialize_with = "present")]
    max_keys: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    max_bytes: Option<Option<u64>>,
}

/// Tell a field that is present (maybe null) from one that is absent.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

/// 409 for a change to a project config.json owns; `what`: "change it" or "remove it".
fn in_config(name: &str, what: &str) -> ApiError {
    ApiError::new(
        409,
        "project_in_config",
        format!("project {name:?} is declared in config.json: {what} there and restart"),
    )
}

/// Change persistence or quotas. A memory project switched to `sync` or `interval` first gets
/// its whole content written to a snapshot (a slice per loop turn; the project waits meanwhile),
/// and the answer comes once that is in place.
pub fn patch(ctx: &Ctx, store: &mut Store, req: &Request, name: &str) -> Result<Outcome, ApiError> {
    require_admin(ctx, store, req)?;
    query::none(req.head.query())?;
    let p = existing(store, name)?;
    let body: PatchBody = json_body(req)?;
    if p.source() == Source::Config {
        return Err(in_config(name, "change it"));
    }
    let (old_quota, old_mode) = (p.quota(), p.persistence());
    let quota = Quota {
        max_keys: body.max_keys.unwrap_or(old_quota.max_keys),
        max_bytes: body.max_bytes.unwrap_or(old_quota.max_bytes),
    };
    let mode = body.persistence.unwrap_or(old_mode);
    if old_mode == Persistence::Memory && mode != Persistence::Memory {
        let mut v = detail(name, p);
        v["persistence"] = mode.as_str().into();
        v["max_keys"] = quota.max_keys.into();
        v["max_bytes"] = quota.max_bytes.into();
        return Ok(Reply::Convert(Conversion {
            project: name.to_string(),
            mode,
            quota,
            response: Response::json(200, &v),
        })
        .into());
    }
    if (mode, quota) == (old_mode, old_quota) {
        return Ok(Reply::Now(Response::json(200, &detail(name, p))).into());
    }
    let change = store
        .set_settings(name, mode, quota)
        .map_err(|_| project_not_found(name))?;
    let p = store.project(name).expect("checked above");
    Ok(Outcome::changed(
        Response::json(200, &detail(name, p)),
        change,
    ))
}

pub fn delete(
    ctx: &Ctx,
    store: &mut Store,
    req: &Request,
    name: &str,
) -> Result<(Response, Change), ApiError> {
    require_admin(ctx, store, req)?;
    query::none(req.head.query())?;
    let p = existing(store, name)?;
    if p.source() == Source::Config {
        return Err(in_config(name, "remove it"));
    }
    let change = store
        .delete_project(name)
        .map_err(|_| project_not_found(name))?;
    Ok((Response::empty(204), change))
}
