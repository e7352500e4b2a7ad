//! The one place where an error becomes HTTP: the table of every error code pykv answers and its
//! status (README's "Errors you may see" is checked against it), and `ApiError`, sent as
//! `{"error": <code>, "message": ...}`. Handlers and the connection layer build `ApiError`s from
//! a `Code`; the errors of the store and of the disk become one through `From`. Nothing else
//! formats an error body.

use crate::http::Response;
use crate::persist::DiskError;
use crate::store::StoreError;

/// Declares `Code`: each variant with its status and its snake_case name, in one table.
macro_rules! codes {
    ($($variant:ident = $status:literal $name:literal,)*) => {
        /// Every error code pykv answers. One code, one status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn status(self) -> u16 {
                match self {
                    $(Code::$variant => $status,)*
                }
            }

            /// The `error` field of the body.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }
        }
    };
}

codes! {
    BadRequest = 400 "bad_request",
    InvalidKey = 400 "invalid_key",
    InvalidProjectName = 400 "invalid_project_name",
    InvalidJson = 400 "invalid_json",
    InvalidParameter = 400 "invalid_parameter",
    UnknownParameter = 400 "unknown_parameter",
    InvalidContentType = 400 "invalid_content_type",
    InvalidLabel = 400 "invalid_label",
    InvalidBatch = 400 "invalid_batch",
    InvalidPrefix = 400 "invalid_prefix",
    InvalidImport = 400 "invalid_import",
    Unauthorized = 401 "unauthorized",
    Forbidden = 403 "forbidden",
    NotFound = 404 "not_found",
    ProjectNotFound = 404 "project_not_found",
    KeyNotFound = 404 "key_not_found",
    TokenNotFound = 404 "token_not_found",
    MethodNotAllowed = 405 "method_not_allowed",
    RequestTimeout = 408 "request_timeout",
    ProjectExists = 409 "project_exists",
    ProjectInConfig = 409 "project_in_config",
    TokenInConfig = 409 "token_in_config",
    NotAnInteger = 409 "not_an_integer",
    Overflow = 409 "overflow",
    ConditionFailed = 409 "condition_failed",
    PreconditionFailed = 412 "precondition_failed",
    PayloadTooLarge = 413 "payload_too_large",
    UriTooLong = 414 "uri_too_long",
    ExpectationFailed = 417 "expectation_failed",
    HeaderTooLarge = 431 "header_too_large",
    StorageError = 500 "storage_error",
    InternalError = 500 "internal_error",
    NotImplemented = 501 "not_implemented",
    TooManyWatches = 503 "too_many_watches",
    StorageFull = 507 "storage_full",
    QuotaExceeded = 507 "quota_exceeded",
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// Extra response headers (`Allow` on 405, `WWW-Authenticate` on 401).
    pub headers: Vec<(&'static str, String)>,
    /// Extra body fields beside `error` and `message` (a 412's current version, a batch's
    /// failing op index).
    pub fields: Vec<(&'static str, serde_json::Value)>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            headers: Vec::new(),
            fields: Vec::new(),
        }
    }

    pub fn status(&self) -> u16 {
        self.code.status()
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
        ApiError::new(Code::BadRequest, message)
    }
    pub fn not_found() -> ApiError {
        ApiError::new(Code::NotFound, "no such route; see README.md for the API")
    }
    pub fn method_not_allowed(allow: &str) -> ApiError {
        ApiError::new(
            Code::MethodNotAllowed,
            format!("this route answers only {allow}"),
        )
        .with_header("Allow", allow)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        // Both challenges: wget sends Basic credentials only after a Basic challenge.
        ApiError::new(Code::Unauthorized, message)
            .with_header("WWW-Authenticate", "Bearer")
            .with_header("WWW-Authenticate", "Basic realm=\"pykv\"")
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::Forbidden, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::InternalError, message)
    }

    pub fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.code.as_str(), "message": self.message });
        for (k, v) in self.fields {
            body[k] = v;
        }
        let mut r = Response::json(self.code.status(), &body);
        r.headers.extend(self.headers);
        r
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.code.status(),
            self.code.as_str(),
            self.message
        )
    }
}

/// What the store refused, with its words.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let code = match &e {
            StoreError::ProjectNotFound(_) => Code::ProjectNotFound,
            StoreError::ProjectExists(_) => Code::ProjectExists,
            StoreError::KeyNotFound(_) => Code::KeyNotFound,
            StoreError::TokenNotFound { .. } => Code::TokenNotFound,
            StoreError::Quota(_) => Code::QuotaExceeded,
            StoreError::NotAnInteger(_) => Code::NotAnInteger,
            StoreError::Overflow { .. } => Code::Overflow,
        };
        ApiError::new(code, e.to_string())
    }
}

/// A change whose write failed and was undone: 507 when the disk is full, 500 otherwise.
impl From<&DiskError> for ApiError {
    fn from(e: &DiskError) -> ApiError {
        let code = if e.is_full() {
            Code::StorageFull
        } else {
            Code::StorageError
        };
        ApiError::new(
            code,
            format!("{e}: the change was not saved and has been undone"),
        )
    }
}

/// A memory project's first snapshot failed: it stays a memory project.
pub fn not_converted(e: &DiskError) -> ApiError {
    let mut err = ApiError::from(e);
    err.message = format!(
        "{e}: the project could not be written to disk, so it stays in memory mode (nothing was changed)"
    );
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README's table of errors lists every code under its status, and nothing else.
    #[test]
    fn the_readme_error_table_matches_the_codes() {
        let readme = include_str!("../README.md");
        let table = readme
            .split("### Errors you may see")
            .nth(1)
            .expect("README has the errors section");
        let mut listed = Vec::new();
        for line in table.lines().skip_while(|l| !l.starts_with('|')) {
            if !line.starts_with('|') {
                break;
            }
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let Ok(status) = cells[1].parse::<u16>() else {
                continue;
            };
            for code in cells[2].split(',').map(|c| c.trim().trim_matches('`')) {
                if code.is_empty() {
                    continue;
                }
                let known = Code::ALL
                    .iter()
                    .find(|c| c.as_str() == code)
                    .unwrap_or_else(|| panic!("README lists {code}, which pykv never answers"));
                assert_eq!(known.status(), status, "README's status for {code}");
                listed.push(*known);
            }
        }
        for code in Code::ALL {
            let n = listed.iter().filter(|c| *c == code).count();
            assert_eq!(n, 1, "README lists {} {n} times", code.as_str());
        }
    }

    #[test]
    fn a_code_has_one_status_and_one_name() {
        for (i, a) in Code::ALL.iter().enumerate() {
            for b in &Code::ALL[i + 1..] {
                assert_ne!(a.as_str(), b.as_str());
            }
        }
        assert_eq!(Code::QuotaExceeded.status(), 507);
        assert_eq!(Code::KeyNotFound.as_str(), "key_not_found");
    }
}
