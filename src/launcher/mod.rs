//! `swarmcc --run COMMAND…`: runs a build (`make`, `cargo build`, `ninja`…) with
//! swarmcc set up around it, and reports how its jobs went.
//!
//! What it does, in order:
//! 1. a private masquerade folder (links named `cc`, `gcc`, `x86_64-linux-gnu-g++`…, to
//!    swarmcc) first on the command's `PATH`;
//! 2. with no hosts configured, an embedded swarmccd on loopback for the duration of the
//!    build, whose whitelist is that same folder (the README's quick start);
//! 3. unless the user chose a job count (`-j`, `--jobs`, `-jN` in `MAKEFLAGS`) or the
//!    launcher already runs under a jobserver, a GNU make jobserver sized from the farm
//!    (summed host limits + local slots); ninja before 1.13 ignores jobservers and gets
//!    `-jN` instead;
//! 4. `SWARMCC_BUILD_ID` so each wrapper tags its jobs, a live status line on a terminal,
//!    and a summary at the end, both read from the scheduling agent.
//!
//! Boundary: the launcher never compiles and never schedules; the wrappers and the agent
//! do. It exits with the command's status (128 + signal if the command was killed).
//! Wiring into the command line is `client::own`'s: [`dispatch`] is the one-line hook.

mod embedded;
mod jobs;
mod setup;
mod signals;
mod stats;
mod status;
mod summary;

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::agent::BuildStats;
use crate::config::ClientConfig;
use crate::exit::ExitCode;
use jobs::{Inherited, Tool};
use setup::Farm;
use signals::SignalGuard;
use stats::StatsSource;

/// The option that selects the launcher.
pub const RUN_OPTION: &str = "--run";

/// The variable through which each wrapper of one build tags its jobs for the agent.
pub const BUILD_ID_VAR: &str = "SWARMCC_BUILD_ID";

/// The integration point for `client::own`: `Some(exit code)` when `args` (swarmcc's
/// own arguments, after argv[0]) start with `--run`, else `None`. One line to wire:
/// `if let Some(code) = crate::launcher::dispatch(args, cfg) { return code; }`.
pub fn dispatch(args: &[String], cfg: &ClientConfig) -> Option<i32> {
    if args.first().map(String::as_str) != Some(RUN_OPTION) {
        return None;
    }
    let self_exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("swarmcc: --run: cannot find swarmcc's own executable: {e}");
            return Some(ExitCode::BadArguments.code());
        }
    };
    let rest: Vec<OsString> = args[1..].iter().map(OsString::from).collect();
    Some(run(&rest, cfg, &self_exe))
}

/// Runs `args` (the command and its arguments) as described in the module docs, prints
/// the summary to stderr, and returns the exit code. `self_exe` is swarmcc's binary (the
/// masquerade links point at it; the agent is started from it).
pub fn run(args: &[OsString], cfg: &ClientConfig, self_exe: &Path) -> i32 {
    let report = launch(args, cfg, self_exe);
    eprint!("{}", report.summary);
    report.exit_code
}

/// What a launch did, for callers that print or check it themselves.
#[derive(Debug, Clone)]
pub struct Report {
    /// The command's exit code (128 + signal if it was killed), or swarmcc's own code
    /// when it could not be started.
    pub exit_code: i32,
    /// The build's counters from the agent; `None` if the agent could not be reached.
    pub stats: Option<BuildStats>,
    /// Why `stats` is `None`.
    pub stats_error: Option<String>,
    pub wall: Duration,
    pub build_id: String,
    /// The embedded server's port, when one ran.
    pub embedded_port: Option<u16>,
    /// How the command's job count was set.
    pub jobs: JobsSetting,
    /// The summary as printed (lines starting with `swarmcc: `).
    pub summary: String,
}

/// How the launcher set the command's parallelism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobsSetting {
    /// A new jobserver with this many job slots (its pipe holds one token fewer: the
    /// command's own implicit slot is the last one).
    Jobserver(u32),
    /// `-jN` added to the command line (ninja).
    Argument(u32),
    /// The user chose (`-j` on the command line or in `MAKEFLAGS`): left alone.
    User,
    /// A working jobserver was inherited (the launcher runs under make): left alone.
    Inherited,
}

impl Report {
    /// A launch's report before anything ran.
    fn new(build_id: String) -> Report {
        Report {
            exit_code: 0,
            stats: None,
            stats_error: None,
            wall: Duration::ZERO,
            build_id,
            embedded_port: None,
            jobs: JobsSetting::User,
            summary: String::new(),
        }
    }
}

/// Launches without printing the summary (the status line and one-line notices still go
/// to stderr).
pub fn launch(args: &[OsString], cfg: &ClientConfig, self_exe: &Path) -> Report {
    let start = Instant::now();
    // First, before this process opens anything that could take the numbers of
    // inherited jobserver fds that make did not really pass.
    let inherited = Inherited::from_env();
    let mut report = Report::new(new_build_id());
    let Some(program) = args.first() else {
        eprintln!("swarmcc: --run needs a command, e.g. `swarmcc --run make`");
        report.exit_code = ExitCode::BadArguments.code();
        return report;
    };
    let (list, hosts_ok) = setup::load_hosts(cfg);
    let shim_dir = match setup::make_shims(cfg, self_exe) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("swarmcc: --run: {e}");
            report.exit_code = ExitCode::IoError.code();
            return report;
        }
    };
    // The command sees the configuration this launch used, also when `cfg` was not
    // read from this process's environment.
    let mut env: Vec<(&str, OsString)> = vec![
        ("PATH", setup::prepend_path(shim_dir.path(), &cfg.path)),
        (BUILD_ID_VAR, OsString::from(&report.build_id)),
        ("DISTCC_DIR", cfg.distcc_dir.clone().into_os_string()),
    ];
    let farm = setup::choose_farm(list, hosts_ok, shim_dir.path(), cfg, &mut env);
    report.embedded_port = farm.embedded.as_ref().map(|e| e.port);
    report.jobs = jobs::choose(Tool::of(program), &args[1..], &inherited, farm.size());
    let mut cmd = Command::new(program);
    if let JobsSetting::Argument(n) = report.jobs {
        // First: after `-t tool` it would be the tool's argument.
        cmd.arg(format!("-j{n}"));
    }
    cmd.args(&args[1..]);
    cmd.envs(env);
    // Kept alive until the command has exited: it owns the pipe.
    let _jobserver_client = give_jobserver(&mut cmd, &mut report);
    if cfg.verbose {
        eprintln!(
            "swarmcc: build {}: {:?}, masquerade folder {}",
            report.build_id,
            report.jobs,
            shim_dir.path().display()
        );
    }
    let build = Build {
        cfg,
        self_exe,
        start,
    };
    build.run(cmd, program, farm, report)
}

/// Gives the command its jobserver when [`JobsSetting::Jobserver`] was chosen; if one
/// cannot be made, the command runs with its own job count.
fn give_jobserver(cmd: &mut Command, report: &mut Report) -> Option<::jobserver::Client> {
    let JobsSetting::Jobserver(n) = report.jobs else {
        return None;
    };
    match jobs::jobserver_for(cmd, n) {
        Ok(client) => Some(client),
        Err(e) => {
            eprintln!(
                "swarmcc: cannot create a jobserver ({e}); the command runs with its own job count"
            );
            report.jobs = JobsSetting::User;
            None
        }
    }
}

/// What running the prepared command needs from the launch.
struct Build<'a> {
    cfg: &'a ClientConfig,
    self_exe: &'a Path,
    start: Instant,
}

impl Build<'_> {
    /// Runs the command to its end with signals forwarded and the status line drawn,
    /// then collects the counters, stops the embedded server and writes the summary.
    fn run(&self, mut cmd: Command, program: &OsStr, mut farm: Farm, mut report: Report) -> Report {
        let signals = SignalGuard::install();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("swarmcc: cannot run {}: {e}", program.to_string_lossy());
                report.exit_code = if e.kind() == io::ErrorKind::NotFound {
                    127
                } else {
                    126
                };
                report.wall = self.start.elapsed();
                report.summary = String::new();
                return report;
            }
        };
        let mut stats = StatsSource::new(self.cfg, self.self_exe, &report.build_id);
        let status = status::wait_with_status(&mut child, &signals, &mut stats);
        drop(signals);
        report.wall = self.start.elapsed();
        report.exit_code = exit_code(&status);
        let (final_stats, err) = stats.settle();
        report.stats = final_stats;
        report.stats_error = err;
        if let Some(e) = farm.embedded.take() {
            e.stop();
        }
        report.summary = summary::format_summary(&report, &farm.list);
        report
    }
}

/// A unique id per launch: pid, time and a counter (several launches in one process).
fn new_build_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "b{}-{:x}-{}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn exit_code(status: &io::Result<ExitStatus>) -> i32 {
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => c,
            (None, Some(sig)) => 128 + sig,
            (None, None) => 1,
        },
        Err(e) => {
            eprintln!("swarmcc: lost track of the command: {e}");
            ExitCode::IoError.code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_ids_are_unique() {
        assert_ne!(new_build_id(), new_build_id());
    }
}
