//! The server's reply: `DONE` `STAT` `SERR` `SOUT` `DOTO` (`DOTD`), encoded on the server
//! and decoded incrementally on the client. The shared version, limits and body packing
//! are the parent's; the request is `request`'s.

use super::{atomically, pack, unpack, Limits, Version};
use crate::protocol::frame::{
    encode_bulk, encode_header, expect_header, take_sized, Token, HEADER_LEN,
};
use crate::protocol::Error;

/// A complete reply from the server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// Raw wait(2) status of the compiler (`exit << 8 | signal`).
    pub status: u32,
    pub stderr: Vec<u8>,
    pub stdout: Vec<u8>,
    /// The object (empty on failure; always written by the client on success).
    pub object: Vec<u8>,
    /// v3 only: the dependency file, sent on success.
    pub deps: Option<Vec<u8>>,
}

/// Encodes `DONE` `STAT` `SERR` `SOUT` `DOTO` (and `DOTD` when `reply.deps` is Some, the
/// version is 3 and the status is 0), compressing bulk bodies for v2/v3. A non-zero
/// status sends `DOTO00000000` whatever `reply.object` holds. Empty bodies are sent as
/// length 0 with no LZO bytes.
pub fn encode_reply(version: Version, reply: &Reply, out: &mut Vec<u8>) -> Result<(), Error> {
    let ok = reply.status == 0;
    atomically(out, |out| {
        encode_header(Token::DONE, version.number(), out);
        encode_header(Token::STAT, reply.status, out);
        encode_bulk(Token::SERR, &pack(version, &reply.stderr), out)?;
        encode_bulk(Token::SOUT, &pack(version, &reply.stdout), out)?;
        // distcc clients ignore an object that comes with a failure status, and 3.4
        // does not even read it; sending it would only desynchronise them.
        let object: &[u8] = if ok { &reply.object } else { &[] };
        encode_bulk(Token::DOTO, &pack(version, object), out)?;
        if let (Version::V3, true, Some(deps)) = (version, ok, &reply.deps) {
            encode_bulk(Token::DOTD, &pack(version, deps), out)?;
        }
        Ok(())
    })
}

/// What a [`ReplyDecoder`] yields, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyEvent {
    /// `DONE` with the expected version: the server started answering.
    Started,
    Status(u32),
    Stderr(Vec<u8>),
    Stdout(Vec<u8>),
    /// The object. Empty when the status is non-zero: an object sent along with a
    /// failure is consumed and dropped, as distcc does ("remote compiler failed but
    /// also returned output").
    Object(Vec<u8>),
    Deps(Vec<u8>),
}

/// Incremental decoder for a server's reply (client side). Same buffer contract as
/// [`RequestDecoder`](super::RequestDecoder); every event here is exactly one packet.
#[derive(Debug)]
pub struct ReplyDecoder {
    version: Version,
    limits: Limits,
    expect_deps: bool,
    status: u32,
    next: ReplyStep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyStep {
    Done,
    Stat,
    Serr,
    Sout,
    Doto,
    Dotd,
    Complete,
}

impl ReplyDecoder {
    /// `expect_deps`: a v3 reply carries `DOTD` after `DOTO` on success.
    pub fn new(version: Version, limits: Limits, expect_deps: bool) -> Self {
        ReplyDecoder {
            version,
            limits,
            expect_deps,
            status: 0,
            next: ReplyStep::Done,
        }
    }

    /// Decodes the next event from the front of `buf`. Returns `Ok(None)` when `buf`
    /// does not yet hold the next packet, and also once the reply is complete.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(ReplyEvent, usize)>, Error> {
        let compressed = self.version.compressed();
        let limits = self.limits;
        let bulk = |token: Token| -> Result<Option<(Vec<u8>, usize)>, Error> {
            let Some((body, used)) = take_sized(buf, token, token.name(), limits.max_body)? else {
                return Ok(None);
            };
            Ok(Some((
                unpack(compressed, body, &limits, token.name())?,
                used,
            )))
        };
        let (event, used, next) = match self.next {
            ReplyStep::Done => {
                let Some(v) = expect_header(buf, Token::DONE)? else {
                    return Ok(None);
                };
                if v != self.version.number() {
                    return Err(Error::VersionMismatch {
                        expected: self.version.number(),
                        got: v,
                    });
                }
                (ReplyEvent::Started, HEADER_LEN, ReplyStep::Stat)
            }
            ReplyStep::Stat => {
                let Some(status) = expect_header(buf, Token::STAT)? else {
                    return Ok(None);
                };
                self.status = status;
                (ReplyEvent::Status(status), HEADER_LEN, ReplyStep::Serr)
            }
            ReplyStep::Serr => {
                let Some((data, used)) = bulk(Token::SERR)? else {
                    return Ok(None);
                };
                (ReplyEvent::Stderr(data), used, ReplyStep::Sout)
            }
            ReplyStep::Sout => {
                let Some((data, used)) = bulk(Token::SOUT)? else {
                    return Ok(None);
                };
                (ReplyEvent::Stdout(data), used, ReplyStep::Doto)
            }
            ReplyStep::Doto => {
                let ok = self.status == 0;
                let next = if ok && self.expect_deps && self.version == Version::V3 {
                    ReplyStep::Dotd
                } else {
                    ReplyStep::Complete
                };
                if ok {
                    let Some((data, used)) = bulk(Token::DOTO)? else {
                        return Ok(None);
                    };
                    (ReplyEvent::Object(data), used, next)
                } else {
                    // Still bounded by max_body, but never decompressed: it is dropped.
                    let Some((_, used)) = take_sized(buf, Token::DOTO, "DOTO", limits.max_body)?
                    else {
                        return Ok(None);
                    };
                    (ReplyEvent::Object(Vec::new()), used, next)
                }
            }
            ReplyStep::Dotd => {
                let Some((data, used)) = bulk(Token::DOTD)? else {
                    return Ok(None);
                };
                (ReplyEvent::Deps(data), used, ReplyStep::Complete)
            }
            ReplyStep::Complete => return Ok(None),
        };
        self.next = next;
        Ok(Some((event, used)))
    }

    /// True once the last event of the reply was returned.
    pub fn is_complete(&self) -> bool {
        self.next == ReplyStep::Complete
    }
}
