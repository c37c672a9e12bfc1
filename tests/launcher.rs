//! The launcher (`swarmcc --run COMMAND…`) around real builds: the embedded server, the
//! jobserver it gives make, the summary's counts against the server's log, exit codes
//! and signals.
//!
//! Most cases run the launcher in a child of this test binary (it re-executes itself
//! with `SWARMCC_LAUNCHER_ARGS` and `--exact launcher_child`, which calls
//! `swarmcc::launcher::run`), so a failure points at the library; the `binary_*` tests
//! run the same cases through the real `swarmcc --run`.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{assert_success, copy_tree, eventually, fixture, start_swarmccd, wait_for, SWARMCC};

const ARGS_VAR: &str = "SWARMCC_LAUNCHER_ARGS";
const ROLE_VAR: &str = "SWARMCC_LAUNCHER_ROLE";
const SEP: char = '\u{1f}';

/// The child side: the launcher itself, or a recipe helper. Nothing otherwise.
#[test]
fn launcher_child() {
    if let Ok(role) = std::env::var(ROLE_VAR) {
        // A `+` recipe that counts the free tokens of the jobserver it was given.
        assert_eq!(role, "count");
        let flags = swarmcc::jobserver::flags_from_env();
        let js = swarmcc::jobserver::Jobserver::from_flags(&flags).expect("jobserver");
        let mut held = Vec::new();
        while let Some(t) = js.try_acquire().unwrap() {
            held.push(t);
        }
        eprintln!("FREE-TOKENS {}", held.len());
        drop(held);
        std::process::exit(0);
    }
    let Ok(args) = std::env::var(ARGS_VAR) else {
        return;
    };
    let args: Vec<std::ffi::OsString> = args.split(SEP).map(Into::into).collect();
    let cfg = swarmcc::config::ClientConfig::from_env().expect("config");
    let code = swarmcc::launcher::run(&args, &cfg, Path::new(SWARMCC));
    std::process::exit(code);
}

/// How the launcher is started: in a child of this test binary, or as `swarmcc --run`.
#[derive(Clone, Copy)]
enum Via {
    Library,
    Binary,
}

/// A launcher command for `args`, with a clean distcc and make environment; `hosts`
/// is `DISTCC_HOSTS` (`""`: no hosts, so the launcher embeds a server).
fn launcher(via: Via, distcc_dir: &Path, hosts: &str, args: &[&str]) -> Command {
    let mut c = match via {
        Via::Library => {
            let mut c = Command::new(std::env::current_exe().unwrap());
            c.args([
                "--exact",
                "launcher_child",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(ARGS_VAR, args.join(&SEP.to_string()));
            c
        }
        Via::Binary => {
            let mut c = Command::new(SWARMCC);
            c.arg("--run").args(args);
            c
        }
    };
    c.env("DISTCC_DIR", distcc_dir)
        .env("DISTCC_HOSTS", hosts)
        .env_remove(ROLE_VAR)
        .env_remove("DISTCC_VERBOSE")
        .env_remove("DISTCC_LOG")
        .env_remove("DISTCC_FALLBACK")
        .env_remove("DISTCC_BACKOFF_PERIOD")
        .env_remove("_DISTCC_SAFEGUARD")
        .env_remove("SWARMCC_BUILD_ID")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKELEVEL")
        .stdin(Stdio::null());
    c
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `N remote, M local, F fallbacks` from the summary line.
fn summary_counts(err: &str) -> Option<(u64, u64, u64)> {
    let line = err.lines().find(|l| l.contains("build finished in"))?;
    let tail = line.split(": ").nth(2)?;
    let nums: Vec<u64> = tail
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .take(3)
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums.len() == 3).then(|| (nums[0], nums[1], nums[2]))
}

/// `counts`: also check the summary's job counts, which need the wrappers to report to
/// the agent (off while `client/lease.rs` has `USE_AGENT = false`).
fn quick_start(via: Via, counts: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path().join("proj");
    copy_tree(&fixture("proj"), &proj);
    let distcc_dir = tmp.path().join("distcc");
    let out = launcher(
        via,
        &distcc_dir,
        "",
        &["make", "-C", proj.to_str().unwrap(), "prog"],
    )
    .output()
    .unwrap();
    assert_success(&out, "swarmcc --run make (embedded server)");
    let err = stderr(&out);
    assert!(
        err.contains("an embedded swarmccd serves this build on 127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("stopped"), "{err}");
    assert!(proj.join("prog").exists());
    let run = Command::new(proj.join("prog")).output().unwrap();
    assert!(run.status.success());
    assert!(err.contains("swarmcc: build finished in"), "{err}");
    if !counts {
        return;
    }
    // Six objects, all compiled by the embedded server; the link is local.
    let (remote, _local, fallbacks) =
        summary_counts(&err).unwrap_or_else(|| panic!("no job counts in the summary:\n{err}"));
    assert_eq!((remote, fallbacks), (6, 0), "{err}");
}

/// The README's quick start: no hosts, so an embedded swarmccd on loopback compiles the
/// six objects of the fixture project; the summary says so.
#[test]
fn quick_start_with_an_embedded_server() {
    quick_start(Via::Library, false);
}

#[test]
fn quick_start_summary_says_six_remote() {
    quick_start(Via::Library, true);
}

#[test]
fn binary_quick_start_with_an_embedded_server() {
    quick_start(Via::Binary, true);
}

fn counts_match_server_log(via: Via, counts: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path().join("proj");
    copy_tree(&fixture("proj"), &proj);
    let server = start_swarmccd(tmp.path(), &["--allow", "127.0.0.1"]);
    let hosts = format!("127.0.0.1:{}/4,lzo", server.port);
    let out = launcher(
        via,
        &tmp.path().join("distcc"),
        &hosts,
        &["make", "-C", proj.to_str().unwrap(), "prog"],
    )
    .output()
    .unwrap();
    assert_success(&out, "swarmcc --run make");
    let err = stderr(&out);
    assert!(!err.contains("embedded"), "{err}");
    // The server logs a job when its reply is sent: give the last one a moment.
    let wanted = if counts {
        summary_counts(&err)
            .unwrap_or_else(|| panic!("no job counts in the summary:\n{err}"))
            .0
    } else {
        6
    };
    let compiled = |l: &str| l.matches("COMPILE_OK").count() as u64;
    let log = eventually(|| server.log_text(), |l| compiled(l) >= wanted.max(6));
    let logged = compiled(&log);
    assert_eq!(logged, 6, "{err}\nserver log:\n{log}");
    if !counts {
        return;
    }
    assert_eq!(
        wanted,
        logged,
        "summary:\n{err}\nserver log:\n{}",
        server.log_text()
    );
    assert!(
        err.contains(&format!("per host: 127.0.0.1:{} 6", server.port)),
        "{err}"
    );
}

/// With a real swarmccd: the summary's remote count equals the server log's COMPILE_OK
/// count, and the per-host line names it.
#[test]
fn summary_counts_match_the_server_log() {
    counts_match_server_log(Via::Library, true);
}

/// The part that works without agent reports: a launched build with a configured host
/// compiles all six objects on it (no embedded server).
#[test]
fn a_launched_build_uses_the_configured_host() {
    counts_match_server_log(Via::Library, false);
}

#[test]
fn binary_summary_counts_match_the_server_log() {
    counts_match_server_log(Via::Binary, true);
}

/// A Makefile whose recipe records `MAKEFLAGS`/`CARGO_MAKEFLAGS` and counts the free
/// tokens of its jobserver.
fn flags_project(dir: &Path) {
    let exe = std::env::current_exe().unwrap();
    fs::create_dir_all(dir).unwrap();
    fs::write(
        dir.join("Makefile"),
        format!(
            "all:\n\t+@printf '%s|%s\\n' \"$$MAKEFLAGS\" \"$${{CARGO_MAKEFLAGS-unset}}\" > flags.txt\n\
             \t+@{ROLE_VAR}=count {} --exact launcher_child --nocapture --test-threads=1 -q >/dev/null\n\
             .PHONY: all\n",
            exe.display()
        ),
    )
    .unwrap();
}

fn free_tokens(err: &str) -> Option<usize> {
    err.lines()
        .find_map(|l| l.strip_prefix("FREE-TOKENS "))
        .and_then(|n| n.trim().parse().ok())
}

fn jobserver_sized_from_farm(via: Via) {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path().join("p");
    flags_project(&proj);
    // Nothing is compiled, so the hosts are never contacted: 3 + 2 remote slots and 2
    // local slots make a jobserver of 7 slots, 6 tokens in the pipe.
    let hosts = "127.0.0.1:9/3 127.0.0.2:9/2 --localslots=2";
    let out = launcher(
        via,
        &tmp.path().join("d"),
        hosts,
        &["make", "-C", proj.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_success(&out, "swarmcc --run make");
    let flags = fs::read_to_string(proj.join("flags.txt")).unwrap();
    assert!(flags.contains("--jobserver-auth="), "{flags}");
    assert!(
        !flags.contains("unset"),
        "CARGO_MAKEFLAGS is set for cargo: {flags}"
    );
    assert_eq!(free_tokens(&stderr(&out)), Some(6), "{}", stderr(&out));
}

/// Without `-j`, make gets a jobserver of (sum of host limits + local slots) slots.
#[test]
fn make_gets_a_jobserver_sized_from_the_farm() {
    jobserver_sized_from_farm(Via::Library);
}

#[test]
fn binary_make_gets_a_jobserver_sized_from_the_farm() {
    jobserver_sized_from_farm(Via::Binary);
}

fn explicit_j_is_respected(via: Via) {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path().join("p");
    flags_project(&proj);
    let hosts = "127.0.0.1:9/3 --localslots=2";
    let out = launcher(
        via,
        &tmp.path().join("d"),
        hosts,
        &["make", "-j2", "-C", proj.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_success(&out, "swarmcc --run make -j2");
    let flags = fs::read_to_string(proj.join("flags.txt")).unwrap();
    // make's own jobserver for -j2 (one token), not ours: no CARGO_MAKEFLAGS, and no
    // "forced in submake" warning.
    assert!(flags.contains(" -j2 "), "{flags}");
    assert!(flags.trim_end().ends_with("|unset"), "{flags}");
    let err = stderr(&out);
    assert!(!err.contains("forced in submake"), "{err}");
    assert_eq!(free_tokens(&err), Some(1), "{err}");
}

/// With an explicit `-j2` the launcher adds no jobserver: make uses its own.
#[test]
fn explicit_j_gets_no_jobserver() {
    explicit_j_is_respected(Via::Library);
}

#[test]
fn binary_explicit_j_gets_no_jobserver() {
    explicit_j_is_respected(Via::Binary);
}

fn exit_status_passes_through(via: Via) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("d");
    let out = launcher(via, &d, "127.0.0.1:9/1", &["sh", "-c", "exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("(exit 3)"), "{}", stderr(&out));
    let out = launcher(via, &d, "127.0.0.1:9/1", &["/nonexistent/tool"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot run /nonexistent/tool"),
        "{}",
        stderr(&out)
    );
    let out = launcher(via, &d, "127.0.0.1:9/1", &["sh", "-c", "kill -KILL $$"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(128 + 9), "{}", stderr(&out));
}

/// The command's exit code comes back; 127 when it does not exist; 128+N when killed.
#[test]
fn exit_status_is_the_commands() {
    exit_status_passes_through(Via::Library);
}

#[test]
fn binary_exit_status_is_the_commands() {
    exit_status_passes_through(Via::Binary);
}

fn sigterm_is_forwarded(via: Via) {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("started");
    // The trap is set before the marker says "started": a SIGTERM right after the
    // marker must meet the trap, not the shell's default action.
    let script = format!(
        "trap 'echo got-term >&2; exit 7' TERM; touch {m}; while :; do sleep 0.05; done",
        m = marker.display()
    );
    // No hosts: the embedded server runs too, and must be stopped.
    let child = launcher(via, &tmp.path().join("d"), "", &["sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        "the command to start",
        || marker.exists(),
        |&started| started,
    );
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(err.contains("got-term"), "{err}");
    assert!(err.contains("build finished in"), "{err}");
    assert!(err.contains("stopped"), "{err}");
}

/// SIGTERM sent to the launcher reaches the command; the launcher waits for it, prints
/// the summary, stops the embedded server and exits with the command's status.
#[test]
fn sigterm_reaches_the_command_and_the_summary_still_prints() {
    sigterm_is_forwarded(Via::Library);
}

#[test]
fn binary_sigterm_reaches_the_command_and_the_summary_still_prints() {
    sigterm_is_forwarded(Via::Binary);
}

/// Runs the launcher as a recipe of an outer `make -j3`: `plus` marks the recipe
/// recursive (`+`), so the jobserver fds reach it.
fn under_outer_make(plus: bool) -> (Output, String) {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path().join("p");
    flags_project(&proj);
    let exe = std::env::current_exe().unwrap();
    fs::write(
        tmp.path().join("outer.mk"),
        format!(
            "all:\n\t{}@{} --exact launcher_child --nocapture --test-threads=1 -q\n.PHONY: all\n",
            if plus { "+" } else { "" },
            exe.display()
        ),
    )
    .unwrap();
    let out = Command::new("make")
        .args(["-j3", "-f", tmp.path().join("outer.mk").to_str().unwrap()])
        .env(
            ARGS_VAR,
            ["make", "-C", proj.to_str().unwrap()].join(&SEP.to_string()),
        )
        .env("DISTCC_DIR", tmp.path().join("d"))
        .env("DISTCC_HOSTS", "127.0.0.1:9/3 --localslots=2")
        .env_remove(ROLE_VAR)
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKELEVEL")
        .output()
        .unwrap();
    let flags = fs::read_to_string(proj.join("flags.txt")).unwrap_or_default();
    (out, flags)
}

/// Under an outer make whose jobserver fds did not reach the launcher (a plain recipe:
/// `MAKEFLAGS` names closed fds), the launcher replaces that jobserver with its own, so
/// the inner make neither falls back to -j1 nor warns.
#[test]
fn a_stale_inherited_jobserver_is_replaced() {
    let (out, flags) = under_outer_make(false);
    assert_success(&out, "make → swarmcc --run make");
    let err = stderr(&out);
    assert!(!err.contains("jobserver unavailable"), "{err}");
    assert!(
        !flags.trim_end().ends_with("|unset"),
        "ours sets CARGO_MAKEFLAGS: {flags}"
    );
    assert_eq!(free_tokens(&err), Some(4), "{err}");
}

/// Under a `+` recipe the outer make's jobserver is valid and is kept: the inner make
/// shares the outer -j3 (two free tokens), and the launcher adds none.
#[test]
fn a_valid_inherited_jobserver_is_kept() {
    let (out, flags) = under_outer_make(true);
    assert_success(&out, "make → +swarmcc --run make");
    let err = stderr(&out);
    assert!(flags.trim_end().ends_with("|unset"), "{flags}");
    assert_eq!(free_tokens(&err), Some(2), "{err}");
}
