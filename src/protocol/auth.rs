//! The authentication extension's messages (swarmcc ↔ swarmccd only), on distcc's
//! framing: a 4-letter token, 8 hex digits, then the body. Pure encoding and decoding:
//! no sockets and no cryptography (nonces and MACs are opaque 32-byte arrays here;
//! making and checking them is `crate::auth`).
//!
//! ```text
//! client → server   SWAU 00000001                 extension version 1, no body
//! server → client   SWCH 00000020 <ns: 32>        challenge: the server's nonce
//!              or   SWNO <len> <reason: UTF-8>    refused (then the server closes)
//! client → server   SWRS 00000040 <nc: 32> <mac: 32>   the client's nonce and proof
//! server → client   SWOK 00000020 <mac: 32>       accepted, with the server's proof
//!              or   SWNO <len> <reason>
//! client → server   the distcc request, then SWMC 00000020 <mac: 32>
//! server → client   the distcc reply,   then SWMC 00000020 <mac: 32>
//!              or   SWNO <len> <reason> instead of the reply (request MAC mismatch)
//! ```
//!
//! The tokens cannot be confused with distcc's (`DIST`, `DONE`…), so a server can tell
//! an authenticating client from a plain distcc one by the first 4 bytes, and a plain
//! distccd that receives `SWAU` fails with a protocol error and closes.
//!
//! The tokens are local constants rather than `frame::Token`s: the frame layer's
//! token set is distcc's own.

use super::frame::{decode_string, parse_header, HEADER_LEN};
use super::Error;

/// The extension version this code speaks (`SWAU`'s value).
pub const VERSION: u32 = 1;
/// Length of each nonce.
pub const NONCE_LEN: usize = 32;
/// Length of each MAC (HMAC-SHA256).
pub const MAC_LEN: usize = 32;
/// Longest refusal reason accepted from a peer.
pub const MAX_REASON: u32 = 4096;

pub const SWAU: [u8; 4] = *b"SWAU";
pub const SWCH: [u8; 4] = *b"SWCH";
pub const SWRS: [u8; 4] = *b"SWRS";
pub const SWOK: [u8; 4] = *b"SWOK";
pub const SWNO: [u8; 4] = *b"SWNO";
pub const SWMC: [u8; 4] = *b"SWMC";

/// One decoded message of the extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMessage {
    /// `SWAU`: the client asks for authentication, in this extension version.
    Hello { version: u32 },
    /// `SWCH`: the server's nonce.
    Challenge { server_nonce: [u8; NONCE_LEN] },
    /// `SWRS`: the client's nonce and its proof of the key.
    Response {
        client_nonce: [u8; NONCE_LEN],
        mac: [u8; MAC_LEN],
    },
    /// `SWOK`: the server's proof of the key.
    Accept { mac: [u8; MAC_LEN] },
    /// `SWNO`: refused, and why.
    Refuse { reason: String },
    /// `SWMC`: the MAC of the request or reply that came before it.
    Mac { mac: [u8; MAC_LEN] },
    /// Not a message of this extension (only where [`Expect`] allows one): nothing was
    /// consumed, the bytes belong to the distcc protocol.
    Other,
}

/// Which messages may come next; anything else is a protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The server's first read: `SWAU`, or anything else ([`AuthMessage::Other`], e.g.
    /// a plain distcc client's `DIST`).
    Opening,
    /// The client after `SWAU`: `SWCH` or `SWNO`.
    Challenge,
    /// The server after `SWCH`: `SWRS`.
    Response,
    /// The client after `SWRS`: `SWOK` or `SWNO`.
    Verdict,
    /// The client before the reply: `SWNO`, or anything else ([`AuthMessage::Other`]:
    /// the distcc reply).
    ReplyStart,
    /// After a request or reply: `SWMC`.
    Mac,
}

impl Expect {
    /// The tokens allowed, as the error message names them.
    fn names(self) -> &'static str {
        match self {
            Expect::Opening => "SWAU",
            Expect::Challenge => "SWCH or SWNO",
            Expect::Response => "SWRS",
            Expect::Verdict => "SWOK or SWNO",
            Expect::ReplyStart => "SWNO",
            Expect::Mac => "SWMC",
        }
    }

    fn allows(self, token: &[u8; 4]) -> bool {
        match self {
            Expect::Opening => token == &SWAU,
            Expect::Challenge => token == &SWCH || token == &SWNO,
            Expect::Response => token == &SWRS,
            Expect::Verdict => token == &SWOK || token == &SWNO,
            Expect::ReplyStart => token == &SWNO,
            Expect::Mac => token == &SWMC,
        }
    }

    /// Whether a token outside the extension is the caller's business, not an error.
    fn passes_others(self) -> bool {
        matches!(self, Expect::Opening | Expect::ReplyStart)
    }
}

/// Decodes one message of the extension at a time; stateless apart from what it
/// expects, so a new one is made for each step.
#[derive(Debug, Clone)]
pub struct AuthDecoder {
    expect: Expect,
}

impl AuthDecoder {
    pub fn new(expect: Expect) -> Self {
        AuthDecoder { expect }
    }

    /// `Ok(None)`: more bytes needed. `Ok(Some((message, used)))`: one message from the
    /// first `used` bytes (0 for [`AuthMessage::Other`]). `Err`: never a valid message.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(AuthMessage, usize)>, Error> {
        let Some(head) = buf.get(..4) else {
            return Ok(None);
        };
        let token = [head[0], head[1], head[2], head[3]];
        if !self.expect.allows(&token) {
            if self.expect.passes_others() {
                return Ok(Some((AuthMessage::Other, 0)));
            }
            return Err(Error::UnexpectedToken {
                expected: self.expect.names(),
                got: token,
            });
        }
        let Some(header) = parse_header(buf)? else {
            return Ok(None);
        };
        let value = header.value;
        // SWAU carries its version in the value and has no body; every other token's
        // value is its body length, checked before the body is waited for.
        if token == SWAU {
            return Ok(Some((AuthMessage::Hello { version: value }, HEADER_LEN)));
        }
        let expected_len = match token {
            SWCH | SWOK | SWMC => Some(32),
            SWRS => Some(64),
            _ => None, // SWNO: a reason of any length up to MAX_REASON
        };
        match expected_len {
            Some(n) if value != n => {
                return Err(Error::BadValue {
                    token,
                    raw: hex8(value),
                })
            }
            None if value > MAX_REASON => {
                return Err(Error::TooLarge {
                    what: "SWNO reason",
                    got: u64::from(value),
                    limit: u64::from(MAX_REASON),
                })
            }
            _ => {}
        }
        let total = HEADER_LEN + value as usize;
        let Some(body) = buf.get(HEADER_LEN..total) else {
            return Ok(None);
        };
        let message = match token {
            SWCH => AuthMessage::Challenge {
                server_nonce: array(body),
            },
            SWRS => AuthMessage::Response {
                client_nonce: array(&body[..NONCE_LEN]),
                mac: array(&body[NONCE_LEN..]),
            },
            SWOK => AuthMessage::Accept { mac: array(body) },
            SWMC => AuthMessage::Mac { mac: array(body) },
            _ => AuthMessage::Refuse {
                reason: decode_string(body, "SWNO reason")?,
            },
        };
        Ok(Some((message, total)))
    }
}

fn array(body: &[u8]) -> [u8; 32] {
    let mut a = [0u8; 32];
    a.copy_from_slice(body);
    a
}

/// The 8 lowercase hex digits of `value`, as the wire writes them.
fn hex8(value: u32) -> [u8; 8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 8];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = HEX[((value >> ((7 - i) * 4)) & 0xf) as usize];
    }
    out
}

fn header(token: [u8; 4], value: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&token);
    out.extend_from_slice(&hex8(value));
}

/// `SWAU 00000001`.
pub fn encode_hello(out: &mut Vec<u8>) {
    header(SWAU, VERSION, out);
}

/// `SWCH` + the server's nonce.
pub fn encode_challenge(server_nonce: &[u8; NONCE_LEN], out: &mut Vec<u8>) {
    header(SWCH, NONCE_LEN as u32, out);
    out.extend_from_slice(server_nonce);
}

/// `SWRS` + the client's nonce + its MAC.
pub fn encode_response(client_nonce: &[u8; NONCE_LEN], mac: &[u8; MAC_LEN], out: &mut Vec<u8>) {
    header(SWRS, (NONCE_LEN + MAC_LEN) as u32, out);
    out.extend_from_slice(client_nonce);
    out.extend_from_slice(mac);
}

/// `SWOK` + the server's MAC.
pub fn encode_accept(mac: &[u8; MAC_LEN], out: &mut Vec<u8>) {
    header(SWOK, MAC_LEN as u32, out);
    out.extend_from_slice(mac);
}

/// `SWMC` + the MAC of what was sent before it.
pub fn encode_mac(mac: &[u8; MAC_LEN], out: &mut Vec<u8>) {
    header(SWMC, MAC_LEN as u32, out);
    out.extend_from_slice(mac);
}

/// `SWNO` + the reason, cut (at a character boundary) to [`MAX_REASON`] bytes and with
/// NUL bytes replaced, so that it always decodes.
pub fn encode_refusal(reason: &str, out: &mut Vec<u8>) {
    let mut end = reason.len().min(MAX_REASON as usize);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let text = reason[..end].replace('\0', " ");
    header(SWNO, text.len() as u32, out);
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(expect: Expect, bytes: &[u8]) -> Result<Option<(AuthMessage, usize)>, Error> {
        AuthDecoder::new(expect).decode(bytes)
    }

    /// Every message round-trips, and every proper prefix asks for more bytes.
    fn round_trip(expect: Expect, bytes: &[u8], want: AuthMessage) {
        assert_eq!(
            decode_all(expect, bytes),
            Ok(Some((want, bytes.len()))),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        for n in 0..bytes.len() {
            assert_eq!(decode_all(expect, &bytes[..n]), Ok(None), "prefix {n}");
        }
        // Trailing bytes (the distcc request after it) are left alone.
        let mut more = bytes.to_vec();
        more.extend_from_slice(b"DIST00000001");
        assert_eq!(
            decode_all(expect, &more).unwrap().unwrap().1,
            bytes.len(),
            "used"
        );
    }

    #[test]
    fn messages_round_trip() {
        let ns = [0x11u8; 32];
        let nc = [0x22u8; 32];
        let mac = [0xabu8; 32];
        let mut b = Vec::new();
        encode_hello(&mut b);
        assert_eq!(b, b"SWAU00000001");
        round_trip(Expect::Opening, &b, AuthMessage::Hello { version: 1 });

        b.clear();
        encode_challenge(&ns, &mut b);
        assert_eq!(&b[..12], b"SWCH00000020");
        round_trip(
            Expect::Challenge,
            &b,
            AuthMessage::Challenge { server_nonce: ns },
        );

        b.clear();
        encode_response(&nc, &mac, &mut b);
        assert_eq!(&b[..12], b"SWRS00000040");
        assert_eq!(b.len(), 12 + 64);
        round_trip(
            Expect::Response,
            &b,
            AuthMessage::Response {
                client_nonce: nc,
                mac,
            },
        );

        b.clear();
        encode_accept(&mac, &mut b);
        round_trip(Expect::Verdict, &b, AuthMessage::Accept { mac });

        b.clear();
        encode_mac(&mac, &mut b);
        round_trip(Expect::Mac, &b, AuthMessage::Mac { mac });

        for expect in [Expect::Challenge, Expect::Verdict, Expect::ReplyStart] {
            b.clear();
            encode_refusal("wrong key — go away", &mut b);
            round_trip(
                expect,
                &b,
                AuthMessage::Refuse {
                    reason: "wrong key — go away".into(),
                },
            );
        }
    }

    #[test]
    fn distcc_bytes_pass_where_allowed() {
        for first in [
            &b"DIST00000001"[..],
            b"DIST",
            b"DONE00000001",
            b"STAT00000000",
        ] {
            assert_eq!(
                decode_all(Expect::Opening, first),
                Ok(Some((AuthMessage::Other, 0)))
            );
            assert_eq!(
                decode_all(Expect::ReplyStart, first),
                Ok(Some((AuthMessage::Other, 0)))
            );
        }
        // Three bytes cannot tell yet.
        assert_eq!(decode_all(Expect::Opening, b"DIS"), Ok(None));
        // Elsewhere they are a derailment.
        assert_eq!(
            decode_all(Expect::Challenge, b"DIST00000001"),
            Err(Error::UnexpectedToken {
                expected: "SWCH or SWNO",
                got: *b"DIST"
            })
        );
        assert!(decode_all(Expect::Mac, b"DONE00000001").is_err());
    }

    #[test]
    fn garbage_is_refused() {
        // Wrong tokens for the step.
        assert!(decode_all(Expect::Response, b"SWOK00000020").is_err());
        assert!(decode_all(Expect::Verdict, b"SWCH00000020").is_err());
        assert!(decode_all(Expect::Mac, b"SWNO00000000").is_err());
        // Fixed-size bodies must have exactly their size, refused from the header.
        assert!(matches!(
            decode_all(Expect::Challenge, b"SWCH00000010"),
            Err(Error::BadValue { token, .. }) if token == SWCH
        ));
        assert!(decode_all(Expect::Response, b"SWRS00000020").is_err());
        assert!(decode_all(Expect::Mac, b"SWMCffffffff").is_err());
        // Bad hex.
        assert!(matches!(
            decode_all(Expect::Opening, b"SWAU0000000x"),
            Err(Error::BadValue { .. })
        ));
        // An oversized reason is refused before its body is waited for.
        assert!(matches!(
            decode_all(Expect::Verdict, b"SWNO00100000"),
            Err(Error::TooLarge { .. })
        ));
        // A reason that is not UTF-8, or holds NUL.
        assert!(decode_all(Expect::Verdict, b"SWNO00000002\xff\xfe").is_err());
        assert!(decode_all(Expect::Verdict, b"SWNO00000002a\0").is_err());
        // Random noise never panics.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let mut buf = Vec::new();
            let n = (x % 90) as usize;
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                buf.push(x as u8);
            }
            // Give some of them a real token so that the body paths are exercised.
            if n >= 4 && x.is_multiple_of(3) {
                let tokens = [SWAU, SWCH, SWRS, SWOK, SWNO, SWMC];
                buf[..4].copy_from_slice(&tokens[(x as usize / 3) % tokens.len()]);
            }
            for expect in [
                Expect::Opening,
                Expect::Challenge,
                Expect::Response,
                Expect::Verdict,
                Expect::ReplyStart,
                Expect::Mac,
            ] {
                if let Ok(Some((_, used))) = decode_all(expect, &buf) {
                    assert!(used <= buf.len());
                }
            }
        }
    }

    #[test]
    fn refusal_reasons_are_bounded_and_always_decode() {
        let long = "é".repeat(5000);
        let mut b = Vec::new();
        encode_refusal(&long, &mut b);
        let (msg, used) = decode_all(Expect::Verdict, &b).unwrap().unwrap();
        assert_eq!(used, b.len());
        let AuthMessage::Refuse { reason } = msg else {
            panic!("{msg:?}")
        };
        assert!(reason.len() <= MAX_REASON as usize && reason.len() >= 4094);
        b.clear();
        encode_refusal("a\0b", &mut b);
        assert_eq!(
            decode_all(Expect::Verdict, &b).unwrap().unwrap().0,
            AuthMessage::Refuse {
                reason: "a b".into()
            }
        );
    }
}
