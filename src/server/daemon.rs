//! Starting `swarmccd`: flags and environment to a [`ServerConfig`], logging, binding,
//! niceness, detaching, the pid file, dropping root, signals, then [`super::run`].
//!
//! The order matters and differs from distccd 3.4 on purpose: the log file and the
//! listening socket are opened, and the pid file written, while still root, so that a
//! log or pid path only root can write works (distccd drops privileges first and then
//! silently runs without them). Forking happens before any thread exists.

use std::ffi::{CString, OsString};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use clap::Parser;

use crate::exit::ExitCode;
use crate::logging::{self, LevelFilter, Target};
use crate::transport::Stream;

use super::access::{self, AllowList};
use super::cli::Cli;
use super::serve::AuthPolicy;
use super::whitelist::{compiler_search_path, Admission, CmdList};
use super::ServerConfig;

/// distccd's default `--stats-port`.
pub const DEFAULT_STATS_PORT: u16 = 3633;

/// A startup failure: the message for the user and the exit code.
#[derive(Debug)]
pub struct StartError {
    pub code: ExitCode,
    pub message: String,
    /// Already shown to the user (by the launching process of a detached server).
    pub reported: bool,
}

impl StartError {
    fn new(code: ExitCode, message: impl Into<String>) -> Self {
        StartError {
            code,
            message: message.into(),
            reported: false,
        }
    }

    fn reported(self) -> Self {
        StartError {
            reported: true,
            ..self
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The values `swarmccd` takes from its environment, read once.
#[derive(Debug, Clone, Default)]
pub struct ServerEnv {
    pub distccd_path: Option<OsString>,
    pub path: Option<OsString>,
    pub cmdlist: Option<PathBuf>,
    pub cmdlist_numwords: Option<String>,
    pub save_temps: bool,
    pub tmpdir: PathBuf,
    /// `DISTCCD_PRINCIPAL`, which only `--show-principal` prints.
    pub principal: Option<String>,
}

impl ServerEnv {
    pub fn from_process() -> Self {
        let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        ServerEnv {
            distccd_path: non_empty("DISTCCD_PATH"),
            path: non_empty("PATH"),
            cmdlist: non_empty("DISTCC_CMDLIST").map(PathBuf::from),
            cmdlist_numwords: std::env::var("DISTCC_CMDLIST_NUMWORDS").ok(),
            save_temps: std::env::var("DISTCC_SAVE_TEMPS").is_ok_and(|v| v == "1"),
            tmpdir: std::env::temp_dir(),
            principal: std::env::var("DISTCCD_PRINCIPAL").ok(),
        }
    }
}

/// The whole daemon: parses `args` (including the program name), runs until a signal,
/// and returns the process exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    // Run by a gcc driver as its `-wrapper`: record the stage and become it.
    if let Some(dir) = std::env::var_os(super::stages::RECORD_VAR) {
        return crate::stages::record_and_exec(
            super::stages::RECORD_VAR,
            &dir,
            args.into_iter().skip(1).collect(),
        );
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::BadArguments.code()
            } else {
                0
            };
        }
    };
    if cli.version {
        print!("{}", crate::version::text("swarmccd"));
        return 0;
    }
    if cli.show_principal {
        // distccd's exact lines: scripts written for it compare them.
        match ServerEnv::from_process().principal {
            Some(p) => println!("Principal is\t: {p}"),
            None => println!("Principal\t: Not Set"),
        }
        return 0;
    }
    if let Some(path) = &cli.gen_auth_key {
        return gen_auth_key(path);
    }
    // One malloc arena per connection thread would grow the server's memory, and with
    // it the cost of every fork that starts a compiler: two arenas are plenty here.
    // SAFETY: mallopt only sets an allocator tunable; called before other threads run.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let logs_to_file = cli.log_file.is_some() && !cli.log_stderr && !cli.wizard;
    match start(cli) {
        Ok(()) => 0,
        Err(e) => {
            // Always on stderr (the log may not be set up yet), and in the log file too.
            if logs_to_file {
                log::error!("{e}");
            }
            if !e.reported {
                eprintln!("swarmccd: {e}");
            }
            e.code.code()
        }
    }
}

/// What the flags say about the allow list, and whether the user gave one at all.
pub fn allow_list(cli: &Cli) -> Result<(AllowList, bool), StartError> {
    let mut list = AllowList::default();
    for entry in &cli.allow {
        list.push(
            access::parse_allow(entry).map_err(|e| StartError::new(ExitCode::BadArguments, e))?,
        );
    }
    if cli.allow_private {
        list.push(AllowList::private_nets());
    }
    if list.is_empty() {
        return Ok((AllowList::loopback(), false));
    }
    Ok((list, true))
}

/// Builds the server configuration from the flags and the environment. Reads the
/// `DISTCC_CMDLIST` file and the `--auth-key-file` (so both are read before
/// privileges are dropped); touches nothing else.
pub fn config(cli: &Cli, env: &ServerEnv, allow: AllowList) -> Result<ServerConfig, StartError> {
    let mut admission = Admission::whitelist(&cli.whitelist_dir, Vec::new());
    admission.search_path = compiler_search_path(
        env.distccd_path.as_deref(),
        env.path.as_deref(),
        &admission.whitelist_dirs,
    );
    admission.insecure = cli.enable_tcp_insecure;
    if let Some(path) = &env.cmdlist {
        let words = match env.cmdlist_numwords.as_deref() {
            None | Some("") => 1,
            Some(text) => text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    StartError::new(
                        ExitCode::BadArguments,
                        format!(
                            "bad DISTCC_CMDLIST_NUMWORDS value {text:?}: expected a number ≥ 1"
                        ),
                    )
                })?,
        };
        let list = CmdList::load(path, words).map_err(|e| {
            StartError::new(
                ExitCode::IoError,
                format!("cannot read DISTCC_CMDLIST file {}: {e}", path.display()),
            )
        })?;
        admission.cmdlist = Some(list);
    }
    let mut cfg = ServerConfig::new(allow, admission);
    if let Some(j) = cli.jobs {
        cfg.jobs = j as usize;
    }
    cfg.max_queued = cli.max_queued.unwrap_or(cfg.jobs * 2 + 4);
    cfg.max_connections = cli
        .max_connections
        .map_or(cfg.jobs + cfg.max_queued + 32, |n| n as usize);
    cfg.request_timeout = Duration::from_secs(cli.request_timeout);
    cfg.sandbox = !cli.no_sandbox;
    if !cli.no_direct_stages {
        cfg.stage_recorder = std::env::current_exe().ok();
    }
    let source_bytes = cli.max_source_size as usize * 1024 * 1024;
    cfg.limits.max_body = u32::try_from(source_bytes).unwrap_or(u32::MAX);
    cfg.limits.max_decompressed = source_bytes;
    cfg.io_timeout = Duration::from_secs(cli.io_timeout);
    cfg.job_lifetime = positive_seconds(cli.job_lifetime);
    cfg.lifetime = positive_seconds(cli.lifetime);
    cfg.tmpdir = env.tmpdir.clone();
    cfg.save_temps = env.save_temps;
    cfg.auth = auth_policy(cli)?;
    Ok(cfg)
}

/// distccd's reading of a seconds option: 0 or less means "off".
fn positive_seconds(n: i64) -> Option<Duration> {
    u64::try_from(n)
        .ok()
        .filter(|&n| n > 0)
        .map(Duration::from_secs)
}

/// `--auth-key-file` and `--allow-unauthenticated`: reads and checks the key file (a
/// missing, short, or group- or world-accessible key stops the server, with the file's
/// name in the message).
fn auth_policy(cli: &Cli) -> Result<Option<AuthPolicy>, StartError> {
    let key = match &cli.auth_key_file {
        Some(path) => Some(
            crate::auth::load_key_file(path)
                .map_err(|e| StartError::new(ExitCode::BadArguments, e))?,
        ),
        // distccd's --auth: clients must authenticate, and none can (no GSS-API here).
        None if cli.auth => None,
        None => return Ok(None),
    };
    let mut allow_unauthenticated = AllowList::default();
    for entry in &cli.allow_unauthenticated {
        let nets = access::parse_allow(entry).map_err(|e| {
            // Same syntax as --allow; say which option was wrong.
            StartError::new(
                ExitCode::BadArguments,
                e.replacen("--allow", "--allow-unauthenticated", 1),
            )
        })?;
        allow_unauthenticated.push(nets);
    }
    Ok(Some(AuthPolicy {
        key,
        allow_unauthenticated,
    }))
}

/// `--gen-auth-key FILE`: writes a new key and exits.
fn gen_auth_key(path: &Path) -> i32 {
    match crate::auth::generate_key_file(path) {
        Ok(()) => {
            println!(
                "swarmccd: wrote a new authentication key to {shown}\n\
                 serve with:  swarmccd --auth-key-file {shown} ...\n\
                 on each client, copy it to ~/.distcc/auth.key (mode 0600; or point \
                 SWARMCC_AUTH_KEY_FILE at it) and list this server with ,auth, \
                 e.g. DISTCC_HOSTS=\"buildhost/8,lzo,auth\"",
                shown = path.display()
            );
            0
        }
        Err(e) => {
            eprintln!("swarmccd: {e}");
            ExitCode::IoError.code()
        }
    }
}

/// The address to listen on when `--listen` is not given (see `--help`).
pub fn default_listen(allow_given: bool, allow: &AllowList) -> IpAddr {
    if !allow_given {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else if allow
        .nets()
        .iter()
        .any(|n| matches!(n, ipnet::IpNet::V6(_)))
    {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        access::ANY_V4
    }
}

fn start(mut cli: Cli) -> Result<(), StartError> {
    if cli.wizard {
        cli.no_detach = true;
        cli.log_stderr = true;
        cli.verbose = true;
    }
    let detach = !cli.no_detach && !cli.inetd;
    init_logging(&cli, detach);
    warn_ignored_options(&cli);
    let (allow, allow_given) = allow_list(&cli)?;
    let mut env = ServerEnv::from_process();
    env.tmpdir = absolute(&env.tmpdir)?;
    cli.whitelist_dir = cli
        .whitelist_dir
        .iter()
        .map(|d| absolute(d))
        .collect::<Result<_, _>>()?;
    let mut cfg = config(&cli, &env, allow)?;
    nice(cli.nice);

    if cli.inetd {
        let user = drop_root(cli.user.as_deref(), None)?;
        check_recorder(&mut cfg, user.as_deref());
        return serve_inetd(cfg, allow_given, user.as_deref());
    }

    let listen = match &cli.listen {
        Some(text) => parse_listen(text)?,
        None => default_listen(allow_given, &cfg.allow),
    };
    let listener = bind(listen, cli.port)?;
    let local = listener
        .local_addr()
        .map_err(|e| StartError::new(ExitCode::BindFailed, format!("bound socket: {e}")))?;
    // On the address actually bound, which may be the IPv4 fallback of [::].
    let stats_listener = if cli.stats {
        let port = cli.stats_port.unwrap_or(DEFAULT_STATS_PORT);
        let addr = SocketAddr::new(local.ip(), port);
        Some(TcpListener::bind(addr).map_err(|e| {
            StartError::new(
                ExitCode::BindFailed,
                format!("cannot listen on {addr} for --stats: {e}"),
            )
        })?)
    } else {
        None
    };

    // Detaching changes the working directory to /.
    let pid_path = cli.pid_file.as_deref().map(absolute).transpose()?;
    let ready = if detach {
        Some(detach_from_terminal(cli.log_stderr)?)
    } else {
        None
    };
    // From here on a detached server tells its launcher how startup ended, so that the
    // launching command returns only once the pid file is written and the port listens.
    let prepared = prepare_to_serve(&cli, &mut cfg, pid_path.as_deref());
    let pid_file = match (prepared, ready) {
        (Ok(pid_file), ready) => {
            if let Some(r) = ready {
                r.succeeded();
            }
            pid_file
        }
        (Err(e), Some(r)) => {
            r.failed(&e);
            return Err(e.reported());
        }
        (Err(e), None) => return Err(e),
    };
    let shutdown = Arc::new(AtomicBool::new(false));
    install_signal_handlers(Arc::clone(&shutdown));
    announce(&cfg, &cli, local, stats_listener.as_ref(), allow_given);
    // Started after detaching and dropping root: its thread would not survive the fork.
    let zeroconf = cli.zeroconf.then(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let what =
            crate::zeroconf::publish::Announcement::new(local.ip(), local.port(), cpus, cfg.jobs);
        crate::zeroconf::publish::Publication::start(what)
    });

    let result = super::run_with_stats(listener, stats_listener, cfg, shutdown);
    drop(zeroconf);
    drop(pid_file);
    log::info!("terminated");
    result.map_err(|e| StartError::new(ExitCode::IoError, format!("server failed: {e}")))
}

/// The log level and target from the flags, leniently as distccd: an unknown
/// `--log-level` is warned about and notice kept; a `--log-file` that cannot be opened
/// leaves the log on syslog, with the reason on stderr and in the log.
fn init_logging(cli: &Cli, detach: bool) {
    let parsed = logging::parse_level(&cli.log_level);
    let level = match (cli.verbose, parsed) {
        (true, _) => LevelFilter::Debug,
        (false, Some(level)) => level,
        (false, None) => LevelFilter::Info,
    };
    let mut open_failure = None;
    let target = match (&cli.log_file, cli.log_stderr) {
        (Some(path), false) => Target::append_file(path).unwrap_or_else(|e| {
            open_failure = Some(format!(
                "failed to open logfile {}: {e}; logging to syslog instead",
                path.display()
            ));
            Target::Syslog
        }),
        // In inetd mode stderr is usually the client's socket, and a detached daemon
        // has no terminal: both log to syslog, as distccd does.
        (None, false) if cli.inetd || detach => Target::Syslog,
        _ => Target::Stderr,
    };
    logging::init("swarmccd", level, target);
    if let Some(why) = open_failure {
        log::error!("{why}");
        eprintln!("swarmccd: {why}");
    }
    if parsed.is_none() && !cli.verbose {
        log::warn!(
            "invalid --log-level argument \"{}\" (expected critical, error, warning, notice, \
             info or debug); logging at notice",
            cli.log_level
        );
    }
}

/// One warning per option that is accepted for distccd's sake but cannot do here what
/// it does there.
fn warn_ignored_options(cli: &Cli) {
    let principal_list = cli.whitelist.as_ref().or(cli.blacklist.as_ref());
    let notes = [
        (
            cli.zeroconf && cli.inetd,
            "--zeroconf needs a listening server, not --inetd; ignored".to_string(),
        ),
        (
            cli.stats_port.is_some() && !cli.stats,
            "--stats-port has no effect without --stats; ignored".into(),
        ),
        (
            cli.stats && cli.inetd,
            "--stats needs a listening server, not --inetd; ignored".into(),
        ),
        (
            cli.auth && cli.auth_key_file.is_none(),
            "--auth: swarmccd has no GSS-API, so no client can authenticate the way distcc \
             clients do: every request will be refused as unauthenticated; give \
             --auth-key-file FILE to serve swarmcc clients holding that key"
                .into(),
        ),
        (
            cli.auth && cli.auth_key_file.is_some(),
            "--auth: authentication is by the pre-shared key of --auth-key-file, not GSS-API"
                .into(),
        ),
        (
            principal_list.is_some(),
            format!(
                "--{}list {}: GSS-API principal lists do not apply (swarmccd authenticates \
                 keys, not Kerberos principals); ignored",
                if cli.whitelist.is_some() {
                    "white"
                } else {
                    "black"
                },
                principal_list
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
        ),
        (
            cli.lifetime > 0 && cli.inetd,
            "--lifetime has no effect with --inetd (one connection, bounded by its own \
             timeouts); ignored"
                .into(),
        ),
    ];
    for (given, what) in notes {
        if given {
            log::warn!("{what}");
        }
    }
}

/// The detached server's last steps before serving: the pid file, dropping root, and
/// the checks that need the final user. Returns the pid file (removed when dropped).
fn prepare_to_serve(
    cli: &Cli,
    cfg: &mut ServerConfig,
    pid_path: Option<&Path>,
) -> Result<Option<PidFile>, StartError> {
    let pid_file = pid_path.map(PidFile::write).transpose()?;
    let user = drop_root(cli.user.as_deref(), pid_file.as_ref())?;
    check_tmpdir(&cfg.tmpdir, user.as_deref())?;
    check_recorder(cfg, user.as_deref());
    Ok(pid_file)
}

/// The startup lines of the log: where it listens, its limits, sandbox, statistics,
/// access, authentication and compiler policy.
fn announce(
    cfg: &ServerConfig,
    cli: &Cli,
    local: SocketAddr,
    stats: Option<&TcpListener>,
    allow_given: bool,
) {
    log::info!(
        "swarmccd {} listening on {local}",
        env!("CARGO_PKG_VERSION")
    );
    log::info!(
        "allowing up to {} active jobs, {} more waiting, {} connections",
        cfg.jobs,
        cfg.max_queued,
        cfg.max_connections
    );
    if let Some(l) = cfg.lifetime {
        log::info!(
            "--lifetime: accepting connections for {}s, then exiting once the jobs in flight are done",
            l.as_secs()
        );
    }
    if !cfg.sandbox {
        log::warn!("--no-sandbox: compilers may write anywhere this user can");
    } else if crate::sandbox::available() {
        log::info!("compilers confined with Landlock: writes only inside their job directory");
    } else {
        log::warn!("this kernel has no Landlock: compilers run unconfined");
    }
    if let Some(addr) = stats.and_then(|l| l.local_addr().ok()) {
        log::info!(
            "statistics on {addr}: distccd's <distccstats> page, and GET /metrics for Prometheus"
        );
    }
    if allow_given {
        log::info!("allowed clients: {}", cfg.allow);
    } else {
        log::warn!(
            "no --allow option specified: serving this machine only ({}); \
             pass --allow ADDR[/BITS] or --allow-private to serve other hosts",
            cfg.allow
        );
    }
    if let (Some(policy), Some(path)) = (&cfg.auth, &cli.auth_key_file) {
        log::info!(
            "clients must authenticate with the key in {}",
            path.display()
        );
        if !policy.allow_unauthenticated.is_empty() {
            log::info!(
                "plain distcc clients allowed without authentication from: {}",
                policy.allow_unauthenticated
            );
        }
    }
    announce_compilers(cfg);
}

/// Which compilers the server will run, and a warning when that is none at all.
fn announce_compilers(cfg: &ServerConfig) {
    if let Some(list) = &cfg.admission.cmdlist {
        log::info!(
            "compilers allowed by DISTCC_CMDLIST {} ({} entries)",
            list.source.display(),
            list.len()
        );
    } else if cfg.admission.insecure {
        log::warn!("--enable-tcp-insecure: any compiler a client names will run");
    } else {
        let dirs = cfg
            .admission
            .whitelist_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        log::info!("compiler whitelist: {dirs}");
        // distccd refuses to start in this case; we serve (refusing each job with its
        // reason) but say at once what is missing.
        let whitelisted = cfg
            .admission
            .whitelist_dirs
            .iter()
            .filter_map(|d| fs::read_dir(d).ok())
            .flat_map(|entries| entries.flatten())
            .count();
        if whitelisted == 0 {
            log::warn!(
                "no compiler is whitelisted in {dirs}: every job will be refused; create the \
                 links with `swarmcc --install-shims /usr/lib/swarmcc/bin` (or install \
                 distcc), or pass --whitelist-dir DIR"
            );
        }
    }
    log::debug!(
        "compiler search path: {}",
        std::env::join_paths(&cfg.admission.search_path)
            .unwrap_or_default()
            .to_string_lossy()
    );
    log::debug!("job directories in {}", cfg.tmpdir.display());
}

/// `path` made absolute against the current directory (which detaching changes).
fn absolute(path: &Path) -> Result<PathBuf, StartError> {
    std::path::absolute(path).map_err(|e| {
        StartError::new(
            ExitCode::BadArguments,
            format!("bad path {}: {e}", path.display()),
        )
    })
}

/// `--listen` value: an IP literal (brackets allowed) or a host name (first address).
pub fn parse_listen(text: &str) -> Result<IpAddr, StartError> {
    let host = text.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    (host, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(|a| a.ip())
        .ok_or_else(|| {
            StartError::new(
                ExitCode::BadArguments,
                format!("bad --listen value {text:?}: not an address or a known host name"),
            )
        })
}

fn bind(ip: IpAddr, port: u16) -> Result<TcpListener, StartError> {
    let addr = SocketAddr::new(ip, port);
    match TcpListener::bind(addr) {
        Ok(l) => Ok(l),
        // A host without IPv6: fall back to IPv4 for the wildcard default.
        Err(e) if ip == IpAddr::V6(Ipv6Addr::UNSPECIFIED) => {
            log::warn!("cannot listen on {addr} ({e}); listening on IPv4 only");
            bind(access::ANY_V4, port)
        }
        Err(e) => Err(StartError::new(
            ExitCode::BindFailed,
            format!("cannot listen on {addr}: {e}"),
        )),
    }
}

/// Applies `--nice`. A failure (e.g. a negative value without privilege) is logged.
fn nice(inc: i32) {
    if inc == 0 {
        return;
    }
    // SAFETY: errno is thread-local and we are the only thread; nice has no
    // memory-safety preconditions.
    let failed = unsafe {
        *libc::__errno_location() = 0;
        libc::nice(inc) == -1 && *libc::__errno_location() != 0
    };
    if failed {
        log::warn!(
            "cannot change niceness by {inc}: {}",
            io::Error::last_os_error()
        );
    }
}

/// Forks into the background. The parent waits until the child reports how its
/// startup ended ([`Readiness`]) and exits with that: 0 once the server is ready (pid
/// file written, port listening), else the child's exit code and message, so scripts can
/// read the pid file the moment the command returns, as with distccd. The child starts
/// a new session, leaves the working directory, and points stdio at /dev/null (stderr
/// stays when it is the log). Must run before any thread is started.
fn detach_from_terminal(keep_stderr: bool) -> Result<Readiness, StartError> {
    let fail = |what: &str| {
        StartError::new(
            ExitCode::Distcc,
            format!("cannot detach ({what}): {}", io::Error::last_os_error()),
        )
    };
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(fail("pipe"));
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no other thread exists yet, so the child's copy of the process is
    // consistent; both sides only continue with ordinary code.
    match unsafe { libc::fork() } {
        -1 => return Err(fail("fork")),
        0 => drop(read_end),
        _ => {
            drop(write_end);
            let code = Readiness::wait(read_end);
            // SAFETY: _exit skips destructors and atexit handlers that belong to the child.
            unsafe { libc::_exit(code) }
        }
    }
    // SAFETY: setsid has no memory-safety preconditions.
    if unsafe { libc::setsid() } == -1 {
        return Err(fail("setsid"));
    }
    std::env::set_current_dir("/").map_err(|_| fail("chdir /"))?;
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|_| fail("open /dev/null"))?;
    let targets: &[libc::c_int] = if keep_stderr { &[0, 1] } else { &[0, 1, 2] };
    for &fd in targets {
        // SAFETY: dup2 onto a standard descriptor from one we own.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } == -1 {
            return Err(fail("redirect stdio"));
        }
    }
    Ok(Readiness {
        pipe: fs::File::from(write_end),
    })
}

/// The detached server's pipe to the process that launched it: one byte 0 for "ready",
/// or an exit code byte and the message of the failure.
struct Readiness {
    pipe: fs::File,
}

impl Readiness {
    fn succeeded(mut self) {
        let _ = self.pipe.write_all(&[0]);
    }

    fn failed(mut self, e: &StartError) {
        let mut msg = vec![e.code.code() as u8];
        msg.extend_from_slice(e.message.as_bytes());
        let _ = self.pipe.write_all(&msg);
    }

    /// The launcher's side: what the detached server said, as this process's exit code.
    fn wait(pipe: OwnedFd) -> i32 {
        let mut said = Vec::new();
        let _ = io::Read::read_to_end(&mut fs::File::from(pipe), &mut said);
        match said.split_first() {
            Some((0, _)) => 0,
            Some((&code, message)) => {
                eprintln!("swarmccd: {}", String::from_utf8_lossy(message));
                i32::from(code)
            }
            None => {
                eprintln!(
                    "swarmccd: the server exited during startup without saying why (see its log)"
                );
                ExitCode::Distcc.code()
            }
        }
    }
}

/// The pid file: written after detaching, removed (or emptied, if the directory does
/// not let the unprivileged user remove it) when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    pub fn write(path: &Path) -> Result<PidFile, StartError> {
        let text = format!("{}\n", std::process::id());
        let written = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        written.map_err(|e| {
            StartError::new(
                ExitCode::IoError,
                format!("cannot write pid file {}: {e}", path.display()),
            )
        })?;
        Ok(PidFile {
            path: path.to_owned(),
        })
    }

    fn chown(&self, uid: libc::uid_t, gid: libc::gid_t) {
        if let Err(e) = std::os::unix::fs::chown(&self.path, Some(uid), Some(gid)) {
            log::warn!(
                "cannot hand pid file {} to uid {uid}: {e}",
                self.path.display()
            );
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if fs::remove_file(&self.path).is_err() {
            let _ = OpenOptions::new()
                .write(true)
                .open(&self.path)
                .and_then(|f| f.set_len(0));
        }
    }
}

struct Account {
    name: String,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

fn lookup_user(name: &str) -> Option<Account> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value for getpwnam_r to overwrite.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live, correctly sized storage for the call.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then(|| Account {
        name: name.to_owned(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

/// When running as root, becomes `user` (or distccd, distcc, nobody, uid 65534 in
/// that order), with no supplementary groups and no way to regain privileges. Returns
/// the user name when it switched.
fn drop_root(user: Option<&str>, pid_file: Option<&PidFile>) -> Result<Option<String>, StartError> {
    // SAFETY: getuid/geteuid cannot fail and have no preconditions.
    let root = unsafe { libc::getuid() == 0 || libc::geteuid() == 0 };
    if !root {
        if let Some(u) = user {
            log::debug!("--user {u} ignored: not started as root");
        }
        return Ok(None);
    }
    let account = match user {
        Some(name) => lookup_user(name).ok_or_else(|| {
            StartError::new(
                ExitCode::SetuidFailed,
                format!("--user {name}: no such user"),
            )
        })?,
        None => ["distccd", "distcc", "nobody"]
            .iter()
            .find_map(|n| lookup_user(n))
            .unwrap_or(Account {
                name: "uid 65534".to_owned(),
                uid: 65534,
                gid: 65534,
            }),
    };
    if account.uid == 0 {
        return Err(StartError::new(
            ExitCode::SetuidFailed,
            format!("refusing to run as root (--user {})", account.name),
        ));
    }
    if let Some(p) = pid_file {
        p.chown(account.uid, account.gid);
    }
    let fail = |what: &str| {
        StartError::new(
            ExitCode::SetuidFailed,
            format!(
                "cannot switch to user {} ({what}): {}",
                account.name,
                io::Error::last_os_error()
            ),
        )
    };
    // SAFETY: the group list is one valid gid that outlives the call.
    if unsafe { libc::setgroups(1, &account.gid) } != 0 {
        return Err(fail("setgroups"));
    }
    // SAFETY: setgid/setuid have no memory-safety preconditions.
    if unsafe { libc::setgid(account.gid) } != 0 {
        return Err(fail("setgid"));
    }
    // SAFETY: as above.
    if unsafe { libc::setuid(account.uid) } != 0 {
        return Err(fail("setuid"));
    }
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes plain integers.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        log::warn!("cannot set no_new_privs: {}", io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::getuid() == 0 || libc::geteuid() == 0 } {
        return Err(StartError::new(
            ExitCode::SetuidFailed,
            "still root after dropping privileges",
        ));
    }
    log::info!(
        "running as user {} (uid {}, gid {})",
        account.name,
        account.uid,
        account.gid
    );
    Ok(Some(account.name))
}

/// Direct gcc stages are learnt by running this executable as gcc's `-wrapper`
/// (`stages`): if the server's user cannot execute it (a binary under `/root`), every
/// learning run would fail, so the feature is turned off at once, with the reason.
fn check_recorder(cfg: &mut ServerConfig, user: Option<&str>) {
    use std::os::unix::ffi::OsStrExt;
    let Some(path) = &cfg.stage_recorder else {
        return;
    };
    let runnable = std::ffi::CString::new(path.as_os_str().as_bytes())
        // SAFETY: access only reads the path, a valid C string.
        .is_ok_and(|c| unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0);
    if !runnable {
        let who = user.map(|u| format!(" by user {u}")).unwrap_or_default();
        log::warn!(
            "gcc jobs run through their driver: {} cannot be executed{who} to learn their \
             stages (install swarmccd where that user can run it)",
            path.display()
        );
        cfg.stage_recorder = None;
    }
}

/// Fails early, with the reason, when jobs could not create their directories.
fn check_tmpdir(dir: &Path, user: Option<&str>) -> Result<(), StartError> {
    tempfile::Builder::new()
        .prefix("swarmccd_probe")
        .tempdir_in(dir)
        .map(drop)
        .map_err(|e| {
            let who = user.map(|u| format!(" by user {u}")).unwrap_or_default();
            StartError::new(
                ExitCode::IoError,
                format!(
                    "TMPDIR {} is not usable{who}: {e}; set TMPDIR to a directory it can write",
                    dir.display()
                ),
            )
        })
}

/// Set by the signal handler; copied into the server's shutdown flag by a watcher.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// SIGTERM, SIGINT and SIGHUP stop the server cleanly (the pid file is removed).
fn install_signal_handlers(shutdown: Arc<AtomicBool>) {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only performs an atomic store; a zeroed sigaction with
        // the handler set and an empty mask is valid.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
    thread::spawn(move || loop {
        if SIGNALLED.load(Ordering::SeqCst) {
            log::info!("signal received: shutting down");
            shutdown.store(true, Ordering::SeqCst);
            return;
        }
        thread::sleep(Duration::from_millis(100));
    });
}

/// `--inetd`: one connection on standard input and output: a socket from inetd, or
/// the pipes sshd gives the command a distcc client runs over ssh.
fn serve_inetd(cfg: ServerConfig, allow_given: bool, user: Option<&str>) -> Result<(), StartError> {
    let stream = Stream::take_stdio().map_err(|e| {
        StartError::new(
            ExitCode::IoError,
            format!("--inetd: standard input and output: {e}"),
        )
    })?;
    check_tmpdir(&cfg.tmpdir, user)?;
    // inetd (and tcpwrappers) do their own access control; an explicit --allow applies
    // to a TCP peer. Pipes have no peer address: allowed, as by distccd.
    let peer = stream.peer();
    if let Some(ip) = peer.ip() {
        if allow_given && !cfg.allow.allows(ip) {
            log::error!("connection from client '{peer}' denied by access list");
            return Ok(());
        }
    }
    super::serve_stream(stream, cfg);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("swarmccd").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn no_allow_means_loopback_only() {
        let (list, given) = allow_list(&cli(&[])).unwrap();
        assert!(!given);
        assert_eq!(list, AllowList::loopback());
        assert_eq!(
            default_listen(given, &list),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
    }

    #[test]
    fn listen_default_follows_the_allow_list() {
        let (list, given) = allow_list(&cli(&["-a", "10.0.0.0/8"])).unwrap();
        assert!(given);
        assert_eq!(default_listen(given, &list), access::ANY_V4);
        let (list, given) = allow_list(&cli(&["-a", "10.0.0.0/8", "-a", "fd00::/8"])).unwrap();
        assert_eq!(
            default_listen(given, &list),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        );
        let (list, given) = allow_list(&cli(&["--allow-private"])).unwrap();
        assert!(given && list.allows("::1".parse().unwrap()));
    }

    #[test]
    fn bad_allow_is_an_argument_error() {
        let e = allow_list(&cli(&["-a", "10.0.0.0/99"])).unwrap_err();
        assert_eq!(e.code, ExitCode::BadArguments);
    }

    #[test]
    fn config_from_flags_and_env() {
        let env = ServerEnv {
            distccd_path: Some("/opt/cc/bin:/usr/lib/distcc".into()),
            path: Some("/usr/bin".into()),
            tmpdir: "/var/tmp".into(),
            save_temps: true,
            ..ServerEnv::default()
        };
        let c = cli(&["-j", "3", "--job-lifetime", "9", "--whitelist-dir", "/w"]);
        let cfg = config(&c, &env, AllowList::loopback()).unwrap();
        assert_eq!(cfg.jobs, 3);
        assert_eq!(cfg.job_lifetime, Some(Duration::from_secs(9)));
        assert_eq!(
            cfg.admission.search_path,
            vec![PathBuf::from("/opt/cc/bin")]
        );
        assert!(cfg.admission.whitelist_dirs.contains(&PathBuf::from("/w")));
        assert!(cfg.save_temps);
        assert_eq!(cfg.tmpdir, PathBuf::from("/var/tmp"));
    }

    #[test]
    fn cmdlist_from_env() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("cmds");
        fs::write(&list, "/opt/x/bin/gcc\n").unwrap();
        let env = ServerEnv {
            cmdlist: Some(list),
            cmdlist_numwords: Some("2".into()),
            ..ServerEnv::default()
        };
        let cfg = config(&cli(&[]), &env, AllowList::loopback()).unwrap();
        let adm = &cfg.admission;
        assert_eq!(
            adm.admit_compiler("bin/gcc").unwrap(),
            Path::new("/opt/x/bin/gcc")
        );
        let bad = ServerEnv {
            cmdlist_numwords: Some("zero".into()),
            ..env
        };
        assert!(config(&cli(&[]), &bad, AllowList::loopback()).is_err());
    }

    #[test]
    fn auth_key_file_is_read_and_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("auth.key");
        crate::auth::generate_key_file(&key).unwrap();
        let k = key.to_str().unwrap();
        let cfg = config(
            &cli(&[
                "--auth-key-file",
                k,
                "--allow-unauthenticated",
                "10.1.0.0/16",
            ]),
            &ServerEnv::default(),
            AllowList::loopback(),
        )
        .unwrap();
        let policy = cfg.auth.expect("auth configured");
        assert!(policy
            .allow_unauthenticated
            .allows("10.1.2.3".parse().unwrap()));
        assert!(!policy
            .allow_unauthenticated
            .allows("127.0.0.1".parse().unwrap()));
        let none = config(&cli(&[]), &ServerEnv::default(), AllowList::loopback()).unwrap();
        assert!(none.auth.is_none());

        let bad = config(
            &cli(&[
                "--auth-key-file",
                k,
                "--allow-unauthenticated",
                "10.0.0.0/99",
            ]),
            &ServerEnv::default(),
            AllowList::loopback(),
        )
        .unwrap_err();
        assert!(bad.message.contains("--allow-unauthenticated"), "{bad}");

        fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
        let e = config(
            &cli(&["--auth-key-file", k]),
            &ServerEnv::default(),
            AllowList::loopback(),
        )
        .unwrap_err();
        assert!(e.message.contains(k) && e.message.contains("0640"), "{e}");
    }

    #[test]
    fn listen_values() {
        assert_eq!(
            parse_listen("127.0.0.1").unwrap(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            parse_listen("[::1]").unwrap(),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        );
        assert!(parse_listen("no-such-host.invalid").is_err());
    }
}
