//! The agent process: a single-threaded `poll` loop over the socket that `claim.rs`
//! bound, turning socket events into `sched` calls and writing back its grants. The
//! decisions are `sched.rs`'s; the line syntax is `wire.rs`'s.
//!
//! Why it never polls for slots: a freed slot is a closed connection, which wakes
//! `poll` at once, and the grant is written in the same loop turn. The loop only sets
//! a timeout for (a) local requests held back by the load (the load changes without an
//! event, so it is measured again every 100 ms while such requests wait), (b) the idle
//! exit, and (c) a once-a-second check that our socket file still exists (removing it
//! stops the agent; tests use that as their shutdown switch).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::claim::{claim, file_id};
use super::sched::{ConnId, Request, Sched};
use super::stream::send_some;
use super::wire::{self, Header};
use super::{load, HostOffer};

/// How often a load-blocked local request is reconsidered.
const LOAD_RECHECK: Duration = Duration::from_millis(100);
/// How often the socket file is checked.
const SOCKET_CHECK: Duration = Duration::from_secs(1);
/// Bytes read from one connection per loop turn (keeps one client from hogging).
const READ_CHUNK: usize = 16 * 1024;
/// Unsent output beyond this means the client is not reading: drop it.
const MAX_PENDING_OUTPUT: usize = 1 << 20;

/// Runs the agent of `dir` until it is idle for `idle` or its socket file goes away.
/// Returns 0 also when another agent already serves `dir`.
pub fn serve(dir: &Path, idle: Duration) -> i32 {
    match Server::start(dir) {
        Ok(Some(mut server)) => {
            let code = server.run(idle);
            server.shutdown();
            code
        }
        Ok(None) => 0,
        Err(e) => {
            // Started detached, stderr is /dev/null; in a terminal this helps.
            eprintln!("swarmcc agent: {}: {e}", dir.display());
            1
        }
    }
}

enum Phase {
    /// Waiting for the request's first line.
    Header,
    /// Reading the host lines of a REMOTE request.
    Hosts {
        build: Option<String>,
        randomize: bool,
        want: usize,
        hosts: Vec<HostOffer>,
    },
    /// Request queued in `sched`; the client must stay quiet until GRANT.
    Waiting,
    /// Holding a slot; REPORT lines may come.
    Leased,
    /// Answer (or ERR) queued; close once written.
    Closing,
}

struct Conn {
    stream: UnixStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    phase: Phase,
}

struct Server {
    dir: PathBuf,
    socket: PathBuf,
    /// (device, inode) of the socket file we bound, to notice removal or replacement.
    socket_id: (u64, u64),
    listener: UnixListener,
    /// Holds the start lock for the agent's life; closing it releases the lock.
    _lock: File,
    conns: BTreeMap<ConnId, Conn>,
    next_id: ConnId,
    sched: Sched,
}

/// The loop's deadlines, carried from one turn to the next.
struct Timers {
    /// Since when no connection is open (`None` while some are).
    idle_since: Option<Instant>,
    next_socket_check: Instant,
    /// Accepting is paused until then after running out of descriptors.
    accept_paused_until: Option<Instant>,
}

impl Timers {
    fn new(now: Instant) -> Timers {
        Timers {
            idle_since: Some(now),
            next_socket_check: now + SOCKET_CHECK,
            accept_paused_until: None,
        }
    }

    /// The poll timeout: the nearest deadline, rounded up so a deadline 0.4 ms away
    /// does not spin with timeout 0.
    fn timeout_ms(&self, now: Instant, idle: Duration, load_blocked: bool) -> i32 {
        let mut wake = self.next_socket_check;
        if let Some(since) = self.idle_since {
            wake = wake.min(since + idle);
        }
        if load_blocked {
            wake = wake.min(now + LOAD_RECHECK);
        }
        if let Some(t) = self.accept_paused_until {
            wake = wake.min(t);
        }
        let timeout_ms = wake.saturating_duration_since(now).as_millis().min(60_000) as i32;
        if wake > now {
            timeout_ms.max(1)
        } else {
            0
        }
    }

    /// Whether to watch the listener this turn; ends a pause that is over.
    fn accepting(&mut self, now: Instant) -> bool {
        let accepting = self.accept_paused_until.is_none_or(|t| now >= t);
        if accepting {
            self.accept_paused_until = None;
        }
        accepting
    }
}

/// What one turn polls: `fds[0]` is the listener, `fds[i + 1]` the connection `ids[i]`.
#[derive(Default)]
struct PollSet {
    fds: Vec<libc::pollfd>,
    ids: Vec<ConnId>,
}

impl PollSet {
    fn poll(&mut self, timeout_ms: i32) -> io::Result<()> {
        // SAFETY: `fds` is a live, correctly sized array of pollfd.
        let rc = unsafe {
            libc::poll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                timeout_ms,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

impl Server {
    /// Takes the start lock and binds the socket; `None` when another agent has the
    /// lock (and so serves, or is about to).
    fn start(dir: &Path) -> io::Result<Option<Server>> {
        let Some(claimed) = claim(dir)? else {
            return Ok(None);
        };
        Ok(Some(Server {
            dir: dir.to_path_buf(),
            socket: claimed.socket,
            socket_id: claimed.socket_id,
            listener: claimed.listener,
            _lock: claimed.lock,
            conns: BTreeMap::new(),
            next_id: 1,
            sched: Sched::new(seed()),
        }))
    }

    /// Removes our socket file (if still ours) so that no client connects to a
    /// listener nobody serves; the lock goes when `self` drops.
    fn shutdown(&mut self) {
        if file_id(&self.socket) == Some(self.socket_id) {
            let _ = fs::remove_file(&self.socket);
        }
        log::debug!("agent for {} exits", self.dir.display());
    }

    fn run(&mut self, idle: Duration) -> i32 {
        let mut timers = Timers::new(Instant::now());
        let mut set = PollSet::default();
        loop {
            let now = Instant::now();
            let timeout_ms = timers.timeout_ms(now, idle, self.sched.blocked_by_load());
            let accepting = timers.accepting(now);
            self.fill_poll_set(&mut set, accepting);
            if let Err(err) = set.poll(timeout_ms) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("swarmcc agent: poll: {err}");
                return 1;
            }
            let now = Instant::now();
            self.dispatch(&set, &mut timers, now);
            // Every event may have freed or requested something: decide at once.
            self.settle(now);
            if self.should_stop(&mut timers, idle, now) {
                return 0;
            }
        }
    }

    /// Lists the descriptors this turn waits on: the listener (or `-1` while accepting
    /// is paused), then every connection, reading unless it is closing and writing
    /// while output is pending.
    fn fill_poll_set(&self, set: &mut PollSet, accepting: bool) {
        set.fds.clear();
        set.ids.clear();
        set.fds.push(libc::pollfd {
            fd: if accepting {
                self.listener.as_raw_fd()
            } else {
                -1
            },
            events: libc::POLLIN,
            revents: 0,
        });
        for (id, c) in &self.conns {
            let mut events = 0;
            if !matches!(c.phase, Phase::Closing) {
                events |= libc::POLLIN;
            }
            if !c.wbuf.is_empty() {
                events |= libc::POLLOUT;
            }
            set.fds.push(libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events,
                revents: 0,
            });
            set.ids.push(*id);
        }
    }

    /// Acts on what `poll` reported: writes and reads on the connections, then new
    /// connections on the listener (pausing it when descriptors run out).
    fn dispatch(&mut self, set: &PollSet, timers: &mut Timers, now: Instant) {
        for (i, id) in set.ids.iter().enumerate() {
            let revents = set.fds[i + 1].revents;
            if revents == 0 {
                continue;
            }
            // A hang-up with output pending must fail the write, or the
            // connection would stay readable-for-nothing and spin the loop.
            if revents & (libc::POLLOUT | libc::POLLHUP | libc::POLLERR) != 0 {
                self.flush(*id);
            }
            if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                self.read(*id, now);
            }
        }
        if set.fds[0].revents != 0 {
            if let Err(pause) = self.accept_all() {
                timers.accept_paused_until = Some(now + pause);
            }
        }
    }

    /// True when the agent should exit: idle for `idle` with no connection, or its
    /// socket file removed or replaced (checked once per `SOCKET_CHECK`).
    fn should_stop(&self, timers: &mut Timers, idle: Duration, now: Instant) -> bool {
        if self.conns.is_empty() {
            let since = *timers.idle_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= idle {
                return true;
            }
        } else {
            timers.idle_since = None;
        }
        if now >= timers.next_socket_check {
            timers.next_socket_check = now + SOCKET_CHECK;
            if file_id(&self.socket) != Some(self.socket_id) {
                // Removed or replaced: new clients cannot reach us, so hold no lock
                // and no slots that they could never get.
                return true;
            }
        }
        false
    }

    /// Accepts every pending connection. `Err(pause)` when out of descriptors: the
    /// listener stays readable, so stop watching it for a moment instead of spinning.
    fn accept_all(&mut self) -> Result<(), Duration> {
        for _ in 0..1024 {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let id = self.next_id;
                    self.next_id += 1;
                    self.conns.insert(
                        id,
                        Conn {
                            stream,
                            rbuf: Vec::new(),
                            wbuf: Vec::new(),
                            phase: Phase::Header,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    return Err(Duration::from_millis(100));
                }
                Err(_) => return Ok(()),
            }
        }
        Ok(())
    }

    /// Reads what one connection sent and handles every complete line.
    fn read(&mut self, id: ConnId, now: Instant) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if matches!(c.phase, Phase::Closing) {
            return;
        }
        let mut chunk = [0u8; READ_CHUNK];
        let n = match c.stream.read(&mut chunk) {
            Ok(0) => {
                self.close(id, now);
                return;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return;
            }
            Err(_) => {
                self.close(id, now);
                return;
            }
        };
        c.rbuf.extend_from_slice(&chunk[..n]);
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            if matches!(c.phase, Phase::Closing) {
                return;
            }
            let Some(end) = c.rbuf.iter().position(|&b| b == b'\n') else {
                if c.rbuf.len() > wire::MAX_LINE + 1 {
                    self.fail(id, "line too long", now);
                }
                return;
            };
            let raw: Vec<u8> = c.rbuf.drain(..=end).collect();
            match wire::line_text(&raw) {
                Ok(line) => {
                    let line = line.to_string();
                    self.handle_line(id, &line, now);
                }
                Err(why) => {
                    self.fail(id, &why, now);
                    return;
                }
            }
        }
    }

    /// Routes one line by where its connection is in the exchange.
    fn handle_line(&mut self, id: ConnId, line: &str, now: Instant) {
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        match c.phase {
            Phase::Header => self.handle_header(id, line, now),
            Phase::Hosts { .. } => self.handle_host(id, line, now),
            Phase::Waiting => self.fail(id, "nothing may be sent before GRANT", now),
            Phase::Leased => self.handle_report(id, line, now),
            Phase::Closing => {}
        }
    }

    /// The first line: a question answered at once (PING, STATS, FARM), or a request
    /// for a slot (LOCAL is queued now, REMOTE once its host lines have come).
    fn handle_header(&mut self, id: ConnId, line: &str, now: Instant) {
        let header = match wire::parse_header(line) {
            Ok(header) => header,
            Err(why) => return self.fail(id, &why, now),
        };
        let answer = match header {
            Header::Ping => format!("PONG {}\n", std::process::id()),
            Header::Stats { build } => wire::format_stats(&self.sched.stats(&build)),
            Header::Farm => wire::format_farm(&self.sched.farm(now)),
            Header::Cache { build, outcome } => {
                self.sched.record_cache(&build, outcome);
                "OK\n".to_owned()
            }
            Header::Remote {
                build,
                randomize,
                hosts,
            } => {
                let phase = Phase::Hosts {
                    build,
                    randomize,
                    want: hosts,
                    hosts: Vec::with_capacity(hosts.min(64)),
                };
                self.set_phase(id, phase);
                return;
            }
            Header::Local {
                build,
                kind,
                limit,
                load,
            } => {
                self.set_phase(id, Phase::Waiting);
                let req = Request::Local {
                    build,
                    kind,
                    limit,
                    load,
                };
                self.sched.submit(id, req, now);
                return;
            }
        };
        self.set_phase(id, Phase::Closing);
        self.send(id, &answer);
    }

    /// One host line of a REMOTE request; the last one queues the request.
    fn handle_host(&mut self, id: ConnId, line: &str, now: Instant) {
        let offer = match wire::parse_host(line) {
            Ok(offer) => offer,
            Err(why) => return self.fail(id, &why, now),
        };
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let Phase::Hosts {
            build,
            randomize,
            want,
            hosts,
        } = &mut c.phase
        else {
            return;
        };
        hosts.push(offer);
        if hosts.len() == *want {
            let req = Request::Remote {
                build: build.take(),
                randomize: *randomize,
                hosts: std::mem::take(hosts),
            };
            c.phase = Phase::Waiting;
            self.sched.submit(id, req, now);
        }
    }

    /// A REPORT line on a held slot: how its job went, for the statistics.
    fn handle_report(&mut self, id: ConnId, line: &str, now: Instant) {
        match wire::parse_report(line) {
            Ok(report) => {
                // A well-formed report that does not fit the lease (a host outcome
                // on a local slot) is a client mistake about statistics only: drop
                // the report, keep the slot, since its job is still running.
                if let Err(why) = self.sched.report(id, &report, now) {
                    log::debug!("agent: connection {id}: report ignored: {why}");
                }
            }
            Err(why) => self.fail(id, &why, now),
        }
    }

    fn set_phase(&mut self, id: ConnId, phase: Phase) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.phase = phase;
        }
    }

    /// Answers `ERR <why>` and closes; whatever the connection held is freed now.
    fn fail(&mut self, id: ConnId, why: &str, now: Instant) {
        log::debug!("agent: connection {id}: {why}");
        self.sched.release(id, now);
        if let Some(c) = self.conns.get_mut(&id) {
            c.phase = Phase::Closing;
            c.rbuf = Vec::new();
        }
        self.send(id, &format!("ERR {}\n", wire::sanitize_reason(why)));
    }

    fn close(&mut self, id: ConnId, now: Instant) {
        self.sched.release(id, now);
        self.conns.remove(&id);
    }

    /// Queues `text` and writes as much as the socket takes now.
    fn send(&mut self, id: ConnId, text: &str) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.wbuf.extend_from_slice(text.as_bytes());
        }
        self.flush(id);
    }

    fn flush(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let mut dead = false;
        while !c.wbuf.is_empty() {
            match send_some(&c.stream, &c.wbuf) {
                Ok(n) => {
                    c.wbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    dead = true;
                    break;
                }
            }
        }
        if c.wbuf.len() > MAX_PENDING_OUTPUT {
            dead = true;
        }
        if dead {
            // Released by `reap_closed` (it may still hold a slot).
            c.phase = Phase::Closing;
            c.wbuf.clear();
        }
    }

    /// Grants what can be granted and drops connections that are done (answered or
    /// failed, nothing left to write), until neither changes anything: a dropped
    /// connection may free a slot, and a grant that cannot be written drops one.
    fn settle(&mut self, now: Instant) {
        loop {
            let grants = self.sched.schedule(now, &mut load::current);
            for (id, g) in grants {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.phase = Phase::Leased;
                }
                self.send(id, &format!("GRANT {} {}\n", g.host, g.slot));
            }
            let done: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|(_, c)| matches!(c.phase, Phase::Closing) && c.wbuf.is_empty())
                .map(|(id, _)| *id)
                .collect();
            if done.is_empty() {
                return;
            }
            for id in done {
                self.close(id, now);
            }
        }
    }
}
