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

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::agent::{Agent, BuildStats};
use crate::config::ClientConfig;
use crate::exit::ExitCode;
use crate::hosts::{self, HostKind, HostList};
use crate::jobserver;
use crate::server::{self, whitelist, Admission, AllowList, ServerConfig};
use crate::shims;

/// The option that selects the launcher.
pub const RUN_OPTION: &str = "--run";

/// The variable through which each wrapper of one build tags its jobs for the agent.
pub const BUILD_ID_VAR: &str = "SWARMCC_BUILD_ID";

/// How often the status line is redrawn.
const STATUS_INTERVAL: Duration = Duration::from_millis(250);

/// How often the launcher checks whether the command has finished or a signal came.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// How long the final statistics may take to settle (wrappers report to the agent as
/// they exit; the last reports can trail the command's exit by a moment).
const SETTLE_TIME: Duration = Duration::from_secs(2);

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

/// Launches without printing the summary (the status line and one-line notices still go
/// to stderr).
pub fn launch(args: &[OsString], cfg: &ClientConfig, self_exe: &Path) -> Report {
    let start = Instant::now();
    // First, before this process opens anything that could take the numbers of
    // inherited jobserver fds that make did not really pass.
    let inherited = jobserver::flags_from_env();
    let inherited_valid = jobserver::Jobserver::from_flags(&inherited).is_some();
    let build_id = new_build_id();
    let mut report = Report {
        exit_code: 0,
        stats: None,
        stats_error: None,
        wall: Duration::ZERO,
        build_id: build_id.clone(),
        embedded_port: None,
        jobs: JobsSetting::User,
        summary: String::new(),
    };
    let Some(program) = args.first() else {
        eprintln!("swarmcc: --run needs a command, e.g. `swarmcc --run make`");
        report.exit_code = ExitCode::BadArguments.code();
        return report;
    };

    // The same lookup as every job's (and `--show-hosts`'): the embedded server serves
    // the build exactly when that list names no host.
    let (list, hosts_ok) = match cfg.load_hosts() {
        Ok((list, source)) => {
            // Said here once for the build; the jobs then find the notices fresh.
            crate::client::host_warnings::tell(cfg, &list, &source);
            (list, true)
        }
        Err(e) => {
            // The wrappers will say the same and compile locally; the build still runs.
            eprintln!("swarmcc: {e}; jobs will compile locally");
            (HostList::default(), false)
        }
    };

    let shim_dir = match make_shims(cfg, self_exe) {
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
        ("PATH", prepend_path(shim_dir.path(), &cfg.path)),
        (BUILD_ID_VAR, OsString::from(&build_id)),
        ("DISTCC_DIR", cfg.distcc_dir.clone().into_os_string()),
    ];

    let mut embedded = None;
    let mut farm = list.clone();
    if hosts_ok && list.is_empty() {
        match Embedded::start(shim_dir.path(), cfg) {
            Ok(e) => {
                let spec = format!("127.0.0.1:{}/{},lzo", e.port, e.jobs);
                eprintln!(
                    "swarmcc: no hosts configured: an embedded swarmccd serves this build on \
                     127.0.0.1:{} ({} jobs)",
                    e.port, e.jobs
                );
                farm = hosts::parse(&spec).unwrap_or_default();
                farm.local_slots = list.local_slots;
                env.push(("DISTCC_HOSTS", OsString::from(&spec)));
                report.embedded_port = Some(e.port);
                embedded = Some(e);
            }
            Err(e) => eprintln!(
                "swarmcc: cannot start an embedded swarmccd: {e}; jobs will compile locally"
            ),
        }
    } else if let Some(h) = &cfg.hosts_env {
        env.push(("DISTCC_HOSTS", OsString::from(h)));
    }

    let size = farm
        .total_slots()
        .saturating_add(farm.local_slots_or_default())
        .max(1);
    let tool = Tool::of(program);
    // An inherited jobserver that fails validation (a non-`+` recipe of an outer make)
    // is replaced, together with its `-jN`; a `-jN` without a jobserver is the user's.
    report.jobs = if tool.user_set_jobs(&args[1..])
        || (inherited.jobs.is_some() && inherited.auth.is_none())
    {
        JobsSetting::User
    } else if inherited_valid {
        JobsSetting::Inherited
    } else if tool == Tool::Ninja {
        JobsSetting::Argument(size)
    } else {
        JobsSetting::Jobserver(size)
    };

    let mut cmd = Command::new(program);
    if let JobsSetting::Argument(n) = report.jobs {
        // First: after `-t tool` it would be the tool's argument.
        cmd.arg(format!("-j{n}"));
    }
    cmd.args(&args[1..]);
    cmd.envs(env);
    // Kept alive until the command has exited: it owns the pipe.
    let mut _jobserver_client = None;
    if let JobsSetting::Jobserver(n) = report.jobs {
        match jobserver_for(&mut cmd, n) {
            Ok(client) => _jobserver_client = Some(client),
            Err(e) => {
                eprintln!(
                    "swarmcc: cannot create a jobserver ({e}); the command runs with its own job count"
                );
                report.jobs = JobsSetting::User;
            }
        }
    }
    if cfg.verbose {
        eprintln!(
            "swarmcc: build {build_id}: {:?}, masquerade folder {}",
            report.jobs,
            shim_dir.path().display()
        );
    }

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
            report.wall = start.elapsed();
            report.summary = String::new();
            return report;
        }
    };

    let mut stats = StatsSource::new(cfg, self_exe, &build_id);
    let status = wait_with_status(&mut child, &signals, &mut stats);
    drop(signals);
    report.wall = start.elapsed();
    report.exit_code = exit_code(&status);

    let (final_stats, err) = stats.settle();
    report.stats = final_stats;
    report.stats_error = err;
    if let Some(e) = embedded.take() {
        e.stop();
    }
    report.summary = format_summary(&report, &farm);
    report
}

/// The kind of command, for the job-count conventions it understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Make,
    Ninja,
    Cargo,
    Other,
}

impl Tool {
    fn of(program: &OsStr) -> Tool {
        let base = Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match base.as_str() {
            "make" | "gmake" => Tool::Make,
            "ninja" | "ninja-build" | "samu" => Tool::Ninja,
            "cargo" => Tool::Cargo,
            _ => Tool::Other,
        }
    }

    /// Whether the user gave a job count on the command line.
    fn user_set_jobs(self, args: &[OsString]) -> bool {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        // Short options whose value may follow in the same word: after one of these
        // the rest of a cluster is a value (`-Cdir`), not more flags.
        let (with_value, stop_at): (&str, &[&str]) = match self {
            Tool::Make => ("CfIoWEljO", &[]),
            Tool::Ninja => ("Cfjkldw", &["-t"]),
            Tool::Cargo => ("jpZ", &["--"]),
            Tool::Other => ("j", &["--"]),
        };
        let mut skip_next = false;
        for a in &args {
            if skip_next {
                skip_next = false;
                continue;
            }
            if stop_at.contains(&a.as_str()) {
                return false;
            }
            if a == "--jobs" || a.starts_with("--jobs=") {
                return true;
            }
            let Some(cluster) = a.strip_prefix('-').filter(|c| !c.starts_with('-')) else {
                continue;
            };
            for (i, c) in cluster.char_indices() {
                if c == 'j' {
                    return true;
                }
                if with_value.contains(c) {
                    // `-C dir`: the value is the next word.
                    skip_next = i + 1 == cluster.len() && !matches!(c, 'l' | 'O');
                    break;
                }
                if self == Tool::Other {
                    break;
                }
            }
        }
        false
    }
}

/// Creates a jobserver with `size` slots and hands it to `cmd` (`MAKEFLAGS`,
/// `CARGO_MAKEFLAGS`, `MFLAGS`, fds inherited). The pipe holds `size - 1` tokens: the
/// command's own implicit slot is the last one, so `make` runs `size` jobs at once, as
/// `make -jsize` would (measured with make 4.3: two tokens, three recipes at once).
fn jobserver_for(cmd: &mut Command, size: u32) -> io::Result<::jobserver::Client> {
    let client = ::jobserver::Client::new(size.saturating_sub(1) as usize)?;
    client.configure_make(cmd);
    // configure_make replaces MAKEFLAGS; keep the user's own make options
    // (`MAKEFLAGS=-k`, variable assignments) around ours. Read here, not in `config`,
    // because it is passed straight on to the command and nothing else uses it.
    let ours = cmd
        .get_envs()
        .find(|(k, _)| *k == OsStr::new("MAKEFLAGS"))
        .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let user = std::env::var("MAKEFLAGS").ok();
    cmd.env("MAKEFLAGS", merge_makeflags(user.as_deref(), &ours));
    Ok(client)
}

/// `user`'s options, then `ours` (so our jobserver is the last one and wins), then
/// `user`'s variable assignments after `--`.
fn merge_makeflags(user: Option<&str>, ours: &str) -> String {
    let Some(user) = user.map(str::trim).filter(|u| !u.is_empty()) else {
        return ours.to_string();
    };
    let (opts, vars) = match user.split_once(" -- ") {
        Some((o, v)) => (o.trim(), Some(v)),
        None if user.starts_with("-- ") => ("", Some(&user[3..])),
        None => (user, None),
    };
    // make writes its single-letter flags first without a dash (`k`); elsewhere than
    // first such a word would be read as a target. A stale jobserver and its `-jN`
    // (from an outer make whose fds did not reach us) are dropped.
    let opts: Vec<String> = opts
        .split(' ')
        .filter(|w| !w.is_empty())
        .enumerate()
        .filter(|(_, w)| !w.starts_with("--jobserver-") && !w.starts_with("-j"))
        .map(|(i, w)| {
            if i == 0 && !w.starts_with('-') {
                format!("-{w}")
            } else {
                w.to_string()
            }
        })
        .collect();
    let opts = opts.join(" ");
    let mut out = String::new();
    if !opts.is_empty() {
        out.push_str(&opts);
        out.push(' ');
    }
    out.push_str(ours);
    if let Some(v) = vars {
        out.push_str(" -- ");
        out.push_str(v);
    }
    out
}

/// `dir` first, then `path`.
fn prepend_path(dir: &Path, path: &OsStr) -> OsString {
    let mut out = OsString::from(dir.as_os_str());
    if !path.is_empty() {
        out.push(":");
        out.push(path);
    }
    out
}

/// The private masquerade folder: links to `self_exe` named like every compiler found
/// on `cfg.path` (the generic names, target-prefixed and versioned ones), so that the
/// `x86_64-linux-gnu-gcc` a client sends is also in the embedded server's whitelist.
fn make_shims(cfg: &ClientConfig, self_exe: &Path) -> io::Result<tempfile::TempDir> {
    // "swarmcc" in the name keeps it out of any server's compiler search path.
    let dir = tempfile::Builder::new()
        .prefix("swarmcc-shims-")
        .tempdir_in(&cfg.tmpdir)
        .or_else(|_| tempfile::Builder::new().prefix("swarmcc-shims-").tempdir())
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create the masquerade folder: {e}"),
            )
        })?;
    let names = shims::compiler_names(&cfg.path);
    if names.is_empty() {
        eprintln!("swarmcc: no C/C++ compiler found on PATH; the build runs without swarmcc");
    }
    shims::install(dir.path(), self_exe, &names)?;
    Ok(dir)
}

/// A swarmccd running on loopback inside this process for one build.
struct Embedded {
    port: u16,
    jobs: usize,
    shutdown: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<io::Result<()>>>,
}

impl Embedded {
    fn start(shim_dir: &Path, cfg: &ClientConfig) -> io::Result<Embedded> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on 127.0.0.1: {e}")))?;
        let port = listener.local_addr()?.port();
        let dirs = vec![shim_dir.to_path_buf()];
        let search = whitelist::compiler_search_path(None, Some(&cfg.path), &dirs);
        let mut scfg =
            ServerConfig::new(AllowList::loopback(), Admission::whitelist(&dirs, search));
        scfg.tmpdir = cfg.tmpdir.clone();
        let jobs = scfg.jobs;
        let shutdown = Arc::new(AtomicBool::new(false));
        let flag = shutdown.clone();
        let thread = thread::Builder::new()
            .name("embedded-swarmccd".into())
            .spawn(move || server::run(listener, scfg, flag))?;
        Ok(Embedded {
            port,
            jobs,
            shutdown,
            thread: Some(thread),
        })
    }

    fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("swarmcc: the embedded swarmccd failed: {e}"),
                Err(_) => eprintln!("swarmcc: the embedded swarmccd panicked"),
            }
        }
    }
}

impl Drop for Embedded {
    /// Also on early returns and panics: the server never outlives the build.
    fn drop(&mut self) {
        self.shutdown_now();
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

// --- waiting, signals, status line --------------------------------------------------------

/// The last SIGINT/SIGTERM/SIGHUP received (0: none), and whether it was sent to this
/// process alone (by `kill`) rather than by the terminal to the whole foreground group.
static PENDING_SIGNAL: AtomicI32 = AtomicI32::new(0);
static SIGNAL_FROM_KILL: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // Async-signal-safe: two atomic stores.
    // SAFETY: the kernel passes a valid siginfo with SA_SIGINFO.
    let code = if info.is_null() {
        0
    } else {
        unsafe { (*info).si_code }
    };
    // si_code <= 0: sent by kill/sigqueue/tgkill (SI_USER, SI_QUEUE, SI_TKILL); a
    // terminal's ^C is SI_KERNEL and already reached the command too.
    SIGNAL_FROM_KILL.store(code <= 0, Ordering::SeqCst);
    PENDING_SIGNAL.store(sig, Ordering::SeqCst);
}

const FORWARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// While alive, SIGINT/SIGTERM/SIGHUP do not kill the launcher: it forwards them to the
/// command (when they were sent to the launcher alone), waits for it, and still prints
/// the summary and stops the embedded server. The previous handlers come back on drop.
struct SignalGuard {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalGuard {
    fn install() -> SignalGuard {
        PENDING_SIGNAL.store(0, Ordering::SeqCst);
        let mut old = Vec::new();
        for sig in FORWARDED {
            // SAFETY: a zeroed sigaction with a valid handler and an empty mask.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                let mut prev: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &sa, &mut prev) == 0 {
                    old.push((sig, prev));
                }
            }
        }
        SignalGuard { old }
    }

    /// A signal to pass on to the command, if one came since the last call.
    fn take_forward(&self) -> Option<libc::c_int> {
        let sig = PENDING_SIGNAL.swap(0, Ordering::SeqCst);
        (sig != 0 && SIGNAL_FROM_KILL.load(Ordering::SeqCst)).then_some(sig)
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            // SAFETY: restoring a sigaction obtained from sigaction().
            unsafe {
                libc::sigaction(*sig, prev, std::ptr::null_mut());
            }
        }
    }
}

/// Waits for the command, forwarding signals and redrawing the status line.
fn wait_with_status(
    child: &mut Child,
    signals: &SignalGuard,
    stats: &mut StatsSource,
) -> io::Result<ExitStatus> {
    let tty = io::stderr().is_terminal();
    let mut last_draw: Option<Instant> = None;
    let mut last_line: Option<String> = None;
    let started = Instant::now();
    let result = loop {
        if let Some(sig) = signals.take_forward() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as libc::pid_t, sig);
            }
        }
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        if tty && last_draw.is_none_or(|t| t.elapsed() >= STATUS_INTERVAL) {
            last_draw = Some(Instant::now());
            if let Some(s) = stats.poll() {
                // Redrawn only when it changes: each redraw may overwrite the start of
                // a line the command is writing.
                let line = status_line(&s, started.elapsed());
                if last_line.as_deref() != Some(line.as_str()) {
                    draw_status(&line);
                    last_line = Some(line);
                }
            }
        }
        thread::sleep(POLL_INTERVAL);
    };
    if last_line.is_some() {
        clear_status();
    }
    result
}

/// `\r`, the line, clear to the end of the line, `\r`: the command's next output starts
/// at column 0 and overwrites the line (a shorter line leaves the tail visible until the
/// next redraw, which is the least the launcher can garble without owning the output).
fn draw_status(line: &str) {
    let width = terminal_width().unwrap_or(80).saturating_sub(1).max(10);
    let line: String = line.chars().take(width).collect();
    let mut err = io::stderr().lock();
    let _ = write!(err, "\r{line}\x1b[K\r");
    let _ = err.flush();
}

fn clear_status() {
    let mut err = io::stderr().lock();
    let _ = write!(err, "\r\x1b[K");
    let _ = err.flush();
}

fn terminal_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ fills a winsize struct.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some(ws.ws_col as usize)
}

fn status_line(s: &BuildStats, elapsed: Duration) -> String {
    let mut line = format!(
        "[swarmcc {:.0}s] running {} remote, {} local | done {} remote, {} local",
        elapsed.as_secs_f64(),
        s.running_remote,
        s.running_local,
        s.remote_ok,
        s.local
    );
    if s.fallbacks > 0 {
        let _ = write!(line, ", {} fallbacks", s.fallbacks);
    }
    if !s.failed_hosts.is_empty() {
        let names: Vec<&str> = s.failed_hosts.iter().map(|(h, _)| h.as_str()).collect();
        let _ = write!(line, " | failed: {}", names.join(" "));
    }
    line
}

/// The agent, reached lazily; after one failure it is not asked again (the build must
/// never wait on it). A panic inside the agent code counts as a failure too.
struct StatsSource {
    distcc_dir: PathBuf,
    self_exe: PathBuf,
    build: String,
    agent: Option<Agent>,
    error: Option<String>,
}

impl StatsSource {
    fn new(cfg: &ClientConfig, self_exe: &Path, build: &str) -> StatsSource {
        StatsSource {
            distcc_dir: cfg.distcc_dir.clone(),
            self_exe: self_exe.to_path_buf(),
            build: build.to_string(),
            agent: None,
            error: None,
        }
    }

    fn poll(&mut self) -> Option<BuildStats> {
        if self.error.is_some() {
            return None;
        }
        if self.agent.is_none() {
            let (dir, exe) = (&self.distcc_dir, &self.self_exe);
            match quietly(|| Agent::connect(dir, exe, None)) {
                Ok(a) => self.agent = Some(a),
                Err(e) => {
                    self.error = Some(format!("cannot reach the scheduling agent: {e}"));
                    return None;
                }
            }
        }
        let agent = self.agent.as_ref()?;
        match quietly(|| agent.build_stats(&self.build)) {
            Ok(s) => Some(s),
            Err(e) => {
                self.error = Some(format!("the scheduling agent gave no statistics: {e}"));
                self.agent = None;
                None
            }
        }
    }

    /// The final counters: polled until no job of the build is running any more (the
    /// last wrappers' reports can arrive just after the command exits), at most
    /// [`SETTLE_TIME`].
    fn settle(mut self) -> (Option<BuildStats>, Option<String>) {
        let deadline = Instant::now() + SETTLE_TIME;
        let mut last = None;
        while let Some(s) = self.poll() {
            let idle = s.running_remote == 0 && s.running_local == 0;
            last = Some(s);
            if idle || Instant::now() >= deadline {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        match last {
            Some(s) => (Some(s), None),
            None => (None, self.error.take()),
        }
    }
}

thread_local! {
    static QUIET_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic into an error without printing the panic message (the
/// agent may be unimplemented or broken; the build's output must stay clean).
fn quietly<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANIC.with(|q| q.get()) {
                prev(info);
            }
        }));
    });
    QUIET_PANIC.with(|q| q.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET_PANIC.with(|q| q.set(false));
    match r {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string());
            Err(io::Error::other(msg))
        }
    }
}

// --- summary ----------------------------------------------------------------------------

/// The end-of-build summary: wall time; jobs remote, local, fallbacks with reasons;
/// per-host counts (named as in the host list); failed hosts.
fn format_summary(r: &Report, farm: &HostList) -> String {
    let names: HashMap<String, String> = farm
        .hosts
        .iter()
        .map(|h| {
            let shown = match &h.kind {
                HostKind::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
                HostKind::Tcp { host, port } => format!("{host}:{port}"),
                _ => h.hostname().to_string(),
            };
            (h.lock_name(), shown)
        })
        .collect();
    let name = |lock: &str| names.get(lock).cloned().unwrap_or_else(|| lock.to_string());
    let mut out = String::new();
    let wall = r.wall.as_secs_f64();
    match &r.stats {
        Some(s) => {
            let _ = writeln!(
                out,
                "swarmcc: build finished in {wall:.1} s: {} remote, {} local, {} fallbacks (exit {})",
                s.remote_ok, s.local, s.fallbacks, r.exit_code
            );
            if !s.per_host.is_empty() {
                let mut hosts = s.per_host.clone();
                hosts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let parts: Vec<String> = hosts
                    .iter()
                    .map(|(h, n)| format!("{} {n}", name(h)))
                    .collect();
                let _ = writeln!(out, "swarmcc:   per host: {}", parts.join(", "));
            }
            // One line per reason: a reason can itself list several hosts.
            let mut reasons = s.reasons.clone();
            reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            for (why, n) in &reasons {
                let _ = writeln!(out, "swarmcc:   local ({n}): {why}");
            }
            for (h, why) in &s.failed_hosts {
                let _ = writeln!(out, "swarmcc:   failed host {}: {why}", name(h));
            }
        }
        None => {
            let _ = writeln!(
                out,
                "swarmcc: build finished in {wall:.1} s (exit {}); no job counts: {}",
                r.exit_code,
                r.stats_error.as_deref().unwrap_or("no statistics")
            );
        }
    }
    if let Some(port) = r.embedded_port {
        let _ = writeln!(
            out,
            "swarmcc:   embedded swarmccd on 127.0.0.1:{port} stopped"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn tools_are_recognised_by_basename() {
        assert_eq!(Tool::of(OsStr::new("/usr/bin/make")), Tool::Make);
        assert_eq!(Tool::of(OsStr::new("gmake")), Tool::Make);
        assert_eq!(Tool::of(OsStr::new("ninja")), Tool::Ninja);
        assert_eq!(Tool::of(OsStr::new("cargo")), Tool::Cargo);
        assert_eq!(Tool::of(OsStr::new("emerge")), Tool::Other);
    }

    #[test]
    fn make_job_options() {
        let m = Tool::Make;
        assert!(m.user_set_jobs(&os(&["-j"])));
        assert!(m.user_set_jobs(&os(&["-j8", "all"])));
        assert!(m.user_set_jobs(&os(&["-kj4"])));
        assert!(m.user_set_jobs(&os(&["--jobs=3"])));
        assert!(m.user_set_jobs(&os(&["--jobs", "3"])));
        assert!(
            !m.user_set_jobs(&os(&["-C", "-j", "prog"])),
            "-C takes the next word"
        );
        assert!(!m.user_set_jobs(&os(&["-Cjdir", "prog"])));
        assert!(!m.user_set_jobs(&os(&["-l4", "-k", "prog", "CFLAGS=-j"])));
        assert!(!m.user_set_jobs(&os(&["-f", "Makefile.j"])));
    }

    #[test]
    fn ninja_and_cargo_job_options() {
        assert!(Tool::Ninja.user_set_jobs(&os(&["-C", "build", "-j", "4"])));
        assert!(!Tool::Ninja.user_set_jobs(&os(&["-C", "build"])));
        assert!(!Tool::Ninja.user_set_jobs(&os(&["-t", "compdb", "-j"])));
        assert!(Tool::Cargo.user_set_jobs(&os(&["build", "-j2"])));
        assert!(Tool::Cargo.user_set_jobs(&os(&["build", "--jobs", "2"])));
        assert!(!Tool::Cargo.user_set_jobs(&os(&["run", "--", "-j", "2"])));
        assert!(!Tool::Other.user_set_jobs(&os(&["-c", "make"])));
        assert!(Tool::Other.user_set_jobs(&os(&["-j4"])));
    }

    #[test]
    fn makeflags_merge_keeps_user_options_and_variables() {
        let ours = "-j --jobserver-fds=3,4 --jobserver-auth=3,4";
        assert_eq!(merge_makeflags(None, ours), ours);
        assert_eq!(merge_makeflags(Some("  "), ours), ours);
        assert_eq!(merge_makeflags(Some("k"), ours), format!("-k {ours}"));
        assert_eq!(
            merge_makeflags(Some("ks -j4 -l2 --jobserver-auth=3,4"), ours),
            format!("-ks -l2 {ours}")
        );
        assert_eq!(
            merge_makeflags(Some("-k -- CC=gcc"), ours),
            format!("-k {ours} -- CC=gcc")
        );
        assert_eq!(
            merge_makeflags(Some("-- V=1"), ours),
            format!("{ours} -- V=1")
        );
        // Ours comes last, so ours is the jobserver make uses.
        let merged = merge_makeflags(Some("--jobserver-auth=7,8"), ours);
        assert_eq!(
            jobserver::parse(None, Some(&merged), None).auth,
            Some(jobserver::Auth::Pipe { read: 3, write: 4 })
        );
    }

    #[test]
    fn path_is_prepended() {
        assert_eq!(
            prepend_path(Path::new("/s"), OsStr::new("/usr/bin:/bin")),
            "/s:/usr/bin:/bin"
        );
        assert_eq!(prepend_path(Path::new("/s"), OsStr::new("")), "/s");
    }

    #[test]
    fn build_ids_are_unique() {
        assert_ne!(new_build_id(), new_build_id());
    }

    #[test]
    fn summary_names_hosts_and_reasons() {
        let farm = hosts::parse("127.0.0.1:4000/3,lzo [::1]:5000/2").unwrap();
        let stats = BuildStats {
            remote_ok: 5,
            local: 2,
            fallbacks: 1,
            reasons: vec![("linking".into(), 1), ("host failed: refused".into(), 1)],
            per_host: vec![("tcp_127.0.0.1_4000".into(), 5)],
            failed_hosts: vec![("tcp_::1_5000".into(), "connection refused".into())],
            running_remote: 0,
            running_local: 0,
        };
        let r = Report {
            exit_code: 0,
            stats: Some(stats),
            stats_error: None,
            wall: Duration::from_millis(1500),
            build_id: "b".into(),
            embedded_port: None,
            jobs: JobsSetting::Jobserver(9),
            summary: String::new(),
        };
        let s = format_summary(&r, &farm);
        assert!(
            s.contains("in 1.5 s: 5 remote, 2 local, 1 fallbacks"),
            "{s}"
        );
        assert!(s.contains("per host: 127.0.0.1:4000 5"), "{s}");
        assert!(s.contains("swarmcc:   local (1): linking\n"), "{s}");
        assert!(
            s.contains("failed host [::1]:5000: connection refused"),
            "{s}"
        );
        let none = Report {
            stats: None,
            stats_error: Some("agent down".into()),
            embedded_port: Some(7),
            ..r
        };
        let s = format_summary(&none, &farm);
        assert!(s.contains("no job counts: agent down"), "{s}");
        assert!(s.contains("127.0.0.1:7 stopped"), "{s}");
    }

    #[test]
    fn status_line_reads_like_the_summary() {
        let s = BuildStats {
            remote_ok: 3,
            local: 1,
            fallbacks: 1,
            running_remote: 2,
            running_local: 1,
            failed_hosts: vec![("tcp_h_1".into(), "x".into())],
            ..BuildStats::default()
        };
        let l = status_line(&s, Duration::from_secs(4));
        assert_eq!(
            l,
            "[swarmcc 4s] running 2 remote, 1 local | done 3 remote, 1 local, 1 fallbacks | failed: tcp_h_1"
        );
    }
}
