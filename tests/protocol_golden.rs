//! Golden bytes: real distcc 3.4 conversations captured on the wire, transcribed from
//! the hex dumps in `/work/shared/docs/distcc-observed.md` section 2 into
//! `tests/fixtures/*.hex` (offset + hex bytes per line; the file name names the
//! section). Our decoders must read them and our encoders must reproduce them byte for
//! byte, which also proves that our LZO1X compressor is distcc's `lzo1x_1_compress`.
//!
//! Only the protocol module is exercised here; sockets and processes are not.

use std::path::Path;

use swarmcc::protocol::message::{encode_files, FileEntry};
use swarmcc::protocol::{
    encode_reply, encode_request_header, encode_source, lzo, Error, Limits, Reply, ReplyDecoder,
    ReplyEvent, RequestDecoder, RequestEvent, Version,
};

/// Reads a fixture: `#` lines are comments, every other line is an 8-digit offset and
/// up to 16 hex bytes. Offsets are checked so a dropped line cannot go unnoticed.
fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut bytes = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let mut fields = line.split_whitespace();
        let offset = usize::from_str_radix(fields.next().unwrap(), 16).unwrap();
        assert_eq!(offset, bytes.len(), "{name}: offset of line {line:?}");
        bytes.extend(fields.map(|h| u8::from_str_radix(h, 16).unwrap()));
    }
    bytes
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Decodes a whole message once in one piece and once byte by byte; both must agree,
/// complete, and consume every byte.
fn decode_all<E: PartialEq + std::fmt::Debug>(
    bytes: &[u8],
    mut new: impl FnMut() -> Box<dyn FnMut(&[u8]) -> Result<Option<(E, usize)>, Error>>,
) -> Vec<E> {
    let mut runs = Vec::new();
    for chunk in [bytes.len(), 1] {
        let mut decode = new();
        let mut buf = Vec::new();
        let mut fed = 0;
        let mut events = Vec::new();
        loop {
            match decode(&buf).unwrap() {
                Some((event, used)) => {
                    buf.drain(..used);
                    events.push(event);
                }
                None if fed == bytes.len() => break,
                None => {
                    let n = chunk.min(bytes.len() - fed);
                    buf.extend_from_slice(&bytes[fed..fed + n]);
                    fed += n;
                }
            }
        }
        assert!(buf.is_empty(), "{} bytes not consumed", buf.len());
        runs.push(events);
    }
    let drip = runs.pop().unwrap();
    let whole = runs.pop().unwrap();
    assert_eq!(whole, drip, "byte-by-byte decoding differs");
    whole
}

fn request_events(bytes: &[u8]) -> Vec<RequestEvent> {
    let events = decode_all(bytes, || {
        let mut d = RequestDecoder::new(Limits::default());
        Box::new(move |b| d.decode(b))
    });
    let mut d = RequestDecoder::new(Limits::default());
    let mut at = 0;
    while let Some((_, used)) = d.decode(&bytes[at..]).unwrap() {
        at += used;
    }
    assert!(d.is_complete());
    events
}

fn reply_events(bytes: &[u8], version: Version, expect_deps: bool) -> Vec<ReplyEvent> {
    let events = decode_all(bytes, || {
        let mut d = ReplyDecoder::new(version, Limits::default(), expect_deps);
        Box::new(move |b| d.decode(b))
    });
    let mut d = ReplyDecoder::new(version, Limits::default(), expect_deps);
    let mut at = 0;
    while let Some((_, used)) = d.decode(&bytes[at..]).unwrap() {
        at += used;
    }
    assert!(d.is_complete());
    events
}

fn x_argv() -> Vec<String> {
    args(&["x86_64-linux-gnu-gcc", "-c", "x.c", "-o", "x.o"])
}

/// The v1 `DOTI` body of section 2.3: 160 bytes of cpp output for `x.c`.
fn v1_source() -> Vec<u8> {
    match &request_events(&fixture("distcc-observed-2.3-v1-request.hex"))[1] {
        RequestEvent::Source(s) => s.clone(),
        other => panic!("expected Source, got {other:?}"),
    }
}

/// The v1 `DOTO` body of section 2.3: the 0x458-byte object.
fn v1_object() -> Vec<u8> {
    match &reply_events(
        &fixture("distcc-observed-2.3-v1-reply.hex"),
        Version::V1,
        false,
    )[4]
    {
        ReplyEvent::Object(o) => o.clone(),
        other => panic!("expected Object, got {other:?}"),
    }
}

// ---- Section 2.3: protocol 1 ----

#[test]
fn v1_request_2_3() {
    let wire = fixture("distcc-observed-2.3-v1-request.hex");
    assert_eq!(wire.len(), 286);
    let source = v1_source();
    assert_eq!(source.len(), 0xa0);
    assert!(source.starts_with(b"# 0 \"x.c\"\n# 0 \"<built-in>\"\n"));
    assert!(source.ends_with(b"int add(int a, int b) { return a + b; }\n"));
    assert_eq!(
        request_events(&wire),
        vec![
            RequestEvent::Header {
                version: Version::V1,
                cwd: None,
                argv: x_argv()
            },
            RequestEvent::Source(source.clone()),
        ]
    );

    let mut out = Vec::new();
    encode_request_header(Version::V1, None, &x_argv(), &mut out).unwrap();
    // The client sent this first part (114 bytes) while cpp was still running.
    assert_eq!(out.len(), 114);
    encode_source(Version::V1, &source, &mut out).unwrap();
    assert_eq!(out, wire);
}

#[test]
fn v1_reply_2_3() {
    let wire = fixture("distcc-observed-2.3-v1-reply.hex");
    assert_eq!(wire.len(), 1172);
    assert!(
        wire.starts_with(b"DONE00000001STAT00000000SERR00000000SOUT00000000DOTO00000458\x7fELF")
    );
    let object = v1_object();
    assert_eq!(object.len(), 0x458);
    assert!(object.starts_with(b"\x7fELF\x02\x01\x01"));
    assert_eq!(
        reply_events(&wire, Version::V1, false),
        vec![
            ReplyEvent::Started,
            ReplyEvent::Status(0),
            ReplyEvent::Stderr(vec![]),
            ReplyEvent::Stdout(vec![]),
            ReplyEvent::Object(object.clone()),
        ]
    );
    let mut out = Vec::new();
    let reply = Reply {
        object,
        ..Reply::default()
    };
    encode_reply(Version::V1, &reply, &mut out).unwrap();
    assert_eq!(out, wire);
}

// ---- Section 2.4: protocol 2 (LZO) ----

#[test]
fn v2_request_2_4() {
    let wire = fixture("distcc-observed-2.4-v2-request.hex");
    assert_eq!(wire.len(), 262);
    let source = v1_source();
    assert_eq!(
        request_events(&wire),
        vec![
            RequestEvent::Header {
                version: Version::V2,
                cwd: None,
                argv: x_argv()
            },
            RequestEvent::Source(source.clone()),
        ]
    );
    // The DOTI body on the wire: 0x88 bytes of LZO1X-1 ending in the 11 00 00 marker.
    let lzo_body = &wire[114 + 12..];
    assert_eq!(&wire[114..126], b"DOTI00000088");
    assert_eq!(lzo_body.len(), 0x88);
    assert!(lzo_body.ends_with(&[0x11, 0, 0]));
    assert_eq!(lzo::decompress(lzo_body, 1 << 20).unwrap(), source);
    assert_eq!(lzo::compress(&source), lzo_body);

    let mut out = Vec::new();
    encode_request_header(Version::V2, None, &x_argv(), &mut out).unwrap();
    encode_source(Version::V2, &source, &mut out).unwrap();
    assert_eq!(out, wire);
}

#[test]
fn v2_reply_2_4() {
    let wire = fixture("distcc-observed-2.4-v2-reply.hex");
    assert_eq!(wire.len(), 585);
    let object = v1_object();
    // Empty SERR and SOUT carry no LZO bytes at all.
    assert!(wire.starts_with(b"DONE00000002STAT00000000SERR00000000SOUT00000000DOTO0000020d"));
    let lzo_body = &wire[60..];
    assert_eq!(lzo_body.len(), 0x20d);
    assert_eq!(lzo::decompress(lzo_body, 1 << 20).unwrap(), object);
    assert_eq!(lzo::compress(&object), lzo_body);
    assert_eq!(
        reply_events(&wire, Version::V2, false),
        vec![
            ReplyEvent::Started,
            ReplyEvent::Status(0),
            ReplyEvent::Stderr(vec![]),
            ReplyEvent::Stdout(vec![]),
            ReplyEvent::Object(object.clone()),
        ]
    );
    let mut out = Vec::new();
    let reply = Reply {
        object,
        ..Reply::default()
    };
    encode_reply(Version::V2, &reply, &mut out).unwrap();
    assert_eq!(out, wire);
}

// ---- Section 2.5: protocol 3 (pump mode) ----

/// Many `../` then an absolute path, as distcc sends system include directories.
fn updirs(n: usize, tail: &str) -> String {
    format!("{}{tail}", "../".repeat(n))
}

#[test]
fn v3_request_2_5() {
    let wire = fixture("distcc-observed-2.5-v3-request.hex");
    assert_eq!(wire.len(), 784);
    let y_c = b"#include \"hdr.h\"\nint twice(int a) { return a * TWO; }\n".to_vec();
    assert_eq!(y_c.len(), 54); // the server logged "decompressed 59 bytes to 54 bytes"
                               // The dump's ASCII column shows `$W` for `/tmp/dcc`; the hex bytes are the truth.
    let files = vec![
        FileEntry::File {
            name: "/tmp/dcc/w/y.c".into(),
            contents: y_c,
        },
        FileEntry::File {
            name: "/tmp/dcc/w/hdr.h".into(),
            contents: b"#define TWO 2\n".to_vec(),
        },
        FileEntry::Link {
            name: "/usr/lib/gcc/x86_64-linux-gnu/12/include".into(),
            target: updirs(26, "usr/lib/gcc/x86_64-linux-gnu/12/include"),
        },
        FileEntry::Link {
            name: "/usr/local/include".into(),
            target: updirs(23, "usr/local/include"),
        },
        FileEntry::Link {
            name: "/usr/include".into(),
            target: updirs(22, "usr/include"),
        },
        FileEntry::File {
            name: "/tmp/dcc/w/forcing_technique_271828".into(),
            contents: vec![],
        },
    ];
    // Link lengths as the dump's headers give them: 0x75, 0x56, 0x4d.
    let link_lens: Vec<usize> = files
        .iter()
        .filter_map(|f| match f {
            FileEntry::Link { target, .. } => Some(target.len()),
            _ => None,
        })
        .collect();
    assert_eq!(link_lens, [0x75, 0x56, 0x4d]);

    let argv = args(&["x86_64-linux-gnu-gcc", "-c", "y.c", "-o", "y.o"]);
    let mut expected = vec![RequestEvent::Header {
        version: Version::V3,
        cwd: Some("/tmp/dcc/w".into()),
        argv: argv.clone(),
    }];
    expected.extend(files.iter().cloned().map(RequestEvent::File));
    expected.push(RequestEvent::FilesDone);
    assert_eq!(request_events(&wire), expected);

    // The include server compressed the FILE bodies with lzo1x_1 as well, so
    // re-encoding reproduces the request exactly.
    let mut out = Vec::new();
    encode_request_header(Version::V3, Some("/tmp/dcc/w"), &argv, &mut out).unwrap();
    encode_files(&files, &mut out).unwrap();
    assert_eq!(out, wire);
}

#[test]
fn v3_reply_2_5() {
    let wire = fixture("distcc-observed-2.5-v3-reply.hex");
    assert_eq!(wire.len(), 612);
    let events = reply_events(&wire, Version::V3, true);
    assert_eq!(events.len(), 6);
    assert_eq!(events[1], ReplyEvent::Status(0));
    let ReplyEvent::Object(object) = &events[4] else {
        panic!("expected Object, got {:?}", events[4]);
    };
    // distccd logged "send 1104 byte file ... with token DOTO".
    assert_eq!(object.len(), 1104);
    assert!(object.starts_with(b"\x7fELF"));
    // The dump's repr shows ` y.o: y.c hdr.h\n\x11\x00\x00`, but the leading space is
    // the LZO opcode 0x20 (15 literals follow): the deps file is 15 bytes, as distccd
    // logged ("compressed 15 bytes to 19 bytes"), and has no leading space.
    assert_eq!(&wire[wire.len() - 19..wire.len() - 18], b" ");
    assert_eq!(events[5], ReplyEvent::Deps(b"y.o: y.c hdr.h\n".to_vec()));

    let reply = Reply {
        object: object.clone(),
        deps: Some(b"y.o: y.c hdr.h\n".to_vec()),
        ..Reply::default()
    };
    let mut out = Vec::new();
    encode_reply(Version::V3, &reply, &mut out).unwrap();
    assert_eq!(out, wire);

    // A client that did not ask for deps stops after DOTO and leaves DOTD unread.
    let events = reply_events(&wire[..wire.len() - (12 + 0x13)], Version::V3, false);
    assert_eq!(events.len(), 5);
}

// ---- Section 2.6: a remote compile error (protocol 1) ----

#[test]
fn error_request_2_6() {
    let wire = fixture("distcc-observed-2.6-error-request.hex");
    assert_eq!(wire.len(), 279);
    let argv = args(&["x86_64-linux-gnu-gcc", "-c", "bad.c", "-o", "bad.o"]);
    let events = request_events(&wire);
    assert_eq!(
        events[0],
        RequestEvent::Header {
            version: Version::V1,
            cwd: None,
            argv: argv.clone()
        }
    );
    let RequestEvent::Source(source) = &events[1] else {
        panic!("expected Source, got {:?}", events[1]);
    };
    assert_eq!(source.len(), 0x95);
    assert!(source.ends_with(b"int f(void) { return 1 }\n"));
    let mut out = Vec::new();
    encode_request_header(Version::V1, None, &argv, &mut out).unwrap();
    encode_source(Version::V1, source, &mut out).unwrap();
    assert_eq!(out, wire);
}

#[test]
fn error_reply_2_6() {
    let wire = fixture("distcc-observed-2.6-error-reply.hex");
    assert_eq!(wire.len(), 145);
    let stderr = "bad.c: In function \u{2018}f\u{2019}:\n\
                  bad.c:1:23: error: expected \u{2018};\u{2019} before \u{2018}}\u{2019} token\n"
        .as_bytes()
        .to_vec();
    assert_eq!(stderr.len(), 0x55);
    assert_eq!(
        reply_events(&wire, Version::V1, false),
        vec![
            ReplyEvent::Started,
            ReplyEvent::Status(0x100),
            ReplyEvent::Stderr(stderr.clone()),
            ReplyEvent::Stdout(vec![]),
            ReplyEvent::Object(vec![]),
        ]
    );
    let reply = Reply {
        status: 0x100,
        stderr,
        ..Reply::default()
    };
    let mut out = Vec::new();
    encode_reply(Version::V1, &reply, &mut out).unwrap();
    assert_eq!(out, wire);
}

// ---- Section 2.7: hand-made requests ----

#[test]
fn hand_made_requests_2_7() {
    let first_error = |bytes: &[u8]| {
        let mut d = RequestDecoder::new(Limits::default());
        let mut at = 0;
        loop {
            match d.decode(&bytes[at..]) {
                Ok(Some((_, used))) => at += used,
                Ok(None) => return None,
                Err(e) => return Some(e),
            }
        }
    };
    // "HELLO WORLD!": distccd reports derailment (and then blocks reading context).
    assert!(matches!(
        first_error(b"HELLO WORLD!"),
        Some(Error::UnexpectedToken {
            expected: "DIST",
            ..
        })
    ));
    assert_eq!(
        first_error(b"DIST00000004"),
        Some(Error::UnsupportedVersion(4))
    );
    // distccd's child segfaults on this one.
    assert_eq!(
        first_error(b"DIST00000001ARGC00000000"),
        Some(Error::EmptyArgv)
    );
    // Uppercase DOTI length, which distccd accepted.
    let mut ok = b"DIST00000001ARGC00000001ARGV00000003gccDOTI0000000A".to_vec();
    ok.extend_from_slice(b"int x=1;\n\n");
    assert_eq!(first_error(&ok), None);
    // One byte short: not an error, just not complete yet.
    assert_eq!(first_error(&ok[..ok.len() - 1]), None);
}
