//! Token routes (admin token): list a project's tokens (never their secrets), create one (its
//! secret shown once), revoke one. Each request is parsed once, then applied.

use serde::Deserialize;

use super::call::Call;
use super::projects::admin_project;
use crate::auth::{self, Access, Source, Token};
use crate::error::{ApiError, Code};
use crate::http::Response;
use crate::store::{Change, Store, StoreError};

/// A new API token with a fresh id and secret.
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

/// A token as the API shows it: the secret only when it was just made.
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

/// `GET /v1/projects/{p}/tokens`.
pub fn list(call: Call<'_, '_>, project: &str) -> Result<Response, ApiError> {
    let p = admin_project(call, project)?;
    let tokens: Vec<_> = p.tokens().iter().map(|t| token_json(t, false)).collect();
    Ok(Response::json(
        200,
        &serde_json::json!({ "tokens": tokens }),
    ))
}

/// `POST /v1/projects/{p}/tokens` `{"label", "access", "prefix"?}`.
pub struct CreateToken<'r> {
    project: &'r str,
    label: String,
    access: Access,
    prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    label: String,
    access: Access,
    #[serde(default)]
    prefix: Option<String>,
}

impl<'r> CreateToken<'r> {
    pub fn parse(call: Call<'_, '_>, project: &'r str) -> Result<CreateToken<'r>, ApiError> {
        admin_project(call, project)?;
        let body: CreateBody = call.json()?;
        if !crate::auth::label_ok(&body.label) {
            return Err(ApiError::new(
                Code::InvalidLabel,
                "a token label is 1 to 64 characters",
            ));
        }
        if body
            .prefix
            .as_ref()
            .is_some_and(|p| p.is_empty() || p.len() > call.ctx.config.limits.max_key_bytes)
        {
            return Err(ApiError::new(
                Code::InvalidPrefix,
                "a token prefix is 1 to limits.max_key_bytes bytes",
            ));
        }
        Ok(CreateToken {
            project,
            label: body.label,
            access: body.access,
            prefix: body.prefix,
        })
    }

    pub fn apply(self, store: &mut Store) -> Result<(Response, Change), ApiError> {
        let token = new_token(&self.label, self.access, self.prefix)?;
        let change = store.add_token(self.project, token.clone())?;
        Ok((Response::json(201, &token_json(&token, true)), change))
    }
}

/// `DELETE /v1/projects/{p}/tokens/{id}`: an API token (config.json's cannot be).
pub struct RevokeToken<'r> {
    project: &'r str,
    id: &'r str,
}

impl<'r> RevokeToken<'r> {
    pub fn parse(
        call: Call<'_, '_>,
        project: &'r str,
        id: &'r str,
    ) -> Result<RevokeToken<'r>, ApiError> {
        let p = admin_project(call, project)?;
        let t = p.tokens().iter().find(|t| t.id == id).ok_or_else(|| {
            ApiError::from(StoreError::TokenNotFound {
                project: project.to_string(),
                id: id.to_string(),
            })
        })?;
        if t.source == Source::Config {
            return Err(ApiError::new(
                Code::TokenInConfig,
                "this token is declared in config.json: remove it there and restart",
            ));
        }
        Ok(RevokeToken { project, id })
    }

    pub fn apply(self, store: &mut Store) -> Result<(Response, Change), ApiError> {
        let (_, change) = store.revoke_token(self.project, self.id)?;
        Ok((Response::empty(204), change))
    }
}
