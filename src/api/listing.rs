//! Listing a project's keys: `GET /v1/kv/{project}?prefix=&after=&limit=&values=&format=`,
//! in JSON, JSON lines or text, paged with `after`, and as a prefix watch (`watch=S&version=V`).
//! Parsed once into a `ListKeys`, then run against the store.

use super::call::{project_not_found, whole_number, Call, Since};
use super::{query, Reply, Watch, WatchPhase, WatchTarget};
use crate::auth::Access;
use crate::base64::encode as base64_encode;
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::store::{Store, ValueRef};

/// Page size when the client gives no `limit`, and the most it may ask for.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Text,
    Jsonl,
}

fn listing_format(req: &Request, params: &[(String, String)]) -> Result<Format, ApiError> {
    match query::get(params, "format") {
        Some("json") => Ok(Format::Json),
        Some("text") => Ok(Format::Text),
        Some("jsonl") => Ok(Format::Jsonl),
        Some(_) => Err(query::invalid("format must be json, text or jsonl".into())),
        None => {
            let accept = req.header("accept").unwrap_or("");
            Ok(if accept.starts_with("text/plain") {
                Format::Text
            } else if accept.starts_with("application/x-ndjson")
                || accept.starts_with("application/jsonl")
            {
                Format::Jsonl
            } else {
                Format::Json
            })
        }
    }
}

/// A listed value: UTF-8 as a string, anything else as base64 with a flag.
fn entry_json(key: &str, v: &ValueRef<'_>, with_value: bool) -> serde_json::Value {
    if !with_value {
        return serde_json::json!({ "key": key });
    }
    match std::str::from_utf8(v.data) {
        Ok(text) => serde_json::json!({"key": key, "value": text, "version": v.version}),
        Err(_) => serde_json::json!({
            "key": key, "value": base64_encode(v.data), "base64": true, "version": v.version,
        }),
    }
}

/// Keys in text listings are escaped (`%`, CR and LF) so that each line is exactly one key; a
/// line is not yet URL-safe (`?`, `#`, spaces): encode those too before putting one in a URL.
fn text_line(key: &str, out: &mut Vec<u8>) {
    for b in key.bytes() {
        match b {
            b'%' => out.extend_from_slice(b"%25"),
            b'\n' => out.extend_from_slice(b"%0A"),
            b'\r' => out.extend_from_slice(b"%0D"),
            _ => out.push(b),
        }
    }
    out.push(b'\n');
}

/// A listing, parsed.
pub struct ListKeys<'r> {
    project: &'r str,
    /// What to list: the asked prefix narrowed to a scoped token's.
    prefix: String,
    /// The asked prefix lies outside the token's scope: nothing to list.
    disjoint: bool,
    after: Option<String>,
    limit: usize,
    values: bool,
    format: Format,
    /// `watch`: wait up to this many seconds for a change under the prefix after `version`;
    /// `version` alone: 304 unless the project changed since.
    since: Since,
}

impl<'r> ListKeys<'r> {
    pub fn parse(call: Call<'_, 'r>, project: &'r str) -> Result<ListKeys<'r>, ApiError> {
        let scope = call.project(project, Access::Read)?;
        let params = call.params(&[
            "prefix", "after", "limit", "values", "format", "watch", "version",
        ])?;
        // A scoped token lists only its own keys; a prefix outside its scope lists nothing.
        let (prefix, disjoint) = match scope.narrow(query::get(&params, "prefix").unwrap_or("")) {
            Some(p) => (p.to_string(), false),
            None => (String::new(), true),
        };
        let after = query::get(&params, "after").map(str::to_string);
        let limit = whole_number(&params, "limit", 1..=MAX_LIMIT as u64)?
            .map_or(DEFAULT_LIMIT, |n| n as usize);
        let values = match query::get(&params, "values") {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(query::invalid("values must be true or false".into())),
        };
        let format = listing_format(call.req, &params)?;
        if values && format == Format::Text {
            return Err(query::invalid(
                "values=true needs format=json or jsonl".into(),
            ));
        }
        call.exists(project)?;
        let since = Call::since(&params)?;
        Ok(ListKeys {
            project,
            prefix,
            disjoint,
            after,
            limit,
            values,
            format,
            since,
        })
    }

    /// A page of keys, or a watch to park (re-run in `phase`).
    pub fn apply(self, store: &Store, phase: WatchPhase) -> Result<Reply, ApiError> {
        let p = store
            .project(self.project)
            .ok_or_else(|| project_not_found(self.project))?;
        let project_version = p.version();
        let unchanged = || {
            Reply::Now(
                Response::empty(304).with_header("X-Project-Version", project_version.to_string()),
            )
        };
        if let Some(seconds) = self.since.watch {
            let since = self
                .since
                .version
                .or(phase.since())
                .unwrap_or(project_version);
            match phase {
                WatchPhase::TimedOut { .. } => return Ok(unchanged()),
                WatchPhase::Fired { .. } => {}
                WatchPhase::Fresh => {
                    if !store.prefix_changed_since(self.project, &self.prefix, since) {
                        return Ok(Reply::Watch(Watch {
                            project: self.project.to_string(),
                            target: WatchTarget::Prefix(self.prefix),
                            seconds,
                            since,
                        }));
                    }
                }
            }
        }
        if self.since.watch.is_none() && self.since.version == Some(project_version) {
            return Ok(unchanged());
        }
        let (format, values) = (self.format, self.values);
        let (page, next) = if self.disjoint {
            (Vec::new(), None)
        } else {
            store.list(
                self.project,
                &self.prefix,
                self.after.as_deref(),
                self.limit,
            )?
        };
        let response = match format {
            Format::Json if !values => {
                // Serialized straight from the page: no JSON tree per key.
                #[derive(serde::Serialize)]
                struct Keys<'a> {
                    keys: Vec<&'a str>,
                    next: Option<&'a str>,
                }
                let keys = Keys {
                    keys: page.iter().map(|(k, _)| *k).collect(),
                    next,
                };
                Response::json(200, &keys)
            }
            Format::Json => {
                let keys: Vec<serde_json::Value> =
                    page.iter().map(|(k, v)| entry_json(k, v, true)).collect();
                Response::json(200, &serde_json::json!({"keys": keys, "next": next}))
            }
            Format::Jsonl => {
                let mut out = Vec::new();
                for (k, v) in &page {
                    serde_json::to_writer(&mut out, &entry_json(k, v, values))
                        .expect("a Value serializes");
                    out.push(b'\n');
                }
                Response::bytes(200, "application/x-ndjson", out)
            }
            Format::Text => {
                let mut out = Vec::new();
                for (k, _) in &page {
                    text_line(k, &mut out);
                }
                Response::bytes(200, "text/plain; charset=utf-8", out)
            }
        };
        let mut response = response.with_header("X-Project-Version", project_version.to_string());
        if let (Some(n), Format::Text | Format::Jsonl) = (next, format) {
            response = response.with_header("X-Next-After", encode_header(n));
        }
        Ok(Reply::Now(response))
    }
}

/// Header values must be visible ASCII: percent-encode anything else (and `%`).
fn encode_header(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
