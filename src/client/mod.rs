//! The `swarmcc` client: decide where a compile runs, run it there, and fall back to a
//! local compile whenever the remote path fails — a build never fails because a helper
//! machine did.
//!
//! Flow: parse (`config`, `compiler::classify_invocation`, `args::classify`) → decide
//! (local with a reason, or remote) → run (`remote::attempt` per host, `local::run`) →
//! report (outputs written atomically, diagnostics once, the compiler's exit code).
//!
//! Every compile keeps a distcc-format state file (`state::StateFile`) from start to
//! end, so `distccmon-text` and `swarmcc --monitor` can list it with its phase.

pub(crate) mod cache;
pub mod cli;
pub mod direct_cpp;
pub mod host_warnings;
pub mod job;
pub mod lease;
pub mod local;
pub mod output;
pub mod own;
pub mod preprocess;
pub mod reapi;
pub mod remote;
pub mod rustc;
pub mod scan;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::args::{self, Decision};
use crate::compiler::{self, Invocation, Safeguard};
use crate::config::{ClientConfig, HostsSource};
use crate::exit::ExitCode;
use crate::hosts::HostList;
use crate::logging::{self, LevelFilter, Target};
use job::report_local;
use lease::Scheduler;
use local::CompilerCommand;

/// Entry point of the `swarmcc` binary: returns the process exit code.
pub fn main(argv_os: Vec<OsString>) -> i32 {
    // Run by a gcc driver as its `-wrapper`: record the stage and become it.
    if let Some(dir) = std::env::var_os(direct_cpp::RECORD_VAR) {
        let stage = argv_os.into_iter().skip(1).collect();
        return crate::stages::record_and_exec(direct_cpp::RECORD_VAR, &dir, stage);
    }
    if let Some(code) = run_as_distccd(&argv_os) {
        return code;
    }
    let cfg = match ClientConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("swarmcc: {e}");
            return ExitCode::BadArguments.code();
        }
    };
    init_logging(&cfg);

    // Arguments that are not UTF-8 (odd file names) cannot be analysed as text; such a
    // job is compiled locally, untouched.
    let argv: Option<Vec<String>> = argv_os
        .iter()
        .map(|a| a.to_str().map(str::to_owned))
        .collect();
    let Some(argv) = argv else {
        return run_untouched(&cfg, &argv_os);
    };

    match compiler::classify_invocation(&argv, &cfg.path) {
        Invocation::Own { args } => own::run(&args, &cfg),
        Invocation::Explicit { compiler_argv } | Invocation::Implicit { compiler_argv } => {
            let path = cfg.path.clone();
            compile(&cfg, compiler_argv, path, false)
        }
        Invocation::Masquerade {
            compiler_argv,
            path,
        } => compile(&cfg, compiler_argv, path, true),
    }
}

/// Installed under the name `distccd` (a link to swarmcc), swarmcc is the server: it
/// replaces itself with the swarmccd next to it (else the one on PATH), with the same
/// arguments, so init scripts and unit files written for distccd start swarmccd. `None`
/// when invoked under another name.
fn run_as_distccd(argv: &[OsString]) -> Option<i32> {
    use std::os::unix::process::CommandExt;
    let name = Path::new(argv.first()?).file_name()?;
    if name != "distccd" {
        return None;
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("swarmccd")))
        .filter(|p| compiler::is_executable_file(p));
    let program = beside.unwrap_or_else(|| PathBuf::from("swarmccd"));
    let err = std::process::Command::new(&program).args(&argv[1..]).exec();
    eprintln!(
        "swarmcc: invoked as distccd, but cannot run swarmccd ({}): {err}; install swarmccd next to swarmcc",
        program.display()
    );
    Some(ExitCode::CompilerMissing.code())
}

fn init_logging(cfg: &ClientConfig) {
    // Silent unless asked: autoconf compares a probe's stderr, so a successful compile
    // must print nothing of ours. Errors that fail the build are always shown.
    let level = if cfg.verbose {
        LevelFilter::Debug
    } else if cfg.log_file.is_some() {
        LevelFilter::Info
    } else {
        LevelFilter::Error
    };
    let target = match &cfg.log_file {
        Some(p) => match Target::append_file(p) {
            Ok(t) => t,
            Err(e) => {
                eprintln!(
                    "swarmcc: failed to open logfile {} (DISTCC_LOG): {e}; logging to stderr",
                    p.display()
                );
                Target::Stderr
            }
        },
        None => match cfg.uncached_err_fd {
            Some(fd) if fd > 2 => fd_target(fd),
            _ => Target::Stderr,
        },
    };
    logging::init("swarmcc", level, target);
}

fn fd_target(fd: i32) -> Target {
    use std::os::unix::io::FromRawFd;
    // SAFETY: UNCACHED_ERR_FD names an fd our parent (ccache) left open for us; we
    // duplicate it so that closing our File never closes the caller's descriptor.
    let dup = unsafe { libc::dup(fd) };
    if dup < 0 {
        return Target::Stderr;
    }
    Target::File(unsafe { std::fs::File::from_raw_fd(dup) })
}

/// Runs a command whose arguments are not text: locally, as given.
fn run_untouched(cfg: &ClientConfig, argv: &[OsString]) -> i32 {
    // Without text we cannot tell swarmcc's own options from a compiler name; treat
    // argv[1] as the compiler when invoked as swarmcc, else argv[0] (masquerade).
    let self_name = argv
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let compiler_argv: Vec<OsString> = if self_name.contains("swarmcc") || self_name == "distcc" {
        argv.get(1..).unwrap_or(&[]).to_vec()
    } else {
        argv.to_vec()
    };
    let Some(name) = compiler_argv
        .first()
        .map(|s| s.to_string_lossy().into_owned())
    else {
        eprintln!("swarmcc: no compiler given; see swarmcc --help");
        return ExitCode::BadArguments.code();
    };
    let program = match resolve_program(&name, &cfg.path) {
        Ok(p) => p,
        Err(e) => return cannot_exec(&name, &e),
    };
    let cmd = CompilerCommand {
        program: &program,
        argv: &compiler_argv,
        path: &cfg.path,
        safeguard_level: safeguard_level(cfg) + 1,
    };
    report_local(local::run(&cmd))
}

/// A compiler that cannot be run: the reason, with distcc's phrase ("failed to exec")
/// that log watchers look for, and distcc's exit code 110.
pub fn cannot_exec(name: &str, why: &str) -> i32 {
    eprintln!("swarmcc: failed to exec {name}: {why}");
    ExitCode::CompilerMissing.code()
}

fn safeguard_level(cfg: &ClientConfig) -> u32 {
    cfg.safeguard
        .as_deref()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn resolve_program(name: &str, path: &OsString) -> Result<PathBuf, String> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let self_exe = std::env::current_exe().unwrap_or_default();
    compiler::find_real_compiler(name, path, &self_exe)
}

/// Compiles one command line: remotely when possible, else locally.
fn compile(
    cfg: &ClientConfig,
    compiler_argv: Vec<String>,
    path: OsString,
    masquerade: bool,
) -> i32 {
    if compiler_argv.is_empty() {
        eprintln!("swarmcc: no compiler given; see swarmcc --help");
        return ExitCode::BadArguments.code();
    }
    // Startup, before anything else: a monitor sees the job from its first moment.
    let state = crate::state::StateFile::create(&cfg.distcc_dir);
    let program = match resolve_program(&compiler_argv[0], &path) {
        Ok(p) => p,
        Err(e) => return cannot_exec(&compiler_argv[0], &e),
    };
    if is_rust_compiler(&compiler_argv[0]) {
        if is_rustc(&compiler_argv[0])
            && compiler::check_safeguard(cfg.safeguard.as_deref(), masquerade) == Safeguard::Normal
        {
            return rustc::compile(cfg, &program, &compiler_argv, state);
        }
        // exec keeps our pid but runs no destructor: the file must go first.
        drop(state);
        return exec_untouched(&program, &compiler_argv);
    }
    let argv_os: Vec<OsString> = compiler_argv.iter().map(OsString::from).collect();
    let cmd = CompilerCommand {
        program: &program,
        argv: &argv_os,
        path: &path,
        safeguard_level: safeguard_level(cfg) + 1,
    };

    match compiler::check_safeguard(cfg.safeguard.as_deref(), masquerade) {
        Safeguard::Normal => {}
        Safeguard::RunLocally => {
            log::debug!("nested call (safeguard set): running the compiler directly");
            log::info!("job {}: local (nested call)", compiler_argv[0]);
            if let Some(st) = &state {
                st.phase_on(crate::state::Phase::Compile, "localhost", 0);
            }
            return report_local(local::run(&cmd));
        }
        Safeguard::Recursive => {
            log::error!("swarmcc seems to have invoked itself recursively!");
            eprintln!("swarmcc: swarmcc seems to have invoked itself recursively (check PATH and the compiler name)");
            return ExitCode::RecursiveCall.code();
        }
    }

    let expanded = args::expand_response_files(&compiler_argv, &|p| std::fs::read_to_string(p));
    let decision = args::classify(&expanded);
    let hosts = hosts_for(cfg, &decision);
    let ctx = job::Ctx {
        cfg,
        cmd: &cmd,
        sched: Scheduler::new(&cfg.distcc_dir, cfg.lock_dir(), cfg.build_id.as_deref())
            .with_state(state),
        load_limit: cfg.load_limit,
        hosts,
    };
    match decision {
        Decision::Local(reason) => {
            log::debug!(
                "running locally: {reason}: {}",
                shell_words::join(&compiler_argv)
            );
            ctx.run_local(&reason)
        }
        Decision::Remote(job) => ctx.distribute(&job),
    }
}

/// The host list a job is distributed on. A broken list must not break the build: a
/// remote job then says why and compiles here; a local one needs no list.
fn hosts_for(cfg: &ClientConfig, decision: &Decision) -> HostList {
    let remote = matches!(decision, Decision::Remote(_));
    match cfg.load_hosts() {
        Ok((list, source)) => {
            if remote {
                host_warnings::tell(cfg, &list, &source);
            }
            let notice = list.hosts.is_empty()
                && remote
                && crate::backoff::first_notice(&cfg.lock_dir(), "nohosts", cfg.backoff_period);
            if notice {
                tell_no_hosts(cfg, &source);
            }
            list
        }
        Err(e) if remote => {
            log::error!("{e}; compiling locally");
            eprintln!("swarmcc: {e}; compiling locally");
            HostList::default()
        }
        Err(_) => HostList::default(),
    }
}

/// Says (once per backoff period) that a distributable job found no hosts: distcc's
/// words, which scripts grep for, then what to do about it.
fn tell_no_hosts(cfg: &ClientConfig, source: &HostsSource) {
    let what = match source {
        HostsSource::None => format!(
            "no hostlist is set; can't distribute work: set DISTCC_HOSTS, or list \
             hosts in {} or {}",
            cfg.distcc_dir.join("hosts").display(),
            crate::config::SYSTEM_HOSTS_FILES[0]
        ),
        source => format!("{source} contains no hosts; can't distribute work"),
    };
    log::warn!(
        target: crate::logging::NOTICE,
        "{what} (compiling locally; said once per {}s)",
        crate::backoff::notice_period(cfg.backoff_period).as_secs()
    );
}

/// rustc (as `RUSTC_WRAPPER=swarmcc` passes it) or one of its drivers: never a C
/// compiler job.
fn is_rust_compiler(name: &str) -> bool {
    let base = rust_base_name(name);
    is_rustc(name) || base == "clippy-driver" || base == "rustdoc"
}

/// rustc itself, whose crate compiles are distributed (`client::rustc`); its drivers
/// (clippy-driver, rustdoc) run here, untouched.
fn is_rustc(name: &str) -> bool {
    let base = rust_base_name(name);
    base == "rustc" || base.ends_with("-rustc")
}

fn rust_base_name(name: &str) -> String {
    let base = Path::new(name)
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    base.strip_suffix(".exe")
        .map_or(base.clone(), str::to_owned)
}

/// Replaces this process with `program`: same arguments, environment, file descriptors
/// (cargo's jobserver pipe among them) and signals, as if swarmcc were not there.
fn exec_untouched(program: &Path, argv: &[String]) -> i32 {
    use std::os::unix::process::CommandExt;
    log::debug!("running {} directly (not distributed)", argv[0]);
    let err = std::process::Command::new(program)
        .arg0(&argv[0])
        .args(&argv[1..])
        .exec();
    cannot_exec(&argv[0], &format!("{}: {err}", program.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_compilers_are_recognised() {
        for name in [
            "rustc",
            "/home/u/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/rustc",
            "clippy-driver",
            "x86_64-unknown-linux-gnu-rustc",
        ] {
            assert!(is_rust_compiler(name), "{name}");
        }
        for name in ["gcc", "/usr/bin/cc", "rustc-wrapper-script.sh", "clang"] {
            assert!(!is_rust_compiler(name), "{name}");
        }
    }
}
