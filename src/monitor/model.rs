//! What the monitor shows, folded from its sources into one [`Snapshot`]: the job state
//! files (every swarmcc and distcc client of this `DISTCC_DIR`), the agent's FARM answer
//! (caps, busy slots, queues, last failures, counters), distcc's backoff timefiles, and
//! the host list. A [`Tracker`] carries what only a series of snapshots can tell: how
//! long a job has been in its phase, and the recent throughput.
//!
//! Reading is here; drawing is `text.rs` and `tui.rs`. Nothing here writes, except that
//! reading the state directory deletes the files of dead clients (`state::read_dir`).

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::agent::{Agent, FarmInfo};
use crate::config::ClientConfig;
use crate::hosts::{HostKind, HostList};
use crate::state::{self, Entry, Phase};

/// One job (one client process).
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    pub pid: u64,
    pub phase: Phase,
    pub file: String,
    pub host: String,
    pub slot: i32,
    /// Since the client process started (from /proc), if known.
    pub elapsed: Option<Duration>,
    /// Since the monitor first saw the job in this phase (set by the tracker).
    pub in_phase: Option<Duration>,
}

impl JobView {
    /// Local work: a local compile or a local preprocessor.
    pub fn is_local(&self) -> bool {
        self.host == "localhost"
    }
}

/// A remote host of the farm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostView {
    /// `host:port` (or the lock name when only the agent knows the host).
    pub label: String,
    /// The name jobs' state files show (`host->hostname`).
    pub hostname: String,
    pub lock_name: String,
    /// The host's `/LIMIT` (from the host list, else the agent's current cap).
    pub limit: u32,
    pub busy: u32,
    /// Jobs waiting that could run here (agent only).
    pub waiting: Option<u64>,
    pub mean: Option<Duration>,
    /// Backed off: time left, and the last failure reason if the agent knows it.
    pub backoff: Option<(Duration, String)>,
    /// The last failure the agent knows of (how long ago, why), backed off or not.
    pub last_failure: Option<(Duration, String)>,
}

/// The local machine's compile slots.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalView {
    pub limit: u32,
    pub busy: u32,
    pub waiting: Option<u64>,
}

/// Everything one refresh shows.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Sorted as distccmon-text sorts them (host, then slot); Done jobs left out.
    pub jobs: Vec<JobView>,
    pub hosts: Vec<HostView>,
    pub local: LocalView,
    /// The agent's answer, when an agent runs.
    pub farm: Option<FarmInfo>,
    /// Jobs waiting for a slot (Blocked), from the state files.
    pub blocked: usize,
}

impl Snapshot {
    pub fn remote_running(&self) -> usize {
        self.jobs
            .iter()
            .filter(|j| !j.is_local() && !matches!(j.phase, Phase::Blocked | Phase::Startup))
            .count()
    }

    pub fn local_running(&self) -> usize {
        self.jobs.iter().filter(|j| j.is_local()).count()
    }
}

/// Reads every source once.
pub fn collect(cfg: &ClientConfig) -> Snapshot {
    let entries = state::read_dir(&state::state_dir(&cfg.distcc_dir));
    let farm = Agent::attach(&cfg.distcc_dir).and_then(|a| a.farm()).ok();
    // The list's warnings are not shown here: they would break the screen every
    // refresh, and `--show-hosts` or any compile says them.
    let hosts = cfg.load_hosts().map(|(l, _)| l).unwrap_or_default();
    let backoffs = read_backoffs(&cfg.lock_dir(), cfg.backoff_period, SystemTime::now());
    fold(&entries, farm, &hosts, &backoffs, &process_age)
}

/// Builds the snapshot from what was read (pure but for `age`, so tests can fold
/// fixed inputs).
pub fn fold(
    entries: &[Entry],
    farm: Option<FarmInfo>,
    list: &HostList,
    backoffs: &HashMap<String, Duration>,
    age: &dyn Fn(u64) -> Option<Duration>,
) -> Snapshot {
    let jobs = job_views(entries, age);
    // Hosts: the host list first (its order), then hosts only the agent knows, then
    // hosts only backoff files name.
    let mut hosts = listed_hosts(list);
    if let Some(f) = &farm {
        add_agent_hosts(&mut hosts, f, backoffs);
    }
    add_backoff_hosts(&mut hosts, backoffs);
    fill_host_state(&mut hosts, &jobs, farm.as_ref(), backoffs);
    let local = local_view(list, &jobs, farm.as_ref());
    let blocked = jobs.iter().filter(|j| j.phase == Phase::Blocked).count();
    Snapshot {
        jobs,
        hosts,
        local,
        farm,
        blocked,
    }
}

/// The jobs of the state files, Done ones left out (they are leaving).
fn job_views(entries: &[Entry], age: &dyn Fn(u64) -> Option<Duration>) -> Vec<JobView> {
    entries
        .iter()
        .filter(|e| e.record.phase != Phase::Done)
        .map(|e| JobView {
            pid: e.record.pid,
            phase: e.record.phase,
            file: e.record.file.clone(),
            host: e.record.host.clone(),
            slot: e.record.slot,
            elapsed: age(e.record.pid),
            in_phase: None,
        })
        .collect()
}

/// The host list's TCP hosts that are not marked down, in its order, each once.
fn listed_hosts(list: &HostList) -> Vec<HostView> {
    let mut hosts: Vec<HostView> = Vec::new();
    for h in &list.hosts {
        if let HostKind::Tcp { host, port } = &h.kind {
            if h.down {
                continue;
            }
            let lock_name = h.lock_name();
            if hosts.iter().any(|x| x.lock_name == lock_name) {
                continue;
            }
            hosts.push(HostView {
                label: if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                },
                hostname: host.clone(),
                lock_name,
                limit: h.limit,
                ..HostView::default()
            });
        }
    }
    hosts
}

/// Hosts the agent knows that the list does not name (another build's list, say).
fn add_agent_hosts(
    hosts: &mut Vec<HostView>,
    farm: &FarmInfo,
    backoffs: &HashMap<String, Duration>,
) {
    // Hosts of other builds, idle now (no current request names them), are left
    // out: the agent remembers every host it ever saw.
    let active = |fh: &&crate::agent::FarmHost| {
        fh.limit > 0 || fh.busy > 0 || fh.waiting > 0 || backoffs.contains_key(&fh.lock_name)
    };
    for fh in farm.hosts.iter().filter(active) {
        if !hosts.iter().any(|x| x.lock_name == fh.lock_name) {
            let (hostname, label) = split_lock_name(&fh.lock_name);
            hosts.push(HostView {
                label,
                hostname,
                lock_name: fh.lock_name.clone(),
                limit: fh.limit,
                ..HostView::default()
            });
        }
    }
}

/// Hosts that appear only in backoff files (a distcc client's farm, say).
fn add_backoff_hosts(hosts: &mut Vec<HostView>, backoffs: &HashMap<String, Duration>) {
    for name in backoffs.keys() {
        if name.starts_with("tcp_") && !hosts.iter().any(|x| &x.lock_name == name) {
            let (hostname, label) = split_lock_name(name);
            hosts.push(HostView {
                label,
                hostname,
                lock_name: name.clone(),
                ..HostView::default()
            });
        }
    }
}

/// Each host's busy slots, queue, mean time, last failure and backoff, from the state
/// files, the agent and the backoff files together.
fn fill_host_state(
    hosts: &mut [HostView],
    jobs: &[JobView],
    farm: Option<&FarmInfo>,
    backoffs: &HashMap<String, Duration>,
) {
    let names: Vec<String> = hosts.iter().map(|h| h.hostname.clone()).collect();
    for hv in hosts {
        // Busy from the state files, by host name: works without an agent, and for
        // distcc's clients too — but only when the name is one host's alone (state
        // files have no port); otherwise the agent's count is all there is.
        if names.iter().filter(|n| **n == hv.hostname).count() == 1 {
            let seen = jobs
                .iter()
                .filter(|j| j.host == hv.hostname && j.phase != Phase::Blocked)
                .count();
            hv.busy = u32::try_from(seen).unwrap_or(u32::MAX);
        }
        let fh = farm.and_then(|f| f.hosts.iter().find(|x| x.lock_name == hv.lock_name));
        if let Some(fh) = fh {
            hv.busy = hv.busy.max(fh.busy);
            hv.waiting = Some(fh.waiting);
            hv.mean = fh.mean;
            hv.last_failure = fh.last_failure.clone();
            if hv.limit == 0 {
                hv.limit = fh.limit;
            }
        }
        if let Some(left) = backoffs.get(&hv.lock_name) {
            let why = hv
                .last_failure
                .as_ref()
                .map(|(_, w)| w.clone())
                .unwrap_or_default();
            hv.backoff = Some((*left, why));
        }
    }
}

/// The local compile slots: the list's count and the state files' local compiles,
/// raised to what the agent knows.
fn local_view(list: &HostList, jobs: &[JobView], farm: Option<&FarmInfo>) -> LocalView {
    let local_jobs = jobs
        .iter()
        .filter(|j| j.is_local() && j.phase == Phase::Compile)
        .count();
    let mut local = LocalView {
        limit: list.local_slots_or_default(),
        busy: u32::try_from(local_jobs).unwrap_or(u32::MAX),
        waiting: None,
    };
    if let Some(f) = farm {
        local.busy = local.busy.max(f.local_compile.busy);
        local.waiting = Some(f.local_compile.waiting);
        if f.local_compile.limit > 0 {
            local.limit = f.local_compile.limit;
        }
    }
    local
}

/// `tcp_10.0.0.2_3632` → (`10.0.0.2`, `10.0.0.2:3632`).
fn split_lock_name(lock_name: &str) -> (String, String) {
    if let Some(rest) = lock_name.strip_prefix("tcp_") {
        if let Some((host, port)) = rest.rsplit_once('_') {
            return (host.to_string(), format!("{host}:{port}"));
        }
    }
    (lock_name.to_string(), lock_name.to_string())
}

/// Hosts backed off now (distcc's `backoff_<lock_name>_0` timefiles), with the time
/// left of `period`.
pub fn read_backoffs(
    lock_dir: &Path,
    period: Duration,
    now: SystemTime,
) -> HashMap<String, Duration> {
    let mut out = HashMap::new();
    if period.is_zero() {
        return out;
    }
    let Ok(dir) = fs::read_dir(lock_dir) else {
        return out;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(lock_name) = name
            .to_str()
            .and_then(|n| n.strip_prefix("backoff_"))
            .and_then(|n| n.strip_suffix("_0"))
        else {
            continue;
        };
        let Ok(mtime) = e.metadata().and_then(|m| m.modified()) else {
            continue;
        };
        // A timefile from the future (clock stepped back) counts as fresh.
        let age = now.duration_since(mtime).unwrap_or(Duration::ZERO);
        if age < period {
            out.insert(lock_name.to_string(), period - age);
        }
    }
    out
}

/// How long process `pid` has run, from /proc (Linux); `None` elsewhere.
pub fn process_age(pid: u64) -> Option<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 22 (starttime) is the 20th after the name (fields 3…).
    let start_ticks: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // SAFETY: sysconf reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks <= 0 {
        return None;
    }
    let secs = uptime - start_ticks / ticks as f64;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Seconds of history the throughput graph covers.
pub const HISTORY_SECS: usize = 40;

/// What a series of snapshots tells: time in phase, completions per second.
#[derive(Debug)]
pub struct Tracker {
    /// pid → (phase, first seen in it).
    phases: HashMap<u64, (Phase, Instant)>,
    /// The agent's done counter at the last snapshot.
    last_done: Option<u64>,
    /// Completions per whole second, newest last.
    buckets: VecDeque<(u64, u32)>,
    started: Instant,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new(Instant::now())
    }
}

impl Tracker {
    pub fn new(now: Instant) -> Tracker {
        Tracker {
            phases: HashMap::new(),
            last_done: None,
            buckets: VecDeque::new(),
            started: now,
        }
    }

    /// Folds a new snapshot in: sets its jobs' time in phase, counts completions.
    pub fn observe(&mut self, snap: &mut Snapshot, now: Instant) {
        // Jobs that ended: the agent's counter when there is one (it also counts jobs
        // too short to be seen), else the processes that left since last time.
        let gone = self
            .phases
            .keys()
            .filter(|pid| !snap.jobs.iter().any(|j| j.pid == **pid))
            .count() as u64;
        let done_now = match &snap.farm {
            Some(f) => {
                let total = f.done_remote + f.done_local;
                let d = match self.last_done {
                    // An agent restart resets its counters.
                    Some(prev) if total >= prev => total - prev,
                    Some(_) => total,
                    None => 0,
                };
                self.last_done = Some(total);
                d
            }
            None => {
                self.last_done = None;
                gone
            }
        };
        let mut phases = HashMap::with_capacity(snap.jobs.len());
        for j in &mut snap.jobs {
            let since = match self.phases.get(&j.pid) {
                Some((p, t)) if *p == j.phase => *t,
                _ => now,
            };
            j.in_phase = Some(now.saturating_duration_since(since));
            phases.insert(j.pid, (j.phase, since));
        }
        self.phases = phases;
        let sec = now.saturating_duration_since(self.started).as_secs();
        match self.buckets.back_mut() {
            Some((s, n)) if *s == sec => *n += u32::try_from(done_now).unwrap_or(u32::MAX),
            _ => self
                .buckets
                .push_back((sec, u32::try_from(done_now).unwrap_or(u32::MAX))),
        }
        while self
            .buckets
            .front()
            .is_some_and(|(s, _)| sec.saturating_sub(*s) >= HISTORY_SECS as u64)
        {
            self.buckets.pop_front();
        }
    }

    /// Completions per second over the last `HISTORY_SECS` seconds, oldest first (one
    /// value per second, zeros included).
    pub fn per_second(&self, now: Instant) -> Vec<u32> {
        let sec = now.saturating_duration_since(self.started).as_secs();
        // Seconds before the monitor started count as zeros.
        (0..HISTORY_SECS as u64)
            .rev()
            .map(|back| {
                sec.checked_sub(back).map_or(0, |s| {
                    self.buckets
                        .iter()
                        .find(|(b, _)| *b == s)
                        .map_or(0, |(_, n)| *n)
                })
            })
            .collect()
    }

    /// Mean completions per second over the last `window` seconds (at most the time
    /// the monitor has watched).
    pub fn rate(&self, now: Instant, window: usize) -> f64 {
        let watched = now.saturating_duration_since(self.started).as_secs_f64();
        let per = self.per_second(now);
        let window = window.clamp(1, per.len());
        let sum: u32 = per[per.len() - window..].iter().sum();
        let span = (window as f64).min(watched.max(1.0));
        f64::from(sum) / span
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{FarmHost, FarmPool};
    use crate::state::Record;

    fn entry(pid: u64, phase: Phase, host: &str, slot: i32) -> Entry {
        Entry {
            record: Record {
                pid,
                file: format!("f{pid}.c"),
                host: host.into(),
                slot,
                phase,
            },
            mtime: SystemTime::now(),
        }
    }

    #[test]
    fn hosts_merge_the_list_the_agent_state_files_and_backoffs() {
        let list =
            crate::hosts::parse("10.0.0.1/4 10.0.0.2:4000/2 10.0.0.2:4001/2 localhost/3").unwrap();
        let entries = vec![
            entry(1, Phase::Compile, "10.0.0.1", 0),
            entry(2, Phase::Compile, "10.0.0.1", 1),
            entry(3, Phase::Compile, "localhost", 0),
            entry(4, Phase::Blocked, "", 0),
            entry(5, Phase::Done, "10.0.0.1", 2),
            entry(6, Phase::Compile, "10.0.0.2", 0),
        ];
        let farm = FarmInfo {
            hosts: vec![
                FarmHost {
                    lock_name: "tcp_10.0.0.1_3632".into(),
                    limit: 4,
                    busy: 2,
                    waiting: 3,
                    ..FarmHost::default()
                },
                FarmHost {
                    lock_name: "tcp_10.0.0.9_3632".into(),
                    limit: 1,
                    busy: 0,
                    last_failure: Some((Duration::from_secs(3), "refused".into())),
                    ..FarmHost::default()
                },
                FarmHost {
                    lock_name: "tcp_10.0.0.2_4001".into(),
                    limit: 2,
                    busy: 1,
                    ..FarmHost::default()
                },
                FarmHost {
                    lock_name: "tcp_old_3632".into(),
                    mean: Some(Duration::from_secs(1)),
                    ..FarmHost::default()
                },
            ],
            local_compile: FarmPool {
                limit: 3,
                busy: 1,
                waiting: 0,
            },
            ..FarmInfo::default()
        };
        let mut backoffs = HashMap::new();
        backoffs.insert("tcp_10.0.0.9_3632".to_string(), Duration::from_secs(40));
        let snap = fold(&entries, Some(farm), &list, &backoffs, &|_| None);
        assert_eq!(snap.jobs.len(), 5, "Done is not shown");
        assert_eq!(snap.blocked, 1);
        let labels: Vec<&str> = snap.hosts.iter().map(|h| h.label.as_str()).collect();
        assert_eq!(
            labels,
            vec![
                "10.0.0.1:3632",
                "10.0.0.2:4000",
                "10.0.0.2:4001",
                "10.0.0.9:3632"
            ],
            "list order, then active hosts only the agent knows"
        );
        let a = &snap.hosts[0];
        assert_eq!((a.busy, a.limit, a.waiting), (2, 4, Some(3)));
        // One name, two ports: the state file cannot tell which; the agent can.
        assert_eq!((snap.hosts[1].busy, snap.hosts[1].limit), (0, 2));
        assert_eq!((snap.hosts[2].busy, snap.hosts[2].limit), (1, 2));
        let off = snap.hosts[3].backoff.clone().unwrap();
        assert_eq!(off, (Duration::from_secs(40), "refused".to_string()));
        assert_eq!((snap.local.busy, snap.local.limit), (1, 3));
        assert_eq!((snap.remote_running(), snap.local_running()), (3, 1));
    }

    #[test]
    fn tracker_times_phases_and_counts_completions() {
        let t0 = Instant::now();
        let mut tr = Tracker::new(t0);
        let list = HostList::default();
        let none = HashMap::new();
        let mut s1 = fold(
            &[
                entry(1, Phase::Compile, "h", 0),
                entry(2, Phase::Send, "h", 1),
            ],
            None,
            &list,
            &none,
            &|_| None,
        );
        tr.observe(&mut s1, t0);
        assert_eq!(s1.jobs[0].in_phase, Some(Duration::ZERO));
        let t1 = t0 + Duration::from_millis(1500);
        let mut s2 = fold(
            &[
                entry(1, Phase::Compile, "h", 0),
                entry(3, Phase::Send, "h", 1),
            ],
            None,
            &list,
            &none,
            &|_| None,
        );
        tr.observe(&mut s2, t1);
        assert_eq!(s2.jobs[0].in_phase, Some(Duration::from_millis(1500)));
        assert_eq!(s2.jobs[1].in_phase, Some(Duration::ZERO));
        // Job 2 ended (no agent: counted by its disappearance).
        let per = tr.per_second(t1);
        assert_eq!(per.len(), HISTORY_SECS);
        assert_eq!(per.iter().sum::<u32>(), 1);
        assert_eq!(*per.last().unwrap(), 1);
        // With an agent, its counter decides.
        let mut s3 = fold(&[], Some(FarmInfo::default()), &list, &none, &|_| None);
        tr.observe(&mut s3, t1);
        let mut s4 = fold(
            &[],
            Some(FarmInfo {
                done_remote: 5,
                done_local: 1,
                ..FarmInfo::default()
            }),
            &list,
            &none,
            &|_| None,
        );
        tr.observe(&mut s4, t0 + Duration::from_secs(2));
        assert_eq!(
            tr.per_second(t0 + Duration::from_secs(2))
                .iter()
                .sum::<u32>(),
            7
        );
        assert!(tr.rate(t0 + Duration::from_secs(2), 10) > 3.0);
    }

    #[test]
    fn backoff_files_give_the_time_left() {
        let dir = tempfile::tempdir().unwrap();
        crate::backoff::mark(dir.path(), "tcp_10.0.0.9_3632", Duration::from_secs(60));
        fs::write(dir.path().join("cpu_localhost_0"), b"").unwrap();
        // Ten seconds after the failure as the file records it (not after our clock
        // reading, which a descheduled test could take seconds later).
        let marked = fs::metadata(crate::backoff::timefile(dir.path(), "tcp_10.0.0.9_3632"))
            .and_then(|m| m.modified())
            .unwrap();
        let now = marked + Duration::from_secs(10);
        let b = read_backoffs(dir.path(), Duration::from_secs(60), now);
        let left = b["tcp_10.0.0.9_3632"];
        assert!(
            left <= Duration::from_secs(50) && left > Duration::from_secs(48),
            "{left:?}"
        );
        assert_eq!(b.len(), 1);
        assert!(read_backoffs(dir.path(), Duration::from_secs(5), now).is_empty());
    }

    #[test]
    fn our_own_process_has_an_age() {
        assert!(process_age(u64::from(std::process::id())).is_some());
    }
}
