//! The messages of a rustc job between swarmcc and a swarmccd started with `--rustc`,
//! on distcc's framing (4-byte token, 8 hex digits, body). Negotiated with the
//! extension's preamble (feature [`FEATURE`]); a plain distccd never sees them.
//!
//! ```text
//! client → server   RCWD cwd, RARC n + n×RARG, RENC n + n×RENV "NAME=VALUE",
//!                   RFLC n + n×RFIL "<sha256> <x|-> <size> <path>"
//! server → client   RNED "i j k" (indices it lacks) or RREF reason
//! client → server   RBLB <zstd frame> for each needed index, in that order
//! server → client   SWKA…, then RREF reason or RDON status, RSOU, RSER, RROT root,
//!                   ROUC n + n×(ROUT "<x|-> <path>", RBLB <zstd frame>)
//! ```
//!
//! With feature [`EARLY_METADATA`] accepted, the server may send, once, before the
//! reply, `RERL 00000000` followed by the reply's other fields: rustc's stderr so far
//! (up to its notice that the crate's metadata is written) and the `.rmeta` and
//! dep-info files, so that cargo can start the crates that depend on this one while
//! its code is still generated (cargo's pipelining). The reply repeats them.
//!
//! With feature [`FARM_CACHE`] accepted (a server with a farm cache accepts it from a
//! client that announces it), the server answers a request whose result it has kept
//! with `RHIT 00000000` instead of `RNED`: no contents follow, the reply comes next,
//! and the client knows it was not compiled for it. Without the feature the same hit
//! is answered with an empty `RNED`, which every client understands.
//!
//! The decoders are in `decode` (re-exported here).
//!
//! Additions to the shared design, none changing its API: `Error::Zstd` for a blob
//! that does not decompress; paths (`RCWD`, `RFIL`, `ROUT`, `RROT`) must be absolute
//! and free of `..` components, because the server places them below its job root and
//! the client writes outputs at them; `RNED` indices must be strictly ascending (the
//! blobs follow in that order, so a repeat could only be a confused server); `RSOU`
//! and `RSER` are bounded by `max_blob` (diagnostics can exceed `max_text`); and the
//! outputs of one reply together are bounded by `max_blob` too, since the client
//! holds the whole reply in memory.

use super::frame::{encode_raw_header as header, is_sha256_hex, wire_len};
use super::Error;

mod decode;
pub use decode::{BlobDecoder, RustcRequestDecoder, ServerMsgDecoder};

/// The extension feature a client asks for and a serving swarmccd accepts.
pub const FEATURE: &str = "rustc";

/// The feature of the early metadata part (`RERL`).
pub const EARLY_METADATA: &str = "rustc-early-metadata";

/// The feature of the farm cache's hit mark (`RHIT`).
pub const FARM_CACHE: &str = "rustc-farm-cache";

/// The refusal of a server that serves no rustc jobs (no `--rustc`); a client need
/// not ask it again for a while.
pub const NOT_SERVED: &str = "rustc jobs are not served by this swarmccd";
/// How the refusal of a server without the client's toolchain begins; the same holds.
pub const NO_TOOLCHAIN: &str = "no toolchain";

// The tokens are raw bytes, as in `ext`, so that this module adds none to distcc's
// `Token` set; none of them is a distcc or an extension token.
const RCWD: [u8; 4] = *b"RCWD";
const RARC: [u8; 4] = *b"RARC";
const RARG: [u8; 4] = *b"RARG";
const RENC: [u8; 4] = *b"RENC";
const RENV: [u8; 4] = *b"RENV";
const RFLC: [u8; 4] = *b"RFLC";
const RFIL: [u8; 4] = *b"RFIL";
const RNED: [u8; 4] = *b"RNED";
const RHIT: [u8; 4] = *b"RHIT";
const RREF: [u8; 4] = *b"RREF";
const RBLB: [u8; 4] = *b"RBLB";
const RDON: [u8; 4] = *b"RDON";
const RERL: [u8; 4] = *b"RERL";
const RSOU: [u8; 4] = *b"RSOU";
const RSER: [u8; 4] = *b"RSER";
const RROT: [u8; 4] = *b"RROT";
const ROUC: [u8; 4] = *b"ROUC";
const ROUT: [u8; 4] = *b"ROUT";
// The extension's own answers, which a client reads with the same decoder.
const SWOP: [u8; 4] = *b"SWOP";
const SWKA: [u8; 4] = *b"SWKA";

/// Every token this module reads or writes, for collision checks.
pub const TOKENS: [&str; 20] = [
    "RCWD", "RARC", "RARG", "RENC", "RENV", "RFLC", "RFIL", "RNED", "RREF", "RBLB", "RDON", "RSOU",
    "RSER", "RROT", "ROUC", "ROUT", "SWOP", "SWKA", "RERL", "RHIT",
];

/// zstd level for blobs: the fastest; the link is rarely the limit.
const BLOB_LEVEL: i32 = 1;

/// Bounds on what a decoder accepts, checked from headers before anything is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_files: u32,
    pub max_args: u32,
    pub max_env: u32,
    /// Longest string body (argument, variable, file entry, reason, root).
    pub max_text: u32,
    /// Largest blob once decompressed.
    pub max_blob: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_files: 200_000,
            max_args: 8192,
            max_env: 4096,
            max_text: 1 << 20,
            max_blob: 2 << 30,
        }
    }
}

/// One input file the client can ship: its content hash, mode and size, and where it
/// is on the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFile {
    /// sha256 of the content, 64 lowercase hex digits.
    pub hash: String,
    pub executable: bool,
    pub size: u64,
    /// Absolute client path.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RustcRequest {
    pub cwd: String,
    /// rustc's arguments, without the program.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub files: Vec<JobFile>,
}

/// A file rustc wrote, at its client path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub path: String,
    pub executable: bool,
    /// Uncompressed.
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RustcReply {
    /// rustc's exit status, 0–255 (128 + signal).
    pub status: u32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The server's job root, which the client removes from output text.
    pub root: String,
    pub outputs: Vec<OutputFile>,
}

/// Anything a server sends on a rustc connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMsg {
    /// `SWOP`: the features the server accepted (rustc jobs only if it has [`FEATURE`]).
    Accepted(Vec<String>),
    /// `RREF`: the server will not (or could not) do the job; the client runs it locally.
    Refused(String),
    /// `RNED`: indices into the request's files whose content must follow.
    Needed(Vec<u32>),
    /// `RHIT`: the result was kept; no contents are wanted and the reply follows.
    CacheHit,
    /// `SWKA`.
    KeepAlive,
    /// `RERL`: the metadata, before the reply (status 0, stdout empty).
    Early(RustcReply),
    Reply(RustcReply),
}

fn put_bytes(token: [u8; 4], body: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    header(token, wire_len(body.len(), "body longer than 4 GiB")?, out);
    out.extend_from_slice(body);
    Ok(())
}

fn put_text(token: [u8; 4], text: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    if text.as_bytes().contains(&0) {
        return Err(Error::Encode("rustc job text with a NUL byte"));
    }
    put_bytes(token, text.as_bytes(), out)
}

fn put_count(token: [u8; 4], n: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    header(token, wire_len(n, "more than 2^32 items")?, out);
    Ok(())
}

/// Runs an encoder so that `out` is left as it was when it fails.
fn atomically(
    out: &mut Vec<u8>,
    f: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>,
) -> Result<(), Error> {
    let start = out.len();
    let result = f(out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_error(e: Error) -> Error {
    match e {
        Error::BadString { why, .. } => Error::Encode(why),
        other => other,
    }
}

/// Appends a whole request (the file list only: contents follow on demand as blobs).
pub fn encode_request(r: &RustcRequest, out: &mut Vec<u8>) -> Result<(), Error> {
    atomically(out, |out| {
        check_path(&r.cwd, "RCWD").map_err(encode_error)?;
        put_text(RCWD, &r.cwd, out)?;
        put_count(RARC, r.args.len(), out)?;
        for a in &r.args {
            put_text(RARG, a, out)?;
        }
        put_count(RENC, r.env.len(), out)?;
        for (name, value) in &r.env {
            if name.is_empty() || name.contains('=') {
                return Err(Error::Encode("environment name empty or with '='"));
            }
            put_text(RENV, &format!("{name}={value}"), out)?;
        }
        put_count(RFLC, r.files.len(), out)?;
        for f in &r.files {
            check_hash(&f.hash).map_err(encode_error)?;
            check_path(&f.path, "RFIL").map_err(encode_error)?;
            let line = format!("{} {} {} {}", f.hash, flag(f.executable), f.size, f.path);
            put_text(RFIL, &line, out)?;
        }
        Ok(())
    })
}

/// Appends one file's content as a zstd frame.
pub fn encode_blob(data: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let packed = zstd::bulk::compress(data, BLOB_LEVEL)
        .map_err(|_| Error::Encode("zstd cannot compress the blob"))?;
    atomically(out, |out| put_bytes(RBLB, &packed, out))
}

/// Appends the server's list of the files it lacks (strictly ascending indices).
pub fn encode_needed(indices: &[u32], out: &mut Vec<u8>) -> Result<(), Error> {
    if indices.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::Encode("needed indices not strictly ascending"));
    }
    let text: Vec<String> = indices.iter().map(u32::to_string).collect();
    atomically(out, |out| put_text(RNED, &text.join(" "), out))
}

/// Appends the farm cache's hit mark, for a client that accepted [`FARM_CACHE`].
pub fn encode_hit(out: &mut Vec<u8>) {
    header(RHIT, 0, out);
}

/// Appends a refusal, before the job or instead of its reply.
pub fn encode_refused(reason: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    atomically(out, |out| put_text(RREF, reason, out))
}

/// Appends a whole reply, outputs compressed.
pub fn encode_reply(r: &RustcReply, out: &mut Vec<u8>) -> Result<(), Error> {
    if r.status > 255 {
        return Err(Error::Encode("exit status above 255"));
    }
    atomically(out, |out| encode_parts(RDON, r.status, r, out))
}

/// Appends the early metadata part (see the module's notes): `r`'s stderr and outputs.
pub fn encode_early(r: &RustcReply, out: &mut Vec<u8>) -> Result<(), Error> {
    atomically(out, |out| {
        let part = RustcReply {
            status: 0,
            stdout: Vec::new(),
            ..r.clone()
        };
        encode_parts(RERL, 0, &part, out)
    })
}

fn encode_parts(
    token: [u8; 4],
    status: u32,
    r: &RustcReply,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    header(token, status, out);
    put_bytes(RSOU, &r.stdout, out)?;
    put_bytes(RSER, &r.stderr, out)?;
    check_path(&r.root, "RROT").map_err(encode_error)?;
    put_text(RROT, &r.root, out)?;
    put_count(ROUC, r.outputs.len(), out)?;
    for o in &r.outputs {
        check_path(&o.path, "ROUT").map_err(encode_error)?;
        put_text(ROUT, &format!("{} {}", flag(o.executable), o.path), out)?;
        encode_blob(&o.data, out)?;
    }
    Ok(())
}

fn flag(executable: bool) -> &'static str {
    if executable {
        "x"
    } else {
        "-"
    }
}

fn parse_flag(s: &str, what: &'static str) -> Result<bool, Error> {
    match s {
        "x" => Ok(true),
        "-" => Ok(false),
        _ => Err(Error::BadString {
            what,
            why: "mode is neither 'x' nor '-'",
        }),
    }
}

fn check_hash(hash: &str) -> Result<(), Error> {
    if is_sha256_hex(hash.as_bytes()) {
        return Ok(());
    }
    Err(Error::BadString {
        what: "RFIL",
        why: "hash is not 64 lowercase hex digits",
    })
}

fn check_path(path: &str, what: &'static str) -> Result<(), Error> {
    if !path.starts_with('/') {
        return Err(Error::BadString {
            what,
            why: "path is not absolute",
        });
    }
    if path.split('/').any(|c| c == "..") {
        return Err(Error::BadString {
            what,
            why: "path has a '..' component",
        });
    }
    Ok(())
}

/// A decimal number as the wire writes it: digits only, no sign, no spaces.
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_job_file(line: &str, max_blob: u64) -> Result<JobFile, Error> {
    let bad = |why| Error::BadString { what: "RFIL", why };
    let mut parts = line.splitn(4, ' ');
    let (Some(hash), Some(mode), Some(size), Some(path)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not \"<hash> <x|-> <size> <path>\""));
    };
    check_hash(hash)?;
    let size = decimal(size).ok_or(bad("size is not a decimal number"))?;
    if size > max_blob {
        return Err(Error::TooLarge {
            what: "RFIL size",
            got: size,
            limit: max_blob,
        });
    }
    check_path(path, "RFIL")?;
    Ok(JobFile {
        hash: hash.to_owned(),
        executable: parse_flag(mode, "RFIL")?,
        size,
        path: path.to_owned(),
    })
}

fn parse_env(text: String) -> Result<(String, String), Error> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(Error::BadString {
            what: "RENV",
            why: "not NAME=VALUE",
        }),
    }
}

fn parse_needed(text: &str, max_files: u32) -> Result<Vec<u32>, Error> {
    let mut out: Vec<u32> = Vec::new();
    if text.is_empty() {
        return Ok(out);
    }
    for word in text.split(' ') {
        let bad = |why| Error::BadString { what: "RNED", why };
        let i = decimal(word).ok_or(bad("not space-separated decimal indices"))?;
        if i >= u64::from(max_files) {
            return Err(bad("index beyond the file limit"));
        }
        let i = i as u32;
        if out.last().is_some_and(|&last| last >= i) {
            return Err(bad("indices not strictly ascending"));
        }
        out.push(i);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::decode::frame_bound;
    use super::*;
    use crate::protocol::ext;
    use crate::protocol::frame::HEADER_LEN;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn request() -> RustcRequest {
        RustcRequest {
            cwd: "/p/app".into(),
            args: vec!["--crate-name".into(), "app".into(), "src/main.rs".into()],
            env: vec![
                ("CARGO_PKG_NAME".into(), "app".into()),
                ("X".into(), "a=b c".into()),
                ("EMPTY".into(), String::new()),
            ],
            files: vec![
                JobFile {
                    hash: HASH.into(),
                    executable: false,
                    size: 5,
                    path: "/p/app/src/main.rs".into(),
                },
                JobFile {
                    hash: "0".repeat(64),
                    executable: true,
                    size: 0,
                    path: "/p/app/with space/x".into(),
                },
            ],
        }
    }

    fn reply() -> RustcReply {
        RustcReply {
            status: 101,
            stdout: b"{\"artifact\":1}\n".to_vec(),
            stderr: vec![0xff, 0, 1],
            root: "/tmp/job-1/root".into(),
            outputs: vec![
                OutputFile {
                    path: "/p/target/debug/deps/libapp-1.rlib".into(),
                    executable: false,
                    data: vec![7; 100_000],
                },
                OutputFile {
                    path: "/p/target/debug/deps/app-1".into(),
                    executable: true,
                    data: Vec::new(),
                },
            ],
        }
    }

    fn encoded<T>(value: &T, f: fn(&T, &mut Vec<u8>) -> Result<(), Error>) -> Vec<u8> {
        let mut out = Vec::new();
        f(value, &mut out).unwrap();
        out
    }

    fn server_msg(buf: &[u8]) -> Result<Option<(ServerMsg, usize)>, Error> {
        ServerMsgDecoder::new(Limits::default()).decode(buf)
    }

    #[test]
    fn tokens_are_new() {
        let distcc = [
            "DIST", "CDIR", "ARGC", "ARGV", "DOTI", "NFIL", "NAME", "FILE", "LINK", "DONE", "STAT",
            "SERR", "SOUT", "DOTO", "DOTD", "TLEN", "SWXT", "SWID", "SWAU", "SWCH", "SWMC", "SWNO",
            "SWOK", "SWRS",
        ];
        for (i, t) in TOKENS.iter().enumerate() {
            assert_eq!(t.len(), 4);
            assert!(!distcc.contains(t), "{t}");
            assert!(!TOKENS[i + 1..].contains(t), "{t} twice");
        }
    }

    #[test]
    fn request_round_trips_whole_and_cut_anywhere() {
        let mut bytes = encoded(&request(), encode_request);
        assert!(bytes.starts_with(b"RCWD00000006/p/appRARC00000003RARG0000000c--crate-name"));
        bytes.extend_from_slice(b"RBLB");
        let whole = bytes.len() - 4;
        let (r, used) = RustcRequestDecoder::new(Limits::default())
            .decode(&bytes)
            .unwrap()
            .unwrap();
        assert_eq!((r, used), (request(), whole));
        for cut in 0..whole {
            let mut fresh = RustcRequestDecoder::new(Limits::default());
            assert_eq!(fresh.decode(&bytes[..cut]).unwrap(), None, "cut {cut}");
        }
        // One decoder fed a growing buffer, as `Conn` does, resumes where it was.
        let mut d = RustcRequestDecoder::new(Limits::default());
        for cut in 0..whole {
            assert_eq!(d.decode(&bytes[..cut]).unwrap(), None, "cut {cut}");
        }
        assert_eq!(d.decode(&bytes).unwrap().unwrap().0, request());
        // ... and starts over when the buffer shrinks.
        assert_eq!(d.decode(&bytes[..whole - 1]).unwrap(), None);
        assert_eq!(d.decode(&bytes[..40]).unwrap(), None);
        assert_eq!(d.decode(&bytes).unwrap().unwrap().0, request());
        let empty = RustcRequest {
            cwd: "/".into(),
            ..RustcRequest::default()
        };
        let bytes = encoded(&empty, encode_request);
        let mut d = RustcRequestDecoder::new(Limits::default());
        assert_eq!(d.decode(&bytes).unwrap().unwrap(), (empty, bytes.len()));
    }

    #[test]
    fn request_limits_are_checked_from_headers() {
        let tight = Limits {
            max_files: 1,
            max_args: 2,
            max_env: 2,
            max_text: 10,
            max_blob: 4,
        };
        let too_large = |buf: &[u8], what: &str| {
            let mut d = RustcRequestDecoder::new(tight);
            match d.decode(buf) {
                Err(Error::TooLarge { what: w, .. }) => assert_eq!(w, what),
                other => panic!("{what}: {other:?}"),
            }
        };
        too_large(b"RCWD0000000b", "RCWD");
        too_large(b"RCWD00000002/pRARC00000003", "RARC");
        too_large(b"RCWD00000002/pRARC00000000RENC00000003", "RENC");
        too_large(
            b"RCWD00000002/pRARC00000000RENC00000000RFLC00000002",
            "RFLC",
        );
        too_large(b"RCWD00000002/pRARC00000001RARGffffffff", "RARG");
        let mut big = Vec::new();
        let f = RustcRequest {
            cwd: "/p".into(),
            files: vec![JobFile {
                hash: HASH.into(),
                executable: false,
                size: 5,
                path: "/a".into(),
            }],
            ..RustcRequest::default()
        };
        encode_request(&f, &mut big).unwrap();
        let limits = Limits {
            max_blob: 4,
            ..Limits::default()
        };
        assert!(matches!(
            RustcRequestDecoder::new(limits).decode(&big),
            Err(Error::TooLarge {
                what: "RFIL size",
                got: 5,
                limit: 4
            })
        ));
    }

    fn file_line(line: &str) -> Result<Option<(RustcRequest, usize)>, Error> {
        let mut buf = b"RCWD00000002/pRARC00000000RENC00000000RFLC00000001".to_vec();
        buf.extend_from_slice(format!("RFIL{:08x}{line}", line.len()).as_bytes());
        RustcRequestDecoder::new(Limits::default()).decode(&buf)
    }

    #[test]
    fn file_entries_are_validated() {
        let ok = file_line(&format!("{HASH} x 12 /a b/c"))
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(ok.files[0].path, "/a b/c");
        assert!(ok.files[0].executable);
        assert_eq!(ok.files[0].size, 12);
        for bad in [
            format!("{} - 1 /a", HASH.to_uppercase()),
            format!("{} - 1 /a", &HASH[1..]),
            format!("{HASH}0 - 1 /a"),
            format!("{}g - 1 /a", &HASH[1..]),
            format!("{HASH} X 1 /a"),
            format!("{HASH} xx 1 /a"),
            format!("{HASH} - +1 /a"),
            format!("{HASH} - -1 /a"),
            format!("{HASH} -  1 /a"),
            format!("{HASH} - 1 a"),
            format!("{HASH} - 1 /a/../b"),
            format!("{HASH} - 1"),
            format!("{HASH} - 1 "),
        ] {
            assert!(file_line(&bad).is_err(), "{bad}");
        }
        let mut out = b"keep".to_vec();
        let mut r = request();
        r.files[0].hash = HASH.to_uppercase();
        assert!(encode_request(&r, &mut out).is_err());
        r = request();
        r.files[1].path = "relative".into();
        assert!(encode_request(&r, &mut out).is_err());
        r = request();
        r.env[0].0 = "A=B".into();
        assert!(encode_request(&r, &mut out).is_err());
        r = request();
        r.args[0] = "nul\0".into();
        assert!(encode_request(&r, &mut out).is_err());
        assert_eq!(out, b"keep", "a failed encoder leaves the buffer alone");
    }

    #[test]
    fn other_request_fields_are_validated() {
        let d = |b: &[u8]| RustcRequestDecoder::new(Limits::default()).decode(b);
        assert!(d(b"RCWD00000001p").is_err());
        assert!(d(b"RARC00000000").is_err());
        assert!(d(b"RCWD00000001/RARC00000001RENV00000003A=B").is_err());
        assert!(d(b"RCWD00000001/RARC00000000RENC00000001RENV00000002=B").is_err());
        assert!(d(b"RCWD00000001/RARC00000000RENC00000001RENV00000002AB").is_err());
        assert!(d(b"RCWD00000001/RARC00000001RARG00000001\xff").is_err());
        assert!(d(b"RCWD0000000g").is_err());
    }

    #[test]
    fn blobs_round_trip_and_are_bounded() {
        for data in [&b""[..], b"x", &[42u8; 300_000]] {
            let mut bytes = Vec::new();
            encode_blob(data, &mut bytes).unwrap();
            bytes.extend_from_slice(b"RBLB");
            let whole = bytes.len() - 4;
            let mut d = BlobDecoder::new(data.len() as u64);
            let (got, used) = d.decode(&bytes).unwrap().unwrap();
            assert_eq!((&got[..], used), (data, whole));
            for cut in 0..whole {
                assert_eq!(d.decode(&bytes[..cut]).unwrap(), None);
            }
        }
        // A header alone is refused when its length cannot be a frame of `max` bytes.
        let huge = format!("RBLB{:08x}", frame_bound(1000) + 1);
        assert!(matches!(
            BlobDecoder::new(1000).decode(huge.as_bytes()),
            Err(Error::TooLarge { what: "RBLB", .. })
        ));
        assert_eq!(
            BlobDecoder::new(u64::MAX).decode(b"RBLBffffffff").unwrap(),
            None
        );
        // A zstd bomb: 64 MiB of zeros packs into a few KiB, but may not unpack beyond max.
        let mut bomb = Vec::new();
        encode_blob(&vec![0u8; 64 << 20], &mut bomb).unwrap();
        assert!(bomb.len() < 64 << 10);
        assert!(matches!(
            BlobDecoder::new(1 << 20).decode(&bomb),
            Err(Error::TooLarge {
                what: "RBLB (decompressed)",
                ..
            })
        ));
        assert!(matches!(
            BlobDecoder::new(10).decode(b"RBLB00000003abc"),
            Err(Error::Zstd(_))
        ));
        let mut cut = Vec::new();
        encode_blob(&[9u8; 5000], &mut cut).unwrap();
        let body = cut[HEADER_LEN..cut.len() - 3].to_vec();
        let mut cut = format!("RBLB{:08x}", body.len()).into_bytes();
        cut.extend_from_slice(&body);
        assert!(matches!(
            BlobDecoder::new(5000).decode(&cut),
            Err(Error::Zstd(_))
        ));
        assert!(matches!(
            BlobDecoder::new(10).decode(b"RBLB00000000"),
            Err(Error::Zstd(_))
        ));
        assert!(BlobDecoder::new(10).decode(b"RFIL00000000").is_err());
    }

    #[test]
    fn reply_round_trips_whole_and_cut_anywhere() {
        let mut bytes = encoded(&reply(), encode_reply);
        assert!(bytes.starts_with(b"RDON00000065RSOU0000000f"));
        encode_keepalive_for_test(&mut bytes);
        let whole = bytes.len() - 12;
        let mut d = ServerMsgDecoder::new(Limits::default());
        for cut in 0..whole {
            assert_eq!(d.decode(&bytes[..cut]).unwrap(), None, "cut {cut}");
            assert_eq!(server_msg(&bytes[..cut]).unwrap(), None, "fresh, cut {cut}");
        }
        let (msg, used) = d.decode(&bytes).unwrap().unwrap();
        assert_eq!((msg, used), (ServerMsg::Reply(reply()), whole));
        assert_eq!(
            d.decode(&bytes[used..]).unwrap(),
            Some((ServerMsg::KeepAlive, 12))
        );
        let empty = RustcReply {
            root: "/r".into(),
            ..RustcReply::default()
        };
        let bytes = encoded(&empty, encode_reply);
        assert_eq!(
            server_msg(&bytes).unwrap(),
            Some((ServerMsg::Reply(empty), bytes.len()))
        );
    }

    #[test]
    fn a_hit_mark_comes_before_its_reply() {
        let mut bytes = Vec::new();
        encode_hit(&mut bytes);
        assert_eq!(bytes, b"RHIT00000000");
        encode_reply(&reply(), &mut bytes).unwrap();
        let mut d = ServerMsgDecoder::new(Limits::default());
        assert_eq!(d.decode(&bytes[..11]).unwrap(), None);
        assert_eq!(d.decode(&bytes).unwrap(), Some((ServerMsg::CacheHit, 12)));
        assert_eq!(
            d.decode(&bytes[12..]).unwrap(),
            Some((ServerMsg::Reply(reply()), bytes.len() - 12))
        );
        assert!(server_msg(b"RHIT00000001").is_err());
    }

    #[test]
    fn early_part_round_trips_before_the_reply() {
        let mut bytes = encoded(&reply(), encode_early);
        assert!(bytes.starts_with(b"RERL00000000RSOU00000000RSER00000003"));
        let early_len = bytes.len();
        bytes.extend(encoded(&reply(), encode_reply));
        let mut d = ServerMsgDecoder::new(Limits::default());
        for cut in 0..early_len {
            assert_eq!(d.decode(&bytes[..cut]).unwrap(), None, "cut {cut}");
        }
        let (msg, used) = d.decode(&bytes).unwrap().unwrap();
        let want = RustcReply {
            status: 0,
            stdout: Vec::new(),
            ..reply()
        };
        assert_eq!((msg, used), (ServerMsg::Early(want), early_len));
        let (msg, _) = d.decode(&bytes[used..]).unwrap().unwrap();
        assert_eq!(msg, ServerMsg::Reply(reply()));
        assert!(
            server_msg(b"RERL00000001").is_err(),
            "an early part has no status"
        );
    }

    fn encode_keepalive_for_test(out: &mut Vec<u8>) {
        ext::encode_keepalive(out);
    }

    #[test]
    fn reply_fields_are_validated_and_bounded() {
        let mut r = reply();
        r.status = 256;
        assert!(encode_reply(&r, &mut Vec::new()).is_err());
        assert!(matches!(
            server_msg(b"RDON00000100"),
            Err(Error::TooLarge { what: "RDON", .. })
        ));
        let tight = Limits {
            max_blob: 150_000,
            ..Limits::default()
        };
        let mut two = reply();
        two.outputs[1].data = vec![1; 60_000];
        let bytes = encoded(&two, encode_reply);
        // Each output fits, both together do not.
        assert!(matches!(
            ServerMsgDecoder::new(tight).decode(&bytes),
            Err(Error::TooLarge { .. })
        ));
        let text = Limits {
            max_text: 4,
            ..Limits::default()
        };
        let bytes = encoded(&reply(), encode_reply);
        assert!(matches!(
            ServerMsgDecoder::new(text).decode(&bytes),
            Err(Error::TooLarge { what: "RROT", .. })
        ));
        for bad_out in ["y /a", "x a", "x", "- /a/../b"] {
            let mut buf =
                b"RDON00000000RSOU00000000RSER00000000RROT00000002/rROUC00000001".to_vec();
            buf.extend_from_slice(format!("ROUT{:08x}{bad_out}", bad_out.len()).as_bytes());
            assert!(server_msg(&buf).is_err(), "{bad_out}");
        }
        assert!(server_msg(b"RDON00000000RSOU00000000RSER00000000RROT00000001r").is_err());
        assert!(server_msg(b"RDON00000000RSER00000000").is_err());
    }

    #[test]
    fn short_server_messages() {
        let mut out = Vec::new();
        ext::encode_accepted(&[FEATURE, "zstd"], &mut out).unwrap();
        encode_refused("no toolchain rustc 1.95.0", &mut out).unwrap();
        encode_needed(&[0, 2, 17], &mut out).unwrap();
        encode_needed(&[], &mut out).unwrap();
        ext::encode_keepalive(&mut out);
        let expected = [
            ServerMsg::Accepted(vec!["rustc".into(), "zstd".into()]),
            ServerMsg::Refused("no toolchain rustc 1.95.0".into()),
            ServerMsg::Needed(vec![0, 2, 17]),
            ServerMsg::Needed(vec![]),
            ServerMsg::KeepAlive,
        ];
        let mut d = ServerMsgDecoder::new(Limits::default());
        let mut at = 0;
        for want in expected {
            let rest = &out[at..];
            let (msg, used) = d.decode(rest).unwrap().unwrap();
            assert_eq!(msg, want);
            for cut in 0..used {
                assert_eq!(d.decode(&rest[..cut]).unwrap(), None, "{want:?} cut {cut}");
            }
            at += used;
        }
        assert_eq!(at, out.len());
        assert!(encode_needed(&[2, 2], &mut Vec::new()).is_err());
        assert!(encode_needed(&[3, 1], &mut Vec::new()).is_err());
        for bad in ["1 1", "2 1", "1  2", " 1", "1 ", "x", "-1", "+1", "200000"] {
            let buf = format!("RNED{:08x}{bad}", bad.len());
            assert!(server_msg(buf.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(matches!(
            server_msg(b"RREFffffffff"),
            Err(Error::TooLarge { what: "RREF", .. })
        ));
        assert!(matches!(
            server_msg(b"SWOP00001001"),
            Err(Error::TooLarge { what: "SWOP", .. })
        ));
        assert!(matches!(
            server_msg(b"RNEDffffffff"),
            Err(Error::TooLarge { what: "RNED", .. })
        ));
        assert!(matches!(
            server_msg(b"DONE00000001"),
            Err(Error::UnexpectedToken {
                got: [b'D', b'O', b'N', b'E'],
                ..
            })
        ));
    }
}
