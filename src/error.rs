//! The one place where an error becomes HTTP: a status, a snake_case code and a message, sent as
//! `{"error": ..., "message": ...}`. Handlers and the connection layer build `ApiError`s; nothing
//! else formats an error body.

use crate::http::Response;
use crate::persist::DiskError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Extra response headers (`Allow` on 405, `WWW-Authenticate` on 401).
    pub headers: Vec<(&'static str, String)>,
    /// Extra body fields beside `error` and `message` (a 412's current version, a batch's
    /// failing op index).
    pub fields: Vec<(&'static str, serde_json::Value)>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
            fields: Vec::new(),
        }
    }

    pub fn with_field(mut self, name: &'static str, value: serde_json::Value) -> ApiError {
        self.fields.push((name, value));
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "bad_request", message)
    }
    pub fn not_found() -> ApiError {
        ApiError::new(404, "not_found", "no such route; see README.md for the API")
    }
    pub fn method_not_allowed(allow: &str) -> ApiError {
        ApiError::new(
            405,
            "method_not_allowed",
            format!("this route answers only {allow}"),
        )
        .with_header("Allow", allow)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        // Both challenges: wget sends Basic credentials only after a Basic challenge.
        ApiError::new(401, "unauthorized", message)
            .with_header("WWW-Authenticate", "Bearer")
            .with_header("WWW-Authenticate", "Basic realm=\"pykv\"")
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "forbidden", message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "internal_error", message)
    }

    pub fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.code, "message": self.message });
        for (k, v) in self.fields {
            body[k] = v;
        }
        let mut r = Response::json(self.status, &body);
        r.headers.extend(self.headers);
        r
    }
}

/// A change whose write failed and was undone: 507 when the disk is full, 500 otherwise.
pub fn not_saved(e: &DiskError) -> ApiError {
    let message = format!("{e}: the change was not saved and has been undone");
    if e.is_full() {
        ApiError::new(507, "storage_full", message)
    } else {
        ApiError::new(500, "storage_error", message)
    }
}

/// A memory project's first snapshot failed: it stays a memory project.
pub fn not_converted(e: &DiskError) -> ApiError {
    let message = format!(
        "{e}: the project could not be written to disk, so it stays in memory mode (nothing was changed)"
    );
    if e.is_full() {
        ApiError::new(507, "storage_full", message)
    } else {
        ApiError::new(500, "storage_error", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}
