//! Who may call a route: reads the caller's token (Bearer, the password of HTTP Basic, or
//! `X-API-Key`) and checks it against the admin token and the project's tokens. Decides 401 (no
//! valid token) versus 403 (valid, but not for this), and a scoped token's key prefix.

use std::borrow::Cow;

use super::Ctx;
use crate::auth::{constant_time_eq, Access};
use crate::error::ApiError;
use crate::http::parse::Head;
use crate::http::Request;
use crate::store::Store;

/// The token a request presents: `Authorization: Bearer <token>`, `Authorization: Basic` with
/// the token as password (`curl -u :TOKEN`, `wget --password=TOKEN`; a lone user name works
/// too), or `X-API-Key: <token>` (as the Python PyKV accepted).
fn presented(req: &Request) -> Result<Cow<'_, str>, ApiError> {
    presented_in(&req.head)
}

fn presented_in(head: &Head) -> Result<Cow<'_, str>, ApiError> {
    const HOW: &str =
        "send Authorization: Bearer <token> (or Basic auth with the token as password)";
    if let Some(value) = head.header("authorization") {
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if rest.is_empty() {
            return Err(ApiError::unauthorized(HOW));
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            return Ok(Cow::Borrowed(rest));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = crate::base64::decode(rest)
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
            let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
            let token = if password.is_empty() { user } else { password };
            if token.is_empty() {
                return Err(ApiError::unauthorized(HOW));
            }
            return Ok(Cow::Owned(token.to_string()));
        }
        return Err(ApiError::unauthorized(HOW));
    }
    match head.header("x-api-key") {
        Some(t) if !t.is_empty() => Ok(Cow::Borrowed(t)),
        _ => Err(ApiError::unauthorized(HOW)),
    }
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
    let token = presented(req)?;
    if is_admin(ctx, &token) {
        return Ok(());
    }
    Err(refuse(store, &token, "this route needs the admin token"))
}

/// The keys a caller may touch in a project: all of them, or those under a scoped token's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Prefix(String),
}

impl Scope {
    /// 403 unless `key` is inside the scope.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        match self {
            Scope::Prefix(p) if !key.starts_with(p.as_str()) => Err(ApiError::forbidden(format!(
                "this token may only use keys starting with {p:?}"
            ))),
            _ => Ok(()),
        }
    }

    /// The prefix to list when a caller asks for `requested`: the narrower of the two, or None
    /// when they do not overlap (nothing to list).
    pub fn narrow<'a>(&'a self, requested: &'a str) -> Option<&'a str> {
        match self {
            Scope::All => Some(requested),
            Scope::Prefix(p) if requested.starts_with(p.as_str()) => Some(requested),
            Scope::Prefix(p) if p.starts_with(requested) => Some(p),
            Scope::Prefix(_) => None,
        }
    }

    /// Routes over a whole project (export, import) need an unscoped token.
    pub fn require_all(&self) -> Result<(), ApiError> {
        match self {
            Scope::All => Ok(()),
            Scope::Prefix(_) => Err(ApiError::forbidden(
                "a token scoped to a key prefix cannot use whole-project routes",
            )),
        }
    }
}

/// Key routes: the admin token, or a token of `project` with at least `need`.
pub fn require_project(
    ctx: &Ctx,
    store: &Store,
    req: &Request,
    project: &str,
    need: Access,
) -> Result<Scope, ApiError> {
    let token = presented(req)?;
    if is_admin(ctx, &token) {
        return Ok(Scope::All);
    }
    match store.token_access(project, &token) {
        Some((Access::Read, _)) if need == Access::Write => {
            Err(ApiError::forbidden("this token is read-only"))
        }
        Some((_, None)) => Ok(Scope::All),
        Some((_, Some(prefix))) => Ok(Scope::Prefix(prefix)),
        None => Err(refuse(
            store,
            &token,
            &format!(
                "this token is not valid for project {project:?} (a key's route is \
                 /v1/kv/{{project}}/{{key}}: is the project missing from the path?)"
            ),
        )),
    }
}

/// Whether a request head carries a token that may import into `project` (the admin token or an
/// unscoped write token): the condition for accepting an import-sized body.
pub fn may_import(ctx: &Ctx, store: &Store, head: &Head, project: &str) -> bool {
    let Ok(token) = presented_in(head) else {
        return false;
    };
    is_admin(ctx, &token)
        || matches!(
            store.token_access(project, &token),
            Some((Access::Write, None))
        )
}
