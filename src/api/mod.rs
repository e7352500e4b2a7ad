//! Routing and the request context: `Route::parse` turns a path into a typed route, `handle`
//! checks the method, runs the resource's handler and turns its error into a response.
//! Handlers live one resource per file; they take typed input and `&mut Store` and return a
//! `Response` or an `ApiError`. Nothing here sees a socket or writes a file.

mod auth;
mod batch;
mod health;
mod keys;
mod projects;
mod query;
mod tokens;

use std::collections::BTreeMap;

use crate::config::Limits;
use crate::error::ApiError;
use crate::http::{Method, Request, Response};
use crate::store::{Persistence, Store};

/// What every handler may read besides the store.
pub struct Ctx {
    pub admin_token: String,
    pub limits: Limits,
    pub default_persistence: Persistence,
    /// Projects that could not be saved, and why (shown by /health).
    pub problems: BTreeMap<String, String>,
    /// Set by the server while it re-runs a parked watch.
    pub watch: WatchPhase,
    /// The version a re-run watch was parked at (its `version`, or the current one then).
    pub watch_since: Option<u64>,
}

/// Where a parked watch stands when its request is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchPhase {
    /// First run: park if nothing changed yet.
    #[default]
    Fresh,
    /// A change to what it watches was committed: answer unless provably unchanged.
    Fired,
    /// Its time ran out: answer 304.
    TimedOut,
}

/// What a handler returns: an answer now, or a watch to park until a change or a timeout.
#[derive(Debug)]
pub enum Reply {
    Now(Response),
    Watch(Watch),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    pub project: String,
    pub target: WatchTarget,
    pub seconds: u64,
    /// The version it waits to see change.
    pub since: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchTarget {
    Key(String),
    Prefix(String),
}

impl WatchTarget {
    /// Whether a change to `key` concerns this watch.
    pub fn matches(&self, key: &str) -> bool {
        match self {
            WatchTarget::Key(k) => k == key,
            WatchTarget::Prefix(p) => key.starts_with(p.as_str()),
        }
    }
}

/// A request's target, typed. Path segments are kept raw here and validated by the handler
/// after authentication, so an unauthenticated client learns nothing from a 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Projects,
    Project(String),
    Tokens(String),
    Token(String, String),
    Keys(String),
    Key(String, String),
}

/// Which projects a request reads or writes (to order it against changes not yet durable).
#[derive(Debug, PartialEq, Eq)]
pub enum Touches<'a> {
    Nothing,
    One(&'a str),
    All,
}

impl Route {
    pub fn parse(path: &str) -> Option<Route> {
        let rest = path.strip_prefix('/')?;
        if rest == "health" {
            return Some(Route::Health);
        }
        let rest = rest.strip_prefix("v1/")?;
        if let Some(kv) = rest.strip_prefix("kv/") {
            return match kv.split_once('/') {
                None if !kv.is_empty() => Some(Route::Keys(kv.to_string())),
                None => None,
                Some((p, key)) if !p.is_empty() => Some(Route::Key(p.to_string(), key.to_string())),
                Some(_) => None,
            };
        }
        if rest == "projects" {
            return Some(Route::Projects);
        }
        let parts: Vec<&str> = rest.strip_prefix("projects/")?.split('/').collect();
        match parts.as_slice() {
            [p] if !p.is_empty() => Some(Route::Project(p.to_string())),
            [p, "tokens"] if !p.is_empty() => Some(Route::Tokens(p.to_string())),
            [p, "tokens", id] if !p.is_empty() && !id.is_empty() => {
                Some(Route::Token(p.to_string(), id.to_string()))
            }
            _ => None,
        }
    }

    /// The methods this route answers, as sent in `Allow`.
    pub fn allow(&self) -> &'static str {
        match self {
            Route::Health => "GET, HEAD",
            Route::Projects => "GET, HEAD, POST",
            Route::Project(_) => "GET, HEAD, PATCH, DELETE",
            Route::Tokens(_) => "GET, HEAD, POST",
            Route::Token(..) => "DELETE",
            Route::Keys(_) => "GET, HEAD, POST",
            Route::Key(..) => "GET, HEAD, PUT, POST, DELETE",
        }
    }

    pub fn touches(&self) -> Touches<'_> {
        match self {
            Route::Health => Touches::Nothing,
            Route::Projects => Touches::All,
            Route::Project(p)
            | Route::Tokens(p)
            | Route::Token(p, _)
            | Route::Keys(p)
            | Route::Key(p, _) => Touches::One(p),
        }
    }
}

/// Whether a method changes state (and so may join a group commit instead of waiting for one).
pub fn is_mutation(method: &Method) -> bool {
    !matches!(method, Method::Get | Method::Head)
}

/// Answer one request. Every error becomes its JSON response here.
pub fn handle(ctx: &mut Ctx, store: &mut Store, req: &mut Request) -> Reply {
    route(ctx, store, req).unwrap_or_else(|e| Reply::Now(e.into_response()))
}

fn route(ctx: &mut Ctx, store: &mut Store, req: &mut Request) -> Result<Reply, ApiError> {
    let now = Reply::Now;
    let route = Route::parse(&req.head.path).ok_or_else(ApiError::not_found)?;
    let method = &req.head.method;
    let allowed = route.allow().split(", ").any(|m| m == method.as_str());
    if !allowed {
        return Err(ApiError::method_not_allowed(route.allow()));
    }
    match (&route, method) {
        // Probes add cache-busting parameters; /health ignores its query.
        (Route::Health, _) => Ok(now(health::get(ctx))),
        (Route::Projects, Method::Post) => projects::create(ctx, store, req).map(now),
        (Route::Projects, _) => projects::list(ctx, store, req).map(now),
        (Route::Project(p), Method::Patch) => projects::patch(ctx, store, req, p).map(now),
        (Route::Project(p), Method::Delete) => projects::delete(ctx, store, req, p).map(now),
        (Route::Project(p), _) => projects::get(ctx, store, req, p).map(now),
        (Route::Tokens(p), Method::Post) => tokens::create(ctx, store, req, p).map(now),
        (Route::Tokens(p), _) => tokens::list(ctx, store, req, p).map(now),
        (Route::Token(p, id), _) => tokens::revoke(ctx, store, req, p, id).map(now),
        (Route::Keys(p), Method::Post) => batch::apply(ctx, store, req, p).map(now),
        (Route::Keys(p), _) => keys::list(ctx, store, req, p),
        (Route::Key(p, k), Method::Put) => keys::put(ctx, store, req, p, k).map(now),
        (Route::Key(p, k), Method::Post) => keys::incr(ctx, store, req, p, k).map(now),
        (Route::Key(p, k), Method::Delete) => keys::delete(ctx, store, req, p, k).map(now),
        (Route::Key(p, k), _) => keys::get(ctx, store, req, p, k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_from_paths() {
        assert_eq!(Route::parse("/health"), Some(Route::Health));
        assert_eq!(Route::parse("/v1/projects"), Some(Route::Projects));
        assert_eq!(
            Route::parse("/v1/projects/a"),
            Some(Route::Project("a".into()))
        );
        assert_eq!(
            Route::parse("/v1/projects/a/tokens/x"),
            Some(Route::Token("a".into(), "x".into()))
        );
        assert_eq!(Route::parse("/v1/kv/a"), Some(Route::Keys("a".into())));
        assert_eq!(
            Route::parse("/v1/kv/a/b/c"),
            Some(Route::Key("a".into(), "b/c".into()))
        );
        assert_eq!(
            Route::parse("/v1/kv/a/"),
            Some(Route::Key("a".into(), "".into()))
        );
        for bad in [
            "/",
            "/v1",
            "/v1/kv",
            "/v1/kv/",
            "/v1/projects/",
            "/v1/projects/a/x",
            "/x",
        ] {
            assert_eq!(Route::parse(bad), None, "{bad}");
        }
    }
}
