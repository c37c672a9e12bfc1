//! The 12-byte packet header: a 4-letter ASCII token and a 32-bit value in 8 hex digits,
//! plus the body that follows "string" and "bulk" tokens.
//!
//! This layer knows how one packet looks, not which packet may come next (that is
//! [`super::message`]) nor what a body means once split off (compression is
//! [`super::lzo`]). Everything here is a pure function over byte slices.
//!
//! Parsing is stricter than distcc's `strtoul`: the value must be exactly 8 hex digits
//! (either case), so signs, spaces and `0x` prefixes that distccd would tolerate are
//! refused. Encoding always writes lowercase, as distcc does.

use std::fmt;

use super::Error;

/// Length of every packet header.
pub const HEADER_LEN: usize = 12;

/// One of the protocol's 4-letter tokens. Only the known tokens can be built, so an
/// encoder can never emit a header whose token is not 4 bytes long.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(&'static str);

impl Token {
    pub const DIST: Token = Token("DIST");
    pub const CDIR: Token = Token("CDIR");
    pub const ARGC: Token = Token("ARGC");
    pub const ARGV: Token = Token("ARGV");
    pub const DOTI: Token = Token("DOTI");
    pub const NFIL: Token = Token("NFIL");
    pub const NAME: Token = Token("NAME");
    pub const FILE: Token = Token("FILE");
    pub const LINK: Token = Token("LINK");
    pub const DONE: Token = Token("DONE");
    pub const STAT: Token = Token("STAT");
    pub const SERR: Token = Token("SERR");
    pub const SOUT: Token = Token("SOUT");
    pub const DOTO: Token = Token("DOTO");
    pub const DOTD: Token = Token("DOTD");
    pub const TLEN: Token = Token("TLEN");

    /// The token as text, e.g. `"DIST"`.
    pub const fn name(self) -> &'static str {
        self.0
    }

    /// The token as it appears on the wire.
    pub fn bytes(self) -> [u8; 4] {
        let b = self.0.as_bytes();
        [b[0], b[1], b[2], b[3]]
    }

    /// Whether the first 4 bytes of a received header are this token.
    pub fn matches(self, raw: &[u8; 4]) -> bool {
        self.0.as_bytes() == raw
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A header as received: the token is raw bytes because a peer can send anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub token: [u8; 4],
    pub value: u32,
}

/// Appends a 12-byte header with `value` as 8 lowercase hex digits.
pub fn encode_header(token: Token, value: u32, out: &mut Vec<u8>) {
    encode_raw_header(token.bytes(), value, out);
}

/// [`encode_header`] for a token of swarmcc's own messages (`SWOP`, `RFIL`…), which
/// distcc's [`Token`] list does not name.
pub fn encode_raw_header(token: [u8; 4], value: u32, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(&token);
    for shift in (0..8).rev() {
        out.push(HEX[((value >> (shift * 4)) & 0xf) as usize]);
    }
}

/// Whether `bytes` are a sha256 as the extension's messages carry it: 64 lowercase hex
/// digits (a rustc job's file hashes, a farm cache key).
pub fn is_sha256_hex(bytes: &[u8]) -> bool {
    bytes.len() == 64 && bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses exactly 8 hex digits (either case) into a number; `None` for anything else.
pub fn parse_hex(raw: &[u8; 8]) -> Option<u32> {
    raw.iter().try_fold(0u32, |acc, &c| {
        let digit = (c as char).to_digit(16)?;
        Some((acc << 4) | digit)
    })
}

/// Parses the header at the front of `buf`: `Ok(None)` if fewer than 12 bytes are
/// there, `Err(BadValue)` if the value is not exactly 8 hex digits. The token is not
/// checked here.
pub fn parse_header(buf: &[u8]) -> Result<Option<Header>, Error> {
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let mut token = [0u8; 4];
    token.copy_from_slice(&head[..4]);
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&head[4..]);
    match parse_hex(&raw) {
        Some(value) => Ok(Some(Header { token, value })),
        None => Err(Error::BadValue { token, raw }),
    }
}

/// Parses the header at the front of `buf` and insists on `expected`. The token is
/// compared before the value so that a derailed stream is reported as such rather than
/// as a bad number.
pub fn expect_header(buf: &[u8], expected: Token) -> Result<Option<u32>, Error> {
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if !expected.matches(&[head[0], head[1], head[2], head[3]]) {
        return Err(Error::UnexpectedToken {
            expected: expected.name(),
            got: [head[0], head[1], head[2], head[3]],
        });
    }
    Ok(parse_header(buf)?.map(|h| h.value))
}

/// Splits off a packet whose value is a body length: checks the token, refuses a
/// length above `limit` as soon as the header is complete (before the caller buffers
/// the body), and returns the body and the total packet length once all of it is in
/// `buf`.
pub fn take_sized<'a>(
    buf: &'a [u8],
    expected: Token,
    what: &'static str,
    limit: u32,
) -> Result<Option<(&'a [u8], usize)>, Error> {
    let Some(len) = expect_header(buf, expected)? else {
        return Ok(None);
    };
    if len > limit {
        return Err(Error::TooLarge {
            what,
            got: u64::from(len),
            limit: u64::from(limit),
        });
    }
    // u32 always fits usize on the platforms we build for; saturate rather than wrap
    // on anything smaller so the body simply never becomes complete.
    let total = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_add(HEADER_LEN))
        .unwrap_or(usize::MAX);
    Ok(buf.get(HEADER_LEN..total).map(|body| (body, total)))
}

/// Validates a string body (`ARGV`, `CDIR`, `NAME`, `LINK`). The wire allows any byte
/// but NUL; our API hands out `String`s, so bodies that are not UTF-8 are refused with
/// [`Error::BadString`] rather than passed on lossily.
pub fn decode_string(body: &[u8], what: &'static str) -> Result<String, Error> {
    if body.contains(&0) {
        return Err(Error::BadString {
            what,
            why: "contains a NUL byte",
        });
    }
    match std::str::from_utf8(body) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(Error::BadString {
            what,
            why: "not valid UTF-8",
        }),
    }
}

/// A length as the wire's 32-bit value, or the encoder error naming what was too long.
pub fn wire_len(len: usize, what: &'static str) -> Result<u32, Error> {
    u32::try_from(len).map_err(|_| Error::Encode(what))
}

/// Appends a string packet. distcc strings travel without their NUL terminator, so
/// a NUL inside the string cannot be represented and is refused.
pub fn encode_string(token: Token, s: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    if s.as_bytes().contains(&0) {
        return Err(Error::Encode("string contains a NUL byte"));
    }
    let len = wire_len(s.len(), "string longer than 4 GiB")?;
    encode_header(token, len, out);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Appends a bulk packet whose body is sent as given (already compressed if it must be).
pub fn encode_bulk(token: Token, body: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let len = wire_len(body.len(), "body longer than 4 GiB")?;
    encode_header(token, len, out);
    out.extend_from_slice(body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(token: Token, value: u32) -> Vec<u8> {
        let mut out = Vec::new();
        encode_header(token, value, &mut out);
        out
    }

    #[test]
    fn encodes_lowercase_zero_padded() {
        assert_eq!(header(Token::DIST, 1), b"DIST00000001");
        assert_eq!(header(Token::DOTI, 0x461c), b"DOTI0000461c");
        assert_eq!(header(Token::STAT, u32::MAX), b"STATffffffff");
        assert_eq!(header(Token::ARGC, 0), b"ARGC00000000");
    }

    #[test]
    fn parses_both_cases() {
        let h = parse_header(b"DOTI0000000A").unwrap().unwrap();
        assert_eq!(h.token, *b"DOTI");
        assert_eq!(h.value, 10);
        let h = parse_header(b"DOTOdeadBEEFextra").unwrap().unwrap();
        assert_eq!(h.value, 0xdead_beef);
    }

    #[test]
    fn round_trips_values() {
        for v in [0, 1, 9, 10, 15, 16, 0x1234_5678, 0x8000_0000, u32::MAX] {
            let h = parse_header(&header(Token::STAT, v)).unwrap().unwrap();
            assert_eq!(h.value, v);
        }
    }

    #[test]
    fn short_header_needs_more() {
        for n in 0..HEADER_LEN {
            assert_eq!(parse_header(&b"DIST00000001"[..n]), Ok(None));
            assert_eq!(expect_header(&b"DIST00000001"[..n], Token::DIST), Ok(None));
        }
    }

    #[test]
    fn rejects_what_strtoul_would_accept() {
        for bad in [
            &b"DIST0x000001"[..],
            b"DIST 0000001",
            b"DIST+0000001",
            b"DIST-0000001",
            b"DIST0000001 ",
            b"DIST0000000g",
            b"DIST\x000000001",
            b"DIST00000\xff01",
        ] {
            match parse_header(bad) {
                Err(Error::BadValue { token, .. }) => assert_eq!(token, *b"DIST"),
                other => panic!("{bad:?}: expected BadValue, got {other:?}"),
            }
        }
    }

    #[test]
    fn wrong_token_is_derailment() {
        assert_eq!(
            expect_header(b"HELLO WORLD!", Token::DIST),
            Err(Error::UnexpectedToken {
                expected: "DIST",
                got: *b"HELL"
            })
        );
        // Token case matters: distcc compares with memcmp.
        assert!(expect_header(b"dist00000001", Token::DIST).is_err());
    }

    #[test]
    fn sized_packet_waits_for_body_and_checks_limit_first() {
        let mut pkt = header(Token::ARGV, 3);
        pkt.extend_from_slice(b"x.c");
        for n in 0..pkt.len() {
            assert_eq!(take_sized(&pkt[..n], Token::ARGV, "ARGV", 100), Ok(None));
        }
        assert_eq!(
            take_sized(&pkt, Token::ARGV, "ARGV", 100),
            Ok(Some((&b"x.c"[..], 15)))
        );
        // The limit is enforced from the header alone.
        assert_eq!(
            take_sized(&pkt[..HEADER_LEN], Token::ARGV, "ARGV", 2),
            Err(Error::TooLarge {
                what: "ARGV",
                got: 3,
                limit: 2
            })
        );
        let huge = header(Token::DOTI, u32::MAX);
        assert!(matches!(
            take_sized(&huge, Token::DOTI, "DOTI", u32::MAX - 1),
            Err(Error::TooLarge { .. })
        ));
        assert_eq!(take_sized(&huge, Token::DOTI, "DOTI", u32::MAX), Ok(None));
    }

    #[test]
    fn strings() {
        assert_eq!(decode_string(b"-c", "ARGV").unwrap(), "-c");
        assert_eq!(decode_string(b"", "ARGV").unwrap(), "");
        assert!(matches!(
            decode_string(b"a\0b", "ARGV"),
            Err(Error::BadString { .. })
        ));
        assert!(matches!(
            decode_string(b"\xff", "ARGV"),
            Err(Error::BadString { .. })
        ));
        let mut out = Vec::new();
        assert!(encode_string(Token::ARGV, "a\0b", &mut out).is_err());
        encode_string(Token::ARGV, "-o", &mut out).unwrap();
        assert_eq!(out, b"ARGV00000002-o");
    }

    #[test]
    fn token_names() {
        assert_eq!(Token::DOTD.name(), "DOTD");
        assert_eq!(Token::DOTD.bytes(), *b"DOTD");
        assert_eq!(format!("{}", Token::NFIL), "NFIL");
    }
}
