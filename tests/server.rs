//! The compile server end to end: raw protocol conversations with `server::run` in
//! process (port 0) and with the `swarmccd` binary, plus a real distcc client when one
//! is installed.
//!
//! Every server is stopped by a guard, also when an assertion fails. When the tests run
//! as root, the binary drops privileges (to `distccd` or `nobody`), so the directories
//! it must use are made accessible to other users.

mod common;

use common::free_port;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::wire::{compile, decode_reply, exchange, request, REFUSED};
use swarmcc::protocol::Version;
use swarmcc::server::{self, Admission, AllowList, ServerConfig};

const SWARMCCD: &str = env!("CARGO_BIN_EXE_swarmccd");
const SOURCE: &str = "int add(int a,int b){return a+b;}\n";

// ---------------------------------------------------------------------------------
// Files

/// A directory tree the tests and a server share: a source, its preprocessed form, the
/// object a local compile makes of it, a whitelist directory and a TMPDIR.
struct Project {
    root: tempfile::TempDir,
}

impl Project {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let p = root.path();
        // Readable by the unprivileged user a root-started swarmccd becomes.
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(p.join("wl")).unwrap();
        for name in ["gcc", "x86_64-linux-gnu-gcc"] {
            symlink("/usr/bin/gcc", p.join("wl").join(name)).unwrap();
        }
        fs::create_dir(p.join("tmp")).unwrap();
        fs::set_permissions(p.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::write(p.join("x.c"), SOURCE).unwrap();
        run_ok(
            Command::new("gcc")
                .current_dir(p)
                .args(["-E", "x.c", "-o", "x.i"]),
        );
        run_ok(
            Command::new("gcc")
                .current_dir(p)
                .args(["-c", "x.i", "-o", "ref.o"]),
        );
        Project { root }
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    fn preprocessed(&self) -> Vec<u8> {
        fs::read(self.path().join("x.i")).unwrap()
    }

    fn reference_object(&self) -> Vec<u8> {
        fs::read(self.path().join("ref.o")).unwrap()
    }

    fn tmp(&self) -> PathBuf {
        self.path().join("tmp")
    }

    fn assert_no_job_dirs(&self) {
        // The farm cache's default directory lives there too (for a server user
        // without a home of its own): it is meant to stay.
        let left: Vec<_> = fs::read_dir(self.tmp())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| !n.to_string_lossy().starts_with("swarmccd-cache-"))
            .collect();
        assert!(left.is_empty(), "temp files left behind: {left:?}");
    }

    /// A fake compiler `name` that records its pid in `<root>/<name>.pid` and sleeps.
    fn slow_compiler(&self, name: &str) -> PathBuf {
        let bin = self.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        let pidfile = self.path().join(format!("{name}.pid"));
        let script = bin.join(name);
        fs::write(
            &script,
            format!("#!/bin/sh\necho $$ > {}\nsleep 30\n", pidfile.display()),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        symlink(&script, self.path().join("wl").join(name)).unwrap();
        pidfile
    }
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

/// Waits until `f` holds; fails the test after [`PATIENCE`], naming `what`.
fn wait_until(what: &str, f: impl FnMut() -> bool) {
    common::wait_for(what, f, |&done| done);
}

/// Connections waiting in the accept queue of the IPv4 socket listening on `port` (the
/// kernel's `rx_queue` of a listener, /proc/net/tcp), `None` if nothing listens there.
fn accept_queue(port: u16) -> Option<u64> {
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields.get(1)?.rsplit(':').next()?;
        // State 0A is LISTEN.
        if u16::from_str_radix(local_port, 16).ok()? != port || *fields.get(3)? != "0A" {
            return None;
        }
        u64::from_str_radix(fields.get(4)?.rsplit(':').next()?, 16).ok()
    })
}

fn process_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

// ---------------------------------------------------------------------------------
// In-process server

struct InProcess {
    port: u16,
    shutdown: Arc<AtomicBool>,
    done: Option<mpsc::Receiver<std::io::Result<()>>>,
}

impl InProcess {
    fn start(project: &Project, tune: impl FnOnce(&mut ServerConfig)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Self::start_on(listener, project, tune)
    }

    fn start_on(
        listener: TcpListener,
        project: &Project,
        tune: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let admission = Admission::whitelist(
            &[project.path().join("wl")],
            vec![
                project.path().join("bin"),
                PathBuf::from("/usr/bin"),
                PathBuf::from("/bin"),
            ],
        );
        let mut cfg = ServerConfig::new(AllowList::loopback(), admission);
        cfg.tmpdir = project.tmp();
        cfg.io_timeout = Duration::from_secs(10);
        tune(&mut cfg);
        let port = listener.local_addr().unwrap().port();
        let shutdown = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&shutdown);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(server::run(listener, cfg, flag));
        });
        InProcess {
            port,
            shutdown,
            done: Some(rx),
        }
    }

    /// Asks the server to stop and waits (bounded) for `run` to return.
    fn stop(&mut self) -> Result<std::io::Result<()>, mpsc::RecvTimeoutError> {
        self.shutdown.store(true, Ordering::SeqCst);
        match self.done.take() {
            Some(rx) => rx.recv_timeout(common::PATIENCE),
            None => Ok(Ok(())),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[test]
fn v1_compile_is_identical_to_a_local_one() {
    let p = Project::new();
    let srv = InProcess::start(&p, |_| {});
    let r = compile(
        srv.port,
        Version::V1,
        &["gcc", "-c", "x.c", "-o", "x.o"],
        &p.preprocessed(),
    );
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stderr.is_empty() && r.stdout.is_empty());
    assert_eq!(r.object, p.reference_object());
    p.assert_no_job_dirs();
}

#[test]
fn v1_reply_bytes_start_like_distccd() {
    let p = Project::new();
    let srv = InProcess::start(&p, |_| {});
    let bytes = exchange(
        srv.port,
        &request(
            Version::V1,
            &["gcc", "-c", "x.c", "-o", "x.o"],
            &p.preprocessed(),
        ),
    );
    assert!(
        bytes.starts_with(b"DONE00000001STAT00000000SERR00000000SOUT00000000DOTO"),
        "{:?}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
    );
}

#[test]
fn v2_lzo_compile_is_identical_too() {
    let p = Project::new();
    let srv = InProcess::start(&p, |_| {});
    for argv in [
        &["gcc", "-c", "x.c", "-o", "x.o"][..],
        &["/usr/bin/gcc", "-c", "x.c", "-ox.o"][..],
    ] {
        let r = compile(srv.port, Version::V2, argv, &p.preprocessed());
        assert_eq!(r.status, 0, "{argv:?}: {}", r.stderr);
        assert_eq!(r.object, p.reference_object(), "{argv:?}");
    }
    p.assert_no_job_dirs();
}

#[test]
fn compile_error_returns_the_status_and_diagnostic() {
    let p = Project::new();
    let srv = InProcess::start(&p, |_| {});
    let r = compile(
        srv.port,
        Version::V1,
        &["gcc", "-c", "bad.c", "-o", "bad.o"],
        b"int f(void) { return 1 }\n",
    );
    assert_eq!(r.status, 0x100);
    assert!(r.stderr.contains("error"), "{}", r.stderr);
    assert!(r.object.is_empty());
    p.assert_no_job_dirs();
}

#[test]
fn refusals_are_answered_with_a_reason() {
    let p = Project::new();
    let srv = InProcess::start(&p, |_| {});
    let cases: &[(&[&str], &str)] = &[
        (
            &["tcc", "-c", "x.c", "-o", "x.o"],
            "compiler \"tcc\" is not in the whitelist",
        ),
        (
            &["/opt/x/gcc", "-c", "x.c", "-o", "x.o"],
            "cannot be an absolute path",
        ),
        (
            &[
                "gcc",
                "-wrapper",
                "/usr/bin/env,sh",
                "-c",
                "x.c",
                "-o",
                "x.o",
            ],
            "\"-wrapper\" is not allowed",
        ),
        (
            &["gcc", "-fplugin=/tmp/evil.so", "-c", "x.c", "-o", "x.o"],
            "\"-fplugin=/tmp/evil.so\" is not allowed",
        ),
        (&["gcc", "-c", "t.c", "-o"], "-o is missing its argument"),
        (&["gcc", "x.c", "-o", "x"], "not a compile"),
        (&["gcc", "-c", "a.c", "b.c"], "more than one input"),
        (&["gcc"], "not a compile"),
    ];
    for (argv, why) in cases {
        for version in [Version::V1, Version::V2] {
            let r = compile(srv.port, version, argv, &p.preprocessed());
            assert_eq!(r.status, REFUSED, "{argv:?}");
            assert!(r.stderr.starts_with("swarmccd: "), "{argv:?}: {}", r.stderr);
            assert!(r.stderr.contains(why), "{argv:?}: {}", r.stderr);
            assert!(r.stderr.ends_with('\n') && r.stderr.lines().count() == 1);
            assert!(r.object.is_empty());
        }
    }
    p.assert_no_job_dirs();
}

#[test]
fn pump_requests_are_read_and_refused() {
    let p = Project::new();
    let srv = InProcess::start(&p, |_| {});
    let r = compile(
        srv.port,
        Version::V3,
        &["gcc", "-c", "x.c", "-o", "x.o"],
        SOURCE.as_bytes(),
    );
    assert_eq!(r.status, REFUSED);
    assert!(r.stderr.contains("pump mode"), "{}", r.stderr);
}

#[test]
fn unreadable_requests_are_closed_without_a_reply() {
    let p = Project::new();
    // An IO timeout far above the bound below: closing "at once" is not waiting it out.
    let srv = InProcess::start(&p, |c| c.io_timeout = Duration::from_secs(300));
    for bytes in [
        &b"DIST00000004"[..],
        &b"DIST00000001ARGC00000000"[..],
        &b"HELLO WORLD!"[..],
        &b"DIST00000001ARGC00000001ARGVffffffff"[..],
    ] {
        let t = Instant::now();
        assert!(exchange(srv.port, bytes).is_empty(), "{bytes:?}");
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "closed at once: {bytes:?} took {:?}",
            t.elapsed()
        );
        // …and the server goes on serving.
        let r = compile(
            srv.port,
            Version::V1,
            &["gcc", "-c", "x.c", "-o", "x.o"],
            &p.preprocessed(),
        );
        assert_eq!(r.object, p.reference_object());
    }
}

#[test]
fn truncated_request_does_not_hold_the_server() {
    let p = Project::new();
    let srv = InProcess::start(&p, |c| c.io_timeout = Duration::from_secs(2));
    let mut bytes = request(
        Version::V1,
        &["gcc", "-c", "x.c", "-o", "x.o"],
        &p.preprocessed(),
    );
    bytes.truncate(bytes.len() - 5);
    let mut stalled = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    stalled.write_all(&bytes).unwrap();
    // Another client is served meanwhile.
    let r = compile(
        srv.port,
        Version::V1,
        &["gcc", "-c", "x.c", "-o", "x.o"],
        &p.preprocessed(),
    );
    assert_eq!(r.object, p.reference_object());
    // The stalled one is dropped after the idle timeout, without a reply.
    stalled
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 16];
    let n = stalled.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    // By the server (2 s of silence), not by our own read timeout.
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    p.assert_no_job_dirs();
}

#[test]
fn client_disconnect_kills_the_compiler() {
    let p = Project::new();
    let pidfile = p.slow_compiler("slowcc");
    // The fake compiler reports its pid in a file outside its job directory, which the
    // sandbox would (rightly) forbid.
    let srv = InProcess::start(&p, |c| c.sandbox = false);
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    s.write_all(&request(
        Version::V1,
        &["slowcc", "-c", "x.c", "-o", "x.o"],
        SOURCE.as_bytes(),
    ))
    .unwrap();
    wait_until("the compiler to start", || read_pid(&pidfile).is_some());
    let pid = read_pid(&pidfile).unwrap();
    assert!(process_alive(pid));
    s.shutdown(Shutdown::Both).unwrap();
    drop(s);
    wait_until("the compiler to be killed", || !process_alive(pid));
    wait_until("the job directory to go", || {
        fs::read_dir(p.tmp()).unwrap().next().is_none()
    });
}

#[test]
fn job_lifetime_kills_a_long_compile() {
    let p = Project::new();
    let pidfile = p.slow_compiler("slowcc");
    let srv = InProcess::start(&p, |c| {
        c.job_lifetime = Some(Duration::from_secs(1));
        c.sandbox = false; // the fake compiler writes its pid outside the job
    });
    let t = Instant::now();
    let r = compile(
        srv.port,
        Version::V2,
        &["slowcc", "-c", "x.c", "-o", "x.o"],
        SOURCE.as_bytes(),
    );
    assert_eq!(r.status, 118 << 8);
    assert!(r.stderr.contains("--job-lifetime"), "{}", r.stderr);
    // Ended by the 1 s lifetime, not by the compiler's own 30 s.
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert!(!process_alive(read_pid(&pidfile).unwrap()));
    p.assert_no_job_dirs();
}

#[test]
fn jobs_limit_serialises_compiles() {
    let p = Project::new();
    let pidfile = p.slow_compiler("slowcc");
    let srv = InProcess::start(&p, |c| {
        c.jobs = 1;
        c.job_lifetime = Some(Duration::from_secs(2));
        c.sandbox = false; // the fake compiler writes its pid outside the job
    });
    let port = srv.port;
    let t = Instant::now();
    let first = thread::spawn(move || {
        compile(
            port,
            Version::V1,
            &["slowcc", "-c", "x.c", "-o", "x.o"],
            b"x",
        )
    });
    wait_until("the first compile", || read_pid(&pidfile).is_some());
    let slow = read_pid(&pidfile).unwrap();
    // With the one slot taken until the first job's 2 s lifetime ends, a normal
    // compile has to wait for it: when its reply comes, the slow compiler is gone, and
    // the lifetime (which began after `t`) is over.
    let r = compile(
        port,
        Version::V1,
        &["gcc", "-c", "x.c", "-o", "x.o"],
        &p.preprocessed(),
    );
    assert_eq!(r.object, p.reference_object());
    assert!(
        !process_alive(slow),
        "the second compile ran beside the first"
    );
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(first.join().unwrap().status, 118 << 8);
}

#[test]
fn ipv4_allow_entries_match_mapped_peers_on_a_dual_stack_listener() {
    let Ok(listener) = TcpListener::bind("[::]:0") else {
        eprintln!("skipped: no IPv6");
        return;
    };
    let p = Project::new();
    let allow = |entry: &str| AllowList::new(server::access::parse_allow(entry).unwrap());
    let srv = InProcess::start_on(listener, &p, |c| c.allow = allow("127.0.0.1"));
    // The server sees ::ffff:127.0.0.1 (distcc 3.4 wrongly denies it, its issue #443).
    let r = compile(
        srv.port,
        Version::V1,
        &["gcc", "-c", "x.c", "-o", "x.o"],
        &p.preprocessed(),
    );
    assert_eq!(r.object, p.reference_object());
    let listener = TcpListener::bind("[::]:0").unwrap();
    let denied = InProcess::start_on(listener, &p, |c| c.allow = allow("127.0.0.2"));
    let got = exchange(
        denied.port,
        &request(
            Version::V1,
            &["gcc", "-c", "x.c", "-o", "x.o"],
            &p.preprocessed(),
        ),
    );
    assert!(got.is_empty());
}

#[test]
fn shutdown_returns_promptly_with_an_idle_client() {
    let p = Project::new();
    let mut srv = InProcess::start(&p, |c| c.io_timeout = Duration::from_secs(300));
    let _idle = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    wait_until("the server to accept the idle connection", || {
        accept_queue(srv.port) == Some(0)
    });
    let t = Instant::now();
    srv.stop().expect("run returned").unwrap();
    // Not the idle client's 300 s IO timeout.
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
}

// ---------------------------------------------------------------------------------
// The binary

/// A swarmccd process, killed (by pid) when dropped.
struct Daemon {
    pid: i32,
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Daemon {
    fn start(p: &Project, args: &[&str]) -> Daemon {
        let port = free_port();
        let log = p.path().join(format!("swarmccd-{port}.log"));
        let child = Command::new(SWARMCCD)
            .args(["--no-detach", "--log-stderr", "--log-level", "debug"])
            .args(["--port", &port.to_string()])
            .args(args)
            .env("TMPDIR", p.tmp())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon {
            pid: child.id() as i32,
            child: Some(child),
            port,
            log,
        };
        d.wait_listening();
        d
    }

    fn wait_listening(&self) {
        self.wait_log("listening on");
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `text` in the log; fails after [`PATIENCE`], showing the log.
    fn wait_log(&self, text: &str) -> String {
        common::file_when(&self.log, |l| l.contains(text))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // By pid only: never a match on a process name.
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

#[test]
fn binary_compiles_and_logs_distccd_job_lines() {
    let p = Project::new();
    let wl = p.path().join("wl");
    let d = Daemon::start(
        &p,
        &[
            "--allow",
            "127.0.0.1",
            "--whitelist-dir",
            wl.to_str().unwrap(),
        ],
    );
    for version in [Version::V1, Version::V2] {
        let r = compile(
            d.port,
            version,
            &["gcc", "-c", "x.c", "-o", "x.o"],
            &p.preprocessed(),
        );
        assert_eq!(r.status, 0, "{}\n{}", r.stderr, d.log_text());
        assert_eq!(r.object, p.reference_object());
    }
    let r = compile(
        d.port,
        Version::V1,
        &["tcc", "-c", "x.c", "-o", "x.o"],
        &p.preprocessed(),
    );
    assert_eq!(r.status, REFUSED);
    // Each job is logged after its reply: wait for all three lines.
    let log = common::file_when(&d.log, |l| {
        l.contains(" OTHER ") && l.matches("COMPILE_OK").count() >= 2
    });
    let ok_line = log
        .lines()
        .find(|l| l.contains("COMPILE_OK"))
        .expect("a COMPILE_OK line");
    assert!(
        ok_line.contains("client: 127.0.0.1:")
            && ok_line.contains(" COMPILE_OK exit:0 sig:0 core:0 ret:0 time:")
            && ok_line.ends_with("ms gcc x.c"),
        "{ok_line}"
    );
    let other = log.lines().find(|l| l.contains(" OTHER ")).unwrap();
    assert!(
        other.contains("exit:110") && other.contains("not in the whitelist"),
        "{other}"
    );
    assert!(log.contains("allowed clients: 127.0.0.1/32"), "{log}");
    p.assert_no_job_dirs();
}

#[test]
fn binary_closes_peers_not_in_the_allow_list() {
    let p = Project::new();
    let wl = p.path().join("wl");
    let d = Daemon::start(
        &p,
        &[
            "--allow",
            "127.0.0.2",
            "--listen",
            "127.0.0.1",
            "--whitelist-dir",
            wl.to_str().unwrap(),
        ],
    );
    let got = exchange(
        d.port,
        &request(
            Version::V1,
            &["gcc", "-c", "x.c", "-o", "x.o"],
            &p.preprocessed(),
        ),
    );
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    d.wait_log("denied by access list");
    assert!(!d.log_text().contains("COMPILE_OK"));
}

#[test]
fn binary_without_allow_serves_this_machine_only() {
    let p = Project::new();
    let wl = p.path().join("wl");
    let d = Daemon::start(&p, &["--whitelist-dir", wl.to_str().unwrap()]);
    let log = d.log_text();
    assert!(log.contains("serving this machine only"), "{log}");
    assert!(
        log.contains(&format!("listening on 127.0.0.1:{}", d.port)),
        "{log}"
    );
    let r = compile(
        d.port,
        Version::V1,
        &["gcc", "-c", "x.c", "-o", "x.o"],
        &p.preprocessed(),
    );
    assert_eq!(r.object, p.reference_object());
}

#[test]
fn binary_detaches_writes_and_removes_its_pid_file() {
    let p = Project::new();
    let run = p.path().join("run");
    fs::create_dir(&run).unwrap();
    fs::set_permissions(&run, fs::Permissions::from_mode(0o1777)).unwrap();
    let pidfile = run.join("swarmccd.pid");
    let log = run.join("swarmccd.log");
    let port = free_port();
    let wl = p.path().join("wl");
    let status = Command::new(SWARMCCD)
        .args([
            "--daemon",
            "--allow",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .arg("--pid-file")
        .arg(&pidfile)
        .arg("--log-file")
        .arg(&log)
        .arg("--whitelist-dir")
        .arg(&wl)
        .env("TMPDIR", p.tmp())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the starting process exits 0");
    wait_until("the pid file", || read_pid(&pidfile).is_some());
    let d = Daemon {
        pid: read_pid(&pidfile).unwrap(),
        child: None,
        port,
        log,
    };
    d.wait_listening();
    let r = compile(
        d.port,
        Version::V1,
        &["gcc", "-c", "x.c", "-o", "x.o"],
        &p.preprocessed(),
    );
    assert_eq!(r.object, p.reference_object());
    run_ok(Command::new("kill").args(["-TERM", &d.pid.to_string()]));
    wait_until("the daemon to exit", || !process_alive(d.pid));
    assert!(!pidfile.exists(), "pid file removed at exit");
    assert!(d.log_text().contains("terminated"));
}

#[test]
fn binary_version_and_help() {
    let out = Command::new(SWARMCCD).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("swarmccd "));
    let out = Command::new(SWARMCCD).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--allow",
        "--allow-private",
        "--listen",
        "--jobs",
        "--nice",
        "--no-detach",
        "--pid-file",
        "--log-file",
        "--user",
        "--job-lifetime",
        "--enable-tcp-insecure",
        "--whitelist-dir",
    ] {
        assert!(help.contains(flag), "--help documents {flag}");
    }
    let out = Command::new(SWARMCCD).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(101));
}

#[test]
fn real_distcc_client_gets_identical_objects() {
    if !Path::new("/usr/bin/distcc").exists() {
        eprintln!("skipped: /usr/bin/distcc is not installed");
        return;
    }
    let p = Project::new();
    let wl = p.path().join("wl");
    let d = Daemon::start(
        &p,
        &[
            "--allow",
            "127.0.0.1",
            "--whitelist-dir",
            wl.to_str().unwrap(),
        ],
    );
    for (i, opts) in ["", ",lzo"].iter().enumerate() {
        let ddir = p.path().join(format!("ddir{i}"));
        fs::create_dir(&ddir).unwrap();
        let out_name = format!("d{i}.o");
        let out = Command::new("/usr/bin/distcc")
            .current_dir(p.path())
            .args(["gcc", "-c", "x.c", "-o", &out_name])
            .env("DISTCC_HOSTS", format!("127.0.0.1:{}/2{opts}", d.port))
            .env("DISTCC_DIR", &ddir)
            .env("DISTCC_FALLBACK", "0")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}\n{}", d.log_text());
        assert_eq!(
            fs::read(p.path().join(&out_name)).unwrap(),
            p.reference_object(),
            "distcc{opts}"
        );
    }
    // The server logs a job once its reply is out, so the client can finish first.
    let log = common::file_when(&d.log, |l| l.matches("COMPILE_OK").count() >= 2);
    assert_eq!(log.matches("COMPILE_OK").count(), 2, "{log}");
    p.assert_no_job_dirs();
}

#[test]
fn binary_inetd_serves_the_connection_on_stdin() {
    use std::os::fd::OwnedFd;
    let p = Project::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server_side, _) = listener.accept().unwrap();
    let stdin = OwnedFd::from(server_side);
    let stdout = stdin.try_clone().unwrap();
    let log = p.path().join("inetd.log");
    let child = Command::new(SWARMCCD)
        .arg("--inetd")
        .arg("--whitelist-dir")
        .arg(p.path().join("wl"))
        .arg("--log-file")
        .arg(&log)
        .env("TMPDIR", p.tmp())
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = Daemon {
        pid: child.id() as i32,
        child: Some(child),
        port: 0,
        log,
    };
    client
        .write_all(&request(
            Version::V2,
            &["gcc", "-c", "x.c", "-o", "x.o"],
            &p.preprocessed(),
        ))
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut bytes = Vec::new();
    client.read_to_end(&mut bytes).unwrap();
    let r = decode_reply(Version::V2, &bytes);
    assert_eq!(r.object, p.reference_object(), "{}", guard.log_text());
    let status = guard.child.take().unwrap().wait().unwrap();
    assert!(status.success());
    assert!(guard.log_text().contains("COMPILE_OK"));
}
