//! The per-user scheduling agent: one small process per `DISTCC_DIR`, on a UNIX socket,
//! shared by every swarmcc process of every build, that hands out remote and local slots.
//!
//! CONTRACT (the client codes against this now; bodies are being implemented):
//! * A job holds a slot by holding its connection: closing it (or dying) frees the slot
//!   at once, so a killed wrapper never leaks one.
//! * A freed slot goes to the longest waiting request that can use it, immediately (no
//!   polling), first come first served.
//! * The first swarmcc to find no agent starts one (`swarmcc --agent-serve DIR`, detached);
//!   concurrent starters are resolved by a lock file, so exactly one agent runs. It exits
//!   after being idle for a while.
//! * If the agent cannot be reached or started, callers fall back to `slots` lock files:
//!   swarmcc never hangs on the agent.
//! * Monitors (`swarmcc --monitor`) ask it for the whole farm (`Agent::attach`, then
//!   `Agent::farm`: per host the cap, busy slots, queue and last failure; the local
//!   pools; farm-wide counters). They never start an agent.
//!
//! Files: `wire.rs` the line protocol (documented there), `sched.rs` the pure scheduling
//! state, `socket.rs` the agent process (start lock, socket, poll loop), `load.rs` the
//! runnable count, `client.rs` the client side (connecting, leases, queries),
//! `stream.rs` its blocking line I/O, `spawn.rs` starting the agent process. This file
//! holds the vocabulary they share (offers, reports, the farm and build views), the
//! paths in `DISTCC_DIR`, and the agent's entry point.
//!
//! Files in `DISTCC_DIR`: `swarmcc-agent.sock` (mode 0600), `swarmcc-agent.lock` (held
//! with `flock` by the running agent for its whole life), `swarmcc-agent.broken` (set
//! by a client that could not start an agent, so that the next ones do not each wait
//! for it again during the next minute).

use std::path::{Path, PathBuf};
use std::time::Duration;

mod claim;
mod client;
mod load;
mod pool;
mod rank;
mod sched;
mod socket;
mod spawn;
mod stream;
mod tally;
mod wire;

pub use client::{Agent, LocalLease, RemoteLease};
pub use spawn::spawn_detached;

/// How long an agent without connections lingers (`SWARMCC_AGENT_IDLE`, seconds).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30);

/// The agent's socket in `distcc_dir`.
pub fn socket_path(distcc_dir: &Path) -> PathBuf {
    distcc_dir.join("swarmcc-agent.sock")
}

/// The lock file the running agent holds (`flock`) in `distcc_dir`.
pub fn lock_path(distcc_dir: &Path) -> PathBuf {
    distcc_dir.join("swarmcc-agent.lock")
}

fn broken_marker(distcc_dir: &Path) -> PathBuf {
    distcc_dir.join("swarmcc-agent.broken")
}

/// One host a remote request may use: distcc's lock-file stem (`tcp_10.0.0.2_3632`) and
/// the client's `/LIMIT` for it. The agent caps each stem at its limit across clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOffer {
    pub lock_name: String,
    pub limit: u32,
}

/// Which local pool a local request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalKind {
    /// A local compile (non-distributable job, `localhost` host, fallback).
    Compile,
    /// A local preprocessing run for a remote job.
    Preprocess,
}

/// How a finished job went, reported to the agent (for host choice and launcher summaries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobReport {
    /// Compiled remotely on the leased host.
    Remote { elapsed: Duration },
    /// Served by the leased REAPI engine's action cache: a remote job that ran no
    /// compiler, so its time says nothing of the host's speed.
    ActionCacheHit,
    /// The leased host failed (connect, timeout, protocol…): the agent deprioritises it.
    HostFailed { reason: String },
    /// Compiled locally; `fallback` when a remote attempt failed first; `reason` says why.
    Local { fallback: bool, reason: String },
}

/// What the compile cache did for a job, reported to the agent for the launcher's
/// summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Answered by the client's local cache.
    LocalHit,
    /// Answered by a host's farm cache.
    FarmHit,
    /// Looked up, not found, compiled on a host.
    Miss,
}

/// Counters of one build (as tagged by `SWARMCC_BUILD_ID`), for the launcher's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildStats {
    pub remote_ok: u64,
    /// Of `remote_ok`, the jobs served by a REAPI engine's action cache.
    pub action_cache_hits: u64,
    pub local: u64,
    pub fallbacks: u64,
    /// Fallback and local reasons with their counts (most frequent first).
    pub reasons: Vec<(String, u64)>,
    /// Per host lock name: jobs compiled there.
    pub per_host: Vec<(String, u64)>,
    /// Hosts that failed, with their last failure reason.
    pub failed_hosts: Vec<(String, String)>,
    /// Jobs running right now: remote, local (local compiles; a preprocessing slot is
    /// part of a remote job, not a job of its own).
    pub running_remote: u64,
    pub running_local: u64,
    /// Jobs answered by the local cache, by a farm cache, and looked up in vain.
    pub cache_local: u64,
    pub cache_farm: u64,
    pub cache_miss: u64,
}

/// One host as the agent knows it (answer to FARM), for monitors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FarmHost {
    /// distcc's lock-file stem, e.g. `tcp_10.0.0.2_3632`.
    pub lock_name: String,
    /// The cap set by the current requests (the smallest `/LIMIT` among them); 0 when
    /// no current request names the host.
    pub limit: u32,
    /// Slots held right now.
    pub busy: u32,
    /// Queued requests that could use this host.
    pub waiting: u64,
    /// Recent mean job time on the host, once measured.
    pub mean: Option<Duration>,
    /// Failures in the last minute (they rank the host last).
    pub recent_failures: u64,
    /// How long ago the host last failed, and why.
    pub last_failure: Option<(Duration, String)>,
}

/// A local pool (compile or preprocess) as the agent sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FarmPool {
    /// Cap from the current requests (0 when none).
    pub limit: u32,
    pub busy: u32,
    pub waiting: u64,
}

/// The whole farm, as one agent (one `DISTCC_DIR`) schedules it: the FARM answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FarmInfo {
    /// Sorted by lock name.
    pub hosts: Vec<FarmHost>,
    pub local_compile: FarmPool,
    pub local_cpp: FarmPool,
    /// Remote requests waiting for a slot.
    pub queued_remote: u64,
    /// Farm-wide counters since the agent started, over all builds.
    pub done_remote: u64,
    pub done_local: u64,
    pub fallbacks: u64,
    /// Why jobs ran locally, with counts (most frequent first).
    pub reasons: Vec<(String, u64)>,
}

/// Entry point of the agent process (`swarmcc --agent-serve DIR`): returns an exit code.
/// `SWARMCC_AGENT_IDLE` (seconds, default 30) is how long it stays without connections.
pub fn serve_main(distcc_dir: &Path) -> i32 {
    let idle = std::env::var("SWARMCC_AGENT_IDLE")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .map_or(DEFAULT_IDLE, Duration::from_secs_f64);
    serve(distcc_dir, idle)
}

/// Runs the agent of `distcc_dir` in this thread until it has been without connections
/// for `idle`, or until its socket file is removed (checked every second). Returns 0
/// at once if another agent holds the directory's lock.
pub fn serve(distcc_dir: &Path, idle: Duration) -> i32 {
    socket::serve(distcc_dir, idle)
}
