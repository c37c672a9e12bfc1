//! One connection, one job, as a pipeline of steps, each in its own module, with one
//! type between each:
//!
//! 1. [`authn`]: the handshake, if any → [`AuthState`]
//! 2. [`request`]: read the header → [`Header`] (dialect, argv, source still pending),
//!    then (unless the compiler starts early) the source and the request's MAC
//! 3. [`decide`]: policy, whitelist, identity → [`Admitted`], or a refusal
//! 4. where the source comes from (read, or still arriving) → [`Feed`]
//! 5. [`jobdir`]: the private directory and command line → [`Workspace`] + [`Source`]
//! 6. [`run`]: the driver or the learnt stages, once a slot is free → [`Ran`]
//! 7. [`reply`]: the answer built from the finished compiler → [`Summary`]
//! 8. [`record`]: the finished job's [`JobRecord`] for `stats`, and the job log line
//!
//! Every step that ends the job early returns its [`Summary`]; the record step runs
//! for every connection. A new kind of job (a cache hit that skips running, another
//! compiler) is a new variant at one step.
//!
//! Every refusal of a fully read request is answered (status 110, reason in `SERR`)
//! rather than closed silently as distccd does, so the user can see why; only
//! unreadable streams (bad bytes, unknown version, a client that vanished) are closed
//! without a reply.
//!
//! [`authn`]: super::authn
//! [`request`]: super::request
//! [`decide`]: super::decide
//! [`jobdir`]: super::jobdir
//! [`run`]: super::run
//! [`reply`]: super::reply
//! [`record`]: super::record

use std::time::{Duration, Instant};

use crate::conn::{Conn, TapDirection};
use crate::exit::ExitCode;
use crate::protocol::ext::Preamble;
use crate::protocol::Version;
use crate::transport::{Peer, Stream};

use super::authn::{self, AuthState, AUTH_REQUIRED};
use super::decide::{decide, Admitted};
use super::dialect::{Dialect, ExtJob};
use super::farm;
use super::jobdir::{self, Source, Workspace};
use super::record::{self, JobRecord, JobResult, Names, RejectReason, Summary};
use super::reply::{self, answer_refusal, send_reply};
use super::request::{self, read_source, warn_bad_request, Feed, PendingSource, Request};
use super::run::{self, Ran};
use super::rustc;
use super::whitelist::Refusal;
use super::Shared;

/// Serves one accepted, allowed connection and logs its summary line.
pub(crate) fn serve_connection(stream: Stream, peer: Peer, shared: &Shared) {
    let start = Instant::now();
    let mut names = Names::default();
    let mut conn = Conn::new(stream, shared.cfg.io_timeout);
    // Authentication (when configured, or when the client asks for it) comes before
    // the request; its outcome is part of the job line's reason.
    let summary = match authn::authenticate(&mut conn, peer, shared) {
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
    record::log_job(peer, &summary, &names, elapsed);
}

/// A request whose header has been read.
struct Header {
    dialect: Dialect,
    argv: Vec<String>,
    pending: PendingSource,
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
    let header = match read_request_header(conn, peer, shared, names, auth) {
        Ok(header) => header,
        Err(summary) => return warn_bad_request(peer, summary),
    };
    let Header {
        dialect,
        argv,
        pending,
    } = header;
    names.compiler = argv.first().cloned().unwrap_or_default();
    let mut req = Request {
        version: pending.version,
        argv,
        source: None,
    };
    // The compiler can start while the client still preprocesses, if nothing has to be
    // checked against the source first and a slot is free right now.
    // Nor when the result is to be cached: its key needs the whole source (and the
    // client, which sent the key first, has finished preprocessing anyway).
    let early = matches!(auth, AuthState::Off | AuthState::Exempt)
        && req.version != Version::V3
        && !shared.cfg.save_temps
        && !dialect.caching();
    let mut pending = Some(pending);
    if !early {
        let read = read_source(conn, shared, pending.take().expect("unread"));
        req.source = match read {
            Ok(source) => source,
            Err(summary) => return warn_bad_request(peer, summary),
        };
        if let Err(summary) = check_authenticated(conn, peer, shared, &dialect, auth) {
            return summary;
        }
    }
    let identity = dialect.ext.as_ref().map(|e| e.identity.as_str());
    let admitted = match decide(&req, shared, names, identity) {
        Ok(admitted) => admitted,
        Err((why, refusal)) => {
            return refuse(conn, peer, shared, &dialect, pending, &refusal, why);
        }
    };
    let feed = match choose_feed(conn, shared, pending, req.source.take()) {
        Ok(feed) => feed,
        Err(summary) => return warn_bad_request(peer, summary),
    };
    compile(conn, peer, shared, &dialect, &admitted, feed)
}

/// Reads the extension preamble, if any (and the farm cache's key, when the client
/// sends one: a hit ends the job here), and the request's header.
fn read_request_header(
    conn: &mut Conn,
    peer: Peer,
    shared: &Shared,
    names: &mut Names,
    auth: &AuthState,
) -> Result<Header, Summary> {
    let ext = request::read_opening(conn, shared)?;
    if let Some(p) = ext.as_ref().filter(|p| rustc::wanted(p)) {
        return Err(rustc::serve(conn, peer, shared, p, names));
    }
    let mut ext = ext.map(|p: Preamble| ExtJob::from_preamble(&p));
    if let Some(e) = ext.as_mut() {
        // Not to a client that must authenticate first (a hit would skip the check),
        // nor in authenticated sessions: their MACs cover one request and one reply.
        e.offer_cache =
            shared.cache.is_some() && matches!(auth, AuthState::Off | AuthState::Exempt);
        // A client that has not learnt of the cache yet (its first jobs here) still
        // fills it, under our key of what it sent, for its next build and everyone's.
        // The compiler's identity must have been checked: it is the key's anchor.
        e.cache = e.offer_cache && !e.identity.is_empty();
        if e.asked_cache {
            farm::answer_key(conn, peer, shared, e)?;
        }
    }
    let (pending, argv) = request::read_header(conn, shared)?;
    if ext.is_some() && pending.version != Version::V1 {
        conn.set_deadline(None);
        return Err(
            Summary::new(JobResult::RejBadReq, 0, ExitCode::ProtocolError.code())
                .because("bad request: an extension request must carry protocol 1")
                .rejected(RejectReason::BadRequest),
        );
    }
    if let Some(e) = &ext {
        log::debug!(
            "client {peer}: extension request (zstd: {}, keep-alive: {}, compiler: {:?})",
            e.zstd,
            e.keepalive,
            e.identity
        );
    }
    Ok(Header {
        dialect: Dialect {
            version: pending.version,
            ext,
        },
        argv,
        pending,
    })
}

/// After the whole request: a plain client that must authenticate is refused in its
/// own protocol (so that it prints the reason and compiles locally); a session's
/// request must pass its MAC check.
fn check_authenticated(
    conn: &mut Conn,
    peer: Peer,
    shared: &Shared,
    dialect: &Dialect,
    auth: &AuthState,
) -> Result<(), Summary> {
    match auth {
        AuthState::Required => {
            log::warn!("client {peer}: refused: {AUTH_REQUIRED}");
            let refusal = Refusal::new(ExitCode::AccessDenied, AUTH_REQUIRED);
            Err(answer_refusal(
                conn,
                shared,
                dialect,
                &refusal,
                RejectReason::Auth,
            ))
        }
        AuthState::Session(session) => authn::check_request_mac(conn, peer, shared, session),
        AuthState::Off | AuthState::Exempt => Ok(()),
    }
}

/// Answers the policy's refusal, having read the whole request first, or the client
/// never hears.
fn refuse(
    conn: &mut Conn,
    peer: Peer,
    shared: &Shared,
    dialect: &Dialect,
    pending: Option<PendingSource>,
    refusal: &Refusal,
    why: RejectReason,
) -> Summary {
    log::warn!("client {peer}: refused: {refusal}");
    if let Some(pending) = pending {
        if let Err(summary) = read_source(conn, shared, pending) {
            return warn_bad_request(peer, summary);
        }
    }
    answer_refusal(conn, shared, dialect, refusal, why)
}

/// Where the compile's source comes from: read already, or (early start) left on the
/// connection when an early-start permit is free right now, else read now.
fn choose_feed<'a>(
    conn: &mut Conn,
    shared: &'a Shared,
    pending: Option<PendingSource>,
    source: Option<Vec<u8>>,
) -> Result<Feed<'a>, Summary> {
    let Some(pending) = pending else {
        return Ok(Feed::Ready(source.unwrap_or_default()));
    };
    match shared.early_starts.acquire_timeout(Duration::ZERO) {
        Some(early) => Ok(Feed::Pending(pending, early)),
        None => Ok(Feed::Ready(
            read_source(conn, shared, pending)?.unwrap_or_default(),
        )),
    }
}

/// Prepares, runs and answers an admitted job.
fn compile(
    conn: &mut Conn,
    peer: Peer,
    shared: &Shared,
    dialect: &Dialect,
    admitted: &Admitted,
    feed: Feed<'_>,
) -> Summary {
    let last_sign = Instant::now();
    if !reply::send_accepted(conn, dialect) {
        return Summary::disconnected(ExitCode::IoError, "client left before its reply");
    }
    let (ws, source): (Workspace, Source<'_>) =
        match jobdir::prepare(conn, peer, shared, dialect, admitted, feed) {
            Ok(prepared) => prepared,
            Err(summary) => return summary,
        };
    let ran = match run::run(conn, peer, shared, dialect, &ws, source, last_sign) {
        Ok(ran) => ran,
        Err(summary) => return summary,
    };
    let Ran {
        finished,
        took,
        slot,
        running,
    } = ran;
    let (answer, summary) = reply::compiled(peer, shared, dialect, finished, &ws.output);
    let summary = summary.compiled_for(took);
    let to_store = ws
        .source_sha256
        .as_ref()
        .filter(|_| summary.result == JobResult::CompileOk)
        .and_then(|hash| Some((hash.clone(), std::fs::read(&ws.output).ok()?)));
    // Everything is in memory now: clean up before answering, so that a client that
    // has its reply never finds our files still there; and free the compile slot, so
    // that a client slow to take its reply does not hold it.
    drop(ws);
    drop(running);
    drop(slot);
    let Some(answer) = answer else {
        return summary;
    };
    let sent = send_reply(conn, &shared.stats, dialect, &answer);
    // After the reply: the client does not wait for the store's sync.
    if let Some((hash, object)) = to_store {
        let job = &admitted.job;
        farm::store(shared, peer, job, &admitted.program, &hash, &answer, object);
    }
    match sent {
        Ok(()) => summary,
        Err(e) => Summary::disconnected(ExitCode::IoError, format!("sending the reply: {e}"))
            .compiled_for(took),
    }
}
