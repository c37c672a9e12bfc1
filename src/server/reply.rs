//! Answering the client: refusals (status 110 or 107, the reason in `SERR`), the
//! compile's reply built from the finished compiler, the extension's prelude and
//! keep-alives, the session MAC after the reply, and the extension advertisement.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::conn::Conn;
use crate::exec::{self, End, Finished};
use crate::exit::ExitCode;
use crate::protocol::auth as wire;
use crate::protocol::{encode_reply, ext, Reply, Version};
use crate::transport::{Peer, Stream};

use super::dialect::Dialect;
use super::record::{JobResult, RejectReason, Summary};
use super::stats::Stats;
use super::whitelist::Refusal;
use super::Shared;

/// The wait status every refusal is answered with: exit 110, distcc's "compiler
/// missing", which clients treat as a failed remote compile and retry locally.
pub const REFUSAL_STATUS: u32 = (ExitCode::CompilerMissing as u32) << 8;

/// The wait status of an answer saying this server cannot do the job, whoever asks
/// (no space for the job, cannot create its directory, not the client's compiler…):
/// exit 107, distcc's I/O error.
pub const SERVER_FAULT_STATUS: u32 = (ExitCode::IoError as u32) << 8;

/// How often a compiling server says it is still there (extension keep-alives).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(1);

/// Answers a refusal in the connection's own protocol, the reason in `SERR`.
pub(super) fn answer_refusal(
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

/// Sends a reply, its MAC in an authenticated session, and (to a plain client) the
/// extension advertisement.
pub(super) fn send_reply(
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

/// Sends an extension keep-alive when one is due; false if the client cannot be
/// written to any more. Written straight to the socket between the reply's other
/// messages, which are all sent later.
pub(super) fn keep_alive(stream: &Stream, last: &mut Instant) -> bool {
    if last.elapsed() < KEEPALIVE_EVERY {
        return true;
    }
    *last = Instant::now();
    let mut bytes = Vec::with_capacity(12);
    ext::encode_keepalive(&mut bytes);
    write_prelude(stream, &bytes)
}

/// Writes extension prelude bytes directly; false if the client cannot take them.
pub(super) fn write_prelude(stream: &Stream, bytes: &[u8]) -> bool {
    // A send buffer that stays full means the client is not reading: do not block.
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut w = stream;
    std::io::Write::write_all(&mut w, bytes).is_ok()
}

/// Sends the extension's accepted features, before anything else of the answer; false
/// if the client has gone. Plain distcc connections have no prelude.
pub(super) fn send_accepted(conn: &Conn, dialect: &Dialect) -> bool {
    let Some(e) = dialect.ext.as_ref().filter(|e| !e.prelude_sent) else {
        return true;
    };
    // The prelude (features, keep-alives) is written straight to the socket: it is
    // not part of the reply an authenticated session's MAC covers.
    let mut bytes = Vec::new();
    ext::encode_accepted(&e.accepted(), &mut bytes).is_err() || write_prelude(conn.stream(), &bytes)
}

/// Logs and answers what makes this server unable to do the job (counted as a server
/// error, answered with its own status so that swarmcc backs the host off).
pub(super) fn server_fault(
    conn: &mut Conn,
    peer: Peer,
    shared: &Shared,
    dialect: &Dialect,
    why: String,
    code: ExitCode,
) -> Summary {
    log::error!("client {peer}: {why}");
    answer_refusal(
        conn,
        shared,
        dialect,
        &Refusal::new(code, why),
        RejectReason::ServerError,
    )
}

/// The reply to a compiler that finished, and the job's summary: its status and
/// diagnostics, and the object (compressed for zstd) when it succeeded. No reply when
/// the compiler was cancelled: there is no one to answer.
pub(super) fn compiled(
    peer: Peer,
    shared: &Shared,
    dialect: &Dialect,
    finished: Finished,
    output: &Path,
) -> (Option<Reply>, Summary) {
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
            return (None, Summary::disconnected(ExitCode::IoError, why));
        }
        End::TimedOut => {
            let secs = shared.cfg.job_lifetime.unwrap_or_default().as_secs();
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
        End::Exited => attach_object(peer, dialect, output, &mut reply),
    };
    (Some(reply), summary)
}

/// Puts the compiler's output in a successful reply, or turns the reply into a server
/// fault when it cannot: distccd stops mid-reply when the output is missing (its issue
/// list 6.1.6); we answer with the reason.
fn attach_object(peer: Peer, dialect: &Dialect, output: &Path, reply: &mut Reply) -> Summary {
    let object = fs::read(output)
        .map_err(|e| format!("the compiler succeeded but wrote no output file: {e}"))
        .and_then(|object| pack_object(dialect, object));
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

/// An object as the reply carries it: zstd-compressed when the extension's `zstd` was
/// accepted, else as it is.
pub(super) fn pack_object(dialect: &Dialect, object: Vec<u8>) -> Result<Vec<u8>, String> {
    if dialect.zstd() {
        zstd::bulk::compress(&object, 1).map_err(|e| format!("cannot compress the object: {e}"))
    } else {
        Ok(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_status_is_exit_110() {
        assert_eq!(REFUSAL_STATUS, 0x6e00);
    }
}
