//! Getting a slot for a job: from the per-user agent when it runs, else from distcc-style
//! lock files — one interface either way, so the client never cares which, and never
//! hangs because the agent is missing.
//!
//! The scheduler also carries the process's monitor state file (`state`): waiting for
//! a compile slot is the `Blocked` phase, written here, just before the wait.

use std::path::{Path, PathBuf};

use crate::agent::{Agent, CacheOutcome, HostOffer, JobReport, LocalKind, LocalLease, RemoteLease};
use crate::slots::{self, Pool, SlotLease};
use crate::state::StateFile;

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Held {
    /// Index into the offered hosts (0 for local slots).
    pub host: usize,
    pub slot: u32,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    AgentRemote(RemoteLease),
    AgentLocal(LocalLease),
    File(#[allow(dead_code)] SlotLease),
}

impl Held {
    /// Tells the agent how the job went (nothing to tell lock files).
    pub fn report(&mut self, report: &JobReport) {
        match &mut self.inner {
            Inner::AgentRemote(l) => l.report(report),
            Inner::AgentLocal(l) => l.report(report),
            Inner::File(_) => {}
        }
    }
}

/// The source of slots for this process.
pub struct Scheduler {
    agent: Option<Agent>,
    lock_dir: PathBuf,
    /// This process's job state for monitors (none if `DISTCC_DIR` is not writable).
    state: Option<StateFile>,
}

impl Scheduler {
    /// Connects to (or starts) the agent of `distcc_dir`; without one, lock files in
    /// `lock_dir` are used.
    pub fn new(distcc_dir: &Path, lock_dir: PathBuf, build: Option<&str>) -> Scheduler {
        let agent = match std::env::current_exe() {
            Ok(exe) => match Agent::connect(distcc_dir, &exe, build) {
                Ok(a) => Some(a),
                Err(e) => {
                    log::debug!("no scheduling agent ({e}); using lock files");
                    None
                }
            },
            Err(_) => None,
        };
        Scheduler {
            agent,
            lock_dir,
            state: None,
        }
    }

    /// Gives the scheduler the process's state file: phases are written through it
    /// from now on, and it is removed when the scheduler goes.
    pub fn with_state(mut self, state: Option<StateFile>) -> Scheduler {
        self.state = state;
        self
    }

    /// The state file, to write the phases of the job.
    pub fn state(&self) -> Option<&StateFile> {
        self.state.as_ref()
    }

    /// A scheduler that uses lock files only.
    pub fn lock_files(lock_dir: PathBuf) -> Scheduler {
        Scheduler {
            agent: None,
            lock_dir,
            state: None,
        }
    }

    /// Tells the agent what the compile cache did for a job (for `--run`'s summary);
    /// without an agent there is no one to tell.
    pub fn report_cache(&self, outcome: CacheOutcome) {
        if let Some(agent) = &self.agent {
            if let Err(e) = agent.report_cache(outcome) {
                log::debug!("cannot report to the agent: {e}");
            }
        }
    }

    /// Waits for a remote slot on one of `offers`. `None` only if no slot can be had at
    /// all (no offers, or the lock directory is unusable): the caller then proceeds
    /// without one on the first offer.
    pub fn remote(&self, offers: &[HostOffer], randomize: bool) -> Option<Held> {
        if offers.is_empty() {
            return None;
        }
        if let Some(st) = &self.state {
            st.blocked();
        }
        if let Some(agent) = &self.agent {
            match agent.lease_remote(offers, randomize, None) {
                Ok(Some(lease)) => {
                    return Some(Held {
                        host: lease.host,
                        slot: lease.slot,
                        inner: Inner::AgentRemote(lease),
                    })
                }
                Ok(None) => {}
                Err(e) => log::debug!("agent lease failed ({e}); using lock files"),
            }
        }
        let pools: Vec<Pool<'_>> = offers
            .iter()
            .map(|o| Pool {
                lock_name: &o.lock_name,
                limit: o.limit,
            })
            .collect();
        self.file_lease(&pools)
    }

    /// Waits for a local slot of `kind` (at most `limit` at once; with `load_limit`,
    /// none started while the machine is that busy).
    pub fn local(&self, kind: LocalKind, limit: u32, load_limit: Option<f64>) -> Option<Held> {
        let limit = limit.max(1);
        // A job waiting for its preprocessing slot already holds a remote one: its
        // record keeps showing that host until the preprocessor starts.
        if let (Some(st), LocalKind::Compile) = (&self.state, kind) {
            st.blocked();
        }
        if let Some(agent) = &self.agent {
            match agent.lease_local(kind, limit, load_limit) {
                Ok(lease) => {
                    return Some(Held {
                        host: 0,
                        slot: lease.slot,
                        inner: Inner::AgentLocal(lease),
                    })
                }
                Err(e) => log::debug!("agent lease failed ({e}); using lock files"),
            }
        }
        self.file_lease(&[Pool {
            lock_name: "localhost",
            limit,
        }])
    }

    fn file_lease(&self, pools: &[Pool<'_>]) -> Option<Held> {
        match slots::acquire(&self.lock_dir, pools, None) {
            Ok(Some(lease)) => Some(Held {
                host: lease.host,
                slot: lease.slot,
                inner: Inner::File(lease),
            }),
            Ok(None) => None,
            Err(e) => {
                log::debug!(
                    "slot locks in {} unavailable ({e}); running without a slot",
                    self.lock_dir.display()
                );
                None
            }
        }
    }
}
