//! The end of a job a host answered: on success the dependency file and the object are
//! written and the diagnostics shown once; on a compile error there the job is retried
//! here (unless `DISTCC_SKIP_LOCAL_RETRY`), and a host whose error the local compile
//! does not repeat is backed off.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use tempfile::TempPath;

use crate::agent::{CacheOutcome, JobReport, LocalKind};
use crate::args::RemoteJob;
use crate::backoff;
use crate::client::lease::Held;
use crate::client::local;
use crate::client::output;
use crate::client::remote::{FarmCache, Preprocessor};
use crate::exit::ExitCode;
use crate::hosts::HostSpec;
use crate::protocol::Reply;
use crate::state::Phase;

use super::{host_label, report_to, Ctx, Fallback, Kit};

/// A job a host answered, and what the answer is reported against.
pub(super) struct Answered<'j> {
    pub job: &'j RemoteJob,
    pub host: &'j HostSpec,
    /// The slot held on the host, which hears how the job went.
    pub slot: Option<Held>,
    pub started: Instant,
    /// Whether the host's farm cache (or a REAPI engine's action cache) answered.
    pub farm: FarmCache,
    /// What every attempt shares: the caches (where a success is kept for the next
    /// build), the command and the compiler's identity the key is made of.
    pub kit: &'j Kit<'j>,
}

impl Answered<'_> {
    /// `host[slot]`, as the job's summary line names where it ran.
    fn place(&self) -> String {
        format!(
            "{}[{}]",
            host_label(self.host),
            self.slot.as_ref().map_or(0, |l| l.slot)
        )
    }

    fn report_remote(&mut self) {
        let elapsed = self.started.elapsed();
        let report = if self.farm == FarmCache::ActionCache {
            JobReport::ActionCacheHit
        } else {
            JobReport::Remote { elapsed }
        };
        report_to(&mut self.slot, report);
    }
}

impl Ctx<'_> {
    /// Finishes a job with the reply `done.host` sent: the result, or a local retry.
    pub(super) fn finish_remote(
        &self,
        mut done: Answered<'_>,
        reply: Reply,
        cpp: &mut Preprocessor<'_>,
    ) -> i32 {
        if reply.status == 0 {
            return self.accept_remote(done, reply, cpp);
        }
        let code = local::exit_code_from_wait(reply.status);
        if self.cfg.skip_local_retry && code < 128 {
            return self.report_remote_error(&mut done, &reply, cpp, code);
        }
        self.retry_locally(done, code)
    }

    /// The compile failed on the host and is not retried here: its diagnostics and
    /// exit code are the job's.
    fn report_remote_error(
        &self,
        done: &mut Answered<'_>,
        reply: &Reply,
        cpp: &mut Preprocessor<'_>,
        code: i32,
    ) -> i32 {
        if let Some(st) = self.state() {
            st.phase(Phase::Done);
        }
        log::info!(
            "job {}: remote on {} failed with exit {code} (not retried locally: DISTCC_SKIP_LOCAL_RETRY)",
            done.job.input,
            done.place()
        );
        let pre_err = cpp
            .wait()
            .map(|p| std::mem::take(&mut p.stderr))
            .unwrap_or_default();
        emit(&reply.stdout, &pre_err, &reply.stderr);
        done.report_remote();
        code
    }

    /// The compile failed on the host: compile here, and if that succeeds, the host
    /// (or its compiler) is at fault and is backed off.
    fn retry_locally(&self, mut done: Answered<'_>, code: i32) -> i32 {
        let cfg = self.cfg;
        let host = done.host;
        log::info!(
            "job {}: fallback to local ({}: compile error, exit {code}; retried locally)",
            done.job.input,
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
                &mut done.slot,
                JobReport::HostFailed {
                    reason: format!("compile failed there (exit {code}) but succeeded locally"),
                },
            );
            backoff::mark(&cfg.lock_dir(), &host.lock_name(), cfg.backoff_period);
            log::warn!(
                "{} failed on {} but compiled locally; backing off that host",
                done.job.input,
                host.spec
            );
        }
        local_code
    }

    /// Success: write the dependency file and the object, then show diagnostics once.
    fn accept_remote(
        &self,
        mut done: Answered<'_>,
        reply: Reply,
        cpp: &mut Preprocessor<'_>,
    ) -> i32 {
        let job = done.job;
        if let Some(st) = self.state() {
            st.phase(Phase::Done);
        }
        let pre = match cpp.wait() {
            Ok(p) => p,
            Err(e) => {
                log::error!("lost the preprocessor result for {}: {e}", job.input);
                drop(done);
                return self.fall_back(job, Fallback::AllFailed(vec![e]));
            }
        };
        if let Err(code) = write_outputs(job, pre.deps.take(), &reply) {
            return code;
        }
        backoff::clear(&self.cfg.lock_dir(), &done.host.lock_name());
        let pre_err = std::mem::take(&mut pre.stderr);
        emit(&reply.stdout, &pre_err, &reply.stderr);
        let kit = done.kit;
        let looked_up = kit.cache.looked_up(done.farm == FarmCache::Miss);
        kit.cache
            .store_local(&reply, kit.identity, kit.remote_argv, cpp);
        done.report_remote();
        if done.farm == FarmCache::Hit {
            self.sched.report_cache(CacheOutcome::FarmHit);
        } else if looked_up {
            self.sched.report_cache(CacheOutcome::Miss);
        }
        let how = if done.farm == FarmCache::Hit {
            "farm cache hit on"
        } else {
            "remote on"
        };
        log::info!(
            "job {}: {how} {} ok in {:.2}s",
            job.input,
            done.place(),
            done.started.elapsed().as_secs_f64()
        );
        log::debug!(
            "{} bytes of object from {}",
            reply.object.len(),
            done.host.spec
        );
        local::exit_code_from_wait(reply.status)
    }
}

impl Ctx<'_> {
    /// Answers the job from the local cache, if it holds the job's key: the object
    /// and the dependency file written, the diagnostics shown, as a compile would, with
    /// no host asked. `None`: not cached here (or no local cache, or no key).
    pub(super) fn answer_from_local_cache(
        &self,
        job: &RemoteJob,
        cpp: &mut Preprocessor<'_>,
        kit: &Kit<'_>,
    ) -> Option<i32> {
        if !kit.cache.has_local() {
            return None;
        }
        let key = kit.cache.key(kit.identity, kit.remote_argv, cpp)?;
        let entry = kit.cache.local_hit(key)?;
        let pre = cpp.wait().ok()?;
        if let Some(st) = self.state() {
            st.phase_on(Phase::Receive, CACHE_HOST, 0);
        }
        let reply = Reply {
            status: entry.status,
            stdout: entry.stdout,
            stderr: entry.stderr,
            object: entry.object,
            deps: None,
        };
        if let Err(code) = write_outputs(job, pre.deps.take(), &reply) {
            return Some(code);
        }
        let pre_err = std::mem::take(&mut pre.stderr);
        emit(&reply.stdout, &pre_err, &reply.stderr);
        if let Some(st) = self.state() {
            st.phase(Phase::Done);
        }
        self.sched.report_cache(CacheOutcome::LocalHit);
        log::info!("job {}: local cache hit ({key})", job.input);
        Some(local::exit_code_from_wait(reply.status))
    }
}

/// The host a job answered from the local cache is shown on in the monitor's state
/// files (distccmon-text prints it as any host name).
pub const CACHE_HOST: &str = "cache";

/// Moves the dependency file into place and writes the object; on failure, says why
/// and returns the exit code.
fn write_outputs(job: &RemoteJob, deps: Option<TempPath>, reply: &Reply) -> Result<(), i32> {
    if let (Some(tmp), Some(dep_file)) = (deps, &job.dep_file) {
        let tmp_path = tmp.to_path_buf();
        if let Err(e) = output::install(&tmp_path, Path::new(dep_file)) {
            eprintln!("swarmcc: cannot write dependency file {dep_file}: {e}");
            return Err(ExitCode::IoError.code());
        }
        // Installed: the temp path no longer exists, so forget it without deleting.
        let _ = tmp.keep();
    }
    if let Err(e) = output::write_atomic(Path::new(&job.output), &reply.object) {
        eprintln!("swarmcc: cannot write {}: {e}", job.output);
        return Err(ExitCode::IoError.code());
    }
    Ok(())
}

/// Shows a compile's output: its stdout, then the preprocessor's diagnostics and the
/// compiler's.
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
