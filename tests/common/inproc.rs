//! The router and handlers in-process, without the event loop: the one file of glue between the
//! tests and `pykv`'s library (when the library's API shifts, this is the file to fix).
//!
//! A request is built as bytes by the same client code the wire tests use, parsed by the
//! server's own `parse_head`, routed and handled as the loop does, decorated (CORS), counted in
//! the metrics, and encoded to bytes that are parsed back into a `Resp`: tests assert the very
//! statuses, headers and bodies the wire would carry. What needs the loop is refused: a parked
//! watch (`Reply::Watch`) and a memory project's switch to a durable mode (`Reply::Convert`).
//!
//! Projects keep nothing on disk: a change a handler makes is final at once, as in a `memory`
//! project (the default here), and as in any project whose write succeeds. Time is a clock the
//! test moves (`pass`), so expiries need no sleeping.

use std::cell::RefCell;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use pykv::api::{self, Ctx, Outcome, Reply, Route, WatchPhase};
use pykv::http::parse::{check_expect, parse_head, Chunked, Framing, Request};
use pykv::http::response::{encode, encode_stream_head, end_chunks, push_chunk, ConnectionHeader};
use pykv::store::Store;

use super::{config, create_project, read_response, Api, Resp, TempDir};

/// The router, the handlers and a store, in this process.
pub struct InProc {
    state: RefCell<State>,
}

struct State {
    ctx: Ctx,
    store: Store,
    /// Unix seconds as the store and the `Date` header see them; moved only by `pass`.
    clock: u64,
}

impl InProc {
    /// The test admin token, `"persistence": "memory"` unless `extra` says otherwise, and
    /// `extra`'s fields, loaded and validated by `pykv::config::load` as the server does.
    pub fn start(extra: serde_json::Value) -> InProc {
        let dir = TempDir::new();
        let mut cfg = serde_json::json!({ "persistence": "memory" });
        for (k, v) in config(extra).as_object().expect("config is an object") {
            cfg[k] = v.clone();
        }
        cfg["data_dir"] = serde_json::json!(dir.path().join("data").to_str().unwrap());
        let path = dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        let cfg = pykv::config::load(&path).unwrap_or_else(|e| panic!("config refused: {e}"));
        let mut store = Store::new(cfg.limits.max_keys_per_project);
        pykv::boot::apply_config(&cfg, &mut store);
        let ctx = Ctx {
            admin_token: cfg
                .admin_token
                .clone()
                .expect("the test config has an admin token"),
            config: cfg,
            status: pykv::status::Status::default(),
        };
        let clock = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs();
        InProc {
            state: RefCell::new(State { ctx, store, clock }),
        }
    }

    /// Start with `extra` config fields and one empty API project `p`; returns the harness and
    /// p's (write, read) secrets.
    pub fn with_p(extra: serde_json::Value) -> (InProc, String, String) {
        let app = InProc::start(extra);
        let (write, read) = create_project(&app, "p");
        (app, write, read)
    }

    /// The clock, in Unix seconds.
    pub fn now(&self) -> u64 {
        self.state.borrow().clock
    }

    /// Let `secs` seconds pass: keys that fall due expire before the next request, as they do
    /// at the start of the server's next loop turn.
    pub fn pass(&self, secs: u64) {
        self.state.borrow_mut().clock += secs;
    }

    /// One request's bytes in, the bytes the server would answer out.
    fn answer(&self, bytes: &[u8]) -> Vec<u8> {
        let mut guard = self.state.borrow_mut();
        let st = &mut *guard;
        st.store.set_clock(st.clock);
        // Expiries are changes like any other; in memory they are final at once.
        let _final = st.store.expire_due(usize::MAX);
        let date = pykv::log::http_date(st.clock);
        let mut out = Vec::new();
        let mut req = match read_request(&st.ctx, &st.store, bytes) {
            Ok(req) => req,
            Err(e) => {
                // As the connection layer answers a refused request: then it closes.
                let r = e.into_response();
                encode(&r, &mut out, false, ConnectionHeader::Close, &date);
                return out;
            }
        };
        let started = Instant::now();
        let route = Route::parse(req.head.path(), st.ctx.config.compat_project.as_deref());
        let label = route.as_ref().map_or("unknown", Route::label);
        st.ctx.status.metrics.connections_open = 1;
        st.ctx.status.metrics.watches_parked = 0;
        let Outcome { reply, change } = api::handle(
            &st.ctx,
            &mut st.store,
            &mut req,
            route.as_ref(),
            WatchPhase::Fresh,
        );
        // Nothing to write: the change is final (see the module's comment).
        drop(change);
        let head_only = req.head.method.as_str() == "HEAD";
        match reply {
            Reply::Now(mut r) => {
                api::decorate(&st.ctx, &req, &mut r);
                encode(&r, &mut out, head_only, connection(&req, false), &date);
                record(&mut st.ctx, label, r.status, started);
            }
            Reply::Stream(mut head, mut cursor) => {
                api::decorate(&st.ctx, &req, &mut head);
                let chunked = req.head.minor_version == 1;
                encode_stream_head(&head, &mut out, connection(&req, !chunked), &date, chunked);
                let mut status = head.status;
                if !head_only {
                    status = stream_body(&st.store, &mut cursor, chunked, &mut out);
                }
                record(&mut st.ctx, label, status, started);
            }
            Reply::Watch(w) => panic!(
                "{} {} parked a watch ({w:?}): watches need the real event loop (Server)",
                req.head.method.as_str(),
                req.head.path()
            ),
            Reply::Convert(c) => panic!(
                "switching project {} to {:?} writes a snapshot: that needs the real server",
                c.project, c.mode
            ),
        }
        out
    }
}

/// Parse a whole request as the connection layer does: the head within the limits, `Expect`,
/// the body as its framing says, within the router's body limit.
fn read_request(ctx: &Ctx, store: &Store, bytes: &[u8]) -> Result<Request, pykv::error::ApiError> {
    let (head, len, framing) =
        parse_head(bytes, &ctx.config.limits)?.expect("the test sent a whole request head");
    check_expect(&head)?;
    let limit = api::body_limit(ctx, store, &head);
    let rest = &bytes[len..];
    let body = match framing {
        Framing::None => Vec::new(),
        Framing::Length(n) if n > limit => return Err(pykv::http::parse::body_too_large(limit)),
        Framing::Length(n) => {
            assert!(
                rest.len() >= n,
                "the test sent {} of {n} body bytes",
                rest.len()
            );
            rest[..n].to_vec()
        }
        Framing::Chunked => {
            let mut body = Vec::new();
            let mut chunked = Chunked::new(limit);
            chunked.feed(rest, &mut body)?;
            assert!(
                chunked.is_done(),
                "the test sent an unfinished chunked body"
            );
            body
        }
    };
    Ok(Request { head, body })
}

/// What the connection says about itself, as `Conn` decides it (`closing`: the body ends with
/// the connection).
fn connection(req: &Request, closing: bool) -> ConnectionHeader {
    ConnectionHeader::choose(req.head.keep_alive() && !closing, req.head.minor_version)
}

/// A streamed body, chunk by chunk as the server sends it (unframed for HTTP/1.0). Returns the
/// status the server counts: 200, or 500 when the stream had to be cut.
fn stream_body(store: &Store, cursor: &mut api::Cursor, chunked: bool, out: &mut Vec<u8>) -> u16 {
    loop {
        let mut chunk = Vec::new();
        let more = api::next_chunk(store, cursor, &mut chunk);
        push_chunk(out, &chunk, chunked);
        match more {
            Ok(true) => continue,
            Ok(false) => {
                end_chunks(out, chunked);
                return 200;
            }
            Err(_) => return 500,
        }
    }
}

fn record(ctx: &mut Ctx, label: &'static str, status: u16, started: Instant) {
    ctx.status
        .metrics
        .record_request(label, status, started.elapsed());
}

impl Api for InProc {
    fn send(&self, request: &[u8], head_only: bool) -> Resp {
        let (r, rest) = self.send_then_close(request, head_only);
        assert!(
            rest.is_empty(),
            "{} bytes after the answer: {r:?}",
            rest.len()
        );
        r
    }

    fn send_then_close(&self, request: &[u8], head_only: bool) -> (Resp, Vec<u8>) {
        let out = self.answer(request);
        let mut rest: &[u8] = &out;
        let r = read_response(&mut rest, head_only).expect("response");
        (r, rest.to_vec())
    }
}
