//! The client's request: `DIST` … `ARGV` then a v1/v2 `DOTI` source or v3's `NFIL` files,
//! encoded on the client and decoded incrementally on the server. The shared version,
//! limits and body packing are the parent's; the reply is `reply`'s.

use super::{atomically, pack, unpack, FileEntry, Limits, Version};
use crate::protocol::frame::{
    decode_string, encode_bulk, encode_header, encode_string, expect_header, take_sized, wire_len,
    Token, HEADER_LEN,
};
use crate::protocol::Error;

/// What a [`RequestDecoder`] yields, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestEvent {
    /// `DIST` … `ARGV`×n complete (v3: with `CDIR`). Always the first event.
    ///
    /// In v3 this event also consumes the `NFIL` packet that follows the arguments, so
    /// that the file count is checked against [`Limits`] with the header.
    Header {
        version: Version,
        cwd: Option<String>,
        argv: Vec<String>,
    },
    /// v1/v2 `DOTI`, decompressed. The request is complete after it.
    Source(Vec<u8>),
    /// v3: one `NAME`+`FILE`/`LINK` pair.
    File(FileEntry),
    /// v3: all `NFIL` entries were received (also right after the header when NFIL is 0).
    /// The request is complete after it. It consumes no bytes (`used` is 0).
    FilesDone,
}

/// Incremental decoder for a client's request (server side).
///
/// Contract with the caller: after `Ok(Some((_, used)))` drop exactly `used` bytes from
/// the front of the buffer; after `Ok(None)` only append to it. The decoder relies on
/// this to avoid re-parsing the argument list on every call (a peer dripping bytes
/// could otherwise make header parsing quadratic); if the buffer ever shrinks below
/// what was parsed, it starts over rather than misbehave.
///
/// Strings (`ARGV`, `CDIR`, `NAME`, `LINK`) are handed out as `String`: a body that is
/// not UTF-8 is refused with [`Error::BadString`], although distcc itself would pass
/// such bytes through.
#[derive(Debug)]
pub struct RequestDecoder {
    limits: Limits,
    state: RequestState,
}

#[derive(Debug)]
enum RequestState {
    Header(HeaderScan),
    Source(Version),
    Files {
        remaining: u32,
        /// A `NAME` already parsed while its `FILE`/`LINK` is still arriving, with the
        /// length of the `NAME` packet.
        name: Option<(String, usize)>,
    },
    Complete,
}

/// Progress through `DIST` … `ARGV`×n (`NFIL`) at the front of the caller's buffer.
#[derive(Debug, Default)]
struct HeaderScan {
    /// Bytes at the front of the buffer already parsed into the fields below.
    cursor: usize,
    version: Option<Version>,
    cwd: Option<String>,
    argc: Option<u32>,
    argv: Vec<String>,
    nfil: Option<u32>,
}

impl HeaderScan {
    /// Parses as many header packets as `buf` holds; true once the header is complete.
    fn advance(&mut self, buf: &[u8], limits: &Limits) -> Result<bool, Error> {
        if buf.len() < self.cursor {
            *self = HeaderScan::default();
        }
        loop {
            let rest = &buf[self.cursor..];
            let used = match self.next_token() {
                None => return Ok(true),
                Some(Token::DIST) => {
                    let Some(v) = expect_header(rest, Token::DIST)? else {
                        return Ok(false);
                    };
                    self.version = Some(Version::from_wire(v)?);
                    HEADER_LEN
                }
                Some(Token::CDIR) => {
                    let Some((body, used)) =
                        take_sized(rest, Token::CDIR, "CDIR", limits.max_string)?
                    else {
                        return Ok(false);
                    };
                    self.cwd = Some(decode_string(body, "CDIR")?);
                    used
                }
                Some(Token::ARGC) => {
                    let Some(n) = expect_header(rest, Token::ARGC)? else {
                        return Ok(false);
                    };
                    if n == 0 {
                        return Err(Error::EmptyArgv);
                    }
                    check_count(n, "ARGC", limits)?;
                    self.argc = Some(n);
                    // Bounded by max_argc already; still only a hint, so keep it modest.
                    self.argv.reserve(n.min(256) as usize);
                    HEADER_LEN
                }
                Some(Token::NFIL) => {
                    let Some(n) = expect_header(rest, Token::NFIL)? else {
                        return Ok(false);
                    };
                    check_count(n, "NFIL", limits)?;
                    self.nfil = Some(n);
                    HEADER_LEN
                }
                Some(_) => {
                    let Some((body, used)) =
                        take_sized(rest, Token::ARGV, "ARGV", limits.max_string)?
                    else {
                        return Ok(false);
                    };
                    self.argv.push(decode_string(body, "ARGV")?);
                    used
                }
            };
            self.cursor += used;
            if self.cursor > limits.max_header {
                return Err(Error::TooLarge {
                    what: "request header",
                    got: self.cursor as u64,
                    limit: limits.max_header as u64,
                });
            }
        }
    }

    /// The token the header needs next, or `None` when it is complete.
    fn next_token(&self) -> Option<Token> {
        let Some(version) = self.version else {
            return Some(Token::DIST);
        };
        let v3 = version == Version::V3;
        if v3 && self.cwd.is_none() {
            return Some(Token::CDIR);
        }
        match self.argc {
            None => Some(Token::ARGC),
            Some(n) if self.argv.len() < n as usize => Some(Token::ARGV),
            Some(_) if v3 && self.nfil.is_none() => Some(Token::NFIL),
            Some(_) => None,
        }
    }
}

fn check_count(n: u32, what: &'static str, limits: &Limits) -> Result<(), Error> {
    if n > limits.max_argc {
        return Err(Error::TooLarge {
            what,
            got: u64::from(n),
            limit: u64::from(limits.max_argc),
        });
    }
    Ok(())
}

impl RequestDecoder {
    pub fn new(limits: Limits) -> Self {
        RequestDecoder {
            limits,
            state: RequestState::Header(HeaderScan::default()),
        }
    }

    /// Decodes the next event from the front of `buf`. Returns `Ok(None)` when `buf`
    /// does not yet hold the next event, and also once the request is complete.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(RequestEvent, usize)>, Error> {
        let limits = self.limits;
        match &mut self.state {
            RequestState::Header(scan) => {
                if !scan.advance(buf, &limits)? {
                    return Ok(None);
                }
                let scan = std::mem::take(scan);
                let version = scan.version.unwrap_or(Version::V1);
                self.state = match version {
                    Version::V3 => RequestState::Files {
                        remaining: scan.nfil.unwrap_or(0),
                        name: None,
                    },
                    _ => RequestState::Source(version),
                };
                let event = RequestEvent::Header {
                    version,
                    cwd: scan.cwd,
                    argv: scan.argv,
                };
                Ok(Some((event, scan.cursor)))
            }
            RequestState::Source(version) => {
                let compressed = version.compressed();
                let Some((body, used)) = take_sized(buf, Token::DOTI, "DOTI", limits.max_body)?
                else {
                    return Ok(None);
                };
                let source = unpack(compressed, body, &limits, "DOTI")?;
                self.state = RequestState::Complete;
                Ok(Some((RequestEvent::Source(source), used)))
            }
            RequestState::Files { remaining: 0, .. } => {
                self.state = RequestState::Complete;
                Ok(Some((RequestEvent::FilesDone, 0)))
            }
            RequestState::Files { remaining, name } => {
                if !matches!(name, Some((_, len)) if *len <= buf.len()) {
                    let Some((body, used)) =
                        take_sized(buf, Token::NAME, "NAME", limits.max_string)?
                    else {
                        return Ok(None);
                    };
                    let text = decode_string(body, "NAME")?;
                    if text.is_empty() {
                        return Err(Error::BadString {
                            what: "NAME",
                            why: "empty (expected a client path)",
                        });
                    }
                    *name = Some((text, used));
                }
                let name_len = name.as_ref().map_or(0, |(_, len)| *len);
                let Some((entry, used)) = take_file_body(&buf[name_len..], &limits)? else {
                    return Ok(None);
                };
                let Some((name, _)) = name.take() else {
                    return Ok(None);
                };
                *remaining -= 1;
                let entry = match entry {
                    FileBody::Contents(contents) => FileEntry::File { name, contents },
                    FileBody::Target(target) => FileEntry::Link { name, target },
                };
                Ok(Some((RequestEvent::File(entry), name_len + used)))
            }
            RequestState::Complete => Ok(None),
        }
    }

    /// True once the last event of the request was returned.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, RequestState::Complete)
    }
}

enum FileBody {
    Contents(Vec<u8>),
    Target(String),
}

/// The `FILE` or `LINK` packet after a `NAME`.
fn take_file_body(buf: &[u8], limits: &Limits) -> Result<Option<(FileBody, usize)>, Error> {
    let Some(token) = buf.get(..4) else {
        return Ok(None);
    };
    if Token::FILE.matches(&[token[0], token[1], token[2], token[3]]) {
        let Some((body, used)) = take_sized(buf, Token::FILE, "FILE", limits.max_body)? else {
            return Ok(None);
        };
        // FILE bodies are always LZO1X in v3: the include server stores them so.
        let contents = unpack(true, body, limits, "FILE")?;
        Ok(Some((FileBody::Contents(contents), used)))
    } else if Token::LINK.matches(&[token[0], token[1], token[2], token[3]]) {
        let Some((body, used)) = take_sized(buf, Token::LINK, "LINK", limits.max_string)? else {
            return Ok(None);
        };
        Ok(Some((FileBody::Target(decode_string(body, "LINK")?), used)))
    } else {
        Err(Error::UnexpectedToken {
            expected: "FILE or LINK",
            got: [token[0], token[1], token[2], token[3]],
        })
    }
}

/// Encodes `DIST` (+ `CDIR` for v3) + `ARGC` + `ARGV`s. Fails on an empty argv, an
/// argument containing NUL, or a count/length that does not fit the wire. A v3 header
/// needs `cwd` (distcc 3.4 silently leaves `CDIR` out when `getcwd` fails, which
/// desynchronises the stream; we refuse instead). `cwd` is ignored for v1/v2.
pub fn encode_request_header(
    version: Version,
    cwd: Option<&str>,
    argv: &[String],
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    if argv.is_empty() {
        return Err(Error::Encode("empty argv (expected at least the compiler)"));
    }
    let argc = wire_len(argv.len(), "more than 2^32 arguments")?;
    atomically(out, |out| {
        encode_header(Token::DIST, version.number(), out);
        if version == Version::V3 {
            let cwd = cwd.ok_or(Error::Encode(
                "protocol 3 needs the client's working directory (CDIR)",
            ))?;
            encode_string(Token::CDIR, cwd, out)?;
        }
        encode_header(Token::ARGC, argc, out);
        for arg in argv {
            encode_string(Token::ARGV, arg, out)?;
        }
        Ok(())
    })
}

/// Encodes `DOTI` with the preprocessed source, compressing it for v2. Protocol 3 has
/// no `DOTI` (the source is one of the files), so v3 is refused.
pub fn encode_source(version: Version, source: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    if version == Version::V3 {
        return Err(Error::Encode(
            "protocol 3 sends the source as a FILE, not as DOTI",
        ));
    }
    encode_bulk(Token::DOTI, &pack(version, source), out)
}

/// Encodes only the `DOTI` header of an uncompressed (protocol 1) source of `len`
/// bytes, for a caller that sends the body from its own buffer without copying it.
pub fn encode_source_header(len: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    encode_header(Token::DOTI, wire_len(len, "source longer than 4 GiB")?, out);
    Ok(())
}

/// Encodes `NFIL` and then every entry with [`encode_file_entry`] (v3 only).
pub fn encode_files(files: &[FileEntry], out: &mut Vec<u8>) -> Result<(), Error> {
    let n = wire_len(files.len(), "more than 2^32 files")?;
    atomically(out, |out| {
        encode_header(Token::NFIL, n, out);
        files.iter().try_for_each(|f| encode_file_entry(f, out))
    })
}

/// Encodes one `NAME` + `FILE` (contents LZO1X-compressed here; empty contents as
/// `FILE00000000`) or `NAME` + `LINK`. Refuses an empty name.
pub fn encode_file_entry(entry: &FileEntry, out: &mut Vec<u8>) -> Result<(), Error> {
    atomically(out, |out| match entry {
        FileEntry::File { name, contents } => {
            encode_name(name, out)?;
            encode_bulk(Token::FILE, &pack(Version::V3, contents), out)
        }
        FileEntry::Link { name, target } => {
            encode_name(name, out)?;
            encode_string(Token::LINK, target, out)
        }
    })
}

/// Encodes `NAME` + `FILE` with a body that is already an LZO1X stream (as the include
/// server's cache holds them), sent unchanged. An empty body means an empty file.
pub fn encode_precompressed_file(name: &str, lzo: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    atomically(out, |out| {
        encode_name(name, out)?;
        encode_bulk(Token::FILE, lzo, out)
    })
}

fn encode_name(name: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::Encode("empty NAME (expected a client path)"));
    }
    encode_string(Token::NAME, name, out)
}
