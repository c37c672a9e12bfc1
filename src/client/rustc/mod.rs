//! A rustc job (`RUSTC_WRAPPER=swarmcc`): decided by `args::rustc`, its inputs found
//! and hashed (`inputs`), sent to a swarmccd that serves rustc (`conversation`), and
//! its result checked before anything is written (`results`): every file rustc read
//! must be one that was sent, every environment variable it read must have the value
//! it has here, and no output may name the server's job directory. Whatever fails —
//! no host serves rustc, a host dies, a check fails, rustc fails there — rustc runs
//! here, exactly as cargo asked, with cargo's jobserver.

mod conversation;
mod identity;
mod inputs;
pub mod probe;
mod results;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::agent::JobReport;
use crate::args::rustc::{self as rustc_args, RustcJob};
use crate::backoff;
use crate::config::ClientConfig;
use crate::exit::ExitCode;
use crate::hosts::{HostKind, HostList, HostSpec};
use crate::state::{Phase, StateFile};

use super::job::{HostChoice, Pick};
use super::lease::{Held, Scheduler};
use conversation::Outcome;
use inputs::Inputs;

/// How long a host that said it does not serve rustc (or not our toolchain) is not
/// asked again: a server restarted with `--rustc` is found within this time.
const REFUSAL_MEMORY: Duration = Duration::from_secs(300);

/// Runs one rustc command line (`argv[0]` is rustc as cargo named it, `program` the
/// file it is): remotely when it can be, else here.
pub(super) fn compile(
    cfg: &ClientConfig,
    program: &Path,
    argv: &[String],
    state: Option<StateFile>,
) -> i32 {
    let job = match rustc_args::classify(&argv[1..]) {
        Ok(job) => job,
        Err(why) => return local(program, argv, state, &format!("not distributable: {why}")),
    };
    if let Some(st) = &state {
        st.set_file(&job.crate_name);
    }
    let hosts = match cfg.load_hosts() {
        Ok((hosts, _)) => hosts,
        Err(e) => return local(program, argv, state, &e.to_string()),
    };
    if !hosts.hosts.iter().any(serves_rustc_maybe(cfg)) {
        return local(program, argv, state, "no host serves rustc");
    }
    let Some(identity) = identity::of(cfg, program) else {
        return local(program, argv, state, "rustc -vV did not say what it is");
    };
    let inputs = match inputs::Site::here().and_then(|site| inputs::collect(cfg, &job, site)) {
        Ok(inputs) => inputs,
        Err(why) => return local(program, argv, state, &why),
    };
    let sched =
        Scheduler::new(&cfg.distcc_dir, cfg.lock_dir(), cfg.build_id.as_deref()).with_state(state);
    let run = Run {
        cfg,
        args: &argv[1..],
        job: &job,
        identity: &identity,
        inputs: &inputs,
        sched: &sched,
    };
    match run.on_hosts(&hosts) {
        Ok(code) => code,
        Err(Local {
            reason,
            slot,
            failed,
        }) => {
            if failed && !cfg.fallback {
                eprintln!(
                    "swarmcc: failed to distribute rustc {} ({reason}) and fallbacks are \
                     disabled (DISTCC_FALLBACK=0)",
                    job.crate_name
                );
                return ExitCode::NoHosts.code();
            }
            local_after(program, argv, sched, slot, &reason, failed)
        }
    }
}

/// What a remote attempt needs.
struct Run<'a> {
    cfg: &'a ClientConfig,
    /// rustc's arguments, as cargo gave them.
    args: &'a [String],
    job: &'a RustcJob,
    identity: &'a str,
    inputs: &'a Inputs,
    sched: &'a Scheduler,
}

/// Why the job runs here after all, and the slot it may run on.
struct Local {
    reason: String,
    slot: Option<Held>,
    /// A host failed (not merely declined): a fallback, in the summary's terms.
    failed: bool,
}

impl Run<'_> {
    /// Tries the hosts in turn; `Ok` with rustc's exit status once one did the job.
    fn on_hosts(&self, hosts: &HostList) -> Result<i32, Local> {
        let cfg = self.cfg;
        let lock_dir = cfg.lock_dir();
        let started = Instant::now();
        let mut choice = HostChoice::new(hosts);
        let mut reasons: Vec<String> = Vec::new();
        let mut failed = false;
        while let Some(Pick { host, mut slot, .. }) =
            choice.next(self.sched, &lock_dir, cfg.backoff_period)
        {
            let HostKind::Tcp { host: name, port } = &host.kind else {
                continue;
            };
            if !serves_rustc_maybe(cfg)(host) {
                continue;
            }
            let label = format!("{name}:{port}");
            let slot_no = slot.as_ref().map_or(0, |s| s.slot);
            if let Some(st) = self.sched.state() {
                st.phase_on(Phase::Connect, name, slot_no);
            }
            let outcome = conversation::attempt(self, name, *port, slot_no);
            match outcome {
                Outcome::Done(reply, sent) => {
                    log_sent(self, &sent);
                    return self.finish(reply, slot, &label, slot_no, started);
                }
                Outcome::Declined(why) => {
                    remember_refusal(cfg, host, &why);
                    reasons.push(format!("{label}: {why}"));
                }
                Outcome::Failed(why) => {
                    if let Some(s) = &mut slot {
                        s.report(&JobReport::HostFailed {
                            reason: why.clone(),
                        });
                    }
                    backoff::mark(&lock_dir, &host.lock_name(), cfg.backoff_period);
                    log::warn!(
                        target: crate::logging::NOTICE,
                        "failed to distribute rustc {} to {label}, running locally instead: {why}",
                        self.job.crate_name
                    );
                    reasons.push(format!("{label}: {why}"));
                    failed = true;
                }
            }
        }
        let reason = if reasons.is_empty() {
            "no host available".to_string()
        } else {
            reasons.join("; ")
        };
        Err(Local {
            reason,
            slot: None,
            failed,
        })
    }
}

impl Run<'_> {
    /// Writes what rustc did there, once it checks out; else says why it runs here.
    fn finish(
        &self,
        reply: crate::protocol::rustc::RustcReply,
        mut slot: Option<Held>,
        label: &str,
        slot_no: u32,
        started: Instant,
    ) -> Result<i32, Local> {
        match results::apply(self.job, self.inputs, reply, true) {
            Ok(code) => {
                log::info!(
                    "job {}: remote on {label}[{slot_no}] ok in {:.2}s",
                    self.job.crate_name,
                    started.elapsed().as_secs_f64()
                );
                if let Some(s) = &mut slot {
                    s.report(&JobReport::Remote {
                        elapsed: started.elapsed(),
                    });
                }
                if let Some(st) = self.sched.state() {
                    st.phase(Phase::Done);
                }
                Ok(code)
            }
            Err(why) => Err(Local {
                reason: format!("{label}: {why}"),
                slot: None,
                failed: false,
            }),
        }
    }
}

fn log_sent(run: &Run<'_>, sent: &conversation::Sent) {
    log::info!(
        "rustc job {}: sent {} of {} bytes ({} of {} files)",
        run.job.crate_name,
        sent.bytes,
        run.inputs.total_bytes(),
        sent.files,
        run.inputs.files.len()
    );
}

/// Whether a host may serve rustc jobs: a TCP host (not `localhost`, not over ssh,
/// not `,auth` for now) that has not said lately that it does not.
fn serves_rustc_maybe(cfg: &ClientConfig) -> impl Fn(&HostSpec) -> bool + '_ {
    move |h: &HostSpec| {
        matches!(h.kind, HostKind::Tcp { .. })
            && !h.wants_auth()
            && !backoff::is_backed_off(
                &cfg.lock_dir(),
                &refusal_key(h),
                REFUSAL_MEMORY,
                std::time::SystemTime::now(),
            )
    }
}

fn refusal_key(h: &HostSpec) -> String {
    format!("rustc_{}", h.lock_name())
}

/// A host that declined because it does not serve rustc (or our toolchain) is left
/// alone for a while; other refusals (busy, this job) are about this job only.
fn remember_refusal(cfg: &ClientConfig, host: &HostSpec, why: &str) {
    log::debug!("{}: declined the rustc job: {why}", host.spec);
    if conversation::declines_all(why) {
        backoff::mark(&cfg.lock_dir(), &refusal_key(host), REFUSAL_MEMORY);
    }
}

/// Runs rustc here without having asked a host: swarmcc steps aside (exec).
fn local(program: &Path, argv: &[String], state: Option<StateFile>, reason: &str) -> i32 {
    let name = rustc_args::classify(&argv[1..])
        .map(|j| j.crate_name)
        .unwrap_or_else(|_| "rustc".into());
    log::info!("job {name}: local ({reason})");
    drop(state);
    super::exec_untouched(program, argv)
}

/// Runs rustc here after the hosts: the outcome goes to the scheduler's summary first.
fn local_after(
    program: &Path,
    argv: &[String],
    sched: Scheduler,
    slot: Option<Held>,
    reason: &str,
    fallback: bool,
) -> i32 {
    let name = rustc_args::classify(&argv[1..])
        .map(|j| j.crate_name)
        .unwrap_or_else(|_| "rustc".into());
    if fallback {
        log::info!("job {name}: fallback to local ({reason})");
    } else {
        log::info!("job {name}: local ({reason})");
    }
    let mut slot = slot.or_else(|| sched.local(crate::agent::LocalKind::Compile, u32::MAX, None));
    if let Some(s) = &mut slot {
        s.report(&JobReport::Local {
            fallback,
            reason: reason.to_string(),
        });
    }
    // cargo holds a jobserver token for this rustc already: the local run needs no
    // slot of ours beyond the report, and exec keeps cargo's jobserver fds.
    drop(slot);
    drop(sched);
    super::exec_untouched(program, argv)
}
