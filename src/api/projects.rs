//! Project routes (admin token): list, create, show, change settings, delete. Each request is
//! parsed once (the caller authorized, the body checked), then applied.

use serde::Deserialize;

use super::call::{project_name, project_not_found, Call};
use super::tokens::{new_token, token_json};
use super::{Conversion, Outcome, Reply};
use crate::auth::{Access, Source};
use crate::error::{ApiError, Code};
use crate::http::Response;
use crate::store::{Change, Persistence, Project, Quota, Store, StoreError};
use crate::wholenum;

fn summary(name: &str, p: &Project) -> serde_json::Value {
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

/// The project named `name`: 400 for a bad name, 404 for none.
pub fn existing<'a>(store: &'a Store, name: &str) -> Result<&'a Project, ApiError> {
    project_name(name)?;
    store.project(name).ok_or_else(|| project_not_found(name))
}

/// 409 for a change to a project config.json owns; `what`: "change it" or "remove it".
fn in_config(name: &str, what: &str) -> ApiError {
    ApiError::new(
        Code::ProjectInConfig,
        format!("project {name:?} is declared in config.json: {what} there and restart"),
    )
}

/// An admin route on project `name` (it must exist), without query parameters.
pub fn admin_project<'a>(call: Call<'a, '_>, name: &str) -> Result<&'a Project, ApiError> {
    call.admin()?;
    call.no_params()?;
    existing(call.store, name)
}

/// `GET /v1/projects`: every project, in short.
pub fn list(call: Call<'_, '_>) -> Result<Response, ApiError> {
    call.admin()?;
    call.no_params()?;
    let projects: Vec<_> = call
        .store
        .projects()
        .into_iter()
        .map(|(n, p)| summary(n, p))
        .collect();
    Ok(Response::json(
        200,
        &serde_json::json!({ "projects": projects }),
    ))
}

/// `GET /v1/projects/{p}`: one project in full.
pub fn show(call: Call<'_, '_>, name: &str) -> Result<Response, ApiError> {
    let p = admin_project(call, name)?;
    Ok(Response::json(200, &detail(name, p)))
}

/// `POST /v1/projects` `{"name", "persistence"?}`.
pub struct CreateProject {
    name: String,
    mode: Persistence,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    persistence: Option<Persistence>,
}

impl CreateProject {
    pub fn parse(call: Call<'_, '_>) -> Result<CreateProject, ApiError> {
        call.admin()?;
        call.no_params()?;
        let body: CreateBody = call.json()?;
        project_name(&body.name)?;
        if call.store.project(&body.name).is_some() {
            return Err(StoreError::ProjectExists(body.name).into());
        }
        Ok(CreateProject {
            mode: body.persistence.unwrap_or(call.ctx.config.persistence),
            name: body.name,
        })
    }

    /// The project, with a write and a read token (their secrets shown this once).
    pub fn apply(self, store: &mut Store) -> Result<(Response, Change), ApiError> {
        let tokens = vec![
            new_token("write", Access::Write, None)?,
            new_token("read", Access::Read, None)?,
        ];
        let change = store.create_project(&self.name, self.mode, tokens.clone())?;
        let p = store.project(&self.name).expect("created just above");
        let mut v = detail(&self.name, p);
        v["tokens"] = tokens.iter().map(|t| token_json(t, true)).collect();
        Ok((Response::json(201, &v), change))
    }
}

/// `PATCH /v1/projects/{p}` `{"persistence"?, "max_keys"?, "max_bytes"?}`.
pub struct PatchProject<'r> {
    name: &'r str,
    mode: Persistence,
    quota: Quota,
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
    wholenum::opt(d).map(Some)
}

impl<'r> PatchProject<'r> {
    pub fn parse(call: Call<'_, '_>, name: &'r str) -> Result<PatchProject<'r>, ApiError> {
        let p = admin_project(call, name)?;
        let body: PatchBody = call.json()?;
        if p.source() == Source::Config {
            return Err(in_config(name, "change it"));
        }
        let old = p.quota();
        Ok(PatchProject {
            name,
            mode: body.persistence.unwrap_or(p.persistence()),
            quota: Quota {
                max_keys: body.max_keys.unwrap_or(old.max_keys),
                max_bytes: body.max_bytes.unwrap_or(old.max_bytes),
            },
        })
    }

    /// The new settings. A memory project switched to `sync` or `interval` first gets its whole
    /// content written to a snapshot (a slice per loop turn; the project waits meanwhile), and
    /// the answer comes once that is in place.
    pub fn apply(self, store: &mut Store) -> Result<Outcome, ApiError> {
        let p = existing(store, self.name)?;
        if p.persistence() == Persistence::Memory && self.mode != Persistence::Memory {
            let mut v = detail(self.name, p);
            v["persistence"] = self.mode.as_str().into();
            v["max_keys"] = self.quota.max_keys.into();
            v["max_bytes"] = self.quota.max_bytes.into();
            return Ok(Reply::Convert(Conversion {
                project: self.name.to_string(),
                mode: self.mode,
                quota: self.quota,
                response: Response::json(200, &v),
            })
            .into());
        }
        if (self.mode, self.quota) == (p.persistence(), p.quota()) {
            return Ok(Reply::Now(Response::json(200, &detail(self.name, p))).into());
        }
        let change = store.set_settings(self.name, self.mode, self.quota)?;
        let p = store.project(self.name).expect("checked above");
        Ok(Outcome::changed(
            Response::json(200, &detail(self.name, p)),
            change,
        ))
    }
}

/// `DELETE /v1/projects/{p}`: the project, its keys, tokens and files.
pub struct DeleteProject<'r> {
    name: &'r str,
}

impl<'r> DeleteProject<'r> {
    pub fn parse(call: Call<'_, '_>, name: &'r str) -> Result<DeleteProject<'r>, ApiError> {
        let p = admin_project(call, name)?;
        if p.source() == Source::Config {
            return Err(in_config(name, "remove it"));
        }
        Ok(DeleteProject { name })
    }

    pub fn apply(self, store: &mut Store) -> Result<(Response, Change), ApiError> {
        let change = store.delete_project(self.name)?;
        Ok((Response::empty(204), change))
    }
}
