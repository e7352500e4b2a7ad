//! Simple PyKV (`pykv`): a small, single-threaded key-value server over HTTP/1.1, with projects,
//! tokens and snapshot persistence.
//!
//! # Layout
//! - `main.rs` — command line, start-up (config, data directory, admin token, snapshots), exit codes.
//! - [`config`] — config.json: types, defaults, validation.
//! - [`server`] — the mio event loop: accept, timers, group commit of snapshots, shutdown.
//! - [`http`] — the connection layer, the only code that sees raw HTTP: parsing within limits,
//!   one connection's state machine, response encoding.
//! - [`api`] — typed routes and one file per resource (keys, projects, tokens, health).
//! - [`error`] — `ApiError`, and the one place errors become HTTP responses.
//! - [`auth`] — token generation and constant-time comparison; no I/O.
//! - [`base64`] — the one encoding of bytes that are not text.
//! - [`store`] — projects and keys in memory, with sync-mode undo logs; no I/O, no HTTP.
//! - [`persist`] — snapshot format, atomic writes, loading and checking; reads the store only.
//! - [`migrate`] — moving a data directory onto etcd (`pykv migrate etcd`) or Consul
//!   (`pykv export --format consul`), offline, through `persist::read_dir`.
//! - [`log`] — buffered log lines and clock formats.
//! - [`metrics`] — request and snapshot counters, rendered for Prometheus.
//! - [`signal`] — SIGTERM/SIGINT to a wake-up socket.

pub mod api;
pub mod auth;
pub mod base64;
pub mod boot;
pub mod config;
pub mod error;
pub mod http;
pub mod log;
pub mod metrics;
pub mod migrate;
pub mod persist;
pub mod server;
pub mod signal;
pub mod status;
pub mod store;
