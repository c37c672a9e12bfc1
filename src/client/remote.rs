//! One remote compile: local preprocessing overlapped with connecting, the request, and
//! the reply — or the reason it failed, so the caller can pick another host or fall back.
//!
//! Sockets are driven through `conn`; bytes are made and parsed by `protocol`. The
//! phases a monitor shows (Preprocess, Send, Compile, Receive) are written here, where
//! they begin.
//!
//! With a `,auth` host the attempt first runs the authentication handshake
//! (`protocol::auth`, keys and MACs in `crate::auth`), MACs the request as it is sent,
//! and accepts the reply only once its MAC checks out, so nothing a man in the middle
//! changed, nor anything from a server without the key, is ever written.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use tempfile::TempPath;

use crate::agent::LocalKind;
use crate::args::RemoteJob;
use crate::auth::{self, Key, Session};
use crate::client::direct_cpp::{CppPlans, DryRun, Learning, Lookup, Names};
use crate::client::lease::{Held, Scheduler};
use crate::client::local::CompilerCommand;
use crate::conn::{Conn, ConnError, TapDirection};
use crate::hosts::{HostKind, HostSpec};
use crate::protocol::auth::{self as wire, AuthDecoder, AuthMessage, Expect};
use crate::protocol::ext::{self, AdvertDecoder, Preamble, PreludeDecoder, ReplyPrelude};
use crate::protocol::{self, Limits, Reply, ReplyDecoder, ReplyEvent, Version};
use crate::state::{Phase, StateFile};
use crate::toolchain::LazyIdentity;
use crate::transport::{Dialer, Link, Route, Tunnel};

/// Why a remote attempt did not produce a reply.
#[derive(Debug)]
pub enum AttemptError {
    /// Could not resolve or connect to the host.
    Connect(String),
    /// The conversation failed (timeout, reset, truncated or malformed reply).
    Conn(ConnError),
    /// The local preprocessor failed: the source is at fault, not the host. The local
    /// compile will report the same error.
    Preprocess(String),
    /// The host closed on our extension request: it is not (or no longer) a swarmccd
    /// that speaks it. Retry in plain distcc.
    NoExtension(String),
    /// Authentication with a `,auth` host failed, or its reply could not be trusted.
    Auth(AuthFailure),
}

/// Why an authenticated attempt failed.
#[derive(Debug)]
pub enum AuthFailure {
    /// No usable key here (the message names the key file), or no randomness.
    Local(String),
    /// The handshake broke off: closed, garbled or timed out. A plain distccd does this
    /// when it receives `SWAU`.
    Handshake(String),
    /// The server said no (`SWNO`), and why: wrong key, authentication not enabled, or
    /// a request that failed its integrity check.
    Refused(String),
    /// The server's `SWOK` proof is wrong: it does not hold our key.
    ServerProof,
    /// The reply's MAC is missing or wrong: the reply is discarded.
    Reply(String),
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthFailure::Local(e) => write!(f, "cannot authenticate: {e}"),
            AuthFailure::Handshake(e) => write!(
                f,
                "authentication handshake failed ({e}); ,auth works only with swarmccd \
                 hosts started with --auth-key-file"
            ),
            AuthFailure::Refused(reason) => {
                write!(f, "authentication refused by the server: {reason}")
            }
            AuthFailure::ServerProof => write!(
                f,
                "authentication failed: the server did not prove it holds our key \
                 (different key files, or not the server we meant)"
            ),
            AuthFailure::Reply(why) => {
                write!(f, "reply failed its integrity check ({why}); discarded")
            }
        }
    }
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::Connect(e) => write!(f, "cannot connect: {e}"),
            AttemptError::Conn(e) => write!(f, "{e}"),
            AttemptError::Preprocess(e) => write!(f, "preprocessing failed: {e}"),
            AttemptError::NoExtension(e) => {
                write!(f, "the host does not speak swarmcc's extension ({e})")
            }
            AttemptError::Auth(e) => write!(f, "{e}"),
        }
    }
}

/// The preprocessed translation unit, kept across attempts so that a second host does
/// not cost a second preprocessing run.
#[derive(Debug)]
pub struct Preprocessed {
    /// Where the text is: the preprocessor's temp file, or the user's own `.i`.
    path: PathBuf,
    /// Removes the temp file when the job is over (`None`: not ours to remove).
    _temp: Option<TempPath>,
    /// The text, once something needed it in memory (compression, a MAC); a plain
    /// protocol-1 body goes from the file to the socket without it (`sendfile`).
    text: Option<Vec<u8>>,
    /// The preprocessor's own diagnostics (e.g. `#warning`), shown only if the remote
    /// result is accepted — a local fallback prints its own.
    pub stderr: Vec<u8>,
    /// The dependency file the preprocessor wrote, waiting to be moved into place.
    pub deps: Option<TempPath>,
}

impl Preprocessed {
    /// The text in memory, read from its file the first time.
    pub fn text(&mut self) -> Result<&[u8], String> {
        if self.text.is_none() {
            let text = std::fs::read(&self.path)
                .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
            self.text = Some(text);
        }
        Ok(self.text.as_deref().unwrap_or_default())
    }

    /// The text's file, open, and its length.
    fn open(&self) -> Result<(std::fs::File, u64), String> {
        let fail = |e: std::io::Error| format!("cannot read {}: {e}", self.path.display());
        let file = std::fs::File::open(&self.path).map_err(fail)?;
        let len = file.metadata().map_err(fail)?.len();
        Ok((file, len))
    }
}

enum CppState {
    Idle,
    Running(Box<RunningCpp>),
    Done(Result<Preprocessed, String>),
}

struct RunningCpp {
    child: Child,
    stderr: JoinHandle<Vec<u8>>,
    i_file: TempPath,
    deps: Option<TempPath>,
    /// The local preprocessing slot, held until the preprocessor exits.
    _slot: Option<Held>,
    way: CppWay,
    /// The driver's arguments, to run it again if the run without it failed.
    args: Vec<OsString>,
}

/// How the preprocessor was started (see `direct_cpp`).
enum CppWay {
    Driver,
    /// `cc1 -E` itself, from a learnt plan.
    Direct,
    /// The driver, recording its stage for the plan of this command's shape; with
    /// the environment the driver runs with, which the plan is relative to.
    Learn(Box<Learning>, Option<DryRun>, Vec<(OsString, OsString)>),
}

/// The local preprocessing step of one job.
pub struct Preprocessor<'a> {
    job: &'a RemoteJob,
    compiler: &'a CompilerCommand<'a>,
    tmpdir: &'a Path,
    save_temps: bool,
    sched: &'a Scheduler,
    /// `--localslots_cpp`: how many preprocessors may run here at once. There is no
    /// load gate here (make's `-l` gates local compiles only): make applied `-l` when
    /// it started this job, and holding its preprocessor back again on a busy machine
    /// leaves remote slots idle — distcc does not either.
    cpp_limit: u32,
    /// Learnt preprocessor command lines; `None`: always run the driver.
    plans: Option<&'a CppPlans>,
    state: CppState,
}

impl<'a> Preprocessor<'a> {
    pub fn new(
        job: &'a RemoteJob,
        compiler: &'a CompilerCommand<'a>,
        tmpdir: &'a Path,
        save_temps: bool,
        sched: &'a Scheduler,
        cpp_limit: u32,
    ) -> Self {
        Preprocessor {
            job,
            compiler,
            tmpdir,
            save_temps,
            sched,
            cpp_limit,
            plans: None,
            state: CppState::Idle,
        }
    }

    /// Lets the preprocessor run without its driver where `plans` knows how.
    pub fn with_plans(mut self, plans: Option<&'a CppPlans>) -> Self {
        self.plans = plans;
        self
    }

    fn names<'n>(&'n self, i_file: &'n str, deps: Option<&'n str>) -> Names<'n> {
        Names {
            input: &self.job.input,
            output: &self.job.output,
            i_file,
            deps,
        }
    }

    /// Starts the preprocessor in the background (no-op if already started).
    pub fn start(&mut self) {
        if !matches!(self.state, CppState::Idle) {
            return;
        }
        self.state = match self.spawn() {
            Ok(state) => state,
            Err(e) => CppState::Done(Err(e)),
        };
    }

    fn spawn(&mut self) -> Result<CppState, String> {
        if self.job.preprocessed_input {
            return Ok(CppState::Done(Ok(Preprocessed {
                path: PathBuf::from(&self.job.input),
                _temp: None,
                text: None,
                stderr: Vec::new(),
                deps: None,
            })));
        }
        let i_file = tempfile::Builder::new()
            .prefix("swarmcc_")
            .suffix(self.job.preprocessed_ext)
            .tempfile_in(self.tmpdir)
            .map_err(|e| {
                format!(
                    "cannot create a temporary file in {}: {e}",
                    self.tmpdir.display()
                )
            })?
            .into_temp_path();
        let deps = match &self.job.dep_file {
            Some(d) => Some(deps_temp(Path::new(d))?),
            None => None,
        };
        let i_str = i_file.to_string_lossy().into_owned();
        let d_str = deps.as_ref().map(|d| d.to_string_lossy().into_owned());
        let argv = self.job.cpp_argv(&i_str, d_str.as_deref());
        let args: Vec<OsString> = argv.iter().skip(1).map(OsString::from).collect();
        log::debug!("preprocessing: {}", shell_words::join(&argv));
        // Many remote slots must not mean as many local preprocessors: like distcc, a
        // job preprocesses only while holding one of the --localslots_cpp slots.
        let slot = self
            .sched
            .local(LocalKind::Preprocess, self.cpp_limit, None);
        if let Some(st) = self.sched.state() {
            // As distcc: the local preprocessor shows as localhost and its local slot.
            st.phase_on(
                Phase::Preprocess,
                "localhost",
                slot.as_ref().map_or(0, |s| s.slot),
            );
        }
        let names = self.names(&i_str, d_str.as_deref());
        let (lookup, env) = match self.plans {
            Some(plans) => {
                let env = self.compiler.driver_env();
                let lookup = plans.lookup(self.compiler.program, &argv, &names, &env);
                (lookup, env)
            }
            None => (Lookup::Driver, Vec::new()),
        };
        let (mut cmd, way) = match lookup {
            Lookup::Direct(cmd) => {
                let line: Vec<_> = std::iter::once(cmd.get_program())
                    .chain(cmd.get_args())
                    .map(|a| a.to_string_lossy())
                    .collect();
                log::debug!(
                    "preprocessing without the driver, as learnt: {}",
                    shell_words::join(line)
                );
                (cmd, CppWay::Direct)
            }
            Lookup::Driver => (self.compiler.command_with(&args), CppWay::Driver),
            Lookup::Learn(learning) => {
                let mut cmd = self.compiler.command_with(&args);
                let dry =
                    learning.prepare(&mut cmd, self.compiler.command_with(&[]), &argv, &names);
                (cmd, CppWay::Learn(Box::new(learning), dry, env))
            }
        };
        let (child, stderr) = spawn_cpp(&mut cmd)
            .map_err(|e| format!("cannot run {}: {e}", self.compiler.program.display()))?;
        Ok(CppState::Running(Box::new(RunningCpp {
            child,
            stderr,
            i_file,
            deps,
            _slot: slot,
            way,
            args,
        })))
    }

    /// Waits for the preprocessor and returns its output.
    pub fn wait(&mut self) -> Result<&mut Preprocessed, String> {
        self.start();
        if let CppState::Running(_) = self.state {
            let CppState::Running(running) = std::mem::replace(&mut self.state, CppState::Idle)
            else {
                unreachable!()
            };
            let RunningCpp {
                mut child,
                stderr,
                i_file,
                deps,
                _slot,
                way,
                args,
            } = *running;
            let mut status = child.wait();
            let mut err_text = stderr.join().unwrap_or_default();
            let ok = matches!(&status, Ok(s) if s.success());
            let rerun = match way {
                CppWay::Driver => false,
                CppWay::Direct => !ok,
                CppWay::Learn(learning, dry, env) => {
                    // A driver that refused `-wrapper` never reached the recorder.
                    let refused = !ok && !learning.recorded();
                    let i_str = i_file.to_string_lossy();
                    let d_str = deps.as_ref().map(|d| d.to_string_lossy());
                    let names = self.names(&i_str, d_str.as_deref());
                    match learning.finish(ok, dry, &names, &env) {
                        Some(told) => log::debug!(
                            "learnt how {} preprocesses commands of this shape: {told}",
                            self.compiler.program.display()
                        ),
                        None => log::debug!("nothing learnt from this preprocessing run"),
                    }
                    refused
                }
            };
            if rerun {
                log::debug!("the preprocessor did not succeed that way; running the driver");
                match spawn_cpp(&mut self.compiler.command_with(&args)) {
                    Ok((mut child, stderr)) => {
                        status = child.wait();
                        err_text = stderr.join().unwrap_or_default();
                    }
                    Err(e) => status = Err(e),
                }
            }
            drop(_slot);
            let (path, temp) = if self.save_temps {
                match i_file.keep() {
                    Ok(path) => (path, None),
                    Err(e) => (e.path.to_path_buf(), Some(e.path)),
                }
            } else {
                (i_file.to_path_buf(), Some(i_file))
            };
            let result = match status {
                Ok(s) if s.success() => Ok(Preprocessed {
                    path,
                    _temp: temp,
                    text: None,
                    stderr: err_text,
                    deps,
                }),
                Ok(s) => Err(format!(
                    "{} exited with {}{}",
                    self.compiler.program.display(),
                    s,
                    if err_text.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", String::from_utf8_lossy(&err_text).trim_end())
                    }
                )),
                Err(e) => Err(format!("waiting for the preprocessor: {e}")),
            };
            self.state = CppState::Done(result);
        }
        match &mut self.state {
            CppState::Done(Ok(p)) => Ok(p),
            CppState::Done(Err(e)) => Err(e.clone()),
            _ => unreachable!("preprocessor state after wait"),
        }
    }
}

impl Drop for Preprocessor<'_> {
    fn drop(&mut self) {
        if let CppState::Running(running) = &mut self.state {
            // Waited for, not killed: killing the gcc driver leaves its cc1 running,
            // which then writes the dependency file after its temporary name was
            // removed, leaving `.swarmcc-*.d.tmp` beside the user's objects (seen when
            // a connection failed at once and the job fell back).
            let _ = running.child.wait();
        }
    }
}

/// Starts a preprocessor with its diagnostics collected by a thread.
fn spawn_cpp(cmd: &mut Command) -> std::io::Result<(Child, JoinHandle<Vec<u8>>)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut pipe = child.stderr.take().expect("stderr was piped");
    let stderr = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    });
    Ok((child, stderr))
}

/// A temporary file beside the final `.d`, so that moving it into place is a rename.
fn deps_temp(final_path: &Path) -> Result<TempPath, String> {
    let dir = match final_path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    tempfile::Builder::new()
        .prefix(".swarmcc-")
        .suffix(".d.tmp")
        .tempfile_in(&dir)
        .map(|f| f.into_temp_path())
        .map_err(|e| format!("cannot create a temporary file in {}: {e}", dir.display()))
}

/// Timeouts of one attempt, kept apart so a long compile is not taken for a dead link.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub io: Duration,
    pub compile: Duration,
    /// Silence that means a swarmccd sending keep-alives is gone.
    pub stall: Duration,
}

/// What the attempt talks to.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub route: Route<'a>,
    /// How routes are opened (`DISTCC_SSH`, `DISTCC_SOCKS_PROXY`).
    pub dialer: &'a Dialer,
    pub version: Version,
    /// The slot held on the host (for the monitor's `host[slot]`).
    pub slot: u32,
    /// Where the phases go (none without a state file).
    pub state: Option<&'a StateFile>,
    /// `,auth` hosts: the key file to authenticate with. `None`: plain distcc.
    pub auth_key: Option<&'a Path>,
    /// Hosts that speak (or may speak) swarmcc's extension: our compiler's identity,
    /// sent so that the server refuses a different compiler. `None`: plain distcc.
    pub ext: Option<&'a LazyIdentity<'a>>,
}

/// How a host of the list is reached; `None` for `localhost` (no daemon: jobs run
/// here).
pub fn route_of(host: &HostSpec) -> Option<Route<'_>> {
    match &host.kind {
        HostKind::Localhost => None,
        HostKind::Tcp { host, port } => Some(Route::Tcp { host, port: *port }),
        HostKind::Ssh {
            user,
            host,
            command,
        } => Some(Route::Ssh {
            user: user.as_deref(),
            host,
            command: command.as_deref(),
        }),
    }
}

/// A reply, and whether the host offered the extension after it.
#[derive(Debug)]
pub struct Answer {
    pub reply: Reply,
    /// The host is a swarmccd that speaks the extension (it advertised it, or just
    /// answered in it).
    pub offers_ext: bool,
}

/// Runs one remote compile on `target`. The preprocessor is started before connecting,
/// so both overlap; the request header goes out while it still runs.
pub fn attempt(
    target: &Target<'_>,
    remote_argv: &[String],
    cpp: &mut Preprocessor<'_>,
    timeouts: Timeouts,
) -> Result<Answer, AttemptError> {
    cpp.start();
    // Read the key before connecting: without it there is nothing to say to the host.
    let key = match target.auth_key {
        Some(path) => Some(auth::load_key_file(path).map_err(AuthFailure::Local)?),
        None => None,
    };
    let Link { stream, tunnel } = target
        .dialer
        .open(target.route, timeouts.connect)
        .map_err(AttemptError::Connect)?;
    let mut conn = Conn::new(stream, timeouts.io);
    let result = converse(target, &mut conn, key.as_ref(), remote_argv, cpp, timeouts);
    // Closed before ssh is reaped: its end of the connection then ends too.
    drop(conn);
    match tunnel {
        Some(tunnel) => over_ssh(tunnel, result),
        None => result,
    }
}

/// The result of an attempt over ssh, once ssh is reaped: a conversation that failed
/// because ssh did (or the remote shell), not the server, is a failure to connect.
fn over_ssh(
    mut tunnel: Tunnel,
    result: Result<Answer, AttemptError>,
) -> Result<Answer, AttemptError> {
    match result {
        Err(AttemptError::Preprocess(e)) => {
            tunnel.abandon();
            Err(AttemptError::Preprocess(e))
        }
        Err(e) => {
            let why = tunnel.failure();
            tunnel.abandon();
            Err(why.map_or(e, AttemptError::Connect))
        }
        Ok(answer) => {
            tunnel.close();
            Ok(answer)
        }
    }
}

/// The conversation of one attempt on an open connection.
fn converse(
    target: &Target<'_>,
    conn: &mut Conn,
    key: Option<&Key>,
    remote_argv: &[String],
    cpp: &mut Preprocessor<'_>,
    timeouts: Timeouts,
) -> Result<Answer, AttemptError> {
    let session = match key {
        Some(key) => {
            // A swarmccd answers the handshake at once, as it accepts a connection, so
            // its steps get the connect timeout: a plain distccd never answers SWAU
            // (it keeps reading, to quote more of what it got in its error message).
            let session = handshake(conn, key, timeouts.connect)?;
            // From here on every request byte goes into the request MAC.
            conn.start_tap(TapDirection::Sent, session.transcript());
            Some(session)
        }
        None => None,
    };
    let mut out = Vec::with_capacity(1024);
    let version = if target.ext.is_some() {
        // The extension carries a protocol-1 request: its bodies are zstd, not LZO.
        // Compression only where the host list asks for it (`,lzo`): on a fast link
        // it costs more CPU than it saves in time, as with distcc.
        let mut features = vec![ext::KEEPALIVE.to_owned()];
        if target.version == Version::V2 {
            features.push(ext::ZSTD.into());
        }
        let preamble = Preamble {
            features,
            identity: target.ext.map(|i| i.get().to_owned()).unwrap_or_default(),
        };
        ext::encode_preamble(&preamble, &mut out)
            .map_err(|e| AttemptError::Conn(ConnError::Protocol(e)))?;
        Version::V1
    } else {
        target.version
    };
    let ext_failed = |e: ConnError| -> AttemptError {
        // A plain distccd closes at once on the extension's version number.
        let refused = matches!(&e, ConnError::Eof { mid_message: false })
            || matches!(&e, ConnError::Io(io) if matches!(io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe));
        if target.ext.is_some() && refused {
            AttemptError::NoExtension(e.to_string())
        } else {
            AttemptError::Conn(e)
        }
    };
    protocol::encode_request_header(version, None, remote_argv, &mut out)
        .map_err(|e| AttemptError::Conn(ConnError::Protocol(e)))?;
    conn.send(&out).map_err(ext_failed)?;

    let pre = match cpp.wait() {
        Ok(pre) => pre,
        Err(e) => {
            conn.close_unsent();
            return Err(AttemptError::Preprocess(e));
        }
    };
    let phase = |p: Phase| {
        if let Some(st) = target.state {
            st.phase_on(p, target.route.host(), target.slot);
        }
    };
    phase(Phase::Send);
    out.clear();
    let zstd = target.ext.is_some() && target.version == Version::V2;
    if version == Version::V1 && !zstd && !conn.tapping() {
        // Straight from the file to the socket: no copy of the text in memory.
        let (file, len) = pre.open().map_err(AttemptError::Preprocess)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        protocol::encode_source_header(len, &mut out)
            .map_err(|e| AttemptError::Conn(ConnError::Protocol(e)))?;
        conn.send(&out).map_err(ext_failed)?;
        conn.send_file(&file, len as u64).map_err(ext_failed)?;
    } else {
        send_source_in_memory(conn, version, zstd, pre, &mut out, &ext_failed)?;
    }
    // The request's MAC follows it; the tap saw every byte of it.
    if let Some(request_mac) = conn.stop_tap() {
        out.clear();
        wire::encode_mac(&request_mac.finish(), &mut out);
        conn.send(&out).map_err(AttemptError::Conn)?;
    }
    drop(out);
    // The request is out: the server compiles, we wait.
    phase(Phase::Compile);
    // Before the reply: with the extension, keep-alives bound the silence instead of
    // the compile timeout.
    let mut first_wait = timeouts.compile;
    if session.is_some() {
        // Instead of a reply, a server that found the request altered says so.
        let mut start = AuthDecoder::new(Expect::ReplyStart);
        match conn.next_event(&mut start, Some(timeouts.compile)) {
            Ok(AuthMessage::Refuse { reason }) => {
                return Err(AttemptError::Auth(AuthFailure::Refused(reason)))
            }
            Ok(_) => {}
            Err(e) => return Err(ext_failed(e)),
        }
    }
    if target.ext.is_some() {
        // Keep-alives come every second: silence means the server is gone, however
        // long the compile. (Not the I/O timeout: set low for data transfers, it would
        // take a keep-alive interval for a stall.)
        let silence = timeouts.stall.min(timeouts.compile);
        loop {
            match conn.next_event(&mut PreludeDecoder, Some(silence)) {
                Ok(ReplyPrelude::KeepAlive) | Ok(ReplyPrelude::Accepted(_)) => {}
                Ok(ReplyPrelude::Reply) => break,
                Err(e) => return Err(ext_failed(e)),
            }
        }
        first_wait = silence;
    }
    if let Some(session) = &session {
        conn.start_tap(TapDirection::Received, session.transcript());
    }

    let mut decoder = ReplyDecoder::new(version, Limits::default(), false);
    let mut reply = Reply::default();
    let mut first = true;
    while !decoder.is_complete() {
        let wait = if first { Some(first_wait) } else { None };
        let event = conn
            .next_event(&mut decoder, wait)
            .map_err(AttemptError::Conn)?;
        first = false;
        match event {
            ReplyEvent::Started => phase(Phase::Receive),
            ReplyEvent::Status(s) => reply.status = s,
            ReplyEvent::Stderr(b) => reply.stderr = b,
            ReplyEvent::Stdout(b) => reply.stdout = b,
            ReplyEvent::Object(b) => reply.object = b,
            ReplyEvent::Deps(b) => reply.deps = Some(b),
        }
    }
    if let Some(reply_mac) = conn.stop_tap() {
        let fail = |why: String| AttemptError::Auth(AuthFailure::Reply(why));
        match conn.next_event(&mut AuthDecoder::new(Expect::Mac), None) {
            Ok(AuthMessage::Mac { mac }) if reply_mac.verify(&mac) => {}
            Ok(_) => return Err(fail("MAC mismatch".into())),
            Err(e) => return Err(fail(format!("no SWMC after it: {e}"))),
        }
    }
    if zstd && reply.status == 0 {
        // We asked for zstd and swarmccd always grants it: the object is packed.
        reply.object = zstd::bulk::decompress(&reply.object, MAX_OBJECT)
            .map_err(|e| AttemptError::Conn(ConnError::Io(e)))?;
    }
    let offers_ext = target.ext.is_some() || advertised(conn);
    Ok(Answer { reply, offers_ext })
}

/// Level 1: zstd's fastest, already smaller than LZO; the link is rarely the limit.
const ZSTD_LEVEL: i32 = 1;
/// The largest object we unpack (as the plain protocol's limit).
const MAX_OBJECT: usize = 2 * 1024 * 1024 * 1024 - 1;

/// Whether the server sent the extension's advertisement after its reply. It arrives
/// with the reply's last bytes, so a short wait is plenty.
fn advertised(conn: &mut Conn) -> bool {
    matches!(
        conn.next_event(&mut AdvertDecoder, Some(Duration::from_millis(50))),
        Ok(true)
    )
}

impl From<AuthFailure> for AttemptError {
    fn from(e: AuthFailure) -> Self {
        AttemptError::Auth(e)
    }
}

/// The client's half of the handshake: `SWAU`, the server's nonce, our nonce and
/// proof, and the server's proof. Returns the session key for the request and reply
/// MACs.
fn handshake(conn: &mut Conn, key: &Key, wait: Duration) -> Result<Session, AuthFailure> {
    let mut out = Vec::with_capacity(wire::NONCE_LEN + wire::MAC_LEN + 12);
    wire::encode_hello(&mut out);
    conn.send(&out)
        .map_err(|e| AuthFailure::Handshake(e.to_string()))?;
    let step = |conn: &mut Conn, expect: Expect| {
        conn.next_event(&mut AuthDecoder::new(expect), Some(wait))
            .map_err(|e| AuthFailure::Handshake(e.to_string()))
    };
    let ns = match step(conn, Expect::Challenge)? {
        AuthMessage::Challenge { server_nonce } => server_nonce,
        AuthMessage::Refuse { reason } => return Err(AuthFailure::Refused(reason)),
        other => return Err(unexpected(other)),
    };
    let nc = auth::nonce().map_err(AuthFailure::Local)?;
    out.clear();
    wire::encode_response(&nc, &key.client_proof(&ns, &nc), &mut out);
    conn.send(&out)
        .map_err(|e| AuthFailure::Handshake(e.to_string()))?;
    match step(conn, Expect::Verdict)? {
        AuthMessage::Accept { mac } if key.verify_server_proof(&ns, &nc, &mac) => {}
        AuthMessage::Accept { .. } => return Err(AuthFailure::ServerProof),
        AuthMessage::Refuse { reason } => return Err(AuthFailure::Refused(reason)),
        other => return Err(unexpected(other)),
    }
    Ok(key.session(&ns, &nc))
}

/// A message the decoder let through but this step has no use for (the decoders above
/// never do; reported rather than trusted).
fn unexpected(message: AuthMessage) -> AuthFailure {
    AuthFailure::Handshake(format!("unexpected message {message:?}"))
}

/// Sends the source from memory: compressed (zstd for the extension, LZO for protocol
/// 2), or under an authenticated session's MAC, which must see the bytes.
fn send_source_in_memory(
    conn: &mut Conn,
    version: Version,
    zstd: bool,
    pre: &mut Preprocessed,
    out: &mut Vec<u8>,
    ext_failed: &dyn Fn(ConnError) -> AttemptError,
) -> Result<(), AttemptError> {
    let text = pre.text().map_err(AttemptError::Preprocess)?;
    let packed;
    let body: &[u8] = if zstd {
        packed = zstd::bulk::compress(text, ZSTD_LEVEL)
            .map_err(|e| AttemptError::Conn(ConnError::Io(e)))?;
        &packed
    } else {
        text
    };
    let encoded = if version == Version::V1 {
        // Sent as it is: the header, then the body itself, without copying it.
        protocol::encode_source_header(body.len(), out)
    } else {
        // Protocol 2: LZO packs it into `out`.
        protocol::encode_source(version, body, out)
    };
    encoded.map_err(|e| AttemptError::Conn(ConnError::Protocol(e)))?;
    conn.send(out).map_err(ext_failed)?;
    if version == Version::V1 {
        conn.send(body).map_err(ext_failed)?;
    }
    Ok(())
}
