//! Distributed rustc: cargo with `RUSTC_WRAPPER=swarmcc` against a swarmccd started with
//! `--rustc` on loopback, on real crate graphs (tests/fixtures/rust-*): serde with its
//! derive (a proc-macro built from syn), a build script writing into OUT_DIR, a
//! workspace, a server killed in the middle of a build, and outputs byte-identical to a
//! local build's.
//!
//! The evidence that a crate went remote is the client's job summary in its DISTCC_LOG
//! (`job <crate>: remote on <host>[slot] ok …`) and the server's COMPILE_OK line naming
//! rustc and the crate. Fallback stays on (the default): a crate that is not
//! distributable runs locally, and the counts say how many went remote.
//!
//! Registry crates come from crates.io through the usual CARGO_HOME (the fixtures' locks
//! pin them; `cargo fetch --locked` first, so that no download happens inside a build).
//! Each test has its own temporary directory, target dir and server.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How long one cargo command may take before the test kills it and fails: far more
/// than the largest build here (serde + syn) takes on a small loaded machine, so that
/// only a hang gets there.
const BUILD_DEADLINE: Duration = Duration::from_secs(20 * 60);

/// The line the serde fixture prints.
const SERDE_LINE: &str = concat!(
    r#"serde fixture: {"crateName":"serde_derive","version":[1,0,228],"procMacro":true,"#,
    r#""deps":["syn","quote","proc-macro2"],"kind":{"type":"lib"}} | "#,
    "parsed serde-fixture v0.1.0 bin=serde-fixture deps=0\n"
);

/// The line the outdir fixture prints: the build script's generated code (greeting,
/// counts, squares) and data (table), the crate's own files (words, blob, the shapes
/// module), CARGO_PKG_VERSION, the build script's rustc-env (stamp) and rustc-cfg.
const OUTDIR_LINE: &str = concat!(
    "hello from build.rs | words=14/14 longest=distributed squares=[1, 4, 9, 16, 25, 36] | ",
    "version=0.3.1 stamp=words-14-sum-7783 cfg=true | blob=16:1754 table=64:8288 | area=19\n"
);

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Everything inherited that would change what cargo, rustc or swarmcc do (the test
/// runs inside `cargo test`, which sets some of these itself).
const SCRUBBED: &[&str] = &[
    "DISTCC_HOSTS",
    "DISTCC_DIR",
    "DISTCC_VERBOSE",
    "DISTCC_LOG",
    "DISTCC_FALLBACK",
    "DISTCC_SKIP_LOCAL_RETRY",
    "DISTCC_BACKOFF_PERIOD",
    "_DISTCC_SAFEGUARD",
    "MAKEFLAGS",
    "MFLAGS",
    "CARGO_MAKEFLAGS",
    "CARGO_BUILD_JOBS",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_RUSTC",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_INCREMENTAL",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_INCREMENTAL",
    "RUSTC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTDOC",
    "RUSTDOCFLAGS",
    "RUSTFLAGS",
    "OUT_DIR",
    "CC",
    "CXX",
    "CFLAGS",
    "CXXFLAGS",
    "OUTDIR_FIXTURE_PPID_FILE",
];

/// A plain cargo: nothing inherited, its own target dir, no incremental compilation.
fn cargo_cmd(project: &Path, target_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.args(args).current_dir(project);
    for var in SCRUBBED {
        cmd.env_remove(var);
    }
    cmd.env("CARGO_TARGET_DIR", target_dir)
        .env("CARGO_INCREMENTAL", "0")
        .env("CARGO_TERM_COLOR", "never");
    cmd
}

/// A private client setup against one server: its DISTCC_DIR and the file its job
/// summaries go to.
struct Farm {
    port: u16,
    distcc_dir: PathBuf,
    _reaper: AgentReaper,
}

impl Farm {
    fn new(tmp: &Path, server: &Swarmccd) -> Farm {
        let distcc_dir = tmp.join("distcc");
        fs::create_dir_all(&distcc_dir).unwrap();
        Farm {
            port: server.port,
            _reaper: AgentReaper(distcc_dir.clone()),
            distcc_dir,
        }
    }

    /// cargo with `RUSTC_WRAPPER=swarmcc` against the server, its job summaries (info
    /// level) appended to `client_log`. Fallback is left at its default (on).
    fn cargo(
        &self,
        project: &Path,
        target_dir: &Path,
        client_log: &Path,
        args: &[&str],
    ) -> Command {
        let mut cmd = cargo_cmd(project, target_dir, args);
        cmd.env("RUSTC_WRAPPER", SWARMCC)
            .env("DISTCC_HOSTS", format!("127.0.0.1:{}/4", self.port))
            .env("DISTCC_DIR", &self.distcc_dir)
            .env("DISTCC_LOG", client_log)
            .env("DISTCC_BACKOFF_PERIOD", "0");
        cmd
    }
}

/// A swarmccd serving rustc jobs, on loopback (its blob cache lives under its own
/// TMPDIR, which `start_swarmccd` puts in the test's directory), told of the client's
/// toolchain when it could not find it itself (see [`server_toolchain`]).
fn start_rustc_server(dir: &Path) -> Swarmccd {
    // A farm cache of its own: never a hit from another test's build.
    let cache = farm_cache_dir(dir);
    start_rustc_server_with(dir, &["--cache-dir", cache.to_str().unwrap()])
}

/// Where [`start_rustc_server`]'s farm cache is: in a directory the unprivileged user
/// swarmccd switches to (tests run as root) can create it in.
fn farm_cache_dir(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let parent = dir.join("cachebox");
    fs::create_dir_all(&parent).unwrap();
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o1777)).unwrap();
    parent.join("farm")
}

/// [`start_rustc_server`] with `extra` arguments (no farm cache of its own).
fn start_rustc_server_with(dir: &Path, extra: &[&str]) -> Swarmccd {
    start_rustc_server_env(dir, extra, &[])
}

fn start_rustc_server_env(dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Swarmccd {
    let mut args = vec!["--allow".to_owned(), "127.0.0.1".into(), "--rustc".into()];
    args.extend(extra.iter().map(|a| a.to_string()));
    if let Some(rustc) = server_toolchain(dir) {
        args.push("--rustc-toolchain".into());
        args.push(rustc.to_str().unwrap().into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start_swarmccd_env(dir, &args, envs)
}

/// Copies a fixture to `tmp/<name>` and fetches its locked dependencies (so that the
/// builds download nothing).
fn project(tmp: &Path, name: &str) -> PathBuf {
    let dir = tmp.join(name);
    copy_tree(&fixture(name), &dir);
    let out = run_cargo(
        &mut cargo_cmd(&dir, &tmp.join("fetch-target"), &["fetch", "--locked"]),
        &format!("cargo fetch --locked ({name})"),
    );
    assert_success(&out, &format!("cargo fetch --locked in {name}"));
    dir
}

/// A cargo command running in its own process group, its output collected; killed
/// (the whole group) if dropped while it runs.
struct Build {
    what: String,
    child: Option<Child>,
    stdout: Option<thread::JoinHandle<Vec<u8>>>,
    stderr: Option<thread::JoinHandle<Vec<u8>>>,
}

fn reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

impl Build {
    fn spawn(cmd: &mut Command, what: &str) -> Build {
        use std::os::unix::process::CommandExt;
        let mut child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdout = reader(child.stdout.take().unwrap());
        let stderr = reader(child.stderr.take().unwrap());
        Build {
            what: what.into(),
            child: Some(child),
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Whether cargo is still running.
    fn running(&mut self) -> bool {
        matches!(self.child.as_mut().unwrap().try_wait(), Ok(None))
    }

    /// Waits for cargo (at most [`BUILD_DEADLINE`]) and returns what it printed.
    fn finish(mut self) -> Output {
        use wait_timeout::ChildExt;
        let mut child = self.child.take().unwrap();
        let status: Option<ExitStatus> = child.wait_timeout(BUILD_DEADLINE).unwrap();
        if status.is_none() {
            kill_group(&mut child);
        }
        let out = Output {
            status: match status {
                Some(s) => s,
                None => child.wait().unwrap(),
            },
            stdout: self.stdout.take().unwrap().join().unwrap(),
            stderr: self.stderr.take().unwrap().join().unwrap(),
        };
        assert!(
            status.is_some(),
            "{} still ran after {BUILD_DEADLINE:?} and was killed\n{}",
            self.what,
            output_text(&out)
        );
        out
    }
}

fn kill_group(child: &mut Child) {
    // SAFETY: kill(2) with a negative pid signals that process group only: the cargo
    // started as its leader, and the rustc and swarmcc processes under it.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Build {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                kill_group(&mut child);
            }
        }
    }
}

/// Runs a cargo command to the end (at most [`BUILD_DEADLINE`]).
fn run_cargo(cmd: &mut Command, what: &str) -> Output {
    Build::spawn(cmd, what).finish()
}

fn output_text(out: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a built program and returns its standard output.
fn run_program(path: &Path) -> String {
    let out = run(&mut Command::new(path));
    assert_success(&out, &format!("{}", path.display()));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One client job summary: `job <crate>: <how>`.
#[derive(Debug, Clone)]
struct Job {
    krate: String,
    how: String,
}

impl Job {
    /// Served remotely: `remote on <host>[slot] ok …`.
    fn remote_ok(&self) -> bool {
        self.ok_after("remote on ")
    }

    /// Served by the host's farm cache: `farm cache hit on <host>[slot] ok …`.
    fn farm_hit(&self) -> bool {
        self.ok_after("farm cache hit on ")
    }

    /// `<how> <host>[slot] ok …`.
    fn ok_after(&self, how: &str) -> bool {
        self.how
            .strip_prefix(how)
            .is_some_and(|rest| rest.split_whitespace().nth(1) == Some("ok"))
    }
}

/// The job summaries of a client log (`swarmcc[pid] job <crate>: …`), without cargo's
/// probes (`-vV`, `--print`, the target-info crate `___`), which compile nothing: the
/// client names those `rustc` or `___`.
fn jobs(client_log: &str) -> Vec<Job> {
    client_log
        .lines()
        .filter_map(|l| l.split_once("] ").map(|(_, msg)| msg))
        .filter_map(|msg| msg.strip_prefix("job "))
        .filter_map(|rest| rest.split_once(": "))
        .filter(|(krate, _)| !["___", "rustc"].contains(krate))
        .map(|(krate, how)| Job {
            krate: krate.into(),
            how: how.into(),
        })
        .collect()
}

fn read_log(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Whether the client log has `job <krate>: remote on … ok`.
fn remote_in(client_log: &str, krate: &str) -> bool {
    jobs(client_log)
        .iter()
        .any(|j| j.krate == krate && j.remote_ok())
}

/// The summary lines of `krate`, for failure messages.
fn summaries_of(client_log: &str, krate: &str) -> Vec<String> {
    jobs(client_log)
        .into_iter()
        .filter(|j| j.krate == krate)
        .map(|j| format!("job {}: {}", j.krate, j.how))
        .collect()
}

/// The words of a log line, without surrounding punctuation.
fn words(line: &str) -> impl Iterator<Item = &str> {
    line.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-')))
}

/// The server's COMPILE_OK lines naming rustc.
fn rustc_ok_lines(server_log: &str) -> Vec<&str> {
    rustc_lines(server_log, "COMPILE_OK")
}

/// The server's job lines with `result` (`COMPILE_OK`, `CACHE_HIT`) naming rustc.
fn rustc_lines<'a>(server_log: &'a str, result: &str) -> Vec<&'a str> {
    server_log
        .lines()
        .filter(|l| l.contains(result) && words(l).any(|w| w == "rustc"))
        .collect()
}

/// Whether the server logged a COMPILE_OK rustc job for `krate`.
fn server_compiled(server_log: &str, krate: &str) -> bool {
    rustc_ok_lines(server_log)
        .iter()
        .any(|l| words(l).any(|w| w == krate))
}

/// The server log once it has a COMPILE_OK rustc line for each of `crates` (a job is
/// logged after its reply is out: the build can finish first), or as it is after
/// [`PATIENCE`].
fn server_log_naming(server: &Swarmccd, crates: &[&str]) -> String {
    eventually(
        || server.log_text(),
        |log| crates.iter().all(|k| server_compiled(log, k)),
    )
}

/// `rustc job <crate>: sent X of Y bytes (n of m files)`, as (crate, X, Y).
fn sent_lines(client_log: &str) -> Vec<(String, u64, u64)> {
    client_log
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("rustc job ")? + "rustc job ".len()..];
            let (krate, rest) = rest.split_once(": sent ")?;
            let mut w = rest.split_whitespace();
            let sent = w.next()?.parse().ok()?;
            (w.next()? == "of").then_some(())?;
            let total = w.next()?.parse().ok()?;
            Some((krate.to_owned(), sent, total))
        })
        .collect()
}

/// serde with its derive and serde_json, `cargo build` then `cargo test`: the program
/// round-trips JSON, the test passes, and most crates — among them the proc-macro
/// serde_derive and the fixture that uses it — compiled on the server.
#[test]
fn serde_derive_graph_builds_on_the_farm() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_rustc_server(tmp.path());
    let proj = project(tmp.path(), "rust-serde");
    let farm = Farm::new(tmp.path(), &server);
    let target = tmp.path().join("target");

    let build_log = tmp.path().join("client-build.log");
    let started = Instant::now();
    // Debian's distccmon-text watches the build: rustc jobs show by crate name, on
    // the server's host and slot.
    let done = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (done, distcc_dir) = (done.clone(), farm.distcc_dir.clone());
        thread::spawn(move || {
            let mut seen = Vec::new();
            while !done.load(Ordering::SeqCst) {
                let out = Command::new("distccmon-text")
                    .env("DISTCC_DIR", &distcc_dir)
                    .output();
                if let Ok(out) = out {
                    seen.extend(
                        String::from_utf8_lossy(&out.stdout)
                            .lines()
                            .map(str::to_owned),
                    );
                }
                thread::sleep(Duration::from_millis(30));
            }
            seen
        })
    };
    let out = run_cargo(
        &mut farm.cargo(&proj, &target, &build_log, &["build", "--locked"]),
        "cargo build of rust-serde through swarmcc",
    );
    done.store(true, Ordering::SeqCst);
    let monitor_lines = monitor.join().unwrap();
    assert_success(&out, "cargo build of rust-serde through swarmcc");
    let shown = |krate: &str| {
        monitor_lines.iter().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() >= 4 && w[1] == "Compile" && w[2] == krate && w[3].starts_with("127.0.0.1[")
        })
    };
    assert!(
        shown("syn") || shown("serde_derive") || shown("serde_core"),
        "distccmon-text never showed a rustc job by crate name on the server:\n{}",
        monitor_lines.join("\n")
    );
    eprintln!(
        "serde build through the farm: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(run_program(&target.join("debug/serde-fixture")), SERDE_LINE);

    let client = read_log(&build_log);
    let all = jobs(&client);
    let remote: Vec<&Job> = all.iter().filter(|j| j.remote_ok()).collect();
    let server_log = server_log_naming(&server, &["serde_derive", "serde_fixture", "syn"]);
    let context = || {
        format!(
            "{}\nclient log:\n{client}\nserver log:\n{server_log}",
            output_text(&out)
        )
    };
    // serde-fixture's graph is 18 rustc compiles (6 of them build scripts).
    assert!(
        all.len() >= 12,
        "the client logged {} job summaries, expected one per rustc compile\n{}",
        all.len(),
        context()
    );
    assert!(
        remote.len() * 10 >= all.len() * 6,
        "only {} of {} rustc jobs ran remotely (want at least 60%):\nlocal ones: {:#?}\n{}",
        remote.len(),
        all.len(),
        all.iter()
            .filter(|j| !j.remote_ok())
            .map(|j| format!("job {}: {}", j.krate, j.how))
            .collect::<Vec<_>>(),
        context()
    );
    for krate in ["serde_derive", "serde_fixture"] {
        assert!(
            remote_in(&client, krate),
            "{krate} did not compile remotely: {:?}\n{}",
            summaries_of(&client, krate),
            context()
        );
        assert!(
            server_compiled(&server_log, krate),
            "no COMPILE_OK rustc line for {krate} in the server log\n{}",
            context()
        );
    }
    let ok_lines = rustc_ok_lines(&server_log).len();
    assert!(
        ok_lines >= remote.len(),
        "{} remote jobs on the client but {ok_lines} COMPILE_OK rustc lines on the server\n{}",
        remote.len(),
        context()
    );
    // What went over the wire: one line per remote job, and less than the inputs in all
    // (a tiny job can send more than its inputs: compression frames and headers).
    let sent = sent_lines(&client);
    assert!(
        sent.len() >= remote.len(),
        "{} `rustc job …: sent X of Y bytes` lines for {} remote jobs\n{}",
        sent.len(),
        remote.len(),
        context()
    );
    let (sent_bytes, input_bytes) = sent
        .iter()
        .fold((0, 0), |(x, y), (_, sx, sy)| (x + sx, y + sy));
    assert!(
        sent_bytes < input_bytes,
        "sent {sent_bytes} bytes for {input_bytes} bytes of inputs\n{}",
        context()
    );
    eprintln!(
        "serde build: {} of {} rustc jobs remote, sent {sent_bytes} of {input_bytes} bytes; \
         not remote: {:?}",
        remote.len(),
        all.len(),
        all.iter()
            .filter(|j| !j.remote_ok())
            .map(|j| format!("job {}: {}", j.krate, j.how))
            .collect::<Vec<_>>()
    );

    // cargo test: the test harness of the fixture, built on the same farm.
    let test_log = tmp.path().join("client-test.log");
    let out = run_cargo(
        &mut farm.cargo(&proj, &target, &test_log, &["test", "--locked"]),
        "cargo test of rust-serde through swarmcc",
    );
    assert_success(&out, "cargo test of rust-serde through swarmcc");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("test tests::json_round_trip ... ok")
            && stdout.contains("test result: ok. 1 passed"),
        "{}",
        output_text(&out)
    );
    let client = read_log(&test_log);
    assert!(
        remote_in(&client, "serde_fixture"),
        "the test harness did not compile remotely: {:?}\nclient log:\n{client}\nserver log:\n{}",
        summaries_of(&client, "serde_fixture"),
        server.log_text()
    );
}

/// A build script generating code and data into OUT_DIR, `cargo:rustc-env` and
/// `cargo:rustc-cfg`, include!/include_str!/include_bytes!, a module file and
/// CARGO_PKG_VERSION: all of it reaches the remote rustc (the program prints it), the
/// library and the binary compiled remotely, and cargo ran the build script itself.
#[test]
fn build_script_out_dir_and_includes_reach_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_rustc_server(tmp.path());
    let proj = project(tmp.path(), "rust-outdir");
    let farm = Farm::new(tmp.path(), &server);
    let target = tmp.path().join("target");
    let client_log = tmp.path().join("client.log");
    let ppid_file = tmp.path().join("build-script-ppid");

    let mut cmd = farm.cargo(&proj, &target, &client_log, &["build", "--locked"]);
    cmd.env("OUTDIR_FIXTURE_PPID_FILE", &ppid_file);
    let build = Build::spawn(&mut cmd, "cargo build of rust-outdir through swarmcc");
    let cargo_pid = build.pid();
    let out = build.finish();
    assert_success(&out, "cargo build of rust-outdir through swarmcc");
    assert_eq!(run_program(&target.join("debug/outdir-show")), OUTDIR_LINE);

    let client = read_log(&client_log);
    let server_log = server_log_naming(&server, &["outdir_fixture", "outdir_show"]);
    let context = || {
        format!(
            "{}\nclient log:\n{client}\nserver log:\n{server_log}",
            output_text(&out)
        )
    };
    for krate in ["outdir_fixture", "outdir_show"] {
        assert!(
            remote_in(&client, krate),
            "{krate} did not compile remotely: {:?}\n{}",
            summaries_of(&client, krate),
            context()
        );
        assert!(
            server_compiled(&server_log, krate),
            "no COMPILE_OK rustc line for {krate}\n{}",
            context()
        );
    }

    // The build script ran here, as cargo's own child: never through swarmcc.
    let ppid: u32 = fs::read_to_string(&ppid_file)
        .expect("the build script wrote its parent's pid")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        ppid,
        cargo_pid,
        "the build script's parent was not the cargo the test ran\n{}",
        context()
    );
    assert!(
        !server_log.contains("build-script-build"),
        "the server saw the build script's executable\n{}",
        context()
    );
}

/// A workspace of a library (with a registry dependency, unit tests, an integration test
/// and a doctest) and a binary using it: `cargo build` and `cargo test --workspace` pass,
/// the binary runs, and the members and their test harnesses compiled remotely.
#[test]
fn workspace_members_build_and_test_on_the_farm() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_rustc_server(tmp.path());
    let proj = project(tmp.path(), "rust-workspace");
    let farm = Farm::new(tmp.path(), &server);
    let target = tmp.path().join("target");

    let build_log = tmp.path().join("client-build.log");
    let out = run_cargo(
        &mut farm.cargo(
            &proj,
            &target,
            &build_log,
            &["build", "--workspace", "--locked"],
        ),
        "cargo build of rust-workspace through swarmcc",
    );
    assert_success(&out, "cargo build of rust-workspace through swarmcc");
    assert_eq!(
        run_program(&target.join("debug/wsbin")),
        "wsbin: 1x1 2x1 4x1 6x1 9x1\n"
    );
    let client = read_log(&build_log);
    let server_log = server_log_naming(&server, &["wslib", "wsbin", "itoa"]);
    for krate in ["wslib", "wsbin", "itoa"] {
        assert!(
            remote_in(&client, krate) && server_compiled(&server_log, krate),
            "{krate} did not compile remotely: {:?}\n{}\nclient log:\n{client}\nserver log:\n{server_log}",
            summaries_of(&client, krate),
            output_text(&out)
        );
    }

    let test_log = tmp.path().join("client-test.log");
    let out = run_cargo(
        &mut farm.cargo(
            &proj,
            &target,
            &test_log,
            &["test", "--workspace", "--locked"],
        ),
        "cargo test --workspace of rust-workspace through swarmcc",
    );
    assert_success(&out, "cargo test --workspace through swarmcc");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for (what, want) in [
        (
            "wslib's unit tests",
            "test tests::tally_counts_by_length ... ok",
        ),
        (
            "wslib's unit tests",
            "test tests::render_joins_pairs ... ok",
        ),
        ("wsbin's unit test", "test tests::line_has_prefix ... ok"),
        ("the integration test", "test tally_then_render ... ok"),
        ("the doctest", "length_tally (line 5) ... ok"),
    ] {
        assert!(
            stdout.contains(want),
            "{what}: no `{want}`\n{}",
            output_text(&out)
        );
    }
    assert_eq!(
        stdout.matches("test result: ok.").count(),
        4,
        "four test runs (two unit, one integration, the doctests)\n{}",
        output_text(&out)
    );
    // The three test harnesses (wslib and wsbin with --test, tests/wslib_api.rs).
    let client = read_log(&test_log);
    for krate in ["wslib", "wsbin", "wslib_api"] {
        assert!(
            remote_in(&client, krate),
            "the {krate} test harness did not compile remotely: {:?}\nclient log:\n{client}\nserver log:\n{}",
            summaries_of(&client, krate),
            server.log_text()
        );
    }
}

/// The server dies (SIGKILL) once it has compiled two crates of the serde build: the
/// jobs after that run locally (fallback is on by default) and the build succeeds.
#[test]
fn server_killed_mid_build_falls_back_to_local() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_rustc_server(tmp.path());
    let proj = project(tmp.path(), "rust-serde");
    let farm = Farm::new(tmp.path(), &server);
    let target = tmp.path().join("target");
    let client_log = tmp.path().join("client.log");

    let mut build = Build::spawn(
        &mut farm.cargo(&proj, &target, &client_log, &["build", "--locked"]),
        "cargo build of rust-serde through swarmcc",
    );
    // Two compiles done on the server, and cargo still busy: a long wait, since the
    // first ones come after cargo's probes and build-script compiles on a loaded box.
    let deadline = Instant::now() + BUILD_DEADLINE;
    let ok_count = |log: &str| rustc_ok_lines(log).len();
    loop {
        let log = server.log_text();
        if ok_count(&log) >= 2 {
            break;
        }
        assert!(
            build.running(),
            "cargo ended before the server compiled two crates\nclient log:\n{}\nserver log:\n{log}",
            read_log(&client_log)
        );
        assert!(
            Instant::now() < deadline,
            "the server compiled fewer than two crates in {BUILD_DEADLINE:?}\nserver log:\n{log}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        build.running(),
        "cargo finished before the server could be killed: nothing tested\nclient log:\n{}",
        read_log(&client_log)
    );
    let log_at_kill = read_log(&client_log).len();
    let Swarmccd {
        guard,
        log: server_log_path,
        ..
    } = server;
    drop(guard); // SIGKILL to the server's process group, reaped.

    let out = build.finish();
    let client = read_log(&client_log);
    let context = || {
        format!(
            "{}\nclient log:\n{client}\nserver log:\n{}",
            output_text(&out),
            read_log(&server_log_path)
        )
    };
    assert!(
        out.status.success(),
        "the build failed after the server was killed\n{}",
        context()
    );
    assert_eq!(run_program(&target.join("debug/serde-fixture")), SERDE_LINE);
    // Jobs summarized after the kill ran here (fell back, or never tried the dead host).
    let after = jobs(client.get(log_at_kill..).unwrap_or(""));
    assert!(
        after.iter().any(|j| !j.remote_ok()),
        "no job ran locally after the server was killed: {after:#?}\n{}",
        context()
    );
    // And the farm was in use before: the jobs the server logged reached the client.
    assert!(
        jobs(&client).iter().any(Job::remote_ok),
        "no job ran remotely before the kill\n{}",
        context()
    );
}

/// The files of a build worth comparing: everything in `deps/` and the build scripts'
/// executables (`build/<pkg>-<hash>/build_script_build-<hash>`), by path below `debug/`.
fn artifacts(debug: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(debug.join("deps")).unwrap().flatten() {
        if entry.file_type().unwrap().is_file() {
            let name = format!("deps/{}", entry.file_name().to_string_lossy());
            files.insert(name, fs::read(entry.path()).unwrap());
        }
    }
    for dir in fs::read_dir(debug.join("build")).unwrap().flatten() {
        for entry in fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("build_script_build") && entry.file_type().unwrap().is_file() {
                let key = format!("build/{}/{name}", dir.file_name().to_string_lossy());
                files.insert(key, fs::read(entry.path()).unwrap());
            }
        }
    }
    files
}

/// How two versions of a file differ: sizes, differing bytes, first difference.
fn difference(a: &[u8], b: &[u8]) -> String {
    let common = a.len().min(b.len());
    let differing = (0..common).filter(|&i| a[i] != b[i]).count();
    let first = (0..common).find(|&i| a[i] != b[i]).unwrap_or(common);
    format!(
        "farm {} bytes, local {} bytes, {differing} of the first {common} bytes differ \
         (+{} past the shorter), first at offset {first:#x}",
        a.len(),
        b.len(),
        a.len().abs_diff(b.len())
    )
}

/// The same crate built through the farm and then locally, into the same target path:
/// the library's .rlib/.rmeta, the binary, the dep-info files and the build script's
/// executable are byte for byte the same.
#[test]
fn farm_outputs_are_byte_identical_to_local_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_rustc_server(tmp.path());
    let proj = project(tmp.path(), "rust-outdir");
    let farm = Farm::new(tmp.path(), &server);
    let target = tmp.path().join("target");
    let client_log = tmp.path().join("client.log");

    let out = run_cargo(
        &mut farm.cargo(&proj, &target, &client_log, &["build", "--locked"]),
        "cargo build of rust-outdir through swarmcc",
    );
    assert_success(&out, "cargo build of rust-outdir through swarmcc");
    let client = read_log(&client_log);
    for krate in ["outdir_fixture", "outdir_show"] {
        assert!(
            remote_in(&client, krate),
            "{krate} did not compile remotely, so there is nothing to compare: {:?}\n\
             client log:\n{client}\nserver log:\n{}",
            summaries_of(&client, krate),
            server.log_text()
        );
    }
    let farm_files = artifacts(&target.join("debug"));

    let out = run_cargo(&mut cargo_cmd(&proj, &target, &["clean"]), "cargo clean");
    assert_success(&out, "cargo clean");
    let out = run_cargo(
        &mut cargo_cmd(&proj, &target, &["build", "--locked"]),
        "cargo build of rust-outdir, local",
    );
    assert_success(&out, "cargo build of rust-outdir, local");
    let local_files = artifacts(&target.join("debug"));
    assert_eq!(run_program(&target.join("debug/outdir-show")), OUTDIR_LINE);

    assert_eq!(
        farm_files.keys().collect::<Vec<_>>(),
        local_files.keys().collect::<Vec<_>>(),
        "the two builds made different files"
    );
    for want in ["liboutdir_fixture-", "outdir_show-"] {
        assert!(
            farm_files
                .keys()
                .any(|k| k.starts_with(&format!("deps/{want}"))),
            "no deps/{want}* among {:?}",
            farm_files.keys()
        );
    }
    let differences: Vec<String> = farm_files
        .iter()
        .filter(|(name, bytes)| local_files[*name] != **bytes)
        .map(|(name, bytes)| format!("{name}: {}", difference(bytes, &local_files[name])))
        .collect();
    assert!(
        differences.is_empty(),
        "{} of {} files differ between the farm build and the local one:\n{}",
        differences.len(),
        farm_files.len(),
        differences.join("\n")
    );
}

/// `swarmcc --run` and the cargo command `cargo_build`, in `dir`.
fn through_run(cargo_build: &Command, dir: &Path) -> Command {
    let mut cmd = Command::new(SWARMCC);
    cmd.arg("--run")
        .arg(cargo_build.get_program())
        .args(cargo_build.get_args())
        .current_dir(dir);
    for (k, v) in cargo_build.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd
}

/// `swarmcc --run cargo build`: the build's summary counts the rustc jobs, as many
/// remote as the server logged COMPILE_OK for.
#[test]
fn run_summary_counts_rustc_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_rustc_server(tmp.path());
    let proj = project(tmp.path(), "rust-outdir");
    let farm = Farm::new(tmp.path(), &server);
    let target = tmp.path().join("target");
    let client_log = tmp.path().join("client.log");
    let cargo_build = farm.cargo(&proj, &target, &client_log, &["build", "--locked"]);
    let mut cmd = through_run(&cargo_build, &proj);
    let out = run_cargo(&mut cmd, "swarmcc --run cargo build of rust-outdir");
    assert_success(&out, "swarmcc --run cargo build of rust-outdir");
    let (summary, _) = run_summary(&out);
    let remote: usize = summary
        .split(": ")
        .nth(2)
        .and_then(|counts| counts.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no remote count in {summary:?}"));
    assert!(
        remote >= 3,
        "the lib, the bin and the build script's compile: {summary}"
    );
    let count = |log: &str| rustc_ok_lines(log).len();
    let log = eventually(|| server.log_text(), |l| count(l) >= remote);
    assert_eq!(count(&log), remote, "{summary}\nserver log:\n{log}");
}

/// The server's CACHE_HIT lines naming rustc.
fn rustc_hit_lines(server_log: &str) -> Vec<&str> {
    rustc_lines(server_log, "CACHE_HIT")
}

/// The summary of `swarmcc --run`'s build, and its cache line.
fn run_summary(out: &Output) -> (String, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = stderr
        .lines()
        .find(|l| l.contains("build finished in"))
        .unwrap_or_else(|| panic!("no summary:\n{stderr}"))
        .to_owned();
    let cache = stderr
        .lines()
        .find(|l| l.contains("swarmcc:   cache:"))
        .unwrap_or_default()
        .to_owned();
    (summary, cache)
}

/// A caching swarmccd with a stats port, the cache in `tmp`; the server, its stats port
/// and the cache's directory.
fn caching_server(tmp: &Path) -> (Swarmccd, u16, PathBuf) {
    let stats = free_port();
    let cache = farm_cache_dir(tmp);
    let stats_arg = stats.to_string();
    let server = start_rustc_server_with(
        tmp,
        &[
            "--cache-dir",
            cache.to_str().unwrap(),
            "--stats",
            "--stats-port",
            &stats_arg,
        ],
    );
    server.log_when(|l| l.contains(&format!("statistics on 127.0.0.1:{stats}")));
    (server, stats, cache)
}

/// Builds rust-outdir through `swarmcc --run` after a `cargo clean`, logging to
/// `client_log`: what cargo printed, how long it took.
fn clean_build(farm: &Farm, proj: &Path, target: &Path, client_log: &Path) -> (Output, f64) {
    let out = run_cargo(&mut cargo_cmd(proj, target, &["clean"]), "cargo clean");
    assert_success(&out, "cargo clean");
    let cargo_build = farm.cargo(proj, target, client_log, &["build", "--locked"]);
    let started = Instant::now();
    let out = run_cargo(
        &mut through_run(&cargo_build, proj),
        "swarmcc --run cargo build of rust-outdir",
    );
    let secs = started.elapsed().as_secs_f64();
    assert_success(&out, "swarmcc --run cargo build of rust-outdir");
    assert_eq!(run_program(&target.join("debug/outdir-show")), OUTDIR_LINE);
    (out, secs)
}

/// Whether the client log has `job <krate>: farm cache hit on … ok`.
fn farm_hit_in(client_log: &str, krate: &str) -> bool {
    jobs(client_log)
        .iter()
        .any(|j| j.krate == krate && j.farm_hit())
}

/// The farm cache for rustc: a crate graph built, cleaned and built again through a
/// caching swarmccd is answered from the cache — no rustc runs on the server, the
/// client and `--run`'s summary say farm hits, the outputs are byte-identical — and
/// once every entry is damaged, the third build compiles everything again (never a
/// damaged entry served), with the same outputs.
#[test]
fn a_second_rustc_build_is_served_by_the_farm_cache_and_damage_is_compiled_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, stats, cache) = caching_server(tmp.path());
    let proj = project(tmp.path(), "rust-outdir");
    let farm = Farm::new(tmp.path(), &server);
    let target = tmp.path().join("target");
    let crates = ["outdir_fixture", "outdir_show"];

    let log1 = tmp.path().join("client1.log");
    let (out1, cold) = clean_build(&farm, &proj, &target, &log1);
    let client1 = read_log(&log1);
    for krate in crates {
        assert!(
            remote_in(&client1, krate),
            "{krate}: {:?}\n{client1}",
            summaries_of(&client1, krate)
        );
    }
    let server_log = server_log_naming(&server, &crates);
    let compiled = rustc_ok_lines(&server_log).len();
    let (summary, cache_line) = run_summary(&out1);
    assert!(
        cache_line.contains(&format!("0 farm hits, {compiled} misses")),
        "{summary}\n{cache_line}\n{server_log}"
    );
    let m = eventually(
        || metrics(stats),
        |m| sample(m, "swarmccd_cache_stored_total") == Some(compiled as u64),
    );
    assert_eq!(
        sample(&m, "swarmccd_cache_stored_total"),
        Some(compiled as u64),
        "{m}"
    );
    let first = artifacts(&target.join("debug"));

    let log2 = tmp.path().join("client2.log");
    let (out2, warm) = clean_build(&farm, &proj, &target, &log2);
    let client2 = read_log(&log2);
    let server_log = eventually(
        || server.log_text(),
        |l| rustc_hit_lines(l).len() >= compiled,
    );
    assert_eq!(rustc_hit_lines(&server_log).len(), compiled, "{server_log}");
    assert_eq!(
        rustc_ok_lines(&server_log).len(),
        compiled,
        "rustc ran on the server for the second build:\n{server_log}"
    );
    for krate in crates {
        assert!(
            farm_hit_in(&client2, krate),
            "{krate}: {:?}\n{client2}",
            summaries_of(&client2, krate)
        );
    }
    let (summary, cache_line) = run_summary(&out2);
    assert!(
        cache_line.contains(&format!("{compiled} farm hits, 0 misses")),
        "{summary}\n{cache_line}"
    );
    let m = metrics(stats);
    assert_eq!(
        sample(&m, "swarmccd_cache_hits_total"),
        Some(compiled as u64),
        "{m}"
    );
    assert_eq!(
        first,
        artifacts(&target.join("debug")),
        "hit outputs differ"
    );
    eprintln!("rust-outdir through swarmccd: cold {cold:.2}s, warm (farm cache) {warm:.2}s");

    // Every entry damaged in place: each is found out on read, removed and compiled.
    let entries: Vec<PathBuf> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(entries.len(), compiled, "{entries:?}");
    for path in &entries {
        let mut bytes = fs::read(path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x5a;
        fs::write(path, bytes).unwrap();
    }
    let log3 = tmp.path().join("client3.log");
    clean_build(&farm, &proj, &target, &log3);
    let client3 = read_log(&log3);
    let server_log = eventually(
        || server.log_text(),
        |l| rustc_ok_lines(l).len() >= 2 * compiled,
    );
    assert_eq!(
        rustc_ok_lines(&server_log).len(),
        2 * compiled,
        "{server_log}"
    );
    assert_eq!(rustc_hit_lines(&server_log).len(), compiled, "{server_log}");
    for krate in crates {
        assert!(remote_in(&client3, krate), "{krate}:\n{client3}");
    }
    let m = metrics(stats);
    assert_eq!(
        sample(&m, "swarmccd_cache_corrupt_total"),
        Some(compiled as u64),
        "{m}"
    );
    let warned = server_log
        .lines()
        .filter(|l| l.contains("farm cache:") && l.contains("compiling it again"))
        .count();
    assert_eq!(warned, compiled, "{server_log}");
    assert_eq!(
        first,
        artifacts(&target.join("debug")),
        "recompiled outputs differ"
    );
}

/// `--no-cache`: a build, cleaned and built again, compiles every crate on the server
/// both times, and no cache directory is made (neither the default one nor the
/// fallback in the server's TMPDIR).
#[test]
fn no_cache_never_stores_rustc_results() {
    let tmp = tempfile::tempdir().unwrap();
    let xdg = tmp.path().join("xdg");
    let server = start_rustc_server_env(
        tmp.path(),
        &["--no-cache"],
        &[("XDG_CACHE_HOME", xdg.to_str().unwrap())],
    );
    let proj = project(tmp.path(), "rust-outdir");
    let farm = Farm::new(tmp.path(), &server);
    let target = tmp.path().join("target");
    let crates = ["outdir_fixture", "outdir_show"];
    for round in 1..=2 {
        let log = tmp.path().join(format!("client{round}.log"));
        let (out, _) = clean_build(&farm, &proj, &target, &log);
        let client = read_log(&log);
        for krate in crates {
            assert!(
                remote_in(&client, krate),
                "round {round}, {krate}:\n{client}"
            );
        }
        let (summary, cache_line) = run_summary(&out);
        // Nothing was looked up: the summary has no cache line.
        assert!(cache_line.is_empty(), "{summary}\n{cache_line}");
    }
    let log = eventually(
        || server.log_text(),
        |l| {
            crates.iter().all(|k| {
                rustc_ok_lines(l)
                    .iter()
                    .filter(|x| words(x).any(|w| w == *k))
                    .count()
                    >= 2
            })
        },
    );
    for krate in crates {
        let n = rustc_ok_lines(&log)
            .iter()
            .filter(|l| words(l).any(|w| w == krate))
            .count();
        assert_eq!(n, 2, "{krate} compiled twice:\n{log}");
    }
    assert!(rustc_hit_lines(&log).is_empty(), "{log}");
    assert!(!log.contains("in the farm cache as"), "{log}");
    assert!(!xdg.join("swarmccd").exists());
    let server_tmp = tmp.path().join(format!("swarmccd-tmp-{}", server.port));
    let made: Vec<String> = fs::read_dir(&server_tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("swarmccd-cache-"))
        .collect();
    assert!(made.is_empty(), "{made:?}");
}
