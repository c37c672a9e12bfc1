//! Authentication (`--auth-key-file`): the server's half of the handshake described in
//! `protocol::auth`, the request MAC check, and what the job line says about it. Keys,
//! nonces and MACs are `crate::auth`'s; this module is the conversation on the socket.

use crate::auth::{self, Key, Session};
use crate::conn::{Conn, ConnError, TapDirection};
use crate::exit::ExitCode;
use crate::protocol::auth::{self as wire, AuthDecoder, AuthMessage, Expect};
use crate::transport::Peer;

use super::access::AllowList;
use super::record::{JobResult, RejectReason, Summary};
use super::request::read_failure;
use super::Shared;

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
pub(super) enum AuthState {
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
    pub(super) fn annotate(&self, mut summary: Summary) -> Summary {
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
pub(super) fn authenticate(
    conn: &mut Conn,
    peer: Peer,
    shared: &Shared,
) -> Result<AuthState, Summary> {
    let wait = Some(shared.cfg.io_timeout);
    let policy = shared.cfg.auth.as_ref();
    let version = match conn.next_event(&mut AuthDecoder::new(Expect::Opening), wait) {
        Ok(AuthMessage::Hello { version }) => version,
        Ok(_) => return Ok(plain_client(policy, peer)),
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

/// How a client that did not start the handshake stands under the policy.
fn plain_client(policy: Option<&AuthPolicy>, peer: Peer) -> AuthState {
    match policy {
        None => AuthState::Off,
        Some(p)
            if peer
                .ip()
                .is_some_and(|ip| p.allow_unauthenticated.allows(ip)) =>
        {
            AuthState::Exempt
        }
        Some(_) => AuthState::Required,
    }
}

/// After the request of an authenticated session: its `SWMC` must match what was
/// received, or nothing is compiled. On success the reply tap is started, so that
/// `send_reply` appends the reply's MAC.
pub(super) fn check_request_mac(
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
