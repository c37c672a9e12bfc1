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
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::args::{self, filename, Decision, RemoteJob};
use crate::auth::{self, Key, Session};
use crate::conn::{Conn, ConnError, TapDirection};
use crate::exec::{self, End};
use crate::exit::ExitCode;
use crate::protocol::auth::{self as wire, AuthDecoder, AuthMessage, Expect};
use crate::protocol::ext::{self, Opening, OpeningDecoder, Preamble};
use crate::protocol::{
    encode_reply, Error as ProtocolError, Reply, RequestDecoder, RequestEvent, Version,
};
use crate::sandbox;
use crate::transport::{Peer, Stream};

use super::access::AllowList;
use super::stages::{self, Known};
use super::stats::{JobRecord, RejectReason, Stats};
use super::whitelist::{check_arguments, Refusal};
use super::{Permit, Shared};

/// The wait status every refusal is answered with: exit 110, distcc's "compiler
/// missing", which clients treat as a failed remote compile and retry locally.
pub const REFUSAL_STATUS: u32 = (ExitCode::CompilerMissing as u32) << 8;

/// The wait status of an answer saying this server cannot do the job, whoever asks
/// (no space for the job, cannot create its directory, not the client's compiler…):
/// exit 107, distcc's I/O error.
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

/// How a connection speaks: plain distcc in some version, or swarmcc's extension
/// (a protocol-1 request and reply with the features the client asked for).
#[derive(Debug, Clone)]
struct Dialect {
    version: Version,
    ext: Option<ExtJob>,
}

impl Dialect {
    fn plain(version: Version) -> Self {
        Dialect { version, ext: None }
    }

    fn zstd(&self) -> bool {
        self.ext.as_ref().is_some_and(|e| e.zstd)
    }

    fn keepalive(&self) -> bool {
        self.ext.as_ref().is_some_and(|e| e.keepalive)
    }
}

/// What an extension request asked for, as far as this server speaks it.
#[derive(Debug, Clone)]
struct ExtJob {
    zstd: bool,
    keepalive: bool,
    /// The client's compiler identity; empty if it did not say.
    identity: String,
}

impl ExtJob {
    fn from_preamble(p: &Preamble) -> Self {
        ExtJob {
            zstd: p.has(ext::ZSTD),
            keepalive: p.has(ext::KEEPALIVE),
            identity: p.identity.clone(),
        }
    }

    fn accepted(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.zstd {
            f.push(ext::ZSTD);
        }
        if self.keepalive {
            f.push(ext::KEEPALIVE);
        }
        f
    }
}

/// How often a compiling server says it is still there (extension keep-alives).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(1);

/// Serves one accepted, allowed connection and logs its summary line.
pub(crate) fn serve_connection(stream: Stream, peer: Peer, shared: &Shared) {
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
        bytes_in: conn.stream().bytes_received(),
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
    peer: Peer,
    shared: &Shared,
    names: &mut Names,
    auth: &AuthState,
) -> Summary {
    if let AuthState::Session(session) = auth {
        // The request MAC covers exactly the bytes the request decoder consumes.
        conn.start_tap(TapDirection::Received, session.transcript());
    }
    let read = read_opening(conn, shared).and_then(|ext| {
        let (pending, argv) = read_header(conn, shared)?;
        let ext = ext.map(|p| ExtJob::from_preamble(&p));
        if ext.is_some() && pending.version != Version::V1 {
            conn.set_deadline(None);
            return Err(
                Summary::new(JobResult::RejBadReq, 0, ExitCode::ProtocolError.code())
                    .because("bad request: an extension request must carry protocol 1")
                    .rejected(RejectReason::BadRequest),
            );
        }
        Ok((pending, argv, ext))
    });
    let (pending, argv, ext) = match read {
        Ok(header) => header,
        Err(summary) => return warn_bad_request(peer, summary),
    };
    if let Some(e) = &ext {
        log::debug!(
            "client {peer}: extension request (zstd: {}, keep-alive: {}, compiler: {:?})",
            e.zstd,
            e.keepalive,
            e.identity
        );
    }
    let dialect = Dialect {
        version: pending.version,
        ext,
    };
    names.compiler = argv.first().cloned().unwrap_or_default();
    let mut req = Request {
        version: pending.version,
        argv,
        source: None,
    };
    // The compiler can start while the client still preprocesses, if nothing has to be
    // checked against the source first and a slot is free right now.
    let early = matches!(auth, AuthState::Off | AuthState::Exempt)
        && req.version != Version::V3
        && !shared.cfg.save_temps;
    let identity = dialect.ext.as_ref().map(|e| e.identity.as_str());
    let mut pending = Some(pending);
    if !early {
        req.source = match read_source(conn, shared, pending.take().expect("unread")) {
            Ok(source) => source,
            Err(summary) => return warn_bad_request(peer, summary),
        };
        match auth {
            AuthState::Required => {
                // A plain distcc client: answered in its own protocol, so that it
                // prints the reason and compiles locally.
                log::warn!("client {peer}: refused: {AUTH_REQUIRED}");
                let refusal = Refusal::new(ExitCode::AccessDenied, AUTH_REQUIRED);
                return answer_refusal(conn, shared, &dialect, &refusal, RejectReason::Auth);
            }
            AuthState::Session(session) => {
                if let Err(summary) = check_request_mac(conn, peer, shared, session) {
                    return summary;
                }
            }
            AuthState::Off | AuthState::Exempt => {}
        }
    }
    let (job, program) = match decide(&req, shared, names, identity) {
        Ok(plan) => plan,
        Err((why, refusal)) => {
            log::warn!("client {peer}: refused: {refusal}");
            if let Some(pending) = pending.take() {
                // Read the whole request before answering, or the client never hears.
                if let Err(summary) = read_source(conn, shared, pending) {
                    return warn_bad_request(peer, summary);
                }
            }
            return answer_refusal(conn, shared, &dialect, &refusal, why);
        }
    };
    let feed = match pending {
        Some(pending) => match shared.early_starts.acquire_timeout(Duration::ZERO) {
            Some(early) => Feed::Pending(pending, early),
            None => match read_source(conn, shared, pending) {
                Ok(source) => Feed::Ready(source.unwrap_or_default()),
                Err(summary) => return warn_bad_request(peer, summary),
            },
        },
        None => Feed::Ready(req.source.take().unwrap_or_default()),
    };
    compile(conn, peer, shared, &dialect, &job, &program, feed)
}

/// Logs a malformed request (disconnects are routine) and returns its summary.
fn warn_bad_request(peer: Peer, summary: Summary) -> Summary {
    if let (JobResult::RejBadReq, Some(why)) = (summary.result, &summary.reason) {
        log::warn!("client {peer}: {why}");
    }
    summary
}

/// Unpacks an extension request's zstd source; plain sources pass through.
fn unpack_source(shared: &Shared, dialect: &Dialect, source: Vec<u8>) -> Result<Vec<u8>, Refusal> {
    if !dialect.zstd() {
        return Ok(source);
    }
    zstd::bulk::decompress(&source, shared.cfg.limits.max_decompressed).map_err(|e| {
        Refusal::new(
            ExitCode::ProtocolError,
            format!("source does not decompress (zstd) within the limit: {e}"),
        )
    })
}

/// How a job's compiler is run.
enum Way {
    /// Through the driver, as it was asked for.
    Driver,
    /// The stages the driver would run, started directly.
    Direct(std::sync::Arc<stages::Plan>),
    /// Through the driver, with this recorder as its `-wrapper` to learn the stages.
    Learn(String),
}

/// Where a compile's source comes from.
enum Feed<'a> {
    /// Read already (still packed if the extension's zstd is on).
    Ready(Vec<u8>),
    /// Still on the connection: the compiler starts first and reads the source from a
    /// pipe as soon as it arrives. The permit bounds how many such compilers wait.
    Pending(PendingSource, Permit<'a>),
}

/// Reads an extension request's preamble, if the request has one.
fn read_opening(conn: &mut Conn, shared: &Shared) -> Result<Option<Preamble>, Summary> {
    match conn.next_event(&mut OpeningDecoder, Some(shared.cfg.io_timeout)) {
        Ok(Opening::Ext(p)) => Ok(Some(p)),
        Ok(Opening::Plain) => Ok(None),
        Err(ConnError::Eof { mid_message: false }) => {
            Err(
                Summary::new(JobResult::Other, 0, ExitCode::Truncated.code())
                    .because("closed without sending a request"),
            )
        }
        Err(e) => Err(read_failure(e)),
    }
}

/// A request whose header has been read; its source is still on the connection.
struct PendingSource {
    decoder: RequestDecoder,
    version: Version,
}

/// Reads a request's header (`DIST` … `ARGV`). The whole request must arrive within
/// `--request-timeout` from here; [`read_source`] lifts the deadline.
fn read_header(conn: &mut Conn, shared: &Shared) -> Result<(PendingSource, Vec<String>), Summary> {
    conn.set_deadline(Some(Instant::now() + shared.cfg.request_timeout));
    let wait = Some(shared.cfg.io_timeout);
    let mut decoder = RequestDecoder::new(shared.cfg.limits);
    let header = match conn.next_event(&mut decoder, wait) {
        Ok(RequestEvent::Header { version, argv, .. }) => {
            Ok((PendingSource { decoder, version }, argv))
        }
        Ok(other) => Err(
            Summary::new(JobResult::RejBadReq, 0, ExitCode::ProtocolError.code())
                .because(format!(
                    "bad request: unexpected {other:?} before the header"
                ))
                .rejected(RejectReason::BadRequest),
        ),
        Err(ConnError::Eof { mid_message: false }) => {
            Err(
                Summary::new(JobResult::Other, 0, ExitCode::Truncated.code())
                    .because("closed without sending a request"),
            )
        }
        Err(e) => Err(read_failure(e)),
    };
    if header.is_err() {
        conn.set_deadline(None);
    }
    header
}

/// Reads the rest of a request: the preprocessed source (v1/v2, decompressed), or every
/// file of a v3 request, dropped (`None`), so that its refusal can be answered.
fn read_source(
    conn: &mut Conn,
    shared: &Shared,
    pending: PendingSource,
) -> Result<Option<Vec<u8>>, Summary> {
    let source = read_source_within_deadline(conn, shared, pending);
    conn.set_deadline(None);
    source
}

fn read_source_within_deadline(
    conn: &mut Conn,
    shared: &Shared,
    pending: PendingSource,
) -> Result<Option<Vec<u8>>, Summary> {
    let wait = Some(shared.cfg.io_timeout);
    let PendingSource {
        mut decoder,
        version,
    } = pending;
    match version {
        Version::V1 | Version::V2 => match conn.next_event(&mut decoder, wait) {
            Ok(RequestEvent::Source(s)) => Ok(Some(s)),
            Err(ConnError::Protocol(e @ ProtocolError::TooLarge { .. })) => {
                // A well-formed request for a source beyond our limits: answer it, so
                // the client compiles locally instead of blaming (and avoiding) us.
                let why = format!("source {e}; compile it locally");
                log::warn!("{why}");
                let summary = answer_refusal(
                    conn,
                    shared,
                    &Dialect::plain(version),
                    &Refusal::new(ExitCode::OutOfMemory, why),
                    RejectReason::TooLarge,
                );
                // Then read and drop the rest: closing with unread bytes would reset
                // the connection, and the client would lose the answer.
                conn.shutdown_write();
                conn.discard_rest();
                Err(summary)
            }
            Ok(other) => Err(
                Summary::new(JobResult::RejBadReq, 0, ExitCode::ProtocolError.code())
                    .because(format!("bad request: expected DOTI, got {other:?}"))
                    .rejected(RejectReason::BadRequest),
            ),
            Err(ConnError::Eof { mid_message: false }) => Err(Summary::disconnected(
                ExitCode::IoError,
                "the client closed the connection before sending its source: a swarmcc \
                 client does that when its local preprocessor fails",
            )),
            Err(e) => Err(read_failure(e)),
        },
        Version::V3 => {
            // Read (and drop) every file, so that the refusal can be answered in-protocol.
            while !decoder.is_complete() {
                if let Err(e) = conn.next_event(&mut decoder, wait) {
                    return Err(read_failure(e));
                }
            }
            Ok(None)
        }
    }
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
    client_identity: Option<&str>,
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
    if let Some(theirs) = client_identity.filter(|i| !i.is_empty()) {
        // The extension's promise: never a silently different compiler.
        let mismatch = |why: String| {
            Err((
                RejectReason::CompilerMismatch,
                Refusal::new(ExitCode::CompilerMissing, why),
            ))
        };
        match shared.identities.get(&program) {
            Ok(ours) if ours == theirs => {}
            Ok(ours) => {
                return mismatch(format!(
                    "compiler mismatch: {argv0} here is \"{ours}\", the client's is \"{theirs}\""
                ))
            }
            Err(e) => {
                return mismatch(format!(
                    "compiler mismatch: cannot tell which compiler {} is: {e}",
                    program.display()
                ))
            }
        }
    }
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
    dialect: &Dialect,
    refusal: &Refusal,
    why: RejectReason,
) -> Summary {
    // What makes this host unable to do the job says so with its own status, so that
    // swarmcc backs the host off; a distcc client retries locally on any failure.
    let status = if matches!(
        why,
        RejectReason::ServerError | RejectReason::CompilerMismatch
    ) {
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
    match send_reply(conn, &shared.stats, dialect, &reply) {
        Ok(()) => summary,
        // Still a refusal, whether or not the client heard it.
        Err(e) => Summary::disconnected(ExitCode::IoError, format!("sending the refusal: {e}"))
            .rejected(why),
    }
}

fn send_reply(
    conn: &mut Conn,
    stats: &Stats,
    dialect: &Dialect,
    reply: &Reply,
) -> Result<(), String> {
    let mut bytes = Vec::new();
    encode_reply(dialect.version, reply, &mut bytes).map_err(|e| format!("cannot encode: {e}"))?;
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
    if dialect.ext.is_none() && dialect.version != Version::V3 {
        // Offer the extension: swarmcc remembers it for its next job here; distcc
        // clients have closed after the reply and never read it.
        bytes.clear();
        ext::encode_advertisement(&mut bytes);
        let _ = conn.send(&bytes);
    }
    Ok(())
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
    peer: Peer,
    shared: &Shared,
    dialect: &Dialect,
    job: &RemoteJob,
    program: &Path,
    feed: Feed<'_>,
) -> Summary {
    let cfg = &shared.cfg;
    if let Some(e) = &dialect.ext {
        // The prelude (features, keep-alives) is written straight to the socket: it is
        // not part of the reply an authenticated session's MAC covers.
        let mut bytes = Vec::new();
        if ext::encode_accepted(&e.accepted(), &mut bytes).is_ok()
            && !write_prelude(conn.stream(), &bytes)
        {
            return Summary::disconnected(ExitCode::IoError, "client left before its reply");
        }
    }
    let mut last_sign = Instant::now();
    let server_fault = |conn: &mut Conn, why: String, code: ExitCode| {
        log::error!("client {peer}: {why}");
        answer_refusal(
            conn,
            shared,
            dialect,
            &Refusal::new(code, why),
            RejectReason::ServerError,
        )
    };
    let workdir = match JobDir::create(shared) {
        Ok(d) => d,
        Err(e) => {
            let why = format!(
                "cannot create a job directory in {}: {e}",
                cfg.tmpdir.display()
            );
            return server_fault(conn, why, ExitCode::IoError);
        }
    };
    let dir = match &workdir.dir {
        Some(d) => d.path().to_owned(),
        None => return Summary::new(JobResult::Other, 0, 0),
    };
    let input_name = temp_input_name(&job.input, job.preprocessed_ext);
    let input = dir.join(&input_name);
    // Named relative to the job directory (the compiler's cwd), so that the stages a
    // gcc driver runs for this command line mention nothing of this job in particular.
    let output_name = temp_output_name(&job.output);
    let output = dir.join(&output_name);

    // The source: unpacked already, or read later while a compiler started for it
    // loads. It goes to the compiler's standard input when it is still on its way,
    // and when it names its own file (line markers), so that a pipe changes nothing;
    // the language then has to be said, since there is no file name to tell it.
    let stdin_language =
        filename::Language::from_path(&input_name).and_then(|l| l.preprocessed_x_name());
    let (pending, source) = match feed {
        Feed::Ready(packed) => match unpack_source(shared, dialect, packed) {
            Ok(source) => (None, Some(source)),
            Err(refusal) => {
                return answer_refusal(conn, shared, dialect, &refusal, RejectReason::TooLarge)
            }
        },
        Feed::Pending(pending, early) => (Some((pending, early)), None),
    };
    let stdin_language = stdin_language.filter(|_| {
        source
            .as_deref()
            .is_none_or(|s| s.starts_with(b"# 0 \"") || s.starts_with(b"# 1 \""))
    });
    let mut argv = match stdin_language {
        Some(lang) => job.server_argv_stdin(lang, &output_name),
        None => job.server_argv(&path_str(&input), &output_name),
    };
    if !argv.iter().any(|a| a == "-pipe") {
        // The assembler reads the compiler's output from a pipe rather than a temp
        // file: the same object, about 2 ms sooner for a small file (gcc and clang).
        argv.insert(1, "-pipe".to_owned());
    }
    log::debug!(
        "client {peer}: compiling {} as: {} {}",
        job.input,
        program.display(),
        argv[1..].join(" ")
    );
    // The compiler's own temporary files go to the job directory too: the only
    // place it may write when confined.
    let mut env = shared.job_env.clone();
    env.push(("TMPDIR".into(), dir.clone().into_os_string()));
    let driver = || {
        let mut cmd = Command::new(program);
        cmd.args(&argv[1..])
            .current_dir(&dir)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)));
        cmd
    };
    // A gcc job whose stages are known runs them without the driver; an unknown one
    // runs the driver with a recorder that learns them (see `stages`).
    let recorder = cfg
        .stage_recorder
        .as_deref()
        .and_then(stages::wrapper_arg)
        .filter(|_| stdin_language.is_some() && stages::eligible(&argv));
    let mut way = match &recorder {
        None => Way::Driver,
        Some(recorder) => match shared.plans.get(program, &argv) {
            Known::Plan(plan) => Way::Direct(plan),
            Known::UseDriver => Way::Driver,
            // Only a driver binary is learnt: a script in front of gcc may do more
            // than start it (log, wait, pick a compiler), which must not be skipped.
            Known::Unknown if !stages::is_binary(program) => {
                shared.plans.insert(program, &argv, None);
                Way::Driver
            }
            Known::Unknown => Way::Learn(recorder.clone()),
        },
    };
    let mut cmds = match &way {
        Way::Driver => vec![driver()],
        Way::Direct(plan) => {
            log::debug!("client {peer}: running the learnt stages without the driver");
            plan.commands(&dir, &env)
        }
        Way::Learn(recorder) => {
            let mut cmd = driver();
            cmd.args(["-wrapper", recorder])
                .env(stages::RECORD_VAR, &dir);
            vec![cmd]
        }
    };
    let confinement = if cfg.sandbox {
        match sandbox::prepare(&dir) {
            Ok(c) => c,
            Err(why) => return server_fault(conn, why, ExitCode::Distcc),
        }
    } else {
        None
    };
    let mut opts = exec::Options {
        capture_dir: Some(dir.clone()),
        ..exec::Options::default()
    };
    let start = |cmds: &mut [Command], opts: &exec::Options, piped: bool| {
        sandbox::spawn_confined(confinement.as_ref(), || {
            exec::spawn_pipeline(cmds, opts, piped)
        })
    };

    // Until the source is all here the job holds only an early-start permit, never a
    // compile slot, so a slow client cannot hold one.
    let (early_started, source) = match (pending, source) {
        (Some((pending, early)), _) => {
            let running = match start(&mut cmds, &opts, true) {
                Ok(r) => r,
                Err(e) => {
                    let why = format!("failed to exec {}: {e}", program.display());
                    return server_fault(conn, why, ExitCode::CompilerMissing);
                }
            };
            // From here on, returning early kills the compiler (Running's drop).
            let packed = match read_source(conn, shared, pending) {
                Ok(packed) => packed.unwrap_or_default(),
                Err(summary) => return warn_bad_request(peer, summary),
            };
            drop(early);
            match unpack_source(shared, dialect, packed) {
                Ok(source) => (Some(running), source),
                Err(refusal) => {
                    return answer_refusal(conn, shared, dialect, &refusal, RejectReason::TooLarge)
                }
            }
        }
        (None, source) => {
            let source = source.unwrap_or_default();
            if stdin_language.is_none() {
                if let Err(e) = fs::write(&input, &source) {
                    let why = format!("cannot write {}: {e}", input.display());
                    return server_fault(conn, why, ExitCode::IoError);
                }
            }
            (None, source)
        }
    };
    let piped = stdin_language.is_some();

    // Wait for a compile slot, watching for the client giving up meanwhile; when
    // too many already wait, say so at once: the client is better off compiling
    // locally than queueing behind them.
    let queued = shared.stats.queued();
    let slot = match shared.compile_slots.acquire_timeout(Duration::ZERO) {
        Some(permit) => permit,
        None if shared.stats.queued_now() > cfg.max_queued as u64 => {
            let why = format!(
                "server busy: {} compiles running and {} more waiting",
                cfg.jobs, cfg.max_queued
            );
            return answer_refusal(
                conn,
                shared,
                dialect,
                &Refusal::new(ExitCode::Busy, why),
                RejectReason::Busy,
            );
        }
        None => loop {
            if let Some(permit) = shared
                .compile_slots
                .acquire_timeout(Duration::from_millis(250))
            {
                break permit;
            }
            let alive = !dialect.keepalive() || keep_alive(conn.stream(), &mut last_sign);
            if shared.stopping() || !alive || conn.stream().peer_closed() {
                return Summary::disconnected(
                    ExitCode::IoError,
                    "client left while waiting for a slot",
                );
            }
        },
    };
    drop(queued);
    let _running = shared.stats.running();
    opts.deadline = cfg.job_lifetime.map(|d| Instant::now() + d);
    let stream = conn.stream();
    let keepalive = dialect.keepalive();
    let mut cancel = || {
        let alive = !keepalive || keep_alive(stream, &mut last_sign);
        shared.stopping() || !alive || stream.peer_closed()
    };
    let compiling = Instant::now();
    let feed_and_wait =
        |mut running: exec::Running, opts: &exec::Options, cancel: &mut dyn FnMut() -> bool| {
            if let Some(mut stdin) = running.stdin.take() {
                // A compiler that exits early (a bad option) closes its end: its status
                // and diagnostics say why, not this write.
                let _ = std::io::Write::write_all(&mut stdin, &source);
            }
            running.wait(opts, cancel)
        };
    // A learning run also needs the driver's dry run (see `stages`): started now, it
    // is over long before the compile.
    let dry_run = match way {
        Way::Learn(_) => {
            let mut dry = driver();
            dry.arg("-###");
            start(std::slice::from_mut(&mut dry), &opts, false).ok()
        }
        _ => None,
    };
    let mut ran = match early_started {
        Some(running) => feed_and_wait(running, &opts, &mut cancel),
        None => start(&mut cmds, &opts, piped).and_then(|r| feed_and_wait(r, &opts, &mut cancel)),
    };
    // Killed for the deadline or a cancellation: answered as it is.
    let stopped = matches!(&ran, Ok(f) if f.end != End::Exited);
    let failed = !succeeded(&ran) && !stopped;
    // A failed direct run is answered by the driver: its diagnostics, its status, its
    // own messages. So is a learning run the recorder never saw: that driver refused
    // or ignored `-wrapper` (and may have said so in the diagnostics), so the command
    // line stays with the driver.
    let rerun = match &way {
        Way::Direct(_) => failed,
        Way::Learn(_) => !stopped && !stages::recorded(&dir),
        Way::Driver => false,
    };
    if rerun {
        if matches!(way, Way::Direct(_)) {
            log::debug!(
                "client {peer}: the stages run without the driver did not succeed; {}",
                "running the driver"
            );
        } else {
            log::debug!("client {peer}: the driver did not run the recorder; running it alone");
        }
        let _ = fs::remove_file(&output);
        let mut again = [driver()];
        ran = start(&mut again, &opts, piped).and_then(|r| feed_and_wait(r, &opts, &mut cancel));
        if let (Way::Learn(_), true) = (&way, succeeded(&ran)) {
            shared.plans.insert(program, &argv, None);
        }
        way = Way::Driver;
    }
    if let (Way::Learn(_), true) = (&way, succeeded(&ran)) {
        let dry_run = dry_run
            .and_then(|r| r.wait(&opts, &mut || false).ok())
            .map(|f| f.stderr)
            .unwrap_or_default();
        let plan = stages::learn(&dir, &env, &dry_run);
        match &plan {
            Some(p) => log::debug!(
                "client {peer}: learnt the stages of `{}`: {}",
                argv.join(" "),
                p.stages
                    .iter()
                    .map(|s| Path::new(&s.program).display().to_string())
                    .collect::<Vec<_>>()
                    .join(" | ")
            ),
            None => log::debug!(
                "client {peer}: `{}` is run through its driver (not a plain two-stage pipeline)",
                argv.join(" ")
            ),
        }
        shared.plans.insert(program, &argv, plan);
    }
    let took = compiling.elapsed();
    drop(confinement);
    let finished = match ran {
        Ok(f) => f,
        Err(e) => {
            let why = format!("failed to exec {}: {e}", program.display());
            return server_fault(conn, why, ExitCode::CompilerMissing);
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
        End::Exited => {
            // distccd stops mid-reply when the output is missing (its issue list
            // 6.1.6); we answer with the reason.
            let object = fs::read(&output)
                .map_err(|e| format!("the compiler succeeded but wrote no output file: {e}"))
                .and_then(|object| {
                    if dialect.zstd() {
                        zstd::bulk::compress(&object, 1)
                            .map_err(|e| format!("cannot compress the object: {e}"))
                    } else {
                        Ok(object)
                    }
                });
            match object {
                Ok(object) => {
                    reply.object = object;
                    Summary::new(JobResult::CompileOk, 0, 0)
                }
                Err(why) => {
                    log::error!("client {peer}: {why}");
                    reply.status = SERVER_FAULT_STATUS;
                    reply
                        .stderr
                        .extend_from_slice(format!("swarmccd: {why}\n").as_bytes());
                    Summary::new(
                        JobResult::Other,
                        SERVER_FAULT_STATUS,
                        ExitCode::Distcc.code(),
                    )
                    .because(why)
                    .rejected(RejectReason::ServerError)
                }
            }
        }
    }
    .compiled_for(took);
    // Everything is in memory now: clean up before answering, so that a client that
    // has its reply never finds our files still there; and free the compile slot, so
    // that a client slow to take its reply does not hold it.
    drop(workdir);
    drop(_running);
    drop(slot);
    match send_reply(conn, &shared.stats, dialect, &reply) {
        Ok(()) => summary,
        Err(e) => Summary::disconnected(ExitCode::IoError, format!("sending the reply: {e}"))
            .compiled_for(took),
    }
}

/// Whether a compiler run ended on its own with status 0.
fn succeeded(ran: &io::Result<exec::Finished>) -> bool {
    matches!(ran, Ok(f) if f.end == End::Exited && f.status == 0)
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

/// Sends an extension keep-alive when one is due; false if the client cannot be
/// written to any more. Written straight to the socket between the reply's other
/// messages, which are all sent later.
fn keep_alive(stream: &Stream, last: &mut Instant) -> bool {
    if last.elapsed() < KEEPALIVE_EVERY {
        return true;
    }
    *last = Instant::now();
    let mut bytes = Vec::with_capacity(12);
    ext::encode_keepalive(&mut bytes);
    write_prelude(stream, &bytes)
}

/// Writes extension prelude bytes directly; false if the client cannot take them.
fn write_prelude(stream: &Stream, bytes: &[u8]) -> bool {
    // A send buffer that stays full means the client is not reading: do not block.
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut w = stream;
    std::io::Write::write_all(&mut w, bytes).is_ok()
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
    /// `None` with distccd's `--auth` alone: authentication is required, but no key
    /// exists to pass it with (swarmccd has no GSS-API), so every client is refused.
    pub key: Option<Key>,
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
fn authenticate(conn: &mut Conn, peer: Peer, shared: &Shared) -> Result<AuthState, Summary> {
    let wait = Some(shared.cfg.io_timeout);
    let policy = shared.cfg.auth.as_ref();
    let version = match conn.next_event(&mut AuthDecoder::new(Expect::Opening), wait) {
        Ok(AuthMessage::Hello { version }) => version,
        Ok(_) => {
            return Ok(match policy {
                None => AuthState::Off,
                Some(p)
                    if peer
                        .ip()
                        .is_some_and(|ip| p.allow_unauthenticated.allows(ip)) =>
                {
                    AuthState::Exempt
                }
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
    let Some(key) = &policy.key else {
        return Err(refuse_auth(
            conn,
            "authentication not possible: this server was started with distccd's --auth \
             (GSS-API, which swarmccd does not have) and no --auth-key-file",
            "client asked to authenticate, but --auth was given without --auth-key-file",
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
    if !key.verify_client_proof(&ns, &nc, &proof) {
        log::warn!("client {peer}: authentication failed: wrong key");
        return Err(refuse_auth(
            conn,
            "wrong key (its proof does not match this server's key)",
            "authentication failed: wrong key",
        ));
    }
    out.clear();
    wire::encode_accept(&key.server_proof(&ns, &nc), &mut out);
    conn.send(&out).map_err(|e| handshake_failure(peer, e))?;
    log::debug!("client {peer}: authenticated");
    Ok(AuthState::Session(key.session(&ns, &nc)))
}

/// After the request of an authenticated session: its `SWMC` must match what was
/// received, or nothing is compiled. On success the reply tap is started, so that
/// `send_reply` appends the reply's MAC.
fn check_request_mac(
    conn: &mut Conn,
    peer: Peer,
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
fn handshake_failure(peer: Peer, e: ConnError) -> Summary {
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
