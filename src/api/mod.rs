//! Routing and the request context: `Route::parse` turns a path into a typed route, `handle`
//! checks the method, runs the resource's handler and turns its error into a response.
//! Handlers live one resource per file; they take typed input and `&mut Store` and return an
//! `Outcome`: the reply, and the `Change` they made for the commit to make durable. Nothing here
//! sees a socket or writes a file.

mod auth;
mod backup;
mod batch;
mod compat;
mod cors;
mod health;
mod keys;
mod metrics;
mod projects;
mod query;
mod tokens;
mod ui;

use crate::config::Limits;
use crate::error::ApiError;
use crate::http::{Method, Request, Response};
use crate::status::Status;
use crate::store::{Change, Persistence, Quota, Store};

/// What every handler may read besides the store: settings from config.json, and the server's
/// status (problems for /health, counters for /metrics).
pub struct Ctx {
    pub admin_token: String,
    pub limits: Limits,
    pub default_persistence: Persistence,
    /// Origins whose browser apps may call the API (`*`: any).
    pub cors_origins: Vec<String>,
    /// The project the PyKV-compatible routes use; None turns them off.
    pub compat_project: Option<String>,
    pub status: Status,
}

/// How a request with `?watch=` is being run: first, or again by the server after it parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchPhase {
    /// First run: park if nothing changed yet.
    #[default]
    Fresh,
    /// A durable change to what it watches happened since `since`: answer unless provably
    /// unchanged.
    Fired { since: u64 },
    /// Its time ran out: answer 304.
    TimedOut { since: u64 },
}

impl WatchPhase {
    /// The version a re-run watch was parked at (its `version`, or the current one then).
    pub fn since(self) -> Option<u64> {
        match self {
            WatchPhase::Fresh => None,
            WatchPhase::Fired { since } | WatchPhase::TimedOut { since } => Some(since),
        }
    }
}

pub use backup::{next_chunk, Cursor};

/// What a handler returns: an answer, and what it changed in the store. The commit holds the
/// answer until the change is as durable as the project's mode promises.
#[derive(Debug)]
pub struct Outcome {
    pub reply: Reply,
    pub change: Option<Change>,
}

impl Outcome {
    pub fn changed(response: Response, change: Change) -> Outcome {
        Outcome {
            reply: Reply::Now(response),
            change: Some(change),
        }
    }
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Outcome {
        Outcome {
            reply,
            change: None,
        }
    }
}

/// An answer now, a watch to park until a change or a timeout, a head whose body the server
/// streams from the store as the client reads it, or a memory project's switch to a durable mode
/// (answered once its first snapshot is written).
#[derive(Debug)]
pub enum Reply {
    Now(Response),
    Watch(Watch),
    Stream(Response, Cursor),
    Convert(Conversion),
}

/// A memory project to write a first snapshot of, and the settings it gets once it is written.
#[derive(Debug)]
pub struct Conversion {
    pub project: String,
    pub mode: Persistence,
    pub quota: Quota,
    /// The answer to send once the switch is done.
    pub response: Response,
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
    Metrics,
    OpenApi,
    Projects,
    Project(String),
    Tokens(String),
    Token(String, String),
    Export(String),
    Import(String),
    Keys(String),
    Key(String, String),
    /// The Python PyKV's routes, on `compat_project`.
    CompatPut(String),
    CompatGet(String, String),
    CompatDelete(String, String),
    /// The page for people (`/`, `/docs`, `/ui/...`): see ui.rs.
    Page(ui::Page),
}

/// The OpenAPI 3.1 document of every route below, served at `GET /openapi.json`. A unit test
/// holds it and `ROUTES` to the router, path by path and method by method.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route as the OpenAPI document names it, with the methods it answers (besides OPTIONS,
/// which every route answers for CORS). The PyKV-compatible routes exist only when
/// `compat_project` is set. The page's routes (`Route::Page`) are left out on purpose: they
/// serve the page, not the API, and the document describes the API only.
pub const ROUTES: &[(&str, &str)] = &[
    ("/health", "GET, HEAD"),
    ("/metrics", "GET, HEAD"),
    ("/openapi.json", "GET, HEAD"),
    ("/v1/projects", "GET, HEAD, POST"),
    ("/v1/projects/{project}", "GET, HEAD, PATCH, DELETE"),
    ("/v1/projects/{project}/tokens", "GET, HEAD, POST"),
    ("/v1/projects/{project}/tokens/{id}", "DELETE"),
    ("/v1/projects/{project}/export", "GET, HEAD"),
    ("/v1/projects/{project}/import", "POST"),
    ("/v1/kv/{project}", "GET, HEAD, POST"),
    ("/v1/kv/{project}/{key}", "GET, HEAD, PUT, POST, DELETE"),
    ("/put", "POST"),
    ("/get/{key}", "GET, HEAD"),
    ("/delete/{key}", "DELETE"),
];

/// Which projects a request reads or writes (to order it against changes not yet durable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touches<'a> {
    Nothing,
    One(&'a str),
    All,
}

impl Route {
    /// `compat` is the project the PyKV-compatible routes work on, when enabled.
    pub fn parse(path: &str, compat: Option<&str>) -> Option<Route> {
        let rest = path.strip_prefix('/')?;
        if rest == "health" {
            return Some(Route::Health);
        }
        if rest == "metrics" {
            return Some(Route::Metrics);
        }
        if rest == "openapi.json" {
            return Some(Route::OpenApi);
        }
        if let Some(page) = ui::route(rest) {
            return Some(Route::Page(page));
        }
        if let Some(project) = compat {
            let p = project.to_string();
            if rest == "put" {
                return Some(Route::CompatPut(p));
            }
            if let Some(key) = rest.strip_prefix("get/") {
                return Some(Route::CompatGet(p, key.to_string()));
            }
            if let Some(key) = rest.strip_prefix("delete/") {
                return Some(Route::CompatDelete(p, key.to_string()));
            }
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
            [p, "export"] if !p.is_empty() => Some(Route::Export(p.to_string())),
            [p, "import"] if !p.is_empty() => Some(Route::Import(p.to_string())),
            [p, "tokens", id] if !p.is_empty() && !id.is_empty() => {
                Some(Route::Token(p.to_string(), id.to_string()))
            }
            _ => None,
        }
    }

    /// The methods this route answers, as sent in `Allow`.
    pub fn allow(&self) -> &'static str {
        match self {
            Route::Health | Route::Metrics | Route::OpenApi | Route::Page(_) => "GET, HEAD",
            Route::Projects => "GET, HEAD, POST",
            Route::Project(_) => "GET, HEAD, PATCH, DELETE",
            Route::Tokens(_) => "GET, HEAD, POST",
            Route::Token(..) => "DELETE",
            Route::Export(_) => "GET, HEAD",
            Route::Import(_) => "POST",
            Route::Keys(_) => "GET, HEAD, POST",
            Route::Key(..) => "GET, HEAD, PUT, POST, DELETE",
            Route::CompatPut(_) => "POST",
            Route::CompatGet(..) => "GET, HEAD",
            Route::CompatDelete(..) => "DELETE",
        }
    }

    /// A short fixed name for metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::Metrics => "metrics",
            Route::OpenApi => "openapi",
            Route::Projects => "projects",
            Route::Project(_) => "project",
            Route::Tokens(_) => "tokens",
            Route::Token(..) => "token",
            Route::Export(_) => "export",
            Route::Import(_) => "import",
            Route::Keys(_) => "kv_list",
            Route::Key(..) => "kv_key",
            Route::CompatPut(_) | Route::CompatGet(..) | Route::CompatDelete(..) => "compat",
            Route::Page(_) => "ui",
        }
    }

    pub fn touches(&self) -> Touches<'_> {
        match self {
            Route::Health | Route::OpenApi | Route::Page(_) => Touches::Nothing,
            Route::Metrics => Touches::All,
            Route::Projects => Touches::All,
            Route::Project(p)
            | Route::Tokens(p)
            | Route::Token(p, _)
            | Route::Export(p)
            | Route::Import(p)
            | Route::Keys(p)
            | Route::Key(p, _)
            | Route::CompatPut(p)
            | Route::CompatGet(p, _)
            | Route::CompatDelete(p, _) => Touches::One(p),
        }
    }
}

/// The largest body a request may send, asked by the connection layer as soon as a head is
/// parsed, before any body byte is read: at most one value, except an import by a caller who
/// may import (checked now, so no stranger can make the server buffer whole projects).
pub fn body_limit(ctx: &Ctx, store: &Store, head: &crate::http::parse::Head) -> usize {
    if head.method == Method::Post {
        if let Some(Route::Import(project)) = Route::parse(head.path(), None) {
            if auth::may_import(ctx, store, head, &project) {
                return ctx.limits.max_import_bytes;
            }
        }
    }
    ctx.limits.max_value_bytes
}

/// Add what every response to this request carries besides its own headers (CORS).
pub fn decorate(ctx: &Ctx, req: &Request, r: &mut Response) {
    cors::decorate(ctx, req, r);
}

/// Whether a method changes state (and so may join a group commit instead of waiting for one).
pub fn is_mutation(method: &Method) -> bool {
    !matches!(method, Method::Get | Method::Head | Method::Options)
}

/// Answer one request whose path parsed to `route` (None: no such route), in watch `phase`.
/// Every error becomes its JSON response here.
pub fn handle(
    ctx: &Ctx,
    store: &mut Store,
    req: &mut Request,
    route: Option<&Route>,
    phase: WatchPhase,
) -> Outcome {
    dispatch(ctx, store, req, route, phase).unwrap_or_else(|e| Reply::Now(e.into_response()).into())
}

fn dispatch(
    ctx: &Ctx,
    store: &mut Store,
    req: &mut Request,
    route: Option<&Route>,
    phase: WatchPhase,
) -> Result<Outcome, ApiError> {
    let now = |r: Response| Outcome::from(Reply::Now(r));
    let route = route.ok_or_else(ApiError::not_found)?;
    let method = &req.head.method;
    if *method == Method::Options {
        return Ok(now(cors::options(ctx, req, route)));
    }
    let allowed = route.allow().split(", ").any(|m| m == method.as_str());
    if !allowed {
        return Err(ApiError::method_not_allowed(route.allow()));
    }
    let changed = |(r, c): (Response, Change)| Outcome::changed(r, c);
    match (route, method) {
        // Probes add cache-busting parameters; /health ignores its query.
        (Route::Health, _) => Ok(now(health::get(ctx))),
        (Route::Metrics, _) => metrics::get(ctx, store, req).map(now),
        (Route::OpenApi, _) => Ok(now(Response::bytes(
            200,
            "application/json",
            OPENAPI.as_bytes().to_vec(),
        ))),
        (Route::Projects, Method::Post) => projects::create(ctx, store, req).map(changed),
        (Route::Projects, _) => projects::list(ctx, store, req).map(now),
        (Route::Project(p), Method::Patch) => projects::patch(ctx, store, req, p),
        (Route::Project(p), Method::Delete) => projects::delete(ctx, store, req, p).map(changed),
        (Route::Project(p), _) => projects::get(ctx, store, req, p).map(now),
        (Route::Tokens(p), Method::Post) => tokens::create(ctx, store, req, p).map(changed),
        (Route::Tokens(p), _) => tokens::list(ctx, store, req, p).map(now),
        (Route::Token(p, id), _) => tokens::revoke(ctx, store, req, p, id).map(changed),
        (Route::Export(p), _) => backup::export(ctx, store, req, p).map(Outcome::from),
        (Route::Import(p), _) => backup::import(ctx, store, req, p).map(changed),
        (Route::Keys(p), Method::Post) => batch::apply(ctx, store, req, p).map(changed),
        (Route::Keys(p), _) => keys::list(ctx, store, req, p, phase).map(Outcome::from),
        (Route::Key(p, k), Method::Put) => keys::put(ctx, store, req, p, k).map(changed),
        (Route::Key(p, k), Method::Post) => keys::incr(ctx, store, req, p, k).map(changed),
        (Route::Key(p, k), Method::Delete) => keys::delete(ctx, store, req, p, k).map(changed),
        (Route::Key(p, k), _) => keys::get(ctx, store, req, p, k, phase).map(Outcome::from),
        (Route::CompatPut(p), _) => compat::put(ctx, store, req, p).map(changed),
        (Route::CompatGet(p, k), _) => compat::get(ctx, store, req, p, k).map(now),
        (Route::CompatDelete(p, k), _) => compat::delete(ctx, store, req, p, k).map(changed),
        (Route::Page(page), _) => Ok(now(ui::get(req, *page))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Route {
        fn parse_test(path: &str) -> Option<Route> {
            Route::parse(path, None)
        }
    }

    /// Every route in `ROUTES` parses to a route answering exactly those methods, and the
    /// OpenAPI document lists exactly these paths and methods.
    #[test]
    fn routes_and_the_openapi_document_agree() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(
            doc["openapi"].as_str().map(|v| v.starts_with("3.1")),
            Some(true)
        );
        let paths = doc["paths"].as_object().expect("paths");
        for (template, methods) in ROUTES {
            let sample = template
                .replace("{project}", "p")
                .replace("{id}", "i")
                .replace("{key}", "a/b");
            let route =
                Route::parse(&sample, Some("compat")).unwrap_or_else(|| panic!("{template}"));
            assert_eq!(route.allow(), *methods, "{template}");
            let item = paths
                .get(*template)
                .and_then(|v| v.as_object())
                .unwrap_or_else(|| panic!("openapi.json lacks {template}"));
            let mut documented: Vec<String> = item
                .keys()
                .filter(|k| {
                    !matches!(
                        k.as_str(),
                        "parameters" | "summary" | "description" | "options"
                    )
                })
                .map(|k| k.to_uppercase())
                .collect();
            documented.sort();
            let mut served: Vec<String> = methods.split(", ").map(str::to_string).collect();
            served.sort();
            assert_eq!(documented, served, "methods of {template}");
        }
        for path in paths.keys() {
            assert!(
                ROUTES.iter().any(|(t, _)| t == path),
                "openapi.json documents {path}, which the router does not serve"
            );
        }
    }

    #[test]
    fn routes_parse_from_paths() {
        assert_eq!(Route::parse_test("/health"), Some(Route::Health));
        assert_eq!(Route::parse_test("/v1/projects"), Some(Route::Projects));
        assert_eq!(
            Route::parse_test("/v1/projects/a"),
            Some(Route::Project("a".into()))
        );
        assert_eq!(
            Route::parse_test("/v1/projects/a/tokens/x"),
            Some(Route::Token("a".into(), "x".into()))
        );
        assert_eq!(Route::parse_test("/v1/kv/a"), Some(Route::Keys("a".into())));
        assert_eq!(
            Route::parse_test("/v1/kv/a/b/c"),
            Some(Route::Key("a".into(), "b/c".into()))
        );
        assert_eq!(
            Route::parse_test("/v1/kv/a/"),
            Some(Route::Key("a".into(), "".into()))
        );
        assert_eq!(Route::parse_test("/"), Some(Route::Page(ui::Page::App)));
        for bad in [
            "/v1",
            "/v1/kv",
            "/v1/kv/",
            "/v1/projects/",
            "/v1/projects/a/x",
            "/x",
        ] {
            assert_eq!(Route::parse_test(bad), None, "{bad}");
        }
    }
}
