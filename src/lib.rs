//! swarmcc: a distcc-compatible distributed C/C++ compiler.
//!
//! Data flows one way: parse (`config`, `hosts`, `args`) → decide (`args::classify`)
//! → run (`client`, `server`, through `conn` and `protocol`) → report (`exit`, `logging`).
//!
//! # Module map
//!
//! One line per module: what it owns, then the modules of this crate it may call (its
//! `crate::` imports outside tests). `integration/check-layout.py`, run by the test
//! command, checks that every module is here, that each "calls" list is exactly what
//! the code imports, and that no modules import each other in a circle.
//!
//! * `config` — reads the environment and the host files once. Calls: `agent`, `backoff`, `compiler`, `hosts`, `jobserver`, `logging`, `transport`, `zeroconf`.
//! * `hosts` — the host-list grammar (`hosts::spec`, `hosts::number`, REAPI engines in `hosts::reapi`), warnings, no decisions. Calls: nothing.
//! * `args` — classifies a compiler command line (`args::scan`, `args::job`) and a rustc one (`args::rustc`); derives the preprocessing and remote commands; no I/O. Calls: nothing.
//! * `compiler` — invocation mode, masquerade `PATH`, recursion guard, cross-compile names, swarmcc's own options. Calls: nothing.
//! * `protocol` — the distcc wire protocol (`protocol::message`), LZO1X, the authentication and extension messages, a rustc job's messages (`protocol::rustc`), the farm cache's key and answer (`protocol::cache`), SOCKSv5 `CONNECT`; sans-IO. Calls: `auth`.
//! * `reapi` — the Remote Execution API v2 client: an Action from a command and a source (`reapi::action`, sans-IO), digests, the engine's capabilities, CAS, action cache and execution over gRPC (tonic; messages generated from the vendored protos in `proto/`); knows nothing of processes. Calls: nothing.
//! * `auth` — pre-shared keys, the HMAC-SHA256 handshake, session and transcript MACs; no sockets. Calls: nothing.
//! * `transport` — what a connection is (TCP, UNIX socket, pipes) and how a client opens one (TCP, SOCKSv5, ssh). Calls: `protocol`.
//! * `conn` — the only code that reads protocol connections; timeouts; the MAC tap. Calls: `auth`, `protocol`, `transport`.
//! * `client` — runs a job: `client::job` (host choice, attempt, verdict, finish), `client::remote` (one conversation), `client::preprocess`, `client::local`, `client::own` (swarmcc's own options), `client::rustc` (a rustc job: inputs, conversation, checked results), `client::cache` (a job's key, the local cache), `client::reapi` (a job on a REAPI engine). Calls: `agent`, `args`, `auth`, `backoff`, `blobs`, `cache`, `check`, `compiler`, `config`, `conn`, `exit`, `hosts`, `install`, `launcher`, `logging`, `monitor`, `protocol`, `reapi`, `shims`, `slots`, `stages`, `state`, `toolchain`, `transport`, `version`, `zeroconf`.
//! * `server` — swarmccd: `server::daemon` (start-up), the job pipeline in `server::serve` (`request` → `decide` → `jobdir` → `run` → `reply` → `record`), `server::authn`, `server::stats`, `server::farm` (the farm cache: a key answered before the request, results stored under the server's own key), `server::rustc` (rustc jobs: inputs by content, the run at the client's paths, outputs), `server::codegen` (slots lent to rustc as codegen tokens). Calls: `args`, `auth`, `blobs`, `cache`, `compiler`, `conn`, `exec`, `exit`, `logging`, `namespace`, `protocol`, `sandbox`, `stages`, `toolchain`, `transport`, `version`, `zeroconf`.
//! * `agent` — the per-user scheduling agent: pure scheduling state (`agent::sched`), its line protocol, its socket loop. Calls: nothing.
//! * `jobserver` — the GNU make jobserver: MAKEFLAGS, descriptor checks, tokens. Calls: nothing.
//! * `launcher` — `swarmcc --run`: shims, jobserver, embedded server, status line, summary. Calls: `agent`, `client`, `config`, `exit`, `hosts`, `jobserver`, `server`, `shims`.
//! * `check` — `--check-hosts`: probe compiles on each host compared with local objects; a REAPI engine's capabilities. Calls: `args`, `backoff`, `client`, `compiler`, `config`, `conn`, `exit`, `hosts`, `protocol`, `transport`.
//! * `install` — `--install`/`--uninstall`/`--install-docs`: shims, docs, distcc names, the manifest. Calls: `compiler`, `exit`, `shims`.
//! * `shims` — the masquerade links: which names, where. Calls: `compiler`, `exit`.
//! * `monitor` — `--monitor` and distccmon-text's view: reads the state files, folds them into jobs, draws. Calls: `agent`, `config`, `exit`, `hosts`, `state`.
//! * `state` — the distcc-compatible per-job state files: record layout, writer, reader. Calls: nothing.
//! * `slots` — distcc-compatible lock files (the agent's fallback). Calls: nothing.
//! * `backoff` — distcc-compatible backoff timefiles and once-per-period notices. Calls: nothing.
//! * `blobs` — a bounded, crash-safe store of files by sha256 (written, synced, renamed; checked on every read; least recently used removed first), for the inputs rustc jobs send once and for results by content. Calls: nothing.
//! * `cache` — the compile cache: a C job's key from everything that determines its result (`cache::key`, the same on client and server), the entry a result is kept as (`cache::entry`), a rustc job's key and entry from its request (`cache::rustc`), the bounded, checked store of entries by key with its counters. Calls: `args`, `blobs`, `protocol`.
//! * `namespace` — running a process at its client's paths: a job root as `/` in a private user and mount namespace, the system directories bound read-only. Calls: nothing.
//! * `sandbox` — Landlock confinement of the compilers swarmccd runs. Calls: nothing.
//! * `toolchain` — which compiler a program is (version, target), cached; which rust toolchains a server has, by `rustc -vV` identity (`toolchain::rustc`). Calls: `args`.
//! * `exec` — spawns a compiler or a pipeline of its stages with captured output. Calls: nothing.
//! * `stages` — the stages a gcc driver runs (`-wrapper`, `-###`), file stamps. Calls: nothing.
//! * `zeroconf` — `+zeroconf` and `--zeroconf` through avahi-daemon's D-Bus API. Calls: `compiler`.
//! * `version` — `--version` text in distcc's shape. Calls: nothing.
//! * `logging` — the one logging path (the `log` backend, levels, `DISTCC_VERBOSE`). Calls: nothing.
//! * `exit` — the exit-code table. Calls: nothing.

pub mod agent;
pub mod args;
pub mod auth;
pub mod backoff;
pub mod blobs;
pub mod cache;
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
pub mod namespace;
pub mod protocol;
pub mod reapi;
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
