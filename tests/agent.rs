//! The scheduling agent end to end (issue 3): caps across builds, instant hand-off of a
//! killed holder's slot, one agent for fifty simultaneous starters, FIFO without
//! head-of-line blocking, the load gate, malformed input, and idle exit; and the FARM
//! view monitors read (issue 4).
//!
//! Most tests run the agent in-process (`swarmcc::agent::serve` on a thread, stopped by
//! removing its socket); the start-up test runs the real `swarmcc --agent-serve`.
//! Helper processes are this test binary re-run with `SWARMCC_AGENT_TEST_ROLE` set
//! (see `helper_process`); every process and thread started here is stopped by a guard.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use swarmcc::agent::{self, Agent, HostOffer, JobReport, LocalKind};

const SWARMCC: &str = env!("CARGO_BIN_EXE_swarmcc");
const ROLE_VAR: &str = "SWARMCC_AGENT_TEST_ROLE";

/// A `self_exe` that can start nothing: tests that must not spawn an agent use it.
fn no_spawn() -> &'static Path {
    Path::new("/bin/false")
}

fn offer(name: &str, limit: u32) -> HostOffer {
    HostOffer {
        lock_name: name.to_string(),
        limit,
    }
}

/// An agent served by a thread of this process; stopped (socket removed, thread
/// joined) on drop.
struct InProcessAgent {
    dir: tempfile::TempDir,
    thread: Option<JoinHandle<i32>>,
}

impl InProcessAgent {
    fn start(idle: Duration) -> InProcessAgent {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let thread = thread::spawn(move || agent::serve(&path, idle));
        let me = InProcessAgent {
            dir,
            thread: Some(thread),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(me.socket()).is_err() {
            assert!(Instant::now() < deadline, "in-process agent did not start");
            thread::sleep(Duration::from_millis(5));
        }
        me
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn socket(&self) -> PathBuf {
        agent::socket_path(self.dir.path())
    }

    fn client(&self, build: Option<&str>) -> Agent {
        Agent::connect(self.dir(), no_spawn(), build).unwrap()
    }

    /// Waits for the agent thread to end by itself; its exit code.
    fn join(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while !self.thread.as_ref()?.is_finished() {
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.thread.take().map(|t| t.join().unwrap())
    }
}

impl Drop for InProcessAgent {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // Removing the socket is the agent's stop switch (checked every second).
            let _ = std::fs::remove_file(self.socket());
            let _ = self.join(Duration::from_secs(10));
        }
    }
}

/// A child process killed and reaped on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Re-runs this test binary as a helper process with `role`.
fn helper(role: &str, extra_env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "helper_process",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE_VAR, role)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

/// Not a test of its own: the body of helper processes (a no-op in a normal run).
#[test]
fn helper_process() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let (what, dir) = role.split_once(':').unwrap();
    let dir = Path::new(dir);
    match what {
        // Takes host a's only slot, says so, and holds it until killed.
        "hold" => {
            let a = Agent::connect(dir, no_spawn(), Some("holder")).unwrap();
            let lease = a
                .lease_remote(&[offer("a", 1)], false, None)
                .unwrap()
                .unwrap();
            // libtest may have written "test … " on this line: start a fresh one.
            println!("\nGRANTED {} {}", lease.host, lease.slot);
            std::io::stdout().flush().unwrap();
            thread::sleep(Duration::from_secs(60));
            drop(lease);
        }
        // Connects, starting the real agent if needed, and reports the agent's pid.
        "connect" => match Agent::connect(dir, Path::new(SWARMCC), None).and_then(|a| a.ping()) {
            Ok(pid) => println!("\nPID {pid}"),
            Err(e) => println!("\nFAIL {e}"),
        },
        other => panic!("unknown role {other}"),
    }
}

/// Sends a raw request on a new connection.
fn raw(socket: &Path, text: &[u8]) -> UnixStream {
    let mut s = UnixStream::connect(socket).unwrap();
    s.write_all(text).unwrap();
    s
}

/// The next line from a raw connection within `wait`: `None` on timeout, `Some("")` at
/// end of stream.
fn line_within(s: &UnixStream, wait: Duration) -> Option<String> {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match (&mut &*s).read(&mut byte) {
            Ok(0) => return Some(String::from_utf8(line).unwrap()),
            Ok(_) if byte[0] == b'\n' => return Some(String::from_utf8(line).unwrap()),
            Ok(_) => line.push(byte[0]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                assert!(line.is_empty(), "partial line {line:?}");
                return None;
            }
            // A signal (a child exiting) may interrupt the read: read again.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(String::new()),
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// How long a "nothing comes" check listens.
const QUIET: Duration = Duration::from_millis(150);
/// How long an answer that must come may take: generous, as the machine is loaded (an
/// answer that comes returns at once).
const SOON: Duration = Duration::from_secs(30);

/// Waits until the agent at `dir` has `n` remote requests queued (so that what follows
/// happens to a waiting request, however slowly its thread started).
fn wait_queued(dir: &Path, n: u64) {
    let monitor = Agent::attach(dir).unwrap();
    let deadline = Instant::now() + SOON;
    loop {
        let farm = monitor.farm().unwrap();
        if farm.queued_remote == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never {n} queued requests: {farm:?}"
        );
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn two_builds_never_exceed_a_hosts_limit() {
    let ag = InProcessAgent::start(Duration::from_secs(60));
    let hosts = [offer("tcp_a_3632", 2), offer("tcp_b_3632", 3)];
    let current: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let peak: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    const THREADS: usize = 8;
    const JOBS: usize = 25;
    let mut threads = Vec::new();
    for build in ["build-0", "build-1"] {
        for t in 0..THREADS {
            let client = ag.client(Some(build));
            let hosts = hosts.clone();
            let (current, peak) = (current.clone(), peak.clone());
            threads.push(thread::spawn(move || {
                for j in 0..JOBS {
                    let mut lease = client.lease_remote(&hosts, false, None).unwrap().unwrap();
                    let n = current[lease.host].fetch_add(1, Ordering::SeqCst) + 1;
                    peak[lease.host].fetch_max(n, Ordering::SeqCst);
                    let total = current[2].fetch_add(1, Ordering::SeqCst) + 1;
                    peak[2].fetch_max(total, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(1 + ((t + j) % 3) as u64));
                    // Leave the count before the slot goes, or a successor could be
                    // counted while we still are.
                    current[lease.host].fetch_sub(1, Ordering::SeqCst);
                    current[2].fetch_sub(1, Ordering::SeqCst);
                    lease.report(&JobReport::Remote {
                        elapsed: Duration::from_millis(2),
                    });
                }
            }));
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    let peaks: Vec<usize> = peak.iter().map(|p| p.load(Ordering::SeqCst)).collect();
    eprintln!(
        "peak concurrency: a {} (limit 2), b {} (limit 3), total {}",
        peaks[0], peaks[1], peaks[2]
    );
    assert_eq!(peaks, vec![2, 3, 5], "caps must hold and be used");

    let client = ag.client(None);
    for build in ["build-0", "build-1"] {
        let st = client.build_stats(build).unwrap();
        assert_eq!(st.remote_ok, (THREADS * JOBS) as u64, "{build}: {st:?}");
        assert_eq!(
            st.per_host.iter().map(|(_, n)| n).sum::<u64>(),
            st.remote_ok
        );
        assert_eq!(st.running_remote, 0);
    }
}

#[test]
fn a_killed_holder_frees_its_slot_at_once() {
    let ag = InProcessAgent::start(Duration::from_secs(60));
    let role = format!("hold:{}", ag.dir().display());
    let mut holder = ChildGuard(helper(&role, &[]).spawn().unwrap());
    // Wait for the holder's grant, read on a thread so a stuck helper fails the test.
    let stdout = holder.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("GRANTED") {
                let _ = tx.send(line);
            }
        }
    });
    let granted = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("holder got no slot");
    assert_eq!(granted, "GRANTED 0 0");

    let waiter = raw(&ag.socket(), b"REMOTE build=w randomize=0 hosts=1\na 1\n");
    assert_eq!(line_within(&waiter, QUIET), None, "the slot is held");
    let killed_at = Instant::now();
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(holder.0.id() as i32, libc::SIGKILL) };
    let grant = line_within(&waiter, SOON).expect("waiter got the slot");
    let latency = killed_at.elapsed();
    eprintln!("SIGKILL of the holder → grant to the waiter: {latency:?}");
    assert_eq!(grant, "GRANT 0 0");
    assert!(
        latency < Duration::from_millis(500),
        "hand-off took {latency:?}"
    );
    drop(holder);
    reader.join().unwrap();

    // Hand-off between live clients: drop → grant, many times.
    drop(waiter);
    let client = Arc::new(ag.client(Some("h")));
    let mut samples = Vec::new();
    for _ in 0..50 {
        let held = client
            .lease_remote(&[offer("a", 1)], false, None)
            .unwrap()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let c = client.clone();
        let t = thread::spawn(move || {
            let lease = c
                .lease_remote(&[offer("a", 1)], false, None)
                .unwrap()
                .unwrap();
            let _ = tx.send(Instant::now());
            drop(lease);
        });
        wait_queued(ag.dir(), 1);
        let released = Instant::now();
        drop(held);
        let got = rx.recv_timeout(SOON).expect("no hand-off");
        samples.push(got.saturating_duration_since(released));
        t.join().unwrap();
    }
    samples.sort();
    eprintln!(
        "lease drop → next grant over 50 hand-offs: median {:?}, max {:?}",
        samples[25], samples[49]
    );
    assert!(samples[25] < Duration::from_millis(50));
}

/// The agent processes (`swarmcc --agent-serve DIR`) running for `dir`.
fn agent_pids(dir: &Path) -> Vec<u32> {
    let want = dir.to_str().unwrap();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.contains(&&b"--agent-serve"[..]) && args.contains(&want.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// Kills (SIGKILL) the agent processes of `dir` on drop.
struct AgentProcesses(PathBuf);

impl Drop for AgentProcesses {
    fn drop(&mut self) {
        for pid in agent_pids(&self.0) {
            // SAFETY: signalling an agent this test started (matched by command line).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

#[test]
fn fifty_simultaneous_starters_make_exactly_one_agent() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = std::fs::canonicalize(dir.path()).unwrap();
    let _cleanup = AgentProcesses(dir_path.clone());
    let role = format!("connect:{}", dir_path.display());
    let children: Vec<ChildGuard> = (0..50)
        .map(|_| {
            ChildGuard(
                helper(&role, &[("SWARMCC_AGENT_IDLE", "20")])
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let mut pids = Vec::new();
    for mut c in children {
        let mut out = String::new();
        c.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        let line = out
            .lines()
            .find(|l| l.starts_with("PID ") || l.starts_with("FAIL "))
            .unwrap_or("")
            .to_string();
        let pid: u32 = line
            .strip_prefix("PID ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("a starter failed: {out}"));
        pids.push(pid);
    }
    pids.dedup();
    assert_eq!(
        pids.len(),
        1,
        "all fifty must reach the same agent: {pids:?}"
    );
    let agent_pid = pids[0];
    // Agents that lost the start race leave once they see the winner serve.
    let deadline = Instant::now() + SOON;
    let running = loop {
        let running = agent_pids(&dir_path);
        if running.len() <= 1 || Instant::now() > deadline {
            break running;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(running, vec![agent_pid], "exactly one agent process");

    // The lock is held by that agent.
    let lock = std::fs::File::open(agent::lock_path(&dir_path)).unwrap();
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(rc, -1, "the agent must hold the start lock");

    // A client blocked in a lease gets an error (not a hang) when the agent dies.
    let client = Agent::connect(&dir_path, no_spawn(), None).unwrap();
    let _held = client
        .lease_remote(&[offer("a", 1)], false, None)
        .unwrap()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let c2 = Agent::connect(&dir_path, no_spawn(), None).unwrap();
    let waiter = thread::spawn(move || {
        let r = c2.lease_remote(&[offer("a", 1)], false, None);
        let _ = tx.send(r.map(|l| l.is_some()));
    });
    wait_queued(&dir_path, 1);
    // SAFETY: signalling the agent this test started.
    unsafe { libc::kill(agent_pid as i32, libc::SIGKILL) };
    let r = rx
        .recv_timeout(SOON)
        .expect("waiter hung after the agent died");
    assert!(r.is_err(), "waiter must see an error, got {r:?}");
    waiter.join().unwrap();

    // The dead agent left a stale socket: the next client replaces it with a new agent.
    let deadline = Instant::now() + SOON;
    while agent_pids(&dir_path).contains(&agent_pid) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let again = Agent::connect(&dir_path, Path::new(SWARMCC), None).unwrap();
    let new_pid = again.ping().unwrap();
    assert_ne!(new_pid, agent_pid);
    assert!(again
        .lease_remote(&[offer("a", 1)], false, None)
        .unwrap()
        .is_some());
}

#[test]
fn fifo_order_without_head_of_line_blocking() {
    let ag = InProcessAgent::start(Duration::from_secs(60));
    let sock = ag.socket();
    let holder = raw(&sock, b"REMOTE build=- randomize=0 hosts=1\na 1\n");
    assert_eq!(line_within(&holder, SOON).as_deref(), Some("GRANT 0 0"));
    // Three waiters for a, in this order (each request is fully sent before the next
    // connection opens, so the agent sees them in order).
    let w: Vec<UnixStream> = (0..3)
        .map(|_| raw(&sock, b"REMOTE build=- randomize=0 hosts=1\na 1\n"))
        .collect();
    // A later request for another host is not held up by them.
    let other = raw(&sock, b"REMOTE build=- randomize=0 hosts=2\nb 1\nc 1\n");
    assert_eq!(line_within(&other, SOON).as_deref(), Some("GRANT 0 0"));
    // A request offering a (full) and c (free) gets c.
    let either = raw(&sock, b"REMOTE build=- randomize=0 hosts=2\na 1\nc 1\n");
    assert_eq!(line_within(&either, SOON).as_deref(), Some("GRANT 1 0"));
    for s in &w {
        assert_eq!(line_within(s, QUIET), None);
    }
    drop(holder);
    assert_eq!(line_within(&w[0], SOON).as_deref(), Some("GRANT 0 0"));
    assert_eq!(line_within(&w[1], QUIET), None);
    assert_eq!(line_within(&w[2], QUIET), None);
    let mut w = w.into_iter();
    drop(w.next());
    let w1 = w.next().unwrap();
    let w2 = w.next().unwrap();
    assert_eq!(line_within(&w1, SOON).as_deref(), Some("GRANT 0 0"));
    assert_eq!(line_within(&w2, QUIET), None);
    drop(w1);
    assert_eq!(line_within(&w2, SOON).as_deref(), Some("GRANT 0 0"));
}

#[test]
fn load_gate_holds_a_second_local_job_until_the_first_ends() {
    let ag = InProcessAgent::start(Duration::from_secs(60));
    let client = Arc::new(ag.client(Some("l")));
    // The runnable count is at least 1 (the agent reading it), so a limit of 0.5 is
    // always "too high": only make's first-job rule lets a job start.
    let first = client
        .lease_local(LocalKind::Compile, 4, Some(0.5))
        .unwrap();
    assert_eq!(first.slot, 0);
    let (tx, rx) = mpsc::channel();
    let c = client.clone();
    let second = thread::spawn(move || {
        let lease = c.lease_local(LocalKind::Compile, 4, Some(0.5)).unwrap();
        let _ = tx.send((Instant::now(), lease.slot));
        drop(lease);
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(400)).is_err(),
        "the second local job must wait while the load is too high"
    );
    // Another pool is independent: a preprocessing run may start.
    let cpp = client
        .lease_local(LocalKind::Preprocess, 4, Some(0.5))
        .unwrap();
    assert_eq!(cpp.slot, 0);
    assert_eq!(client.build_stats("l").unwrap().running_local, 1);
    let ended = Instant::now();
    drop(first);
    let (granted, slot) = rx.recv_timeout(SOON).expect("second job never started");
    eprintln!(
        "local hand-off under load gate: {:?}",
        granted.saturating_duration_since(ended)
    );
    assert_eq!(slot, 0);
    second.join().unwrap();
}

#[test]
fn malformed_lines_get_err_and_the_agent_keeps_serving() {
    let ag = InProcessAgent::start(Duration::from_secs(60));
    let sock = ag.socket();
    let mut long = vec![b'x'; 70 * 1024];
    long.push(b'\n');
    let cases: Vec<Vec<u8>> = vec![
        b"HELLO\n".to_vec(),
        b"REMOTE build=x randomize=2 hosts=1\n".to_vec(),
        b"REMOTE build=x randomize=0 hosts=1\nbad host line\n".to_vec(),
        b"REMOTE build=x randomize=0 hosts=1\na 0\n".to_vec(),
        b"LOCAL build=x kind=compile limit=0 load=-\n".to_vec(),
        b"LOCAL build=x kind=compile limit=1 load=nan\n".to_vec(),
        b"REPORT remote 5\n".to_vec(),
        b"\xff\xfe\n".to_vec(),
        long,
    ];
    for case in &cases {
        let s = raw(&sock, case);
        let answer = line_within(&s, SOON).unwrap();
        assert!(
            answer.starts_with("ERR "),
            "{:?} → {answer:?}",
            String::from_utf8_lossy(&case[..case.len().min(40)])
        );
        assert_eq!(
            line_within(&s, SOON).as_deref(),
            Some(""),
            "closed after ERR"
        );
    }
    // A line without end that grows beyond the limit is cut off too.
    let s = raw(&sock, &vec![b'y'; 100 * 1024]);
    assert!(line_within(&s, SOON).unwrap().starts_with("ERR "));

    // A bad REPORT on a lease is an error too, and frees the slot for a waiter.
    let holder = raw(&sock, b"LOCAL build=- kind=compile limit=1 load=-\n");
    assert_eq!(line_within(&holder, SOON).as_deref(), Some("GRANT 0 0"));
    let waiter = raw(&sock, b"LOCAL build=- kind=compile limit=1 load=-\n");
    assert_eq!(line_within(&waiter, QUIET), None);
    // A report that does not fit the lease is ignored: the slot stays held.
    (&holder).write_all(b"REPORT remote 12\n").unwrap();
    assert_eq!(line_within(&holder, QUIET), None);
    assert_eq!(line_within(&waiter, QUIET), None);
    (&holder).write_all(b"REPORT bogus\n").unwrap();
    assert!(line_within(&holder, SOON).unwrap().starts_with("ERR "));
    assert_eq!(line_within(&waiter, SOON).as_deref(), Some("GRANT 0 0"));
    // Talking before the grant is an error.
    let early = raw(
        &sock,
        b"LOCAL build=- kind=compile limit=1 load=-\nREPORT local 0 x\n",
    );
    assert!(line_within(&early, SOON).unwrap().starts_with("ERR "));

    // Still serving.
    let client = ag.client(Some("m"));
    assert!(client.ping().is_ok());
    let mut lease = client
        .lease_remote(&[offer("a", 1)], false, None)
        .unwrap()
        .unwrap();
    lease.report(&JobReport::HostFailed {
        reason: "connect: refused\nsecond line".into(),
    });
    lease.report(&JobReport::Local {
        fallback: true,
        reason: "remote failed".into(),
    });
    drop(lease);
    let st = client.build_stats("m").unwrap();
    assert_eq!(
        st.failed_hosts,
        vec![("a".into(), "connect: refused second line".into())]
    );
    assert_eq!((st.local, st.fallbacks), (1, 1));
    assert_eq!(st.reasons, vec![("remote failed".into(), 1)]);
}

#[test]
fn farm_shows_caps_busy_queues_failures_and_counters() {
    // A monitor never starts an agent.
    let empty = tempfile::tempdir().unwrap();
    assert!(Agent::attach(empty.path()).is_err());
    assert!(!agent::socket_path(empty.path()).exists());

    let ag = InProcessAgent::start(Duration::from_secs(60));
    let client = ag.client(Some("b1"));
    let mut held = client
        .lease_remote(&[offer("tcp_a_3632", 1)], false, None)
        .unwrap()
        .unwrap();
    held.report(&JobReport::HostFailed {
        reason: "cannot connect: Connection refused".into(),
    });
    let mut local = client.lease_local(LocalKind::Compile, 2, None).unwrap();
    local.report(&JobReport::Local {
        fallback: true,
        reason: "tcp_a_3632: refused".into(),
    });
    // A second request for the full host waits in the queue.
    let _waiter = raw(
        &ag.socket(),
        b"REMOTE build=- randomize=0 hosts=1\ntcp_a_3632 1\n",
    );
    let monitor = Agent::attach(ag.dir()).unwrap();
    let deadline = Instant::now() + SOON;
    let farm = loop {
        let f = monitor.farm().unwrap();
        if f.queued_remote == 1
            && f.fallbacks == 1
            && f.hosts.iter().any(|h| h.last_failure.is_some())
        {
            break f;
        }
        assert!(Instant::now() < deadline, "farm never settled: {f:?}");
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(farm.hosts.len(), 1, "{farm:?}");
    let a = &farm.hosts[0];
    assert_eq!(a.lock_name, "tcp_a_3632");
    assert_eq!((a.limit, a.busy, a.waiting), (1, 1, 1));
    let (ago, why) = a.last_failure.clone().unwrap();
    assert_eq!(why, "cannot connect: Connection refused");
    assert!(ago < SOON);
    assert_eq!((farm.local_compile.limit, farm.local_compile.busy), (2, 1));
    assert_eq!((farm.done_local, farm.done_remote), (1, 0));
    assert_eq!(farm.reasons, vec![("tcp_a_3632: refused".to_string(), 1)]);
    // Freed slots show at once: the waiter gets a's slot, the local pool empties.
    drop(held);
    drop(local);
    let deadline = Instant::now() + SOON;
    loop {
        let f = monitor.farm().unwrap();
        if f.queued_remote == 0 && f.local_compile.busy == 0 && f.hosts[0].busy == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "slots not handed on: {f:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn remote_lease_times_out_and_withdraws() {
    let ag = InProcessAgent::start(Duration::from_secs(60));
    let client = ag.client(None);
    let held = client
        .lease_remote(&[offer("a", 1)], false, None)
        .unwrap()
        .unwrap();
    let t = Instant::now();
    let r = client
        .lease_remote(&[offer("a", 1)], false, Some(Duration::from_millis(200)))
        .unwrap();
    assert!(r.is_none());
    assert!(t.elapsed() >= Duration::from_millis(200));
    // Hosts that can never be granted: no wait at all.
    assert!(client
        .lease_remote(&[offer("z", 0)], false, None)
        .unwrap()
        .is_none());
    drop(held);
    // The timed-out request left the queue: the slot is free for the next one.
    let again = client
        .lease_remote(&[offer("a", 1)], false, Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(again.map(|l| (l.host, l.slot)), Some((0, 0)));
}

#[test]
fn idle_agent_exits_and_removes_its_socket() {
    let mut ag = InProcessAgent::start(Duration::from_millis(300));
    let client = ag.client(None);
    let lease = client
        .lease_remote(&[offer("a", 1)], false, None)
        .unwrap()
        .unwrap();
    // Holding a lease is not idle.
    thread::sleep(Duration::from_millis(700));
    assert!(client.ping().is_ok());
    drop(lease);
    let code = ag.join(SOON).expect("agent did not exit when idle");
    assert_eq!(code, 0);
    assert!(!ag.socket().exists(), "socket must be removed");
    // Without an agent and unable to start one, connecting fails quickly: no hang.
    let t = Instant::now();
    assert!(Agent::connect(ag.dir(), no_spawn(), None).is_err());
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

#[test]
fn a_second_agent_for_the_same_dir_steps_aside() {
    let ag = InProcessAgent::start(Duration::from_secs(60));
    let pid_before = ag.client(None).ping().unwrap();
    // The lock is held and the socket answers: the newcomer returns 0 at once.
    assert_eq!(agent::serve(ag.dir(), Duration::from_secs(60)), 0);
    assert_eq!(ag.client(None).ping().unwrap(), pid_before);
}
