//! The finished job's record: how it ended (distccd's result names), why it was
//! refused, how long it ran, what it moved; built by the pipeline's steps and read by
//! `stats` and the one-line job log. Plain data, so the counters need nothing else of
//! the server.

use std::fmt;
use std::time::Duration;

use crate::exec;
use crate::exit::ExitCode;
use crate::transport::Peer;

/// The job summary's result field, as distccd names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobResult {
    CompileOk,
    CompileError,
    CompileTimeout,
    CliDisconn,
    RejBadReq,
    Other,
    /// Answered from the farm cache: no compiler ran, no slot was taken.
    CacheHit,
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
            JobResult::CacheHit => "CACHE_HIT",
        })
    }
}

/// Why a connection was turned away. Every refusal, answered or not, has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The peer is not in `--allow`: closed without a byte.
    AccessDenied,
    /// Unreadable stream (bad token, unknown version) or an empty command line.
    BadRequest,
    /// Protocol 3 (`,cpp`): not supported.
    Pump,
    /// The compiler is not whitelisted, not in `DISTCC_CMDLIST`, or not installed.
    Whitelist,
    /// An option that would run or load other code or write outside the job.
    ForbiddenOption,
    /// Not a single-source compile (the client's own checks would have kept it local).
    NotDistributable,
    /// The server could not do the job (job directory, starting the compiler…).
    ServerError,
    /// A source or argument list beyond the server's size limits.
    TooLarge,
    /// The client's compiler (version, target) is not this server's.
    CompilerMismatch,
    /// Too many jobs already waiting for a compile slot: answered at once so that the
    /// client compiles locally rather than queue (distccd's `REJ_OVERLOAD`).
    Busy,
    /// `--auth-key-file`: no authentication where it is required, a wrong key, a
    /// request that failed its integrity check, or authentication asked of a server
    /// without a key.
    Auth,
}

impl RejectReason {
    pub const ALL: [RejectReason; 11] = [
        RejectReason::AccessDenied,
        RejectReason::BadRequest,
        RejectReason::Pump,
        RejectReason::Whitelist,
        RejectReason::ForbiddenOption,
        RejectReason::NotDistributable,
        RejectReason::ServerError,
        RejectReason::TooLarge,
        RejectReason::CompilerMismatch,
        RejectReason::Busy,
        RejectReason::Auth,
    ];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            RejectReason::AccessDenied => "access_denied",
            RejectReason::BadRequest => "bad_request",
            RejectReason::Pump => "pump",
            RejectReason::Whitelist => "whitelist",
            RejectReason::ForbiddenOption => "forbidden_option",
            RejectReason::NotDistributable => "not_distributable",
            RejectReason::ServerError => "server_error",
            RejectReason::TooLarge => "too_large",
            RejectReason::CompilerMismatch => "compiler_mismatch",
            RejectReason::Busy => "busy",
            RejectReason::Auth => "auth",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

impl JobResult {
    /// Every result, in distccd's stats order (`REJ_OVERLOAD` is counted as the
    /// `Busy` rejection instead), then swarmccd's own.
    pub const ALL: [JobResult; 7] = [
        JobResult::RejBadReq,
        JobResult::CompileOk,
        JobResult::CompileError,
        JobResult::CompileTimeout,
        JobResult::CliDisconn,
        JobResult::Other,
        JobResult::CacheHit,
    ];

    /// The `result` label value: distccd's name in lower case.
    pub fn label(self) -> &'static str {
        match self {
            JobResult::CompileOk => "compile_ok",
            JobResult::CompileError => "compile_error",
            JobResult::CompileTimeout => "compile_timeout",
            JobResult::CliDisconn => "cli_disconn",
            JobResult::RejBadReq => "rej_bad_req",
            JobResult::Other => "other",
            JobResult::CacheHit => "cache_hit",
        }
    }

    pub(super) fn index(self) -> usize {
        match self {
            JobResult::RejBadReq => 0,
            JobResult::CompileOk => 1,
            JobResult::CompileError => 2,
            JobResult::CompileTimeout => 3,
            JobResult::CliDisconn => 4,
            JobResult::Other => 5,
            JobResult::CacheHit => 6,
        }
    }
}

/// What one finished connection contributes.
#[derive(Debug, Clone)]
pub struct JobRecord<'a> {
    pub result: JobResult,
    pub reject: Option<RejectReason>,
    /// How long the compiler ran, if it was started.
    pub compile_time: Option<Duration>,
    /// The whole connection, as the job log's `time:`.
    pub elapsed: Duration,
    /// argv[0] and the input as the client sent them (may be empty).
    pub compiler: &'a str,
    pub input: &'a str,
    /// Request bytes received on the socket.
    pub bytes_in: u64,
}

/// What the job log line reports.
#[derive(Debug)]
pub(super) struct Summary {
    pub(super) result: JobResult,
    pub(super) status: u32,
    pub(super) ret: i32,
    pub(super) reason: Option<String>,
    /// The refusal's category, for the statistics.
    pub(super) reject: Option<RejectReason>,
    /// How long the compiler ran, if it was started.
    pub(super) compile_time: Option<Duration>,
}

impl Summary {
    pub(super) fn new(result: JobResult, status: u32, ret: i32) -> Self {
        Summary {
            result,
            status,
            ret,
            reason: None,
            reject: None,
            compile_time: None,
        }
    }

    pub(super) fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub(super) fn rejected(mut self, why: RejectReason) -> Self {
        self.reject = Some(why);
        self
    }

    pub(super) fn compiled_for(mut self, took: Duration) -> Self {
        self.compile_time = Some(took);
        self
    }

    pub(super) fn disconnected(ret: ExitCode, why: impl Into<String>) -> Self {
        Summary::new(JobResult::CliDisconn, 0, ret.code()).because(why)
    }
}

/// What the job log names: the compiler and input as the client sent them.
#[derive(Default)]
pub(super) struct Names {
    pub(super) compiler: String,
    pub(super) input: String,
}

/// Writes the job's one-line summary, as distccd's job log does.
pub(super) fn log_job(peer: Peer, summary: &Summary, names: &Names, elapsed: Duration) {
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
