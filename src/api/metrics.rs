//! `GET /metrics` (admin token): the server's counters in the Prometheus text format.

use super::auth::require_admin;
use super::{query, Ctx};
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::store::Store;

pub fn get(ctx: &Ctx, store: &Store, req: &Request) -> Result<Response, ApiError> {
    require_admin(ctx, store, req)?;
    query::none(req.head.query())?;
    let text = ctx.status.metrics.render(store);
    Ok(Response::bytes(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        text.into_bytes(),
    ))
}
