//! Starting `swarmccd`: flags and environment to a [`ServerConfig`], logging, binding,
//! niceness, detaching, the pid file, dropping root, signals, then [`super::run`].
//!
//! The order matters and differs from distccd 3.4 on purpose: the log file and the
//! listening socket are opened, and the pid file written, while still root, so that a
//! log or pid path only root can write works (distccd drops privileges first and then
//! silently runs without them). Forking happens before any thread exists.
//!
//! Each concept has its file: `options` (flags and environment to the configuration,
//! and the warnings about distccd options that do nothing here), `log_setup`,
//! `listen` (the sockets), `readiness` (detaching, telling the launcher, the pid
//! file), `privileges` (niceness, dropping root, what the final user must reach),
//! `lifetime` (signals) and `announce` (the startup lines of the log).

mod announce;
mod lifetime;
mod listen;
mod log_setup;
mod options;
mod privileges;
mod readiness;
mod toolchains;

use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;

use crate::exit::ExitCode;
use crate::transport::Stream;

use super::access::AllowList;
use super::cli::Cli;
use super::ServerConfig;

pub use options::{allow_list, config, default_listen, parse_listen, ServerEnv};
pub use readiness::PidFile;

use announce::announce;
use lifetime::install_signal_handlers;
use listen::Listening;
use log_setup::init_logging;
use options::{absolute, warn_ignored_options};
use privileges::{check_recorder, check_tmpdir, drop_root, nice};
use readiness::detach_from_terminal;

pub use listen::DEFAULT_STATS_PORT;

/// A startup failure: the message for the user and the exit code.
#[derive(Debug)]
pub struct StartError {
    pub code: ExitCode,
    pub message: String,
    /// Already shown to the user (by the launching process of a detached server).
    pub reported: bool,
}

impl StartError {
    pub(super) fn new(code: ExitCode, message: impl Into<String>) -> Self {
        StartError {
            code,
            message: message.into(),
            reported: false,
        }
    }

    fn reported(self) -> Self {
        StartError {
            reported: true,
            ..self
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The whole daemon: parses `args` (including the program name), runs until a signal,
/// and returns the process exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    // Run by a gcc driver as its `-wrapper`: record the stage and become it.
    if let Some(dir) = std::env::var_os(super::stages::RECORD_VAR) {
        return crate::stages::record_and_exec(
            super::stages::RECORD_VAR,
            &dir,
            args.into_iter().skip(1).collect(),
        );
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::BadArguments.code()
            } else {
                0
            };
        }
    };
    if cli.version {
        print!("{}", crate::version::text("swarmccd"));
        return 0;
    }
    if cli.show_principal {
        // distccd's exact lines: scripts written for it compare them.
        match ServerEnv::from_process().principal {
            Some(p) => println!("Principal is\t: {p}"),
            None => println!("Principal\t: Not Set"),
        }
        return 0;
    }
    if let Some(path) = &cli.gen_auth_key {
        return gen_auth_key(path);
    }
    // One malloc arena per connection thread would grow the server's memory, and with
    // it the cost of every fork that starts a compiler: two arenas are plenty here.
    // SAFETY: mallopt only sets an allocator tunable; called before other threads run.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let logs_to_file = cli.log_file.is_some() && !cli.log_stderr && !cli.wizard;
    match start(cli) {
        Ok(()) => 0,
        Err(e) => {
            // Always on stderr (the log may not be set up yet), and in the log file too.
            if logs_to_file {
                log::error!("{e}");
            }
            if !e.reported {
                eprintln!("swarmccd: {e}");
            }
            e.code.code()
        }
    }
}

/// `--gen-auth-key FILE`: writes a new key and exits.
fn gen_auth_key(path: &Path) -> i32 {
    match crate::auth::generate_key_file(path) {
        Ok(()) => {
            println!(
                "swarmccd: wrote a new authentication key to {shown}\n\
                 serve with:  swarmccd --auth-key-file {shown} ...\n\
                 on each client, copy it to ~/.distcc/auth.key (mode 0600; or point \
                 SWARMCC_AUTH_KEY_FILE at it) and list this server with ,auth, \
                 e.g. DISTCC_HOSTS=\"buildhost/8,lzo,auth\"",
                shown = path.display()
            );
            0
        }
        Err(e) => {
            eprintln!("swarmccd: {e}");
            ExitCode::IoError.code()
        }
    }
}

fn start(mut cli: Cli) -> Result<(), StartError> {
    if cli.wizard {
        cli.no_detach = true;
        cli.log_stderr = true;
        cli.verbose = true;
    }
    let detach = !cli.no_detach && !cli.inetd;
    init_logging(&cli, detach);
    warn_ignored_options(&cli);
    let (allow, allow_given) = allow_list(&cli)?;
    let mut cfg = configure(&mut cli, allow)?;
    nice(cli.nice);

    if cli.inetd {
        toolchains::share_roots_toolchains(&mut cfg);
        let user = drop_root(cli.user.as_deref(), None)?;
        check_recorder(&mut cfg, user.as_deref());
        return serve_inetd(cfg, allow_given, user.as_deref());
    }

    let listening = Listening::open(&cli, &cfg, allow_given)?;
    let pid_file = detach_and_prepare(&cli, &mut cfg, detach)?;
    let shutdown = Arc::new(AtomicBool::new(false));
    install_signal_handlers(Arc::clone(&shutdown));
    let local = listening.local;
    announce(&cfg, &cli, local, listening.stats.as_ref(), allow_given);
    // Started after detaching and dropping root: its thread would not survive the fork.
    let zeroconf = cli.zeroconf.then(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let what =
            crate::zeroconf::publish::Announcement::new(local.ip(), local.port(), cpus, cfg.jobs);
        crate::zeroconf::publish::Publication::start(what)
    });

    let result = super::run_with_stats(listening.listener, listening.stats, cfg, shutdown);
    drop(zeroconf);
    drop(pid_file);
    log::info!("terminated");
    result.map_err(|e| StartError::new(ExitCode::IoError, format!("server failed: {e}")))
}

/// The configuration from the flags and the environment, with every path made
/// absolute first: detaching changes the working directory to /.
fn configure(cli: &mut Cli, allow: AllowList) -> Result<ServerConfig, StartError> {
    let mut env = ServerEnv::from_process();
    env.tmpdir = absolute(&env.tmpdir)?;
    cli.whitelist_dir = cli
        .whitelist_dir
        .iter()
        .map(|d| absolute(d))
        .collect::<Result<_, _>>()?;
    config(cli, &env, allow)
}

/// Detaches (unless told not to) and makes the last preparations; from the fork on,
/// a detached server tells its launcher how startup ended, so that the launching
/// command returns only once the pid file is written and the port listens.
fn detach_and_prepare(
    cli: &Cli,
    cfg: &mut ServerConfig,
    detach: bool,
) -> Result<Option<PidFile>, StartError> {
    // Detaching changes the working directory to /.
    let pid_path = cli.pid_file.as_deref().map(absolute).transpose()?;
    let ready = if detach {
        Some(detach_from_terminal(cli.log_stderr)?)
    } else {
        None
    };
    match (prepare_to_serve(cli, cfg, pid_path.as_deref()), ready) {
        (Ok(pid_file), ready) => {
            if let Some(r) = ready {
                r.succeeded();
            }
            Ok(pid_file)
        }
        (Err(e), Some(r)) => {
            r.failed(&e);
            Err(e.reported())
        }
        (Err(e), None) => Err(e),
    }
}

/// The detached server's last steps before serving: the pid file, dropping root, and
/// the checks that need the final user. Returns the pid file (removed when dropped).
fn prepare_to_serve(
    cli: &Cli,
    cfg: &mut ServerConfig,
    pid_path: Option<&Path>,
) -> Result<Option<PidFile>, StartError> {
    let pid_file = pid_path.map(PidFile::write).transpose()?;
    toolchains::share_roots_toolchains(cfg);
    let user = drop_root(cli.user.as_deref(), pid_file.as_ref())?;
    check_tmpdir(&cfg.tmpdir, user.as_deref())?;
    check_recorder(cfg, user.as_deref());
    Ok(pid_file)
}

/// `--inetd`: one connection on standard input and output: a socket from inetd, or
/// the pipes sshd gives the command a distcc client runs over ssh.
fn serve_inetd(cfg: ServerConfig, allow_given: bool, user: Option<&str>) -> Result<(), StartError> {
    let stream = Stream::take_stdio().map_err(|e| {
        StartError::new(
            ExitCode::IoError,
            format!("--inetd: standard input and output: {e}"),
        )
    })?;
    check_tmpdir(&cfg.tmpdir, user)?;
    // inetd (and tcpwrappers) do their own access control; an explicit --allow applies
    // to a TCP peer. Pipes have no peer address: allowed, as by distccd.
    let peer = stream.peer();
    if let Some(ip) = peer.ip() {
        if allow_given && !cfg.allow.allows(ip) {
            log::error!("connection from client '{peer}' denied by access list");
            return Ok(());
        }
    }
    super::serve_stream(stream, cfg);
    Ok(())
}
