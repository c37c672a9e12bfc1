//! `lzo::decompress` on arbitrary streams with a bounded output, against liblzo2's
//! `lzo1x_decompress_safe`.
//!
//! Input: bytes 0-1 are the output limit (little-endian u16), the rest is the stream.
//! Checks: no panic; no allocation beyond what the limit allows; output never longer
//! than the limit; the limit is exact (the same stream with limit = output length
//! decodes, one byte less is `TooLarge`); the C decoder accepts exactly the streams we
//! accept, with the same output; our compressor round-trips what came out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmcc::protocol::{lzo, Error};
use swarmcc_fuzz::{clzo, set_max_alloc};

/// Our output grows to at most twice the limit; the oracle's buffer is `limit` bytes.
fn tight(limit: usize, stream: &[u8]) -> usize {
    4 * limit + 4 * stream.len() + 64 * 1024
}

fuzz_target!(|data: &[u8]| {
    let [lo, hi, stream @ ..] = data else {
        return;
    };
    let limit = usize::from(u16::from_le_bytes([*lo, *hi]));
    set_max_alloc(tight(limit, stream));

    let ours = lzo::decompress(stream, limit);
    let theirs = clzo::decompress(stream, limit);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => assert!(a == b, "decoders accept the stream with different output"),
        (Err(_), Err(_)) => {}
        _ => panic!(
            "decoders disagree: ours {:?}, liblzo2 {:?}",
            ours.as_ref().map(Vec::len),
            theirs.as_ref().map(Vec::len)
        ),
    }
    match ours {
        Ok(out) => {
            assert!(out.len() <= limit, "{} bytes out, limit {limit}", out.len());
            assert_eq!(lzo::decompress(stream, out.len()).as_ref(), Ok(&out));
            if let Some(less) = out.len().checked_sub(1) {
                assert!(matches!(
                    lzo::decompress(stream, less),
                    Err(Error::TooLarge { .. })
                ));
            }
            let again = lzo::compress(&out);
            assert_eq!(lzo::decompress(&again, out.len()).as_ref(), Ok(&out));
        }
        Err(Error::TooLarge { limit: l, .. }) => assert_eq!(l, limit as u64),
        Err(Error::Lzo(_)) => {}
        Err(other) => panic!("unexpected error kind: {other:?}"),
    }
});
