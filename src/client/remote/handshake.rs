//! The client's half of the authentication handshake with a `,auth` host (messages in
//! `protocol::auth`, keys and MACs in `crate::auth`), and the session it opens: from
//! then on every request byte goes into the request MAC.

use std::time::Duration;

use crate::auth::{self, Key, Session};
use crate::conn::{Conn, TapDirection};
use crate::protocol::auth::{self as wire, AuthDecoder, AuthMessage, Expect};

use super::error::AuthFailure;

/// Authenticates with the key, if the host wants it, and starts the request's MAC.
/// `None`: a plain conversation.
pub(super) fn open_session(
    conn: &mut Conn,
    key: Option<&Key>,
    connect_timeout: Duration,
) -> Result<Option<Session>, AuthFailure> {
    let Some(key) = key else {
        return Ok(None);
    };
    // A swarmccd answers the handshake at once, as it accepts a connection, so its
    // steps get the connect timeout: a plain distccd never answers SWAU (it keeps
    // reading, to quote more of what it got in its error message).
    let session = handshake(conn, key, connect_timeout)?;
    // From here on every request byte goes into the request MAC.
    conn.start_tap(TapDirection::Sent, session.transcript());
    Ok(Some(session))
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
