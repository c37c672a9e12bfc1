//! The client side of the agent: connecting to it (starting one when none answers),
//! the leases that hold a slot by holding a connection, and the queries of monitors
//! (FARM) and the launcher (STATS). Starting the process is `spawn.rs`'s, the line
//! syntax `wire.rs`'s, the blocking I/O `stream.rs`'s.

use std::fs;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::stream::{is_timeout, protocol_error, send_all, LineReader};
use super::{
    socket_path, spawn, wire, BuildStats, CacheOutcome, FarmInfo, HostOffer, JobReport, LocalKind,
};

/// Longest wait for a short answer (PONG, STATS) or for a write to the agent.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

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

    /// Tells the agent what the compile cache did for a job of this build (nothing
    /// without a build id: only the launcher's summary counts it).
    pub fn report_cache(&self, outcome: CacheOutcome) -> io::Result<()> {
        let Some(build) = &self.build else {
            return Ok(());
        };
        let stream = self.open()?;
        send_all(&stream, wire::format_cache(build, outcome).as_bytes())?;
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        let line = LineReader::new(&stream, Some(deadline)).next_line()?;
        if line == "OK" {
            Ok(())
        } else {
            Err(protocol_error(format!("unexpected answer {line:?}")))
        }
    }

    /// Starts an agent and waits until it answers.
    fn start(&self) -> io::Result<()> {
        spawn::start_agent(&self.dir, &self.self_exe, &|| self.ping().is_ok())
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
