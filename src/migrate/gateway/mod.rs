//! etcd's v3 JSON gateway as `pykv migrate` uses it: a `Gateway` to a cluster and the few
//! operations the migration asks of it (count, read ranges, guarded transactions, leases).
//! Knows nothing of pykv's data; sockets stay in `http`.
//!
//! - `endpoint` — `--endpoints` parsed into hosts and ports.
//! - `auth` — `--user` credentials and the authentication token.
//! - `failover` — one request to whichever member answers: retries, pauses, error classes.
//! - `messages` — the typed JSON of requests and answers.

mod auth;
mod endpoint;
mod failover;
mod messages;

use serde::de::IgnoredAny;

use super::http::Client;
use messages::{
    LeaseGrantRequest, RangeRequest, RangeResponse, ResponseOp, TxnRequest, TxnResponse,
};

pub use auth::Credentials;
pub use endpoint::{parse_endpoints, Endpoint};
pub use messages::{Guarded, KeyValue, Write};

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
            .map(|e| Client::new(&e.host, e.port, failover::REQUEST_TIMEOUT))
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

    /// How many keys start with `prefix`.
    pub fn count(&mut self, prefix: &[u8]) -> Result<u64, EtcdError> {
        let resp: RangeResponse = self.call("/v3/kv/range", &RangeRequest::count(prefix))?;
        Ok(resp.count.max(0) as u64)
    }

    /// Up to `limit` keys in `[from, end)`, in key order, and whether more follow.
    pub fn range(
        &mut self,
        from: &[u8],
        end: &[u8],
        limit: i64,
    ) -> Result<(Vec<KeyValue>, bool), EtcdError> {
        let req = RangeRequest::page(from, end, limit);
        let resp: RangeResponse = self.call("/v3/kv/range", &req)?;
        Ok((resp.kvs, resp.more))
    }

    /// Several ranges read at one revision (a read-only transaction).
    pub fn ranges(
        &mut self,
        ranges: &[(&[u8], &[u8], i64)],
    ) -> Result<Vec<(Vec<KeyValue>, bool)>, EtcdError> {
        let resp: TxnResponse = self.call("/v3/kv/txn", &TxnRequest::reads(ranges))?;
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
        let resp: TxnResponse = self.call("/v3/kv/txn", &TxnRequest::guarded(writes))?;
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
}
