//! Token routes (admin token): list a project's tokens (never their secrets), create one (its
//! secret shown once), revoke one.

use serde::Deserialize;

use super::auth::require_admin;
use super::projects::{existing, json_body, new_token, token_json};
use super::{query, Ctx};
use crate::auth::{Access, Source};
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::store::{Change, Store};

pub fn list(ctx: &Ctx, store: &Store, req: &Request, project: &str) -> Result<Response, ApiError> {
    require_admin(ctx, store, req)?;
    query::none(req.head.query())?;
    let p = existing(store, project)?;
    let tokens: Vec<_> = p.tokens().iter().map(|t| token_json(t, false)).collect();
    Ok(Response::json(
        200,
        &serde_json::json!({ "tokens": tokens }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    label: String,
    access: Access,
    #[serde(default)]
    prefix: Option<String>,
}

pub fn create(
    ctx: &Ctx,
    store: &mut Store,
    req: &Request,
    project: &str,
) -> Result<(Response, Change), ApiError> {
    require_admin(ctx, store, req)?;
    query::none(req.head.query())?;
    existing(store, project)?;
    let body: CreateBody = json_body(req)?;
    if body.label.is_empty() || body.label.len() > 64 {
        return Err(ApiError::new(
            400,
            "invalid_label",
            "a token label is 1 to 64 bytes",
        ));
    }
    if body
        .prefix
        .as_ref()
        .is_some_and(|p| p.is_empty() || p.len() > ctx.limits.max_key_bytes)
    {
        return Err(ApiError::new(
            400,
            "invalid_prefix",
            "a token prefix is 1 to limits.max_key_bytes bytes",
        ));
    }
    let token = new_token(&body.label, body.access, body.prefix)?;
    let change = store
        .add_token(project, token.clone())
        .map_err(|_| ApiError::internal("the token could not be added"))?;
    Ok((Response::json(201, &token_json(&token, true)), change))
}

pub fn revoke(
    ctx: &Ctx,
    store: &mut Store,
    req: &Request,
    project: &str,
    id: &str,
) -> Result<(Response, Change), ApiError> {
    require_admin(ctx, store, req)?;
    query::none(req.head.query())?;
    let p = existing(store, project)?;
    let not_found = || {
        ApiError::new(
            404,
            "token_not_found",
            format!("project {project:?} has no token with id {id:?}"),
        )
    };
    let t = p
        .tokens()
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(not_found)?;
    if t.source == Source::Config {
        return Err(ApiError::new(
            409,
            "token_in_config",
            "this token is declared in config.json: remove it there and restart",
        ));
    }
    let (_, change) = store.revoke_token(project, id).map_err(|_| not_found())?;
    Ok((Response::empty(204), change))
}
