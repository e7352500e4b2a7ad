//! The connection layer: the only code that sees raw HTTP bytes. `parse` reads request heads and
//! bodies within the configured limits, `response` writes responses, `conn` runs one connection's
//! state machine over a mio socket. Nothing here knows routes, tokens or the store.

pub mod conn;
pub mod parse;
pub mod response;

pub use parse::{Method, Request};
pub use response::Response;
