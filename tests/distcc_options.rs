//! Every option of Debian's distccd and distcc 3.4, taken from the installed binaries'
//! own `--help` and man pages at test time (so an option missing here fails the test),
//! run through swarmccd and swarmcc: none is a usage error, each does what distcc's does
//! or is ignored with a warning, and the README's option tables name every one.
//! Also the detached start-up that scripts rely on: the pid file exists the moment
//! `swarmccd --daemon` returns, and `--lifetime` ends each daemon by itself.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Options of distccd's option table (`src/dopt.c`) that neither its `--help` nor its
/// man page lists, but which scripts use (`--lifetime` by test harnesses).
const DISTCCD_TABLE_ONLY: &[&str] = &["--lifetime", "--no-fifo", "--make-me-a-botnet"];

/// One option as documented: its long (or only) name, its short alias, and the
/// placeholder of its value, if it takes one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Opt {
    name: String,
    short: Option<String>,
    value: Option<String>,
}

/// The options in a `--help` or man page text: lines starting with `-x, --name VALUE`,
/// `--name, -x VALUE`, `--name=VALUE` or `--name VALUE`.
fn documented_options(text: &str) -> Vec<Opt> {
    let mut out: Vec<Opt> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if !trimmed.starts_with('-') || trimmed.starts_with("---") {
            continue;
        }
        // The option part ends at two spaces (the description column) or the line end.
        let head = trimmed.split("  ").next().unwrap_or_default();
        let mut name = None;
        let mut short = None;
        let mut value = None;
        for word in head.split([' ', ',']).filter(|w| !w.is_empty()) {
            if let Some(long) = word.strip_prefix("--") {
                let (n, v) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (long, None),
                };
                name = Some(format!("--{n}"));
                if let Some(v) = v {
                    value = Some(v.to_string());
                }
            } else if word.starts_with('-') && word.len() == 2 {
                short = Some(word.to_string());
            } else if word.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
                value = Some(word.to_string());
            } else {
                break;
            }
        }
        let name = match (name, &short) {
            (Some(n), _) => n,
            (None, Some(s)) => s.clone(),
            (None, None) => continue,
        };
        if let Some(seen) = out.iter_mut().find(|o| o.name == name) {
            seen.short = seen.short.take().or(short);
            seen.value = seen.value.take().or(value);
        } else {
            out.push(Opt { name, short, value });
        }
    }
    out
}

fn output_text(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn man_page(name: &str) -> String {
    let text = output_text(
        Command::new("man")
            .args(["-P", "cat", name])
            .env("MANWIDTH", "200")
            .env_remove("MAN_KEEP_FORMATTING"),
    );
    // Overstrike (bold as `X\bX`, underline as `_\bX`), should man format anyway.
    let mut plain = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    assert!(
        plain.contains("OPTIONS"),
        "man {name} is installed:\n{plain}"
    );
    plain
}

/// distccd's options: its `--help`, its man page, and the table-only ones.
fn distccd_options() -> Vec<Opt> {
    let help = output_text(Command::new("distccd").arg("--help"));
    let mut opts = documented_options(&help);
    assert!(
        opts.len() >= 20,
        "distccd --help lists its options: {opts:?}\n{help}"
    );
    for o in documented_options(&man_page("distccd")) {
        if !opts.iter().any(|k| k.name == o.name) {
            opts.push(o);
        }
    }
    for name in DISTCCD_TABLE_ONLY {
        if !opts.iter().any(|k| k.name == *name) {
            let value = (*name == "--lifetime").then(|| "SECONDS".to_string());
            opts.push(Opt {
                name: name.to_string(),
                short: None,
                value,
            });
        }
    }
    opts
}

/// distcc's client options: its `--help` (`--help`, `--version`, `--show-hosts`, `-j`,
/// `--scan-includes`, `--show-principal`).
fn distcc_options() -> Vec<Opt> {
    let help = output_text(Command::new("distcc").arg("--help"));
    // The host-spec forms in the same help text (`--randomize`) are not options.
    let opts: Vec<Opt> = documented_options(&help)
        .into_iter()
        .filter(|o| o.name != "--randomize")
        .collect();
    assert!(opts.len() >= 5, "distcc --help lists its options: {opts:?}");
    opts
}

/// A value for an option, by the placeholder distccd's help gives it.
fn value_for(opt: &Opt, dir: &Path, port: u16) -> String {
    let placeholder = opt.value.as_deref().unwrap_or_default();
    match (opt.name.as_str(), placeholder) {
        ("--nice", _) => "3".into(),
        ("--log-level", _) => "info".into(),
        ("--jobs", _) => "3".into(),
        ("--user", _) => "nobody".into(),
        ("--port", _) => port.to_string(),
        ("--stats-port", _) => free_port().to_string(),
        ("--listen", _) => "127.0.0.1".into(),
        ("--allow", _) => "127.0.0.1/32".into(),
        ("--job-lifetime" | "--lifetime", _) => "30".into(),
        (name, "FILE") => dir
            .join(format!("{}.file", name.trim_start_matches('-')))
            .to_string_lossy()
            .into_owned(),
        (name, other) => panic!("no test value for {name} {other}"),
    }
}

/// Runs swarmccd in the foreground with `args`, a lifetime of `lifetime` seconds and a
/// port of its own, and returns its output once it has exited by itself.
fn swarmccd_until_exit(args: &[String], lifetime: &str) -> (Output, Duration) {
    let mut cmd = Command::new(SWARMCCD);
    cmd.args(args)
        .args(["--no-detach", "--log-stderr", "--lifetime", lifetime])
        .stdin(Stdio::null());
    let started = Instant::now();
    let out = output_within(&mut cmd, Duration::from_secs(60));
    (out, started.elapsed())
}

/// The command's output once it exits by itself; fails the test (killing it) if it runs
/// past `limit`. Output goes through files, so a chatty process never blocks on a pipe.
fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    cmd.stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap());
    let what = format!("{cmd:?}");
    let mut guard = spawn_group(cmd, "swarmccd");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(status)) = guard.child.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not exit by itself within {limit:?}:\n{}",
            fs::read_to_string(&err_path).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: fs::read(&out_path).unwrap(),
        stderr: fs::read(&err_path).unwrap(),
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_not_a_usage_error(what: &str, out: &Output) {
    let all = text(out);
    assert!(
        !all.contains("unexpected argument")
            && !all.contains("unknown option")
            && !all.contains("Usage: swarmccd [OPTIONS]\n\nFor more information")
            && out.status.code() != Some(101),
        "{what} is a usage error: {:?}\n{all}",
        out.status
    );
}

#[test]
fn help_texts_are_parsed_as_distcc_writes_them() {
    let opts = documented_options(
        "    -P, --pid-file FILE        save daemon process id to file\n\
         \x20   --jobs, -j LIMIT           maximum tasks at any time\n\
         \x20   --log-level=LEVEL          set detail level for log file\n\
         \x20     levels: critical, error, warning, notice, info, debug\n\
         \x20   --inetd                    serve client connected to stdin\n\
         \x20  -j                         Show the concurrency level\n",
    );
    let want = |name: &str, short: Option<&str>, value: Option<&str>| Opt {
        name: name.into(),
        short: short.map(Into::into),
        value: value.map(Into::into),
    };
    assert_eq!(
        opts,
        [
            want("--pid-file", Some("-P"), Some("FILE")),
            want("--jobs", Some("-j"), Some("LIMIT")),
            want("--log-level", None, Some("LEVEL")),
            want("--inetd", None, None),
            want("-j", Some("-j"), None),
        ]
    );
}

#[test]
fn every_distccd_option_is_accepted_by_swarmccd() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = distccd_options();
    let names: Vec<&str> = opts.iter().map(|o| o.name.as_str()).collect();
    for must in [
        "--lifetime",
        "--allow-private",
        "--zeroconf",
        "--auth",
        "--whitelist",
    ] {
        assert!(
            names.contains(&must),
            "{must} is among distccd's options: {names:?}"
        );
    }
    // Each option alone with a value, and each documented short form the same way.
    let mut runs: Vec<(String, Vec<String>)> = Vec::new();
    for opt in &opts {
        let forms = std::iter::once(opt.name.as_str()).chain(opt.short.as_deref());
        for form in forms {
            match opt.name.as_str() {
                // Print and exit.
                "--help" | "--version" | "--show-principal" => {
                    let out = Command::new(SWARMCCD).arg(form).output().unwrap();
                    assert_eq!(out.status.code(), Some(0), "{form}: {}", text(&out));
                    assert!(!out.stdout.is_empty(), "{form} prints something");
                    continue;
                }
                // One connection on stdin: here an empty one, which must end it.
                "--inetd" => {
                    let out = Command::new(SWARMCCD)
                        .args([form, "--log-stderr"])
                        .stdin(Stdio::null())
                        .output()
                        .unwrap();
                    assert_not_a_usage_error(form, &out);
                    continue;
                }
                _ => {}
            }
            let port = free_port();
            let mut args = vec![form.to_string()];
            if opt.value.is_some() {
                args.push(value_for(opt, tmp.path(), port));
            }
            if opt.name != "--port" {
                args.extend(["--port".to_string(), port.to_string()]);
            }
            if opt.name == "--stats" {
                args.extend(["--stats-port".to_string(), free_port().to_string()]);
            }
            runs.push((form.to_string(), args));
        }
    }
    // A few at a time: each server lives two seconds.
    for batch in runs.chunks(6) {
        thread::scope(|s| {
            for (form, args) in batch {
                s.spawn(move || {
                    let (out, took) = swarmccd_until_exit(args, "2");
                    assert_not_a_usage_error(form, &out);
                    assert_eq!(
                        out.status.code(),
                        Some(0),
                        "swarmccd {} ended with {:?} after {took:?}:\n{}",
                        args.join(" "),
                        out.status,
                        text(&out)
                    );
                });
            }
        });
    }
}

#[test]
fn distccd_options_with_a_meaning_do_it() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = tmp.path().join("d.log");
    let args: Vec<String> = [
        "--jobs",
        "3",
        "--port",
        &port.to_string(),
        "--log-file",
        log.to_str().unwrap(),
        "--log-level",
        "info",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut cmd = Command::new(SWARMCCD);
    cmd.args(&args)
        .args(["--no-detach", "--lifetime", "3"])
        .stdin(Stdio::null());
    let started = Instant::now();
    let waiter = thread::spawn(move || output_within(&mut cmd, Duration::from_secs(60)));
    assert!(
        wait_for_port(port, Duration::from_secs(20)),
        "--port {port} listens"
    );
    let out = waiter.join().unwrap();
    let took = started.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    assert!(took >= Duration::from_secs(3), "--lifetime 3 ran {took:?}");
    let log = fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("allowing up to 3 active jobs"),
        "--jobs: {log}"
    );
    assert!(log.contains("--lifetime of 3s reached"), "{log}");

    // An unknown --log-level is distccd's warning, not an error; --auth alone refuses
    // everyone (no client can authenticate) and says so.
    let (out, _) = swarmccd_until_exit(
        &[
            "--log-level".into(),
            "loud".into(),
            "--auth".into(),
            "--port".into(),
            free_port().to_string(),
        ],
        "1",
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("invalid --log-level argument \"loud\""),
        "{all}"
    );
    assert!(all.contains("--auth") && all.contains("refused"), "{all}");

    // A log file that cannot be opened: distccd's phrase, and the server still runs.
    let out = Command::new(SWARMCCD)
        .args(["--no-detach", "--lifetime", "1", "--port"])
        .arg(free_port().to_string())
        .args(["--log-file", "/nonexistent/dir/d.log"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("failed to open logfile /nonexistent/dir/d.log"),
        "{}",
        text(&out)
    );

    // --whitelist and --blacklist together are distccd's usage error too.
    let out = Command::new(SWARMCCD)
        .args(["--whitelist", "/x", "--blacklist", "/y", "--no-detach"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(101), "{}", text(&out));
}

#[test]
fn show_principal_and_version_match_distcc() {
    for (ours, theirs, var) in [
        (SWARMCCD, "distccd", "DISTCCD_PRINCIPAL"),
        (SWARMCC, "distcc", "DISTCC_PRINCIPAL"),
    ] {
        for value in [None, Some("host/build.example@EXAMPLE")] {
            let run = |bin: &str| {
                let mut cmd = Command::new(bin);
                cmd.arg("--show-principal").env_remove(var);
                if let Some(v) = value {
                    cmd.env(var, v);
                }
                cmd.output().unwrap()
            };
            let (a, b) = (run(ours), run(theirs));
            assert_eq!(a.status.code(), b.status.code(), "{ours} --show-principal");
            assert_eq!(
                String::from_utf8_lossy(&a.stdout),
                String::from_utf8_lossy(&b.stdout),
                "{ours} --show-principal with {var}={value:?}"
            );
        }
        // --version: distcc's first two lines' shape, then our own lines.
        let ours_v =
            String::from_utf8(Command::new(ours).arg("--version").output().unwrap().stdout)
                .unwrap();
        let theirs_v = String::from_utf8(
            Command::new(theirs)
                .arg("--version")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let shape = |t: &str| -> (usize, String, bool) {
            let mut lines = t.lines();
            let first = lines.next().unwrap_or_default();
            let second = lines.next().unwrap_or_default();
            (
                first.split(' ').count(),
                second
                    .split(')')
                    .nth(1)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
                second.starts_with("  (protocols "),
            )
        };
        assert_eq!(
            shape(&ours_v),
            shape(&theirs_v),
            "{ours_v}\n---\n{theirs_v}"
        );
        let name = Path::new(ours).file_name().unwrap().to_str().unwrap();
        assert!(ours_v.starts_with(&format!("{name} ")), "{ours_v}");
    }
}

#[test]
fn every_distcc_client_option_is_accepted_by_swarmcc() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("x.c");
    fs::write(tmp.path().join("x.h"), "#define X 1\n").unwrap();
    fs::write(
        &src,
        "#include <stdio.h>\n#include \"x.h\"\nint x(void){return X;}\n",
    )
    .unwrap();
    let ddir = tmp.path().join("ddir");
    let hosts = "127.0.0.1:9/3 localhost/2 @build.example/5";
    let opts = distcc_options();
    let mut seen = Vec::new();
    for opt in &opts {
        let name = opt.name.as_str();
        seen.push(name.to_string());
        let mut args = vec![name.to_string()];
        if name == "--scan-includes" {
            args.extend(["gcc".into(), "-c".into(), "x.c".into()]);
        }
        let run_it = |bin: &str| {
            Command::new(bin)
                .args(&args)
                .current_dir(tmp.path())
                .env("DISTCC_HOSTS", hosts)
                .env("DISTCC_DIR", &ddir)
                .env_remove("DISTCC_PRINCIPAL")
                .output()
                .unwrap()
        };
        let out = run_it(SWARMCC);
        assert_not_a_usage_error(name, &out);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        match name {
            "-j" => {
                // The same concurrency as distcc computes for the same list.
                let theirs = run_it("distcc");
                assert_eq!(stdout, String::from_utf8_lossy(&theirs.stdout), "-j");
            }
            "--show-hosts" => {
                let theirs = run_it("distcc");
                let specs: Vec<&str> = stdout
                    .lines()
                    .map(|l| l.split_whitespace().next().unwrap_or_default())
                    .collect();
                let want: Vec<&str> = std::str::from_utf8(&theirs.stdout)
                    .unwrap()
                    .lines()
                    .collect();
                assert_eq!(
                    specs, want,
                    "each line starts with distcc's spec:\n{stdout}"
                );
            }
            "--scan-includes" => {
                assert_eq!(out.status.code(), Some(0), "{}", text(&out));
                let x = fs::canonicalize(&src).unwrap();
                assert!(
                    stdout.contains(&format!("FILE      {}\n", x.display()))
                        && stdout.contains("/stdio.h\n")
                        && stdout.contains("/x.h\n"),
                    "{stdout}"
                );
                assert!(!tmp.path().join("x.o").exists(), "nothing is compiled");
            }
            _ => {
                assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out));
                assert!(!stdout.is_empty(), "{name} prints something");
            }
        }
    }
    for must in [
        "--help",
        "--version",
        "--show-hosts",
        "-j",
        "--scan-includes",
        "--show-principal",
    ] {
        assert!(
            seen.iter().any(|s| s == must),
            "{must} in distcc --help: {seen:?}"
        );
    }
    // Without an operand, and for a command that would not be distributed: distcc's
    // exit codes (101 and 100), and a reason.
    let out = Command::new(SWARMCC)
        .arg("--scan-includes")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(101), "{}", text(&out));
    let out = Command::new(SWARMCC)
        .args(["--scan-includes", "gcc", "x.c", "-o", "x"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(100), "{}", text(&out));
    assert!(text(&out).contains("not be distributed"), "{}", text(&out));
}

#[test]
fn readme_lists_every_distcc_and_distccd_option() {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let server_table = section(&readme, "### distccd's options in swarmccd");
    for opt in distccd_options() {
        let listed = |table: &str, name: &str| {
            table.contains(&format!("`{name}")) || table.contains(&format!(", {name}"))
        };
        assert!(
            listed(server_table, &opt.name),
            "the README's distccd option table lists {}",
            opt.name
        );
    }
    let client_table = section(&readme, "### distcc's options in swarmcc");
    for opt in distcc_options() {
        assert!(
            client_table.contains(&format!("`{}", opt.name))
                || client_table.contains(&format!(", {}", opt.name)),
            "the README's distcc option table lists {}",
            opt.name
        );
    }
}

/// The README text from `heading` to the next heading of the same or a higher level.
fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has a section {heading:?}"));
    let level = heading.chars().take_while(|&c| c == '#').count();
    let body = &readme[start + heading.len()..];
    let end = body
        .match_indices("\n#")
        .find(|(i, _)| body[i + 1..].chars().take_while(|&c| c == '#').count() <= level)
        .map_or(body.len(), |(i, _)| i);
    &body[..end]
}

/// A CPU hog beside the test, as on a shared CI machine: two busy shell loops.
struct Hog {
    _loops: Vec<ProcessGuard>,
}

impl Hog {
    fn start() -> Hog {
        let busy = || {
            spawn_group(
                Command::new("sh").args(["-c", "while :; do :; done"]),
                "cpu hog",
            )
        };
        Hog {
            _loops: vec![busy(), busy()],
        }
    }
}

fn alive(pid: u32) -> bool {
    // A zombie is gone for our purpose: it has exited, only nobody reaped it yet.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next())
        })
        .is_some_and(|state| state != Some('Z'))
}

#[test]
fn detached_daemons_have_their_pid_file_at_return_and_end_after_their_lifetime() {
    let tmp = tempfile::tempdir().unwrap();
    // The daemon drops root: it must be able to remove its pid file when it exits.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let _hog = Hog::start();
    const RUNS: usize = 50;
    const LIFETIME: u64 = 5;
    let mut daemons: Vec<(u32, Instant, PathBuf)> = Vec::new();
    for i in 0..RUNS {
        let pid_file = tmp.path().join(format!("d{i}.pid"));
        let port = free_port();
        let started = Instant::now();
        let out = Command::new(SWARMCCD)
            .args([
                "--daemon",
                "--lifetime",
                &LIFETIME.to_string(),
                "--pid-file",
            ])
            .arg(&pid_file)
            .args(["--port", &port.to_string()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "start {i}: {}", text(&out));
        // The moment the command returns: the pid file is there, names a live
        // process, and the port listens.
        let pid: u32 = fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("start {i}: no pid file at return: {e}"))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("start {i}: pid file content: {e}"));
        assert!(alive(pid), "start {i}: pid {pid} is running");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "start {i}: port {port} listens at return"
        );
        daemons.push((pid, started, pid_file));
    }
    // Each ends by itself, not before its lifetime and within a few seconds after it
    // (the machine is loaded), removing its pid file.
    for (pid, started, pid_file) in daemons {
        let limit = started + Duration::from_secs(LIFETIME + 30);
        while alive(pid) {
            if Instant::now() > limit {
                // SAFETY: kill(2) on a pid we started; the test fails right after.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                panic!(
                    "daemon {pid} still running {:?} after its start",
                    started.elapsed()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        let ran = started.elapsed();
        assert!(
            ran >= Duration::from_secs(LIFETIME) - Duration::from_millis(100),
            "daemon {pid} ended after {ran:?}, before its lifetime"
        );
        assert!(
            !pid_file.exists(),
            "daemon {pid} removed {}",
            pid_file.display()
        );
    }
}

#[test]
fn messages_scripts_grep_for_carry_distccs_phrases() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("x.c"), "int x(void){return 1;}\n").unwrap();
    let dead = format!("127.0.0.1:{}", free_port());
    struct Case<'a> {
        what: &'a str,
        hosts: &'a str,
        env: &'a [(&'a str, &'a str)],
        cc: &'a str,
        /// What distcc prints, and swarmcc must too.
        phrase: &'a str,
    }
    let case = |what, hosts, env, cc, phrase| Case {
        what,
        hosts,
        env,
        cc,
        phrase,
    };
    let cases = [
        case(
            "unreachable host",
            &dead,
            &[],
            "gcc",
            "failed to distribute",
        ),
        case(
            "unreachable host",
            &dead,
            &[],
            "gcc",
            "running locally instead",
        ),
        case("no hosts", "", &[], "gcc", "can't distribute work"),
        case(
            "log file",
            &dead,
            &[("DISTCC_LOG", "/nonexistent/dir/x.log")],
            "gcc",
            "failed to open logfile /nonexistent/dir/x.log",
        ),
        case(
            "compiler",
            &dead,
            &[],
            "no-such-cc",
            "failed to exec no-such-cc",
        ),
    ];
    for (i, c) in cases.iter().enumerate() {
        for bin in ["distcc", SWARMCC] {
            let out = Command::new(bin)
                .args([c.cc, "-c", "x.c", "-o", "x.o"])
                .current_dir(tmp.path())
                .env(
                    "DISTCC_DIR",
                    tmp.path().join(format!("ddir-{i}-{}", bin.len())),
                )
                .env("DISTCC_HOSTS", c.hosts)
                .envs(c.env.iter().copied())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(c.phrase),
                "{bin}, {}: stderr lacks {:?}:\n{err}",
                c.what,
                c.phrase
            );
        }
    }
}
