//! Runs one classified job: remote attempts host by host, then local fallback; writes
//! the results and reports the outcome to the scheduler.
//!
//! The decision (local or remote, and why) was made by `args`; the slots come from
//! `lease`; bytes on the wire are `remote`'s business. Each job logs exactly one
//! summary line at info level (`job x.c: remote on host[slot] ok in 0.12s`, `job x.c:
//! local (not distributable: …)`, `job x.c: fallback to local (host: why)`); the
//! details of each step are debug lines and warnings.

mod choice;
mod dialect;
mod finish;
mod verdict;

use std::path::Path;
use std::time::Instant;

use crate::agent::{JobReport, LocalKind};
use crate::args::{LocalReason, RemoteJob};
use crate::backoff;
use crate::compiler;
use crate::config::ClientConfig;
use crate::exit::ExitCode;
use crate::hosts::{HostKind, HostList, HostSpec, ReapiHost};
use crate::protocol::Version;
use crate::reapi::Served;
use crate::state::{Phase, StateFile};
use crate::toolchain::{self, LazyIdentity};
use crate::transport::Route;

use super::cache::JobCache;
use super::direct_cpp::CppPlans;
use super::lease::{Held, Scheduler};
use super::local::{self, CompilerCommand};
use super::reapi as engine_job;
use super::remote::{self, FarmCache, Preprocessor, Timeouts};
pub(in crate::client) use choice::{HostChoice, Pick};
use dialect::ExtHosts;
use finish::Answered;
use verdict::Attempted;

/// Everything a job needs from its process.
pub struct Ctx<'a> {
    pub cfg: &'a ClientConfig,
    pub cmd: &'a CompilerCommand<'a>,
    pub hosts: HostList,
    pub sched: Scheduler,
    /// make's `-l` (or `SWARMCC_LOAD_LIMIT`): no local compile starts above this load.
    pub load_limit: Option<f64>,
}

/// What every attempt of a job shares: the command the hosts run, how long to wait,
/// and what is known and said of the hosts' dialect.
struct Kit<'a> {
    remote_argv: &'a [String],
    timeouts: Timeouts,
    dialects: &'a ExtHosts,
    /// Our compiler's identity, sent to hosts that speak swarmcc's extension.
    identity: &'a LazyIdentity<'a>,
    /// The compile caches, and the job's key.
    cache: &'a JobCache,
}

/// What the attempts on the hosts came to, when none produced the result.
enum Fallback {
    NoHosts,
    AllFailed(Vec<String>),
}

impl Ctx<'_> {
    fn state(&self) -> Option<&StateFile> {
        self.sched.state()
    }

    /// A job that must run here, under a local slot (distcc's `--localslots`, or the
    /// preprocessing pool for `-E`).
    pub fn run_local(&self, reason: &LocalReason) -> i32 {
        let argv: Vec<String> = self
            .cmd
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let name = job_name(&argv);
        if let Some(st) = self.state() {
            st.set_file(&name);
        }
        log::info!("job {name}: local (not distributable: {reason})");
        let (kind, limit) = match reason {
            LocalReason::Preprocess => (
                LocalKind::Preprocess,
                self.hosts.local_slots_cpp_or_default(),
            ),
            _ => (LocalKind::Compile, self.hosts.local_slots_or_default()),
        };
        self.compile_here(
            kind,
            limit,
            JobReport::Local {
                fallback: false,
                reason: reason.to_string(),
            },
        )
    }

    fn compile_here(&self, kind: LocalKind, limit: u32, report: JobReport) -> i32 {
        let mut slot = self.sched.local(kind, limit, self.load_limit);
        let code = self.run_here_on(slot.as_ref());
        report_to(&mut slot, report);
        code
    }

    /// The local compile itself, on local slot `slot`, shown to monitors as
    /// `localhost[slot]` while it runs.
    fn run_here_on(&self, slot: Option<&Held>) -> i32 {
        if let Some(st) = self.state() {
            st.phase_on(Phase::Compile, "localhost", slot.map_or(0, |s| s.slot));
        }
        let code = report_local(local::run(self.cmd));
        if let Some(st) = self.state() {
            st.phase(Phase::Done);
        }
        code
    }

    /// Compiles a distributable job on the hosts, falling back to a local compile:
    /// choose a host, attempt it, decide on what the attempt came to; then report.
    pub fn distribute(&self, job: &RemoteJob) -> i32 {
        let started = Instant::now();
        if let Some(st) = self.state() {
            st.set_file(&job.input);
        }
        let timeouts = self.timeouts();
        let remote_argv = self.remote_argv(job);
        let plans = CppPlans::open(&self.cfg.distcc_dir);
        let mut cpp = self.preprocessor(job, plans.as_ref());
        let dialects = ExtHosts::new(&self.cfg.distcc_dir);
        let compilers = self.cfg.distcc_dir.join("compilers");
        let identity = toolchain::LazyIdentity::new(&compilers, self.cmd.program);
        let cache = JobCache::new(self.cfg);
        let kit = Kit {
            remote_argv: &remote_argv,
            timeouts,
            dialects: &dialects,
            identity: &identity,
            cache: &cache,
        };
        if let Some(code) = self.answer_from_local_cache(job, &mut cpp, &kit) {
            return code;
        }
        let lock_dir = self.cfg.lock_dir();
        let mut choice = HostChoice::new(&self.hosts);
        // The hosts that failed this job and why, for the user's notice at the end.
        let mut failed: Vec<(&HostSpec, String)> = Vec::new();
        while let Some(pick) = choice.next(&self.sched, &lock_dir, self.cfg.backoff_period) {
            let Pick {
                index,
                host,
                mut slot,
            } = pick;
            let slot_no = slot.as_ref().map_or(0, |l| l.slot);
            let Some(attempted) = self.attempt(job, host, slot_no, &mut cpp, &kit) else {
                drop(cpp);
                return self.run_on_localhost(job, slot);
            };
            match attempted {
                Attempted::Answered(reply, farm) => {
                    self.tell_failed_hosts(job, &failed, Some(host));
                    let done = Answered {
                        job,
                        host,
                        slot,
                        started,
                        farm,
                        kit: &kit,
                    };
                    return self.finish_remote(done, reply, &mut cpp);
                }
                // Asked again in plain distcc, the same host included.
                Attempted::NotExtended => choice.try_again(index),
                Attempted::PreprocessFailed => {
                    drop(slot);
                    drop(cpp);
                    return self.compile_after_preprocess_failed();
                }
                Attempted::Failed { reason, back_off } => {
                    let report = JobReport::HostFailed {
                        reason: reason.clone(),
                    };
                    report_to(&mut slot, report);
                    failed.push((host, reason));
                    if back_off {
                        backoff::mark(&lock_dir, &host.lock_name(), self.cfg.backoff_period);
                    }
                }
            }
        }
        drop(cpp);
        self.no_host_compiled(job, &failed)
    }

    /// One attempt of `job` on `host`: a REAPI engine or a distcc host. `None` for
    /// `localhost`, which is compiled here rather than attempted.
    fn attempt(
        &self,
        job: &RemoteJob,
        host: &HostSpec,
        slot_no: u32,
        cpp: &mut Preprocessor<'_>,
        kit: &Kit<'_>,
    ) -> Option<Attempted> {
        if let HostKind::Reapi(engine) = &host.kind {
            return Some(self.attempt_engine(job, host, engine, slot_no, cpp, kit));
        }
        let route = remote::route_of(host)?;
        Some(self.attempt_on(job, host, route, slot_no, cpp, kit))
    }

    /// The local preprocessor failed: the local compile reports the error.
    fn compile_after_preprocess_failed(&self) -> i32 {
        self.compile_here(
            LocalKind::Compile,
            self.hosts.local_slots_or_default(),
            JobReport::Local {
                fallback: false,
                reason: "preprocessing failed".into(),
            },
        )
    }

    /// No host produced the result (none was available, or each failed): tell the user
    /// why, and fall back.
    fn no_host_compiled(&self, job: &RemoteJob, failed: &[(&HostSpec, String)]) -> i32 {
        self.tell_failed_hosts(job, failed, None);
        let why = if failed.is_empty() {
            Fallback::NoHosts
        } else {
            let failures = failed
                .iter()
                .map(|(h, r)| format!("{}: {r}", host_label(h)));
            Fallback::AllFailed(failures.collect())
        };
        self.fall_back(job, why)
    }

    /// The timeouts of each attempt, from the configuration.
    fn timeouts(&self) -> Timeouts {
        let cfg = self.cfg;
        Timeouts {
            connect: cfg.connect_timeout,
            io: cfg.io_timeout,
            compile: cfg.compile_timeout,
            stall: cfg.stall_timeout,
        }
    }

    /// The command line the hosts run: the job's, with the compiler named so that a
    /// host of another architecture runs a cross compiler for ours.
    fn remote_argv(&self, job: &RemoteJob) -> Vec<String> {
        compiler::rewrite_for_remote(
            &job.remote_argv(),
            &compiler::native_triple(),
            !self.cfg.no_rewrite_cross,
            &|name| compiler::exists_on_path(name, self.cmd.path),
            &|name| compiler::resolve_generic(name, self.cmd.path),
        )
    }

    /// The job's preprocessor, run once however many hosts are tried.
    fn preprocessor<'p>(
        &'p self,
        job: &'p RemoteJob,
        plans: Option<&'p CppPlans>,
    ) -> Preprocessor<'p> {
        Preprocessor::new(
            job,
            self.cmd,
            &self.cfg.scratch_dir,
            self.cfg.save_temps,
            &self.sched,
            self.hosts.local_slots_cpp_or_default(),
        )
        .with_plans(plans)
    }

    /// `localhost` in the host list: the job runs here, on the slot it was given.
    fn run_on_localhost(&self, job: &RemoteJob, mut slot: Option<Held>) -> i32 {
        log::info!("job {}: local (localhost in the host list)", job.input);
        let code = self.run_here_on(slot.as_ref());
        report_to(
            &mut slot,
            JobReport::Local {
                fallback: false,
                reason: "localhost in the host list".into(),
            },
        );
        code
    }

    /// One attempt on one host: what is said to it, the conversation, and what it
    /// came to. Remembers whether the host speaks swarmcc's extension.
    fn attempt_on(
        &self,
        job: &RemoteJob,
        host: &HostSpec,
        route: Route<'_>,
        slot: u32,
        cpp: &mut Preprocessor<'_>,
        kit: &Kit<'_>,
    ) -> Attempted {
        let cfg = self.cfg;
        let version = if host.protocol() == 1 {
            Version::V1
        } else {
            Version::V2
        };
        if host.cpp {
            log::debug!(
                "{}: pump mode (,cpp) is not supported; using protocol 2",
                host.spec
            );
        }
        if let Some(st) = self.state() {
            st.phase_on(Phase::Connect, route.host(), slot);
        }
        let speaks_ext = kit.dialects.try_ext(&host.lock_name());
        // The farm cache only with a host that offered it, outside authenticated
        // sessions (whose MACs cover one request and one reply).
        let ask_cache = kit.cache.farm()
            && speaks_ext
            && !host.wants_auth()
            && kit.dialects.offers_cache(&host.lock_name());
        let cache_key = if ask_cache {
            kit.cache.key(kit.identity, kit.remote_argv, cpp)
        } else {
            None
        };
        let target = remote::Target {
            cache_key,
            route,
            dialer: &cfg.dialer,
            version,
            slot,
            state: self.state(),
            auth_key: host.wants_auth().then_some(cfg.auth_key_file.as_path()),
            ext: speaks_ext.then_some(kit.identity),
        };
        log::debug!(
            "compiling {} on {} (protocol {})",
            job.input,
            host.spec,
            version.number()
        );
        log::debug!("remote command: {}", shell_words::join(kit.remote_argv));
        let outcome = remote::attempt(&target, kit.remote_argv, cpp, kit.timeouts);
        if let Some(answer) = outcome.as_ref().ok().filter(|a| a.offers_ext) {
            kit.dialects
                .remember(&host.lock_name(), answer.offers_cache);
        } else if outcome.is_err() && cache_key.is_some() {
            // Perhaps no longer a swarmccd with a cache (one that does not answer a
            // preamble alone would stall every job): not asked again until it offers.
            kit.dialects.remember(&host.lock_name(), false);
        }
        let checked = outcome.as_ref().is_ok_and(|a| a.compiler_checked);
        let attempted = verdict::judge(outcome.map(|a| (a.reply, a.farm)), host, job);
        if matches!(attempted, Attempted::Answered(..)) && !checked {
            // Another compiler may have made it: not kept under our compiler's key.
            kit.cache.forget_key();
        }
        if matches!(attempted, Attempted::NotExtended) {
            // Not (or no longer) a swarmccd: speak plain distcc to it from now on.
            kit.dialects.forget(&host.lock_name());
        }
        attempted
    }

    /// One attempt on a REAPI engine, judged as an attempt on a distcc host is.
    fn attempt_engine(
        &self,
        job: &RemoteJob,
        host: &HostSpec,
        engine: &ReapiHost,
        slot: u32,
        cpp: &mut Preprocessor<'_>,
        kit: &Kit<'_>,
    ) -> Attempted {
        let label = host_label(host);
        let place = engine_job::Place {
            state: self.state(),
            label: &label,
            slot,
        };
        log::debug!("compiling {} on REAPI engine {}", job.input, host.spec);
        let request = engine_job::Request {
            job,
            remote_argv: kit.remote_argv,
            path: self.cmd.path,
            identity: kit.identity,
        };
        let outcome = engine_job::attempt(engine, self.cfg, &request, cpp, &place);
        let outcome = match outcome {
            Ok((reply, served)) => {
                // An engine checks no compiler identity (its workers are trusted to
                // have ours), so what it answers is not kept in the local cache.
                kit.cache.forget_key();
                let farm = if served == Served::ActionCache {
                    FarmCache::ActionCache
                } else {
                    FarmCache::NotAsked
                };
                Ok((reply, farm))
            }
            Err(engine_job::Failure::Miss(reason)) => {
                log::info!("job {}: {label}: {reason}", job.input);
                let back_off = false;
                return Attempted::Failed { reason, back_off };
            }
            Err(engine_job::Failure::Preprocess(e)) => Err(remote::AttemptError::Preprocess(e)),
            Err(engine_job::Failure::Engine(e)) => Err(remote::AttemptError::Engine(e)),
        };
        verdict::judge(outcome, host, job)
    }

    /// Tells the user, on stderr (or `DISTCC_LOG`), why hosts did not compile this job:
    /// once per host and backoff period across all processes, so that a dead farm is
    /// reported without a line per job. The wording keeps distcc's "failed to
    /// distribute … running locally instead", which log watchers look for.
    fn tell_failed_hosts(
        &self,
        job: &RemoteJob,
        failed: &[(&HostSpec, String)],
        done_on: Option<&HostSpec>,
    ) {
        let cfg = self.cfg;
        let instead = match done_on {
            Some(h) => format!("compiled on {} instead", host_label(h)),
            None => "running locally instead".to_string(),
        };
        for (host, reason) in failed {
            if !backoff::first_notice(&cfg.lock_dir(), &host.lock_name(), cfg.backoff_period) {
                continue;
            }
            let retry = if cfg.backoff_period.is_zero() {
                String::new()
            } else {
                format!(
                    "; the host is skipped for {}s (said once per host and period)",
                    cfg.backoff_period.as_secs()
                )
            };
            log::warn!(
                target: crate::logging::NOTICE,
                "failed to distribute {} to {}, {instead}: {reason}{retry}",
                job.input,
                host_label(host)
            );
        }
    }

    fn fall_back(&self, job: &RemoteJob, why: Fallback) -> i32 {
        let reason = match &why {
            Fallback::NoHosts => "no host available".to_string(),
            Fallback::AllFailed(f) => f.join("; "),
        };
        if !self.cfg.fallback {
            log::info!(
                "job {}: failed ({reason}; fallbacks are disabled)",
                job.input
            );
            eprintln!(
                "swarmcc: failed to distribute {} ({reason}) and fallbacks are disabled (DISTCC_FALLBACK=0)",
                job.input
            );
            return ExitCode::NoHosts.code();
        }
        match &why {
            Fallback::NoHosts => log::info!("job {}: local ({reason})", job.input),
            Fallback::AllFailed(_) => {
                log::info!("job {}: fallback to local ({reason})", job.input);
            }
        }
        // Fallbacks are what turns a dead farm and `make -j64` into 64 local compiles:
        // they queue for the local slots and the load limit like any local job.
        self.compile_here(
            LocalKind::Compile,
            self.hosts.local_slots_or_default(),
            JobReport::Local {
                fallback: !matches!(why, Fallback::NoHosts),
                reason,
            },
        )
    }
}

/// A host as the job log names it: `host:port`, `user@host` (ssh), or `localhost`.
fn host_label(h: &HostSpec) -> String {
    match &h.kind {
        HostKind::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
        HostKind::Tcp { host, port } => format!("{host}:{port}"),
        HostKind::Localhost => "localhost".into(),
        HostKind::Ssh { user, host, .. } => format!("{}@{host}", user.as_deref().unwrap_or("")),
        HostKind::Reapi(r) => r.address(),
    }
}

/// What a job is called in the log and the monitor when it is not a single-source
/// compile: its source file if it names one, else its output, else the compiler.
fn job_name(argv: &[String]) -> String {
    const SOURCE: &[&str] = &[
        "c", "cc", "cp", "cxx", "cpp", "c++", "C", "m", "mm", "M", "i", "ii", "mi", "mii", "s",
        "S", "sx", "h", "hh", "hpp",
    ];
    let mut prev_o = false;
    let mut output = None;
    for a in argv.iter().skip(1) {
        if prev_o {
            output = Some(a.as_str());
            prev_o = false;
            continue;
        }
        if a == "-o" {
            prev_o = true;
            continue;
        }
        if a.starts_with('-') {
            continue;
        }
        let ext = Path::new(a).extension().and_then(|e| e.to_str());
        if ext.is_some_and(|e| SOURCE.contains(&e)) {
            return a.clone();
        }
    }
    output
        .or_else(|| argv.first().map(String::as_str))
        .unwrap_or("?")
        .to_string()
}

fn report_to(slot: &mut Option<Held>, report: JobReport) {
    if let Some(s) = slot {
        s.report(&report);
    }
}

/// The exit code of a local compile, or swarmcc's own when the compiler cannot run.
pub fn report_local(result: Result<i32, String>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("swarmcc: {e}");
            ExitCode::CompilerMissing.code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_jobs_are_named_by_source_then_output() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(job_name(&v("gcc -E -I inc src/a.c -o a.i")), "src/a.c");
        assert_eq!(job_name(&v("gcc a.o b.o -o prog -lm")), "prog");
        assert_eq!(job_name(&v("gcc --version")), "gcc");
        assert_eq!(job_name(&[]), "?");
    }
}
