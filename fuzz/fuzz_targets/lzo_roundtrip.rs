//! `lzo::compress` on arbitrary data: byte-identical to liblzo2's `lzo1x_1_compress`
//! (what distcc sends), and decompressed by both decoders to the original, with the
//! size bound exact.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmcc::protocol::{lzo, Error};
use swarmcc_fuzz::{clzo, set_max_alloc};

fuzz_target!(|data: &[u8]| {
    set_max_alloc(16 * data.len() + 256 * 1024);
    let ours = lzo::compress(data);
    assert!(
        ours == clzo::compress(data),
        "differs from lzo1x_1_compress"
    );
    assert!(ours.ends_with(&[0x11, 0, 0]));
    assert_eq!(lzo::decompress(&ours, data.len()).as_deref(), Ok(data));
    assert_eq!(clzo::decompress(&ours, data.len()).as_deref(), Ok(data));
    if let Some(tight) = data.len().checked_sub(1) {
        assert!(matches!(
            lzo::decompress(&ours, tight),
            Err(Error::TooLarge { .. })
        ));
    }
});
