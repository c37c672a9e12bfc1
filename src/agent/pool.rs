//! A pool of numbered slots whose cap is the smallest limit among the current
//! requests that name it (a host, or a local compile or preprocess pool). Pure; which
//! requests bear on which pool, and when a slot is taken or given back, is `sched.rs`'s.

use std::collections::{BTreeMap, BTreeSet};

/// Numbered slots with a cap taken from the current requests' limits.
#[derive(Debug, Default)]
pub(super) struct Pool {
    pub(super) in_use: BTreeSet<u32>,
    /// Multiset of the limits of current requests: limit → how many requests.
    limits: BTreeMap<u32, usize>,
}

impl Pool {
    pub(super) fn cap(&self) -> u32 {
        self.limits.keys().next().copied().unwrap_or(0)
    }

    pub(super) fn used(&self) -> u32 {
        u32::try_from(self.in_use.len()).unwrap_or(u32::MAX)
    }

    pub(super) fn free(&self) -> u32 {
        self.cap().saturating_sub(self.used())
    }

    /// The lowest free slot number below the cap, if the cap leaves room. (After the cap
    /// shrank, numbers at or above it may still be in use until released.)
    pub(super) fn free_slot(&self) -> Option<u32> {
        if self.free() == 0 {
            return None;
        }
        (0..self.cap()).find(|s| !self.in_use.contains(s))
    }

    pub(super) fn add_limit(&mut self, limit: u32) {
        *self.limits.entry(limit).or_insert(0) += 1;
    }

    pub(super) fn remove_limit(&mut self, limit: u32) {
        if let Some(n) = self.limits.get_mut(&limit) {
            *n -= 1;
            if *n == 0 {
                self.limits.remove(&limit);
            }
        }
    }

    pub(super) fn is_idle(&self) -> bool {
        self.in_use.is_empty() && self.limits.is_empty()
    }
}
