//! swarmcc's protocol extension between swarmcc and swarmccd: zstd bodies, a check that
//! the server's compiler is the client's, and keep-alives during long compiles. Pure
//! encoding and decoding, on distcc's framing.
//!
//! It is negotiated, never assumed. A swarmccd ends every plain distcc reply with an
//! advertisement, `SWXT 00000001`, which distcc clients never read (they close after
//! the object). A swarmcc client that saw it remembers the host and speaks the
//! extension to it from then on:
//!
//! ```text
//! client → server   DIST 53570001                 extension request, version 1
//!                   SWOP <len> "zstd keepalive"   features wanted (space-separated)
//!                   SWID <len> <identity>         the client's compiler (may be empty)
//!                   a protocol-1 request (DIST 00000001 ARGC ARGV… DOTI), whose DOTI
//!                   body is zstd-compressed when "zstd" was accepted
//! server → client   SWOP <len> <features accepted>
//!                   SWKA 00000000                 zero or more: still working
//!                   a protocol-1 reply (DONE 00000001 STAT SERR SOUT DOTO), whose DOTO
//!                   body is zstd-compressed when "zstd" was accepted
//! ```
//!
//! A plain distccd that receives `DIST 53570001` rejects the version and closes at once
//! (it does not wait for more bytes), so a client whose memory of a host is stale loses
//! one connection, forgets, and speaks plain distcc.

use super::frame::{
    decode_string, encode_header, encode_raw_header, parse_header, Token, HEADER_LEN,
};
use super::Error;

/// The `DIST` value of an extension request: "SW" and the extension version.
pub const EXT_VERSION: u32 = 0x5357_0001;
/// The value of the advertisement: the extension version the server speaks.
pub const ADVERTISED: u32 = 1;
/// Features this code implements.
pub const ZSTD: &str = "zstd";
pub const KEEPALIVE: &str = "keepalive";
/// The farm cache (`protocol::cache`): answered by a server with a cache whether
/// asked or not, so that clients learn it; asked by a client that has learnt it.
pub const CACHE: &str = "cache";
/// Longest feature list or identity accepted.
pub const MAX_TEXT: u32 = 4096;

const DIST: Token = Token::DIST;
const SWXT: [u8; 4] = *b"SWXT";
const SWOP: [u8; 4] = *b"SWOP";
const SWID: [u8; 4] = *b"SWID";
const SWKA: [u8; 4] = *b"SWKA";

/// What an extension request says before its distcc request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Preamble {
    pub features: Vec<String>,
    /// The client's compiler identity (`compiler version …; target …`), empty if unknown.
    pub identity: String,
}

impl Preamble {
    pub fn has(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}

/// Whether `buf` (at least 12 bytes, or the whole stream if shorter) opens an
/// extension request. `None` while fewer than 12 bytes are there.
pub fn is_ext_request(buf: &[u8]) -> Option<bool> {
    if buf.len() < HEADER_LEN {
        return None;
    }
    let mut expected = Vec::with_capacity(HEADER_LEN);
    encode_header(DIST, EXT_VERSION, &mut expected);
    Some(buf[..HEADER_LEN] == expected[..])
}

/// Appends an extension request's preamble (`DIST 53570001`, `SWOP`, `SWID`).
pub fn encode_preamble(p: &Preamble, out: &mut Vec<u8>) -> Result<(), Error> {
    encode_header(DIST, EXT_VERSION, out);
    encode_text(SWOP, &p.features.join(" "), out)?;
    encode_text(SWID, &p.identity, out)
}

/// Decodes a whole preamble from the front of `buf`: `Ok(None)` until it is all there.
pub fn decode_preamble(buf: &[u8]) -> Result<Option<(Preamble, usize)>, Error> {
    match is_ext_request(buf) {
        None => return Ok(None),
        Some(false) => {
            return Err(Error::UnexpectedToken {
                expected: "DIST 53570001",
                got: [buf[0], buf[1], buf[2], buf[3]],
            })
        }
        Some(true) => {}
    }
    let mut at = HEADER_LEN;
    let Some((features, used)) = take_text(&buf[at..], SWOP, "SWOP")? else {
        return Ok(None);
    };
    at += used;
    let Some((identity, used)) = take_text(&buf[at..], SWID, "SWID")? else {
        return Ok(None);
    };
    at += used;
    let features = features.split_whitespace().map(str::to_owned).collect();
    Ok(Some((Preamble { features, identity }, at)))
}

/// Appends the server's feature answer.
pub fn encode_accepted(features: &[&str], out: &mut Vec<u8>) -> Result<(), Error> {
    encode_text(SWOP, &features.join(" "), out)
}

/// Appends one keep-alive.
pub fn encode_keepalive(out: &mut Vec<u8>) {
    encode_raw_header(SWKA, 0, out);
}

/// Appends the advertisement a swarmccd sends after a plain reply.
pub fn encode_advertisement(out: &mut Vec<u8>) {
    encode_raw_header(SWXT, ADVERTISED, out);
}

/// Whether `buf` starts with an advertisement of a version we speak.
pub fn is_advertisement(buf: &[u8]) -> bool {
    matches!(parse_header(buf), Ok(Some(h)) if h.token == SWXT && h.value >= ADVERTISED)
}

/// What the client reads before the distcc reply of an extension request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyPrelude {
    /// `SWOP`: the features the server applies.
    Accepted(Vec<String>),
    /// `SWKA`: the server is still working.
    KeepAlive,
    /// The distcc reply starts here; nothing was consumed.
    Reply,
}

/// Decodes the next prelude message of an extension reply.
pub fn decode_reply_prelude(buf: &[u8]) -> Result<Option<(ReplyPrelude, usize)>, Error> {
    let Some(h) = parse_header(buf)? else {
        return Ok(None);
    };
    if h.token == SWKA {
        return Ok(Some((ReplyPrelude::KeepAlive, HEADER_LEN)));
    }
    if h.token == SWOP {
        return Ok(take_text(buf, SWOP, "SWOP")?.map(|(text, used)| {
            let f = text.split_whitespace().map(str::to_owned).collect();
            (ReplyPrelude::Accepted(f), used)
        }));
    }
    Ok(Some((ReplyPrelude::Reply, 0)))
}

fn encode_text(token: [u8; 4], text: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    if text.len() > MAX_TEXT as usize || text.as_bytes().contains(&0) {
        return Err(Error::Encode("extension text too long or with a NUL byte"));
    }
    encode_raw_header(token, text.len() as u32, out);
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn take_text(
    buf: &[u8],
    token: [u8; 4],
    what: &'static str,
) -> Result<Option<(String, usize)>, Error> {
    let Some(h) = parse_header(buf)? else {
        return Ok(None);
    };
    if h.token != token {
        return Err(Error::UnexpectedToken {
            expected: what,
            got: h.token,
        });
    }
    if h.value > MAX_TEXT {
        return Err(Error::TooLarge {
            what,
            got: u64::from(h.value),
            limit: u64::from(MAX_TEXT),
        });
    }
    let end = HEADER_LEN + h.value as usize;
    let Some(body) = buf.get(HEADER_LEN..end) else {
        return Ok(None);
    };
    Ok(Some((decode_string(body, what)?, end)))
}

/// How a request opens: the extension's preamble, or plain distcc (nothing consumed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opening {
    Ext(Preamble),
    Plain,
}

/// The server's first decoder: tells an extension request from a plain one.
#[derive(Debug, Default)]
pub struct OpeningDecoder;

impl OpeningDecoder {
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Opening, usize)>, Error> {
        match is_ext_request(buf) {
            None => Ok(None),
            Some(false) => Ok(Some((Opening::Plain, 0))),
            Some(true) => Ok(decode_preamble(buf)?.map(|(p, n)| (Opening::Ext(p), n))),
        }
    }
}

/// The client's decoder for what precedes an extension reply.
#[derive(Debug, Default)]
pub struct PreludeDecoder;

impl PreludeDecoder {
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(ReplyPrelude, usize)>, Error> {
        decode_reply_prelude(buf)
    }
}

/// The client's decoder for what may follow a plain reply: `true` for an
/// advertisement (consumed), `false` for anything else (left alone).
#[derive(Debug, Default)]
pub struct AdvertDecoder;

impl AdvertDecoder {
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(bool, usize)>, Error> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        Ok(Some(if is_advertisement(buf) {
            (true, HEADER_LEN)
        } else {
            (false, 0)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preamble() -> Preamble {
        Preamble {
            features: vec![ZSTD.into(), KEEPALIVE.into()],
            identity: "gcc version 12.2.0 (Debian 12.2.0-14); target x86_64-linux-gnu".into(),
        }
    }

    #[test]
    fn preamble_round_trips_whole_and_in_pieces() {
        let mut out = Vec::new();
        encode_preamble(&preamble(), &mut out).unwrap();
        out.extend_from_slice(b"DIST00000001");
        assert!(out.starts_with(b"DIST53570001SWOP0000000e"));
        let (p, used) = decode_preamble(&out).unwrap().unwrap();
        assert_eq!(p, preamble());
        assert_eq!(&out[used..], b"DIST00000001");
        for cut in 0..used {
            assert_eq!(decode_preamble(&out[..cut]).unwrap(), None, "cut {cut}");
        }
        let empty = Preamble::default();
        let mut out = Vec::new();
        encode_preamble(&empty, &mut out).unwrap();
        assert_eq!(decode_preamble(&out).unwrap().unwrap().0, empty);
    }

    #[test]
    fn plain_requests_are_not_extension_requests() {
        assert_eq!(is_ext_request(b"DIST0000000"), None);
        assert_eq!(is_ext_request(b"DIST00000001ARGC"), Some(false));
        assert_eq!(is_ext_request(b"DIST53570001"), Some(true));
        assert!(decode_preamble(b"DIST00000002ARGC00000001").is_err());
        // Wrong token after the version, oversized text: errors, not allocations.
        assert!(decode_preamble(b"DIST53570001ARGC00000001").is_err());
        assert!(decode_preamble(b"DIST53570001SWOPffffffff").is_err());
    }

    #[test]
    fn reply_prelude() {
        let mut out = Vec::new();
        encode_accepted(&[ZSTD], &mut out).unwrap();
        encode_keepalive(&mut out);
        out.extend_from_slice(b"DONE00000001");
        let (a, n) = decode_reply_prelude(&out).unwrap().unwrap();
        assert_eq!(a, ReplyPrelude::Accepted(vec!["zstd".into()]));
        let (k, m) = decode_reply_prelude(&out[n..]).unwrap().unwrap();
        assert_eq!((k, m), (ReplyPrelude::KeepAlive, 12));
        let (r, z) = decode_reply_prelude(&out[n + m..]).unwrap().unwrap();
        assert_eq!((r, z), (ReplyPrelude::Reply, 0));
        assert_eq!(decode_reply_prelude(b"SWKA0000").unwrap(), None);
    }

    #[test]
    fn advertisement() {
        let mut out = Vec::new();
        encode_advertisement(&mut out);
        assert_eq!(out, b"SWXT00000001");
        assert!(is_advertisement(&out));
        assert!(!is_advertisement(b"SWXT00000000"));
        assert!(!is_advertisement(b"DONE00000001"));
        assert!(!is_advertisement(b"SWXT"));
    }
}
