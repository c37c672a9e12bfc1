//! Choosing the host for the next attempt of a job: the hosts in list order (or
//! shuffled with `--randomize`), without those marked down, those backed off after a
//! recent failure, and those this job already tried; the scheduler then hands out a
//! slot on one of them.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::agent::HostOffer;
use crate::backoff;
use crate::client::lease::{Held, Scheduler};
use crate::hosts::{HostList, HostSpec};

/// The hosts of one job, and which of them it has tried.
pub(in crate::client) struct HostChoice<'h> {
    hosts: &'h HostList,
    /// Each host is tried at most once per job: a failing host never loops (distcc
    /// 3.4 retried forever with DISTCC_BACKOFF_PERIOD=0).
    tried: Vec<bool>,
}

/// A host chosen for an attempt, with the slot held on it.
pub(in crate::client) struct Pick<'h> {
    /// Its place in the host list.
    pub index: usize,
    pub host: &'h HostSpec,
    /// `None` when no scheduler hands out slots (the job goes ahead without one).
    pub slot: Option<Held>,
}

impl<'h> HostChoice<'h> {
    pub fn new(hosts: &'h HostList) -> Self {
        HostChoice {
            hosts,
            tried: vec![false; hosts.hosts.len()],
        }
    }

    /// The next host to try, with a slot on it; `None` once every host is tried, down
    /// or backed off.
    pub fn next(
        &mut self,
        sched: &Scheduler,
        lock_dir: &Path,
        backoff_period: Duration,
    ) -> Option<Pick<'h>> {
        let candidates = self.candidates(lock_dir, backoff_period);
        if candidates.is_empty() {
            return None;
        }
        let offers: Vec<HostOffer> = candidates
            .iter()
            .map(|&i| HostOffer {
                lock_name: self.hosts.hosts[i].lock_name(),
                limit: self.hosts.hosts[i].limit,
            })
            .collect();
        let slot = sched.remote(&offers, self.hosts.randomize);
        let index = candidates[slot.as_ref().map(|l| l.host).unwrap_or(0)];
        self.tried[index] = true;
        Some(Pick {
            index,
            host: &self.hosts.hosts[index],
            slot,
        })
    }

    /// Lets a host be tried once more: in plain distcc, after it closed on swarmcc's
    /// extension.
    pub fn try_again(&mut self, index: usize) {
        self.tried[index] = false;
    }

    /// The hosts a slot may be asked on, in the order they are offered.
    fn candidates(&self, lock_dir: &Path, backoff_period: Duration) -> Vec<usize> {
        let now = SystemTime::now();
        host_order(self.hosts)
            .into_iter()
            .filter(|&i| !self.tried[i] && usable(&self.hosts.hosts[i]))
            .filter(|&i| {
                let h = &self.hosts.hosts[i];
                let off = backoff::is_backed_off(lock_dir, &h.lock_name(), backoff_period, now);
                if off {
                    log::debug!(
                        "{} is backed off after a recent failure; skipping it",
                        h.spec
                    );
                }
                !off
            })
            .collect()
    }
}

/// The order in which hosts are offered slots: the list order, or a per-process
/// shuffle with `--randomize` (so many clients do not all start on the first host).
fn host_order(hosts: &HostList) -> Vec<usize> {
    let mut order: Vec<usize> = (0..hosts.hosts.len()).collect();
    if hosts.randomize {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut state = (u64::from(std::process::id()) << 32 | u64::from(nanos)) | 1;
        // Fisher-Yates with xorshift64: spreading load needs no cryptographic quality.
        for i in (1..order.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
    }
    order
}

fn usable(h: &HostSpec) -> bool {
    !h.down
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_order_is_a_permutation_and_plain_lists_keep_their_order() {
        let mut list = crate::hosts::parse("a b c d e f g h").unwrap();
        assert_eq!(host_order(&list), (0..8).collect::<Vec<_>>());
        list.randomize = true;
        let mut order = host_order(&list);
        order.sort_unstable();
        assert_eq!(order, (0..8).collect::<Vec<_>>());
    }
}
