//! Who may call a route: reads the `Authorization` header and checks it against the admin token
//! and the project's tokens. Decides 401 (no valid token) versus 403 (valid, but not for this).

use super::Ctx;
use crate::auth::{constant_time_eq, Access};
use crate::error::ApiError;
use crate::http::Request;
use crate::store::Store;

/// The token in `Authorization: Bearer <token>`.
fn bearer(req: &Request) -> Result<&str, ApiError> {
    let value = req
        .header("authorization")
        .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <token>"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::unauthorized(
            "the Authorization header must be: Bearer <token>",
        ));
    }
    Ok(token)
}

fn is_admin(ctx: &Ctx, token: &str) -> bool {
    constant_time_eq(ctx.admin_token.as_bytes(), token.as_bytes())
}

/// A valid token elsewhere gets 403, an unknown one 401; neither says which project it is for.
fn refuse(store: &Store, token: &str, why: &str) -> ApiError {
    if store.is_known_token(token) {
        ApiError::forbidden(why)
    } else {
        ApiError::unauthorized("unknown or revoked token")
    }
}

/// Routes that manage projects and tokens: the admin token only.
pub fn require_admin(ctx: &Ctx, store: &Store, req: &Request) -> Result<(), ApiError> {
    let token = bearer(req)?;
    if is_admin(ctx, token) {
        return Ok(());
    }
    Err(refuse(store, token, "this route needs the admin token"))
}

/// Key routes: the admin token, or a token of `project` with at least `need`.
pub fn require_project(
    ctx: &Ctx,
    store: &Store,
    req: &Request,
    project: &str,
    need: Access,
) -> Result<(), ApiError> {
    let token = bearer(req)?;
    if is_admin(ctx, token) {
        return Ok(());
    }
    match store.token_access(project, token) {
        Some(Access::Read) if need == Access::Write => {
            Err(ApiError::forbidden("this token is read-only"))
        }
        Some(_) => Ok(()),
        None => Err(refuse(
            store,
            token,
            "this token is not valid for this project",
        )),
    }
}
