//! The agent's scheduling state: which connection holds which slot, who waits, and
//! which host a grant goes to. Pure: no sockets, no clock reads (callers pass `now`),
//! no `/proc` (callers pass a load reader). `socket.rs` feeds it events and writes the
//! grants it returns; the slot pools are `pool.rs`'s, the host records and the choice
//! among hosts `rank.rs`'s, the per-build counters `tally.rs`'s.
//!
//! Rules:
//! * Caps. A host's cap is the smallest `/LIMIT` among the *current* requests that name
//!   it (waiting ones, and granted ones for the host they got): when two builds disagree
//!   about a host, the more careful one wins, and the cap relaxes again once its
//!   requests are gone. Local pools (compile, cpp) work the same way with `limit=`.
//! * Order. Waiting requests are served in arrival order, but one that cannot be served
//!   (its hosts are full) does not stop a later one whose hosts have room.
//! * Slots are numbered, lowest free number first, so `host[slot]` names a real slot.
//! * Host choice among hosts with a free slot: fewest recent failures, then most free
//!   capacity, then fastest recently (the full rule and why: `rank.rs`).
//! * Load gate (`load=x`, make's `-l`): a local request is granted only while the
//!   runnable count is below `x`, or when no local job of its kind runs at all (make's
//!   rule: `-l` never blocks the first job, so a build always progresses).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::pool::Pool;
use super::rank::{pick_host, Host, Rng};
use super::tally::{BuildEntry, Builds};
use super::{
    BuildStats, CacheOutcome, FarmHost, FarmInfo, FarmPool, HostOffer, JobReport, LocalKind,
};

/// Identifies one client connection (one request).
pub type ConnId = u64;

/// Host records kept; idle ones beyond this are forgotten, oldest first.
const MAX_HOSTS_KEPT: usize = 1024;

/// A request as the agent received it.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Remote {
        build: Option<String>,
        randomize: bool,
        hosts: Vec<HostOffer>,
    },
    Local {
        build: Option<String>,
        kind: LocalKind,
        limit: u32,
        load: Option<f64>,
    },
}

/// A decision: index into the offered hosts (0 for local) and the slot number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub host: usize,
    pub slot: u32,
}

#[derive(Debug)]
enum Held {
    Remote {
        build: Option<String>,
        lock_name: String,
        limit: u32,
        slot: u32,
    },
    Local {
        build: Option<String>,
        kind: LocalKind,
        limit: u32,
        slot: u32,
    },
}

/// The whole scheduling state of one agent.
#[derive(Debug)]
pub struct Sched {
    hosts: HashMap<String, Host>,
    /// Indexed by `kind_index`.
    local: [Pool; 2],
    waiting: VecDeque<(ConnId, Request)>,
    held: HashMap<ConnId, Held>,
    builds: Builds,
    /// Farm-wide counters over every job, tagged with a build or not (for monitors).
    totals: BuildEntry,
    rng: Rng,
    blocked_by_load: bool,
    /// A request came or went since the last `schedule`: only then can a grant
    /// become possible (besides a load change).
    changed: bool,
}

fn kind_index(kind: LocalKind) -> usize {
    match kind {
        LocalKind::Compile => 0,
        LocalKind::Preprocess => 1,
    }
}

impl Sched {
    /// An empty state; `seed` drives the `randomize` tie-break.
    pub fn new(seed: u64) -> Sched {
        Sched {
            hosts: HashMap::new(),
            local: [Pool::default(), Pool::default()],
            waiting: VecDeque::new(),
            held: HashMap::new(),
            builds: Builds::default(),
            totals: BuildEntry::default(),
            rng: Rng::new(seed),
            blocked_by_load: false,
            changed: false,
        }
    }

    /// Queues a request. Nothing is granted until `schedule` runs.
    pub fn submit(&mut self, id: ConnId, req: Request, now: Instant) {
        // An id is used once; a repeated one replaces the old request.
        self.release(id, now);
        match &req {
            Request::Remote { build, hosts, .. } => {
                for h in hosts {
                    let host = self
                        .hosts
                        .entry(h.lock_name.clone())
                        .or_insert_with(|| Host::new(now));
                    host.pool.add_limit(h.limit);
                    host.last_used = now;
                }
                if let Some(b) = build {
                    self.builds.touch(b);
                }
            }
            Request::Local {
                build, kind, limit, ..
            } => {
                self.local[kind_index(*kind)].add_limit(*limit);
                if let Some(b) = build {
                    self.builds.touch(b);
                }
            }
        }
        self.waiting.push_back((id, req));
        self.changed = true;
    }

    /// Forgets a connection: withdraws its waiting request or frees its slot.
    pub fn release(&mut self, id: ConnId, now: Instant) {
        self.changed = true;
        if let Some(pos) = self.waiting.iter().position(|(i, _)| *i == id) {
            if let Some((_, req)) = self.waiting.remove(pos) {
                self.withdraw_limits(&req);
            }
            return;
        }
        match self.held.remove(&id) {
            Some(Held::Remote {
                build,
                lock_name,
                limit,
                slot,
            }) => {
                if let Some(host) = self.hosts.get_mut(&lock_name) {
                    host.pool.in_use.remove(&slot);
                    host.pool.remove_limit(limit);
                    host.last_used = now;
                }
                if let Some(b) = self.builds.get_mut(build.as_deref()) {
                    b.running_remote = b.running_remote.saturating_sub(1);
                }
                self.prune_hosts();
            }
            Some(Held::Local {
                build,
                kind,
                limit,
                slot,
            }) => {
                let pool = &mut self.local[kind_index(kind)];
                pool.in_use.remove(&slot);
                pool.remove_limit(limit);
                if kind == LocalKind::Compile {
                    if let Some(b) = self.builds.get_mut(build.as_deref()) {
                        b.running_local = b.running_local.saturating_sub(1);
                    }
                }
            }
            None => {}
        }
    }

    fn withdraw_limits(&mut self, req: &Request) {
        match req {
            Request::Remote { hosts, .. } => {
                for h in hosts {
                    if let Some(host) = self.hosts.get_mut(&h.lock_name) {
                        host.pool.remove_limit(h.limit);
                    }
                }
                self.prune_hosts();
            }
            Request::Local { kind, limit, .. } => {
                self.local[kind_index(*kind)].remove_limit(*limit);
            }
        }
    }

    /// Keeps the host table bounded: idle hosts beyond the bound go, oldest first.
    fn prune_hosts(&mut self) {
        if self.hosts.len() <= MAX_HOSTS_KEPT {
            return;
        }
        let mut idle: Vec<(Instant, String)> = self
            .hosts
            .iter()
            .filter(|(_, h)| h.pool.is_idle())
            .map(|(k, h)| (h.last_used, k.clone()))
            .collect();
        idle.sort();
        let excess = self.hosts.len() - MAX_HOSTS_KEPT;
        for (_, k) in idle.into_iter().take(excess) {
            self.hosts.remove(&k);
        }
    }

    /// Records how a job on a held slot went. An error if `id` holds no slot, or
    /// reports a host outcome on a local slot.
    pub fn report(&mut self, id: ConnId, report: &JobReport, now: Instant) -> Result<(), String> {
        let Some(held) = self.held.get(&id) else {
            return Err("report without a granted slot".into());
        };
        let (build, lock_name) = match held {
            Held::Remote {
                build, lock_name, ..
            } => (build.clone(), Some(lock_name.clone())),
            Held::Local { build, .. } => (build.clone(), None),
        };
        match report {
            JobReport::Remote { elapsed } => {
                let lock_name = lock_name.ok_or("remote report on a local slot")?;
                self.totals.record_remote(&lock_name);
                if let Some(host) = self.hosts.get_mut(&lock_name) {
                    host.record_time(*elapsed);
                }
                if let Some(b) = build {
                    self.builds.touch(&b).record_remote(&lock_name);
                }
            }
            JobReport::ActionCacheHit => {
                let lock_name = lock_name.ok_or("action cache report on a local slot")?;
                self.totals.record_action_cache_hit(&lock_name);
                if let Some(b) = build {
                    self.builds.touch(&b).record_action_cache_hit(&lock_name);
                }
            }
            JobReport::HostFailed { reason } => {
                let lock_name = lock_name.ok_or("host failure report on a local slot")?;
                if let Some(host) = self.hosts.get_mut(&lock_name) {
                    host.record_failure(now, reason);
                }
                if let Some(b) = build {
                    self.builds
                        .touch(&b)
                        .record_host_failure(&lock_name, reason);
                }
            }
            JobReport::Local { fallback, reason } => {
                self.totals.record_local(*fallback, reason);
                if let Some(b) = build {
                    self.builds.touch(&b).record_local(*fallback, reason);
                }
            }
        }
        Ok(())
    }

    /// Grants every waiting request that can run now, in arrival order, and returns the
    /// grants. `load` is called at most once, and only if a load-limited local request
    /// needs it.
    pub fn schedule(
        &mut self,
        now: Instant,
        load: &mut dyn FnMut() -> Option<f64>,
    ) -> Vec<(ConnId, Grant)> {
        // Reports and stats change no capacity: skip the scan unless a request came or
        // went, or the load may have changed for a request it held back.
        if !self.changed && !self.blocked_by_load {
            return Vec::new();
        }
        self.changed = false;
        self.blocked_by_load = false;
        let mut grants = Vec::new();
        let mut measured: Option<Option<f64>> = None;
        // Local jobs granted during this pass have not started yet, so the measured
        // load does not show them: count each as one more runnable task.
        let mut started_now = 0.0;
        // Once every host is full, the remaining remote requests need no look (the
        // common case with a long queue: one slot frees, one waiter takes it).
        let mut remote_room = self.any_remote_room();
        let waiting = std::mem::take(&mut self.waiting);
        for (id, req) in waiting {
            let grant = match &req {
                Request::Remote { .. } if !remote_room => None,
                Request::Remote {
                    build,
                    randomize,
                    hosts,
                } => {
                    let g = self.grant_remote(id, build, *randomize, hosts, now);
                    if g.is_some() {
                        remote_room = self.any_remote_room();
                    }
                    g
                }
                Request::Local {
                    build,
                    kind,
                    limit,
                    load: load_limit,
                } => {
                    let pool = &self.local[kind_index(*kind)];
                    let slot = pool.free_slot();
                    let gate_open = match (slot, load_limit) {
                        (None, _) => false,
                        (Some(_), None) => true,
                        // make's rule: the first job always starts.
                        (Some(_), Some(_)) if pool.in_use.is_empty() => true,
                        (Some(_), Some(max)) => match *measured.get_or_insert_with(&mut *load) {
                            None => true,
                            Some(l) => {
                                let open = l + started_now < *max;
                                self.blocked_by_load |= !open;
                                open
                            }
                        },
                    };
                    match slot {
                        Some(slot) if gate_open => {
                            started_now += 1.0;
                            Some(self.grant_local(id, build, *kind, *limit, slot))
                        }
                        _ => None,
                    }
                }
            };
            match grant {
                Some(g) => grants.push((id, g)),
                None => self.waiting.push_back((id, req)),
            }
        }
        grants
    }

    fn any_remote_room(&self) -> bool {
        self.hosts.values().any(|h| h.pool.free() > 0)
    }

    fn grant_local(
        &mut self,
        id: ConnId,
        build: &Option<String>,
        kind: LocalKind,
        limit: u32,
        slot: u32,
    ) -> Grant {
        self.local[kind_index(kind)].in_use.insert(slot);
        if kind == LocalKind::Compile {
            if let Some(b) = build {
                self.builds.touch(b).running_local += 1;
            }
        }
        self.held.insert(
            id,
            Held::Local {
                build: build.clone(),
                kind,
                limit,
                slot,
            },
        );
        Grant { host: 0, slot }
    }

    fn grant_remote(
        &mut self,
        id: ConnId,
        build: &Option<String>,
        randomize: bool,
        hosts: &[HostOffer],
        now: Instant,
    ) -> Option<Grant> {
        let index = pick_host(&self.hosts, hosts, randomize, now, &mut self.rng)?;
        let chosen = &hosts[index];
        // From now on the request bears on the chosen host's cap only.
        for h in hosts {
            if let Some(host) = self.hosts.get_mut(&h.lock_name) {
                host.pool.remove_limit(h.limit);
            }
        }
        let host = self
            .hosts
            .entry(chosen.lock_name.clone())
            .or_insert_with(|| Host::new(now));
        host.pool.add_limit(chosen.limit);
        let slot = host.pool.free_slot()?;
        host.pool.in_use.insert(slot);
        host.last_used = now;
        if let Some(b) = build {
            self.builds.touch(b).running_remote += 1;
        }
        self.held.insert(
            id,
            Held::Remote {
                build: build.clone(),
                lock_name: chosen.lock_name.clone(),
                limit: chosen.limit,
                slot,
            },
        );
        Some(Grant { host: index, slot })
    }

    /// True when the last `schedule` left a local request waiting only because of the
    /// load: the caller should measure again soon (the load changes without events).
    pub fn blocked_by_load(&self) -> bool {
        self.blocked_by_load
    }

    /// Number of waiting requests.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The counters of `build` (all zero for an unknown build).
    /// What the compile cache did for one job of `build`.
    pub fn record_cache(&mut self, build: &str, outcome: CacheOutcome) {
        self.builds.touch(build).record_cache(outcome);
    }

    pub fn stats(&self, build: &str) -> BuildStats {
        self.builds.stats(build)
    }
}

impl Sched {
    /// The farm as a monitor shows it: every known host with its cap (0 when no
    /// current request names it), busy slots, waiting requests that name it, and its
    /// last failure; the local pools; farm-wide counters.
    pub fn farm(&self, now: Instant) -> FarmInfo {
        let mut waiting_for: HashMap<&str, u64> = HashMap::new();
        let mut local_waiting = [0u64; 2];
        let mut queued_remote = 0;
        for (_, req) in &self.waiting {
            match req {
                Request::Remote { hosts, .. } => {
                    queued_remote += 1;
                    for h in hosts {
                        *waiting_for.entry(h.lock_name.as_str()).or_insert(0) += 1;
                    }
                }
                Request::Local { kind, .. } => local_waiting[kind_index(*kind)] += 1,
            }
        }
        let mut hosts: Vec<FarmHost> = self
            .hosts
            .iter()
            .map(|(name, h)| FarmHost {
                lock_name: name.clone(),
                limit: h.pool.cap(),
                busy: h.pool.used(),
                waiting: waiting_for.get(name.as_str()).copied().unwrap_or(0),
                mean: h
                    .mean_ms
                    .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0)),
                recent_failures: h.recent_failures(now) as u64,
                last_failure: h
                    .last_failure
                    .as_ref()
                    .map(|(t, why)| (now.saturating_duration_since(*t), why.clone())),
            })
            .collect();
        hosts.sort_by(|a, b| a.lock_name.cmp(&b.lock_name));
        let pool = |i: usize| FarmPool {
            limit: self.local[i].cap(),
            busy: self.local[i].used(),
            waiting: local_waiting[i],
        };
        let reasons = self.totals.sorted_reasons();
        FarmInfo {
            hosts,
            local_compile: pool(kind_index(LocalKind::Compile)),
            local_cpp: pool(kind_index(LocalKind::Preprocess)),
            queued_remote,
            done_remote: self.totals.remote_ok,
            done_local: self.totals.local,
            fallbacks: self.totals.fallbacks,
            reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::rank::FAILURE_MEMORY;
    use crate::agent::tally::MAX_BUILDS;

    fn offer(name: &str, limit: u32) -> HostOffer {
        HostOffer {
            lock_name: name.into(),
            limit,
        }
    }

    fn remote(build: &str, hosts: &[(&str, u32)]) -> Request {
        Request::Remote {
            build: Some(build.into()),
            randomize: false,
            hosts: hosts.iter().map(|(n, l)| offer(n, *l)).collect(),
        }
    }

    fn local(kind: LocalKind, limit: u32, load: Option<f64>) -> Request {
        Request::Local {
            build: Some("b".into()),
            kind,
            limit,
            load,
        }
    }

    fn no_load() -> Option<f64> {
        panic!("load read without a load limit")
    }

    fn run(s: &mut Sched, now: Instant) -> Vec<(ConnId, Grant)> {
        s.schedule(now, &mut no_load)
    }

    #[test]
    fn caps_hold_and_slots_are_numbered_lowest_first() {
        let t = Instant::now();
        let mut s = Sched::new(1);
        for id in 0..5 {
            s.submit(id, remote("b", &[("a", 2), ("c", 1)]), t);
        }
        let g = run(&mut s, t);
        // a: 2 free of 2 ties c: 1 of 1 → list order, then the freer host.
        assert_eq!(
            g,
            vec![
                (0, Grant { host: 0, slot: 0 }),
                (1, Grant { host: 1, slot: 0 }),
                (2, Grant { host: 0, slot: 1 }),
            ]
        );
        assert_eq!(s.waiting(), 2);
        s.release(0, t);
        assert_eq!(run(&mut s, t), vec![(3, Grant { host: 0, slot: 0 })]);
        s.release(1, t);
        assert_eq!(run(&mut s, t), vec![(4, Grant { host: 1, slot: 0 })]);
        assert!(run(&mut s, t).is_empty());
    }

    #[test]
    fn fifo_without_head_of_line_blocking() {
        let t = Instant::now();
        let mut s = Sched::new(1);
        s.submit(1, remote("b", &[("a", 1)]), t);
        assert_eq!(run(&mut s, t).len(), 1);
        s.submit(2, remote("b", &[("a", 1)]), t); // waits for a
        s.submit(3, remote("b", &[("a", 1)]), t); // waits for a, after 2
        s.submit(4, remote("b", &[("z", 1)]), t); // z is free: not blocked by 2 and 3
        assert_eq!(run(&mut s, t), vec![(4, Grant { host: 0, slot: 0 })]);
        s.release(1, t);
        assert_eq!(run(&mut s, t), vec![(2, Grant { host: 0, slot: 0 })]);
        // A waiter that gives up leaves the queue.
        s.release(3, t);
        s.release(2, t);
        assert!(run(&mut s, t).is_empty());
        assert_eq!(s.waiting(), 0);
    }

    #[test]
    fn smallest_limit_among_current_requests_is_the_cap() {
        let t = Instant::now();
        let mut s = Sched::new(1);
        s.submit(1, remote("x", &[("a", 4)]), t);
        s.submit(2, remote("y", &[("a", 1)]), t);
        s.submit(3, remote("x", &[("a", 4)]), t);
        // While y's request (limit 1) is current, a takes one job only.
        assert_eq!(run(&mut s, t), vec![(1, Grant { host: 0, slot: 0 })]);
        s.release(2, t); // y gives up: the cap is 4 again
        assert_eq!(run(&mut s, t), vec![(3, Grant { host: 0, slot: 1 })]);
    }

    #[test]
    fn freer_host_is_chosen_first() {
        let t = Instant::now();
        let mut s = Sched::new(1);
        let hosts = [("a", 4), ("b", 2)];
        s.submit(1, remote("b", &hosts), t);
        s.submit(2, remote("b", &hosts), t);
        s.submit(3, remote("b", &hosts), t);
        let g = run(&mut s, t);
        // a (4/4) → then b (2/2 = 1.0 > 3/4) → then a (3/4 > 1/2).
        let picked: Vec<usize> = g.iter().map(|(_, g)| g.host).collect();
        assert_eq!(picked, vec![0, 1, 0]);
    }

    #[test]
    fn failures_deprioritise_a_host_and_decay() {
        let t0 = Instant::now();
        let mut s = Sched::new(1);
        let hosts = [("a", 2), ("b", 2)];
        s.submit(1, remote("b", &hosts), t0);
        assert_eq!(run(&mut s, t0)[0].1.host, 0);
        s.report(
            1,
            &JobReport::HostFailed {
                reason: "refused".into(),
            },
            t0,
        )
        .unwrap();
        s.release(1, t0);
        s.submit(2, remote("b", &hosts), t0);
        assert_eq!(run(&mut s, t0)[0].1.host, 1, "failed host avoided");
        s.release(2, t0);
        let later = t0 + FAILURE_MEMORY + Duration::from_secs(1);
        s.submit(3, remote("b", &hosts), later);
        assert_eq!(run(&mut s, later)[0].1.host, 0, "failure forgotten");
        let st = s.stats("b");
        assert_eq!(
            st.failed_hosts,
            vec![("a".to_string(), "refused".to_string())]
        );
    }

    #[test]
    fn faster_host_wins_a_tie() {
        let t = Instant::now();
        let mut s = Sched::new(1);
        let hosts = [("a", 1), ("b", 1)];
        for (id, ms) in [(1, 5000), (2, 100)] {
            s.submit(id, remote("b", &hosts), t);
            let g = run(&mut s, t);
            // Both free; a is unmeasured at first (counts as fastest), then b is.
            s.report(
                id,
                &JobReport::Remote {
                    elapsed: Duration::from_millis(ms),
                },
                t,
            )
            .unwrap();
            assert_eq!(g[0].1.host, (id - 1) as usize);
            s.release(id, t);
        }
        s.submit(3, remote("b", &hosts), t);
        assert_eq!(run(&mut s, t)[0].1.host, 1, "b is faster");
        let st = s.stats("b");
        assert_eq!(st.remote_ok, 2);
        assert_eq!(st.per_host, vec![("a".into(), 1), ("b".into(), 1)]);
    }

    #[test]
    fn randomize_spreads_ties_and_list_order_does_not() {
        let t = Instant::now();
        let hosts: Vec<(&str, u32)> = vec![("a", 1), ("b", 1), ("c", 1)];
        let mut counts = [0usize; 3];
        let mut s = Sched::new(42);
        for id in 0..300 {
            s.submit(
                id,
                Request::Remote {
                    build: None,
                    randomize: true,
                    hosts: hosts.iter().map(|(n, l)| offer(n, *l)).collect(),
                },
                t,
            );
            counts[run(&mut s, t)[0].1.host] += 1;
            s.release(id, t);
        }
        assert!(counts.iter().all(|&c| c > 50), "{counts:?}");
        let mut s = Sched::new(42);
        for id in 0..10 {
            s.submit(id, remote("b", &hosts), t);
            assert_eq!(run(&mut s, t)[0].1.host, 0);
            s.release(id, t);
        }
    }

    #[test]
    fn local_pools_are_capped_per_kind() {
        let t = Instant::now();
        let mut s = Sched::new(1);
        s.submit(1, local(LocalKind::Compile, 1, None), t);
        s.submit(2, local(LocalKind::Compile, 1, None), t);
        s.submit(3, local(LocalKind::Preprocess, 2, None), t);
        s.submit(4, local(LocalKind::Preprocess, 2, None), t);
        let ids: Vec<ConnId> = run(&mut s, t).iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, vec![1, 3, 4]);
        assert_eq!(s.stats("b").running_local, 1, "cpp leases are not jobs");
        s.release(1, t);
        assert_eq!(run(&mut s, t), vec![(2, Grant { host: 0, slot: 0 })]);
    }

    #[test]
    fn load_gate_never_blocks_the_first_job() {
        let t = Instant::now();
        let mut s = Sched::new(1);
        let mut high = || Some(10.0);
        s.submit(1, local(LocalKind::Compile, 8, Some(2.0)), t);
        s.submit(2, local(LocalKind::Compile, 8, Some(2.0)), t);
        assert_eq!(s.schedule(t, &mut high).len(), 1);
        assert!(s.blocked_by_load());
        // The load drops: the waiter goes.
        let mut low = || Some(1.0);
        assert_eq!(
            s.schedule(t, &mut low),
            vec![(2, Grant { host: 0, slot: 1 })]
        );
        assert!(!s.blocked_by_load());
        // Jobs granted in one pass count as load: with 0 measured and a limit of 2,
        // two more may start, not all three.
        for id in 10..13 {
            s.submit(id, local(LocalKind::Compile, 8, Some(2.0)), t);
        }
        let mut idle = || Some(0.0);
        assert_eq!(s.schedule(t, &mut idle).len(), 2);
        // Unknown load (no /proc): the gate stays open.
        let mut unknown = || None;
        assert_eq!(s.schedule(t, &mut unknown).len(), 1);
    }

    #[test]
    fn reports_need_a_matching_grant() {
        let t = Instant::now();
        let mut s = Sched::new(1);
        let ok = JobReport::Remote {
            elapsed: Duration::from_millis(1),
        };
        assert!(s.report(1, &ok, t).is_err(), "nothing held");
        s.submit(1, local(LocalKind::Compile, 1, None), t);
        assert!(s.report(1, &ok, t).is_err(), "still waiting");
        run(&mut s, t);
        assert!(
            s.report(1, &ok, t).is_err(),
            "remote report on a local slot"
        );
        let fell_back = JobReport::Local {
            fallback: true,
            reason: "host down".into(),
        };
        s.report(1, &fell_back, t).unwrap();
        s.report(1, &fell_back, t).unwrap();
        let st = s.stats("b");
        assert_eq!((st.local, st.fallbacks), (2, 2));
        assert_eq!(st.reasons, vec![("host down".into(), 2)]);
    }

    #[test]
    fn builds_are_bounded_and_untagged_jobs_are_not_counted() {
        let t = Instant::now();
        let mut s = Sched::new(1);
        for i in 0..(MAX_BUILDS as u64 + 10) {
            s.submit(i, remote(&format!("b{i}"), &[("a", 1000)]), t);
        }
        run(&mut s, t);
        assert_eq!(s.builds.map.len(), MAX_BUILDS);
        assert_eq!(s.stats("b0"), BuildStats::default(), "oldest forgotten");
        assert_eq!(s.stats(&format!("b{}", MAX_BUILDS + 9)).running_remote, 1);
        // Releasing a forgotten build's lease is harmless.
        s.release(0, t);
        s.submit(
            999,
            Request::Remote {
                build: None,
                randomize: false,
                hosts: vec![offer("a", 1000)],
            },
            t,
        );
        assert_eq!(run(&mut s, t).len(), 1);
        assert_eq!(s.builds.map.len(), MAX_BUILDS);
    }

    #[test]
    fn farm_view_counts_caps_busy_queues_failures_and_totals() {
        let t = Instant::now();
        let mut s = Sched::new(1);
        s.submit(1, remote("b", &[("a", 1)]), t);
        s.submit(2, remote("b", &[("a", 1), ("c", 2)]), t);
        s.submit(3, remote("b", &[("a", 1)]), t);
        s.submit(4, local(LocalKind::Compile, 3, None), t);
        let g = run(&mut s, t);
        assert_eq!(g.len(), 3, "{g:?}");
        s.report(
            1,
            &JobReport::HostFailed {
                reason: "connection refused".into(),
            },
            t,
        )
        .unwrap();
        s.report(
            4,
            &JobReport::Local {
                fallback: true,
                reason: "a: refused".into(),
            },
            t,
        )
        .unwrap();
        let later = t + Duration::from_secs(5);
        let f = s.farm(later);
        let names: Vec<&str> = f.hosts.iter().map(|h| h.lock_name.as_str()).collect();
        assert_eq!(names, vec!["a", "c"]);
        let a = &f.hosts[0];
        // 1 got a, 2 got c (a was full), 3 waits for a.
        assert_eq!((a.limit, a.waiting), (1, 1));
        assert_eq!(f.queued_remote, 1);
        let busy: u32 = f.hosts.iter().map(|h| h.busy).sum();
        assert_eq!(busy, 2);
        let (ago, why) = a.last_failure.clone().unwrap();
        assert_eq!(
            (ago, why.as_str()),
            (Duration::from_secs(5), "connection refused")
        );
        assert_eq!(a.recent_failures, 1);
        assert!(f.hosts[1].last_failure.is_none());
        assert_eq!((f.local_compile.limit, f.local_compile.busy), (3, 1));
        assert_eq!((f.done_local, f.fallbacks), (1, 1));
        assert_eq!(f.reasons, vec![("a: refused".to_string(), 1)]);
    }

    #[test]
    fn many_jobs_over_many_hosts_never_exceed_caps() {
        // A small simulation: random arrivals and departures over four hosts.
        let t = Instant::now();
        let mut s = Sched::new(7);
        let hosts = [("a", 1), ("b", 2), ("c", 3), ("d", 4)];
        let mut running: Vec<(ConnId, usize)> = Vec::new();
        let mut r = 12345u64;
        let mut next_id = 0;
        for _ in 0..2000 {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if r >> 62 == 0 && !running.is_empty() {
                let (id, _) = running.remove((r >> 8) as usize % running.len());
                s.release(id, t);
            } else {
                s.submit(next_id, remote("b", &hosts), t);
                next_id += 1;
            }
            for (id, g) in run(&mut s, t) {
                running.push((id, g.host));
            }
            for (h, (_, limit)) in hosts.iter().enumerate() {
                let n = running.iter().filter(|(_, x)| *x == h).count();
                assert!(n <= *limit as usize);
            }
            // Nobody waits while any host has room.
            if s.waiting() > 0 {
                assert_eq!(running.len(), 10);
            }
        }
    }
}
