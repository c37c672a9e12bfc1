//! The `swarmcc` client: decide where a compile runs, run it there, and fall back to a
//! local compile whenever the remote path fails — a build never fails because a helper
//! machine did.
//!
//! Flow: parse (`config`, `compiler::classify_invocation`, `args::classify`) → decide
//! (local with a reason, or remote) → run (`remote::attempt` per host, `local::run`) →
//! report (outputs written atomically, diagnostics once, the compiler's exit code).

pub mod local;
pub mod output;
pub mod own;
pub mod remote;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::args::{self, Decision, LocalReason, RemoteJob};
use crate::backoff;
use crate::compiler::{self, Invocation, Safeguard};
use crate::config::ClientConfig;
use crate::exit::ExitCode;
use crate::hosts::{HostKind, HostList, HostSpec};
use crate::logging::{self, LevelFilter, Target};
use crate::protocol::{Reply, Version};
use crate::slots::{self, Pool, SlotLease};
use local::CompilerCommand;
use remote::{AttemptError, CppSlots, Preprocessor, Timeouts};

/// Entry point of the `swarmcc` binary: returns the process exit code.
pub fn main(argv_os: Vec<OsString>) -> i32 {
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
                eprintln!("swarmcc: cannot open DISTCC_LOG {}: {e}", p.display());
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
        Err(e) => {
            eprintln!("swarmcc: {e}");
            return ExitCode::CompilerMissing.code();
        }
    };
    let cmd = CompilerCommand {
        program: &program,
        argv: &compiler_argv,
        path: &cfg.path,
        safeguard_level: safeguard_level(cfg) + 1,
    };
    report_local(local::run(&cmd))
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

fn report_local(result: Result<i32, String>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("swarmcc: {e}");
            ExitCode::CompilerMissing.code()
        }
    }
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
    let program = match resolve_program(&compiler_argv[0], &path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("swarmcc: {e}");
            return ExitCode::CompilerMissing.code();
        }
    };
    if is_rust_compiler(&compiler_argv[0]) {
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
            return report_local(local::run(&cmd));
        }
        Safeguard::Recursive => {
            log::error!("swarmcc seems to have invoked itself recursively!");
            eprintln!("swarmcc: swarmcc seems to have invoked itself recursively (check PATH and the compiler name)");
            return ExitCode::RecursiveCall.code();
        }
    }

    let expanded = args::expand_response_files(&compiler_argv, &|p| std::fs::read_to_string(p));
    let job = match args::classify(&expanded) {
        Decision::Local(reason) => {
            log::info!(
                "running locally: {reason}: {}",
                shell_words::join(&compiler_argv)
            );
            return run_local(cfg, &cmd, &reason);
        }
        Decision::Remote(job) => job,
    };

    let hosts = match cfg.load_hosts() {
        Ok((list, source)) => {
            if list.hosts.is_empty() {
                log::warn!(
                    "{source} contains no hosts; compiling {} locally",
                    job.input
                );
            }
            list
        }
        Err(e) => {
            // A broken host list must not break the build: say why, compile here.
            log::error!("{e}; compiling locally");
            eprintln!("swarmcc: {e}; compiling locally");
            HostList::default()
        }
    };
    distribute(cfg, &cmd, &job, &hosts)
}

/// rustc (as `RUSTC_WRAPPER=swarmcc` passes it) and its drivers are not distributed
/// yet: they run here, untouched.
fn is_rust_compiler(name: &str) -> bool {
    let base = Path::new(name)
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = base.strip_suffix(".exe").unwrap_or(&base);
    base == "rustc" || base.ends_with("-rustc") || base == "clippy-driver" || base == "rustdoc"
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
    eprintln!("swarmcc: cannot run {}: {err}", program.display());
    ExitCode::CompilerMissing.code()
}

fn local_slots(hosts: &HostList) -> u32 {
    hosts.local_slots_or_default().max(1)
}

/// Runs a non-distributable job locally, holding a local slot like distcc.
fn run_local(cfg: &ClientConfig, cmd: &CompilerCommand<'_>, reason: &LocalReason) -> i32 {
    // Only the slot limits matter here; an unreadable host list means defaults.
    let hosts = cfg.load_hosts().map(|(h, _)| h).unwrap_or_default();
    let limit = match reason {
        LocalReason::Preprocess => hosts.local_slots_cpp_or_default(),
        _ => local_slots(&hosts),
    };
    let _lease = local_lease(cfg, limit);
    report_local(local::run(cmd))
}

fn local_lease(cfg: &ClientConfig, limit: u32) -> Option<SlotLease> {
    let pools = [Pool {
        lock_name: "localhost",
        limit: limit.max(1),
    }];
    match slots::acquire(&cfg.lock_dir(), &pools, None) {
        Ok(lease) => lease,
        Err(e) => {
            log::debug!("no local slot lock ({e}); running without one");
            None
        }
    }
}

/// How a job ended up being built, for the closing log line.
enum Fallback {
    NoHosts,
    AllFailed(Vec<String>),
}

fn distribute(
    cfg: &ClientConfig,
    cmd: &CompilerCommand<'_>,
    job: &RemoteJob,
    hosts: &HostList,
) -> i32 {
    let started = Instant::now();
    let lock_dir = cfg.lock_dir();
    let timeouts = Timeouts {
        connect: cfg.connect_timeout,
        io: cfg.io_timeout,
        compile: cfg.compile_timeout,
    };
    let mut remote_argv = job.remote_argv();
    remote_argv = compiler::rewrite_for_remote(
        &remote_argv,
        &compiler::native_triple(),
        !cfg.no_rewrite_cross,
        &|name| compiler::exists_on_path(name, cmd.path),
        &|name| compiler::resolve_generic(name, cmd.path),
    );

    let order = host_order(hosts);
    let cpp_slots = CppSlots {
        lock_dir: &lock_dir,
        limit: hosts.local_slots_cpp_or_default(),
    };
    let mut cpp = Preprocessor::new(job, cmd, &cfg.tmpdir, cfg.save_temps, cpp_slots);
    // Each host is tried at most once per job: a failing host never loops (distcc 3.4
    // retried forever with DISTCC_BACKOFF_PERIOD=0).
    let mut tried = vec![false; hosts.hosts.len()];
    let mut failures: Vec<String> = Vec::new();

    loop {
        let now = SystemTime::now();
        let candidates: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| !tried[i] && usable(&hosts.hosts[i]))
            .filter(|&i| {
                let h = &hosts.hosts[i];
                let off =
                    backoff::is_backed_off(&lock_dir, &h.lock_name(), cfg.backoff_period, now);
                if off {
                    log::info!(
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
        let names: Vec<String> = candidates
            .iter()
            .map(|&i| hosts.hosts[i].lock_name())
            .collect();
        let pools: Vec<Pool<'_>> = candidates
            .iter()
            .zip(&names)
            .map(|(&i, name)| Pool {
                lock_name: name,
                limit: hosts.hosts[i].limit,
            })
            .collect();
        let lease = match slots::acquire(&lock_dir, &pools, None) {
            Ok(Some(l)) => Some(l),
            Ok(None) => None,
            Err(e) => {
                log::debug!(
                    "slot locks unavailable ({e}); using {} without one",
                    hosts.hosts[candidates[0]].spec
                );
                None
            }
        };
        let idx = candidates[lease.as_ref().map(|l| l.host).unwrap_or(0)];
        tried[idx] = true;
        let host = &hosts.hosts[idx];

        let (name, port) = match &host.kind {
            HostKind::Localhost => {
                log::info!(
                    "compiling {} on localhost (listed in the host list)",
                    job.input
                );
                drop(cpp);
                return report_local(local::run(cmd));
            }
            HostKind::Tcp { host, port } => (host.as_str(), *port),
            HostKind::Ssh { .. } => unreachable!("filtered by usable()"),
        };
        let version = match host.protocol() {
            1 => Version::V1,
            _ => Version::V2,
        };
        if host.cpp {
            log::info!(
                "{}: pump mode (,cpp) is not supported; using protocol 2",
                host.spec
            );
        }
        let target = remote::Target {
            host: name,
            port,
            version,
        };
        log::info!(
            "compiling {} on {} (protocol {})",
            job.input,
            host.spec,
            version.number()
        );
        log::debug!("remote command: {}", shell_words::join(&remote_argv));
        match remote::attempt(&target, &remote_argv, &mut cpp, timeouts) {
            Ok(reply) => {
                drop(lease);
                return finish_remote(cfg, cmd, job, host, &lock_dir, reply, &mut cpp, started);
            }
            Err(AttemptError::Preprocess(e)) => {
                // The source is at fault, not the host: the local compile reports it.
                log::info!("{e}; compiling {} locally to report the error", job.input);
                drop(lease);
                drop(cpp);
                return report_local(local::run(cmd));
            }
            Err(e) => {
                log::warn!("failed to distribute {} to {}: {e}", job.input, host.spec);
                failures.push(format!("{}: {e}", host.spec));
                backoff::mark(&lock_dir, &host.lock_name(), cfg.backoff_period);
            }
        }
    }

    let why = if failures.is_empty() {
        Fallback::NoHosts
    } else {
        Fallback::AllFailed(failures)
    };
    fall_back(cfg, cmd, job, why)
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
    if h.down {
        return false;
    }
    if let HostKind::Ssh { .. } = h.kind {
        log::warn!(
            "{}: ssh hosts are not supported by swarmcc; skipping it",
            h.spec
        );
        return false;
    }
    true
}

fn fall_back(cfg: &ClientConfig, cmd: &CompilerCommand<'_>, job: &RemoteJob, why: Fallback) -> i32 {
    let reason = match &why {
        Fallback::NoHosts => "no host available".to_string(),
        Fallback::AllFailed(f) => f.join("; "),
    };
    if !cfg.fallback {
        eprintln!(
            "swarmcc: failed to distribute {} ({reason}) and fallbacks are disabled (DISTCC_FALLBACK=0)",
            job.input
        );
        return ExitCode::NoHosts.code();
    }
    log::warn!("{}: {reason}; compiling locally instead", job.input);
    let hosts = cfg.load_hosts().map(|(h, _)| h).unwrap_or_default();
    let _lease = local_lease(cfg, local_slots(&hosts));
    report_local(local::run(cmd))
}

#[allow(clippy::too_many_arguments)]
fn finish_remote(
    cfg: &ClientConfig,
    cmd: &CompilerCommand<'_>,
    job: &RemoteJob,
    host: &HostSpec,
    lock_dir: &Path,
    reply: Reply,
    cpp: &mut Preprocessor<'_>,
    started: Instant,
) -> i32 {
    let code = local::exit_code_from_wait(reply.status);
    if reply.status != 0 && is_refusal(&reply) {
        let reason = String::from_utf8_lossy(&reply.stderr).trim().to_string();
        log::warn!("{} refused {}: {reason}", host.spec, job.input);
        if !cfg.fallback {
            eprintln!("swarmcc: {reason}");
            eprintln!(
                "swarmcc: failed to distribute {} and fallbacks are disabled (DISTCC_FALLBACK=0)",
                job.input
            );
            return ExitCode::NoHosts.code();
        }
        return fall_back(
            cfg,
            cmd,
            job,
            Fallback::AllFailed(vec![format!("{}: {reason}", host.spec)]),
        );
    }
    if reply.status != 0 {
        if cfg.skip_local_retry && code < 128 {
            log::info!("remote compile of {} on {} failed (exit {code}); not retrying (DISTCC_SKIP_LOCAL_RETRY)", job.input, host.spec);
            let pre_err = cpp
                .wait()
                .map(|p| std::mem::take(&mut p.stderr))
                .unwrap_or_default();
            emit(&reply.stdout, &pre_err, &reply.stderr);
            return code;
        }
        log::info!(
            "remote compile of {} on {} failed (exit {code}); retrying locally",
            job.input,
            host.spec
        );
        let local_code = report_local(local::run(cmd));
        if local_code == 0 {
            // The same source compiles here: the host (or its compiler) is at fault.
            backoff::mark(lock_dir, &host.lock_name(), cfg.backoff_period);
            log::warn!(
                "{} failed on {} but compiled locally; backing off that host",
                job.input,
                host.spec
            );
        }
        return local_code;
    }

    // Success: write the dependency file and the object, then show diagnostics once.
    let pre = match cpp.wait() {
        Ok(p) => p,
        Err(e) => {
            log::error!("lost the preprocessor result for {}: {e}", job.input);
            return fall_back(cfg, cmd, job, Fallback::AllFailed(vec![e]));
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
    backoff::clear(lock_dir, &host.lock_name());
    let pre_err = std::mem::take(&mut pre.stderr);
    emit(&reply.stdout, &pre_err, &reply.stderr);
    log::info!(
        "compiled {} on {} in {:.3}s ({} bytes of object)",
        job.input,
        host.spec,
        started.elapsed().as_secs_f64(),
        reply.object.len()
    );
    code
}

/// swarmccd answers a policy refusal with exit 110 and a reason starting `swarmccd: `,
/// rather than closing the connection, so it can be told apart from a compile error.
fn is_refusal(reply: &Reply) -> bool {
    local::exit_code_from_wait(reply.status) == ExitCode::CompilerMissing.code()
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
    }
}
