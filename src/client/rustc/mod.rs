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

use crate::agent::{CacheOutcome, JobReport};
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
use results::Printed;

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
        Err(local) => {
            let Local {
                reason,
                failed,
                printed,
            } = *local;
            if failed && !cfg.fallback {
                eprintln!(
                    "swarmcc: failed to distribute rustc {} ({reason}) and fallbacks are \
                     disabled (DISTCC_FALLBACK=0)",
                    job.crate_name
                );
                return ExitCode::NoHosts.code();
            }
            let why = Why {
                reason: &reason,
                fallback: failed,
            };
            local_after(program, argv, sched, why, &printed)
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

/// Why the job runs here after all.
struct Local {
    reason: String,
    /// A host failed (not merely declined): a fallback, in the summary's terms.
    failed: bool,
    /// What an early part printed, which the local rustc must not print again.
    printed: Printed,
}

/// What one host came to.
enum Tried {
    /// The job is over there: its status, or why it runs here now (after an early
    /// part was printed no other host may be tried: cargo has heard of it).
    Over(Result<i32, Box<Local>>),
    /// The next host may be tried.
    Next { reason: String, failed: bool },
}

impl Run<'_> {
    /// Tries the hosts in turn; `Ok` with rustc's exit status once one did the job.
    fn on_hosts(&self, hosts: &HostList) -> Result<i32, Box<Local>> {
        let cfg = self.cfg;
        let lock_dir = cfg.lock_dir();
        let mut choice = HostChoice::new(hosts);
        let mut reasons: Vec<String> = Vec::new();
        let mut failed = false;
        while let Some(Pick { host, slot, .. }) =
            choice.next(self.sched, &lock_dir, cfg.backoff_period)
        {
            if !serves_rustc_maybe(cfg)(host) {
                continue;
            }
            match self.try_host(host, slot) {
                Tried::Over(result) => return result,
                Tried::Next { reason, failed: f } => {
                    reasons.push(reason);
                    failed |= f;
                }
            }
        }
        let reason = if reasons.is_empty() {
            "no host available".to_string()
        } else {
            reasons.join("; ")
        };
        Err(Box::new(Local {
            reason,
            failed,
            printed: Printed::default(),
        }))
    }

    fn try_host(&self, host: &HostSpec, mut slot: Option<Held>) -> Tried {
        let cfg = self.cfg;
        let HostKind::Tcp { host: name, port } = &host.kind else {
            return Tried::Next {
                reason: format!("{}: not a TCP host", host.spec),
                failed: false,
            };
        };
        let label = format!("{name}:{port}");
        let slot_no = slot.as_ref().map_or(0, |s| s.slot);
        if let Some(st) = self.sched.state() {
            st.phase_on(Phase::Connect, name, slot_no);
        }
        let started = Instant::now();
        let mut printed = Printed::default();
        let mut early = |part| results::apply_early(self.job, self.inputs, part, &mut printed);
        let outcome = conversation::attempt(self, name, *port, slot_no, &mut early);
        let (reason, failed) = match outcome {
            Outcome::Done(reply, sent) => {
                log_sent(self, &sent);
                let done = Done {
                    slot,
                    label: &label,
                    slot_no,
                    started,
                    looked_up: sent.looked_up,
                    farm_hit: sent.farm_hit,
                };
                return Tried::Over(self.finish(reply, done, printed));
            }
            Outcome::Declined(why) => {
                remember_refusal(cfg, host, &why);
                (format!("{label}: {why}"), false)
            }
            Outcome::Failed(why) => {
                if let Some(s) = &mut slot {
                    s.report(&JobReport::HostFailed {
                        reason: why.clone(),
                    });
                }
                backoff::mark(&cfg.lock_dir(), &host.lock_name(), cfg.backoff_period);
                log::warn!(
                    target: crate::logging::NOTICE,
                    "failed to distribute rustc {} to {label}, running locally instead: {why}",
                    self.job.crate_name
                );
                (format!("{label}: {why}"), true)
            }
        };
        if printed.any() {
            return Tried::Over(Err(Box::new(Local {
                reason,
                failed,
                printed,
            })));
        }
        Tried::Next { reason, failed }
    }
}

/// A finished remote job's circumstances, for its report.
struct Done<'a> {
    slot: Option<Held>,
    label: &'a str,
    slot_no: u32,
    started: Instant,
    /// The host's farm cache looked the job up, and whether it had the result.
    looked_up: bool,
    farm_hit: bool,
}

impl Run<'_> {
    /// Writes what rustc did there, once it checks out; else says why it runs here.
    fn finish(
        &self,
        reply: crate::protocol::rustc::RustcReply,
        done: Done<'_>,
        printed: Printed,
    ) -> Result<i32, Box<Local>> {
        let Done {
            mut slot,
            label,
            slot_no,
            started,
            looked_up,
            farm_hit,
        } = done;
        match results::apply(self.job, self.inputs, reply, true, &printed) {
            Ok(code) => {
                let how = if farm_hit {
                    self.sched.report_cache(CacheOutcome::FarmHit);
                    "farm cache hit on"
                } else {
                    if looked_up {
                        self.sched.report_cache(CacheOutcome::Miss);
                    }
                    "remote on"
                };
                log::info!(
                    "job {}: {how} {label}[{slot_no}] ok in {:.2}s",
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
            Err(why) => Err(Box::new(Local {
                reason: format!("{label}: {why}"),
                failed: false,
                printed,
            })),
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
    let name = rustc_args::crate_name(&argv[1..]).unwrap_or("rustc");
    log::info!("job {name}: local ({reason})");
    drop(state);
    super::exec_untouched(program, argv)
}

/// Why rustc runs here after the hosts.
struct Why<'a> {
    reason: &'a str,
    /// A host failed: a fallback, in the summary's terms.
    fallback: bool,
}

/// Runs rustc here after the hosts: the outcome goes to the scheduler's summary first.
fn local_after(
    program: &Path,
    argv: &[String],
    sched: Scheduler,
    why: Why<'_>,
    printed: &Printed,
) -> i32 {
    let Why { reason, fallback } = why;
    let name = rustc_args::crate_name(&argv[1..]).unwrap_or("rustc");
    if fallback {
        log::info!("job {name}: fallback to local ({reason})");
    } else {
        log::info!("job {name}: local ({reason})");
    }
    // A local slot just for the report to the build's summary.
    let mut slot = sched.local(crate::agent::LocalKind::Compile, u32::MAX, None);
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
    if printed.any() {
        return run_unrepeated(program, argv, printed);
    }
    super::exec_untouched(program, argv)
}

/// Runs rustc here as a child whose stderr lines already printed by an early part
/// are not printed again: cargo must hear of the metadata once.
fn run_unrepeated(program: &Path, argv: &[String], printed: &Printed) -> i32 {
    use std::io::{BufRead, Write};
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let child = std::process::Command::new(program)
        .arg0(&argv[0])
        .args(&argv[1..])
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return super::cannot_exec(&argv[0], &format!("{}: {e}", program.display())),
    };
    if let Some(err) = child.stderr.take() {
        let mut out = std::io::stderr().lock();
        for line in std::io::BufReader::new(err)
            .split(b'\n')
            .map_while(Result::ok)
        {
            if !printed.already(&line) {
                let _ = out.write_all(&line);
                let _ = out.write_all(b"\n");
            }
        }
    }
    match child.wait() {
        Ok(status) => status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        Err(e) => super::cannot_exec(&argv[0], &e.to_string()),
    }
}
