//! `GET /metrics` (admin token): the server's counters in the Prometheus text format.

use super::call::Call;
use crate::error::ApiError;
use crate::http::Response;

pub fn get(call: Call<'_, '_>) -> Result<Response, ApiError> {
    call.admin()?;
    call.no_params()?;
    let text = call.ctx.status.metrics.render(call.store);
    Ok(Response::bytes(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        text.into_bytes(),
    ))
}
