//! swarmcc: a distcc-compatible distributed C/C++ compiler.
//!
//! Data flows one way: parse (`config`, `hosts`, `args`) → decide (`args::classify`)
//! → run (`client`, `server`, through `conn` and `protocol`) → report (`exit`, `logging`).

pub mod agent;
pub mod args;
pub mod auth;
pub mod backoff;
pub mod check;
pub mod client;
pub mod compiler;
pub mod config;
pub mod conn;
pub mod exec;
pub mod exit;
pub mod hosts;
pub mod install;
pub mod jobserver;
pub mod launcher;
pub mod logging;
pub mod monitor;
pub mod protocol;
pub mod sandbox;
pub mod server;
pub mod shims;
pub mod slots;
pub mod stages;
pub mod state;
pub mod toolchain;
pub mod transport;
pub mod version;
pub mod zeroconf;
