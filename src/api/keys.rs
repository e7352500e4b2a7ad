//! One key: `GET|HEAD|PUT|DELETE /v1/kv/{project}/{key}` (with expiry, conditions and watches)
//! and `POST /v1/kv/{project}/{key}?incr=N` (counters). Each request is parsed once into a typed
//! value (`GetKey`, `PutKey`, `DeleteKey`, `Incr`: the caller authorized, every parameter
//! checked), then applied to the store.

use std::borrow::Cow;

use super::call::{etag, etag_list, whole_number, Call, KeyTarget, Since};
use super::{query, Reply, Watch, WatchPhase, WatchTarget};
use crate::error::{ApiError, Code};
use crate::http::response::decimal;
use crate::http::Response;
use crate::store::{self, Change, Store, ValueRef};

/// The longest expiry a PUT may ask for: ten years.
pub const MAX_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// A request's `If-Match` / `If-None-Match`: a change happens only if they hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'r> {
    if_match: Option<&'r str>,
    if_none_match: Option<&'r str>,
}

impl<'r> Conditions<'r> {
    pub fn of(call: Call<'_, 'r>) -> Conditions<'r> {
        Conditions {
            if_match: call.header("if-match"),
            if_none_match: call.header("if-none-match"),
        }
    }

    /// `If-Match` (only if at one of these versions; `*`: only if present) and `If-None-Match`
    /// (`*`: only if absent) against the key's version `current` (0 when absent). A failure is
    /// 412 with the current version.
    fn check(&self, current: u64) -> Result<(), ApiError> {
        let failed = |why: &str| {
            ApiError::new(Code::PreconditionFailed, why.to_string()).with_field(
                "current_version",
                if current == 0 {
                    serde_json::Value::Null
                } else {
                    current.into()
                },
            )
        };
        if let Some(v) = self.if_match {
            let ok = match etag_list(v) {
                None => current != 0,
                Some(tags) => current != 0 && tags.contains(&current),
            };
            if !ok {
                return Err(failed("If-Match: the key is not at that version"));
            }
        }
        if let Some(v) = self.if_none_match {
            let ok = match etag_list(v) {
                None => current == 0,
                Some(tags) => !tags.contains(&current),
            };
            if !ok {
                return Err(failed("If-None-Match: the key exists at that version"));
            }
        }
        Ok(())
    }

    fn check_key(&self, store: &Store, project: &str, key: &str) -> Result<(), ApiError> {
        if self.if_match.is_none() && self.if_none_match.is_none() {
            return Ok(());
        }
        self.check(store.current_version(project, key))
    }
}

/// `GET /v1/kv/{project}/{key}[?watch=S][&version=V]`.
pub struct GetKey<'r> {
    target: KeyTarget<'r>,
    /// `watch`: wait up to this many seconds for the key to leave `version`; `version` alone:
    /// 304 unless it left it.
    since: Since,
    if_none_match: Option<&'r str>,
}

impl<'r> GetKey<'r> {
    pub fn parse(call: Call<'_, 'r>, target: KeyTarget<'r>) -> Result<GetKey<'r>, ApiError> {
        let params = call.params(&["watch", "version"])?;
        Ok(GetKey {
            target,
            since: Call::since(&params)?,
            if_none_match: call.header("if-none-match"),
        })
    }

    /// The value, 304 when the caller has it, or a watch to park (re-run in `phase`).
    pub fn apply(self, store: &Store, phase: WatchPhase) -> Result<Reply, ApiError> {
        let current = || store.current_version(self.target.project, &self.target.key);
        if let Some(seconds) = self.since.watch {
            let current = current();
            let since = self.since.version.or(phase.since()).unwrap_or(current);
            if matches!(phase, WatchPhase::TimedOut { .. }) {
                return Ok(Reply::Now(not_modified(current)));
            }
            if current == since {
                return Ok(Reply::Watch(Watch {
                    project: self.target.project.to_string(),
                    target: WatchTarget::Key(self.target.key.into_owned()),
                    seconds,
                    since,
                }));
            }
        } else if let Some(version) = self.since.version {
            // What the caller has is still current: nothing to send.
            let current = current();
            if current == version {
                return Ok(Reply::Now(not_modified(current)));
            }
        }
        let v = store.get(self.target.project, &self.target.key)?;
        if let Some(inm) = self.if_none_match {
            if etag_list(inm).is_none_or(|tags| tags.contains(&v.version)) {
                return Ok(Reply::Now(not_modified(v.version)));
            }
        }
        Ok(Reply::Now(value_response(v)))
    }
}

fn value_response(v: ValueRef<'_>) -> Response {
    let content_type: Cow<'static, str> = match v.content_type {
        Some(t) => Cow::Owned(t.to_string()),
        None => Cow::Borrowed(store::DEFAULT_CONTENT_TYPE),
    };
    let r =
        Response::bytes(200, content_type, v.data.to_vec()).with_header("ETag", etag(v.version));
    match v.expires_at {
        Some(t) => r.with_header("X-Expires-At", t.to_string()),
        None => r,
    }
}

fn not_modified(version: u64) -> Response {
    let r = Response::empty(304);
    if version == 0 {
        r
    } else {
        r.with_header("ETag", etag(version))
    }
}

/// `PUT /v1/kv/{project}/{key}[?ttl=S]` with the value as the body.
pub struct PutKey<'r> {
    target: KeyTarget<'r>,
    ttl: Option<u64>,
    /// The body's media type, kept to be returned by GET.
    content_type: Option<&'r str>,
    conditions: Conditions<'r>,
    value: Vec<u8>,
}

impl<'r> PutKey<'r> {
    /// `value`: the body, taken out of the request before.
    pub fn parse(
        call: Call<'_, 'r>,
        target: KeyTarget<'r>,
        value: Vec<u8>,
    ) -> Result<PutKey<'r>, ApiError> {
        let params = call.params(&["ttl"])?;
        let ttl = whole_number(&params, "ttl", 1..=MAX_TTL_SECONDS)?;
        let content_type = match call.req.header("content-type") {
            Some("") | None => None,
            Some(ct) => {
                store::validate_content_type(ct)
                    .map_err(|why| ApiError::new(Code::InvalidContentType, why))?;
                Some(ct)
            }
        };
        Ok(PutKey {
            target,
            ttl,
            content_type,
            conditions: Conditions::of(call),
            value,
        })
    }

    pub fn apply(self, store: &mut Store) -> Result<(Response, Change), ApiError> {
        let (project, key) = (self.target.project, &*self.target.key);
        self.conditions.check_key(store, project, key)?;
        let expires_at = self.ttl.map(|t| store.clock() + t);
        let (written, change) =
            store.put(project, key, &self.value, self.content_type, expires_at)?;
        let status = if written.created { 201 } else { 200 };
        // Written field by field: this is the hot path of every write.
        let mut body = Vec::with_capacity(48 + project.len() + key.len());
        body.extend_from_slice(b"{\"project\":");
        serde_json::to_writer(&mut body, project).expect("writing to a Vec cannot fail");
        body.extend_from_slice(b",\"key\":");
        serde_json::to_writer(&mut body, key).expect("writing to a Vec cannot fail");
        body.extend_from_slice(b",\"version\":");
        body.extend_from_slice(decimal(written.version).as_str().as_bytes());
        body.extend_from_slice(b"}\n");
        let response = Response::bytes(status, "application/json", body)
            .with_header("ETag", etag(written.version));
        Ok((response, change))
    }
}

/// `DELETE /v1/kv/{project}/{key}`.
pub struct DeleteKey<'r> {
    target: KeyTarget<'r>,
    conditions: Conditions<'r>,
}

impl<'r> DeleteKey<'r> {
    pub fn parse(call: Call<'_, 'r>, target: KeyTarget<'r>) -> Result<DeleteKey<'r>, ApiError> {
        call.no_params()?;
        Ok(DeleteKey {
            target,
            conditions: Conditions::of(call),
        })
    }

    pub fn apply(self, store: &mut Store) -> Result<(Response, Change), ApiError> {
        self.conditions
            .check_key(store, self.target.project, &self.target.key)?;
        let change = store.delete(self.target.project, &self.target.key)?;
        Ok((Response::empty(204), change))
    }
}

/// `POST /v1/kv/{project}/{key}?incr=N`: add N (default 1, may be negative); answers the new
/// value.
pub struct Incr<'r> {
    target: KeyTarget<'r>,
    delta: i64,
    conditions: Conditions<'r>,
}

impl<'r> Incr<'r> {
    pub fn parse(call: Call<'_, 'r>, target: KeyTarget<'r>) -> Result<Incr<'r>, ApiError> {
        let params = call.params(&["incr"])?;
        let Some(text) = query::get(&params, "incr") else {
            return Err(query::invalid(
                "POST on a key is a counter increment: add ?incr=N (PUT sets a value)".into(),
            ));
        };
        let delta: i64 = if text.is_empty() {
            1
        } else {
            text.parse().map_err(|_| {
                query::invalid("incr must be a whole number (64-bit, may be negative)".into())
            })?
        };
        if !call.req.body.is_empty() {
            return Err(ApiError::bad_request("an increment takes no body"));
        }
        Ok(Incr {
            target,
            delta,
            conditions: Conditions::of(call),
        })
    }

    pub fn apply(self, store: &mut Store) -> Result<(Response, Change), ApiError> {
        self.conditions
            .check_key(store, self.target.project, &self.target.key)?;
        let (value, written, change) =
            store.incr(self.target.project, &self.target.key, self.delta)?;
        let response = Response::bytes(200, "text/plain", value.to_string().into_bytes())
            .with_header("ETag", etag(written.version));
        Ok((response, change))
    }
}
