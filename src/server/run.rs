//! Running a prepared job's compiler: through its driver, or the stages the driver
//! would run (learnt once per command line, see `stages`), confined by Landlock when
//! asked; started early while the source still arrives when a permit allows, else
//! once a compile slot is free. A failed direct run and a learning run the recorder
//! never saw are run again through the driver, whose answer is the job's.

use std::fs;
use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conn::Conn;
use crate::exec::{self, End, Finished, Running};
use crate::exit::ExitCode;
use crate::sandbox::{self, Confinement};
use crate::transport::Peer;

use super::dialect::Dialect;
use super::jobdir::{Source, Workspace};
use super::record::{RejectReason, Summary};
use super::reply::{answer_refusal, keep_alive, server_fault};
use super::request::{read_source, unpack_source, warn_bad_request};
use super::stages::{self, Known};
use super::stats::GaugeGuard;
use super::whitelist::Refusal;
use super::{Permit, Shared};

/// How a job's compiler is run.
enum Way {
    /// Through the driver, as it was asked for.
    Driver,
    /// The stages the driver would run, started directly.
    Direct(Arc<stages::Plan>),
    /// Through the driver, with this recorder as its `-wrapper` to learn the stages.
    Learn(String),
}

/// A compiler that ran to its end (or was stopped), with what the job still holds
/// until its reply is ready.
pub(super) struct Ran<'a> {
    pub(super) finished: Finished,
    /// How long the compiler ran.
    pub(super) took: Duration,
    /// The compile slot, freed once the reply is in memory.
    pub(super) slot: Permit<'a>,
    /// Counts the job as running in the statistics while held.
    pub(super) running: GaugeGuard<'a>,
}

/// Runs the job's compiler. `last_sign` is when the client last heard from us (the
/// next keep-alive is due a second later). An `Err` is the job's summary (answered
/// already, or a client that left).
pub(super) fn run<'a>(
    conn: &mut Conn,
    peer: Peer,
    shared: &'a Shared,
    dialect: &Dialect,
    ws: &Workspace,
    source: Source<'a>,
    mut last_sign: Instant,
) -> Result<Ran<'a>, Summary> {
    let way = choose_way(shared, ws);
    let mut cmds = commands(peer, ws, &way);
    let mut launcher = Launcher::new(ws, shared.cfg.sandbox)
        .map_err(|why| server_fault(conn, peer, shared, dialect, why, ExitCode::Distcc))?;
    let about = About {
        peer,
        shared,
        dialect,
        ws,
    };
    let (early_started, source) = load_source(conn, &about, &launcher, &mut cmds, source)?;
    let slot = wait_for_slot(conn, shared, dialect, &mut last_sign)?;
    let running = shared.stats.running();
    launcher.opts.deadline = shared.cfg.job_lifetime.map(|d| Instant::now() + d);
    let job = Compiling {
        ws,
        launcher,
        source,
        piped: ws.stdin_language.is_some(),
    };
    let compiling = Instant::now();
    let ran = {
        let stream = conn.stream();
        let keepalive = dialect.keepalive();
        let mut cancel = || {
            let alive = !keepalive || keep_alive(stream, &mut last_sign);
            shared.stopping() || !alive || stream.peer_closed()
        };
        job.execute(peer, shared, way, cmds, early_started, &mut cancel)
    };
    let took = compiling.elapsed();
    drop(job);
    let finished = ran.map_err(|e| {
        let why = format!("failed to exec {}: {e}", ws.program.display());
        server_fault(conn, peer, shared, dialect, why, ExitCode::CompilerMissing)
    })?;
    Ok(Ran {
        finished,
        took,
        slot,
        running,
    })
}

/// A gcc job whose stages are known runs them without the driver; an unknown one
/// runs the driver with a recorder that learns them (see `stages`).
fn choose_way(shared: &Shared, ws: &Workspace) -> Way {
    let recorder = shared
        .cfg
        .stage_recorder
        .as_deref()
        .and_then(stages::wrapper_arg)
        .filter(|_| ws.stdin_language.is_some() && stages::eligible(&ws.argv));
    match recorder {
        None => Way::Driver,
        Some(recorder) => match shared.plans.get(&ws.program, &ws.argv) {
            Known::Plan(plan) => Way::Direct(plan),
            Known::UseDriver => Way::Driver,
            // Only a driver binary is learnt: a script in front of gcc may do more
            // than start it (log, wait, pick a compiler), which must not be skipped.
            Known::Unknown if !stages::is_binary(&ws.program) => {
                shared.plans.insert(&ws.program, &ws.argv, None);
                Way::Driver
            }
            Known::Unknown => Way::Learn(recorder),
        },
    }
}

/// The processes that run the job, the chosen way.
fn commands(peer: Peer, ws: &Workspace, way: &Way) -> Vec<Command> {
    match way {
        Way::Driver => vec![ws.driver()],
        Way::Direct(plan) => {
            log::debug!("client {peer}: running the learnt stages without the driver");
            plan.commands(&ws.dir, &ws.env)
        }
        Way::Learn(recorder) => {
            let mut cmd = ws.driver();
            cmd.args(["-wrapper", recorder])
                .env(stages::RECORD_VAR, &ws.dir);
            vec![cmd]
        }
    }
}

/// The job a step is about, for its answers and log lines.
#[derive(Clone, Copy)]
struct About<'j> {
    peer: Peer,
    shared: &'j Shared,
    dialect: &'j Dialect,
    ws: &'j Workspace,
}

/// Starts compilers the same way every time: confined (when asked) to the job
/// directory, their output captured there.
struct Launcher {
    confinement: Option<Confinement>,
    opts: exec::Options,
}

impl Launcher {
    fn new(ws: &Workspace, sandbox: bool) -> Result<Self, String> {
        let confinement = if sandbox {
            sandbox::prepare(&ws.dir)?
        } else {
            None
        };
        let opts = exec::Options {
            capture_dir: Some(ws.dir.clone()),
            ..exec::Options::default()
        };
        Ok(Launcher { confinement, opts })
    }

    fn start(&self, cmds: &mut [Command], piped: bool) -> io::Result<Running> {
        sandbox::spawn_confined(self.confinement.as_ref(), || {
            exec::spawn_pipeline(cmds, &self.opts, piped)
        })
    }
}

/// Gets the whole source: for a pending one, the compiler is started first and the
/// source read while it loads (returned running); a ready one is written to the input
/// file unless it goes to the compiler's standard input. Until the source is all here
/// the job holds only an early-start permit, never a compile slot, so a slow client
/// cannot hold one.
fn load_source(
    conn: &mut Conn,
    about: &About<'_>,
    launcher: &Launcher,
    cmds: &mut [Command],
    source: Source<'_>,
) -> Result<(Option<Running>, Vec<u8>), Summary> {
    let About {
        peer,
        shared,
        dialect,
        ws,
    } = *about;
    match source {
        Source::Pending(pending, early) => {
            let running = launcher.start(cmds, true).map_err(|e| {
                let why = format!("failed to exec {}: {e}", ws.program.display());
                server_fault(conn, peer, shared, dialect, why, ExitCode::CompilerMissing)
            })?;
            // From here on, returning early kills the compiler (Running's drop).
            let packed = match read_source(conn, shared, pending) {
                Ok(packed) => packed.unwrap_or_default(),
                Err(summary) => return Err(warn_bad_request(peer, summary)),
            };
            drop(early);
            match unpack_source(shared, dialect, packed) {
                Ok(source) => Ok((Some(running), source)),
                Err(refusal) => Err(answer_refusal(
                    conn,
                    shared,
                    dialect,
                    &refusal,
                    RejectReason::TooLarge,
                )),
            }
        }
        Source::Ready(source) => {
            if ws.stdin_language.is_none() {
                if let Err(e) = fs::write(&ws.input, &source) {
                    let why = format!("cannot write {}: {e}", ws.input.display());
                    return Err(server_fault(
                        conn,
                        peer,
                        shared,
                        dialect,
                        why,
                        ExitCode::IoError,
                    ));
                }
            }
            Ok((None, source))
        }
    }
}

/// Waits for a compile slot, watching for the client giving up meanwhile; when too
/// many already wait, says so at once: the client is better off compiling locally
/// than queueing behind them.
fn wait_for_slot<'a>(
    conn: &mut Conn,
    shared: &'a Shared,
    dialect: &Dialect,
    last_sign: &mut Instant,
) -> Result<Permit<'a>, Summary> {
    let cfg = &shared.cfg;
    let _queued = shared.stats.queued();
    if let Some(permit) = shared.compile_slots.acquire_timeout(Duration::ZERO) {
        return Ok(permit);
    }
    if shared.stats.queued_now() > cfg.max_queued as u64 {
        let why = format!(
            "server busy: {} compiles running and {} more waiting",
            cfg.jobs, cfg.max_queued
        );
        return Err(answer_refusal(
            conn,
            shared,
            dialect,
            &Refusal::new(ExitCode::Busy, why),
            RejectReason::Busy,
        ));
    }
    loop {
        if let Some(permit) = shared
            .compile_slots
            .acquire_timeout(Duration::from_millis(250))
        {
            return Ok(permit);
        }
        if let Some(permit) = shared.lending.reclaim(&shared.compile_slots) {
            return Ok(permit);
        }
        let alive = !dialect.keepalive() || keep_alive(conn.stream(), last_sign);
        if shared.stopping() || !alive || conn.stream().peer_closed() {
            return Err(Summary::disconnected(
                ExitCode::IoError,
                "client left while waiting for a slot",
            ));
        }
    }
}

/// A job whose source is all here and which holds a compile slot.
struct Compiling<'w> {
    ws: &'w Workspace,
    launcher: Launcher,
    source: Vec<u8>,
    /// The source goes to the compiler's standard input.
    piped: bool,
}

impl Compiling<'_> {
    /// Runs the job the chosen way, then again through the driver when that way did
    /// not answer for it, and learns the stages from a learning run that succeeded.
    fn execute(
        &self,
        peer: Peer,
        shared: &Shared,
        mut way: Way,
        mut cmds: Vec<Command>,
        early_started: Option<Running>,
        cancel: &mut dyn FnMut() -> bool,
    ) -> io::Result<Finished> {
        // A learning run also needs the driver's dry run (see `stages`): started now,
        // it is over long before the compile.
        let dry_run = match way {
            Way::Learn(_) => {
                let mut dry = self.ws.driver();
                dry.arg("-###");
                self.launcher
                    .start(std::slice::from_mut(&mut dry), false)
                    .ok()
            }
            _ => None,
        };
        let mut ran = match early_started {
            Some(running) => self.feed_and_wait(running, cancel),
            None => self.start_and_wait(&mut cmds, cancel),
        };
        if self.needs_driver(&way, &ran) {
            ran = self.rerun_with_driver(peer, shared, &way, cancel);
            way = Way::Driver;
        }
        if let (Way::Learn(_), true) = (&way, succeeded(&ran)) {
            self.learn(peer, shared, dry_run);
        }
        ran
    }

    /// Whether the driver must answer instead: a failed direct run is answered by the
    /// driver (its diagnostics, its status, its own messages); so is a learning run
    /// the recorder never saw: that driver refused or ignored `-wrapper` (and may have
    /// said so in the diagnostics), so the command line stays with the driver. A run
    /// killed for the deadline or a cancellation is answered as it is.
    fn needs_driver(&self, way: &Way, ran: &io::Result<Finished>) -> bool {
        let stopped = matches!(ran, Ok(f) if f.end != End::Exited);
        let failed = !succeeded(ran) && !stopped;
        match way {
            Way::Direct(_) => failed,
            Way::Learn(_) => !stopped && !stages::recorded(&self.ws.dir),
            Way::Driver => false,
        }
    }

    /// Runs the job again through its driver alone; a learning run's command line is
    /// remembered as one for the driver when that succeeds.
    fn rerun_with_driver(
        &self,
        peer: Peer,
        shared: &Shared,
        way: &Way,
        cancel: &mut dyn FnMut() -> bool,
    ) -> io::Result<Finished> {
        if matches!(way, Way::Direct(_)) {
            log::debug!(
                "client {peer}: the stages run without the driver did not succeed; {}",
                "running the driver"
            );
        } else {
            log::debug!("client {peer}: the driver did not run the recorder; running it alone");
        }
        let _ = fs::remove_file(&self.ws.output);
        let mut again = [self.ws.driver()];
        let ran = self.start_and_wait(&mut again, cancel);
        if let (Way::Learn(_), true) = (way, succeeded(&ran)) {
            shared.plans.insert(&self.ws.program, &self.ws.argv, None);
        }
        ran
    }

    /// Learns the stages the driver ran (or that it must stay with the driver).
    fn learn(&self, peer: Peer, shared: &Shared, dry_run: Option<Running>) {
        let ws = self.ws;
        let dry_run = dry_run
            .and_then(|r| r.wait(&self.launcher.opts, &mut || false).ok())
            .map(|f| f.stderr)
            .unwrap_or_default();
        let plan = stages::learn(&ws.dir, &ws.env, &dry_run);
        match &plan {
            Some(p) => log::debug!(
                "client {peer}: learnt the stages of `{}`: {}",
                ws.argv.join(" "),
                p.stages
                    .iter()
                    .map(|s| Path::new(&s.program).display().to_string())
                    .collect::<Vec<_>>()
                    .join(" | ")
            ),
            None => log::debug!(
                "client {peer}: `{}` is run through its driver (not a plain two-stage pipeline)",
                ws.argv.join(" ")
            ),
        }
        shared.plans.insert(&ws.program, &ws.argv, plan);
    }

    fn start_and_wait(
        &self,
        cmds: &mut [Command],
        cancel: &mut dyn FnMut() -> bool,
    ) -> io::Result<Finished> {
        self.launcher
            .start(cmds, self.piped)
            .and_then(|r| self.feed_and_wait(r, cancel))
    }

    fn feed_and_wait(
        &self,
        mut running: Running,
        cancel: &mut dyn FnMut() -> bool,
    ) -> io::Result<Finished> {
        if let Some(mut stdin) = running.stdin.take() {
            // A compiler that exits early (a bad option) closes its end: its status
            // and diagnostics say why, not this write.
            let _ = std::io::Write::write_all(&mut stdin, &self.source);
        }
        running.wait(&self.launcher.opts, cancel)
    }
}

/// Whether a compiler run ended on its own with status 0.
fn succeeded(ran: &io::Result<Finished>) -> bool {
    matches!(ran, Ok(f) if f.end == End::Exited && f.status == 0)
}
