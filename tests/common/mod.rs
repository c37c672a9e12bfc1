//! Shared helpers for the integration tests: temp projects, free ports, and servers
//! (swarmccd, Debian's distccd, a stalling fake) that are always stopped by a guard.

#![allow(dead_code)]

pub mod project;
pub mod wire;

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub const SWARMCC: &str = env!("CARGO_BIN_EXE_swarmcc");
pub const SWARMCCD: &str = env!("CARGO_BIN_EXE_swarmccd");

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Copies a directory tree (files and subdirectories only).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    // Tests of one binary run in parallel: never hand out the same port twice, or two
    // servers race for it and one test talks to the other's server.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Waits until `port` accepts connections and `guard`'s process is still alive (a
/// server that failed to bind must not pass for one that listens).
fn wait_for_server(guard: &mut ProcessGuard, port: u16) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while !wait_for_port(port, Duration::from_millis(100)) {
        // One that exited (it could not bind) will never listen.
        if Instant::now() >= deadline || !matches!(guard.child.try_wait(), Ok(None)) {
            return false;
        }
    }
    thread::sleep(Duration::from_millis(50));
    matches!(guard.child.try_wait(), Ok(None))
}

pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// How long a test waits for something that happens by itself (a log line, a counter,
/// a file, a process ending) before it fails. Generous: the machines are small and
/// loaded (others compile beside the tests), and a wait that succeeds returns at once.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The Prometheus text of a swarmccd `--stats` port's `/metrics`.
pub fn metrics(port: u16) -> String {
    use std::io::Write;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// One sample of a metrics text, by its exact name and labels.
pub fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Reads `read()` until `done` accepts it or [`PATIENCE`] runs out, and returns the last
/// reading for the caller to assert on: a server logs a job after its reply is sent, so
/// the client can finish first.
pub fn eventually(read: impl Fn() -> String, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = read();
        if done(&text) || Instant::now() > deadline {
            return text;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads `read()` until `done` accepts the reading, and returns it; fails the test after
/// [`PATIENCE`], naming `what` it waited for and showing the last reading.
pub fn wait_for<T: std::fmt::Debug>(
    what: &str,
    mut read: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = read();
        if done(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "waited {PATIENCE:?} for {what}; last seen:\n{seen:#?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The text of `path` once `ready` holds for it (a file another process appends to: a
/// server log, a count a compiler keeps); fails the test after [`PATIENCE`], showing
/// the text as it was.
pub fn file_when(path: &Path, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if ready(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never got there in {PATIENCE:?}:\n{text}",
            path.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed (SIGKILL) and reaped when dropped, even if the test panics.
pub struct ProcessGuard {
    pub child: Child,
    pub name: String,
}

impl ProcessGuard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        // Servers run as process-group leaders (see `spawn_group`), so killing the
        // group also stops their workers: distccd's preforked children outlive a
        // SIGKILL to the parent alone.
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) with a negative pid signals that process group only.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` as the leader of a new process group, guarded.
pub fn spawn_group(cmd: &mut Command, name: &str) -> ProcessGuard {
    use std::os::unix::process::CommandExt;
    let child = cmd
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    ProcessGuard {
        child,
        name: name.into(),
    }
}

/// A running swarmccd in the foreground, logging to `log`.
pub struct Swarmccd {
    pub guard: ProcessGuard,
    pub port: u16,
    pub log: PathBuf,
}

impl Swarmccd {
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log once `ready` holds for it (the server logs a job after its reply is out,
    /// so a client can finish first); fails the test after [`PATIENCE`].
    pub fn log_when(&self, ready: impl Fn(&str) -> bool) -> String {
        file_when(&self.log, ready)
    }
}

pub fn start_swarmccd(dir: &Path, extra: &[&str]) -> Swarmccd {
    start_swarmccd_env(dir, extra, &[])
}

/// [`start_swarmccd`] with extra environment variables for the server (and so for the
/// compilers it runs).
pub fn start_swarmccd_env(dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Swarmccd {
    start_swarmccd_bin(Path::new(SWARMCCD), dir, extra, envs)
}

/// [`start_swarmccd_env`] with the swarmccd executable at `bin`.
pub fn start_swarmccd_bin(
    bin: &Path,
    dir: &Path,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Swarmccd {
    // A port free a moment ago can be taken meanwhile as the local end of some other
    // connection (ephemeral ports come from the same range): then try another one.
    for attempt in 1.. {
        let port = free_port();
        let log = dir.join(format!("swarmccd-{port}.log"));
        match try_start_swarmccd(bin, dir, port, &log, extra, envs) {
            Some(guard) => return Swarmccd { guard, port, log },
            None => {
                let text = fs::read_to_string(&log).unwrap_or_default();
                assert!(
                    text.contains("Address already in use") && attempt < 5,
                    "swarmccd did not listen on {port}: {text}"
                );
            }
        }
    }
    unreachable!()
}

fn try_start_swarmccd(
    bin: &Path,
    dir: &Path,
    port: u16,
    log: &Path,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Option<ProcessGuard> {
    let tmp = dir.join(format!("swarmccd-tmp-{port}"));
    fs::create_dir_all(&tmp).unwrap();
    // Started as root, swarmccd runs as an unprivileged user: its temp dir must be
    // writable and the test dir searchable by that user.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    // Loopback only, unless the test chooses the address.
    let listen: &[&str] = if extra.contains(&"--listen") {
        &[]
    } else {
        &["--listen", "127.0.0.1"]
    };
    let child = Command::new(bin)
        .args(["--no-detach", "--log-level", "debug"])
        .args(listen)
        .args(["--port", &port.to_string()])
        .arg("--log-file")
        .arg(log)
        .args(extra)
        .envs(envs.iter().copied())
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start swarmccd");
    let mut guard = ProcessGuard {
        child,
        name: "swarmccd".into(),
    };
    wait_for_server(&mut guard, port).then_some(guard)
}

/// Debian's real distccd, in the foreground. It drops root to the `distccd` user, so its
/// log lives in a world-writable directory.
pub struct Distccd {
    pub guard: ProcessGuard,
    pub port: u16,
    pub log: PathBuf,
}

impl Distccd {
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log once `ready` holds for it (distccd too logs a job after its reply).
    pub fn log_when(&self, ready: impl Fn(&str) -> bool) -> String {
        file_when(&self.log, ready)
    }
}

pub fn start_distccd(dir: &Path) -> Distccd {
    start_distccd_env(dir, &[])
}

/// [`start_distccd`] with extra environment variables for the daemon (`DISTCCD_PATH`,
/// `DISTCC_CMDLIST`…), and so for the compilers it runs.
pub fn start_distccd_env(dir: &Path, envs: &[(&str, &str)]) -> Distccd {
    let port = free_port();
    let logdir = dir.join(format!("distccd-{port}"));
    fs::create_dir_all(&logdir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&logdir, fs::Permissions::from_mode(0o1777)).unwrap();
    // The tree above must be searchable by the unprivileged daemon user.
    let mut p = logdir.parent();
    while let Some(d) = p {
        if let Ok(m) = fs::metadata(d) {
            let mode = m.permissions().mode();
            if mode & 0o001 == 0 && d.starts_with(std::env::temp_dir()) {
                let _ = fs::set_permissions(d, fs::Permissions::from_mode(mode | 0o711));
            }
        }
        p = d.parent();
    }
    let log = logdir.join("distccd.log");
    let child = Command::new("distccd")
        .args([
            "--no-detach",
            "--daemon",
            "--allow",
            "127.0.0.1",
            "--listen",
            "127.0.0.1",
        ])
        .args(["-p", &port.to_string(), "-j", "4", "--log-level", "info"])
        .arg("--log-file")
        .arg(&log)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start distccd (apt-get install distcc)");
    let guard = ProcessGuard {
        child,
        name: "distccd".into(),
    };
    let mut guard = guard;
    assert!(
        wait_for_server(&mut guard, port),
        "distccd did not listen on {port}"
    );
    Distccd { guard, port, log }
}

/// A fake server that accepts connections, reads what arrives, and never answers.
pub struct StallServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl StallServer {
    pub fn start() -> StallServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                        let mut buf = [0u8; 4096];
                        let _ = s.read(&mut buf);
                        held.push(s);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        StallServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for StallServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes an executable file (a script): readable and executable by everyone.
pub fn write_exe(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs a command and returns its output, failing the test if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run command")
}

/// A command that runs `swarmcc` with a clean distcc environment rooted in `distcc_dir`.
pub fn swarmcc(distcc_dir: &Path, hosts: &str) -> Command {
    let mut c = Command::new(SWARMCC);
    c.env("DISTCC_DIR", distcc_dir)
        .env("DISTCC_HOSTS", hosts)
        .env_remove("DISTCC_VERBOSE")
        .env_remove("DISTCC_LOG")
        .env_remove("DISTCC_FALLBACK")
        .env_remove("DISTCC_SKIP_LOCAL_RETRY")
        .env_remove("DISTCC_BACKOFF_PERIOD")
        .env_remove("_DISTCC_SAFEGUARD");
    c
}

pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills the scheduling agents swarmcc started for a `DISTCC_DIR` (by pid: processes
/// whose command line is `… --agent-serve <dir>`), so a test leaves nothing running.
pub struct AgentReaper(pub PathBuf);

impl Drop for AgentReaper {
    fn drop(&mut self) {
        let Ok(procs) = fs::read_dir("/proc") else {
            return;
        };
        let want = self.0.as_os_str().as_encoded_bytes().to_vec();
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(cmdline) = fs::read(p.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            if args
                .windows(2)
                .any(|w| w[0] == b"--agent-serve" && w[1] == want.as_slice())
            {
                // SAFETY: kill(2) on one pid whose command line we just matched.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`…), in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The rustc that cargo (and so these tests' builds) runs: the one beside cargo (a
/// rustup toolchain's), else `rustc` on PATH.
pub fn client_rustc() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let beside = Path::new(&cargo).with_file_name("rustc");
    if beside.is_file() {
        beside
    } else {
        PathBuf::from("rustc")
    }
}

/// The rustc a swarmccd started by these tests must be given with `--rustc-toolchain`,
/// or None when it finds the client's toolchain itself. Started as root, swarmccd runs
/// as an unprivileged user, who cannot enter a rustup home under a private directory
/// (root's is /root/.rustup, and /root is mode 0700): then the toolchain's `bin/` and
/// `lib/` are hard-linked (copied across file systems) below `dir` — the same files,
/// so the same `rustc -vV`, at a path that user can reach (rustc finds its sysroot from
/// its own path).
pub fn server_toolchain(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let out = run(Command::new(client_rustc()).args(["--print", "sysroot"]));
    assert_success(&out, "rustc --print sysroot");
    let sysroot = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    if swarmcc::toolchain::rustc::reachable_by_others(&sysroot) {
        return None;
    }
    let copy = dir.join("rust-toolchain");
    for part in ["bin", "lib"] {
        let linked =
            swarmcc::toolchain::rustc::link_tree(&sysroot.join(part), &copy.join(part), true);
        linked.unwrap_or_else(|e| {
            panic!(
                "the server's user cannot reach {}, and linking it below {} failed: {e}",
                sysroot.display(),
                dir.display()
            )
        });
    }
    for d in [dir, &copy] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    Some(copy.join("bin/rustc"))
}
