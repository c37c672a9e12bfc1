//! Property tests (proptest) for the parsers that face untrusted or hand-written input:
//! the protocol encoders and incremental decoders, LZO1X, the host-list grammar, the
//! argument analyser, the server's argument check, and the farm cache's key and
//! messages.
//!
//! The fuzz targets in `fuzz/` explore the same code with coverage guidance; these run
//! with every `cargo test` and keep to a few seconds. The bugs fuzzing found are pinned
//! by tests at the end of their sections (both fixed).

use std::cell::RefCell;
use std::net::Ipv6Addr;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use swarmcc::args::{classify, split_response_text, Decision, LocalReason, RemoteJob};
use swarmcc::hosts::{self, HostKind, HostSpec};
use swarmcc::protocol::{
    encode_files, encode_reply, encode_request_header, encode_source, lzo, Error, FileEntry,
    Limits, Reply, ReplyDecoder, ReplyEvent, RequestDecoder, RequestEvent, Version,
};
use swarmcc::server::whitelist::check_arguments;

// ---------------------------------------------------------------------------------------
// Feeding decoders

/// Events decoded, whether the decoder completed, and the bytes it did not consume.
type Decoded<E> = Result<(Vec<E>, bool, usize), Error>;

/// Feeds `bytes` to an incremental decoder the way `conn` does, `chunks` bytes at a
/// time (cycled; `usize::MAX` delivers everything at once): append, decode until it
/// asks for more, drop exactly the bytes it used.
fn feed<E>(
    bytes: &[u8],
    chunks: &[usize],
    mut decode: impl FnMut(&[u8]) -> Result<Option<(E, usize)>, Error>,
    mut complete: impl FnMut() -> bool,
) -> Decoded<E> {
    let mut buf = Vec::new();
    let mut fed = 0;
    let mut events = Vec::new();
    let mut sizes = chunks.iter().cycle();
    loop {
        if complete() {
            return Ok((events, true, buf.len() + bytes.len() - fed));
        }
        match decode(&buf)? {
            Some((event, used)) => {
                assert!(used <= buf.len(), "used {used} of {} bytes", buf.len());
                buf.drain(..used);
                events.push(event);
            }
            None if fed == bytes.len() => return Ok((events, false, buf.len())),
            None => {
                let n = (*sizes.next().unwrap()).min(bytes.len() - fed);
                buf.extend_from_slice(&bytes[fed..fed + n]);
                fed += n;
            }
        }
    }
}

fn requests(bytes: &[u8], chunks: &[usize], limits: Limits) -> Decoded<RequestEvent> {
    let d = RefCell::new(RequestDecoder::new(limits));
    feed(
        bytes,
        chunks,
        |b| d.borrow_mut().decode(b),
        || d.borrow().is_complete(),
    )
}

fn replies(
    bytes: &[u8],
    chunks: &[usize],
    version: Version,
    deps: bool,
    limits: Limits,
) -> Decoded<ReplyEvent> {
    let d = RefCell::new(ReplyDecoder::new(version, limits, deps));
    feed(
        bytes,
        chunks,
        |b| d.borrow_mut().decode(b),
        || d.borrow().is_complete(),
    )
}

const SMALL: Limits = Limits {
    max_argc: 8,
    max_string: 64,
    max_body: 4096,
    max_decompressed: 16 * 1024,
    max_header: 1024,
};

// ---------------------------------------------------------------------------------------
// Strategies

/// How bytes arrive: all at once, one at a time, or in random chunk sizes.
fn chunking() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![usize::MAX]),
        Just(vec![1]),
        vec(1usize..80, 1..12),
    ]
}

/// Bulk content: random bytes, or a repeated pattern that LZO really compresses.
fn content(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..max),
        (vec(any::<u8>(), 1..24), 1..max / 8).prop_map(|(pattern, n)| pattern.repeat(n)),
    ]
}

/// An argument as the wire can carry it: any text without NUL.
fn arg() -> impl Strategy<Value = String> {
    "[^\\x00]{0,24}"
}

fn argv() -> impl Strategy<Value = Vec<String>> {
    vec(arg(), 1..10)
}

fn v12() -> impl Strategy<Value = Version> {
    select(vec![Version::V1, Version::V2])
}

fn file_entry() -> impl Strategy<Value = FileEntry> {
    prop_oneof![
        ("/[^\\x00]{0,20}", content(600))
            .prop_map(|(name, contents)| FileEntry::File { name, contents }),
        ("/[^\\x00]{0,20}", arg()).prop_map(|(name, target)| FileEntry::Link { name, target }),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    (
        prop_oneof![Just(0u32), any::<u32>()],
        content(600),
        content(200),
        content(1500),
        proptest::option::of(content(300)),
    )
        .prop_map(|(status, stderr, stdout, object, deps)| Reply {
            status,
            stderr,
            stdout,
            object,
            deps,
        })
}

/// Flips a few bytes of `bytes`, preferring hex digits so lengths change but headers
/// stay parseable.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)]) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    for &(at, v) in edits {
        let at = at % bytes.len();
        bytes[at] = if v & 1 == 0 {
            b"0123456789abcdef"[usize::from(v >> 4)]
        } else {
            v
        };
    }
    bytes
}

// ---------------------------------------------------------------------------------------
// Protocol round trips

fn v12_request(version: Version, argv: &[String], source: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request_header(version, None, argv, &mut out).unwrap();
    encode_source(version, source, &mut out).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn v1_v2_requests_round_trip(
        version in v12(),
        argv in argv(),
        source in content(3000),
        chunks in chunking(),
        trailing in vec(any::<u8>(), 0..20),
    ) {
        let mut bytes = v12_request(version, &argv, &source);
        let body = bytes[header_len(version, &argv) + 12..].to_vec();
        bytes.extend_from_slice(&trailing);
        let (events, complete, left) = requests(&bytes, &chunks, Limits::default()).unwrap();
        prop_assert!(complete);
        prop_assert_eq!(left, trailing.len(), "trailing bytes must stay unconsumed");
        prop_assert_eq!(
            events,
            vec![
                RequestEvent::Header { version, cwd: None, argv: argv.clone() },
                RequestEvent::Source(source.clone()),
            ]
        );
        // v2 bodies really are LZO streams (empty content excepted), v1 bodies the source.
        if version == Version::V1 || source.is_empty() {
            prop_assert_eq!(body, source);
        } else {
            prop_assert_eq!(lzo::decompress(&body, source.len()).unwrap(), source);
        }
    }

    #[test]
    fn v3_requests_round_trip(
        cwd in "/[^\\x00]{0,30}",
        argv in argv(),
        files in vec(file_entry(), 0..5),
        chunks in chunking(),
    ) {
        let mut bytes = Vec::new();
        encode_request_header(Version::V3, Some(&cwd), &argv, &mut bytes).unwrap();
        encode_files(&files, &mut bytes).unwrap();
        let (events, complete, left) = requests(&bytes, &chunks, Limits::default()).unwrap();
        prop_assert!(complete);
        prop_assert_eq!(left, 0);
        let mut expected = vec![RequestEvent::Header {
            version: Version::V3,
            cwd: Some(cwd),
            argv,
        }];
        expected.extend(files.into_iter().map(RequestEvent::File));
        expected.push(RequestEvent::FilesDone);
        prop_assert_eq!(events, expected);
    }

    #[test]
    fn replies_round_trip(
        version in select(vec![Version::V1, Version::V2, Version::V3]),
        reply in reply(),
        expect_deps in any::<bool>(),
        chunks in chunking(),
    ) {
        // A v3 client that expects a .d gets one from an encoder that has one.
        let wants_deps = version == Version::V3 && expect_deps && reply.status == 0;
        prop_assume!(!wants_deps || reply.deps.is_some());
        let mut bytes = Vec::new();
        encode_reply(version, &reply, &mut bytes).unwrap();
        let (events, complete, left) =
            replies(&bytes, &chunks, version, expect_deps, Limits::default()).unwrap();
        prop_assert!(complete);
        let ok = reply.status == 0;
        let mut expected = vec![
            ReplyEvent::Started,
            ReplyEvent::Status(reply.status),
            ReplyEvent::Stderr(reply.stderr.clone()),
            ReplyEvent::Stdout(reply.stdout.clone()),
            ReplyEvent::Object(if ok { reply.object.clone() } else { Vec::new() }),
        ];
        if wants_deps {
            expected.push(ReplyEvent::Deps(reply.deps.clone().unwrap()));
        }
        prop_assert_eq!(events, expected);
        // A .d sent but not expected stays in the buffer for the caller to see.
        let unexpected_deps = version == Version::V3 && ok && !expect_deps && reply.deps.is_some();
        prop_assert_eq!(left > 0, unexpected_deps);
    }

    #[test]
    fn decompressed_size_limit_is_exact(
        version in v12(),
        source in content(3000).prop_filter("non-empty", |s| !s.is_empty()),
    ) {
        let bytes = v12_request(version, &["cc".to_string()], &source);
        let at = |max_decompressed| Limits { max_decompressed, ..Limits::default() };
        let whole = [usize::MAX];
        prop_assert!(requests(&bytes, &whole, at(source.len())).is_ok());
        let refused = requests(&bytes, &whole, at(source.len() - 1));
        prop_assert!(
            matches!(refused, Err(Error::TooLarge { what: "DOTI", .. })),
            "{:?}", refused.map(|r| r.1)
        );
    }
}

/// Length of the encoded request header (`DIST` … last `ARGV`).
fn header_len(version: Version, argv: &[String]) -> usize {
    let mut out = Vec::new();
    encode_request_header(version, None, argv, &mut out).unwrap();
    out.len()
}

// ---------------------------------------------------------------------------------------
// Decoders on hostile input

/// Every event within `limits`, whole and chunked delivery agree.
fn check_request_noise(bytes: &[u8], chunks: &[usize]) -> Result<(), TestCaseError> {
    let whole = requests(bytes, &[usize::MAX], SMALL);
    let chunked = requests(bytes, chunks, SMALL);
    prop_assert_eq!(&whole, &chunked, "whole and chunked delivery disagree");
    if let Ok((events, _, _)) = whole {
        for e in events {
            match e {
                RequestEvent::Header { argv, cwd, .. } => {
                    prop_assert!(!argv.is_empty() && argv.len() <= SMALL.max_argc as usize);
                    prop_assert!(argv.iter().chain(&cwd).all(|a| a.len() <= 64));
                }
                RequestEvent::Source(s) => prop_assert!(s.len() <= SMALL.max_decompressed),
                RequestEvent::File(FileEntry::File { name, contents }) => {
                    prop_assert!(!name.is_empty() && name.len() <= 64);
                    prop_assert!(contents.len() <= SMALL.max_decompressed);
                }
                RequestEvent::File(FileEntry::Link { name, target }) => {
                    prop_assert!(!name.is_empty() && name.len() <= 64 && target.len() <= 64);
                }
                RequestEvent::FilesDone => {}
            }
        }
    }
    Ok(())
}

fn check_reply_noise(
    bytes: &[u8],
    chunks: &[usize],
    version: Version,
    deps: bool,
) -> Result<(), TestCaseError> {
    let whole = replies(bytes, &[usize::MAX], version, deps, SMALL);
    let chunked = replies(bytes, chunks, version, deps, SMALL);
    prop_assert_eq!(&whole, &chunked, "whole and chunked delivery disagree");
    if let Ok((events, _, _)) = whole {
        prop_assert!(events.len() <= 6);
        for e in events {
            if let ReplyEvent::Stderr(b)
            | ReplyEvent::Stdout(b)
            | ReplyEvent::Object(b)
            | ReplyEvent::Deps(b) = e
            {
                prop_assert!(b.len() <= SMALL.max_decompressed);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoders_survive_arbitrary_bytes(
        bytes in vec(any::<u8>(), 0..300),
        chunks in chunking(),
        version in select(vec![Version::V1, Version::V2, Version::V3]),
        deps in any::<bool>(),
    ) {
        check_request_noise(&bytes, &chunks)?;
        check_reply_noise(&bytes, &chunks, version, deps)?;
    }

    #[test]
    fn decoders_survive_mutated_messages(
        version in select(vec![Version::V1, Version::V2, Version::V3]),
        argv in vec("[a-z.-]{0,10}", 1..6),
        files in vec(file_entry(), 0..3),
        source in content(800),
        reply in reply(),
        edits in vec((any::<usize>(), any::<u8>()), 1..4),
        chunks in chunking(),
    ) {
        let mut request = Vec::new();
        encode_request_header(version, Some("/w"), &argv, &mut request).unwrap();
        if version == Version::V3 {
            encode_files(&files, &mut request).unwrap();
        } else {
            encode_source(version, &source, &mut request).unwrap();
        }
        check_request_noise(&mutate(request, &edits), &chunks)?;
        let mut answer = Vec::new();
        encode_reply(version, &reply, &mut answer).unwrap();
        check_reply_noise(&mutate(answer, &edits), &chunks, version, true)?;
    }
}

// ---------------------------------------------------------------------------------------
// LZO1X

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn lzo_round_trips_with_an_exact_bound(data in content(5000)) {
        let c = lzo::compress(&data);
        prop_assert!(c.ends_with(&[0x11, 0, 0]));
        prop_assert_eq!(lzo::decompress(&c, data.len()).unwrap(), data.clone());
        if let Some(less) = data.len().checked_sub(1) {
            let refused = matches!(lzo::decompress(&c, less), Err(Error::TooLarge { .. }));
            prop_assert!(refused, "limit {} accepted", less);
        }
    }

    #[test]
    fn lzo_decompress_is_bounded_on_arbitrary_input(
        data in vec(any::<u8>(), 0..200),
        limit in 0usize..5000,
    ) {
        check_bounded(&data, limit)?;
    }

    #[test]
    fn lzo_decompress_is_bounded_on_mutated_streams(
        data in content(2000),
        edits in vec((any::<usize>(), any::<u8>()), 1..4),
        limit in 0usize..4000,
    ) {
        let stream = lzo::compress(&data);
        let mut mutated = stream.clone();
        for (at, v) in edits {
            let at = at % mutated.len();
            mutated[at] = v;
        }
        check_bounded(&mutated, limit)?;
    }
}

fn check_bounded(stream: &[u8], limit: usize) -> Result<(), TestCaseError> {
    match lzo::decompress(stream, limit) {
        Ok(out) => {
            prop_assert!(out.len() <= limit, "{} bytes out, limit {limit}", out.len());
            // Whatever decodes, our compressor round-trips.
            prop_assert_eq!(
                lzo::decompress(&lzo::compress(&out), out.len()).unwrap(),
                out
            );
        }
        Err(Error::TooLarge { limit: l, .. }) => prop_assert_eq!(l, limit as u64),
        Err(Error::Lzo(_)) => {}
        Err(other) => prop_assert!(false, "unexpected error {other:?}"),
    }
    Ok(())
}

/// Found by `fuzz/fuzz_targets/lzo_decompress.rs` (now fixed): an end-of-stream marker
/// (M4, distance 0) may carry a length extension that liblzo2's `lzo1x_decompress_safe`
/// reads and ignores (it returns an empty output for this stream); our decoder took the
/// length for output and refused it as a decompression bomb before seeing the marker.
#[test]
fn lzo_end_marker_with_long_length() {
    // 10: M4 with length continued; 00: +255; 01: ends the length; 00 00: distance 0.
    let stream = [0x10, 0x00, 0x01, 0x00, 0x00];
    assert_eq!(lzo::decompress(&stream, 0), Ok(Vec::new()));
    // Same after a literal: one byte out, whatever the bogus length says.
    let stream = [0x12, b'a', 0x10, 0x00, 0x01, 0x00, 0x00];
    assert_eq!(lzo::decompress(&stream, 1), Ok(b"a".to_vec()));
}

// ---------------------------------------------------------------------------------------
// Host lists

/// A host spec as text, and the `HostSpec` it must parse to.
#[derive(Debug, Clone)]
struct GenSpec {
    text: String,
    want: HostSpec,
}

fn host_name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._-]{0,12}".prop_filter("that is the local machine", |n| n != "localhost")
}

fn ipv6() -> impl Strategy<Value = String> {
    (any::<[u16; 8]>(), proptest::option::of("[a-z0-9]{1,5}")).prop_map(|(seg, zone)| {
        let ip = Ipv6Addr::from(seg).to_string();
        match zone {
            Some(z) => format!("{ip}%{z}"),
            None => ip,
        }
    })
}

/// Options: a subset in any order (`,cpp` only with `,lzo`), with their flags.
fn options() -> impl Strategy<Value = (String, bool, bool, bool, Option<String>)> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(prop_oneof![Just(String::new()), "[a-z][a-z0-9.]{0,8}"]),
        any::<u64>(),
    )
        .prop_map(|(lzo, cpp, down, auth, order)| {
            let cpp = cpp && lzo;
            let mut opts: Vec<String> = Vec::new();
            if lzo {
                opts.push("lzo".into());
            }
            if cpp {
                opts.push("cpp".into());
            }
            if down {
                opts.push("down".into());
            }
            match auth.as_deref() {
                Some("") => opts.push("auth".into()),
                Some(name) => opts.push(format!("auth={name}")),
                None => {}
            }
            // A deterministic shuffle driven by `order`.
            let n = opts.len();
            for i in (1..n).rev() {
                opts.swap(i, (order >> (i * 4)) as usize % (i + 1));
            }
            let text: String = opts.iter().map(|o| format!(",{o}")).collect();
            (text, lzo, cpp, down, auth)
        })
}

fn limit_text() -> impl Strategy<Value = Option<(char, u32)>> {
    proptest::option::of((select(vec!['/', '=']), 1u32..2000))
}

/// How a generated limit is written: `/N`, `=N` or nothing.
fn limit_suffix(limit: Option<(char, u32)>) -> String {
    limit
        .map(|(sep, n)| format!("{sep}{n}"))
        .unwrap_or_default()
}

/// The spec `text` and what it must parse to: `kind` with the generated limit (or
/// `default_limit`) and options.
fn gen_spec(
    text: String,
    kind: HostKind,
    limit: Option<(char, u32)>,
    default_limit: u32,
    (lzo, cpp, down, auth): (bool, bool, bool, Option<String>),
) -> GenSpec {
    GenSpec {
        want: HostSpec {
            spec: text.clone(),
            kind,
            limit: limit.map_or(default_limit, |(_, n)| n),
            lzo,
            cpp,
            down,
            auth,
        },
        text,
    }
}

fn tcp_spec() -> impl Strategy<Value = GenSpec> {
    (
        prop_oneof![
            host_name().prop_map(|h| (h.clone(), h)),
            ipv6().prop_map(|a| (format!("[{a}]"), a))
        ],
        proptest::option::of(1u16..=65535),
        limit_text(),
        any::<bool>(),
        options(),
    )
        .prop_map(
            |((written, host), port, limit, limit_first, (opts, lzo, cpp, down, auth))| {
                let lim = limit_suffix(limit);
                let prt = port.map(|p| format!(":{p}")).unwrap_or_default();
                let text = if limit_first {
                    format!("{written}{lim}{prt}{opts}")
                } else {
                    format!("{written}{prt}{lim}{opts}")
                };
                let port = port.unwrap_or(hosts::DEFAULT_PORT);
                let kind = HostKind::Tcp { host, port };
                gen_spec(
                    text,
                    kind,
                    limit,
                    hosts::DEFAULT_LIMIT,
                    (lzo, cpp, down, auth),
                )
            },
        )
}

fn ssh_spec() -> impl Strategy<Value = GenSpec> {
    (
        proptest::option::of("[a-z][a-z0-9._-]{0,8}"),
        prop_oneof![
            host_name().prop_map(|h| (h.clone(), h)),
            ipv6().prop_map(|a| (format!("[{a}]"), a))
        ],
        limit_text(),
        proptest::option::of("/[a-zA-Z0-9/._-]{1,20}"),
        options(),
    )
        .prop_map(
            |(user, (written, host), limit, command, (opts, lzo, cpp, down, auth))| {
                let lim = limit_suffix(limit);
                let cmd = command
                    .as_ref()
                    .map(|c| format!(":{c}"))
                    .unwrap_or_default();
                let text = format!(
                    "{}@{written}{lim}{cmd}{opts}",
                    user.as_deref().unwrap_or("")
                );
                let kind = HostKind::Ssh {
                    user,
                    host,
                    command,
                };
                gen_spec(
                    text,
                    kind,
                    limit,
                    hosts::DEFAULT_LIMIT,
                    (lzo, cpp, down, auth),
                )
            },
        )
}

fn localhost_spec() -> impl Strategy<Value = GenSpec> {
    limit_text().prop_map(|limit| {
        let text = format!("localhost{}", limit_suffix(limit));
        let options = (false, false, false, None);
        gen_spec(
            text,
            HostKind::Localhost,
            limit,
            hosts::LOCALHOST_LIMIT,
            options,
        )
    })
}

fn host_spec() -> impl Strategy<Value = GenSpec> {
    prop_oneof![3 => tcp_spec(), 2 => ssh_spec(), 1 => localhost_spec()]
}

/// The `key=value` fields of a `describe` line, after the spec and two spaces.
fn described(h: &HostSpec) -> (String, Vec<(String, String)>) {
    let line = hosts::describe(h);
    let (spec, fields) = line.split_once("  ").expect("spec, two spaces, fields");
    let fields = fields
        .split(' ')
        .map(|w| {
            let (k, v) = w.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    (spec.to_string(), fields)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_host_specs_parse_and_describe(spec in host_spec()) {
        let list = hosts::parse(&spec.text)
            .map_err(|e| TestCaseError::fail(format!("{:?}: {e}", spec.text)))?;
        prop_assert_eq!(&list.hosts, &vec![spec.want.clone()]);
        prop_assert_eq!(&list.warnings, &vec![]);
        let h = &list.hosts[0];
        // The canonical form is the same host, also without a warning.
        let canon = hosts::parse(&h.canonical()).unwrap();
        prop_assert_eq!(canon.warnings.len(), 0);
        prop_assert_eq!(&canon.hosts[0].kind, &h.kind);
        prop_assert_eq!(canon.hosts[0].limit, h.limit);

        // describe → the spec as written, and fields that say what the spec means.
        let (text, fields) = described(h);
        prop_assert_eq!(&text, &spec.text);
        let field = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        prop_assert_eq!(field("host"), Some(h.hostname().to_string()));
        prop_assert_eq!(field("limit"), Some(h.limit.to_string()));
        match &h.kind {
            HostKind::Localhost => {
                prop_assert_eq!(field("transport"), Some("local".to_string()));
                prop_assert_eq!(field("protocol"), None);
            }
            HostKind::Tcp { port, .. } => {
                prop_assert_eq!(field("port"), Some(port.to_string()));
                prop_assert_eq!(field("transport"), None);
            }
            HostKind::Ssh { user, command, .. } => {
                prop_assert_eq!(field("transport"), Some("ssh".to_string()));
                prop_assert_eq!(field("user"), user.clone());
                prop_assert_eq!(field("command"), command.clone());
            }
            HostKind::Reapi(r) => {
                prop_assert_eq!(field("port"), Some(r.port.to_string()));
                prop_assert!(field("transport").is_some_and(|t| t.starts_with("reapi")));
            }
        }
        if !h.is_local() {
            let protocol = match (h.lzo, h.cpp) {
                (true, true) => 3,
                (true, false) => 2,
                _ => 1,
            };
            prop_assert_eq!(field("protocol"), Some(protocol.to_string()));
            let opts = h.options_string();
            prop_assert_eq!(field("options"), (!opts.is_empty()).then_some(opts));
        }
        // …and the spec it shows parses back to the same host.
        prop_assert_eq!(hosts::parse(&text).unwrap().hosts, list.hosts);
    }

    #[test]
    fn generated_host_lists_parse_in_order(
        specs in vec(host_spec(), 0..6),
        seps in vec(select(vec![" ", "\n", "\t", "  # note\n", "\r\n", "\n#x\n"]), 6),
        randomize in any::<bool>(),
        slots in proptest::option::of(1u32..100),
    ) {
        let mut text = String::new();
        for (i, s) in specs.iter().enumerate() {
            text.push_str(&s.text);
            text.push_str(seps[i]);
        }
        if randomize {
            text.push_str("--randomize ");
        }
        if let Some(n) = slots {
            text.push_str(&format!("--localslots={n}"));
        }
        let list = hosts::parse(&text)
            .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        let want: Vec<HostSpec> = specs.into_iter().map(|s| s.want).collect();
        prop_assert_eq!(list.hosts, want);
        prop_assert_eq!(list.warnings, vec![]);
        prop_assert_eq!(list.randomize, randomize);
        prop_assert_eq!(list.local_slots, slots);
    }

    #[test]
    fn host_parser_survives_arbitrary_text(
        text in proptest::string::string_regex(
            "([a-z0-9@:/=,.%#\\[\\] \\n-]|lzo|cpp|auth|down|localhost|--localslots)*"
        ).unwrap(),
    ) {
        match hosts::parse(&text) {
            Ok(list) => {
                for h in &list.hosts {
                    prop_assert!(h.limit >= 1 && (!h.cpp || h.lzo));
                    // Each accepted spec parses alone to the same host.
                    prop_assert_eq!(&hosts::parse(&h.spec).unwrap().hosts, &vec![h.clone()]);
                    // …and so does its canonical form.
                    let canon = hosts::parse(&h.canonical()).unwrap();
                    prop_assert_eq!(&canon.hosts[0].kind, &h.kind);
                }
                // At most one warning per token, each pointing at its token.
                let mut last = (0, 0);
                for w in &list.warnings {
                    prop_assert!((w.line, w.column) > last, "{:?}", list.warnings);
                    last = (w.line, w.column);
                    let line = text.split('\n').nth(w.line - 1).unwrap_or_default();
                    let at: String = line.chars().skip(w.column - 1).collect();
                    prop_assert!(at.starts_with(&w.token), "{w}");
                    prop_assert!(!w.message.is_empty());
                }
            }
            Err(e) => {
                prop_assert!(e.line >= 1 && e.column >= 1);
                prop_assert!(text.contains(&e.token), "{e}");
            }
        }
    }
}

/// A TCP spec with options, written the sloppy ways distcc 3.4 takes: the text, the
/// host it must read as, and what distcc 3.4's reading would drop.
fn sloppy_tcp_spec() -> impl Strategy<Value = (String, HostSpec)> {
    (
        host_name(),
        proptest::option::of(1u16..=65535),
        1u32..2000,
        options().prop_filter("has an option", |o| !o.0.is_empty() && o.4.is_none()),
        0..3u8,
    )
        .prop_map(|(host, port, limit, (opts, lzo, cpp, down, _), how)| {
            let prt = port.map(|p| format!(":{p}")).unwrap_or_default();
            let text = match how {
                // The limit after the options: distcc 3.4 drops it, swarmcc takes it.
                0 => format!("{host}{prt}{opts}/{limit}"),
                // Options given twice.
                1 => format!("{host}{prt}/{limit}{opts}{opts}"),
                // Junk after the last option, which distcc 3.4 ignores.
                _ => format!("{host}{prt}/{limit}{opts}xyz"),
            };
            let want = HostSpec {
                spec: text.clone(),
                kind: HostKind::Tcp {
                    host,
                    port: port.unwrap_or(hosts::DEFAULT_PORT),
                },
                limit,
                lzo,
                cpp,
                down,
                auth: None,
            };
            (text, want)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sloppy_specs_read_as_meant_with_one_warning(
        (text, want) in sloppy_tcp_spec(),
        before in "([a-z]{1,6}/[1-9] ){0,2}",
    ) {
        let list = hosts::parse(&format!("{before}{text} last"))
            .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        let n = list.hosts.len();
        prop_assert_eq!(&list.hosts[n - 2], &want);
        prop_assert_eq!(list.hosts[n - 1].hostname(), "last");
        prop_assert_eq!(list.warnings.len(), 1, "{:?}", list.warnings);
        let w = &list.warnings[0];
        prop_assert_eq!(&w.token, &text);
        prop_assert_eq!((w.line, w.column), (1, before.chars().count() + 1));
        let read_as = format!("read as {}; ", want.canonical());
        prop_assert!(w.message.starts_with(&read_as), "{}", w.message);
    }
}

// ---------------------------------------------------------------------------------------
// The argument analyser and the server's argument check

const TOKENS: &str = "\
    -c -S -E -o -oout.o --output=o.o -x c c++ cpp-output -xc --language=c++ none \
    -MD -MMD -MF -MFx.d -MT -MQ -MP -M -Wp,-MD,a.d -Wp,-MMD,b.d,-MT,t \
    -Xpreprocessor -I -Iinc -D -DX=1 -include -Xclang -Xlinker -Wl,-z -g -O2 a.c \
    b.cc x.i sub/a.c a.o a.s a.h - conftest.c --compile -target --sysroot \
    -dumpbase -flto @rsp";

fn command_line() -> impl Strategy<Value = Vec<String>> {
    vec(
        prop_oneof![
            4 => select(TOKENS.split_whitespace().collect::<Vec<_>>()).prop_map(str::to_string),
            1 => "[a-z./_-]{0,8}",
        ],
        0..10,
    )
    .prop_map(|rest| {
        let mut argv = vec!["gcc".to_string()];
        argv.extend(rest);
        argv
    })
}

/// A command line that is probably a single compile: `-c`/`-S`, one source and option
/// groups (dependency options, outputs, languages, pass-through values) in any order.
fn compile_line() -> impl Strategy<Value = Vec<String>> {
    let group = select(vec![
        &["-MD"][..],
        &["-MMD"],
        &["-MF", "deps/x.d"],
        &["-MFy.d"],
        &["-MT", "tgt"],
        &["-MQ", "q"],
        &["-MP"],
        &["-o", "out/x.o"],
        &["-oy.o"],
        &["--output=z.o"],
        &["-x", "c"],
        &["-xc++"],
        &["-x", "cpp-output"],
        &["--language", "objective-c"],
        &["-x", "none"],
        &["-Wp,-MD,wp.d"],
        &["-Wp,-MMD,wp2.d,-MT,t"],
        &["-Wp,-MFwp3.d"],
        &["-Wp,-DX"],
        &["-Xpreprocessor", "-MD", "-Xpreprocessor", "xp.d"],
        &["-I", "inc"],
        &["-Iinc2"],
        &["-DX=1"],
        &["-include", "cfg.h"],
        &["-Xclang", "-fno-pch-timestamp"],
        &["-Xclang", "a.c"],
        &["-Xlinker", "x.c"],
        &["-O2"],
        &["-g"],
        &["-Wall"],
        &["-target", "x86_64-linux-gnu"],
        &["-lm"],
        &["-c"],
    ]);
    (
        select(vec!["-c", "-S", "--compile", "--assemble"]),
        select(vec![
            "a.c", "sub/b.cc", "c.i", "d.ii", "e.m", "f.mm", "g.C", "foo.src",
        ]),
        vec(group, 0..7),
    )
        .prop_flat_map(|(stop, input, groups)| {
            let mut parts: Vec<Vec<String>> = groups
                .into_iter()
                .map(|g| g.iter().map(|s| s.to_string()).collect())
                .collect();
            parts.push(vec![stop.to_string()]);
            parts.push(vec![input.to_string()]);
            Just(parts).prop_shuffle()
        })
        .prop_map(|parts| {
            let mut argv = vec!["gcc".to_string()];
            argv.extend(parts.into_iter().flatten());
            argv
        })
}

/// Strings with a NUL, which no generated argument contains, so each is unique.
const T_IN: &str = "/t/\0in.i";
const T_OUT: &str = "/t/\0out.o";
const I_OUT: &str = "/t/\0cpp.i";
const D_OUT: &str = "/t/\0deps.d";

fn check_remote(argv: &[String], job: &RemoteJob) -> Result<(), TestCaseError> {
    prop_assert_eq!(job.argv(), argv);
    prop_assert!(argv[1..].contains(&job.input));

    // The command for the server: `-o <output>` last, and the server, classifying it
    // again, finds the same job (so the input is not taken twice, nor `-o` twice).
    let remote = job.remote_argv();
    prop_assert_eq!(&remote[0], &argv[0]);
    prop_assert_eq!(
        &remote[remote.len() - 2..],
        &["-o".to_string(), job.output.clone()][..]
    );
    let server = match classify(&remote) {
        Decision::Remote(s) => s,
        Decision::Local(r) => return Err(TestCaseError::fail(format!("{remote:?}: {r}"))),
    };
    prop_assert_eq!(&server.input, &job.input);
    prop_assert_eq!(&server.output, &job.output);
    prop_assert_eq!(server.preprocessed_ext, job.preprocessed_ext);
    prop_assert_eq!(&server.dep_file, &None);
    prop_assert_eq!(&server.remote_argv(), &remote);

    // What the server runs: the temp input once, the temp output as the only `-o`.
    let run = server.server_argv(T_IN, T_OUT);
    prop_assert_eq!(run.iter().filter(|a| *a == T_IN).count(), 1);
    prop_assert_eq!(
        &run[run.len() - 2..],
        &["-o".to_string(), T_OUT.to_string()][..]
    );
    match classify(&run) {
        Decision::Remote(r) => {
            prop_assert_eq!((r.input.as_str(), r.output.as_str()), (T_IN, T_OUT))
        }
        Decision::Local(r) => prop_assert!(false, "{:?}: {}", run, r),
    }

    // The local preprocessing command: preprocess only, our `.i`, and the `.d`
    // redirected exactly when the compile writes one.
    if !job.preprocessed_input {
        let cpp = job.cpp_argv(I_OUT, Some(D_OUT));
        prop_assert!(cpp.contains(&job.input));
        prop_assert_eq!(cpp.iter().filter(|a| *a == I_OUT).count(), 1);
        prop_assert_eq!(
            cpp.iter().any(|a| a.contains(D_OUT)),
            job.dep_file.is_some()
        );
        prop_assert_eq!(classify(&cpp), Decision::Local(LocalReason::Preprocess));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn classify_invariants(argv in prop_oneof![command_line(), compile_line()]) {
        match classify(&argv) {
            Decision::Remote(job) => check_remote(&argv, &job)?,
            Decision::Local(reason) => prop_assert!(!reason.to_string().is_empty()),
        }
    }

    #[test]
    fn classify_survives_arbitrary_strings(argv in vec("\\PC{0,12}", 0..8)) {
        match classify(&argv) {
            Decision::Remote(job) => check_remote(&argv, &job)?,
            Decision::Local(reason) => prop_assert!(!reason.to_string().is_empty()),
        }
    }

    #[test]
    fn server_refuses_response_files_and_plugins(
        argv in command_line(),
        bad in select(vec!["@/etc/passwd", "-fplugin=/x.so", "-B/tmp", "-specs=x", "-wrapper"]),
        at in any::<prop::sample::Index>(),
    ) {
        let _ = check_arguments(&argv);
        let mut with_bad = argv.clone();
        let pos = 1 + at.index(with_bad.len());
        with_bad.insert(pos, bad.to_string());
        prop_assert!(check_arguments(&with_bad).is_err(), "{:?} accepted", with_bad);
    }

    #[test]
    fn response_text_quoting_round_trips(args in vec("\\PC{0,10}", 0..6)) {
        // Every character escaped, empty arguments as '': splitting gives them back.
        let text: Vec<String> = args
            .iter()
            .map(|a| if a.is_empty() { "''".into() } else { a.chars().flat_map(|c| ['\\', c]).collect() })
            .collect();
        prop_assert_eq!(split_response_text(&text.join(" \n")), args);
    }
}

/// Found by `fuzz/fuzz_targets/args.rs` (now fixed): gcc refuses `-o ''` ("output
/// filename may not be empty"); the analyser took it for a remote job with an empty
/// output path, so the user got a failure to write "" instead of gcc's error.
#[test]
fn empty_output_is_not_distributed() {
    let argv: Vec<String> = ["gcc", "-c", "a.c", "-o", ""].map(String::from).to_vec();
    assert!(
        matches!(classify(&argv), Decision::Local(_)),
        "{:?}",
        classify(&argv)
    );
}

// The farm cache: its key and the messages that carry it.

const GCC_ID: &str = "gcc version 12.2.0 (Debian 12.2.0-14); target x86_64-linux-gnu";

/// A compile command of random options around one source and output.
fn compile_argv() -> impl Strategy<Value = (Vec<String>, String, String)> {
    let option = select(vec![
        "-O2",
        "-O0",
        "-g",
        "-Wall",
        "-fPIC",
        "-DX=1",
        "-march=x86-64",
    ]);
    (
        vec(option, 0..5),
        "[a-z]{1,6}(/[a-z]{1,6}){0,2}",
        "[a-z]{1,6}(/[a-z]{1,6}){0,2}",
    )
        .prop_map(|(opts, src_dir, out_dir)| {
            let mut argv: Vec<String> = vec!["gcc".into()];
            argv.extend(opts.iter().map(|s| s.to_string()));
            argv.push("-c".into());
            (argv, src_dir, out_dir)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cache_keys_ignore_only_the_directories(
        (argv, src_dir, out_dir) in compile_argv(),
        source in content(200),
        flip in any::<prop::sample::Index>(),
    ) {
        use swarmcc::cache::job_key;
        let job = |src: &str, out: &str| {
            let mut a = argv.clone();
            a.extend([format!("{src}/a.c"), "-o".into(), format!("{out}/a.o")]);
            a
        };
        let key = job_key(GCC_ID, &job(&src_dir, &out_dir), &source).unwrap();
        // Elsewhere on disk: the same key.
        prop_assert_eq!(&key, &job_key(GCC_ID, &job("x", "y/z"), &source).unwrap());
        // Another source, another option, another output kind: another key.
        let mut other = source.clone();
        if other.is_empty() {
            other.push(b'\n');
        } else {
            let i = flip.index(other.len());
            other[i] ^= 1;
        }
        prop_assert_ne!(&key, &job_key(GCC_ID, &job(&src_dir, &out_dir), &other).unwrap());
        let mut more = job(&src_dir, &out_dir);
        more.insert(1, "-DEXTRA".into());
        prop_assert_ne!(&key, &job_key(GCC_ID, &more, &source).unwrap());
        let mut asm = job(&src_dir, &out_dir);
        let c = asm.iter().position(|a| a == "-c").unwrap();
        asm[c] = "-S".into();
        prop_assert_ne!(&key, &job_key(GCC_ID, &asm, &source).unwrap());
    }

    #[test]
    fn cache_messages_survive_arbitrary_bytes(bytes in content(200)) {
        use swarmcc::protocol::cache::{AnswerDecoder, KeyDecoder};
        if let Ok(Some((key, used))) = KeyDecoder.decode(&bytes) {
            prop_assert!(swarmcc::blobs::is_hash(&key));
            prop_assert_eq!(used, 76);
        }
        let _ = AnswerDecoder.decode(&bytes);
        if let Ok(entry) = swarmcc::cache::Entry::decode(&bytes) {
            prop_assert_eq!(entry.encode(), bytes);
        }
    }
}
