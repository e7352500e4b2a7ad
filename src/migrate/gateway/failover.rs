//! One request to the cluster, whichever member answers: the endpoints in turn, bounded
//! retries with pauses that double, etcd's errors sorted into "try elsewhere", "authenticate
//! again" and "give up", and the check that every endpoint belongs to one cluster. What a
//! request says is built in `messages`; the bytes travel through `http`.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

use super::messages::{cluster_id, decode, ErrorBody};
use super::{EtcdError, Gateway};
use crate::migrate::http::HttpError;

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

impl Gateway {
    /// One request, with failover and retries; returns the answer as `R`.
    pub(super) fn call<Q: Serialize, R: DeserializeOwned>(
        &mut self,
        path: &str,
        req: &Q,
    ) -> Result<R, EtcdError> {
        let body = self.call_raw(path, req, true)?;
        decode(&body).map_err(EtcdError::Refused)
    }

    /// One request, with failover and retries; returns the answer's body.
    pub(super) fn call_raw<Q: Serialize>(
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
        let Some(id) = cluster_id(body) else {
            return Err(Attempt::Endpoint(
                "answered 200 without etcd's JSON: not an etcd v3 gateway".into(),
            ));
        };
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
    let code = err.code;
    let msg = err.text();
    match code {
        UNAVAILABLE | DEADLINE_EXCEEDED | ABORTED | CANCELLED => Attempt::Transient(msg),
        RESOURCE_EXHAUSTED if msg.contains("too many requests") => Attempt::Transient(msg),
        UNAUTHENTICATED if have_user => Attempt::Token,
        UNAUTHENTICATED | INVALID_ARGUMENT
            if !have_user && (code == UNAUTHENTICATED || msg.contains("user name is empty")) =>
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap() {
        let p: Vec<u128> = (1..7).map(|r| pause(r).as_millis()).collect();
        assert_eq!(p, [100, 200, 400, 800, 1600, 2000]);
    }
}
