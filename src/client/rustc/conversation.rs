//! One rustc job on one host: the preamble asking for feature `rustc` with our
//! toolchain's identity and the request, then the contents the server lacks, then
//! keep-alives until the reply (or a refusal, after which rustc runs here). A server
//! with a farm cache that has the result marks it (`RHIT`, feature `rustc-farm-cache`)
//! in place of asking for contents, and the reply follows at once.

use std::fs;
use std::time::Duration;

use crate::conn::{Conn, ConnError};
use crate::protocol::ext::{self, Preamble};
use crate::protocol::rustc::{
    self, Limits, RustcReply, RustcRequest, ServerMsg, ServerMsgDecoder, NOT_SERVED, NO_TOOLCHAIN,
};
use crate::state::Phase;
use crate::transport::Route;

use super::Run;

/// What was sent.
#[derive(Debug, Default)]
pub(super) struct Sent {
    pub(super) bytes: u64,
    pub(super) files: usize,
    /// The server said something: it speaks the extension.
    answered: bool,
    /// The server looked the job up in its farm cache (it accepted the feature).
    pub(super) looked_up: bool,
    /// ... and answered from it: rustc did not run for this job.
    pub(super) farm_hit: bool,
}

/// How an attempt ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// rustc ran there (with whatever status).
    Done(RustcReply, Sent),
    /// The host will not do it (no `--rustc`, another toolchain, this job): not a
    /// failure of the host.
    Declined(String),
    /// The host or the link failed.
    Failed(String),
}

/// Whether a refusal is about every rustc job of ours, not just this one.
pub(super) fn declines_all(why: &str) -> bool {
    why.starts_with(NOT_SERVED) || why.starts_with(NO_TOOLCHAIN) || why.starts_with(CLOSED)
}

/// A plain distccd (or an old swarmccd) closes at once on the extension's request.
const CLOSED: &str = "the host closed the connection on a rustc job";

fn closed_at_once(e: &ConnError) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset};
    match e {
        ConnError::Eof { mid_message } => !mid_message,
        ConnError::Io(io) => matches!(io.kind(), ConnectionReset | BrokenPipe),
        _ => false,
    }
}

/// Runs the job on `host:port`.
pub(super) fn attempt(
    run: &Run<'_>,
    host: &str,
    port: u16,
    slot: u32,
    early: &mut dyn FnMut(RustcReply) -> Result<(), String>,
) -> Outcome {
    let cfg = run.cfg;
    let route = Route::Tcp { host, port };
    let link = match cfg.dialer.open(route, cfg.connect_timeout) {
        Ok(link) => link,
        Err(e) => return Outcome::Failed(format!("cannot connect: {e}")),
    };
    let mut conn = Conn::new(link.stream, cfg.io_timeout);
    let mut sent = Sent::default();
    let phase = |p: Phase| {
        if let Some(st) = run.sched.state() {
            st.phase_on(p, host, slot);
        }
    };
    phase(Phase::Send);
    match converse(run, &mut conn, &mut sent, &phase, early) {
        Ok(Ok(reply)) => Outcome::Done(reply, sent),
        Ok(Err(why)) => Outcome::Declined(why),
        // distccd closes at once on the extension's version number (a reset, when our
        // request is still unread): not a swarmccd, not a failure.
        Err(e) if !sent.answered && closed_at_once(&e) => Outcome::Declined(CLOSED.to_string()),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// The conversation; `Ok(Err(reason))` for a refusal.
fn converse(
    run: &Run<'_>,
    conn: &mut Conn,
    sent: &mut Sent,
    phase: &dyn Fn(Phase),
    early: &mut dyn FnMut(RustcReply) -> Result<(), String>,
) -> Result<Result<RustcReply, String>, ConnError> {
    let cfg = run.cfg;
    let mut bytes = Vec::new();
    let preamble = Preamble {
        features: vec![
            rustc::FEATURE.to_string(),
            rustc::EARLY_METADATA.to_string(),
            rustc::FARM_CACHE.to_string(),
        ],
        identity: run.identity.to_string(),
    };
    let request = RustcRequest {
        cwd: run.inputs.cwd.clone(),
        args: run.args.to_vec(),
        env: run.inputs.env.clone(),
        files: run.inputs.files.clone(),
    };
    let encoded = ext::encode_preamble(&preamble, &mut bytes)
        .and_then(|()| rustc::encode_request(&request, &mut bytes));
    if let Err(e) = encoded {
        return Ok(Err(format!("the job cannot be sent: {e}")));
    }
    conn.send(&bytes)?;
    sent.bytes += bytes.len() as u64;
    let mut decoder = ServerMsgDecoder::new(Limits::default());
    let needed = match answer(conn, &mut decoder, sent, Some(cfg.io_timeout))? {
        Ok(needed) => needed,
        Err(why) => return Ok(Err(why)),
    };
    if let Err(why) = send_contents(run, conn, sent, &needed)? {
        return Ok(Err(why));
    }
    phase(Phase::Compile);
    // A serving swarmccd sends keep-alives while the job waits and runs.
    let stall = Some(cfg.stall_timeout.max(Duration::from_secs(10)));
    loop {
        match conn.next_event(&mut decoder, stall)? {
            ServerMsg::KeepAlive => continue,
            ServerMsg::Refused(why) => return Ok(Err(why)),
            ServerMsg::Early(part) => {
                if let Err(why) = early(part) {
                    return Ok(Err(why));
                }
                log::debug!(
                    "rustc {}: metadata written ahead of the reply",
                    run.job.crate_name
                );
            }
            ServerMsg::Reply(reply) => {
                phase(Phase::Receive);
                return Ok(Ok(reply));
            }
            ServerMsg::Accepted(_) | ServerMsg::Needed(_) | ServerMsg::CacheHit => {
                return Err(unexpected("a second answer to the request"))
            }
        }
    }
}

/// The server's answer to the request: the contents it lacks (none on a hit), or
/// `Ok(Err(reason))` for a refusal.
fn answer(
    conn: &mut Conn,
    decoder: &mut ServerMsgDecoder,
    sent: &mut Sent,
    wait: Option<Duration>,
) -> Result<Result<Vec<u32>, String>, ConnError> {
    loop {
        let msg = conn.next_event(decoder, wait)?;
        sent.answered = true;
        match msg {
            ServerMsg::Accepted(features) => {
                sent.looked_up = features.iter().any(|f| f == rustc::FARM_CACHE);
            }
            ServerMsg::KeepAlive => continue,
            ServerMsg::Refused(why) => return Ok(Err(why)),
            ServerMsg::Needed(needed) => return Ok(Ok(needed)),
            // Only a server that accepted the feature marks a hit.
            ServerMsg::CacheHit if sent.looked_up => {
                sent.farm_hit = true;
                return Ok(Ok(Vec::new()));
            }
            ServerMsg::CacheHit => return Err(unexpected("a cache hit mark not agreed on")),
            ServerMsg::Reply(_) | ServerMsg::Early(_) => {
                return Err(unexpected("a reply before the files"))
            }
        }
    }
}

/// Sends the contents the server asked for; `Ok(Err(why))` when one cannot be read.
fn send_contents(
    run: &Run<'_>,
    conn: &mut Conn,
    sent: &mut Sent,
    needed: &[u32],
) -> Result<Result<(), String>, ConnError> {
    for &i in needed {
        let Some(file) = run.inputs.files.get(i as usize) else {
            return Err(unexpected("a file index beyond the request"));
        };
        let data = match fs::read(&file.path) {
            Ok(data) => data,
            Err(e) => return Ok(Err(format!("reading {}: {e}", file.path))),
        };
        let mut blob = Vec::with_capacity(data.len() / 2 + 64);
        if let Err(e) = rustc::encode_blob(&data, &mut blob) {
            return Ok(Err(format!("{}: {e}", file.path)));
        }
        conn.send(&blob)?;
        sent.bytes += blob.len() as u64;
        sent.files += 1;
    }
    Ok(Ok(()))
}

fn unexpected(what: &'static str) -> ConnError {
    ConnError::Protocol(crate::protocol::Error::Encode(what))
}
