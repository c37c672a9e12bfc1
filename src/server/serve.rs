//! One connection, one job: read the request, apply the policy, compile in a private
//! temp directory, answer, clean up, and write the one-line job summary.
//!
//! Bytes on the socket go through `conn` and the `protocol` decoders and encoders;
//! what may run is decided by `whitelist`; running it is `exec`. Every refusal of a
//! fully read request is answered (status 110, reason in `SERR`) rather than closed
//! silently as distccd does, so the user can see why; only unreadable streams (bad
//! bytes, unknown version, a client that vanished) are closed without a reply.
//!
//! Each job ends by reporting to the shared `stats` counters: its result, why it was
//! refused, how long the compiler ran, and the bytes it moved.

use std::fmt;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::args::{self, filename, Decision, RemoteJob};
use crate::auth::{self, Key, Session};
use crate::conn::{Conn, ConnError, TapDirection};
use crate::exec::{self, End};
use crate::exit::ExitCode;
use crate::protocol::auth::{self as wire, AuthDecoder, AuthMessage, Expect};
use crate::protocol::{
    encode_reply, Error as ProtocolError, Reply, RequestDecoder, RequestEvent, Version,
};
use crate::sandbox;

use super::access::AllowList;
use super::stats::{JobRecord, RejectReason, Stats};
use super::whitelist::{check_arguments, Refusal};
use super::Shared;

/// The wait status every refusal is answered with: exit 110, distcc's "compiler
/// missing", which clients treat as a failed remote compile and retry locally.
pub const REFUSAL_STATUS: u32 = (ExitCode::CompilerMissing as u32) << 8;

/// The wait status of an answer saying the server itself failed (no space for the
/// job, cannot create its directory…): exit 107, distcc's I/O error.
pub const SERVER_FAULT_STATUS: u32 = (ExitCode::IoError as u32) << 8;

/// The job summary's result field, as distccd names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobResult {
    CompileOk,
    CompileError,
    CompileTimeout,
    CliDisconn,
    RejBadReq,
    Other,
}

impl fmt::Display for JobResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobResult::CompileOk => "COMPILE_OK",
            JobResult::CompileError => "COMPILE_ERROR",
            JobResult::CompileTimeout => "COMPILE_TIMEOUT",
            JobResult::CliDisconn => "CLI_DISCONN",
            JobResult::RejBadReq => "REJ_BAD_REQ",
            JobResult::Other => "OTHER",
        })
    }
}

/// What the job log line reports.
#[derive(Debug)]
struct Summary {
    result: JobResult,
    status: u32,
    ret: i32,
    reason: Option<String>,
    /// The refusal's category, for the statistics.
    reject: Option<RejectReason>,
    /// How long the compiler ran, if it was started.
    compile_time: Option<Duration>,
}

impl Summary {
    fn new(result: JobResult, status: u32, ret: i32) -> Self {
        Summary {
            result,
            status,
            ret,
            reason: None,
            reject: None,
            compile_time: None,
        }
    }

    fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    fn rejected(mut self, why: RejectReason) -> Self {
        self.reject = Some(why);
        self
    }

    fn compiled_for(mut self, took: Duration) -> Self {
        self.compile_time = Some(took);
        self
    }

    fn disconnected(ret: ExitCode, why: impl Into<String>) -> Self {
        Summary::new(JobResult::CliDisconn, 0, ret.code()).because(why)
    }
}

/// The parts of a request we keep.
struct Request {
    version: Version,
    argv: Vec<String>,
    /// v1/v2: the preprocessed source. v3: `None` (files are received and dropped).
    source: Option<Vec<u8>>,
}

/// What the job log names: the compiler and input as the client sent them.
#[derive(Default)]
struct Names {
    compiler: String,
    input: String,
}

/// Serves one accepted, allowed connection and logs its summary line.
pub(crate) fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let start = Instant::now();
    let mut names = Names::default();
    let mut conn = Conn::new(stream, shared.cfg.io_timeout);
    // Authentication (when configured, or when the client asks for it) comes before
    // the request; its outcome is part of the job line's reason.
    let summary = match authenticate(&mut conn, peer, shared) {
        Ok(auth) => {
            let summary = serve(&mut conn, peer, shared, &mut names, &auth);
            auth.annotate(summary)
        }
        Err(summary) => summary,
    };
    let elapsed = start.elapsed();
    shared.stats.record(&JobRecord {
        result: summary.result,
        reject: summary.reject,
        compile_time: summary.compile_time,
        elapsed,
        compiler: &names.compiler,
        input: &names.input,
        bytes_in: bytes_received(conn.stream()),
    });
    drop(conn);
    let mut line = format!(
        "client: {peer} {} exit:{} sig:{} core:{} ret:{} time:{}ms",
        summary.result,
        exec::exit_code(summary.status).unwrap_or(0),
        exec::signal(summary.status).unwrap_or(0),
        u8::from(exec::core_dumped(summary.status)),
        summary.ret,
        elapsed.as_millis(),
    );
    if !names.compiler.is_empty() {
        line.push(' ');
        line.push_str(&names.compiler);
    }
    if !names.input.is_empty() {
        line.push(' ');
        line.push_str(&names.input);
    }
    if let Some(reason) = &summary.reason {
        line.push_str(&format!(" ({reason})"));
    }
    log::info!("{line}");
}

fn serve(
    conn: &mut Conn,
    peer: SocketAddr,
    shared: &Shared,
    names: &mut Names,
    auth: &AuthState,
) -> Summary {
    if let AuthState::Session(session) = auth {
        // The request MAC covers exactly the bytes the request decoder consumes.
        conn.start_tap(TapDirection::Received, session.transcript());
    }
    let req = match read_request(conn, shared) {
        Ok(req) => req,
        Err(summary) => {
            // Disconnects are routine; a malformed request is worth a warning.
            if let (JobResult::RejBadReq, Some(why)) = (summary.result, &summary.reason) {
                log::warn!("client {peer}: {why}");
            }
            return summary;
        }
    };
    names.compiler = req.argv.first().cloned().unwrap_or_default();
    match auth {
        AuthState::Required => {
            // A plain distcc client: answered in its own protocol, so that it prints
            // the reason and compiles locally.
            log::warn!("client {peer}: refused: {AUTH_REQUIRED}");
            let refusal = Refusal::new(ExitCode::AccessDenied, AUTH_REQUIRED);
            return answer_refusal(conn, shared, req.version, &refusal, RejectReason::Auth);
        }
        AuthState::Session(session) => {
            if let Err(summary) = check_request_mac(conn, peer, shared, session) {
                return summary;
            }
        }
        AuthState::Off | AuthState::Exempt => {}
    }
    let (job, program) = match decide(&req, shared, names) {
        Ok(plan) => plan,
        Err((why, refusal)) => {
            log::warn!("client {peer}: refused: {refusal}");
            return answer_refusal(conn, shared, req.version, &refusal, why);
        }
    };
    let source = req.source.unwrap_or_default();
    compile(conn, peer, shared, req.version, &job, &program, &source)
}

/// Reads one whole request. Errors are summaries: the stream is unusable afterwards.
fn read_request(conn: &mut Conn, shared: &Shared) -> Result<Request, Summary> {
    conn.set_deadline(Some(Instant::now() + shared.cfg.request_timeout));
    let request = read_request_within_deadline(conn, shared);
    conn.set_deadline(None);
    request
}

fn read_request_within_deadline(conn: &mut Conn, shared: &Shared) -> Result<Request, Summary> {
    let wait = Some(shared.cfg.io_timeout);
    let mut decoder = RequestDecoder::new(shared.cfg.limits);
    let (version, argv) = match conn.next_event(&mut decoder, wait) {
        Ok(RequestEvent::Header { version, argv, .. }) => (version, argv),
        Ok(other) => {
            return Err(
                Summary::new(JobResult::RejBadReq, 0, ExitCode::ProtocolError.code())
                    .because(format!(
                        "bad request: unexpected {other:?} before the header"
                    ))
                    .rejected(RejectReason::BadRequest),
            )
        }
        Err(ConnError::Eof { mid_message: false }) => {
            return Err(
                Summary::new(JobResult::Other, 0, ExitCode::Truncated.code())
                    .because("closed without sending a request"),
            )
        }
        Err(e) => return Err(read_failure(e)),
    };
    let source = match version {
        Version::V1 | Version::V2 => match conn.next_event(&mut decoder, wait) {
            Ok(RequestEvent::Source(s)) => Some(s),
            Err(ConnError::Protocol(e @ ProtocolError::TooLarge { .. })) => {
                // A well-formed request for a source beyond our limits: answer it, so
                // the client compiles locally instead of blaming (and avoiding) us.
                let why = format!("source {e}; compile it locally");
                log::warn!("{why}");
                let summary = answer_refusal(
                    conn,
                    shared,
                    version,
                    &Refusal::new(ExitCode::OutOfMemory, why),
                    RejectReason::TooLarge,
                );
                // Then read and drop the rest: closing with unread bytes would reset
                // the connection, and the client would lose the answer.
                let _ = conn.stream().shutdown(std::net::Shutdown::Write);
                conn.discard_rest();
                return Err(summary);
            }
            Ok(other) => {
                return Err(
                    Summary::new(JobResult::RejBadReq, 0, ExitCode::ProtocolError.code())
                        .because(format!("bad request: expected DOTI, got {other:?}"))
                        .rejected(RejectReason::BadRequest),
                )
            }
            Err(e) => return Err(read_failure(e)),
        },
        Version::V3 => {
            // Read (and drop) every file, so that the refusal can be answered in-protocol.
            while !decoder.is_complete() {
                if let Err(e) = conn.next_event(&mut decoder, wait) {
                    return Err(read_failure(e));
                }
            }
            None
        }
    };
    Ok(Request {
        version,
        argv,
        source,
    })
}

fn read_failure(e: ConnError) -> Summary {
    match e {
        ConnError::Protocol(p) => {
            Summary::new(JobResult::RejBadReq, 0, ExitCode::ProtocolError.code())
                .because(format!("bad request: {p}"))
                .rejected(RejectReason::BadRequest)
        }
        ConnError::Eof { .. } => {
            Summary::disconnected(ExitCode::IoError, format!("reading the request: {e}"))
        }
        ConnError::Timeout { .. } => {
            Summary::disconnected(ExitCode::Timeout, format!("reading the request: {e}"))
        }
        ConnError::Io(_) => {
            Summary::disconnected(ExitCode::IoError, format!("reading the request: {e}"))
        }
    }
}

/// The policy, in order: protocol version, compiler admission, forbidden options, and
/// the same argument scan as the client (one C-family input, `-c`/`-S`, one output…).
/// Records the input's name in `names` for the job log as soon as it is known.
fn decide(
    req: &Request,
    shared: &Shared,
    names: &mut Names,
) -> Result<(RemoteJob, PathBuf), (RejectReason, Refusal)> {
    let decision = args::classify(&req.argv);
    if let Decision::Remote(job) = &decision {
        names.input = job.input.clone();
    }
    if req.version == Version::V3 {
        return Err((
            RejectReason::Pump,
            Refusal::new(
                ExitCode::ProtocolError,
                "pump mode (protocol 3, ,cpp) is not supported by this server; \
                 list it without ,cpp to send preprocessed sources",
            ),
        ));
    }
    let Some(argv0) = req.argv.first() else {
        return Err((
            RejectReason::BadRequest,
            Refusal::new(ExitCode::BadArguments, "empty command line"),
        ));
    };
    let program = shared
        .cfg
        .admission
        .admit_compiler(argv0)
        .map_err(|r| (RejectReason::Whitelist, r))?;
    check_arguments(&req.argv).map_err(|r| (RejectReason::ForbiddenOption, r))?;
    match decision {
        Decision::Remote(job) => Ok((job, program)),
        Decision::Local(reason) => Err((
            RejectReason::NotDistributable,
            Refusal::new(
                ExitCode::BadArguments,
                format!("cannot compile this command remotely: {reason}"),
            ),
        )),
    }
}

fn answer_refusal(
    conn: &mut Conn,
    shared: &Shared,
    version: Version,
    refusal: &Refusal,
    why: RejectReason,
) -> Summary {
    // The server's own failures say so with their own status, so that swarmcc backs
    // this host off; a distcc client retries locally on any failure status.
    let status = if why == RejectReason::ServerError {
        SERVER_FAULT_STATUS
    } else {
        REFUSAL_STATUS
    };
    let reply = Reply {
        status,
        stderr: refusal.client_message().into_bytes(),
        ..Reply::default()
    };
    let summary = Summary::new(JobResult::Other, status, refusal.code.code())
        .because(refusal.reason.clone())
        .rejected(why);
    match send_reply(conn, &shared.stats, version, &reply) {
        Ok(()) => summary,
        // Still a refusal, whether or not the client heard it.
        Err(e) => Summary::disconnected(ExitCode::IoError, format!("sending the refusal: {e}"))
            .rejected(why),
    }
}

fn send_reply(
    conn: &mut Conn,
    stats: &Stats,
    version: Version,
    reply: &Reply,
) -> Result<(), String> {
    let mut bytes = Vec::new();
    encode_reply(version, reply, &mut bytes).map_err(|e| format!("cannot encode: {e}"))?;
    conn.send(&bytes).map_err(|e| e.to_string())?;
    stats.sent(bytes.len());
    // In an authenticated session the tap (started once the request's MAC checked out)
    // has seen exactly this reply: its MAC follows it.
    if let Some(reply_mac) = conn.stop_tap() {
        bytes.clear();
        wire::encode_mac(&reply_mac.finish(), &mut bytes);
        conn.send(&bytes).map_err(|e| e.to_string())?;
        stats.sent(bytes.len());
    }
    Ok(())
}

/// Bytes the kernel received on this connection (`TCP_INFO`), 0 if it cannot say.
/// Exact wire bytes, compressed or not, without touching the read path.
fn bytes_received(stream: &TcpStream) -> u64 {
    // SAFETY: an all-zero tcp_info is a valid value for getsockopt to overwrite.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` and `len` are valid, writable and describe the same storage.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    // Kernels before 4.1 return a shorter struct without the byte counters.
    let needed = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_received) + 8;
    if rc == 0 && len as usize >= needed {
        info.tcpi_bytes_received
    } else {
        0
    }
}

/// A private directory per job, removed on drop unless temps are saved.
struct JobDir {
    dir: Option<tempfile::TempDir>,
}

impl JobDir {
    fn create(shared: &Shared) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("swarmccd_")
            .tempdir_in(&shared.cfg.tmpdir)?;
        let mut me = JobDir { dir: Some(dir) };
        if shared.cfg.save_temps {
            if let Some(d) = me.dir.take() {
                log::info!("DISTCC_SAVE_TEMPS: keeping {}", d.path().display());
                let _ = d.keep();
            }
        }
        Ok(me)
    }
}

fn compile(
    conn: &mut Conn,
    peer: SocketAddr,
    shared: &Shared,
    version: Version,
    job: &RemoteJob,
    program: &Path,
    source: &[u8],
) -> Summary {
    let cfg = &shared.cfg;
    // Wait for a compile slot, watching for the client giving up meanwhile; when
    // too many already wait, say so at once: the client is better off compiling
    // locally than queueing behind them.
    let queued = shared.stats.queued();
    let slot = match shared.compile_slots.acquire_timeout(Duration::ZERO) {
        Some(permit) => Some(permit),
        None if shared.stats.queued_now() > cfg.max_queued as u64 => {
            let why = format!(
                "server busy: {} compiles running and {} more waiting",
                cfg.jobs, cfg.max_queued
            );
            return answer_refusal(
                conn,
                shared,
                version,
                &Refusal::new(ExitCode::Busy, why),
                RejectReason::Busy,
            );
        }
        None => None,
    };
    let slot = match slot {
        Some(permit) => permit,
        None => loop {
            if let Some(permit) = shared
                .compile_slots
                .acquire_timeout(Duration::from_millis(250))
            {
                break permit;
            }
            if shared.stopping() || client_gone(conn.stream()) {
                return Summary::disconnected(
                    ExitCode::IoError,
                    "client left while waiting for a slot",
                );
            }
        },
    };
    drop(queued);
    let _running = shared.stats.running();
    let workdir = match JobDir::create(shared) {
        Ok(d) => d,
        Err(e) => {
            let why = format!(
                "cannot create a job directory in {}: {e}",
                cfg.tmpdir.display()
            );
            log::error!("client {peer}: {why}");
            return answer_refusal(
                conn,
                shared,
                version,
                &Refusal::new(ExitCode::IoError, why),
                RejectReason::ServerError,
            );
        }
    };
    let dir = match &workdir.dir {
        Some(d) => d.path().to_owned(),
        None => return Summary::new(JobResult::Other, 0, 0),
    };
    let input = dir.join(temp_input_name(&job.input, job.preprocessed_ext));
    let output = dir.join(temp_output_name(&job.output));
    if let Err(e) = fs::write(&input, source) {
        let why = format!("cannot write {}: {e}", input.display());
        log::error!("client {peer}: {why}");
        return answer_refusal(
            conn,
            shared,
            version,
            &Refusal::new(ExitCode::IoError, why),
            RejectReason::ServerError,
        );
    }
    let argv = job.server_argv(&path_str(&input), &path_str(&output));
    log::debug!(
        "client {peer}: compiling {} as: {} {}",
        job.input,
        program.display(),
        argv[1..].join(" ")
    );
    let mut cmd = Command::new(program);
    // The compiler's own temporary files go to the job directory too: the only
    // place it may write when confined.
    cmd.args(&argv[1..])
        .current_dir(&dir)
        .env("TMPDIR", &dir)
        .env(crate::compiler::SAFEGUARD_VAR, "1");
    let confinement = if cfg.sandbox {
        match sandbox::prepare(&dir) {
            Ok(c) => c,
            Err(why) => {
                log::error!("client {peer}: {why}");
                return answer_refusal(
                    conn,
                    shared,
                    version,
                    &Refusal::new(ExitCode::Distcc, why),
                    RejectReason::ServerError,
                );
            }
        }
    } else {
        None
    };
    if let Some(c) = &confinement {
        let fd = c.raw_fd();
        // SAFETY: the closure makes only raw system calls (no allocation, no locks),
        // and `confinement` keeps the descriptor open until the spawn is over.
        unsafe {
            cmd.pre_exec(move || sandbox::apply_fd_in_child(fd));
        }
    }
    if let Ok(path) = std::env::join_paths(&cfg.admission.search_path) {
        if !path.is_empty() {
            cmd.env("PATH", path);
        }
    }
    let opts = exec::Options {
        deadline: cfg.job_lifetime.map(|d| Instant::now() + d),
        capture_dir: Some(dir.clone()),
        ..exec::Options::default()
    };
    let stream = conn.stream();
    let mut cancel = || shared.stopping() || client_gone(stream);
    let started = Instant::now();
    let ran = exec::run(&mut cmd, &opts, &mut cancel);
    let took = started.elapsed();
    drop(confinement);
    let finished = match ran {
        Ok(f) => f,
        Err(e) => {
            let why = format!("cannot run compiler {}: {e}", program.display());
            log::error!("client {peer}: {why}");
            return answer_refusal(
                conn,
                shared,
                version,
                &Refusal::new(ExitCode::CompilerMissing, why),
                RejectReason::ServerError,
            );
        }
    };
    let mut reply = Reply {
        status: finished.status,
        stderr: finished.stderr,
        stdout: finished.stdout,
        ..Reply::default()
    };
    let summary = match finished.end {
        End::Cancelled => {
            let why = if shared.stopping() {
                "server shutting down, compiler killed"
            } else {
                "client disconnected, compiler killed"
            };
            return Summary::disconnected(ExitCode::IoError, why).compiled_for(took);
        }
        End::TimedOut => {
            let secs = cfg.job_lifetime.unwrap_or_default().as_secs();
            reply.status = exec::exit_status(ExitCode::Timeout as u8);
            reply.stderr.extend_from_slice(
                format!("swarmccd: compile killed after {secs}s (--job-lifetime)\n").as_bytes(),
            );
            Summary::new(
                JobResult::CompileTimeout,
                reply.status,
                ExitCode::Timeout.code(),
            )
        }
        End::Exited if finished.status != 0 => {
            Summary::new(JobResult::CompileError, finished.status, 0)
        }
        End::Exited => match fs::read(&output) {
            Ok(object) => {
                reply.object = object;
                Summary::new(JobResult::CompileOk, 0, 0)
            }
            Err(e) => {
                // distccd stops mid-reply here (its issue list 6.1.6); we fail cleanly.
                let why = format!("the compiler succeeded but wrote no output file: {e}");
                log::error!("client {peer}: {why}");
                reply.status = SERVER_FAULT_STATUS;
                reply
                    .stderr
                    .extend_from_slice(format!("swarmccd: {why}\n").as_bytes());
                Summary::new(JobResult::Other, SERVER_FAULT_STATUS, ExitCode::Distcc.code())
                    .because(why)
                    .rejected(RejectReason::ServerError)
            }
        },
    }
    .compiled_for(took);
    // Everything is in memory now: clean up before answering, so that a client that
    // has its reply never finds our files still there; and free the compile slot, so
    // that a client slow to take its reply does not hold it.
    drop(workdir);
    drop(_running);
    drop(slot);
    match send_reply(conn, &shared.stats, version, &reply) {
        Ok(()) => summary,
        Err(e) => Summary::disconnected(ExitCode::IoError, format!("sending the reply: {e}"))
            .compiled_for(took),
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The temp input's name: the client's base name (so that a source without line
/// markers compiles to the same object and assembly as it would locally) with the
/// preprocessed extension of its source name, as distccd's `dcc_preproc_exten`
/// (`.c`→`.i`, C++ sources→`.ii`, `.m`→`.mi`, `.mm`/`.M`→`.mii`), falling back to the
/// job's language. Unusual names become `input`.
pub fn temp_input_name(client_input: &str, fallback_ext: &'static str) -> String {
    let ext = filename::preprocessed_ext(client_input).unwrap_or(fallback_ext);
    let base = filename::basename(client_input);
    let stem = match base.rfind('.') {
        Some(dot) if dot > 0 => &base[..dot],
        _ => base,
    };
    let plain = !stem.is_empty()
        && stem.len() <= 100
        && stem != "output"
        && !stem.starts_with('-')
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
    format!("{}{ext}", if plain { stem } else { "input" })
}

/// The temp output's name: `output` with the extension of the client's output name
/// (`.o`, `.s`…), `.o` when it has none or an unusual one.
pub fn temp_output_name(client_output: &str) -> String {
    match filename::extension(client_output) {
        Some(ext)
            if !ext.is_empty()
                && ext.len() <= 8
                && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            format!("output.{ext}")
        }
        _ => "output.o".to_owned(),
    }
}

/// True when the client closed its end or the connection broke. Bytes waiting to be
/// read are not a disconnect (and are left alone).
fn client_gone(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: recv writes at most one byte into `byte`, which outlives the call.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            byte.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => true,
        n if n > 0 => false,
        _ => !matches!(
            io::Error::last_os_error().kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Authentication (`--auth-key-file`): the server's half of the handshake described in
// `protocol::auth`, the request MAC check, and what the job line says about it.

/// What a plain distcc client hears when it must authenticate (status 110, in `SERR`).
pub const AUTH_REQUIRED: &str = "authentication required: this server serves only \
    swarmcc clients that list it with ,auth and hold its key";

/// `--auth-key-file` and `--allow-unauthenticated`.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    pub key: Key,
    /// Peers that may still speak plain distcc (a trusted subnet).
    pub allow_unauthenticated: AllowList,
}

/// How a connection stands once its first bytes are in.
enum AuthState {
    /// No key configured and the client did not ask: plain distcc, as always.
    Off,
    /// Plain distcc from a peer in `--allow-unauthenticated`.
    Exempt,
    /// Plain distcc from a peer that must authenticate: its request is read and refused.
    Required,
    /// The handshake succeeded: the request and reply are MACed with this session.
    Session(Session),
}

impl AuthState {
    /// Adds the authentication outcome to the job line's reason (nothing when
    /// authentication is not configured, so plain servers log as before).
    fn annotate(&self, mut summary: Summary) -> Summary {
        let note = match self {
            AuthState::Off | AuthState::Required => return summary,
            AuthState::Exempt => "unauthenticated, allowed by --allow-unauthenticated",
            AuthState::Session(_) => "authenticated",
        };
        summary.reason = Some(match summary.reason.take() {
            Some(reason) => format!("{note}; {reason}"),
            None => note.to_string(),
        });
        summary
    }
}

/// Reads the connection's first bytes: a plain distcc request is left for
/// `read_request` (and classified by the policy), `SWAU` starts the handshake. An
/// `Err` is the connection's summary: it is over.
fn authenticate(conn: &mut Conn, peer: SocketAddr, shared: &Shared) -> Result<AuthState, Summary> {
    let wait = Some(shared.cfg.io_timeout);
    let policy = shared.cfg.auth.as_ref();
    let version = match conn.next_event(&mut AuthDecoder::new(Expect::Opening), wait) {
        Ok(AuthMessage::Hello { version }) => version,
        Ok(_) => {
            return Ok(match policy {
                None => AuthState::Off,
                Some(p) if p.allow_unauthenticated.allows(peer.ip()) => AuthState::Exempt,
                Some(_) => AuthState::Required,
            })
        }
        Err(ConnError::Eof { mid_message: false }) => {
            return Err(
                Summary::new(JobResult::Other, 0, ExitCode::Truncated.code())
                    .because("closed without sending a request"),
            )
        }
        // Nothing says yet that the client wanted to authenticate: a silent or broken
        // client is reported as a failure to read its request, as without a key.
        Err(e) => return Err(read_failure(e)),
    };
    let Some(policy) = policy else {
        // Say why, so that a client configured with ,auth for this host can tell.
        return Err(refuse_auth(
            conn,
            "authentication not enabled on this server",
            "client asked to authenticate, but no --auth-key-file is set",
        ));
    };
    if version != wire::VERSION {
        let why = format!(
            "authentication version {version} is not supported (this server speaks {})",
            wire::VERSION
        );
        return Err(refuse_auth(conn, &why, &why));
    }
    let ns = auth::nonce().map_err(|e| {
        log::error!("client {peer}: {e}");
        refuse_auth(conn, "server error", &e)
    })?;
    let mut out = Vec::new();
    wire::encode_challenge(&ns, &mut out);
    conn.send(&out).map_err(|e| handshake_failure(peer, e))?;
    let (nc, proof) = match conn.next_event(&mut AuthDecoder::new(Expect::Response), wait) {
        Ok(AuthMessage::Response { client_nonce, mac }) => (client_nonce, mac),
        Ok(other) => {
            let why = format!("unexpected {other:?} during authentication");
            return Err(refuse_auth(conn, &why, &why));
        }
        Err(e) => return Err(handshake_failure(peer, e)),
    };
    if !policy.key.verify_client_proof(&ns, &nc, &proof) {
        log::warn!("client {peer}: authentication failed: wrong key");
        return Err(refuse_auth(
            conn,
            "wrong key (its proof does not match this server's key)",
            "authentication failed: wrong key",
        ));
    }
    out.clear();
    wire::encode_accept(&policy.key.server_proof(&ns, &nc), &mut out);
    conn.send(&out).map_err(|e| handshake_failure(peer, e))?;
    log::debug!("client {peer}: authenticated");
    Ok(AuthState::Session(policy.key.session(&ns, &nc)))
}

/// After the request of an authenticated session: its `SWMC` must match what was
/// received, or nothing is compiled. On success the reply tap is started, so that
/// `send_reply` appends the reply's MAC.
fn check_request_mac(
    conn: &mut Conn,
    peer: SocketAddr,
    shared: &Shared,
    session: &Session,
) -> Result<(), Summary> {
    let Some(received) = conn.stop_tap() else {
        // `serve` starts the tap for every session; never compile unverified bytes.
        return Err(refuse_auth(conn, "server error", "no request transcript"));
    };
    let wait = Some(shared.cfg.io_timeout);
    match conn.next_event(&mut AuthDecoder::new(Expect::Mac), wait) {
        Ok(AuthMessage::Mac { mac }) if received.verify(&mac) => {
            conn.start_tap(TapDirection::Sent, session.transcript());
            Ok(())
        }
        Ok(_) => {
            let why = "request failed its integrity check (MAC mismatch); not compiled";
            log::warn!("client {peer}: {why}");
            Err(refuse_auth(conn, why, why))
        }
        Err(e) => Err(handshake_failure(peer, e)),
    }
}

/// Answers `SWNO` with `reason` (the client shows it) and closes; `log_reason` goes to
/// the job line. Counted as an authentication refusal.
fn refuse_auth(conn: &mut Conn, reason: &str, log_reason: &str) -> Summary {
    let mut out = Vec::new();
    wire::encode_refusal(reason, &mut out);
    // Whether the client hears it or not, the connection ends here.
    let _ = conn.send(&out);
    Summary::new(JobResult::Other, 0, ExitCode::AccessDenied.code())
        .because(log_reason.to_string())
        .rejected(RejectReason::Auth)
}

/// A broken conversation during authentication: garbled bytes are a refused bad
/// request, anything else a client that went away.
fn handshake_failure(peer: SocketAddr, e: ConnError) -> Summary {
    match e {
        ConnError::Protocol(p) => {
            log::warn!("client {peer}: bad authentication message: {p}");
            Summary::new(JobResult::RejBadReq, 0, ExitCode::ProtocolError.code())
                .because(format!("authentication: bad message: {p}"))
                .rejected(RejectReason::Auth)
        }
        ConnError::Timeout { .. } => {
            Summary::disconnected(ExitCode::Timeout, format!("during authentication: {e}"))
        }
        ConnError::Eof { .. } | ConnError::Io(_) => {
            Summary::disconnected(ExitCode::IoError, format!("during authentication: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_names_follow_dcc_preproc_exten() {
        assert_eq!(temp_input_name("src/hello.c", ".i"), "hello.i");
        assert_eq!(temp_input_name("a.i", ".i"), "a.i");
        for cxx in ["a.cc", "a.cpp", "a.cxx", "a.cp", "a.c++", "a.C", "a.ii"] {
            assert_eq!(temp_input_name(cxx, ".i"), "a.ii", "{cxx}");
        }
        assert_eq!(temp_input_name("a.m", ".i"), "a.mi");
        assert_eq!(temp_input_name("a.mi", ".i"), "a.mi");
        for objcxx in ["a.mm", "a.M", "a.mii"] {
            assert_eq!(temp_input_name(objcxx, ".i"), "a.mii", "{objcxx}");
        }
        // -x c++ on an odd name: the job's language decides.
        assert_eq!(temp_input_name("weird.txt", ".ii"), "weird.ii");
        assert_eq!(temp_input_name("sp ace.c", ".i"), "input.i");
        assert_eq!(temp_input_name("output.c", ".i"), "input.i");
        assert_eq!(temp_input_name("-rf.c", ".i"), "input.i");
    }

    #[test]
    fn output_names_keep_the_extension() {
        assert_eq!(temp_output_name("obj/x.o"), "output.o");
        assert_eq!(temp_output_name("x.s"), "output.s");
        assert_eq!(temp_output_name("x"), "output.o");
        assert_eq!(temp_output_name("x.o;rm"), "output.o");
    }

    #[test]
    fn refusal_status_is_exit_110() {
        assert_eq!(REFUSAL_STATUS, 0x6e00);
    }
}
