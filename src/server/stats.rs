//! The server's counters, shared by every connection thread, and their two renderings:
//! distccd's `--stats` page (reference 5.5, kept byte-compatible so existing scripts
//! work) and the Prometheus text exposition format (version 0.0.4).
//!
//! The hot path (one job) costs a few relaxed atomic additions and one short mutex
//! section at the end of a job (longest job, recent-compile ring). Rendering is pure:
//! facts about the machine (load, processes, free space) are gathered by the listener
//! (`http`) and passed in as [`MachineInfo`], so the formats can be tested exactly.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::args::filename;

use super::record::JobResult;
pub use super::record::{JobRecord, RejectReason};

/// Upper bounds (seconds) of the compile-time histogram's buckets; `+Inf` is implied.
pub const COMPILE_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The slowest `COMPILE_OK` job so far (distccd's `dcc_longest_job*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongestJob {
    pub input: String,
    pub compiler: String,
    pub msecs: u64,
}

/// Seconds per slot of the recent-compile ring, and the number of slots: 15 minutes,
/// as distccd's 300 three-second slots.
const SLOT_SECS: u64 = 3;
const SLOTS: usize = 300;

/// Compiles (and the compiler time they used) finished in each of the last `SLOTS`
/// slots. Bounded memory whatever the job rate.
#[derive(Debug)]
struct Recent {
    /// Per ring position: which absolute slot it holds, compiles, compiler milliseconds.
    slots: Vec<(u64, u64, u64)>,
}

impl Recent {
    fn new() -> Self {
        Recent {
            slots: vec![(u64::MAX, 0, 0); SLOTS],
        }
    }

    fn add(&mut self, slot: u64, busy_ms: u64) {
        let cell = &mut self.slots[(slot % SLOTS as u64) as usize];
        if cell.0 != slot {
            *cell = (slot, 0, 0);
        }
        cell.1 += 1;
        cell.2 += busy_ms;
    }

    /// Compiles and compiler milliseconds of the `n` most recent slots (the current
    /// one included).
    fn window(&self, now_slot: u64, n: u64) -> (u64, u64) {
        self.slots
            .iter()
            .filter(|(s, _, _)| *s != u64::MAX && *s <= now_slot && now_slot - *s < n)
            .fold((0, 0), |(c, b), (_, n, ms)| (c + n, b + ms))
    }
}

#[derive(Debug)]
struct Slow {
    longest: Option<LongestJob>,
    recent: Recent,
}

/// The counters. One per server, shared by reference.
#[derive(Debug)]
pub struct Stats {
    start: Instant,
    max_jobs: usize,
    connections: AtomicU64,
    results: [AtomicU64; JobResult::ALL.len()],
    rejects: [AtomicU64; RejectReason::ALL.len()],
    running: AtomicU64,
    queued: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Per bucket (not cumulative), the last one is `+Inf`.
    buckets: [AtomicU64; COMPILE_BUCKETS.len() + 1],
    compile_micros: AtomicU64,
    slow: Mutex<Slow>,
}

/// Decrements a gauge when dropped, so every exit path of a job keeps it right.
pub struct GaugeGuard<'a>(&'a AtomicU64);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Stats {
    pub fn new(max_jobs: usize) -> Self {
        Stats {
            start: Instant::now(),
            max_jobs,
            connections: AtomicU64::new(0),
            results: Default::default(),
            rejects: Default::default(),
            running: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            buckets: Default::default(),
            compile_micros: AtomicU64::new(0),
            slow: Mutex::new(Slow {
                longest: None,
                recent: Recent::new(),
            }),
        }
    }

    fn slow(&self) -> MutexGuard<'_, Slow> {
        // Every update leaves the data consistent; a panic elsewhere cannot break it.
        self.slow.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slot_now(&self) -> u64 {
        self.start.elapsed().as_secs() / SLOT_SECS
    }

    /// A connection was accepted on the compile port (allowed or not).
    pub fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// A peer outside `--allow` was closed.
    pub fn denied(&self) {
        self.reject(RejectReason::AccessDenied);
    }

    fn reject(&self, reason: RejectReason) {
        self.rejects[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Reply bytes written to a client.
    pub fn sent(&self, bytes: usize) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a job waiting for a compile slot until the guard is dropped.
    pub fn queued(&self) -> GaugeGuard<'_> {
        self.queued.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(&self.queued)
    }

    /// Jobs waiting for a compile slot right now.
    pub fn queued_now(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Counts a job holding a compile slot until the guard is dropped.
    pub fn running(&self) -> GaugeGuard<'_> {
        self.running.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(&self.running)
    }

    /// Accounts for one finished connection.
    pub fn record(&self, job: &JobRecord<'_>) {
        self.results[job.result.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(reason) = job.reject {
            self.reject(reason);
        }
        self.bytes_in.fetch_add(job.bytes_in, Ordering::Relaxed);
        let Some(took) = job.compile_time else {
            return;
        };
        // The histogram describes compiles that finished (or hit --job-lifetime); a
        // compiler killed because its client left says nothing about compile times.
        if matches!(
            job.result,
            JobResult::CompileOk | JobResult::CompileError | JobResult::CompileTimeout
        ) {
            let secs = took.as_secs_f64();
            let bucket = COMPILE_BUCKETS
                .iter()
                .position(|le| secs <= *le)
                .unwrap_or(COMPILE_BUCKETS.len());
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
            self.compile_micros
                .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        }
        let slot = self.slot_now();
        let mut slow = self.slow();
        // Every compiler that ran used the machine, as distccd's num_compiles counts.
        slow.recent.add(slot, took.as_millis() as u64);
        if job.result == JobResult::CompileOk {
            let msecs = job.elapsed.as_millis() as u64;
            if slow.longest.as_ref().is_none_or(|l| msecs > l.msecs) {
                slow.longest = Some(LongestJob {
                    input: filename::basename(job.input).to_owned(),
                    compiler: job.compiler.to_owned(),
                    msecs,
                });
            }
        }
    }

    /// A consistent-enough copy of everything (each counter is read once).
    pub fn snapshot(&self) -> Snapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let now_slot = self.slot_now();
        let slow = self.slow();
        let windows = [20, 100, 300].map(|n| {
            let (compiles, busy_ms) = slow.recent.window(now_slot, n);
            // Average concurrency = compiler time spent / wall time of the window
            // (less at start-up, when the server has not run that long).
            let span_ms = (n * SLOT_SECS * 1000)
                .min(self.start.elapsed().as_millis() as u64)
                .max(1);
            (compiles, busy_ms / span_ms)
        });
        Snapshot {
            max_jobs: self.max_jobs as u64,
            connections: load(&self.connections),
            results: JobResult::ALL.map(|r| (r, load(&self.results[r.index()]))),
            rejects: RejectReason::ALL.map(|r| (r, load(&self.rejects[r.index()]))),
            running: load(&self.running),
            queued: load(&self.queued),
            bytes_in: load(&self.bytes_in),
            bytes_out: load(&self.bytes_out),
            buckets: std::array::from_fn(|i| load(&self.buckets[i])),
            compile_secs: load(&self.compile_micros) as f64 / 1e6,
            longest: slow.longest.clone(),
            num_compiles: windows.map(|w| w.0),
            avg_kids: windows.map(|w| w.1),
            cache: None,
        }
    }
}

/// The counters at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub max_jobs: u64,
    pub connections: u64,
    pub results: [(JobResult, u64); JobResult::ALL.len()],
    /// The farm cache's counters, when the server has one (filled in by `http`).
    pub cache: Option<crate::cache::Counts>,
    pub rejects: [(RejectReason, u64); RejectReason::ALL.len()],
    pub running: u64,
    pub queued: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Per bucket, not cumulative; the last is `+Inf`.
    pub buckets: [u64; COMPILE_BUCKETS.len() + 1],
    pub compile_secs: f64,
    pub longest: Option<LongestJob>,
    /// Compiles finished in the last 1, 5 and 15 minutes.
    pub num_compiles: [u64; 3],
    /// Average number of compilers running over the last 1, 5 and 15 minutes.
    pub avg_kids: [u64; 3],
}

impl Snapshot {
    pub fn result(&self, r: JobResult) -> u64 {
        self.results
            .iter()
            .find(|(k, _)| *k == r)
            .map_or(0, |x| x.1)
    }

    pub fn rejected(&self, r: RejectReason) -> u64 {
        self.rejects
            .iter()
            .find(|(k, _)| *k == r)
            .map_or(0, |x| x.1)
    }
}

/// Facts about the machine for distccd's page, read when a request comes in.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineInfo {
    /// The runnable count of `/proc/loadavg` (its 4th field, before the slash).
    pub current_load: u64,
    pub load: [f64; 3],
    /// Processes in state D (uninterruptible sleep).
    pub procs_d: u64,
    /// The largest resident set (KiB) and its process name in parentheses.
    pub max_rss_kib: u64,
    pub max_rss_name: String,
    /// Free space of `$TMPDIR` in MiB.
    pub free_mib: u64,
}

/// distccd's `--stats` reply, byte for byte in its layout: LF line ends, the fields of
/// reference 5.5 in order, `argv /distccd` kept as is (scripts look for it).
pub fn render_distcc(s: &Snapshot, m: &MachineInfo) -> String {
    let none = LongestJob {
        input: "none".into(),
        compiler: "none".into(),
        msecs: 0,
    };
    let longest = s.longest.as_ref().unwrap_or(&none);
    // distccd prints -1 before any job finished.
    let longest_ms = match &s.longest {
        Some(l) => l.msecs as i64,
        None => -1,
    };
    let mut o = String::with_capacity(1024);
    o.push_str("HTTP/1.0 200 OK\nContent-Type: text/plain\nConnection: close\n\n");
    o.push_str("argv /distccd\n<distccstats>\n");
    let mut line = |name: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(o, "{name} {value}");
    };
    line("dcc_tcp_accept", &s.connections);
    line("dcc_rej_bad_req", &s.result(JobResult::RejBadReq));
    line("dcc_rej_overload", &s.rejected(RejectReason::Busy));
    line("dcc_compile_ok", &s.result(JobResult::CompileOk));
    line("dcc_compile_error", &s.result(JobResult::CompileError));
    line("dcc_compile_timeout", &s.result(JobResult::CompileTimeout));
    line("dcc_cli_disconnect", &s.result(JobResult::CliDisconn));
    line("dcc_other", &s.result(JobResult::Other));
    line("dcc_longest_job", &longest.input);
    line("dcc_longest_job_compiler", &longest.compiler);
    line("dcc_longest_job_time_msecs", &longest_ms);
    line("dcc_max_kids", &s.max_jobs);
    line("dcc_avg_kids1", &s.avg_kids[0]);
    line("dcc_avg_kids2", &s.avg_kids[1]);
    line("dcc_avg_kids3", &s.avg_kids[2]);
    line("dcc_current_load", &m.current_load);
    line("dcc_load1", &format_args!("{:.2}", m.load[0]));
    line("dcc_load2", &format_args!("{:.2}", m.load[1]));
    line("dcc_load3", &format_args!("{:.2}", m.load[2]));
    line("dcc_num_compiles1", &s.num_compiles[0]);
    line("dcc_num_compiles2", &s.num_compiles[1]);
    line("dcc_num_compiles3", &s.num_compiles[2]);
    line("dcc_num_procstate_D", &m.procs_d);
    line("dcc_max_RSS", &m.max_rss_kib);
    line("dcc_max_RSS_name", &m.max_rss_name);
    // distccd samples disk sectors once a minute; -1 is its "no sample yet".
    line("dcc_io_rate", &-1);
    line("dcc_free_space", &format_args!("{} MB", m.free_mib));
    o.push_str("</distccstats>\n");
    o
}

/// The Prometheus text exposition (format 0.0.4) of the counters.
pub fn render_prometheus(s: &Snapshot) -> String {
    let mut o = String::with_capacity(4096);
    head(
        &mut o,
        "swarmccd_connections_total",
        "counter",
        "Connections accepted on the compile port, including peers denied by --allow.",
    );
    let _ = writeln!(o, "swarmccd_connections_total {}", s.connections);
    head(
        &mut o,
        "swarmccd_jobs_total",
        "counter",
        "Connections served, by result (the job log's COMPILE_OK, COMPILE_ERROR... in lower case).",
    );
    for (r, n) in &s.results {
        let _ = writeln!(o, "swarmccd_jobs_total{{result=\"{}\"}} {n}", r.label());
    }
    head(
        &mut o,
        "swarmccd_rejects_total",
        "counter",
        "Connections refused, by reason (whitelist covers DISTCC_CMDLIST and compilers not installed).",
    );
    for (r, n) in &s.rejects {
        let _ = writeln!(o, "swarmccd_rejects_total{{reason=\"{}\"}} {n}", r.label());
    }
    head(
        &mut o,
        "swarmccd_jobs_running",
        "gauge",
        "Jobs holding a compile slot.",
    );
    let _ = writeln!(o, "swarmccd_jobs_running {}", s.running);
    head(
        &mut o,
        "swarmccd_jobs_queued",
        "gauge",
        "Jobs waiting for a compile slot (--jobs).",
    );
    let _ = writeln!(o, "swarmccd_jobs_queued {}", s.queued);
    head(
        &mut o,
        "swarmccd_max_jobs",
        "gauge",
        "Compilers allowed to run at once (--jobs).",
    );
    let _ = writeln!(o, "swarmccd_max_jobs {}", s.max_jobs);
    render_compile_histogram(&mut o, s);
    head(
        &mut o,
        "swarmccd_bytes_received_total",
        "counter",
        "Request bytes received from clients on the compile port.",
    );
    let _ = writeln!(o, "swarmccd_bytes_received_total {}", s.bytes_in);
    head(
        &mut o,
        "swarmccd_bytes_sent_total",
        "counter",
        "Reply bytes sent to clients on the compile port.",
    );
    let _ = writeln!(o, "swarmccd_bytes_sent_total {}", s.bytes_out);
    if let Some(c) = &s.cache {
        render_cache(&mut o, c);
    }
    o
}

/// The farm cache's counters (`--cache-dir`), since the server started.
fn render_cache(o: &mut String, c: &crate::cache::Counts) {
    for (name, kind, help, value) in [
        (
            "hits_total",
            "counter",
            "Jobs answered from the farm cache (no compiler ran).",
            c.hits,
        ),
        (
            "misses_total",
            "counter",
            "Cache lookups that found nothing usable (damaged entries included).",
            c.misses,
        ),
        (
            "stored_total",
            "counter",
            "Successful compiles stored in the cache.",
            c.stored,
        ),
        (
            "evicted_total",
            "counter",
            "Entries removed, least recently used first, to stay within --cache-size.",
            c.evicted,
        ),
        (
            "corrupt_total",
            "counter",
            "Entries found damaged on read (removed, recompiled, never served).",
            c.corrupt,
        ),
        ("bytes", "gauge", "Bytes the cache holds.", c.bytes),
        ("entries", "gauge", "Entries the cache holds.", c.entries),
    ] {
        let name = format!("swarmccd_cache_{name}");
        head(o, &name, kind, help);
        let _ = writeln!(o, "{name} {value}");
    }
}

/// A Prometheus metric's `HELP` and `TYPE` lines.
fn head(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The compile-time histogram, its buckets cumulative as Prometheus wants them.
fn render_compile_histogram(o: &mut String, s: &Snapshot) {
    head(
        o,
        "swarmccd_compile_seconds",
        "histogram",
        "Time the compiler ran, for compiles that finished (ok, error or --job-lifetime).",
    );
    let mut cumulative = 0;
    for (i, n) in s.buckets.iter().enumerate() {
        cumulative += n;
        let le = COMPILE_BUCKETS
            .get(i)
            .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
        let _ = writeln!(
            o,
            "swarmccd_compile_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(o, "swarmccd_compile_seconds_sum {}", s.compile_secs);
    let _ = writeln!(o, "swarmccd_compile_seconds_count {cumulative}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn job(result: JobResult, ms: u64) -> JobRecord<'static> {
        JobRecord {
            result,
            reject: None,
            compile_time: Some(Duration::from_millis(ms)),
            elapsed: Duration::from_millis(ms + 1),
            compiler: "gcc",
            input: "src/a.c",
            bytes_in: 100,
        }
    }

    fn machine() -> MachineInfo {
        MachineInfo {
            current_load: 2,
            load: [3.19, 4.356, 0.0],
            procs_d: 0,
            max_rss_kib: 49380,
            max_rss_name: "(rustc)".into(),
            free_mib: 79485,
        }
    }

    #[test]
    fn fresh_server_page_matches_distccd() {
        let s = Stats::new(3).snapshot();
        let page = render_distcc(&s, &machine());
        let expected = "HTTP/1.0 200 OK\nContent-Type: text/plain\nConnection: close\n\n\
            argv /distccd\n<distccstats>\ndcc_tcp_accept 0\ndcc_rej_bad_req 0\n\
            dcc_rej_overload 0\ndcc_compile_ok 0\ndcc_compile_error 0\n\
            dcc_compile_timeout 0\ndcc_cli_disconnect 0\ndcc_other 0\n\
            dcc_longest_job none\ndcc_longest_job_compiler none\n\
            dcc_longest_job_time_msecs -1\ndcc_max_kids 3\ndcc_avg_kids1 0\n\
            dcc_avg_kids2 0\ndcc_avg_kids3 0\ndcc_current_load 2\ndcc_load1 3.19\n\
            dcc_load2 4.36\ndcc_load3 0.00\ndcc_num_compiles1 0\ndcc_num_compiles2 0\n\
            dcc_num_compiles3 0\ndcc_num_procstate_D 0\ndcc_max_RSS 49380\n\
            dcc_max_RSS_name (rustc)\ndcc_io_rate -1\ndcc_free_space 79485 MB\n\
            </distccstats>\n";
        assert_eq!(page, expected);
    }

    #[test]
    fn jobs_are_counted_by_result_and_reason() {
        let st = Stats::new(4);
        st.connection();
        st.connection();
        st.connection();
        st.denied();
        st.record(&job(JobResult::CompileOk, 30));
        st.record(&job(JobResult::CompileOk, 700));
        st.record(&JobRecord {
            input: "slow.c",
            ..job(JobResult::CompileError, 2000)
        });
        st.record(&JobRecord {
            reject: Some(RejectReason::Whitelist),
            compile_time: None,
            ..job(JobResult::Other, 0)
        });
        st.sent(42);
        let s = st.snapshot();
        assert_eq!(s.connections, 3);
        assert_eq!(s.result(JobResult::CompileOk), 2);
        assert_eq!(s.result(JobResult::Other), 1);
        assert_eq!(s.rejected(RejectReason::Whitelist), 1);
        assert_eq!(s.rejected(RejectReason::AccessDenied), 1);
        assert_eq!((s.bytes_in, s.bytes_out), (400, 42));
        // 30 ms ≤ 0.05, 700 ms ≤ 1, 2 s ≤ 2.5.
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[4], 1);
        assert_eq!(s.buckets[5], 1);
        assert!((s.compile_secs - 2.73).abs() < 1e-9);
        // The longest *successful* job, by base name.
        assert_eq!(
            s.longest,
            Some(LongestJob {
                input: "a.c".into(),
                compiler: "gcc".into(),
                msecs: 701
            })
        );
        assert_eq!(s.num_compiles, [3, 3, 3]);
        let text = render_prometheus(&s);
        assert!(text.contains("swarmccd_jobs_total{result=\"compile_ok\"} 2\n"));
        assert!(text.contains("swarmccd_compile_seconds_bucket{le=\"1\"} 2\n"));
        assert!(text.contains("swarmccd_compile_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("swarmccd_compile_seconds_count 3\n"));
        assert!(text.contains("swarmccd_rejects_total{reason=\"access_denied\"} 1\n"));
    }

    #[test]
    fn gauges_follow_their_guards() {
        let st = Stats::new(1);
        let q = st.queued();
        let r = st.running();
        assert_eq!((st.snapshot().queued, st.snapshot().running), (1, 1));
        drop(q);
        drop(r);
        assert_eq!((st.snapshot().queued, st.snapshot().running), (0, 0));
    }

    #[test]
    fn the_ring_forgets_old_slots() {
        let mut r = Recent::new();
        r.add(0, 10);
        r.add(5, 20);
        r.add(5, 20);
        assert_eq!(r.window(5, 20), (3, 50));
        // 1 minute = 20 slots: slot 0 has left the window at slot 20.
        assert_eq!(r.window(20, 20), (2, 40));
        assert_eq!(r.window(20, 100), (3, 50));
        // Slot 300 reuses slot 0's place; slot 5 is still within 15 minutes.
        r.add(300, 1);
        assert_eq!(r.window(300, 300), (3, 41));
        assert_eq!(r.window(300, 20), (1, 1));
    }
}
