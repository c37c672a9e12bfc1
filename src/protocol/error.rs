//! Errors of the protocol layer: bytes that can never form a valid message, and
//! messages that cannot be put on the wire.
//!
//! Transport failures (EOF, timeouts, socket errors) are not here: `conn` owns those.

use std::fmt;

/// Why a byte sequence is not a valid distcc message. "Need more bytes" is not an
/// error: decoders return `Ok(None)` for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A different token arrived than the sequence allows.
    UnexpectedToken {
        expected: &'static str,
        got: [u8; 4],
    },
    /// The 8 value characters are not hexadecimal.
    BadValue { token: [u8; 4], raw: [u8; 8] },
    /// `DIST` asked for a version we do not speak.
    UnsupportedVersion(u32),
    /// A count or length above the configured limit.
    TooLarge {
        what: &'static str,
        got: u64,
        limit: u64,
    },
    /// A string body that is not valid (contains NUL, not UTF-8, empty where forbidden).
    BadString {
        what: &'static str,
        why: &'static str,
    },
    /// A compressed body that does not decompress.
    Lzo(String),
    /// Something the encoder refuses to produce (e.g. an empty argv).
    Encode(&'static str),
    /// `ARGC00000000`: a command needs at least the compiler name (distccd 3.4
    /// crashes on it; we refuse it).
    EmptyArgv,
    /// `DONE` carried another protocol version than the one the request used.
    VersionMismatch { expected: u32, got: u32 },
    /// A SOCKSv5 proxy's answer that is not SOCKSv5.
    Socks(String),
    /// A zstd body (a rustc job's blob) that does not decompress.
    Zstd(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnexpectedToken { expected, got } => write!(
                f,
                "protocol derailment: expected token {expected}, got {:?}",
                String::from_utf8_lossy(got)
            ),
            Error::BadValue { token, raw } => write!(
                f,
                "bad value {:?} for token {}",
                String::from_utf8_lossy(raw),
                String::from_utf8_lossy(token)
            ),
            Error::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v}"),
            Error::TooLarge { what, got, limit } => {
                write!(f, "{what} too large: {got} (limit {limit})")
            }
            Error::BadString { what, why } => write!(f, "bad {what}: {why}"),
            Error::Lzo(why) => write!(f, "corrupt LZO1X body: {why}"),
            Error::Encode(why) => write!(f, "cannot encode: {why}"),
            Error::EmptyArgv => write!(f, "expected ARGC of at least 1, got ARGC00000000"),
            Error::VersionMismatch { expected, got } => write!(
                f,
                "expected DONE for protocol version {expected}, got version {got}"
            ),
            Error::Socks(why) => write!(f, "{why}"),
            Error::Zstd(why) => write!(f, "corrupt zstd body: {why}"),
        }
    }
}

impl std::error::Error for Error {}
