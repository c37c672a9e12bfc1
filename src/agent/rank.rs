//! Host ranking: what the agent remembers of each remote host (its slots, recent
//! failures, mean job time) and which offered host a grant goes to. Pure (callers pass
//! `now`); which request is served, and when, is `sched.rs`'s.
//!
//! Host choice among hosts with a free slot: fewer recent failures (forgotten after
//! 60 s), then the highest free fraction (free/cap), then the lower recent mean job
//! time (unmeasured hosts count as fastest, so they get measured), then random with
//! `randomize`, else list order. Failures rank before free capacity on purpose: a
//! broken host fails its jobs at once, so it always looks the freest, and ranking by
//! free fraction first would send every new job to it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::pool::Pool;
use super::HostOffer;

/// How long a host failure counts against the host.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(60);
/// Weight of the newest sample in a host's mean job time.
const EWMA_WEIGHT: f64 = 0.3;
/// Failures remembered per host (older ones are dropped first).
const MAX_FAILURES_KEPT: usize = 32;

#[derive(Debug)]
pub(super) struct Host {
    pub(super) pool: Pool,
    failures: VecDeque<Instant>,
    /// The latest failure and its reason, for monitors ("why is this host backed off").
    pub(super) last_failure: Option<(Instant, String)>,
    pub(super) mean_ms: Option<f64>,
    pub(super) last_used: Instant,
}

impl Host {
    pub(super) fn new(now: Instant) -> Host {
        Host {
            pool: Pool::default(),
            failures: VecDeque::new(),
            last_failure: None,
            mean_ms: None,
            last_used: now,
        }
    }

    pub(super) fn recent_failures(&self, now: Instant) -> usize {
        self.failures
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < FAILURE_MEMORY)
            .count()
    }

    /// A job compiled here in `elapsed`: folded into the recent mean job time.
    pub(super) fn record_time(&mut self, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        self.mean_ms = Some(match self.mean_ms {
            Some(m) => m + EWMA_WEIGHT * (ms - m),
            None => ms,
        });
    }

    /// A job failed here at `now` for `reason`.
    pub(super) fn record_failure(&mut self, now: Instant, reason: &str) {
        if self.failures.len() >= MAX_FAILURES_KEPT {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        self.last_failure = Some((now, reason.to_string()));
    }
}

/// The tie-break's random numbers (splitmix64: plenty for tie-breaking).
#[derive(Debug)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The best offered host with a free slot, by the rules in the module docs: an index
/// into `offers`, or `None` when every offered host is full (or unknown).
pub(super) fn pick_host(
    table: &HashMap<String, Host>,
    offers: &[HostOffer],
    randomize: bool,
    now: Instant,
    rng: &mut Rng,
) -> Option<usize> {
    // (failures, free, cap, mean ms) of the best so far, and all indices tied with it.
    let mut best: Option<(usize, u64, u64, f64)> = None;
    let mut tied: Vec<usize> = Vec::new();
    // A host listed twice just ties with itself: either index names it.
    for (i, offer) in offers.iter().enumerate() {
        let Some(host) = table.get(&offer.lock_name) else {
            continue;
        };
        if host.pool.free_slot().is_none() {
            continue;
        }
        let key = (
            host.recent_failures(now),
            u64::from(host.pool.free()),
            u64::from(host.pool.cap()),
            host.mean_ms.unwrap_or(0.0),
        );
        let order = match &best {
            None => std::cmp::Ordering::Less,
            Some(b) => compare_hosts(&key, b),
        };
        match order {
            std::cmp::Ordering::Less => {
                best = Some(key);
                tied.clear();
                tied.push(i);
            }
            std::cmp::Ordering::Equal => tied.push(i),
            std::cmp::Ordering::Greater => {}
        }
    }
    match tied.len() {
        0 => None,
        1 => Some(tied[0]),
        n if randomize => Some(tied[(rng.next() % n as u64) as usize]),
        _ => Some(tied[0]),
    }
}

/// `Less` when host `a` is the better choice.
fn compare_hosts(a: &(usize, u64, u64, f64), b: &(usize, u64, u64, f64)) -> std::cmp::Ordering {
    let (fa, free_a, cap_a, ms_a) = *a;
    let (fb, free_b, cap_b, ms_b) = *b;
    fa.cmp(&fb)
        // Higher free/cap first: compare free_a/cap_a with free_b/cap_b without division.
        .then_with(|| (free_b * cap_a).cmp(&(free_a * cap_b)))
        .then_with(|| ms_a.total_cmp(&ms_b))
}
