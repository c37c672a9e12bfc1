//! `swarmcc --check-hosts`: is each configured host usable, and does it compile exactly
//! like this machine?
//!
//! For every host of the list (the client's own sources: `DISTCC_HOSTS`, then the host
//! files), in parallel:
//! 1. **connect**: a plain TCP connect, timed (`SWARMCC_CONNECT_TIMEOUT`), through
//!    the SOCKS proxy when `DISTCC_SOCKS_PROXY` names one; for an ssh host, the ssh
//!    command line (each request starts ssh, as a build's job does);
//! 2. **server**: a request for a compiler name no server has (`IDENTIFY_COMPILER`):
//!    swarmccd answers every refusal with its reason (`swarmccd: …`), distccd closes the
//!    connection without a word — so the answer tells which server it is;
//! 3. **per compiler** (gcc and g++ by default): a probe source exercising code
//!    generation (arithmetic, a loop, a switch, floating point) compiled at `-O2`
//!    through the same path as a real job — preprocessed here, sent with the same
//!    command line a build would send ([`compiler::rewrite_for_remote`]), over
//!    [`remote::attempt`] (so `,lzo` and `,auth` are exercised too) — and the object
//!    compared byte for byte with a local compile of the same preprocessed text, run the
//!    way swarmccd runs it. A difference is explained by ELF section (`.text` differs,
//!    the compilers' `.comment` identification strings).
//!
//! Then one verdict per host (OK, DIFFERENT COMPILER, REFUSED, UNREACHABLE, FAILED,
//! SKIPPED) with its reason, a summary line, and exit status 0 only when
//! every host is OK (or deliberately `,down`).
//!
//! Nothing is changed: no backoff file is written or cleared, no slot of a running build
//! is taken (the preprocessor runs under a private lock directory).

mod compare;
mod host;
mod probe;
mod report;

use std::time::Duration;

use tempfile::TempDir;

use crate::client::lease::Scheduler;
use crate::client::remote::Timeouts;
use crate::compiler;
use crate::config::{ClientConfig, HostsSource};
use crate::exit::ExitCode;
use crate::hosts::{HostList, HostSpec};
use host::check_host;
use probe::{prepare_probe, Probe, PROBE_FLAGS};

pub use compare::{elf_sections, explain_difference};
pub use probe::{is_cxx_name, PROBE_C, PROBE_CXX};
pub use report::{summary, HostReport, Verdict};

/// The compilers checked when `--check-hosts` names none (those installed here).
pub const DEFAULT_COMPILERS: &[&str] = &["gcc", "g++"];

/// A compiler name no server has: the answer to it tells swarmccd from distccd.
pub const IDENTIFY_COMPILER: &str = "swarmcc-check-hosts-identify";

/// `swarmcc --check-hosts[=COMPILERS]`: prints the report and returns the exit code
/// (0 all OK, 1 a host is not, 106 no usable host list, 110 a named compiler is not
/// installed here, 107 the local reference compile failed).
pub fn run(compilers: Option<&str>, cfg: &ClientConfig) -> i32 {
    match check(compilers, cfg) {
        Ok(reports) if reports.iter().any(|r| r.verdict.is_problem()) => 1,
        Ok(_) => 0,
        Err(code) => code.code(),
    }
}

/// Which compilers to check: those named (every one must be installed here), or the
/// default ones that are.
struct Wanted {
    names: Vec<String>,
    explicit: bool,
    /// `rustc` was named: a rustc job is probed too (`client::rustc::probe`).
    rustc: bool,
}

/// The check from host list to printed report; an error is the exit code, its reason
/// already printed.
fn check(compilers: Option<&str>, cfg: &ClientConfig) -> Result<Vec<HostReport>, ExitCode> {
    let (list, source) = crate::client::host_warnings::load_some(cfg).map_err(|why| {
        eprintln!("swarmcc: {why}: nothing to check");
        ExitCode::BadHostSpec
    })?;
    let wanted = wanted_compilers(compilers)?;
    let work = work_dir(cfg)?;
    let sched = Scheduler::lock_files(work.path().join("lock"));
    let (probes, mut notes) = if wanted.names.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        prepare_probes(&wanted, work.path(), cfg, &sched)?
    };
    let rustc = if wanted.rustc {
        Some(find_rustc(cfg)?)
    } else {
        None
    };
    if let Some(r) = &rustc {
        notes.push(format!(
            "rustc: {} (a probe crate compiled as a RUSTC_WRAPPER job, outputs compared)",
            r.display()
        ));
    }
    print_header(&list, &source, &probes, &notes);
    let reports = check_all(&list.hosts, &probes, rustc.as_deref(), cfg, work.path());
    for r in &reports {
        println!("{r}");
    }
    println!("{}", summary(&reports));
    Ok(reports)
}

/// The compilers `--check-hosts=COMPILERS` names, or the default ones.
fn wanted_compilers(compilers: Option<&str>) -> Result<Wanted, ExitCode> {
    let mut wanted = match compilers {
        Some(text) => Wanted {
            names: parse_compiler_list(text),
            explicit: true,
            rustc: false,
        },
        None => Wanted {
            names: DEFAULT_COMPILERS.iter().map(|s| s.to_string()).collect(),
            explicit: false,
            rustc: false,
        },
    };
    let before = wanted.names.len();
    wanted.names.retain(|n| n != "rustc");
    wanted.rustc = wanted.names.len() != before;
    if wanted.names.is_empty() && !wanted.rustc {
        eprintln!(
            "swarmcc: --check-hosts=COMPILERS names no compiler (e.g. --check-hosts=gcc,clang)"
        );
        return Err(ExitCode::BadArguments);
    }
    Ok(wanted)
}

/// The rustc to probe with: `RUSTC`, else `rustc` on `PATH`.
fn find_rustc(cfg: &ClientConfig) -> Result<std::path::PathBuf, ExitCode> {
    let name = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let self_exe = std::env::current_exe().unwrap_or_default();
    compiler::find_real_compiler(&name, &cfg.path, &self_exe).map_err(|e| {
        eprintln!(
            "swarmcc: --check-hosts: {name} is not installed here ({e}): nothing to compare with"
        );
        ExitCode::CompilerMissing
    })
}

/// The check's private directory (probes, objects, its own lock directory), removed
/// when the check ends.
fn work_dir(cfg: &ClientConfig) -> Result<TempDir, ExitCode> {
    tempfile::Builder::new()
        .prefix("swarmcc-check-")
        .tempdir_in(&cfg.tmpdir)
        .map_err(|e| {
            eprintln!(
                "swarmcc: cannot create a temporary directory in {}: {e}",
                cfg.tmpdir.display()
            );
            ExitCode::IoError
        })
}

/// One probe per wanted compiler installed here, and a note for each default one
/// that is not.
fn prepare_probes(
    wanted: &Wanted,
    work: &std::path::Path,
    cfg: &ClientConfig,
    sched: &Scheduler,
) -> Result<(Vec<Probe>, Vec<String>), ExitCode> {
    let self_exe = std::env::current_exe().unwrap_or_default();
    let mut probes = Vec::new();
    let mut notes = Vec::new();
    for name in &wanted.names {
        let program = match compiler::find_real_compiler(name, &cfg.path, &self_exe) {
            Ok(p) => p,
            Err(e) if wanted.explicit => {
                eprintln!("swarmcc: --check-hosts: {name} is not installed here ({e}): nothing to compare with");
                return Err(ExitCode::CompilerMissing);
            }
            Err(_) => {
                notes.push(format!("{name}: not installed here, not checked"));
                continue;
            }
        };
        match prepare_probe(name, program, work, cfg, sched) {
            Ok(p) => probes.push(p),
            Err(e) => {
                eprintln!("swarmcc: --check-hosts: {name}: {e}");
                return Err(ExitCode::IoError);
            }
        }
    }
    if probes.is_empty() {
        eprintln!(
            "swarmcc: --check-hosts: none of {} is installed here; name the compilers: --check-hosts=cc,clang",
            wanted.names.join(", ")
        );
        return Err(ExitCode::CompilerMissing);
    }
    Ok((probes, notes))
}

/// What is checked, with what, before the per-host reports.
fn print_header(list: &HostList, source: &HostsSource, probes: &[Probe], notes: &[String]) {
    let described: Vec<String> = probes
        .iter()
        .map(|p| {
            if p.remote_argv[0] == p.name {
                p.name.clone()
            } else {
                format!("{} (sent as {})", p.name, p.remote_argv[0])
            }
        })
        .collect();
    println!(
        "checking {} host{} from {source} with {} (probe compiled at {}, objects compared with this machine's)",
        list.hosts.len(),
        if list.hosts.len() == 1 { "" } else { "s" },
        described.join(", "),
        PROBE_FLAGS.join(" ")
    );
    for n in notes {
        println!("note: {n}");
    }
    println!();
}

/// Every host checked at once, one thread each; the reports in the list's order.
fn check_all(
    hosts: &[HostSpec],
    probes: &[Probe],
    rustc: Option<&std::path::Path>,
    cfg: &ClientConfig,
    work: &std::path::Path,
) -> Vec<HostReport> {
    // A probe compiles in well under a second: a server silent for longer than these
    // is reported, not waited for as a build would.
    let timeouts = Timeouts {
        connect: cfg.connect_timeout,
        io: cfg.io_timeout.min(Duration::from_secs(15)),
        compile: cfg.compile_timeout.min(Duration::from_secs(30)),
        stall: cfg.stall_timeout.min(Duration::from_secs(15)),
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let dir = work.join(format!("rustc-{i}"));
                s.spawn(move || {
                    let mut report = check_host(h, probes, cfg, timeouts, work);
                    if let Some(rustc) = rustc {
                        host::check_rustc(&mut report, h, rustc, cfg, &dir);
                    }
                    report
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(hosts)
            .map(|(t, h)| {
                t.join().unwrap_or_else(|_| {
                    let mut r = HostReport::new(&h.spec);
                    r.problem(Verdict::Failed, "the check itself crashed");
                    r
                })
            })
            .collect()
    })
}

/// `gcc, g++ ,clang` → `["gcc", "g++", "clang"]`, without duplicates.
pub fn parse_compiler_list(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !out.iter().any(|o| o == name) {
            out.push(name.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_lists() {
        assert_eq!(
            parse_compiler_list("gcc, g++ ,,gcc,clang"),
            ["gcc", "g++", "clang"]
        );
        assert!(parse_compiler_list(" , ").is_empty());
        assert!(is_cxx_name("g++") && is_cxx_name("/usr/bin/clang++-15") && is_cxx_name("c++"));
        assert!(!is_cxx_name("gcc") && !is_cxx_name("cc"));
    }
}
