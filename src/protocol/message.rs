//! Request and reply sequences of the distcc protocol, versions 1–3.
//!
//! CONTRACT (public API used by `conn`, `client` and `server`; keep these signatures):
//! the bodies below are placeholders to be replaced by the real implementation.

use super::Error;

/// Protocol version, chosen per host by the client (`,lzo` → 2, `,lzo,cpp` → 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// Uncompressed, preprocessed on the client.
    V1,
    /// LZO1X-compressed bodies, preprocessed on the client.
    V2,
    /// Pump mode: sources and headers sent as files, compressed.
    V3,
}

impl Version {
    /// Maps a `DIST` value to a version. distccd 3.4 serves 0 as version 1; so do we.
    pub fn from_wire(v: u32) -> Result<Version, Error> {
        match v {
            0 | 1 => Ok(Version::V1),
            2 => Ok(Version::V2),
            3 => Ok(Version::V3),
            other => Err(Error::UnsupportedVersion(other)),
        }
    }
    pub fn number(self) -> u32 {
        match self {
            Version::V1 => 1,
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
    /// Whether bulk bodies (DOTI, SERR, SOUT, DOTO, DOTD, FILE) are LZO1X-compressed.
    pub fn compressed(self) -> bool {
        !matches!(self, Version::V1)
    }
}

/// Bounds on everything a peer can make us allocate. Checked before allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum `ARGC` (also `NFIL`).
    pub max_argc: u32,
    /// Maximum length of one string token body (`ARGV`, `CDIR`, `NAME`, `LINK`).
    pub max_string: u32,
    /// Maximum length of one bulk body as transmitted (compressed length in v2/v3).
    pub max_body: u32,
    /// Maximum size of one body after LZO decompression.
    pub max_decompressed: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_argc: 16 * 1024,
            max_string: 1024 * 1024,
            max_body: 1024 * 1024 * 1024,
            max_decompressed: 2 * 1024 * 1024 * 1024 - 1,
        }
    }
}

/// One file of a protocol-3 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEntry {
    /// `NAME` + `FILE`: contents already decompressed.
    File { name: String, contents: Vec<u8> },
    /// `NAME` + `LINK`: a symlink and its target text.
    Link { name: String, target: String },
}

/// What a [`RequestDecoder`] yields, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestEvent {
    /// `DIST` … `ARGV`×n complete (v3: with `CDIR`). Always the first event.
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
    /// The request is complete after it.
    FilesDone,
}

/// Incremental decoder for a client's request (server side).
#[derive(Debug)]
pub struct RequestDecoder {
    #[allow(dead_code)]
    limits: Limits,
}

impl RequestDecoder {
    pub fn new(limits: Limits) -> Self {
        RequestDecoder { limits }
    }
    /// Decodes the next event from the front of `buf`.
    pub fn decode(&mut self, _buf: &[u8]) -> Result<Option<(RequestEvent, usize)>, Error> {
        todo!("protocol: RequestDecoder::decode")
    }
    /// True once the last event of the request was returned.
    pub fn is_complete(&self) -> bool {
        todo!("protocol: RequestDecoder::is_complete")
    }
}

/// Encodes `DIST` (+ `CDIR` for v3) + `ARGC` + `ARGV`s. Fails on an empty argv, an
/// argument containing NUL, or a count/length that does not fit the wire.
pub fn encode_request_header(
    _version: Version,
    _cwd: Option<&str>,
    _argv: &[String],
    _out: &mut Vec<u8>,
) -> Result<(), Error> {
    todo!("protocol: encode_request_header")
}

/// Encodes `DOTI` with the preprocessed source, compressing it for v2.
pub fn encode_source(_version: Version, _source: &[u8], _out: &mut Vec<u8>) -> Result<(), Error> {
    todo!("protocol: encode_source")
}

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

/// Encodes `DONE` `STAT` `SERR` `SOUT` `DOTO` (and `DOTD` when `reply.deps` is Some and the
/// version is 3), compressing bulk bodies for v2/v3. A non-zero status sends `DOTO00000000`.
pub fn encode_reply(_version: Version, _reply: &Reply, _out: &mut Vec<u8>) -> Result<(), Error> {
    todo!("protocol: encode_reply")
}

/// What a [`ReplyDecoder`] yields, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyEvent {
    /// `DONE` with the expected version: the server started answering.
    Started,
    Status(u32),
    Stderr(Vec<u8>),
    Stdout(Vec<u8>),
    Object(Vec<u8>),
    Deps(Vec<u8>),
}

/// Incremental decoder for a server's reply (client side).
#[derive(Debug)]
pub struct ReplyDecoder {
    #[allow(dead_code)]
    limits: Limits,
}

impl ReplyDecoder {
    /// `expect_deps`: a v3 reply carries `DOTD` after `DOTO` on success.
    pub fn new(_version: Version, limits: Limits, _expect_deps: bool) -> Self {
        ReplyDecoder { limits }
    }
    pub fn decode(&mut self, _buf: &[u8]) -> Result<Option<(ReplyEvent, usize)>, Error> {
        todo!("protocol: ReplyDecoder::decode")
    }
    pub fn is_complete(&self) -> bool {
        todo!("protocol: ReplyDecoder::is_complete")
    }
}
