//! The farm cache's messages, on the extension's framing: the key goes before the
//! source, and the server says whether it has the result.
//!
//! Negotiated in two steps, so that no server is ever sent a message it does not
//! know. A swarmccd with a cache lists [`CACHE`](super::ext::CACHE) in the features
//! it answers with (`SWOP`), asked or not; a client remembers that of the host, and
//! from then on asks for `cache` in its own `SWOP` and sends nothing more until the
//! server has answered its preamble:
//!
//! ```text
//! client → server   DIST 53570001, SWOP "keepalive cache", SWID <identity>
//! server → client   SWOP <features accepted>     at once when "cache" was asked
//! client → server   SWCK 00000040 <key>          only if "cache" was accepted
//! server → client   SWCH 00000000                hit: a protocol-1 reply follows
//!                                                (DONE STAT SERR SOUT DOTO), then close
//!              or   SWCM 00000000                miss: the client sends its request
//!                                                (DIST 00000001 … DOTI) as without it
//! ```
//!
//! A key is 64 lowercase hex digits (`cache::key`), nothing else: it becomes a file
//! name on the server.

use super::frame::{encode_raw_header, is_sha256_hex, parse_header, HEADER_LEN};
use super::Error;

const SWCK: [u8; 4] = *b"SWCK";
const SWCH: [u8; 4] = *b"SWCH";
const SWCM: [u8; 4] = *b"SWCM";
/// The length of a key in hex.
pub const KEY_LEN: usize = 64;

/// Appends the client's key.
pub fn encode_key(key: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    if !is_sha256_hex(key.as_bytes()) {
        return Err(Error::Encode("a cache key is 64 lowercase hex digits"));
    }
    encode_raw_header(SWCK, KEY_LEN as u32, out);
    out.extend_from_slice(key.as_bytes());
    Ok(())
}

/// The server's decoder for the key.
#[derive(Debug, Default)]
pub struct KeyDecoder;

impl KeyDecoder {
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(String, usize)>, Error> {
        let Some(h) = parse_header(buf)? else {
            return Ok(None);
        };
        if h.token != SWCK {
            return Err(Error::UnexpectedToken {
                expected: "SWCK",
                got: h.token,
            });
        }
        if h.value as usize != KEY_LEN {
            return Err(Error::TooLarge {
                what: "SWCK (a cache key is 64 bytes)",
                got: u64::from(h.value),
                limit: KEY_LEN as u64,
            });
        }
        let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + KEY_LEN) else {
            return Ok(None);
        };
        if !is_sha256_hex(body) {
            return Err(Error::BadString {
                what: "SWCK",
                why: "not 64 lowercase hex digits",
            });
        }
        let key = String::from_utf8_lossy(body).into_owned();
        Ok(Some((key, HEADER_LEN + KEY_LEN)))
    }
}

/// The server's answer to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The result follows, as a protocol-1 reply.
    Hit,
    /// Not here: send the request.
    Miss,
}

pub fn encode_answer(answer: Answer, out: &mut Vec<u8>) {
    let token = match answer {
        Answer::Hit => SWCH,
        Answer::Miss => SWCM,
    };
    encode_raw_header(token, 0, out);
}

/// The client's decoder for the server's answer.
#[derive(Debug, Default)]
pub struct AnswerDecoder;

impl AnswerDecoder {
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Answer, usize)>, Error> {
        let Some(h) = parse_header(buf)? else {
            return Ok(None);
        };
        let answer = match h.token {
            SWCH => Answer::Hit,
            SWCM => Answer::Miss,
            got => {
                return Err(Error::UnexpectedToken {
                    expected: "SWCH or SWCM",
                    got,
                })
            }
        };
        if h.value != 0 {
            return Err(Error::BadString {
                what: "SWCH/SWCM",
                why: "value must be 0",
            });
        }
        Ok(Some((answer, HEADER_LEN)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn keys_round_trip_whole_and_in_pieces() {
        let mut out = Vec::new();
        encode_key(KEY, &mut out).unwrap();
        assert!(out.starts_with(b"SWCK00000040"));
        assert_eq!(KeyDecoder.decode(&out).unwrap(), Some((KEY.into(), 76)));
        for cut in 0..out.len() {
            assert_eq!(KeyDecoder.decode(&out[..cut]).unwrap(), None, "cut {cut}");
        }
        assert!(encode_key("../../etc/passwd", &mut Vec::new()).is_err());
    }

    #[test]
    fn hostile_keys_are_refused_before_anything_is_read() {
        assert!(KeyDecoder.decode(b"SWCKffffffff").is_err());
        assert!(KeyDecoder.decode(b"SWCK00000000").is_err());
        assert!(KeyDecoder.decode(b"DIST00000001").is_err());
        let mut bad = b"SWCK00000040".to_vec();
        bad.extend_from_slice(&[b'/'; 64]);
        assert!(KeyDecoder.decode(&bad).is_err());
        let mut upper = b"SWCK00000040".to_vec();
        upper.extend_from_slice(KEY.to_uppercase().as_bytes());
        assert!(KeyDecoder.decode(&upper).is_err());
    }

    #[test]
    fn answers_round_trip() {
        for a in [Answer::Hit, Answer::Miss] {
            let mut out = Vec::new();
            encode_answer(a, &mut out);
            assert_eq!(AnswerDecoder.decode(&out).unwrap(), Some((a, 12)));
            assert_eq!(AnswerDecoder.decode(&out[..11]).unwrap(), None);
        }
        assert!(AnswerDecoder.decode(b"DONE00000001").is_err());
        assert!(AnswerDecoder.decode(b"SWCH00000001").is_err());
    }
}
