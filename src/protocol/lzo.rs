//! LZO1X block compression as distcc uses it: a bare stream, no header, no length.
//!
//! CONTRACT (keep these signatures):

use super::Error;

/// Compresses with LZO1X-1 (byte-identical to liblzo2's `lzo1x_1_compress`).
pub fn compress(data: &[u8]) -> Vec<u8> {
    let _ = data;
    todo!("protocol: lzo::compress")
}

/// Decompresses a bare LZO1X stream whose uncompressed size is unknown, refusing to
/// produce more than `limit` bytes (no decompression bomb).
pub fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    let _ = (data, limit);
    todo!("protocol: lzo::decompress")
}
