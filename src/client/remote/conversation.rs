//! The conversation of one attempt on an open connection, as its steps: authenticate
//! (`,auth` hosts), send the request header while the preprocessor still runs, send the
//! source, wait out the compile, receive the reply and check it.
//!
//! The dialect is settled before the first byte: plain distcc in the host's protocol, or
//! swarmcc's extension (a preamble, then a protocol-1 request, keep-alives while the
//! server compiles, zstd bodies on `,lzo` hosts).

use crate::auth::Key as AuthKey;
use crate::cache::Key;
use crate::client::preprocess::Preprocessor;
use crate::conn::{Conn, ConnError, TapDirection};
use crate::protocol::cache::{Answer as CacheAnswer, AnswerDecoder};
use crate::protocol::ext::{self, PreludeDecoder, ReplyPrelude};
use crate::protocol::{Error as ProtocolError, Reply, Version};
use crate::state::Phase;

use super::error::AttemptError;
use super::{handshake, receive, send, Answer, FarmCache, Target, Timeouts};

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
    key: Option<&AuthKey>,
    remote_argv: &[String],
    cpp: &mut Preprocessor<'_>,
    timeouts: Timeouts,
) -> Result<Answer, AttemptError> {
    let session = handshake::open_session(conn, key, timeouts.connect)?;
    let dialect = Dialect::of(target);
    let mut farm = FarmCache::NotAsked;
    let mut offers_cache = false;
    let cache_key = target
        .cache_key
        .filter(|_| dialect.ext && session.is_none());
    if let Some(cache_key) = cache_key {
        match ask_farm_cache(conn, target, dialect, cache_key, timeouts)? {
            Asked::Hit(reply) => {
                return Ok(Answer {
                    reply,
                    offers_ext: true,
                    offers_cache: true,
                    farm: FarmCache::Hit,
                    compiler_checked: true,
                })
            }
            Asked::Miss => {
                farm = FarmCache::Miss;
                offers_cache = true;
            }
            Asked::NotOffered => {}
        }
    }
    send::request_header(conn, target, dialect, remote_argv, cache_key.is_some())?;
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
    let mut offered = offers_cache;
    let authenticated = session.is_some();
    let first_wait = receive::await_reply(conn, dialect, authenticated, timeouts, &mut offered)?;
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
    let compiler_checked = dialect.ext && target.ext.is_some_and(|i| !i.get().is_empty());
    Ok(Answer {
        reply,
        offers_ext,
        offers_cache: offered,
        farm,
        compiler_checked,
    })
}

/// What a farm cache said before the request.
enum Asked {
    Hit(Reply),
    Miss,
    /// The server did not accept the cache (turned off since we learnt it): the
    /// request follows as without it.
    NotOffered,
}

/// The farm cache's exchange: the preamble alone, the server's features at once, the
/// key, and a hit's reply or a miss.
fn ask_farm_cache(
    conn: &mut Conn,
    target: &Target<'_>,
    dialect: Dialect,
    key: &Key,
    timeouts: Timeouts,
) -> Result<Asked, AttemptError> {
    target.phase(Phase::Send);
    send::cache_preamble(conn, target, dialect)?;
    // A swarmccd answers a preamble alone at once, as it answers a connection.
    let accepted = match conn.next_event(&mut PreludeDecoder, Some(timeouts.connect)) {
        Ok(ReplyPrelude::Accepted(features)) => features,
        Ok(other) => {
            return Err(AttemptError::Conn(ConnError::Protocol(
                ProtocolError::UnexpectedToken {
                    expected: "SWOP (the features, before the cache key)",
                    got: if other == ReplyPrelude::KeepAlive {
                        *b"SWKA"
                    } else {
                        *b"DONE"
                    },
                },
            )))
        }
        Err(e) => return Err(dialect.failed(e)),
    };
    if !accepted.iter().any(|f| f == ext::CACHE) {
        log::debug!("{}: farm cache no longer offered", target.route.host());
        return Ok(Asked::NotOffered);
    }
    send::cache_key(conn, key.as_str())?;
    let wait = Some(timeouts.stall.min(timeouts.compile));
    match conn.next_event(&mut AnswerDecoder, wait) {
        Ok(CacheAnswer::Miss) => {
            log::debug!("farm cache miss on {} for {key}", target.route.host());
            Ok(Asked::Miss)
        }
        Ok(CacheAnswer::Hit) => {
            let mut reply = receive::reply(conn, target, Version::V1, timeouts.io)?;
            if dialect.zstd && reply.status == 0 {
                reply.object = receive::unpack(&reply.object)?;
            }
            if let Some(st) = target.state {
                // Monitors show the job on `HOST+cache`: answered, not compiled, there.
                let shown = format!("{}+cache", target.route.host());
                st.phase_on(Phase::Receive, &shown, target.slot);
            }
            log::debug!("farm cache hit on {} for {key}", target.route.host());
            Ok(Asked::Hit(reply))
        }
        Err(e) => Err(AttemptError::Conn(e)),
    }
}
