//! The farm cache's messages and entries from arbitrary bytes: what a server reads
//! (`SWCK` and its key, which becomes a file name), what a client reads (`SWCH`,
//! `SWCM`), and what the store reads back from disk (`cache::Entry`).
//!
//! Input: byte 0 picks the chunking (0 whole, 1 byte by byte, else pseudo-random);
//! the rest is the stream. Checks: no panic; no allocation beyond what the input
//! explains; a key accepted is 64 lowercase hex digits and re-encodes to the bytes it
//! came from; whole and chunked delivery agree; an entry accepted re-encodes to the
//! same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmcc::cache::Entry;
use swarmcc::protocol::cache::{encode_answer, encode_key, AnswerDecoder, KeyDecoder};
use swarmcc_fuzz::{feed, set_max_alloc, Chunks};

fuzz_target!(|data: &[u8]| {
    let [seed, bytes @ ..] = data else {
        return;
    };
    set_max_alloc(4 * bytes.len() + 64 * 1024);

    let keys = |seed| {
        let mut d = KeyDecoder;
        let done = std::cell::Cell::new(false);
        feed(
            bytes,
            &mut Chunks::new(seed),
            |b| {
                let r = d.decode(b);
                done.set(matches!(r, Ok(Some(_))));
                r
            },
            || done.get(),
        )
    };
    let whole = keys(0);
    if let Some(key) = whole.events.first() {
        assert!(swarmcc::blobs::is_hash(key), "accepted key {key:?}");
        let mut again = Vec::new();
        encode_key(key, &mut again).expect("re-encode key");
        assert_eq!(&bytes[..again.len()], &again[..]);
    }
    if *seed != 0 {
        assert_eq!(whole, keys(*seed), "whole and chunked delivery disagree");
    }

    if let Ok(Some((answer, used))) = AnswerDecoder.decode(bytes) {
        let mut again = Vec::new();
        encode_answer(answer, &mut again);
        assert_eq!(&bytes[..used], &again[..]);
    }

    if let Ok(entry) = Entry::decode(bytes) {
        assert_eq!(entry.encode(), bytes, "an entry re-encodes to its bytes");
    }
});
