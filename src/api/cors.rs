//! CORS for browser apps on the origins listed in `cors_origins`: preflight answers and the
//! `Access-Control-*` headers on every response to an allowed origin. No other origin gets any.

use super::{Ctx, Route};
use crate::http::{Request, Response};

/// Headers a browser app may send, and the ones it may read back.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, If-Match, If-None-Match, X-API-Key";
const EXPOSE_HEADERS: &str = "ETag, X-Expires-At, X-Project-Version, X-Next-After";
/// How long a browser may cache a preflight answer (seconds).
const MAX_AGE: &str = "600";

/// The request's `Origin`, when `cors_origins` allows it.
fn allowed_origin<'a>(ctx: &Ctx, req: &'a Request) -> Option<&'a str> {
    let origin = req.header("origin")?;
    ctx.config
        .cors_origins
        .iter()
        .any(|o| o == "*" || o == origin)
        .then_some(origin)
}

/// Add the CORS headers an allowed origin needs to read this response.
pub fn decorate(ctx: &Ctx, req: &Request, r: &mut Response) {
    if ctx.config.cors_origins.is_empty() {
        return;
    }
    r.headers.push(("Vary", "Origin".into()));
    if let Some(origin) = allowed_origin(ctx, req) {
        r.headers
            .push(("Access-Control-Allow-Origin", origin.to_string()));
        r.headers
            .push(("Access-Control-Expose-Headers", EXPOSE_HEADERS.into()));
    }
}

/// `OPTIONS` on a route: its methods, and for an allowed origin's preflight, the permissions.
/// Needs no token: browsers never send one on a preflight.
pub fn options(ctx: &Ctx, req: &Request, route: &Route) -> Response {
    let mut r = Response::empty(204).with_header("Allow", format!("{}, OPTIONS", route.allow()));
    let preflight = req.header("access-control-request-method").is_some();
    if preflight && allowed_origin(ctx, req).is_some() {
        r.headers
            .push(("Access-Control-Allow-Methods", route.allow().into()));
        r.headers
            .push(("Access-Control-Allow-Headers", ALLOW_HEADERS.into()));
        r.headers.push(("Access-Control-Max-Age", MAX_AGE.into()));
    }
    r
}
