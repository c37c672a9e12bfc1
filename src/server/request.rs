//! Reading a request off the connection: the extension preamble, the header
//! (`DIST` … `ARGV`) within `--request-timeout`, then the source (or, for protocol 3,
//! every file, dropped). Every failure becomes the job's [`Summary`].

use std::time::Instant;

use crate::conn::{Conn, ConnError};
use crate::exit::ExitCode;
use crate::protocol::ext::{Opening, OpeningDecoder, Preamble};
use crate::protocol::{Error as ProtocolError, RequestDecoder, RequestEvent, Version};
use crate::transport::Peer;

use super::dialect::Dialect;
use super::record::{JobResult, RejectReason, Summary};
use super::reply::answer_refusal;
use super::whitelist::Refusal;
use super::{Permit, Shared};

/// The parts of a request we keep.
pub(super) struct Request {
    pub(super) version: Version,
    pub(super) argv: Vec<String>,
    /// v1/v2: the preprocessed source. v3: `None` (files are received and dropped).
    pub(super) source: Option<Vec<u8>>,
}

/// Where a compile's source comes from.
pub(super) enum Feed<'a> {
    /// Read already (still packed if the extension's zstd is on).
    Ready(Vec<u8>),
    /// Still on the connection: the compiler starts first and reads the source from a
    /// pipe as soon as it arrives. The permit bounds how many such compilers wait.
    Pending(PendingSource, Permit<'a>),
}

/// Reads an extension request's preamble, if the request has one.
pub(super) fn read_opening(conn: &mut Conn, shared: &Shared) -> Result<Option<Preamble>, Summary> {
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
pub(super) struct PendingSource {
    decoder: RequestDecoder,
    pub(super) version: Version,
}

/// Reads a request's header (`DIST` … `ARGV`). The whole request must arrive within
/// `--request-timeout` from here; [`read_source`] lifts the deadline.
pub(super) fn read_header(
    conn: &mut Conn,
    shared: &Shared,
) -> Result<(PendingSource, Vec<String>), Summary> {
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
pub(super) fn read_source(
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

pub(super) fn read_failure(e: ConnError) -> Summary {
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

/// Logs a malformed request (disconnects are routine) and returns its summary.
pub(super) fn warn_bad_request(peer: Peer, summary: Summary) -> Summary {
    if let (JobResult::RejBadReq, Some(why)) = (summary.result, &summary.reason) {
        log::warn!("client {peer}: {why}");
    }
    summary
}

/// Unpacks an extension request's zstd source; plain sources pass through.
pub(super) fn unpack_source(
    shared: &Shared,
    dialect: &Dialect,
    source: Vec<u8>,
) -> Result<Vec<u8>, Refusal> {
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
