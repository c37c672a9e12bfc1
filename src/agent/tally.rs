//! Build statistics: the counters the agent keeps per build (as tagged by
//! `SWARMCC_BUILD_ID`) and farm-wide — jobs done remotely and locally, fallbacks and
//! their reasons, jobs per host, failed hosts, jobs running — bounded in how many
//! builds and reasons they remember. Pure; which job ended how is `sched.rs`'s to say.

use std::collections::{BTreeMap, HashMap};

use super::{BuildStats, CacheOutcome};

/// Builds whose counters are kept; the least recently active one is forgotten.
pub const MAX_BUILDS: usize = 64;
/// Distinct reasons counted per build; further ones are counted together.
const MAX_REASONS: usize = 256;
const OTHER_REASONS: &str = "(other reasons)";

#[derive(Debug, Default)]
pub(super) struct BuildEntry {
    pub(super) remote_ok: u64,
    action_cache_hits: u64,
    pub(super) local: u64,
    pub(super) fallbacks: u64,
    reasons: BTreeMap<String, u64>,
    per_host: BTreeMap<String, u64>,
    failed_hosts: BTreeMap<String, String>,
    pub(super) running_remote: u64,
    pub(super) running_local: u64,
    cache: [u64; 3],
    touched: u64,
}

impl BuildEntry {
    fn count_reason(&mut self, reason: &str) {
        if reason.is_empty() {
            return;
        }
        let key = if self.reasons.contains_key(reason) || self.reasons.len() < MAX_REASONS {
            reason
        } else {
            OTHER_REASONS
        };
        *self.reasons.entry(key.to_string()).or_insert(0) += 1;
    }

    /// A job compiled remotely on `lock_name`.
    pub(super) fn record_remote(&mut self, lock_name: &str) {
        self.remote_ok += 1;
        *self.per_host.entry(lock_name.to_string()).or_insert(0) += 1;
    }

    /// A job served by the action cache of the REAPI engine `lock_name`.
    pub(super) fn record_action_cache_hit(&mut self, lock_name: &str) {
        self.record_remote(lock_name);
        self.action_cache_hits += 1;
    }

    /// `lock_name` failed a job for `reason` (the last reason per host is kept).
    pub(super) fn record_host_failure(&mut self, lock_name: &str, reason: &str) {
        self.failed_hosts
            .insert(lock_name.to_string(), reason.to_string());
    }

    /// A job compiled locally (`fallback` when a remote attempt failed first).
    pub(super) fn record_local(&mut self, fallback: bool, reason: &str) {
        self.local += 1;
        if fallback {
            self.fallbacks += 1;
        }
        self.count_reason(reason);
    }

    /// What the compile cache did for one job.
    pub(super) fn record_cache(&mut self, outcome: CacheOutcome) {
        self.cache[outcome as usize] += 1;
    }

    /// The reasons with their counts, most frequent first.
    pub(super) fn sorted_reasons(&self) -> Vec<(String, u64)> {
        let mut reasons: Vec<(String, u64)> =
            self.reasons.iter().map(|(k, v)| (k.clone(), *v)).collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        reasons
    }

    fn stats(&self) -> BuildStats {
        BuildStats {
            remote_ok: self.remote_ok,
            action_cache_hits: self.action_cache_hits,
            local: self.local,
            fallbacks: self.fallbacks,
            reasons: self.sorted_reasons(),
            per_host: self.per_host.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            failed_hosts: self
                .failed_hosts
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            running_remote: self.running_remote,
            running_local: self.running_local,
            cache_local: self.cache[CacheOutcome::LocalHit as usize],
            cache_farm: self.cache[CacheOutcome::FarmHit as usize],
            cache_miss: self.cache[CacheOutcome::Miss as usize],
        }
    }
}

/// Per-build counters, at most `MAX_BUILDS` of them (least recently active dropped).
#[derive(Debug, Default)]
pub(super) struct Builds {
    pub(super) map: HashMap<String, BuildEntry>,
    tick: u64,
}

impl Builds {
    pub(super) fn touch(&mut self, id: &str) -> &mut BuildEntry {
        self.tick += 1;
        if !self.map.contains_key(id) && self.map.len() >= MAX_BUILDS {
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.touched)
                .map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
            }
        }
        let entry = self.map.entry(id.to_string()).or_default();
        entry.touched = self.tick;
        entry
    }

    pub(super) fn get_mut(&mut self, id: Option<&str>) -> Option<&mut BuildEntry> {
        self.map.get_mut(id?)
    }

    /// The counters of `build` (all zero for an unknown build).
    pub(super) fn stats(&self, build: &str) -> BuildStats {
        self.map
            .get(build)
            .map_or_else(BuildStats::default, BuildEntry::stats)
    }
}
