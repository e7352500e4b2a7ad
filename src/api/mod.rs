//! The API: `handle` answers one request. Its `Route` (route.rs) says which resource; the
//! resource's file parses the request once into a typed value (the caller authorized, every
//! parameter checked: `PutKey`, `Batch`, `CreateProject`, …) and applies it to the store, which
//! gives the reply and the `Change` it made, for the commit to make durable. Every error
//! becomes its JSON answer here. Nothing here sees a socket or writes a file.
//!
//! - `route.rs` — typed routes, the methods they answer, the OpenAPI document.
//! - `auth.rs` — who may call: tokens, 401 versus 403, scopes.
//! - `call.rs` — a request being parsed (`Call`) and the checks every resource makes through
//!   it: who may call, the project, the key, the query, the body.
//! - one file per resource: `keys.rs` (one key, counters), `listing.rs` (listings, prefix
//!   watches), `batch.rs`, `backup.rs` (export, import), `projects.rs`, `tokens.rs`,
//!   `compat.rs` (the Python PyKV's routes), `health.rs`, `metrics.rs`, `ui.rs` (the page);
//! - `cors.rs` (browser apps), `query.rs` (percent-decoding, query parameters).

mod auth;
mod backup;
mod batch;
mod call;
mod compat;
mod cors;
mod health;
mod keys;
mod listing;
mod metrics;
mod projects;
mod query;
mod route;
mod tokens;
mod ui;

use crate::auth::Access;
use crate::config::Config;
use crate::error::{ApiError, Code};
use crate::http::{Method, Request, Response};
use crate::status::Status;
use crate::store::{Change, Persistence, Quota, Store};

/// What every handler may read besides the store: the admin token, config.json's settings, and
/// the server's status (problems for /health, counters for /metrics).
pub struct Ctx {
    pub admin_token: String,
    pub config: Config,
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
pub use call::Call;
pub use route::{Route, Uses, OPENAPI, ROUTES};

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

/// The largest body a request may send, asked by the connection layer as soon as a head is
/// parsed, before any body byte is read: at most one value, except an import by a caller who
/// may import (checked now, so no stranger can make the server buffer whole projects).
pub fn body_limit(ctx: &Ctx, store: &Store, head: &crate::http::parse::Head) -> usize {
    if head.method == Method::Post {
        if let Some(Route::Import(project)) = Route::parse(head.path(), None) {
            if auth::may_import(ctx, store, head, &project) {
                return ctx.config.limits.max_import_bytes;
            }
        }
    }
    ctx.config.limits.max_value_bytes
}

/// Add what every response to this request carries besides its own headers (CORS).
pub fn decorate(ctx: &Ctx, req: &Request, r: &mut Response) {
    cors::decorate(ctx, req, r);
}

/// Whether a method changes state (and so may join a group commit instead of waiting for one).
pub fn is_mutation(method: &Method) -> bool {
    !matches!(method, Method::Get | Method::Head | Method::Options)
}

/// 404 for a PyKV-compatible route while they are off, saying how to turn them on.
fn compat_off() -> ApiError {
    ApiError::new(
        Code::NotFound,
        "the PyKV-compatible routes (/put, /get/{key}, /delete/{key}) are off: set \
         \"compat_project\" in config.json to the project they should use, and restart",
    )
}

/// A `.` or `..` segment of a path, if any: pykv does not resolve them, and a key route that
/// contains one is almost always a URL a client resolved differently.
fn dot_segment(path: &str) -> Option<&str> {
    path.split('/').find(|s| *s == "." || *s == "..")
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

/// Parse the request for its route and method, then apply it.
fn dispatch(
    ctx: &Ctx,
    store: &mut Store,
    req: &mut Request,
    route: Option<&Route>,
    phase: WatchPhase,
) -> Result<Outcome, ApiError> {
    let now = |r: Response| Outcome::from(Reply::Now(r));
    let changed = |(r, c): (Response, Change)| Outcome::changed(r, c);
    if let Some(segment) = dot_segment(req.head.path()) {
        return Err(ApiError::bad_request(format!(
            "the path has a {segment:?} segment, which pykv does not resolve (curl and browsers \
             resolve one before sending, so a key's route would lose a part): to name a key \
             with such a part, percent-encode its dots (a/%2E%2E for the key \"a/..\")"
        )));
    }
    let route = route.ok_or_else(ApiError::not_found)?;
    // Before OPTIONS and the method: these routes do not exist at all.
    if *route == Route::CompatOff {
        return Err(compat_off());
    }
    let method = req.head.method.clone();
    if method == Method::Options {
        return Ok(now(cors::options(ctx, req, route)));
    }
    if !route.allow().split(", ").any(|m| m == method.as_str()) {
        let mut e = ApiError::method_not_allowed(route.allow());
        if let (Route::Keys(_), Method::Put | Method::Delete) = (route, &method) {
            e.message.push_str(
                "; a key's route is /v1/kv/{project}/{key} (a \"..\" in a curl URL removes the \
                 segment before it)",
            );
        }
        return Err(e);
    }
    if let (Route::Key(p, k), Method::Put) = (route, &method) {
        // The value is the body: taken out before the request is read as a whole.
        let value = std::mem::take(&mut req.body);
        let call = Call::new(ctx, store, req);
        return keys::PutKey::parse(call, call.key(p, k, Access::Write)?, value)?
            .apply(store)
            .map(changed);
    }
    let call = Call::new(ctx, store, req);
    match (route, method) {
        // Probes add cache-busting parameters; /health ignores its query.
        (Route::Health, _) => Ok(now(health::get(ctx))),
        (Route::Metrics, _) => metrics::get(call).map(now),
        (Route::OpenApi, _) => Ok(now(Response::bytes(
            200,
            "application/json",
            OPENAPI.as_bytes().to_vec(),
        ))),
        (Route::Page(page), _) => Ok(now(ui::get(req, *page))),
        (Route::Projects, Method::Post) => projects::CreateProject::parse(call)?
            .apply(store)
            .map(changed),
        (Route::Projects, _) => projects::list(call).map(now),
        (Route::Project(p), Method::Patch) => projects::PatchProject::parse(call, p)?.apply(store),
        (Route::Project(p), Method::Delete) => projects::DeleteProject::parse(call, p)?
            .apply(store)
            .map(changed),
        (Route::Project(p), _) => projects::show(call, p).map(now),
        (Route::Tokens(p), Method::Post) => tokens::CreateToken::parse(call, p)?
            .apply(store)
            .map(changed),
        (Route::Tokens(p), _) => tokens::list(call, p).map(now),
        (Route::Token(p, id), _) => tokens::RevokeToken::parse(call, p, id)?
            .apply(store)
            .map(changed),
        (Route::Export(p), _) => Ok(backup::Export::parse(call, p)?.apply(store).into()),
        (Route::Import(p), _) => backup::Import::parse(call, p)?.apply(store).map(changed),
        (Route::Keys(p), Method::Post) => batch::Batch::parse(call, p)?.apply(store).map(changed),
        (Route::Keys(p), _) => listing::ListKeys::parse(call, p)?
            .apply(store, phase)
            .map(Outcome::from),
        (Route::Key(p, k), Method::Post) => {
            keys::Incr::parse(call, call.key(p, k, Access::Write)?)?
                .apply(store)
                .map(changed)
        }
        (Route::Key(p, k), Method::Delete) => {
            keys::DeleteKey::parse(call, call.key(p, k, Access::Write)?)?
                .apply(store)
                .map(changed)
        }
        (Route::Key(p, k), _) => keys::GetKey::parse(call, call.key(p, k, Access::Read)?)?
            .apply(store, phase)
            .map(Outcome::from),
        (Route::CompatPut(p), _) => compat::CompatPut::parse(call, p)?.apply(store).map(changed),
        (Route::CompatGet(p, k), _) => {
            compat::CompatKey::parse(call, call.key(p, k, Access::Read)?)?
                .get(store)
                .map(now)
        }
        (Route::CompatOff, _) => Err(compat_off()),
        (Route::CompatDelete(p, k), _) => {
            compat::CompatKey::parse(call, call.key(p, k, Access::Write)?)?
                .delete(store)
                .map(changed)
        }
    }
}
