//! `GET /health`: liveness, the version, and whether every project's files can be written.

use super::Ctx;
use crate::http::Response;

/// The answer while all is well, built once: health checks come often.
const OK_BODY: &str = concat!(
    r#"{"status":"ok","version":""#,
    env!("CARGO_PKG_VERSION"),
    "\"}\n"
);

pub fn get(ctx: &Ctx) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    if ctx.status.is_healthy() {
        return Response::bytes(200, "application/json", OK_BODY.as_bytes().to_vec());
    }
    let problems: Vec<String> = ctx.status.problems().collect();
    Response::json(
        200,
        &serde_json::json!({"status": "degraded", "version": version, "problems": problems}),
    )
}
