//! The per-user scheduling agent: one small process per `DISTCC_DIR`, on a UNIX socket,
//! shared by every swarmcc process of every build, that hands out remote and local slots.
//!
//! CONTRACT (the client codes against this now; bodies are being implemented):
//! * A job holds a slot by holding its connection: closing it (or dying) frees the slot
//!   at once, so a killed wrapper never leaks one.
//! * A freed slot goes to the longest waiting request that can use it, immediately (no
//!   polling), first come first served.
//! * The first swarmcc to find no agent starts one (`swarmcc --agent-serve DIR`, detached);
//!   concurrent starters are resolved by a lock file, so exactly one agent runs. It exits
//!   after being idle for a while.
//! * If the agent cannot be reached or started, callers fall back to `slots` lock files:
//!   swarmcc never hangs on the agent.
//! * Monitors (`swarmcc --monitor`) ask it for the whole farm (`Agent::attach`, then
//!   `Agent::farm`: per host the cap, busy slots, queue and last failure; the local
//!   pools; farm-wide counters). They never start an agent.
//!
//! Files: `wire.rs` the line protocol (documented there), `sched.rs` the pure scheduling
//! state, `socket.rs` the agent process (start lock, socket, poll loop), `load.rs` the
//! runnable count. This file is the client side: connecting, starting the agent, and
//! the lease guards.
//!
//! Files in `DISTCC_DIR`: `swarmcc-agent.sock` (mode 0600), `swarmcc-agent.lock` (held
//! with `flock` by the running agent for its whole life), `swarmcc-agent.broken` (set
//! by a client that could not start an agent, so that the next ones do not each wait
//! for it again during the next minute).

use std::fs;
use std::io::{self, Read};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

mod load;
mod sched;
mod socket;
mod wire;

/// How long an agent without connections lingers (`SWARMCC_AGENT_IDLE`, seconds).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30);
/// How long `connect` waits for a freshly started agent.
const START_WAIT: Duration = Duration::from_secs(2);
/// After a failed start, how long clients skip starting and fail at once.
const BROKEN_FOR: Duration = Duration::from_secs(60);
/// Longest wait for a short answer (PONG, STATS) or for a write to the agent.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// The agent's socket in `distcc_dir`.
pub fn socket_path(distcc_dir: &Path) -> PathBuf {
    distcc_dir.join("swarmcc-agent.sock")
}

/// The lock file the running agent holds (`flock`) in `distcc_dir`.
pub fn lock_path(distcc_dir: &Path) -> PathBuf {
    distcc_dir.join("swarmcc-agent.lock")
}

fn broken_marker(distcc_dir: &Path) -> PathBuf {
    distcc_dir.join("swarmcc-agent.broken")
}

/// One `send` without SIGPIPE: a peer that went away is an error, not a signal.
fn send_some(stream: &UnixStream, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`; the fd is owned by `stream`.
    let n = unsafe {
        libc::send(
            stream.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn send_all(stream: &UnixStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match send_some(stream, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads the agent's answer lines from a blocking stream.
struct LineReader<'a> {
    stream: &'a UnixStream,
    buf: Vec<u8>,
    /// When set, reads end at this instant (the stream's read timeout is kept in step).
    deadline: Option<Instant>,
}

impl LineReader<'_> {
    fn new(stream: &UnixStream, deadline: Option<Instant>) -> LineReader<'_> {
        LineReader {
            stream,
            buf: Vec::new(),
            deadline,
        }
    }

    /// Sets the stream's read timeout to what is left until the deadline.
    fn arm(&self) -> io::Result<()> {
        let Some(d) = self.deadline else {
            return Ok(());
        };
        let left = d.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))
    }

    /// The next line. A read timeout (set on the stream) comes back as `WouldBlock` or
    /// `TimedOut`; the agent closing comes back as `UnexpectedEof`.
    fn next_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=end).collect();
                return wire::line_text(&raw)
                    .map(str::to_string)
                    .map_err(|why| io::Error::new(io::ErrorKind::InvalidData, why));
            }
            if self.buf.len() > wire::MAX_LINE + 1 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "agent: line too long",
                ));
            }
            let mut chunk = [0u8; 4096];
            // Re-armed on every read: a signal restarts the read with what is left.
            self.arm()?;
            match (&mut &*self.stream).read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the agent closed the connection",
                    ))
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn protocol_error(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One host a remote request may use: distcc's lock-file stem (`tcp_10.0.0.2_3632`) and
/// the client's `/LIMIT` for it. The agent caps each stem at its limit across clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOffer {
    pub lock_name: String,
    pub limit: u32,
}

/// Which local pool a local request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalKind {
    /// A local compile (non-distributable job, `localhost` host, fallback).
    Compile,
    /// A local preprocessing run for a remote job.
    Preprocess,
}

/// How a finished job went, reported to the agent (for host choice and launcher summaries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobReport {
    /// Compiled remotely on the leased host.
    Remote { elapsed: Duration },
    /// The leased host failed (connect, timeout, protocol…): the agent deprioritises it.
    HostFailed { reason: String },
    /// Compiled locally; `fallback` when a remote attempt failed first; `reason` says why.
    Local { fallback: bool, reason: String },
}

/// A granted remote slot. Dropping it frees the slot.
#[derive(Debug)]
pub struct RemoteLease {
    /// Index into the offered hosts.
    pub host: usize,
    /// Slot number on that host (for the monitor's `host[slot]`).
    pub slot: u32,
    /// The slot is held by holding this connection.
    conn: UnixStream,
}

impl RemoteLease {
    /// Tells the agent how the job went on this host (best effort; errors ignored).
    pub fn report(&mut self, report: &JobReport) {
        let _ = send_all(&self.conn, wire::format_report(report).as_bytes());
    }
}

/// A granted local slot. Dropping it frees the slot.
#[derive(Debug)]
pub struct LocalLease {
    pub slot: u32,
    /// The slot is held by holding this connection.
    conn: UnixStream,
}

impl LocalLease {
    /// Tells the agent how the job went (best effort; errors ignored). Only
    /// `JobReport::Local` fits a local slot; the agent drops the lease on others.
    pub fn report(&mut self, report: &JobReport) {
        let _ = send_all(&self.conn, wire::format_report(report).as_bytes());
    }
}

/// Counters of one build (as tagged by `SWARMCC_BUILD_ID`), for the launcher's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildStats {
    pub remote_ok: u64,
    pub local: u64,
    pub fallbacks: u64,
    /// Fallback and local reasons with their counts (most frequent first).
    pub reasons: Vec<(String, u64)>,
    /// Per host lock name: jobs compiled there.
    pub per_host: Vec<(String, u64)>,
    /// Hosts that failed, with their last failure reason.
    pub failed_hosts: Vec<(String, String)>,
    /// Jobs running right now: remote, local (local compiles; a preprocessing slot is
    /// part of a remote job, not a job of its own).
    pub running_remote: u64,
    pub running_local: u64,
}

/// One host as the agent knows it (answer to FARM), for monitors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FarmHost {
    /// distcc's lock-file stem, e.g. `tcp_10.0.0.2_3632`.
    pub lock_name: String,
    /// The cap set by the current requests (the smallest `/LIMIT` among them); 0 when
    /// no current request names the host.
    pub limit: u32,
    /// Slots held right now.
    pub busy: u32,
    /// Queued requests that could use this host.
    pub waiting: u64,
    /// Recent mean job time on the host, once measured.
    pub mean: Option<Duration>,
    /// Failures in the last minute (they rank the host last).
    pub recent_failures: u64,
    /// How long ago the host last failed, and why.
    pub last_failure: Option<(Duration, String)>,
}

/// A local pool (compile or preprocess) as the agent sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FarmPool {
    /// Cap from the current requests (0 when none).
    pub limit: u32,
    pub busy: u32,
    pub waiting: u64,
}

/// The whole farm, as one agent (one `DISTCC_DIR`) schedules it: the FARM answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FarmInfo {
    /// Sorted by lock name.
    pub hosts: Vec<FarmHost>,
    pub local_compile: FarmPool,
    pub local_cpp: FarmPool,
    /// Remote requests waiting for a slot.
    pub queued_remote: u64,
    /// Farm-wide counters since the agent started, over all builds.
    pub done_remote: u64,
    pub done_local: u64,
    pub fallbacks: u64,
    /// Why jobs ran locally, with counts (most frequent first).
    pub reasons: Vec<(String, u64)>,
}

/// A connection to the agent of one `DISTCC_DIR`.
#[derive(Debug)]
pub struct Agent {
    dir: PathBuf,
    socket: PathBuf,
    self_exe: PathBuf,
    build: Option<String>,
}

impl Agent {
    /// Connects to the agent of `distcc_dir`, starting it (with `self_exe --agent-serve
    /// distcc_dir`) if none runs. `build` tags this process's jobs (`SWARMCC_BUILD_ID`).
    pub fn connect(distcc_dir: &Path, self_exe: &Path, build: Option<&str>) -> io::Result<Agent> {
        fs::create_dir_all(distcc_dir)?;
        // The agent runs in `/` (so it pins no build directory): give it a full path.
        let dir = fs::canonicalize(distcc_dir)?;
        let self_exe = if self_exe.components().count() > 1 {
            std::path::absolute(self_exe)?
        } else {
            self_exe.to_path_buf()
        };
        let agent = Agent {
            socket: socket_path(&dir),
            dir,
            self_exe,
            build: build.and_then(wire::sanitize_build),
        };
        // A path too long for a UNIX socket can never work: say so now rather than
        // after starting an agent that cannot bind.
        // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
        let sun_path_len = unsafe { std::mem::zeroed::<libc::sockaddr_un>() }
            .sun_path
            .len();
        if agent.socket.as_os_str().len() >= sun_path_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is too long for a UNIX socket", agent.socket.display()),
            ));
        }
        // An agent that answers is alive; one that refuses or hangs up (it may be
        // exiting after idling at this very moment) gets a successor.
        if agent.ping().is_err() {
            agent.start()?;
        }
        Ok(agent)
    }

    /// Asks the agent for its process id: a liveness check.
    pub fn ping(&self) -> io::Result<u32> {
        let stream = UnixStream::connect(&self.socket)?;
        stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
        send_all(&stream, b"PING\n")?;
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        let line = LineReader::new(&stream, Some(deadline)).next_line()?;
        wire::parse_pong(&line).map_err(protocol_error)
    }

    /// Starts an agent and waits until it answers.
    fn start(&self) -> io::Result<()> {
        let marker = broken_marker(&self.dir);
        let recently_broken = fs::metadata(&marker)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < BROKEN_FOR);
        if recently_broken {
            return Err(io::Error::other(format!(
                "the agent failed to start less than {} s ago",
                BROKEN_FOR.as_secs()
            )));
        }
        let failed = |e: io::Error| {
            // Re-created rather than rewritten, so its time is surely now.
            let _ = fs::remove_file(&marker);
            let _ = fs::File::create(&marker);
            e
        };
        let args = ["--agent-serve".as_ref(), self.dir.as_os_str()];
        spawn_detached(&self.self_exe, &args).map_err(failed)?;
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        let mut respawned = false;
        loop {
            // Start-up is the one place where polling is acceptable: the new process
            // gives no other signal that it listens.
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
            if self.ping().is_ok() {
                return Ok(());
            }
            let waited = started.elapsed();
            if !respawned && waited >= START_WAIT / 4 {
                // The one we started may have seen a dying agent's socket and left.
                respawned = true;
                spawn_detached(&self.self_exe, &args).map_err(failed)?;
            }
            if waited >= START_WAIT {
                return Err(failed(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the agent for {} did not start", self.dir.display()),
                )));
            }
        }
    }

    /// A new connection (one per request), restarting the agent once if it is gone.
    fn open(&self) -> io::Result<UnixStream> {
        let stream = match UnixStream::connect(&self.socket) {
            Ok(s) => s,
            Err(_) => {
                self.start()?;
                UnixStream::connect(&self.socket)?
            }
        };
        stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
        Ok(stream)
    }

    /// Waits for a remote slot on one of `hosts` (the agent picks the host: most free
    /// capacity, fewest recent failures, fastest recently; `randomize` breaks ties at
    /// random). `Ok(None)` if `timeout` passes first.
    pub fn lease_remote(
        &self,
        hosts: &[HostOffer],
        randomize: bool,
        timeout: Option<Duration>,
    ) -> io::Result<Option<RemoteLease>> {
        // Even a zero timeout lets an immediate grant arrive.
        let deadline = timeout.map(|t| Instant::now() + t.max(Duration::from_millis(1)));
        // Hosts with limit 0 can never be granted; the agent does not accept them.
        let offered: Vec<(usize, HostOffer)> = hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.limit > 0)
            .take(wire::MAX_HOSTS)
            .map(|(i, h)| {
                let mut h = h.clone();
                h.limit = h.limit.min(wire::MAX_LIMIT);
                (i, h)
            })
            .collect();
        if offered.is_empty() {
            return Ok(None);
        }
        let list: Vec<HostOffer> = offered.iter().map(|(_, h)| h.clone()).collect();
        let stream = self.open()?;
        send_all(
            &stream,
            wire::format_remote(self.build.as_deref(), randomize, &list).as_bytes(),
        )?;
        // Now just block in read until GRANT: no polling. On timeout the connection is
        // dropped, which withdraws the request.
        let line = match LineReader::new(&stream, deadline).next_line() {
            Ok(line) => line,
            Err(e) if deadline.is_some() && is_timeout(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let (index, slot) = wire::parse_grant(&line).map_err(protocol_error)?;
        let (host, _) = offered.get(index).ok_or_else(|| {
            protocol_error(format!("agent granted host {index} of {}", offered.len()))
        })?;
        stream.set_read_timeout(None)?;
        Ok(Some(RemoteLease {
            host: *host,
            slot,
            conn: stream,
        }))
    }

    /// Waits for a local slot: at most `limit` of `kind` at once for this user, and, when
    /// `load_limit` is set, none started while the machine's runnable count
    /// (/proc/loadavg field 4) is at or above it (as make -l).
    pub fn lease_local(
        &self,
        kind: LocalKind,
        limit: u32,
        load_limit: Option<f64>,
    ) -> io::Result<LocalLease> {
        if limit == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a local limit of 0 can never be granted",
            ));
        }
        let load_limit = load_limit.filter(|x| x.is_finite() && *x >= 0.0);
        let stream = self.open()?;
        let request = wire::format_local(
            self.build.as_deref(),
            kind,
            limit.min(wire::MAX_LIMIT),
            load_limit,
        );
        send_all(&stream, request.as_bytes())?;
        let line = LineReader::new(&stream, None).next_line()?;
        let (_, slot) = wire::parse_grant(&line).map_err(protocol_error)?;
        Ok(LocalLease { slot, conn: stream })
    }

    /// Connects to the agent of `distcc_dir` only if one runs: a monitor must never
    /// start an agent just to find the farm idle.
    pub fn attach(distcc_dir: &Path) -> io::Result<Agent> {
        let dir = fs::canonicalize(distcc_dir)?;
        let agent = Agent {
            socket: socket_path(&dir),
            dir,
            // Never used: `farm` and `ping` do not start agents.
            self_exe: PathBuf::from("/bin/false"),
            build: None,
        };
        agent.ping()?;
        Ok(agent)
    }

    /// The farm as the agent schedules it (hosts, caps, busy slots, queues, recent
    /// failures, farm-wide counters). Does not start an agent that is gone.
    pub fn farm(&self) -> io::Result<FarmInfo> {
        let stream = UnixStream::connect(&self.socket)?;
        stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
        send_all(&stream, b"FARM\n")?;
        let mut reader = LineReader::new(&stream, Some(Instant::now() + ANSWER_TIMEOUT));
        let mut farm = FarmInfo::default();
        while !wire::parse_farm_line(&reader.next_line()?, &mut farm).map_err(protocol_error)? {}
        Ok(farm)
    }

    /// Counters of a build so far.
    pub fn build_stats(&self, build: &str) -> io::Result<BuildStats> {
        let Some(build) = wire::sanitize_build(build) else {
            return Ok(BuildStats::default());
        };
        let stream = self.open()?;
        send_all(&stream, format!("STATS build={build}\n").as_bytes())?;
        let mut reader = LineReader::new(&stream, Some(Instant::now() + ANSWER_TIMEOUT));
        let mut stats = BuildStats::default();
        while !wire::parse_stats_line(&reader.next_line()?, &mut stats).map_err(protocol_error)? {}
        Ok(stats)
    }
}

/// Starts `self_exe ARGS` (the agent, the zeroconf helper) fully detached: its own
/// session (a terminal's ^C to make does not reach it), stdio on /dev/null, cwd `/`, no
/// inherited descriptors (make's jobserver pipe, a caller's output pipe), and not our
/// child: the pre-exec hook forks once more and the intermediate exits at once, so the
/// process is adopted by init (or a subreaper) and never lingers as a zombie of a
/// long-lived caller.
pub fn spawn_detached(self_exe: &Path, args: &[&std::ffi::OsStr]) -> io::Result<()> {
    let mut cmd = Command::new(self_exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/");
    // SAFETY: the hook runs in the forked child before exec and only makes
    // async-signal-safe calls (fork, _exit, setsid, fcntl, close_range).
    unsafe {
        cmd.pre_exec(|| {
            match libc::fork() {
                -1 => return Err(io::Error::last_os_error()),
                0 => {}
                _ => libc::_exit(0),
            }
            libc::setsid();
            mark_cloexec_from(3);
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    // Reaps the intermediate process; it exits as soon as it has forked.
    child.wait()?;
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec (runs between fork and exec).
fn mark_cloexec_from(first: libc::c_int) {
    #[cfg(target_os = "linux")]
    {
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        // SAFETY: a plain syscall on descriptor numbers; fails harmlessly if unknown.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            )
        };
        if rc == 0 {
            return;
        }
    }
    // SAFETY: sysconf and fcntl on descriptor numbers have no memory effects.
    unsafe {
        let max = libc::sysconf(libc::_SC_OPEN_MAX).clamp(1024, 65536) as libc::c_int;
        for fd in first..max {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// Entry point of the agent process (`swarmcc --agent-serve DIR`): returns an exit code.
/// `SWARMCC_AGENT_IDLE` (seconds, default 30) is how long it stays without connections.
pub fn serve_main(distcc_dir: &Path) -> i32 {
    let idle = std::env::var("SWARMCC_AGENT_IDLE")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .map_or(DEFAULT_IDLE, Duration::from_secs_f64);
    serve(distcc_dir, idle)
}

/// Runs the agent of `distcc_dir` in this thread until it has been without connections
/// for `idle`, or until its socket file is removed (checked every second). Returns 0
/// at once if another agent holds the directory's lock.
pub fn serve(distcc_dir: &Path, idle: Duration) -> i32 {
    socket::serve(distcc_dir, idle)
}
