//! The conversation of one attempt on an open connection, as its steps: authenticate
//! (`,auth` hosts), send the request header while the preprocessor still runs, send the
//! source, wait out the compile, receive the reply and check it.
//!
//! The dialect is settled before the first byte: plain distcc in the host's protocol, or
//! swarmcc's extension (a preamble, then a protocol-1 request, keep-alives while the
//! server compiles, zstd bodies on `,lzo` hosts).

use crate::auth::Key;
use crate::client::preprocess::Preprocessor;
use crate::conn::{Conn, ConnError, TapDirection};
use crate::protocol::Version;
use crate::state::Phase;

use super::error::AttemptError;
use super::{handshake, receive, send, Answer, Target, Timeouts};

/// How this conversation speaks, settled before its first byte.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dialect {
    /// The protocol version of the request: the extension carries protocol 1.
    pub wire: Version,
    /// swarmcc's extension: a preamble, keep-alives, and the advertisement after.
    pub ext: bool,
    /// The bodies are zstd, not LZO: the extension on a host that asks for
    /// compression (`,lzo`). On a fast link compression costs more CPU than it saves
    /// in time, as with distcc, so it is never added unasked.
    pub zstd: bool,
}

impl Dialect {
    fn of(target: &Target<'_>) -> Dialect {
        let ext = target.ext.is_some();
        Dialect {
            wire: if ext { Version::V1 } else { target.version },
            ext,
            zstd: ext && target.version == Version::V2,
        }
    }

    /// A failed send or wait as the job must read it: a plain distccd closes at once on
    /// the extension's version number, which means "ask again in plain distcc".
    pub(super) fn failed(&self, e: ConnError) -> AttemptError {
        let refused = matches!(&e, ConnError::Eof { mid_message: false })
            || matches!(&e, ConnError::Io(io) if matches!(io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe));
        if self.ext && refused {
            AttemptError::NoExtension(e.to_string())
        } else {
            AttemptError::Conn(e)
        }
    }
}

/// Runs the conversation: request out, reply in (checked against its MAC on an
/// authenticated session, unpacked if it came as zstd).
pub(super) fn converse(
    target: &Target<'_>,
    conn: &mut Conn,
    key: Option<&Key>,
    remote_argv: &[String],
    cpp: &mut Preprocessor<'_>,
    timeouts: Timeouts,
) -> Result<Answer, AttemptError> {
    let session = handshake::open_session(conn, key, timeouts.connect)?;
    let dialect = Dialect::of(target);
    send::request_header(conn, target, dialect, remote_argv)?;
    let pre = match cpp.wait() {
        Ok(pre) => pre,
        Err(e) => {
            conn.close_unsent();
            return Err(AttemptError::Preprocess(e));
        }
    };
    target.phase(Phase::Send);
    send::source(conn, dialect, pre)?;
    send::request_mac(conn)?;
    // The request is out: the server compiles, we wait.
    target.phase(Phase::Compile);
    let first_wait = receive::await_reply(conn, dialect, session.is_some(), timeouts)?;
    if let Some(session) = &session {
        conn.start_tap(TapDirection::Received, session.transcript());
    }
    let mut reply = receive::reply(conn, target, dialect.wire, first_wait)?;
    receive::verify_mac(conn)?;
    if dialect.zstd && reply.status == 0 {
        // We asked for zstd and swarmccd always grants it: the object is packed.
        reply.object = receive::unpack(&reply.object)?;
    }
    let offers_ext = dialect.ext || receive::advertised(conn);
    Ok(Answer { reply, offers_ext })
}
