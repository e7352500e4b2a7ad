//! Simple PyKV (`pykv`): a small, single-threaded key-value server over HTTP/1.1, with projects,
//! tokens, and persistence in a journal beside a snapshot per project.
//!
//! # Layout
//! - `main.rs` — the command line and exit codes: the only place that exits the process.
//! - [`boot`] — start-up: the admin token, the store from the data directory and config.json,
//!   the disk side of the loaded projects.
//! - [`config`] — config.json: where it is, types, defaults, validation, errors naming the field.
//! - [`server`] — the event loop: connections, requests that wait, and the commit (the
//!   durability rule, in `server/commit.rs`).
//! - [`http`] — the connection layer, the only code that sees raw HTTP: parsing within limits,
//!   one connection's state machine, response encoding. It knows no routes.
//! - [`api`] — routes, and per resource the typed requests parsed once and applied to the store.
//! - [`error`] — the table of error codes and statuses, and the one place errors become HTTP.
//! - [`auth`] — token generation and constant-time comparison; no I/O.
//! - [`base64`] — the one encoding of bytes that are not text.
//! - [`jsonerr`], [`wholenum`] — JSON errors said for people (the field, what it wanted, what
//!   came); whole numbers written `7` or `7.0`.
//! - [`store`] — projects and keys in memory, split by job; no I/O, no HTTP.
//! - [`persist`] — snapshots, journals, compactions, loading and checking; reads the store only.
//! - [`migrate`] — moving a data directory onto etcd (`pykv migrate etcd`) or Consul
//!   (`pykv export --format consul`), offline, through `persist::read_dir`.
//! - [`status`], [`metrics`] — what the server knows of itself: problems for /health, counters.
//! - [`log`] — buffered log lines and clock formats.
//! - [`signal`] — SIGTERM/SIGINT to a wake-up socket; SIGXFSZ ignored.

pub mod api;
pub mod auth;
pub mod base64;
pub mod boot;
pub mod config;
pub mod error;
pub mod http;
pub mod jsonerr;
pub mod log;
pub mod metrics;
pub mod migrate;
pub mod persist;
pub mod server;
pub mod signal;
pub mod status;
pub mod store;
pub mod wholenum;
