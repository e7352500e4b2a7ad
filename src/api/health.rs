//! `GET /health`: liveness, the version, and whether every project can be saved.

use super::Ctx;
use crate::http::Response;

pub fn get(ctx: &Ctx) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    if ctx.problems.is_empty() {
        return Response::json(
            200,
            &serde_json::json!({"status": "ok", "version": version}),
        );
    }
    let problems: Vec<String> = ctx
        .problems
        .iter()
        .map(|(project, why)| format!("project {project}: {why}"))
        .collect();
    Response::json(
        200,
        &serde_json::json!({"status": "degraded", "version": version, "problems": problems}),
    )
}
