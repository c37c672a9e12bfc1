//! Runs one classified job: remote attempts host by host, then local fallback; writes
//! the results and reports the outcome to the scheduler.
//!
//! The decision (local or remote, and why) was made by `args`; the slots come from
//! `lease`; bytes on the wire are `remote`'s business. Each job logs exactly one
//! summary line at info level (`job x.c: remote on host[slot] ok in 0.12s`, `job x.c:
//! local (not distributable: …)`, `job x.c: fallback to local (host: why)`); the
//! details of each step are debug lines and warnings.

use std::io::Write;
use std::path::Path;
use std::time::{Instant, SystemTime};

use crate::agent::{HostOffer, JobReport, LocalKind};
use crate::args::{LocalReason, RemoteJob};
use crate::backoff;
use crate::compiler;
use crate::config::ClientConfig;
use crate::exit::ExitCode;
use crate::hosts::{HostKind, HostList, HostSpec};
use crate::protocol::{Reply, Version};
use crate::state::{Phase, StateFile};
use crate::toolchain;

use super::direct_cpp::CppPlans;
use super::lease::{Held, Scheduler};
use super::local::{self, CompilerCommand};
use super::output;
use super::remote::{self, AttemptError, Preprocessor, Timeouts};

/// Everything a job needs from its process.
pub struct Ctx<'a> {
    pub cfg: &'a ClientConfig,
    pub cmd: &'a CompilerCommand<'a>,
    pub hosts: HostList,
    pub sched: Scheduler,
    /// make's `-l` (or `SWARMCC_LOAD_LIMIT`): no local compile starts above this load.
    pub load_limit: Option<f64>,
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
        if let Some(st) = self.state() {
            st.phase_on(
                Phase::Compile,
                "localhost",
                slot.as_ref().map_or(0, |s| s.slot),
            );
        }
        let code = report_local(local::run(self.cmd));
        if let Some(st) = self.state() {
            st.phase(Phase::Done);
        }
        if let Some(s) = &mut slot {
            s.report(&report);
        }
        code
    }

    /// Compiles a distributable job on the hosts, falling back to a local compile.
    pub fn distribute(&self, job: &RemoteJob) -> i32 {
        let cfg = self.cfg;
        let hosts = &self.hosts;
        let started = Instant::now();
        let lock_dir = cfg.lock_dir();
        if let Some(st) = self.state() {
            st.set_file(&job.input);
        }
        let timeouts = Timeouts {
            connect: cfg.connect_timeout,
            io: cfg.io_timeout,
            compile: cfg.compile_timeout,
            stall: cfg.stall_timeout,
        };
        let remote_argv = compiler::rewrite_for_remote(
            &job.remote_argv(),
            &compiler::native_triple(),
            !cfg.no_rewrite_cross,
            &|name| compiler::exists_on_path(name, self.cmd.path),
            &|name| compiler::resolve_generic(name, self.cmd.path),
        );
        let plans = CppPlans::open(&cfg.distcc_dir);
        let mut cpp = Preprocessor::new(
            job,
            self.cmd,
            &cfg.scratch_dir,
            cfg.save_temps,
            &self.sched,
            hosts.local_slots_cpp_or_default(),
        )
        .with_plans(plans.as_ref());
        // Each host is tried at most once per job: a failing host never loops (distcc
        // 3.4 retried forever with DISTCC_BACKOFF_PERIOD=0).
        let mut tried = vec![false; hosts.hosts.len()];
        let mut failures: Vec<String> = Vec::new();
        // The hosts that failed this job and why, for the user's notice at the end.
        let mut failed_hosts: Vec<(&HostSpec, String)> = Vec::new();
        let ext_hosts = ExtHosts::new(&cfg.distcc_dir);
        let compilers = cfg.distcc_dir.join("compilers");
        let identity = toolchain::LazyIdentity::new(&compilers, self.cmd.program);

        loop {
            let now = SystemTime::now();
            let candidates: Vec<usize> = host_order(hosts)
                .into_iter()
                .filter(|&i| !tried[i] && usable(&hosts.hosts[i]))
                .filter(|&i| {
                    let h = &hosts.hosts[i];
                    let off =
                        backoff::is_backed_off(&lock_dir, &h.lock_name(), cfg.backoff_period, now);
                    if off {
                        log::debug!(
                            "{} is backed off after a recent failure; skipping it",
                            h.spec
                        );
                    }
                    !off
                })
                .collect();
            if candidates.is_empty() {
                break;
            }
            let offers: Vec<HostOffer> = candidates
                .iter()
                .map(|&i| HostOffer {
                    lock_name: hosts.hosts[i].lock_name(),
                    limit: hosts.hosts[i].limit,
                })
                .collect();
            let mut slot = self.sched.remote(&offers, hosts.randomize);
            let idx = candidates[slot.as_ref().map(|l| l.host).unwrap_or(0)];
            tried[idx] = true;
            let host = &hosts.hosts[idx];
            let slot_no = slot.as_ref().map_or(0, |l| l.slot);

            let route = match remote::route_of(host) {
                None => {
                    log::info!("job {}: local (localhost in the host list)", job.input);
                    drop(cpp);
                    if let Some(st) = self.state() {
                        st.phase_on(Phase::Compile, "localhost", slot_no);
                    }
                    let code = report_local(local::run(self.cmd));
                    if let Some(st) = self.state() {
                        st.phase(Phase::Done);
                    }
                    if let Some(s) = &mut slot {
                        s.report(&JobReport::Local {
                            fallback: false,
                            reason: "localhost in the host list".into(),
                        });
                    }
                    return code;
                }
                Some(route) => route,
            };
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
                st.phase_on(Phase::Connect, route.host(), slot_no);
            }
            let speaks_ext = ext_hosts.try_ext(&host.lock_name());
            let target = remote::Target {
                route,
                dialer: &cfg.dialer,
                version,
                slot: slot_no,
                state: self.state(),
                auth_key: host.wants_auth().then_some(cfg.auth_key_file.as_path()),
                ext: speaks_ext.then_some(&identity),
            };
            log::debug!(
                "compiling {} on {} (protocol {})",
                job.input,
                host.spec,
                version.number()
            );
            log::debug!("remote command: {}", shell_words::join(&remote_argv));
            let outcome = remote::attempt(&target, &remote_argv, &mut cpp, timeouts);
            if let Ok(answer) = &outcome {
                if answer.offers_ext {
                    ext_hosts.remember(&host.lock_name());
                }
            }
            // Whatever kept this host from producing the result, and whether the host
            // is at fault (then it is backed off).
            let (reason, back_off) = match outcome.map(|a| a.reply) {
                Ok(reply) if is_refusal(&reply) => {
                    // A policy answer, not a failure of the host: no backoff, try the
                    // next host (whose whitelist may differ), then compile here.
                    let reason = String::from_utf8_lossy(&reply.stderr).trim().to_string();
                    log::warn!("{} refused {}: {reason}", host.spec, job.input);
                    (reason, false)
                }
                Ok(reply) if is_server_fault(&reply) => {
                    // The server cannot do the job: try elsewhere, and back it off so
                    // that other jobs do not upload their sources to it first.
                    let reason = String::from_utf8_lossy(&reply.stderr).trim().to_string();
                    log::warn!("{} failed {}: {reason}", host.spec, job.input);
                    (reason, true)
                }
                Ok(reply) => {
                    self.tell_failed_hosts(job, &failed_hosts, Some(host));
                    return self.finish_remote(job, host, reply, &mut cpp, slot, started);
                }
                Err(AttemptError::NoExtension(e)) => {
                    // Not (or no longer) a swarmccd: forget it, and ask again in plain
                    // distcc, the same host included.
                    log::info!(
                        "{}: closed on swarmcc's extension ({e}): not a swarmccd; using plain distcc",
                        host.spec
                    );
                    ext_hosts.forget(&host.lock_name());
                    tried[idx] = false;
                    continue;
                }
                Err(AttemptError::Preprocess(e)) => {
                    // The source is at fault, not the host: the local compile reports it.
                    log::debug!("{e}");
                    log::info!(
                        "job {}: local (preprocessing failed; the local compile reports the error)",
                        job.input
                    );
                    drop(slot);
                    drop(cpp);
                    return self.compile_here(
                        LocalKind::Compile,
                        hosts.local_slots_or_default(),
                        JobReport::Local {
                            fallback: false,
                            reason: "preprocessing failed".into(),
                        },
                    );
                }
                Err(e) => {
                    log::warn!("failed to distribute {} to {}: {e}", job.input, host.spec);
                    (e.to_string(), true)
                }
            };
            report_to(
                &mut slot,
                JobReport::HostFailed {
                    reason: reason.clone(),
                },
            );
            failures.push(format!("{}: {reason}", host_label(host)));
            failed_hosts.push((host, reason));
            if back_off {
                backoff::mark(&lock_dir, &host.lock_name(), cfg.backoff_period);
            }
        }

        drop(cpp);
        self.tell_failed_hosts(job, &failed_hosts, None);
        let why = if failures.is_empty() {
            Fallback::NoHosts
        } else {
            Fallback::AllFailed(failures)
        };
        self.fall_back(job, why)
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

    fn finish_remote(
        &self,
        job: &RemoteJob,
        host: &HostSpec,
        reply: Reply,
        cpp: &mut Preprocessor<'_>,
        mut slot: Option<Held>,
        started: Instant,
    ) -> i32 {
        let cfg = self.cfg;
        let lock_dir = cfg.lock_dir();
        let code = local::exit_code_from_wait(reply.status);
        let where_ = format!(
            "{}[{}]",
            host_label(host),
            slot.as_ref().map_or(0, |l| l.slot)
        );
        if reply.status != 0 {
            if cfg.skip_local_retry && code < 128 {
                if let Some(st) = self.state() {
                    st.phase(Phase::Done);
                }
                log::info!(
                    "job {}: remote on {where_} failed with exit {code} (not retried locally: DISTCC_SKIP_LOCAL_RETRY)",
                    job.input
                );
                let pre_err = cpp
                    .wait()
                    .map(|p| std::mem::take(&mut p.stderr))
                    .unwrap_or_default();
                emit(&reply.stdout, &pre_err, &reply.stderr);
                report_to(
                    &mut slot,
                    JobReport::Remote {
                        elapsed: started.elapsed(),
                    },
                );
                return code;
            }
            log::info!(
                "job {}: fallback to local ({}: compile error, exit {code}; retried locally)",
                job.input,
                host_label(host)
            );
            // The remote slot is kept until the local retry says who was at fault
            // (as distcc keeps the host "disliked" meanwhile): the agent must hear of a
            // broken host, and only the lease can tell it.
            let local_code = self.compile_here(
                LocalKind::Compile,
                self.hosts.local_slots_or_default(),
                JobReport::Local {
                    fallback: true,
                    reason: format!(
                        "{}: remote compile error (exit {code}) retried locally",
                        host_label(host)
                    ),
                },
            );
            if local_code == 0 {
                // The same source compiles here: the host (or its compiler) is at fault.
                report_to(
                    &mut slot,
                    JobReport::HostFailed {
                        reason: format!("compile failed there (exit {code}) but succeeded locally"),
                    },
                );
                backoff::mark(&lock_dir, &host.lock_name(), cfg.backoff_period);
                log::warn!(
                    "{} failed on {} but compiled locally; backing off that host",
                    job.input,
                    host.spec
                );
            }
            return local_code;
        }

        // Success: write the dependency file and the object, then show diagnostics once.
        if let Some(st) = self.state() {
            st.phase(Phase::Done);
        }
        let pre = match cpp.wait() {
            Ok(p) => p,
            Err(e) => {
                log::error!("lost the preprocessor result for {}: {e}", job.input);
                drop(slot);
                return self.fall_back(job, Fallback::AllFailed(vec![e]));
            }
        };
        if let (Some(tmp), Some(dep_file)) = (pre.deps.take(), &job.dep_file) {
            let tmp_path = tmp.to_path_buf();
            if let Err(e) = output::install(&tmp_path, Path::new(dep_file)) {
                eprintln!("swarmcc: cannot write dependency file {dep_file}: {e}");
                return ExitCode::IoError.code();
            }
            // Installed: the temp path no longer exists, so forget it without deleting.
            let _ = tmp.keep();
        }
        if let Err(e) = output::write_atomic(Path::new(&job.output), &reply.object) {
            eprintln!("swarmcc: cannot write {}: {e}", job.output);
            return ExitCode::IoError.code();
        }
        backoff::clear(&lock_dir, &host.lock_name());
        let pre_err = std::mem::take(&mut pre.stderr);
        emit(&reply.stdout, &pre_err, &reply.stderr);
        report_to(
            &mut slot,
            JobReport::Remote {
                elapsed: started.elapsed(),
            },
        );
        log::info!(
            "job {}: remote on {where_} ok in {:.2}s",
            job.input,
            started.elapsed().as_secs_f64()
        );
        log::debug!("{} bytes of object from {}", reply.object.len(), host.spec);
        code
    }
}

/// A host as the job log names it: `host:port`, `user@host` (ssh), or `localhost`.
fn host_label(h: &HostSpec) -> String {
    match &h.kind {
        HostKind::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
        HostKind::Tcp { host, port } => format!("{host}:{port}"),
        HostKind::Localhost => "localhost".into(),
        HostKind::Ssh { user, host, .. } => format!("{}@{host}", user.as_deref().unwrap_or("")),
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

/// What we know of each host's dialect, in `$DISTCC_DIR/ext/` (hosts that offered
/// swarmcc's extension) and `$DISTCC_DIR/plain/` (hosts that closed on it). A host in
/// neither is asked in the extension: a plain distccd closes at once on its version
/// number, and is then left alone for [`PLAIN_MEMORY`]. A swarmccd's very first job is
/// thus already checked for a matching compiler.
struct ExtHosts {
    ext: std::path::PathBuf,
    plain: std::path::PathBuf,
}

/// How long a host that closed on the extension is spoken to in plain distcc only
/// (a swarmccd that replaces it is noticed sooner: it advertises after a plain reply).
const PLAIN_MEMORY: std::time::Duration = std::time::Duration::from_secs(3600);

impl ExtHosts {
    fn new(distcc_dir: &Path) -> Self {
        ExtHosts {
            ext: distcc_dir.join("ext"),
            plain: distcc_dir.join("plain"),
        }
    }

    /// Whether to speak the extension to this host.
    fn try_ext(&self, lock_name: &str) -> bool {
        if self.ext.join(lock_name).exists() {
            return true;
        }
        let plain_since = std::fs::metadata(self.plain.join(lock_name))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        !matches!(plain_since, Some(age) if age < PLAIN_MEMORY)
    }

    fn remember(&self, lock_name: &str) {
        let _ = std::fs::remove_file(self.plain.join(lock_name));
        if !self.ext.join(lock_name).exists() {
            let _ = std::fs::create_dir_all(&self.ext);
            let _ = std::fs::write(self.ext.join(lock_name), b"");
        }
    }

    fn forget(&self, lock_name: &str) {
        let _ = std::fs::remove_file(self.ext.join(lock_name));
        let _ = std::fs::create_dir_all(&self.plain);
        let _ = std::fs::write(self.plain.join(lock_name), b"");
    }
}

/// swarmccd answers a policy refusal with exit 110 and a reason starting `swarmccd: `,
/// rather than closing the connection, so it can be told apart from a compile error.
fn is_refusal(reply: &Reply) -> bool {
    reply.status != 0
        && local::exit_code_from_wait(reply.status) == ExitCode::CompilerMissing.code()
        && reply.stderr.starts_with(b"swarmccd: ")
}

/// swarmccd answers what makes it unable to do a job (full disk, no job directory, a
/// compiler that is not ours…) with exit 107 and a reason starting `swarmccd: `: the
/// host is no use for now, unlike after a policy refusal.
fn is_server_fault(reply: &Reply) -> bool {
    reply.status != 0
        && local::exit_code_from_wait(reply.status) == ExitCode::IoError.code()
        && reply.stderr.starts_with(b"swarmccd: ")
}

fn emit(stdout: &[u8], cpp_stderr: &[u8], stderr: &[u8]) {
    if !stdout.is_empty() {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(stdout);
        let _ = o.flush();
    }
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(cpp_stderr);
    let _ = e.write_all(stderr);
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

    #[test]
    fn local_jobs_are_named_by_source_then_output() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(job_name(&v("gcc -E -I inc src/a.c -o a.i")), "src/a.c");
        assert_eq!(job_name(&v("gcc a.o b.o -o prog -lm")), "prog");
        assert_eq!(job_name(&v("gcc --version")), "gcc");
        assert_eq!(job_name(&[]), "?");
    }

    #[test]
    fn refusal_is_told_apart_from_a_compile_error() {
        let refusal = Reply {
            status: 110 << 8,
            stderr: b"swarmccd: compiler \"tcc\" is not in the whitelist\n".to_vec(),
            ..Reply::default()
        };
        assert!(is_refusal(&refusal));
        let compile_error = Reply {
            status: 1 << 8,
            stderr: b"x.c:1:1: error: expected\n".to_vec(),
            ..Reply::default()
        };
        assert!(!is_refusal(&compile_error));
        assert!(!is_server_fault(&compile_error) && !is_server_fault(&refusal));
        let full_disk = Reply {
            status: 107 << 8,
            stderr: b"swarmccd: cannot write /tmp/swarmccd_x/a.i: No space left\n".to_vec(),
            ..Reply::default()
        };
        assert!(is_server_fault(&full_disk) && !is_refusal(&full_disk));
    }
}
