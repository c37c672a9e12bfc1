//! The server's side of a request: arbitrary bytes, in arbitrary chunks, through
//! `RequestDecoder` with small `Limits`, then the server's policy checks on the argv.
//!
//! Input: byte 0 picks the chunking (0 whole, 1 byte by byte, else pseudo-random),
//! the rest is the stream. Checks: no panic; no allocation beyond what the limits
//! allow; every event within the limits and in protocol order; whole and chunked
//! delivery agree; a complete request re-encodes to one that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmcc::args::{classify, Decision};
use swarmcc::protocol::{
    encode_files, encode_request_header, encode_source, Error, FileEntry, Limits, RequestDecoder,
    RequestEvent, Version,
};
use swarmcc::server::whitelist::check_arguments;
use swarmcc_fuzz::{feed, set_max_alloc, Chunks, Fed, LIMITS};

fn decode(bytes: &[u8], seed: u8, limits: Limits) -> Fed<RequestEvent, Error> {
    let d = std::cell::RefCell::new(RequestDecoder::new(limits));
    feed(
        bytes,
        &mut Chunks::new(seed),
        |b| d.borrow_mut().decode(b),
        || d.borrow().is_complete(),
    )
}

fn check_events(events: &[RequestEvent], complete: bool) {
    let mut version = None;
    let mut files = 0usize;
    for (i, event) in events.iter().enumerate() {
        match event {
            RequestEvent::Header {
                version: v,
                cwd,
                argv,
            } => {
                assert_eq!(i, 0, "header is not the first event");
                assert!(!argv.is_empty(), "empty argv accepted");
                assert!(argv.len() <= LIMITS.max_argc as usize);
                for a in argv {
                    assert!(a.len() <= LIMITS.max_string as usize);
                    assert!(!a.contains('\0'));
                }
                assert_eq!(cwd.is_some(), *v == Version::V3, "CDIR iff v3");
                if let Some(c) = cwd {
                    assert!(c.len() <= LIMITS.max_string as usize);
                }
                version = Some(*v);
            }
            RequestEvent::Source(s) => {
                assert!(matches!(version, Some(Version::V1 | Version::V2)));
                assert_eq!(i, 1);
                assert!(s.len() <= LIMITS.max_decompressed);
            }
            RequestEvent::File(entry) => {
                assert_eq!(version, Some(Version::V3));
                files += 1;
                assert!(files <= LIMITS.max_argc as usize);
                match entry {
                    FileEntry::File { name, contents } => {
                        assert!(!name.is_empty() && name.len() <= LIMITS.max_string as usize);
                        assert!(contents.len() <= LIMITS.max_decompressed);
                    }
                    FileEntry::Link { name, target } => {
                        assert!(!name.is_empty() && name.len() <= LIMITS.max_string as usize);
                        assert!(target.len() <= LIMITS.max_string as usize);
                    }
                }
            }
            RequestEvent::FilesDone => {
                assert_eq!(version, Some(Version::V3));
                assert_eq!(i, events.len() - 1, "FilesDone is not last");
            }
        }
    }
    if complete {
        assert!(matches!(
            events.last(),
            Some(RequestEvent::Source(_) | RequestEvent::FilesDone)
        ));
    }
}

/// Encodes the events of a complete request again (our encoder, our compressor).
fn reencode(events: &[RequestEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    let RequestEvent::Header { version, cwd, argv } = &events[0] else {
        unreachable!()
    };
    encode_request_header(*version, cwd.as_deref(), argv, &mut out).expect("re-encode header");
    match version {
        Version::V3 => {
            let files: Vec<FileEntry> = events[1..]
                .iter()
                .filter_map(|e| match e {
                    RequestEvent::File(f) => Some(f.clone()),
                    _ => None,
                })
                .collect();
            encode_files(&files, &mut out).expect("re-encode files");
        }
        _ => {
            let RequestEvent::Source(s) = &events[1] else {
                unreachable!()
            };
            encode_source(*version, s, &mut out).expect("re-encode source");
        }
    }
    out
}

/// What the server does with a decoded argv before compiling.
fn server_policy(argv: &[String]) {
    let _ = check_arguments(argv);
    if let Decision::Remote(job) = classify(argv) {
        // NUL cannot occur in a decoded argument, so these names are unique.
        let run = job.server_argv("/fuzz/\0in.i", "/fuzz/\0out.o");
        assert_eq!(run[run.len() - 2..], ["-o", "/fuzz/\0out.o"]);
        assert_eq!(run.iter().filter(|a| *a == "/fuzz/\0in.i").count(), 1);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, bytes)) = data.split_first() else {
        return;
    };
    // The stream buffer (doubling) plus decoded bodies; nothing may come near a
    // peer-chosen size.
    set_max_alloc(2 * bytes.len() + 4 * LIMITS.max_decompressed + 64 * 1024);

    let whole = decode(bytes, 0, LIMITS);
    check_events(&whole.events, whole.complete);
    if seed != 0 {
        let chunked = decode(bytes, seed, LIMITS);
        assert_eq!(whole, chunked, "whole and chunked delivery disagree");
    }
    if let Some(RequestEvent::Header { argv, .. }) = whole.events.first() {
        server_policy(argv);
    }
    if whole.complete {
        // Our compressor may do worse than the peer's, so only the body limit is lifted.
        let again = reencode(&whole.events);
        let relaxed = Limits {
            max_body: u32::MAX,
            ..LIMITS
        };
        let redecoded = decode(&again, seed, relaxed);
        assert!(
            redecoded.complete,
            "re-encoded request incomplete: {redecoded:?}"
        );
        assert_eq!(redecoded.left, 0);
        assert_eq!(redecoded.events, whole.events, "re-encoded request differs");
    }
});
