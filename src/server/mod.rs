//! The compile server (`swarmccd`): accepts connections on a listener it is given,
//! checks each peer against the allow list, and serves each allowed connection on its
//! own thread, with at most `jobs` compilers running at once.
//!
//! [`run`] takes an already-bound listener and a shutdown flag, so tests bind port 0
//! and `daemon` binds the real port. One job is `serve`; the allow list is `access`;
//! compiler and option policy is `whitelist`; command-line flags, detaching, pid file and
//! privileges are `daemon` and `cli`. Spawning the compiler is `crate::exec`. The
//! counters every job updates are `stats`; the `--stats` port that shows them is `http`.
//! The farm cache's steps (answering a key, storing a result) are `farm`.

pub mod access;
mod authn;
pub mod cli;
pub(crate) mod codegen;
pub mod daemon;
mod decide;
mod dialect;
mod farm;
pub mod http;
mod jobdir;
mod record;
mod reply;
mod request;
mod run;
mod rustc;
pub use rustc::RustcConfig;
pub mod serve;
pub mod stages;
pub mod stats;
pub mod whitelist;

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::protocol::Limits;
use crate::transport::{Peer, Stream};

pub use access::AllowList;
pub use daemon::main;
pub use stats::Stats;
pub use whitelist::{Admission, CmdList, Refusal};

/// The default TCP port, as distccd.
pub const DEFAULT_PORT: u16 = 3632;

/// Everything `run` needs; built from the command line and environment by `daemon`, or
/// directly by tests.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Peers allowed to connect; others are closed without a byte.
    pub allow: AllowList,
    /// Maximum number of compilers running at once (`--jobs`).
    pub jobs: usize,
    /// Maximum number of connections being served at once (reading requests, waiting
    /// for a compile slot, sending replies); further connections wait in the backlog.
    pub max_connections: usize,
    /// Longest silence allowed from a client while its request arrives, and while a
    /// reply is sent.
    pub io_timeout: Duration,
    /// `--job-lifetime`: kill a compiler that runs longer.
    pub job_lifetime: Option<Duration>,
    /// `--lifetime`: stop accepting this long after [`run`] starts, and return once the
    /// connections in flight are done.
    pub lifetime: Option<Duration>,
    /// Compiler whitelist, `DISTCC_CMDLIST`, compiler search path.
    pub admission: Admission,
    /// Where per-job private directories are created (`$TMPDIR`).
    pub tmpdir: PathBuf,
    /// `DISTCC_SAVE_TEMPS=1`: keep each job's directory.
    pub save_temps: bool,
    /// Bounds on what a request may make us allocate.
    pub limits: Limits,
    /// Longest time a whole request may take to arrive, however steadily it trickles:
    /// a slow client cannot hold a connection (and its memory) indefinitely.
    pub request_timeout: Duration,
    /// Connections waiting for a compile slot beyond this many are answered "busy" at
    /// once, so that their clients compile locally instead of queueing.
    pub max_queued: usize,
    /// Confine each compiler with Landlock: it may write only inside its job
    /// directory (where the kernel supports it).
    pub sandbox: bool,
    /// `--auth-key-file`: peers must authenticate with the pre-shared key, except
    /// those in `--allow-unauthenticated`. `None`: plain distcc for everyone (a client
    /// that asks to authenticate is told it is not enabled).
    pub auth: Option<authn::AuthPolicy>,
    /// The swarmccd executable, which records a gcc driver's stages when run as its
    /// `-wrapper` (see [`stages`]); `None` runs every job through its driver.
    pub stage_recorder: Option<PathBuf>,
    /// `--rustc`: serve rustc jobs (see [`rustc`]); `None` refuses them.
    pub rustc: Option<RustcConfig>,
    /// The farm cache (`--cache-dir`, `--cache-size`; see [`farm`]); `None`
    /// (`--no-cache`): every job is compiled.
    pub cache: Option<CacheConfig>,
}

/// Where the farm cache lives and how large it may grow.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `None`: [`farm::default_dir`], for the user the server runs as.
    pub dir: Option<PathBuf>,
    pub bytes: u64,
}

impl ServerConfig {
    /// A configuration with defaults for everything but the allow list and the compiler
    /// policy.
    pub fn new(allow: AllowList, admission: Admission) -> Self {
        ServerConfig {
            allow,
            jobs: default_jobs(),
            max_connections: default_jobs() * 3 + 4 + 32,
            io_timeout: Duration::from_secs(60),
            job_lifetime: None,
            lifetime: None,
            admission,
            tmpdir: std::env::temp_dir(),
            save_temps: false,
            limits: server_limits(),
            request_timeout: Duration::from_secs(300),
            max_queued: default_jobs() * 2 + 4,
            sandbox: true,
            auth: None,
            stage_recorder: None,
            rustc: None,
            cache: None,
        }
    }
}

/// What one request may make the server allocate: smaller than the decoder's
/// defaults, which are sized for what a client accepts from a trusted server.
/// Preprocessed translation units of a few tens of MiB are already exceptional.
pub fn server_limits() -> Limits {
    Limits {
        max_argc: 4096,
        max_string: 64 * 1024,
        max_body: 256 * 1024 * 1024,
        max_decompressed: 256 * 1024 * 1024,
        max_header: 4 * 1024 * 1024,
    }
}

/// distccd's default: the number of CPUs plus two.
pub fn default_jobs() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get()) + 2
}

/// A counting semaphore whose permits are returned when dropped.
#[derive(Debug)]
pub(crate) struct Semaphore {
    free: Mutex<usize>,
    changed: Condvar,
}

pub(crate) struct Permit<'a>(&'a Semaphore);

impl Semaphore {
    pub(crate) fn new(n: usize) -> Self {
        Semaphore {
            free: Mutex::new(n.max(1)),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        // A panicking holder cannot leave the count inconsistent: it is one integer.
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a permit for at most `wait`.
    pub(crate) fn acquire_timeout(&self, wait: Duration) -> Option<Permit<'_>> {
        let deadline = Instant::now() + wait;
        let mut free = self.lock();
        while *free == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            free = self
                .changed
                .wait_timeout(free, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *free -= 1;
        Some(Permit(self))
    }

    /// Takes up to `max` free permits at once, without waiting, as a count (for
    /// [`codegen`] to lend).
    pub(crate) fn take_free(&self, max: usize) -> usize {
        let mut free = self.lock();
        let n = max.min(*free);
        *free -= n;
        n
    }

    /// Gives back `n` permits taken as a count.
    pub(crate) fn give_back(&self, n: usize) {
        if n > 0 {
            *self.lock() += n;
            self.changed.notify_all();
        }
    }

    /// A permit for one taken as a count and handed over (a reclaimed codegen token).
    pub(crate) fn adopt(&self) -> Permit<'_> {
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.lock() += 1;
        self.0.changed.notify_one();
    }
}

/// The environment compilers start from: ours, with `PATH` set to the compiler search
/// path (when there is one) and the marker that stops a masquerading swarmcc from
/// sending the job on again. Each job adds its own `TMPDIR`.
fn job_env(cfg: &ServerConfig) -> Vec<(OsString, OsString)> {
    let safeguard = crate::compiler::SAFEGUARD_VAR;
    let path = std::env::join_paths(&cfg.admission.search_path)
        .ok()
        .filter(|p| !p.is_empty());
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| {
            k != stages::RECORD_VAR
                && k != "TMPDIR"
                && k != safeguard
                && !(k == "PATH" && path.is_some())
        })
        .collect();
    if let Some(path) = path {
        env.push(("PATH".into(), path));
    }
    env.push((safeguard.into(), "1".into()));
    env
}

/// State shared by the accept loop and the connection threads.
pub(crate) struct Shared {
    pub(crate) cfg: ServerConfig,
    pub(crate) compile_slots: Semaphore,
    /// Compilers started before their source has arrived (they wait on a pipe, idle),
    /// at most one per compile slot.
    pub(crate) early_starts: Semaphore,
    pub(crate) shutdown: Arc<AtomicBool>,
    pub(crate) stats: Stats,
    /// The identities of the compilers run so far (extension requests are checked
    /// against them).
    pub(crate) identities: crate::toolchain::IdentityCache,
    /// What the gcc drivers run for each command line seen (see [`stages`]).
    pub(crate) plans: stages::PlanCache,
    /// The environment every compiler job starts from (before its own TMPDIR),
    /// built once rather than copied from ours on every spawn.
    pub(crate) job_env: Vec<(OsString, OsString)>,
    /// What rustc jobs need, when they are served.
    pub(crate) rustc: Option<rustc::Service>,
    /// Compile slots lent to running rustc jobs as codegen tokens.
    pub(crate) lending: codegen::Lending,
    /// The farm cache, when there is one.
    pub(crate) cache: Option<crate::cache::Cache>,
    /// Open connections, so that shutdown can unblock their reads.
    open: Mutex<HashMap<u64, TcpStream>>,
    open_changed: Condvar,
    next_id: AtomicU64,
}

impl Shared {
    fn new(cfg: ServerConfig, shutdown: Arc<AtomicBool>) -> Self {
        Shared {
            compile_slots: Semaphore::new(cfg.jobs),
            early_starts: Semaphore::new(cfg.jobs),
            stats: Stats::new(cfg.jobs),
            identities: Default::default(),
            plans: Default::default(),
            job_env: job_env(&cfg),
            rustc: cfg
                .rustc
                .as_ref()
                .and_then(|r| match rustc::Service::start(r, &cfg.tmpdir) {
                    Ok(service) => Some(service),
                    Err(e) => {
                        log::error!("--rustc: {e}; rustc jobs will be refused");
                        None
                    }
                }),
            lending: codegen::Lending::default(),
            cache: cfg.cache.as_ref().and_then(|c| farm::open(c, &cfg.tmpdir)),
            cfg,
            shutdown,
            open: Mutex::new(HashMap::new()),
            open_changed: Condvar::new(),
            next_id: AtomicU64::new(0),
        }
    }

    pub(crate) fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    fn open(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serves connections from `listener` until `shutdown` becomes true, then stops
/// accepting, cancels running compiles, unblocks pending reads, and returns once every
/// connection thread has finished. The listener is used in non-blocking mode.
pub fn run(listener: TcpListener, cfg: ServerConfig, shutdown: Arc<AtomicBool>) -> io::Result<()> {
    run_with_stats(listener, None, cfg, shutdown)
}

/// [`run`], also serving the statistics port (`--stats`) on `stats_listener` when
/// given; it stops with the server.
pub fn run_with_stats(
    listener: TcpListener,
    stats_listener: Option<TcpListener>,
    cfg: ServerConfig,
    shutdown: Arc<AtomicBool>,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let end_of_life = cfg.lifetime.map(|l| (Instant::now() + l, l));
    let shared = Arc::new(Shared::new(cfg, shutdown));
    let stats_thread = stats_listener
        .map(|l| start_stats_port(l, Arc::clone(&shared)))
        .transpose()?;
    while !shared.stopping() {
        if let Some((deadline, lifetime)) = end_of_life {
            if Instant::now() >= deadline {
                let open = shared.open().len();
                log::info!(
                    "--lifetime of {}s reached: no more connections; exiting once the {open} \
                     in flight are done",
                    lifetime.as_secs()
                );
                drop(listener);
                finish_open_connections(&shared);
                // What is left (the statistics port) stops as on a signal.
                shared.shutdown.store(true, Ordering::SeqCst);
                break;
            }
        }
        if shared.open().len() >= shared.cfg.max_connections {
            // Leave further clients in the backlog until a connection ends.
            let open = shared.open();
            let _ = shared
                .open_changed
                .wait_timeout(open, Duration::from_millis(250));
            continue;
        }
        if !wait_readable(&listener, Duration::from_millis(250))? {
            continue;
        }
        let (stream, peer) = match listener.accept() {
            Ok(pair) => pair,
            Err(e) if transient_accept_error(&e) => continue,
            Err(e) => {
                log::error!("accept failed: {e}");
                // E.g. out of file descriptors: do not spin.
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        accept_one(&shared, stream, peer);
    }
    log::info!("shutting down: waiting for connections to finish");
    close_open_connections(&shared);
    if let Some(t) = stats_thread {
        // It sees the shutdown flag within a poll interval.
        let _ = t.join();
    }
    Ok(())
}

/// Serves `--stats` on its own thread until the server stops.
fn start_stats_port(
    listener: TcpListener,
    shared: Arc<Shared>,
) -> io::Result<thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    thread::Builder::new()
        .name("stats port".into())
        .spawn(move || http::serve_stats(listener, shared))
}

/// Unblocks every open connection's reads and waits until their threads are done.
fn close_open_connections(shared: &Shared) {
    let mut open = shared.open();
    for stream in open.values() {
        let _ = stream.shutdown(Shutdown::Both);
    }
    while !open.is_empty() {
        open = shared
            .open_changed
            .wait_timeout(open, Duration::from_millis(250))
            .unwrap_or_else(|p| p.into_inner())
            .0;
        for stream in open.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Waits for the open connections to end by themselves (their own timeouts bound
/// them); a shutdown signal meanwhile still cuts them short.
fn finish_open_connections(shared: &Shared) {
    let mut open = shared.open();
    while !open.is_empty() && !shared.stopping() {
        open = shared
            .open_changed
            .wait_timeout(open, Duration::from_millis(250))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// Serves one already accepted connection on the calling thread (`--inetd`). The
/// caller has applied the allow list.
pub fn serve_stream(stream: Stream, cfg: ServerConfig) {
    let shared = Shared::new(cfg, Arc::new(AtomicBool::new(false)));
    let peer = match stream.peer() {
        Peer::Addr(a) => Peer::Addr(SocketAddr::new(access::display_ip(a.ip()), a.port())),
        local => local,
    };
    serve::serve_connection(stream, peer, &shared);
}

fn accept_one(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let ip = access::display_ip(peer.ip());
    let shown = SocketAddr::new(ip, peer.port());
    shared.stats.connection();
    if !shared.cfg.allow.allows(peer.ip()) {
        shared.stats.denied();
        // As distccd: no byte for a denied peer, and no job summary.
        log::error!("connection from client '{shown}' denied by access list");
        drop(stream);
        return;
    }
    log::debug!("connection from {shown}");
    // The accepted socket must block: Conn uses read/write timeouts.
    if let Err(e) = stream.set_nonblocking(false) {
        log::error!("client {shown}: cannot set up the socket: {e}");
        return;
    }
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    match stream.try_clone() {
        Ok(clone) => {
            shared.open().insert(id, clone);
        }
        Err(e) => {
            log::error!("client {shown}: cannot set up the socket: {e}");
            return;
        }
    }
    let worker = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name(format!("client {shown}"))
        .spawn(move || {
            serve::serve_connection(Stream::Tcp(stream), Peer::Addr(shown), &worker);
            worker.open().remove(&id);
            worker.open_changed.notify_all();
        });
    if let Err(e) = spawned {
        log::error!("client {shown}: cannot start a thread: {e}");
        shared.open().remove(&id);
    }
}

/// Waits until the listener has a connection to accept (or `wait` passes).
fn wait_readable(listener: &TcpListener, wait: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = wait.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `pfd` is one valid pollfd that outlives the call.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(rc > 0)
}

fn transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock
            | io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semaphore_bounds_and_returns_permits() {
        let s = Semaphore::new(2);
        let a = s.acquire_timeout(Duration::ZERO).unwrap();
        let _b = s.acquire_timeout(Duration::ZERO).unwrap();
        assert!(s.acquire_timeout(Duration::from_millis(10)).is_none());
        drop(a);
        assert!(s.acquire_timeout(Duration::ZERO).is_some());
    }
}
