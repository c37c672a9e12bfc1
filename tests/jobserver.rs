//! `swarmcc::jobserver` against real GNU make. The test binary is its own child: each
//! Makefile recipe re-runs this binary with `SWARMCC_JS_ROLE` set and `--exact
//! child_role`, and that child uses the library as a wrapper would (parse the
//! environment, validate, lend, reclaim, count tokens).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use swarmcc::jobserver::{self, Auth, Jobserver};

const ROLE: &str = "SWARMCC_JS_ROLE";
const EVENTS: &str = "SWARMCC_JS_EVENTS";
const EXPECT: &str = "SWARMCC_JS_EXPECT";

/// Writes `line` to stderr in one write: recipes run in parallel share make's stderr,
/// and `eprintln!` may split a line into several writes that interleave with theirs.
fn say(line: String) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Appends `<time> <pid> <event>` to the events file (O_APPEND: one write per line).
fn event(what: &str) {
    let Some(path) = std::env::var_os(EVENTS) else {
        return;
    };
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(format!("{} {} {what}\n", now_ns(), std::process::id()).as_bytes())
        .unwrap();
}

/// A short CPU-busy stretch, holding a slot.
fn busy(ms: u64) {
    event("hold+");
    let end = std::time::Instant::now() + Duration::from_millis(ms);
    let mut x = 0u64;
    while std::time::Instant::now() < end {
        x = x.wrapping_mul(31).wrapping_add(1);
    }
    std::hint::black_box(x);
    event("hold-");
}

/// The child side. Does nothing unless started by a Makefile recipe of these tests.
#[test]
fn child_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let flags = jobserver::flags_from_env();
    let code = match role.as_str() {
        // A remote-style job: busy (preprocess), lend while "on the network", reclaim,
        // busy again (write the object).
        "lend" => {
            let js = Jobserver::from_flags(&flags).expect("a `+` recipe has a valid jobserver");
            event("alive+");
            busy(20);
            let lent = js.lend().unwrap();
            event("lent");
            thread::sleep(Duration::from_millis(150));
            lent.reclaim().unwrap();
            busy(20);
            event("alive-");
            0
        }
        // As "lend", but the token comes back through Drop on an early error path.
        "lend-drop" => {
            let js = Jobserver::from_flags(&flags).unwrap();
            let r: Result<(), String> = (|| {
                let _lent = js.lend().map_err(|e| e.to_string())?;
                thread::sleep(Duration::from_millis(50));
                Err("simulated network error".to_string())
            })();
            assert!(r.is_err());
            0
        }
        // A non-`+` recipe: MAKEFLAGS names fds that make did not pass.
        "invalid" => {
            let auth = flags.auth.clone().expect("MAKEFLAGS names a jobserver");
            match Jobserver::connect(&auth) {
                Ok(_) => {
                    say("ROLE-RESULT valid".to_owned());
                    1
                }
                Err(e) => {
                    say(format!("ROLE-RESULT invalid: {e}"));
                    0
                }
            }
        }
        "valid" => match Jobserver::from_flags(&flags) {
            Some(_) => {
                say("ROLE-RESULT valid".to_owned());
                0
            }
            None => 1,
        },
        // Lends its token and is killed before it can reclaim it.
        "killed" => {
            let js = Jobserver::from_flags(&flags).unwrap();
            let lent = js.lend().unwrap();
            std::mem::forget(lent);
            // SAFETY: killing ourselves.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            unreachable!();
        }
        // The last recipe: take every free token without blocking, count, give back.
        "count" => {
            let js = Jobserver::from_flags(&flags).unwrap();
            let mut held = Vec::new();
            while let Some(t) = js.try_acquire().unwrap() {
                held.push(t);
            }
            let n = held.len();
            drop(held);
            say(format!("ROLE-RESULT tokens {n}"));
            let expect: usize = std::env::var(EXPECT).unwrap().parse().unwrap();
            i32::from(n != expect)
        }
        other => panic!("unknown role {other}"),
    };
    std::process::exit(code);
}

/// The command a recipe runs to become `role`.
fn child_cmd(role: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    format!(
        "{ROLE}={role} {} --exact child_role --nocapture --test-threads=1 -q >/dev/null",
        exe.display()
    )
}

/// Runs make in `dir` with a clean jobserver environment.
fn make(dir: &Path, args: &[&str], events: &Path, expect: usize) -> Output {
    Command::new("make")
        .args(["-C", dir.to_str().unwrap()])
        .args(args)
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKELEVEL")
        .env(EVENTS, events)
        .env(EXPECT, expect.to_string())
        .output()
        .expect("run make (apt-get install make)")
}

/// The largest number of overlapping `plus`…`minus` intervals in the events file.
fn max_overlap(events: &Path, plus: &str, minus: &str) -> usize {
    let text = fs::read_to_string(events).unwrap_or_default();
    let mut ev: Vec<(u128, i32)> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let t: u128 = w.next()?.parse().ok()?;
            let _pid = w.next()?;
            match w.next()? {
                e if e == plus => Some((t, 1)),
                e if e == minus => Some((t, -1)),
                _ => None,
            }
        })
        .collect();
    // Ends before starts at equal times: an end happens-before the start it enables.
    ev.sort_by_key(|&(t, d)| (t, d));
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in ev {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

fn report(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write_makefile(dir: &Path, body: &str) {
    fs::write(dir.join("Makefile"), body).unwrap();
}

/// 20 remote-style jobs under `make -j3`: no token is lost or added (the last recipe
/// finds exactly 2 free tokens), never more than 3 jobs are CPU-busy at once, and
/// lending lets make start more than 3 jobs while others wait on the "network".
#[test]
fn lend_and_reclaim_keep_the_token_count_under_make_j3() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let targets: Vec<String> = (1..=20).map(|i| format!("t{i}")).collect();
    write_makefile(
        dir.path(),
        &format!(
            "all: count\ncount: {t}\n\t+@{count}\nt%:\n\t+@{lend}\n.PHONY: all count\n",
            t = targets.join(" "),
            count = child_cmd("count"),
            lend = child_cmd("lend"),
        ),
    );
    let out = make(dir.path(), &["-j3"], &events, 2);
    assert!(out.status.success(), "{}", report(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ROLE-RESULT tokens 2"), "{}", report(&out));
    assert!(!stderr.contains("jobserver"), "make complained: {stderr}");
    let holders = max_overlap(&events, "hold+", "hold-");
    let alive = max_overlap(&events, "alive+", "alive-");
    eprintln!("make -j3, 20 lending jobs: at most {holders} CPU-busy, {alive} alive at once");
    assert!(holders <= 3, "{holders} jobs held a slot at once under -j3");
    assert!(
        alive > 3,
        "lending should let make start more than 3 jobs ({alive})"
    );
}

/// A job whose lent token comes back through `Drop` (an error path) loses nothing.
#[test]
fn lent_token_returns_on_error_paths() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let targets: Vec<String> = (1..=8).map(|i| format!("t{i}")).collect();
    write_makefile(
        dir.path(),
        &format!(
            "all: count\ncount: {t}\n\t+@{count}\nt%:\n\t+@{lend}\n.PHONY: all count\n",
            t = targets.join(" "),
            count = child_cmd("count"),
            lend = child_cmd("lend-drop"),
        ),
    );
    let out = make(dir.path(), &["-j4"], &events, 3);
    assert!(out.status.success(), "{}", report(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ROLE-RESULT tokens 3"),
        "{}",
        report(&out)
    );
}

/// make 4.3 exports `--jobserver-auth=R,W` to every recipe but passes the fds only to
/// `+`/`$(MAKE)` lines: a plain recipe sees closed fds and must not use them; one whose
/// fds 3 and 4 were reused for other files must refuse them too.
#[test]
fn non_recursive_recipes_see_an_invalid_jobserver() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    write_makefile(
        dir.path(),
        &format!(
            "all: plain reused plus\nplain:\n\t@{invalid}\n\
             reused:\n\t@exec 3</etc/passwd 4>/dev/null; {invalid}\n\
             plus:\n\t+@{valid}\n.PHONY: all plain reused plus\n",
            invalid = child_cmd("invalid"),
            valid = child_cmd("valid"),
        ),
    );
    let out = make(dir.path(), &["-j2"], &events, 0);
    assert!(out.status.success(), "{}", report(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid: jobserver 3,4 is not usable: fd 3: not open"),
        "{stderr}"
    );
    assert!(stderr.contains("fd 3: not a pipe"), "{stderr}");
    assert!(
        stderr.contains("prefix the recipe line with `+`"),
        "{stderr}"
    );
    assert!(stderr.contains("ROLE-RESULT valid"), "{stderr}");
}

/// Measured: a job SIGKILLed while its token is lent leaves one surplus token. The last
/// recipe finds one free token more than `-j3` allows, and make 4.3 notices at exit
/// ("INTERNAL: Exiting with 4 jobserver tokens available; should be 3!") but still
/// exits 0. A kill cannot be caught, so this is the one case where the count drifts.
#[test]
fn a_job_killed_while_lending_leaves_one_surplus_token() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    write_makefile(
        dir.path(),
        &format!(
            "all: count\ncount: t1 t2 k\n\t+@{count}\nk:\n\t-+@{killed}\nt%:\n\t+@{lend}\n\
             .PHONY: all count k\n",
            count = child_cmd("count"),
            killed = child_cmd("killed"),
            lend = child_cmd("lend"),
        ),
    );
    let out = make(dir.path(), &["-j3"], &events, 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("make on a job killed while lending:\n{}", report(&out));
    assert!(out.status.success(), "{}", report(&out));
    assert!(stderr.contains("ROLE-RESULT tokens 3"), "{}", report(&out));
    assert!(stderr.contains("Error 137 (ignored)"), "{stderr}");
    if stderr.contains("jobserver tokens available") {
        // make 4.3; other versions may phrase it differently or stay silent.
        assert!(
            stderr.contains("Exiting with 4 jobserver tokens available; should be 3"),
            "{stderr}"
        );
    }
}

/// make ≥ 4.4 can pass a named pipe instead (`--jobserver-style=fifo`, its default);
/// with make 4.3 (Debian 12) the option does not exist and this test only says so.
#[test]
fn fifo_jobserver_with_make_44_if_available() {
    let probe = Command::new("make")
        .args(["--jobserver-style=fifo", "-f", "/dev/null", "-j2"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("make has no --jobserver-style=fifo (make < 4.4): skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let targets: Vec<String> = (1..=6).map(|i| format!("t{i}")).collect();
    write_makefile(
        dir.path(),
        &format!(
            // With the fifo style even a non-`+` recipe can use the jobserver.
            "all: count\ncount: {t}\n\t@{count}\nt%:\n\t@{lend}\n.PHONY: all count\n",
            t = targets.join(" "),
            count = child_cmd("count"),
            lend = child_cmd("lend"),
        ),
    );
    let out = make(dir.path(), &["-j3", "--jobserver-style=fifo"], &events, 2);
    assert!(out.status.success(), "{}", report(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ROLE-RESULT tokens 2"),
        "{}",
        report(&out)
    );
}

/// What make 4.3 really exports, parsed: `-j4 -l2 -k -n` and a command-line variable.
#[test]
fn parses_what_make_exports() {
    let dir = tempfile::tempdir().unwrap();
    write_makefile(
        dir.path(),
        "all:\n\t+@printf '%s\\n' \"$$MAKEFLAGS\" > flags.txt\n.PHONY: all\n",
    );
    let out = Command::new("make")
        .args([
            "-C",
            dir.path().to_str().unwrap(),
            "-j4",
            "-l2",
            "-k",
            "-n",
            "CC=a b",
        ])
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKELEVEL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", report(&out));
    let text = fs::read_to_string(dir.path().join("flags.txt")).unwrap();
    let f = jobserver::parse(None, Some(text.trim_end_matches('\n')), None);
    assert_eq!(f.jobs, Some(4), "{text:?}");
    assert_eq!(f.load_limit, Some(2.0), "{text:?}");
    assert!(f.dry_run, "{text:?}");
    assert!(
        matches!(f.auth, Some(Auth::Pipe { .. }) | Some(Auth::Fifo(_))),
        "{text:?}"
    );
}
