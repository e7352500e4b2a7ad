//! The JSON of etcd's v3 gateway, typed: the requests of `/v3/kv/range`, `/v3/kv/txn`,
//! `/v3/lease/grant` and `/v3/auth/authenticate`, their answers and etcd's error body, in
//! proto3's JSON mapping (bytes as base64, 64-bit numbers as strings). Only shapes and
//! encodings live here: no sending, no retrying, no decision on what an answer means.

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::base64;

/// One write of a guarded transaction, with the revision its key was read at.
pub struct Guarded {
    pub write: Write,
    pub mod_revision: i64,
}

pub enum Write {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: i64,
    },
    Delete {
        key: Vec<u8>,
    },
}

impl Write {
    pub fn key(&self) -> &[u8] {
        match self {
            Write::Put { key, .. } | Write::Delete { key } => key,
        }
    }
}

/// A key as etcd holds it.
#[derive(Debug, Deserialize)]
pub struct KeyValue {
    #[serde(deserialize_with = "de_base64")]
    pub key: Vec<u8>,
    #[serde(default, deserialize_with = "de_base64")]
    pub value: Vec<u8>,
    #[serde(default, deserialize_with = "de_i64")]
    pub mod_revision: i64,
    #[serde(default, deserialize_with = "de_i64")]
    pub lease: i64,
}

/// The end of the range of keys starting with `prefix` (etcd's rule: the prefix with its last
/// byte below 0xff raised by one; `\0` — every key — when there is none).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// An answer's body as the type `R`, or why it cannot be read.
pub(super) fn decode<R: DeserializeOwned>(body: &[u8]) -> Result<R, String> {
    serde_json::from_slice(body).map_err(|e| format!("etcd answered JSON we cannot read: {e}"))
}

// Requests.

#[derive(Serialize)]
pub(super) struct RangeRequest {
    #[serde(serialize_with = "ser_base64")]
    key: Vec<u8>,
    #[serde(serialize_with = "ser_base64")]
    range_end: Vec<u8>,
    #[serde(serialize_with = "ser_i64", skip_serializing_if = "is_zero")]
    limit: i64,
    #[serde(skip_serializing_if = "is_false")]
    count_only: bool,
}

impl RangeRequest {
    /// Up to `limit` keys in `[from, end)` (0: no limit).
    pub(super) fn page(from: &[u8], end: &[u8], limit: i64) -> RangeRequest {
        RangeRequest {
            key: from.to_vec(),
            range_end: end.to_vec(),
            limit,
            count_only: false,
        }
    }

    /// How many keys start with `prefix`.
    pub(super) fn count(prefix: &[u8]) -> RangeRequest {
        // etcd refuses an empty key; every key is `\0` up to `\0`.
        let key = if prefix.is_empty() {
            vec![0]
        } else {
            prefix.to_vec()
        };
        RangeRequest {
            key,
            range_end: prefix_end(prefix),
            limit: 0,
            count_only: true,
        }
    }
}

#[derive(Serialize)]
struct PutRequest {
    #[serde(serialize_with = "ser_base64")]
    key: Vec<u8>,
    #[serde(serialize_with = "ser_base64")]
    value: Vec<u8>,
    #[serde(serialize_with = "ser_i64", skip_serializing_if = "is_zero")]
    lease: i64,
}

#[derive(Serialize)]
struct DeleteRangeRequest {
    #[serde(serialize_with = "ser_base64")]
    key: Vec<u8>,
}

#[derive(Serialize)]
enum RequestOp {
    #[serde(rename = "request_range")]
    Range(RangeRequest),
    #[serde(rename = "request_put")]
    Put(PutRequest),
    #[serde(rename = "request_delete_range")]
    DeleteRange(DeleteRangeRequest),
}

#[derive(Serialize)]
struct Compare {
    #[serde(serialize_with = "ser_base64")]
    key: Vec<u8>,
    target: &'static str,
    result: &'static str,
    #[serde(serialize_with = "ser_i64")]
    mod_revision: i64,
}

#[derive(Serialize)]
pub(super) struct TxnRequest {
    compare: Vec<Compare>,
    success: Vec<RequestOp>,
}

impl TxnRequest {
    /// Several ranges, `(from, end, limit)` each, read at one revision.
    pub(super) fn reads(ranges: &[(&[u8], &[u8], i64)]) -> TxnRequest {
        let success = ranges
            .iter()
            .map(|(from, end, limit)| RequestOp::Range(RangeRequest::page(from, end, *limit)))
            .collect();
        TxnRequest {
            compare: Vec::new(),
            success,
        }
    }

    /// `writes` if and only if each key is still at the `mod_revision` it was read at.
    pub(super) fn guarded(writes: &[&Guarded]) -> TxnRequest {
        let compare = writes
            .iter()
            .map(|w| Compare {
                key: w.write.key().to_vec(),
                target: "MOD",
                result: "EQUAL",
                mod_revision: w.mod_revision,
            })
            .collect();
        let success = writes
            .iter()
            .map(|w| match &w.write {
                Write::Put { key, value, lease } => RequestOp::Put(PutRequest {
                    key: key.clone(),
                    value: value.clone(),
                    lease: *lease,
                }),
                Write::Delete { key } => {
                    RequestOp::DeleteRange(DeleteRangeRequest { key: key.clone() })
                }
            })
            .collect();
        TxnRequest { compare, success }
    }
}

#[derive(Serialize)]
pub(super) struct LeaseGrantRequest {
    #[serde(rename = "TTL", serialize_with = "ser_i64")]
    pub(super) ttl: i64,
    #[serde(rename = "ID", serialize_with = "ser_i64")]
    pub(super) id: i64,
}

#[derive(Serialize)]
pub(super) struct AuthenticateRequest<'a> {
    pub(super) name: &'a str,
    pub(super) password: &'a str,
}

// Answers. Fields etcd leaves out when zero or empty default.

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    cluster_id: String,
}

#[derive(Deserialize)]
struct WithHeader {
    header: Header,
}

/// The cluster a successful answer comes from; `None` when the body is not etcd's JSON.
pub(super) fn cluster_id(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<WithHeader>(body)
        .ok()
        .map(|w| w.header.cluster_id)
}

#[derive(Deserialize)]
pub(super) struct RangeResponse {
    #[serde(default)]
    pub(super) kvs: Vec<KeyValue>,
    #[serde(default)]
    pub(super) more: bool,
    #[serde(default, deserialize_with = "de_i64")]
    pub(super) count: i64,
}

#[derive(Deserialize)]
pub(super) enum ResponseOp {
    #[serde(rename = "response_range")]
    Range(RangeResponse),
    #[serde(rename = "response_put")]
    #[allow(dead_code)] // only its presence matters
    Put(IgnoredAny),
    #[serde(rename = "response_delete_range")]
    #[allow(dead_code)]
    DeleteRange(IgnoredAny),
}

#[derive(Deserialize)]
pub(super) struct TxnResponse {
    #[serde(default)]
    pub(super) succeeded: bool,
    #[serde(default)]
    pub(super) responses: Vec<ResponseOp>,
}

#[derive(Deserialize)]
pub(super) struct AuthenticateResponse {
    pub(super) token: String,
}

/// An error as etcd's gateway writes it. `code` (the gRPC status) is required: another
/// server's JSON error is not mistaken for etcd's.
#[derive(Deserialize)]
pub(super) struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
    pub(super) code: i64,
}

impl ErrorBody {
    /// What etcd says went wrong (`message`, or `error` when that is all there is).
    pub(super) fn text(self) -> String {
        if self.message.is_empty() {
            self.error
        } else {
            self.message
        }
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn ser_base64<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&base64::encode(bytes))
}

fn ser_i64<S: Serializer>(n: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&n.to_string())
}

fn de_base64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    base64::decode(&text).ok_or_else(|| serde::de::Error::custom("invalid base64"))
}

/// etcd writes 64-bit numbers as strings; accept plain numbers too.
fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        Text(String),
        Int(i64),
    }
    match Num::deserialize(d)? {
        Num::Int(n) => Ok(n),
        Num::Text(t) => t
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("not a number: {t:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_follow_etcd() {
        assert_eq!(prefix_end(b"/pykv/a/"), b"/pykv/a0");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
    }

    #[test]
    fn requests_use_base64_and_string_numbers() {
        let op = RequestOp::Put(PutRequest {
            key: b"k".to_vec(),
            value: vec![0, 255],
            lease: 7,
        });
        assert_eq!(
            serde_json::to_string(&op).expect("json"),
            r#"{"request_put":{"key":"aw==","value":"AP8=","lease":"7"}}"#
        );
        let kv: KeyValue =
            serde_json::from_str(r#"{"key":"aw==","mod_revision":"12","create_revision":"3"}"#)
                .expect("kv");
        assert_eq!(
            (kv.key, kv.value, kv.mod_revision, kv.lease),
            (b"k".to_vec(), vec![], 12, 0)
        );
    }
}
