//! Request and reply sequences of the distcc protocol, versions 1–3: what both share
//! (the version, the allocation [`Limits`], v3's [`FileEntry`], and how bulk bodies are
//! packed), with the client's request in `request` and the server's reply in `reply`.
//!
//! Encoders append whole messages to a caller's buffer; decoders are incremental
//! state machines that check the token order and enforce [`Limits`] before anything
//! is allocated. What the arguments mean, where files go on disk, and when to read or
//! write the socket are left to `client`, `server` and `conn`.

use std::borrow::Cow;

use super::{lzo, Error};

mod reply;
mod request;

pub use reply::{encode_reply, Reply, ReplyDecoder, ReplyEvent};
pub use request::{
    encode_file_entry, encode_files, encode_precompressed_file, encode_request_header,
    encode_source, encode_source_header, RequestDecoder, RequestEvent,
};

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
            1 => Ok(Version::V1),
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
    /// Maximum size of a request's whole header (`DIST` through the last `ARGV` or
    /// `NFIL`): bounds the argument list as a whole, not only each string.
    pub max_header: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_argc: 16 * 1024,
            max_string: 1024 * 1024,
            max_body: 1024 * 1024 * 1024,
            max_decompressed: 2 * 1024 * 1024 * 1024 - 1,
            max_header: 64 * 1024 * 1024,
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

/// Turns a received bulk body into its contents. Zero-length bodies are empty and are
/// never LZO streams (distcc does not compress empty content).
fn unpack(
    compressed: bool,
    body: &[u8],
    limits: &Limits,
    what: &'static str,
) -> Result<Vec<u8>, Error> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    if !compressed {
        if body.len() > limits.max_decompressed {
            return Err(Error::TooLarge {
                what,
                got: body.len() as u64,
                limit: limits.max_decompressed as u64,
            });
        }
        return Ok(body.to_vec());
    }
    lzo::decompress(body, limits.max_decompressed).map_err(|e| match e {
        // Name the packet rather than the codec, so the log says which body was a bomb.
        Error::TooLarge { got, limit, .. } => Error::TooLarge { what, got, limit },
        other => other,
    })
}

/// The wire form of bulk content: LZO1X for v2/v3, except that empty content is sent
/// as a zero-length body with no LZO bytes at all (distcc's convention).
fn pack(version: Version, data: &[u8]) -> Cow<'_, [u8]> {
    if version.compressed() && !data.is_empty() {
        Cow::Owned(lzo::compress(data))
    } else {
        Cow::Borrowed(data)
    }
}

/// Runs an encoder so that `out` is left untouched when it fails: callers may already
/// hold other messages in the same buffer.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::{encode_bulk, encode_header, Token};

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn gcc() -> Vec<String> {
        args(&["gcc", "-c", "x.c", "-o", "x.o"])
    }

    /// Feeds `bytes` to a decoder `chunk` bytes at a time, the way `conn` does.
    /// Returns the events, whether the decoder completed, and unconsumed bytes.
    fn feed<E>(
        bytes: &[u8],
        chunk: usize,
        mut decode: impl FnMut(&[u8]) -> Result<Option<(E, usize)>, Error>,
        mut complete: impl FnMut() -> bool,
    ) -> Result<(Vec<E>, bool, usize), Error> {
        let mut buf = Vec::new();
        let mut fed = 0;
        let mut events = Vec::new();
        loop {
            if complete() {
                return Ok((events, true, buf.len() + bytes.len() - fed));
            }
            match decode(&buf)? {
                Some((event, used)) => {
                    buf.drain(..used);
                    events.push(event);
                }
                None if fed == bytes.len() => return Ok((events, false, buf.len())),
                None => {
                    let n = chunk.min(bytes.len() - fed);
                    buf.extend_from_slice(&bytes[fed..fed + n]);
                    fed += n;
                }
            }
        }
    }

    type Decoded<E> = Result<(Vec<E>, bool, usize), Error>;

    fn requests(bytes: &[u8], chunk: usize, limits: Limits) -> Decoded<RequestEvent> {
        let d = std::cell::RefCell::new(RequestDecoder::new(limits));
        feed(
            bytes,
            chunk,
            |b| d.borrow_mut().decode(b),
            || d.borrow().is_complete(),
        )
    }

    fn replies(
        bytes: &[u8],
        chunk: usize,
        version: Version,
        deps: bool,
        limits: Limits,
    ) -> Decoded<ReplyEvent> {
        let d = std::cell::RefCell::new(ReplyDecoder::new(version, limits, deps));
        feed(
            bytes,
            chunk,
            |b| d.borrow_mut().decode(b),
            || d.borrow().is_complete(),
        )
    }

    /// Decodes a complete request whole and byte by byte, insisting both agree.
    fn request_events(bytes: &[u8]) -> Vec<RequestEvent> {
        let whole = requests(bytes, usize::MAX, Limits::default()).unwrap();
        let drip = requests(bytes, 1, Limits::default()).unwrap();
        assert_eq!(whole, drip);
        assert!(whole.1, "request incomplete");
        assert_eq!(whole.2, 0, "bytes left over");
        whole.0
    }

    fn reply_events(bytes: &[u8], version: Version, deps: bool) -> Vec<ReplyEvent> {
        let whole = replies(bytes, usize::MAX, version, deps, Limits::default()).unwrap();
        let drip = replies(bytes, 1, version, deps, Limits::default()).unwrap();
        assert_eq!(whole, drip);
        assert!(whole.1, "reply incomplete");
        assert_eq!(whole.2, 0, "bytes left over");
        whole.0
    }

    fn v12_request(version: Version, argv: &[String], source: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_request_header(version, Some("/ignored"), argv, &mut out).unwrap();
        encode_source(version, source, &mut out).unwrap();
        out
    }

    fn v3_request(cwd: &str, argv: &[String], files: &[FileEntry]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_request_header(Version::V3, Some(cwd), argv, &mut out).unwrap();
        encode_files(files, &mut out).unwrap();
        out
    }

    fn sample_files() -> Vec<FileEntry> {
        vec![
            FileEntry::File {
                name: "/w/p.c".into(),
                contents: b"#include \"x.h\"\nint f(void) { return X; }\n".repeat(10),
            },
            FileEntry::Link {
                name: "/usr/include".into(),
                target: "../../../usr/include".into(),
            },
            FileEntry::File {
                name: "/w/forcing_technique_271828".into(),
                contents: vec![],
            },
        ]
    }

    #[test]
    fn version_numbers() {
        assert_eq!(Version::from_wire(0), Err(Error::UnsupportedVersion(0)));
        assert_eq!(Version::from_wire(1), Ok(Version::V1));
        assert_eq!(Version::from_wire(3), Ok(Version::V3));
        assert_eq!(Version::from_wire(4), Err(Error::UnsupportedVersion(4)));
        assert!(!Version::V1.compressed() && Version::V2.compressed());
    }

    #[test]
    fn v1_and_v2_requests_round_trip() {
        let source = b"# 0 \"x.c\"\nint add(int a, int b) { return a + b; }\n".repeat(50);
        for version in [Version::V1, Version::V2] {
            for src in [&source[..], b""] {
                let bytes = v12_request(version, &gcc(), src);
                assert_eq!(
                    request_events(&bytes),
                    vec![
                        RequestEvent::Header {
                            version,
                            cwd: None,
                            argv: gcc()
                        },
                        RequestEvent::Source(src.to_vec()),
                    ]
                );
            }
        }
        // Compression actually happened in v2, and empty bodies carry no LZO bytes.
        assert!(v12_request(Version::V2, &gcc(), &source).len() < source.len());
        assert!(v12_request(Version::V2, &gcc(), b"").ends_with(b"DOTI00000000"));
    }

    #[test]
    fn v3_request_round_trips() {
        let argv = args(&["gcc", "-MD", "-c", "p.c", "-o", "p.o", "-MT", "p.o"]);
        let bytes = v3_request("/w", &argv, &sample_files());
        let mut expected = vec![RequestEvent::Header {
            version: Version::V3,
            cwd: Some("/w".into()),
            argv: argv.clone(),
        }];
        expected.extend(sample_files().into_iter().map(RequestEvent::File));
        expected.push(RequestEvent::FilesDone);
        assert_eq!(request_events(&bytes), expected);
        // The empty file went out as FILE00000000 with no body.
        assert!(bytes.ends_with(b"forcing_technique_271828FILE00000000"));

        let none = v3_request("/w", &argv, &[]);
        assert!(none.ends_with(b"NFIL00000000"));
        assert_eq!(request_events(&none).last(), Some(&RequestEvent::FilesDone));
    }

    #[test]
    fn v3_precompressed_empty_file() {
        let mut bytes = Vec::new();
        encode_request_header(Version::V3, Some("/w"), &gcc(), &mut bytes).unwrap();
        encode_header(Token::NFIL, 1, &mut bytes);
        encode_precompressed_file("/w/empty.h", &[0x11, 0, 0], &mut bytes).unwrap();
        let events = request_events(&bytes);
        assert_eq!(
            events[1],
            RequestEvent::File(FileEntry::File {
                name: "/w/empty.h".into(),
                contents: vec![]
            })
        );
    }

    #[test]
    fn every_prefix_needs_more_bytes() {
        let v2 = v12_request(Version::V2, &gcc(), b"int x;\n");
        let v3 = v3_request("/w", &gcc(), &sample_files());
        for bytes in [&v2, &v3] {
            for n in 0..bytes.len() {
                let (_, complete, _) = requests(&bytes[..n], 7, Limits::default()).unwrap();
                assert!(!complete, "complete after {n} of {} bytes", bytes.len());
            }
        }
        let mut reply = Vec::new();
        let r = Reply {
            object: b"\x7fELF object".to_vec(),
            deps: Some(b"p.o: p.c\n".to_vec()),
            ..Reply::default()
        };
        encode_reply(Version::V3, &r, &mut reply).unwrap();
        for n in 0..reply.len() {
            let (_, complete, _) =
                replies(&reply[..n], 5, Version::V3, true, Limits::default()).unwrap();
            assert!(!complete);
        }
    }

    #[test]
    fn complete_decoder_leaves_trailing_bytes() {
        let mut bytes = v12_request(Version::V1, &gcc(), b"x");
        bytes.extend_from_slice(b"garbage");
        let (_, complete, left) = requests(&bytes, usize::MAX, Limits::default()).unwrap();
        assert!(complete);
        assert_eq!(left, 7);
    }

    fn first_error(bytes: &[u8], limits: Limits) -> Error {
        match requests(bytes, usize::MAX, limits) {
            Err(e) => {
                // Dripping must hit the same error.
                assert_eq!(requests(bytes, 1, limits).err(), Some(e.clone()));
                e
            }
            Ok(r) => panic!("expected an error, got {r:?}"),
        }
    }

    #[test]
    fn malformed_requests() {
        assert_eq!(
            first_error(b"HELLO WORLD!", Limits::default()),
            Error::UnexpectedToken {
                expected: "DIST",
                got: *b"HELL"
            }
        );
        assert_eq!(
            first_error(b"DIST00000004", Limits::default()),
            Error::UnsupportedVersion(4)
        );
        assert_eq!(
            first_error(b"DIST00000001ARGC00000000", Limits::default()),
            Error::EmptyArgv
        );
        assert!(matches!(
            first_error(b"DIST0000000xARGC00000001", Limits::default()),
            Error::BadValue { .. }
        ));
        // v3 without CDIR derails at ARGC.
        assert_eq!(
            first_error(b"DIST00000003ARGC00000001", Limits::default()),
            Error::UnexpectedToken {
                expected: "CDIR",
                got: *b"ARGC"
            }
        );
        // A v1 request with an NFIL where DOTI belongs.
        assert_eq!(
            first_error(
                b"DIST00000001ARGC00000001ARGV00000003gccNFIL00000000",
                Limits::default()
            ),
            Error::UnexpectedToken {
                expected: "DOTI",
                got: *b"NFIL"
            }
        );
        assert!(matches!(
            first_error(
                b"DIST00000001ARGC00000001ARGV00000003g\0c",
                Limits::default()
            ),
            Error::BadString { what: "ARGV", .. }
        ));
        assert!(matches!(
            first_error(
                b"DIST00000001ARGC00000001ARGV00000003g\xffc",
                Limits::default()
            ),
            Error::BadString { what: "ARGV", .. }
        ));
        // v2 DOTI that is not LZO.
        assert!(matches!(
            first_error(
                b"DIST00000002ARGC00000001ARGV00000003gccDOTI00000003abc",
                Limits::default()
            ),
            Error::Lzo(_)
        ));
        let v3_head = b"DIST00000003CDIR00000002/wARGC00000001ARGV00000003gccNFIL00000001";
        let mut empty_name = v3_head.to_vec();
        empty_name.extend_from_slice(b"NAME00000000FILE00000000");
        assert!(matches!(
            first_error(&empty_name, Limits::default()),
            Error::BadString { what: "NAME", .. }
        ));
        let mut wrong = v3_head.to_vec();
        wrong.extend_from_slice(b"NAME00000002/aDOTI00000000");
        assert_eq!(
            first_error(&wrong, Limits::default()),
            Error::UnexpectedToken {
                expected: "FILE or LINK",
                got: *b"DOTI"
            }
        );
    }

    #[test]
    fn source_header_then_body_is_a_v1_source() {
        let body = b"int x;\n".repeat(9);
        let mut whole = Vec::new();
        encode_source(Version::V1, &body, &mut whole).unwrap();
        let mut split = Vec::new();
        encode_source_header(body.len(), &mut split).unwrap();
        split.extend_from_slice(&body);
        assert_eq!(whole, split);
    }

    #[test]
    fn dist_zero_is_refused() {
        // distccd 3.4 takes version 0 as 1 (distcc-reference §6.2.3); no client sends it.
        assert_eq!(
            first_error(
                b"DIST00000000ARGC00000001ARGV00000003gccDOTI00000001x",
                Limits::default()
            ),
            Error::UnsupportedVersion(0)
        );
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        let events =
            request_events(b"DIST00000001ARGC00000001ARGV00000003gccDOTI0000000A0123456789");
        assert_eq!(events[1], RequestEvent::Source(b"0123456789".to_vec()));
    }

    #[test]
    fn request_limits() {
        let tight = |f: fn(&mut Limits)| {
            let mut l = Limits::default();
            f(&mut l);
            l
        };
        let too_large = |bytes: &[u8], limits: Limits| match first_error(bytes, limits) {
            Error::TooLarge { what, .. } => what,
            other => panic!("expected TooLarge, got {other:?}"),
        };
        let big = b"int x;\n".repeat(100);

        // Counts: rejected from the 12-byte header, before any ARGV arrives.
        let l = tight(|l| l.max_argc = 4);
        assert_eq!(too_large(b"DIST00000001ARGC00000005", l), "ARGC");
        assert_eq!(
            too_large(b"DIST00000001ARGC0fffffff", Limits::default()),
            "ARGC"
        );
        assert!(requests(&v12_request(Version::V1, &gcc()[..4], b""), 1, l).is_ok());
        let files: Vec<FileEntry> = (0..5)
            .map(|i| FileEntry::Link {
                name: format!("/l{i}"),
                target: "t".into(),
            })
            .collect();
        assert_eq!(too_large(&v3_request("/w", &gcc()[..2], &files), l), "NFIL");

        // The argument list as a whole: 100 arguments of 20 bytes each, each string
        // within its limit, the total not.
        let many: Vec<String> = (0..100)
            .map(|i| format!("-DSYMBOL_NUMBER_{i:04}"))
            .collect();
        let l = tight(|l| l.max_header = 1000);
        assert_eq!(
            too_large(&v12_request(Version::V1, &many, b""), l),
            "request header"
        );
        let l = tight(|l| l.max_header = 4000);
        assert!(requests(&v12_request(Version::V1, &many, b""), 1, l).is_ok());

        // String lengths: a 6-byte string against a limit of 5.
        let l = tight(|l| l.max_string = 5);
        assert_eq!(
            too_large(b"DIST00000001ARGC00000001ARGV00000006", l),
            "ARGV"
        );
        assert_eq!(too_large(b"DIST00000003CDIR00000006", l), "CDIR");
        let name = [FileEntry::Link {
            name: "/aaaaa".into(),
            target: "t".into(),
        }];
        assert_eq!(
            too_large(&v3_request("/w", &args(&["gcc"]), &name), l),
            "NAME"
        );
        let link = [FileEntry::Link {
            name: "/a".into(),
            target: "tttttt".into(),
        }];
        assert_eq!(
            too_large(&v3_request("/w", &args(&["gcc"]), &link), l),
            "LINK"
        );

        // Bulk lengths as transmitted.
        let l = tight(|l| l.max_body = 10);
        assert_eq!(
            too_large(&v12_request(Version::V1, &gcc(), &big), l),
            "DOTI"
        );
        let file = [FileEntry::File {
            name: "/a".into(),
            contents: big.clone(),
        }];
        assert_eq!(too_large(&v3_request("/w", &gcc(), &file), l), "FILE");

        // Sizes after decompression (v1 bodies count as their own content).
        let l = Limits {
            max_decompressed: big.len() - 1,
            ..Limits::default()
        };
        assert_eq!(
            too_large(&v12_request(Version::V1, &gcc(), &big), l),
            "DOTI"
        );
        assert_eq!(
            too_large(&v12_request(Version::V2, &gcc(), &big), l),
            "DOTI"
        );
        assert_eq!(too_large(&v3_request("/w", &gcc(), &file), l), "FILE");
        let l = Limits {
            max_decompressed: big.len(),
            ..Limits::default()
        };
        assert!(requests(&v12_request(Version::V2, &gcc(), &big), 3, l).is_ok());
    }

    #[test]
    fn limit_is_checked_before_the_body_arrives() {
        let l = Limits {
            max_body: 1000,
            ..Limits::default()
        };
        let mut d = RequestDecoder::new(l);
        let head = b"DIST00000001ARGC00000001ARGV00000003gcc";
        let (_, used) = d.decode(head).unwrap().unwrap();
        assert_eq!(used, head.len());
        assert!(matches!(
            d.decode(b"DOTI00100000"),
            Err(Error::TooLarge { what: "DOTI", .. })
        ));
    }

    #[test]
    fn encoder_refusals() {
        let mut out = b"keep".to_vec();
        assert!(encode_request_header(Version::V1, None, &[], &mut out).is_err());
        assert!(
            encode_request_header(Version::V1, None, &args(&["gcc", "a\0b"]), &mut out).is_err()
        );
        assert!(encode_request_header(Version::V3, None, &gcc(), &mut out).is_err());
        assert!(encode_request_header(Version::V3, Some("/a\0"), &gcc(), &mut out).is_err());
        assert!(encode_source(Version::V3, b"x", &mut out).is_err());
        let bad_name = [FileEntry::File {
            name: String::new(),
            contents: vec![],
        }];
        assert!(encode_files(&bad_name, &mut out).is_err());
        // A failed encoder leaves earlier messages in the buffer untouched.
        assert_eq!(out, b"keep");
        // cwd is not sent for v1/v2.
        encode_request_header(Version::V2, Some("/w"), &args(&["cc"]), &mut out).unwrap();
        assert_eq!(out, b"keepDIST00000002ARGC00000001ARGV00000002cc");
    }

    fn reply(status: u32) -> Reply {
        Reply {
            status,
            stderr: b"warning: something\n".repeat(3),
            stdout: b"out".to_vec(),
            object: b"\x7fELF\x02\x01\x01\0\0\0\0\0".repeat(40),
            deps: Some(b"p.o: p.c inc/x.h\n".to_vec()),
        }
    }

    #[test]
    fn replies_round_trip() {
        for version in [Version::V1, Version::V2, Version::V3] {
            for expect_deps in [false, true] {
                let r = reply(0);
                let mut bytes = Vec::new();
                encode_reply(version, &r, &mut bytes).unwrap();
                let with_deps = version == Version::V3;
                let mut expected = vec![
                    ReplyEvent::Started,
                    ReplyEvent::Status(0),
                    ReplyEvent::Stderr(r.stderr.clone()),
                    ReplyEvent::Stdout(r.stdout.clone()),
                    ReplyEvent::Object(r.object.clone()),
                ];
                if with_deps && expect_deps {
                    expected.push(ReplyEvent::Deps(r.deps.clone().unwrap()));
                }
                let whole =
                    replies(&bytes, usize::MAX, version, expect_deps, Limits::default()).unwrap();
                let drip = replies(&bytes, 1, version, expect_deps, Limits::default()).unwrap();
                assert_eq!(whole, drip);
                assert_eq!(whole.0, expected);
                assert!(whole.1);
                // A DOTD the client did not ask for stays unconsumed.
                let dotd_len = if with_deps && !expect_deps {
                    let mut d = Vec::new();
                    encode_bulk(
                        Token::DOTD,
                        &pack(version, r.deps.as_ref().unwrap()),
                        &mut d,
                    )
                    .unwrap();
                    d.len()
                } else {
                    0
                };
                assert_eq!(whole.2, dotd_len);
            }
        }
    }

    #[test]
    fn failed_reply_sends_no_object_or_deps() {
        for version in [Version::V1, Version::V2, Version::V3] {
            let mut bytes = Vec::new();
            encode_reply(version, &reply(0x100), &mut bytes).unwrap();
            assert!(bytes.ends_with(b"DOTO00000000"));
            let events = reply_events(&bytes, version, true);
            assert_eq!(events[1], ReplyEvent::Status(0x100));
            assert_eq!(events.last(), Some(&ReplyEvent::Object(vec![])));
        }
    }

    #[test]
    fn object_with_failure_status_is_consumed_and_dropped() {
        for version in [Version::V1, Version::V2, Version::V3] {
            let mut bytes = Vec::new();
            encode_header(Token::DONE, version.number(), &mut bytes);
            encode_header(Token::STAT, 0x100, &mut bytes);
            encode_header(Token::SERR, 0, &mut bytes);
            encode_header(Token::SOUT, 0, &mut bytes);
            // Not even valid LZO: it must not be decompressed.
            encode_bulk(Token::DOTO, b"not an object", &mut bytes).unwrap();
            let events = reply_events(&bytes, version, true);
            assert_eq!(events.last(), Some(&ReplyEvent::Object(vec![])));
        }
    }

    #[test]
    fn malformed_replies() {
        let err = |bytes: &[u8], version| {
            replies(bytes, usize::MAX, version, true, Limits::default()).unwrap_err()
        };
        assert_eq!(
            err(b"DONE00000001", Version::V2),
            Error::VersionMismatch {
                expected: 2,
                got: 1
            }
        );
        assert_eq!(
            err(b"DONE00000000", Version::V1),
            Error::VersionMismatch {
                expected: 1,
                got: 0
            }
        );
        assert_eq!(
            err(b"DONE00000001SERR00000000", Version::V1),
            Error::UnexpectedToken {
                expected: "STAT",
                got: *b"SERR"
            }
        );
        assert!(matches!(
            err(b"DONE00000001STATzzzzzzzz", Version::V1),
            Error::BadValue { .. }
        ));
        assert!(matches!(
            err(b"DONE00000002STAT00000000SERR00000002ab", Version::V2),
            Error::Lzo(_)
        ));
        // v3 success with deps expected but something else after DOTO.
        assert_eq!(
            err(
                b"DONE00000003STAT00000000SERR00000000SOUT00000000DOTO00000000DONE00000003",
                Version::V3
            ),
            Error::UnexpectedToken {
                expected: "DOTD",
                got: *b"DONE"
            }
        );
    }

    #[test]
    fn reply_limits() {
        let r = reply(0);
        let mut bytes = Vec::new();
        encode_reply(Version::V2, &r, &mut bytes).unwrap();
        let l = Limits {
            max_body: 10,
            ..Limits::default()
        };
        assert!(matches!(
            replies(&bytes, 1, Version::V2, false, l),
            Err(Error::TooLarge { what: "SERR", .. })
        ));
        let l = Limits {
            max_decompressed: r.object.len() - 1,
            ..Limits::default()
        };
        assert!(matches!(
            replies(&bytes, 1, Version::V2, false, l),
            Err(Error::TooLarge { what: "DOTO", .. })
        ));
        let mut v1 = Vec::new();
        encode_reply(Version::V1, &r, &mut v1).unwrap();
        assert!(matches!(
            replies(&v1, usize::MAX, Version::V1, false, l),
            Err(Error::TooLarge { what: "DOTO", .. })
        ));
    }

    #[test]
    fn decoders_never_panic_on_noise() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let valid = [
            v12_request(Version::V1, &gcc(), b"int x;\n"),
            v12_request(Version::V2, &gcc(), &b"int x;\n".repeat(20)),
            v3_request("/w", &gcc(), &sample_files()),
        ];
        let mut reply_bytes = Vec::new();
        encode_reply(Version::V3, &reply(0), &mut reply_bytes).unwrap();
        let small = Limits {
            max_argc: 64,
            max_string: 4096,
            max_body: 1 << 20,
            max_decompressed: 1 << 20,
            max_header: 1 << 16,
        };
        for i in 0..3000 {
            // Mutate valid messages: noise alone rarely gets past the first token.
            let base = if i % 4 == 3 {
                &reply_bytes
            } else {
                &valid[i % 3]
            };
            let mut bytes = base.clone();
            for _ in 0..(next() % 3 + 1) {
                let at = (next() as usize) % bytes.len();
                let v = next() as u8;
                // Prefer digits so headers stay parseable and lengths change.
                bytes[at] = if v & 1 == 0 {
                    b"0123456789abcdef"[usize::from(v >> 4)]
                } else {
                    v
                };
            }
            let chunk = 1 + (next() % 40) as usize;
            let _ = requests(&bytes, chunk, small);
            let _ = replies(&bytes, chunk, Version::V3, true, small);
            let noise: Vec<u8> = (0..(next() % 200)).map(|_| next() as u8).collect();
            let _ = requests(&noise, chunk, small);
            let _ = replies(&noise, chunk, Version::V2, false, small);
        }
    }
}
