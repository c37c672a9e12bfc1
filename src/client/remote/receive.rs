//! The reply's side of the conversation: waiting out the compile (a refusal instead of
//! a reply on an authenticated session, keep-alives with the extension), the reply
//! itself, its MAC, the zstd object, and the extension's advertisement after it.

use std::time::Duration;

use crate::conn::{Conn, ConnError};
use crate::protocol::auth::{AuthDecoder, AuthMessage, Expect};
use crate::protocol::ext::{self, AdvertDecoder, PreludeDecoder, ReplyPrelude};
use crate::protocol::{Limits, Reply, ReplyDecoder, ReplyEvent, Version};
use crate::state::Phase;

use super::conversation::Dialect;
use super::error::{AttemptError, AuthFailure};
use super::{Target, Timeouts};

/// The largest object we unpack (as the plain protocol's limit).
const MAX_OBJECT: usize = 2 * 1024 * 1024 * 1024 - 1;

/// Waits until the reply begins, and returns how long its first bytes may then take:
/// with the extension, keep-alives bound the silence instead of the compile timeout.
/// `offers_cache` is set if the server lists its farm cache among its features.
pub(super) fn await_reply(
    conn: &mut Conn,
    dialect: Dialect,
    authenticated: bool,
    timeouts: Timeouts,
    offers_cache: &mut bool,
) -> Result<Duration, AttemptError> {
    let mut first_wait = timeouts.compile;
    if authenticated {
        // Instead of a reply, a server that found the request altered says so.
        let mut start = AuthDecoder::new(Expect::ReplyStart);
        match conn.next_event(&mut start, Some(timeouts.compile)) {
            Ok(AuthMessage::Refuse { reason }) => {
                return Err(AttemptError::Auth(AuthFailure::Refused(reason)))
            }
            Ok(_) => {}
            Err(e) => return Err(dialect.failed(e)),
        }
    }
    if dialect.ext {
        // Keep-alives come every second: silence means the server is gone, however
        // long the compile. (Not the I/O timeout: set low for data transfers, it would
        // take a keep-alive interval for a stall.)
        let silence = timeouts.stall.min(timeouts.compile);
        loop {
            match conn.next_event(&mut PreludeDecoder, Some(silence)) {
                Ok(ReplyPrelude::KeepAlive) => {}
                Ok(ReplyPrelude::Accepted(features)) => {
                    *offers_cache = features.iter().any(|f| f == ext::CACHE);
                }
                Ok(ReplyPrelude::Reply) => break,
                Err(e) => return Err(dialect.failed(e)),
            }
        }
        first_wait = silence;
    }
    Ok(first_wait)
}

/// Reads the reply, its first bytes within `first_wait`; the monitor's Receive phase
/// begins with them.
pub(super) fn reply(
    conn: &mut Conn,
    target: &Target<'_>,
    wire: Version,
    first_wait: Duration,
) -> Result<Reply, AttemptError> {
    let mut decoder = ReplyDecoder::new(wire, Limits::default(), false);
    let mut reply = Reply::default();
    let mut first = true;
    while !decoder.is_complete() {
        let wait = if first { Some(first_wait) } else { None };
        let event = conn
            .next_event(&mut decoder, wait)
            .map_err(AttemptError::Conn)?;
        first = false;
        match event {
            ReplyEvent::Started => target.phase(Phase::Receive),
            ReplyEvent::Status(s) => reply.status = s,
            ReplyEvent::Stderr(b) => reply.stderr = b,
            ReplyEvent::Stdout(b) => reply.stdout = b,
            ReplyEvent::Object(b) => reply.object = b,
            ReplyEvent::Deps(b) => reply.deps = Some(b),
        }
    }
    Ok(reply)
}

/// On an authenticated session, the reply counts only if the MAC after it checks out.
pub(super) fn verify_mac(conn: &mut Conn) -> Result<(), AttemptError> {
    if let Some(reply_mac) = conn.stop_tap() {
        let fail = |why: String| AttemptError::Auth(AuthFailure::Reply(why));
        match conn.next_event(&mut AuthDecoder::new(Expect::Mac), None) {
            Ok(AuthMessage::Mac { mac }) if reply_mac.verify(&mac) => {}
            Ok(_) => return Err(fail("MAC mismatch".into())),
            Err(e) => return Err(fail(format!("no SWMC after it: {e}"))),
        }
    }
    Ok(())
}

/// The object of a zstd reply, unpacked.
pub(super) fn unpack(object: &[u8]) -> Result<Vec<u8>, AttemptError> {
    zstd::bulk::decompress(object, MAX_OBJECT).map_err(|e| AttemptError::Conn(ConnError::Io(e)))
}

/// Whether the server sent the extension's advertisement after its reply. It arrives
/// with the reply's last bytes, so a short wait is plenty.
pub(super) fn advertised(conn: &mut Conn) -> bool {
    matches!(
        conn.next_event(&mut AdvertDecoder, Some(Duration::from_millis(50))),
        Ok(true)
    )
}
