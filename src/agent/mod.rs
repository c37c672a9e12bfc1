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

use std::io;
use std::path::Path;
use std::time::Duration;

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
    /// The leased host failed (connect, timeout, protocol…): the agent deprioritises it.
    HostFailed { reason: String },
    /// Compiled locally; `fallback` when a remote attempt failed first; `reason` says why.
    Local { fallback: bool, reason: String },
}

/// A granted remote slot. Dropping it frees the slot.
#[derive(Debug)]
pub struct RemoteLease {
    /// Index into the offered hosts.
    pub host: usize,
    /// Slot number on that host (for the monitor's `host[slot]`).
    pub slot: u32,
}

impl RemoteLease {
    /// Tells the agent how the job went on this host (best effort; errors ignored).
    pub fn report(&mut self, _report: &JobReport) {
        todo!("agent: RemoteLease::report")
    }
}

/// A granted local slot. Dropping it frees the slot.
#[derive(Debug)]
pub struct LocalLease {
    pub slot: u32,
}

impl LocalLease {
    pub fn report(&mut self, _report: &JobReport) {
        todo!("agent: LocalLease::report")
    }
}

/// Counters of one build (as tagged by `SWARMCC_BUILD_ID`), for the launcher's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildStats {
    pub remote_ok: u64,
    pub local: u64,
    pub fallbacks: u64,
    /// Fallback and local reasons with their counts.
    pub reasons: Vec<(String, u64)>,
    /// Per host lock name: jobs compiled there.
    pub per_host: Vec<(String, u64)>,
    /// Hosts that failed, with their last failure reason.
    pub failed_hosts: Vec<(String, String)>,
    /// Jobs running right now: remote, local.
    pub running_remote: u64,
    pub running_local: u64,
}

/// A connection to the agent of one `DISTCC_DIR`.
#[derive(Debug)]
pub struct Agent {
    _private: (),
}

impl Agent {
    /// Connects to the agent of `distcc_dir`, starting it (with `self_exe --agent-serve
    /// distcc_dir`) if none runs. `build` tags this process's jobs (`SWARMCC_BUILD_ID`).
    pub fn connect(
        _distcc_dir: &Path,
        _self_exe: &Path,
        _build: Option<&str>,
    ) -> io::Result<Agent> {
        todo!("agent: connect")
    }

    /// Waits for a remote slot on one of `hosts` (the agent picks the host: most free
    /// capacity, fewest recent failures, fastest recently; `randomize` breaks ties at
    /// random). `Ok(None)` if `timeout` passes first.
    pub fn lease_remote(
        &self,
        _hosts: &[HostOffer],
        _randomize: bool,
        _timeout: Option<Duration>,
    ) -> io::Result<Option<RemoteLease>> {
        todo!("agent: lease_remote")
    }

    /// Waits for a local slot: at most `limit` of `kind` at once for this user, and, when
    /// `load_limit` is set, none started while the machine's runnable count
    /// (/proc/loadavg field 4) is at or above it (as make -l).
    pub fn lease_local(
        &self,
        _kind: LocalKind,
        _limit: u32,
        _load_limit: Option<f64>,
    ) -> io::Result<LocalLease> {
        todo!("agent: lease_local")
    }

    /// Counters of a build so far.
    pub fn build_stats(&self, _build: &str) -> io::Result<BuildStats> {
        todo!("agent: build_stats")
    }
}

/// Entry point of the agent process (`swarmcc --agent-serve DIR`): returns an exit code.
pub fn serve_main(_distcc_dir: &Path) -> i32 {
    todo!("agent: serve_main")
}
