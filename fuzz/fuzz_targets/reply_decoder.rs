//! The client's side of a reply: arbitrary bytes, in arbitrary chunks, through
//! `ReplyDecoder` with small `Limits`, for every protocol version.
//!
//! Input: byte 0 picks the chunking (0 whole, 1 byte by byte, else pseudo-random);
//! byte 1 the version (low bits mod 3) and whether a `.d` is expected (bit 7); the
//! rest is the stream. Checks: no panic; no allocation beyond the limits; events in
//! protocol order and within the limits; whole and chunked delivery agree; a complete
//! reply re-encodes to one that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmcc::protocol::{encode_reply, Error, Limits, Reply, ReplyDecoder, ReplyEvent, Version};
use swarmcc_fuzz::{feed, set_max_alloc, Chunks, Fed, LIMITS};

fn decode(
    bytes: &[u8],
    seed: u8,
    version: Version,
    deps: bool,
    limits: Limits,
) -> Fed<ReplyEvent, Error> {
    let d = std::cell::RefCell::new(ReplyDecoder::new(version, limits, deps));
    feed(
        bytes,
        &mut Chunks::new(seed),
        |b| d.borrow_mut().decode(b),
        || d.borrow().is_complete(),
    )
}

/// Checks order and sizes; returns the reply the events describe.
fn check_events(events: &[ReplyEvent], complete: bool, version: Version, deps: bool) -> Reply {
    let mut reply = Reply::default();
    for (i, event) in events.iter().enumerate() {
        let body = match event {
            ReplyEvent::Started => {
                assert_eq!(i, 0);
                None
            }
            ReplyEvent::Status(s) => {
                assert_eq!(i, 1);
                reply.status = *s;
                None
            }
            ReplyEvent::Stderr(b) => {
                assert_eq!(i, 2);
                reply.stderr = b.clone();
                Some(b)
            }
            ReplyEvent::Stdout(b) => {
                assert_eq!(i, 3);
                reply.stdout = b.clone();
                Some(b)
            }
            ReplyEvent::Object(b) => {
                assert_eq!(i, 4);
                if reply.status != 0 {
                    assert!(b.is_empty(), "object kept despite a failure status");
                }
                reply.object = b.clone();
                Some(b)
            }
            ReplyEvent::Deps(b) => {
                assert_eq!(i, 5);
                assert!(version == Version::V3 && deps && reply.status == 0);
                reply.deps = Some(b.clone());
                Some(b)
            }
        };
        if let Some(b) = body {
            assert!(b.len() <= LIMITS.max_decompressed);
        }
    }
    if complete {
        let want = if version == Version::V3 && deps && reply.status == 0 {
            6
        } else {
            5
        };
        assert_eq!(events.len(), want, "complete after {} events", events.len());
    } else {
        assert!(events.len() <= 6);
    }
    reply
}

fuzz_target!(|data: &[u8]| {
    let [seed, mode, bytes @ ..] = data else {
        return;
    };
    let version = [Version::V1, Version::V2, Version::V3][usize::from(mode & 3) % 3];
    let deps = mode & 0x80 != 0;
    set_max_alloc(2 * bytes.len() + 4 * LIMITS.max_decompressed + 64 * 1024);

    let whole = decode(bytes, 0, version, deps, LIMITS);
    let reply = check_events(&whole.events, whole.complete, version, deps);
    if *seed != 0 {
        let chunked = decode(bytes, *seed, version, deps, LIMITS);
        assert_eq!(whole, chunked, "whole and chunked delivery disagree");
    }
    if whole.complete {
        let mut again = Vec::new();
        encode_reply(version, &reply, &mut again).expect("re-encode reply");
        // Our compressor may do worse than the peer's, so only the body limit is lifted.
        let relaxed = Limits {
            max_body: u32::MAX,
            ..LIMITS
        };
        let redecoded = decode(&again, *seed, version, deps, relaxed);
        assert!(
            redecoded.complete,
            "re-encoded reply incomplete: {redecoded:?}"
        );
        assert_eq!(redecoded.left, 0);
        assert_eq!(redecoded.events, whole.events, "re-encoded reply differs");
    }
});
