//! etcd's v3 JSON gateway as `pykv migrate` uses it: the endpoints and failing over between
//! them, bounded retries, authentication, and the typed requests and answers of `/v3/kv/range`,
//! `/v3/kv/txn`, `/v3/lease/grant` and `/v3/auth/authenticate` (keys and values in base64,
//! 64-bit numbers as strings). Knows nothing of pykv's data; sockets stay in `http`.

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

use super::http::{Client, HttpError};
use crate::base64;

/// How long one request may take, connect to last byte, before the next endpoint is tried.
/// etcd answers a request it cannot commit after about 7 s itself; a member that is gone or
/// frozen is better left sooner, and a request that timed out is safe to send again (writes
/// carry compare guards).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Rounds over every endpoint before a request is given up, with a pause between rounds that
/// doubles from `FIRST_PAUSE` up to `MAX_PAUSE`: about 10 s of pauses in all, enough for a
/// three-member cluster to elect a new leader after losing one.
const ROUNDS: u32 = 8;
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(2);
/// Until some endpoint has answered once, connection failures end the run after this many
/// rounds: a wrong address should be reported in a moment, not after every retry.
const FIRST_CONTACT_ROUNDS: u32 = 2;

/// One `--endpoints` entry: `http://host:port` (or `host:port`).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    host: String,
    port: u16,
}

/// Parse `--endpoints URL[,URL…]`.
pub fn parse_endpoints(list: &str) -> Result<Vec<Endpoint>, String> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!("--endpoints {list:?}: an empty entry"));
        }
        out.push(parse_endpoint(item)?);
    }
    Ok(out)
}

fn parse_endpoint(url: &str) -> Result<Endpoint, String> {
    let bad = |why: &str| format!("--endpoints: {url:?} {why}");
    if url.starts_with("https://") {
        return Err(bad(
            "uses https, which pykv does not speak: reach etcd over http on a trusted network \
             (or through a local TLS proxy)",
        ));
    }
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if rest.contains("://") {
        return Err(bad("is not an http:// address"));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('/') || authority.contains('@') || authority.contains('?') {
        return Err(bad("must be http://host:port, without a path or user"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, port) = v6.split_once("]:").ok_or_else(|| bad("needs a port"))?;
            (host, port)
        }
        None => authority
            .rsplit_once(':')
            .ok_or_else(|| bad("needs a port (etcd's client port is usually 2379)"))?,
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad("has a bad port"))?;
    if host.is_empty() {
        return Err(bad("needs a host"));
    }
    Ok(Endpoint {
        url: format!("http://{authority}"),
        host: host.to_string(),
        port,
    })
}

/// `--user U --password-env VAR`: the password is never printed, logged or formatted.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    password: String,
}

impl Credentials {
    pub fn new(user: String, password: String) -> Credentials {
        Credentials { user, password }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Why a request to etcd failed for good.
#[derive(Debug)]
pub enum EtcdError {
    /// No endpoint answered within the retries: addresses, network, or a cluster without quorum.
    Unreachable(String),
    /// etcd answered with an error that asking again will not fix (permissions, limits, auth).
    Refused(String),
}

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EtcdError::Unreachable(why) | EtcdError::Refused(why) => write!(f, "{why}"),
        }
    }
}

/// What one attempt's failure calls for.
enum Attempt {
    /// This endpoint did not answer usefully (down, frozen, not etcd): try the next one.
    Endpoint(String),
    /// etcd is between leaders, overloaded, or timed the request out: try again, elsewhere.
    Transient(String),
    /// The auth token expired or the member does not know it: authenticate again.
    Token,
    Fatal(String),
}

/// An etcd cluster reached through its gateway.
pub struct Gateway {
    endpoints: Vec<Endpoint>,
    clients: Vec<Client>,
    current: usize,
    credentials: Option<Credentials>,
    token: Option<String>,
    cluster_id: Option<(String, String)>,
    answered_once: bool,
    notes: Vec<String>,
}

impl Gateway {
    pub fn new(endpoints: Vec<Endpoint>, credentials: Option<Credentials>) -> Gateway {
        let clients = endpoints
            .iter()
            .map(|e| Client::new(&e.host, e.port, REQUEST_TIMEOUT))
            .collect();
        Gateway {
            endpoints,
            clients,
            current: 0,
            credentials,
            token: None,
            cluster_id: None,
            answered_once: false,
            notes: Vec::new(),
        }
    }

    /// Lines worth showing the user (an endpoint given up, authentication off), once each.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    pub fn current_url(&self) -> &str {
        &self.endpoints[self.current].url
    }

    /// Authenticate when asked to; otherwise nothing (the first request shows whether etcd
    /// wants a user).
    pub fn login(&mut self) -> Result<(), EtcdError> {
        if self.credentials.is_some() {
            self.authenticate()?;
        }
        Ok(())
    }

    /// How many keys start with `prefix`.
    pub fn count(&mut self, prefix: &[u8]) -> Result<u64, EtcdError> {
        // etcd refuses an empty key; every key is `\0` up to `\0`.
        let key = if prefix.is_empty() {
            vec![0]
        } else {
            prefix.to_vec()
        };
        let req = RangeRequest {
            key,
            range_end: prefix_end(prefix),
            limit: 0,
            count_only: true,
        };
        let resp: RangeResponse = self.call("/v3/kv/range", &req)?;
        Ok(resp.count.max(0) as u64)
    }

    /// Up to `limit` keys in `[from, end)`, in key order, and whether more follow.
    pub fn range(
        &mut self,
        from: &[u8],
        end: &[u8],
        limit: i64,
    ) -> Result<(Vec<KeyValue>, bool), EtcdError> {
        let req = RangeRequest {
            key: from.to_vec(),
            range_end: end.to_vec(),
            limit,
            count_only: false,
        };
        let resp: RangeResponse = self.call("/v3/kv/range", &req)?;
        Ok((resp.kvs, resp.more))
    }

    /// Several ranges read at one revision (a read-only transaction).
    pub fn ranges(
        &mut self,
        ranges: &[(&[u8], &[u8], i64)],
    ) -> Result<Vec<(Vec<KeyValue>, bool)>, EtcdError> {
        let success = ranges
            .iter()
            .map(|(from, end, limit)| {
                RequestOp::Range(RangeRequest {
                    key: from.to_vec(),
                    range_end: end.to_vec(),
                    limit: *limit,
                    count_only: false,
                })
            })
            .collect();
        let req = TxnRequest {
            compare: Vec::new(),
            success,
        };
        let resp: TxnResponse = self.call("/v3/kv/txn", &req)?;
        let mut out = Vec::with_capacity(ranges.len());
        for op in resp.responses {
            match op {
                ResponseOp::Range(r) => out.push((r.kvs, r.more)),
                _ => {
                    return Err(EtcdError::Refused(
                        "etcd answered a range with a write".into(),
                    ))
                }
            }
        }
        if out.len() != ranges.len() {
            return Err(EtcdError::Refused(format!(
                "etcd answered {} of {} ranges",
                out.len(),
                ranges.len()
            )));
        }
        Ok(out)
    }

    /// Apply `writes` all together if and only if every key is still at the `mod_revision` it
    /// was read at (0: absent). Returns false, having changed nothing, when one was not.
    pub fn guarded_txn(&mut self, writes: &[&Guarded]) -> Result<bool, EtcdError> {
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
        let resp: TxnResponse = self.call("/v3/kv/txn", &TxnRequest { compare, success })?;
        Ok(resp.succeeded)
    }

    /// Grant lease `id` for `ttl` seconds; a lease that already has this id is kept as it is.
    pub fn grant_lease(&mut self, id: i64, ttl: i64) -> Result<(), EtcdError> {
        let req = LeaseGrantRequest { ttl, id };
        match self.call::<_, IgnoredAny>("/v3/lease/grant", &req) {
            Ok(_) => Ok(()),
            Err(EtcdError::Refused(why)) if why.contains("lease already exists") => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn authenticate(&mut self) -> Result<(), EtcdError> {
        let Some(c) = self.credentials.clone() else {
            return Ok(());
        };
        self.token = None;
        let req = AuthenticateRequest {
            name: &c.user,
            password: &c.password,
        };
        match self.call_raw("/v3/auth/authenticate", &req, false) {
            Ok(resp) => {
                let resp: AuthenticateResponse = decode(&resp).map_err(EtcdError::Refused)?;
                self.token = Some(resp.token);
                Ok(())
            }
            Err(EtcdError::Refused(why)) if why.contains("authentication is not enabled") => {
                self.notes.push(format!(
                    "etcd has authentication off: --user {} is not needed",
                    c.user
                ));
                self.credentials = None;
                Ok(())
            }
            Err(EtcdError::Refused(why)) if why.contains("authentication failed") => {
                Err(EtcdError::Refused(format!(
                    "etcd refused user {:?}: wrong user name or password",
                    c.user
                )))
            }
            Err(e) => Err(e),
        }
    }

    fn call<Q: Serialize, R: DeserializeOwned>(
        &mut self,
        path: &str,
        req: &Q,
    ) -> Result<R, EtcdError> {
        let body = self.call_raw(path, req, true)?;
        decode(&body).map_err(EtcdError::Refused)
    }

    /// One request, with failover and retries; returns the answer's body.
    fn call_raw<Q: Serialize>(
        &mut self,
        path: &str,
        req: &Q,
        with_token: bool,
    ) -> Result<Vec<u8>, EtcdError> {
        let body = serde_json::to_vec(req).map_err(|e| EtcdError::Refused(e.to_string()))?;
        let n = self.endpoints.len() as u32;
        let mut failures: Vec<String> = Vec::new();
        let mut reauthenticated = false;
        for attempt in 0..ROUNDS * n {
            if attempt > 0 && attempt % n == 0 {
                let round = attempt / n;
                if !self.answered_once && round >= FIRST_CONTACT_ROUNDS {
                    break;
                }
                std::thread::sleep(pause(round));
            }
            let token = if with_token { self.token.clone() } else { None };
            match self.attempt(path, &body, token.as_deref()) {
                Ok(answer) => return Ok(answer),
                Err(Attempt::Fatal(why)) => return Err(EtcdError::Refused(why)),
                // A fresh token is asked for once per request, and never while asking for one.
                Err(Attempt::Token)
                    if with_token && self.credentials.is_some() && !reauthenticated =>
                {
                    reauthenticated = true;
                    self.authenticate()?;
                }
                Err(Attempt::Token) => {
                    return Err(EtcdError::Refused(format!(
                        "etcd at {} refused the authentication token it had just given",
                        self.current_url()
                    )))
                }
                Err(Attempt::Endpoint(why)) | Err(Attempt::Transient(why)) => {
                    let failed = format!("{}: {why}", self.current_url());
                    self.clients[self.current].close();
                    if n > 1 {
                        self.current = (self.current + 1) % self.endpoints.len();
                        self.notes
                            .push(format!("{failed}; trying {}", self.current_url()));
                    }
                    failures.push(failed);
                }
            }
        }
        Err(EtcdError::Unreachable(unreachable_message(
            &failures,
            self.answered_once,
        )))
    }

    fn attempt(
        &mut self,
        path: &str,
        body: &[u8],
        token: Option<&str>,
    ) -> Result<Vec<u8>, Attempt> {
        let headers: Vec<(&str, &str)> = token.map(|t| ("Authorization", t)).into_iter().collect();
        let resp = self.clients[self.current]
            .post(path, &headers, body)
            .map_err(|e| match e {
                HttpError::Protocol(_) => Attempt::Endpoint(format!("{e} (is it etcd?)")),
                _ => Attempt::Endpoint(e.to_string()),
            })?;
        if resp.status == 200 {
            self.check_cluster(&resp.body)?;
            self.answered_once = true;
            return Ok(resp.body);
        }
        let err: ErrorBody = serde_json::from_slice(&resp.body).map_err(|_| {
            Attempt::Endpoint(format!(
                "answered HTTP {} to {path}: not an etcd v3 gateway",
                resp.status
            ))
        })?;
        self.answered_once = true;
        Err(classify(
            err,
            self.current_url(),
            self.credentials.is_some(),
        ))
    }

    /// Every endpoint must be a member of the same cluster: writing half the keys to another
    /// cluster would be worse than stopping.
    fn check_cluster(&mut self, body: &[u8]) -> Result<(), Attempt> {
        let Ok(with_header) = serde_json::from_slice::<WithHeader>(body) else {
            return Err(Attempt::Endpoint(
                "answered 200 without etcd's JSON: not an etcd v3 gateway".into(),
            ));
        };
        let id = with_header.header.cluster_id;
        let url = self.current_url().to_string();
        match &self.cluster_id {
            None => self.cluster_id = Some((id, url)),
            Some((known, first)) if *known != id => {
                return Err(Attempt::Fatal(format!(
                    "{url} belongs to etcd cluster {id}, but {first} to cluster {known}: \
                     --endpoints must name members of one cluster"
                )));
            }
            Some(_) => {}
        }
        Ok(())
    }
}

fn pause(round: u32) -> Duration {
    let factor = 1u32 << (round - 1).min(10);
    (FIRST_PAUSE * factor).min(MAX_PAUSE)
}

fn unreachable_message(failures: &[String], answered_once: bool) -> String {
    // Each endpoint's last failure, the earliest first.
    let mut last: Vec<&str> = Vec::new();
    for f in failures.iter().rev() {
        let url = format!("{}: ", f.split(": ").next().unwrap_or(""));
        if !last.iter().any(|l| l.starts_with(&url)) {
            last.push(f);
        }
    }
    last.reverse();
    if answered_once {
        format!(
            "etcd failed {} tries in a row: {}",
            failures.len(),
            last.join("; ")
        )
    } else {
        format!("cannot reach etcd at {}", last.join("; "))
    }
}

/// gRPC status codes that etcd's gateway passes on.
const CANCELLED: i64 = 1;
const INVALID_ARGUMENT: i64 = 3;
const DEADLINE_EXCEEDED: i64 = 4;
const PERMISSION_DENIED: i64 = 7;
const RESOURCE_EXHAUSTED: i64 = 8;
const ABORTED: i64 = 10;
const UNAVAILABLE: i64 = 14;
const UNAUTHENTICATED: i64 = 16;

fn classify(err: ErrorBody, url: &str, have_user: bool) -> Attempt {
    let msg = if err.message.is_empty() {
        err.error
    } else {
        err.message
    };
    match err.code {
        UNAVAILABLE | DEADLINE_EXCEEDED | ABORTED | CANCELLED => Attempt::Transient(msg),
        RESOURCE_EXHAUSTED if msg.contains("too many requests") => Attempt::Transient(msg),
        UNAUTHENTICATED if have_user => Attempt::Token,
        UNAUTHENTICATED | INVALID_ARGUMENT
            if !have_user
                && (err.code == UNAUTHENTICATED || msg.contains("user name is empty")) =>
        {
            Attempt::Fatal(format!(
                "etcd at {url} has authentication on: pass --user U --password-env VAR"
            ))
        }
        PERMISSION_DENIED => Attempt::Fatal(format!(
            "etcd at {url} refused: {msg} (the user needs readwrite on the prefix)"
        )),
        _ => Attempt::Fatal(format!("etcd at {url} refused: {msg}")),
    }
}

fn decode<R: DeserializeOwned>(body: &[u8]) -> Result<R, String> {
    serde_json::from_slice(body).map_err(|e| format!("etcd answered JSON we cannot read: {e}"))
}

/// The end of the range of keys starting with `prefix` (etcd's rule: the prefix with its last
/// byte below 0xff raised by one; `\0` — every key — when there is none).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

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

// Requests. Bytes go as base64 and 64-bit numbers as strings, as proto3's JSON mapping has it.

#[derive(Serialize)]
struct RangeRequest {
    #[serde(serialize_with = "ser_base64")]
    key: Vec<u8>,
    #[serde(serialize_with = "ser_base64")]
    range_end: Vec<u8>,
    #[serde(serialize_with = "ser_i64", skip_serializing_if = "is_zero")]
    limit: i64,
    #[serde(skip_serializing_if = "is_false")]
    count_only: bool,
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
struct TxnRequest {
    compare: Vec<Compare>,
    success: Vec<RequestOp>,
}

#[derive(Serialize)]
struct LeaseGrantRequest {
    #[serde(rename = "TTL", serialize_with = "ser_i64")]
    ttl: i64,
    #[serde(rename = "ID", serialize_with = "ser_i64")]
    id: i64,
}

#[derive(Serialize)]
struct AuthenticateRequest<'a> {
    name: &'a str,
    password: &'a str,
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

#[derive(Deserialize)]
struct RangeResponse {
    #[serde(default)]
    kvs: Vec<KeyValue>,
    #[serde(default)]
    more: bool,
    #[serde(default, deserialize_with = "de_i64")]
    count: i64,
}

#[derive(Deserialize)]
enum ResponseOp {
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
struct TxnResponse {
    #[serde(default)]
    succeeded: bool,
    #[serde(default)]
    responses: Vec<ResponseOp>,
}

#[derive(Deserialize)]
struct AuthenticateResponse {
    token: String,
}

/// An error as etcd's gateway writes it. `code` (the gRPC status) is required: another
/// server's JSON error is not mistaken for etcd's.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
    code: i64,
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
    fn endpoints_are_http_host_and_port() {
        let e =
            parse_endpoints("http://10.0.0.1:2379, node2:2379,http://[::1]:2379/").expect("valid");
        let urls: Vec<&str> = e.iter().map(|e| e.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://10.0.0.1:2379",
                "http://node2:2379",
                "http://[::1]:2379"
            ]
        );
        assert_eq!((e[2].host.as_str(), e[2].port), ("::1", 2379));
        for bad in [
            "https://a:2379",
            "http://a",
            "http://a:0",
            "http://a:2379/v3",
            "a:2379,,b:2379",
            "ftp://a:1",
        ] {
            assert!(parse_endpoints(bad).is_err(), "{bad} accepted");
        }
    }

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

    #[test]
    fn credentials_never_show_the_password() {
        let c = Credentials::new("app".into(), "s3cret-password".into());
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn pauses_double_up_to_the_cap() {
        let p: Vec<u128> = (1..7).map(|r| pause(r).as_millis()).collect();
        assert_eq!(p, [100, 200, 400, 800, 1600, 2000]);
    }
}
