//! Helpers shared by the fuzz targets: an allocation guard and the incremental feeding
//! loop `conn` uses to drive the protocol decoders.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The largest single allocation a target allows; anything bigger aborts the process,
/// which libFuzzer reports as a crash with the input saved. Set by each target.
static MAX_ALLOC: AtomicUsize = AtomicUsize::new(64 << 20);

/// A global allocator that refuses (by aborting) any single allocation above
/// [`set_max_alloc`]: the decoders promise never to allocate beyond their `Limits`, and
/// this turns a broken promise into a reproducible crash even without a sanitizer.
pub struct Guard;

fn check(size: usize) {
    let max = MAX_ALLOC.load(Ordering::Relaxed);
    // A panic's backtrace needs room of its own; the panic is the report then.
    if size > max && !std::thread::panicking() {
        // Only formats numbers into a stack buffer; no allocation on this path.
        let mut buf = [0u8; 96];
        let n = fmt_msg(&mut buf, size, max);
        let _ = std::io::Write::write_all(&mut std::io::stderr(), &buf[..n]);
        std::process::abort();
    }
}

fn fmt_msg(buf: &mut [u8; 96], size: usize, max: usize) -> usize {
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        let end = (n + bytes.len()).min(buf.len());
        buf[n..end].copy_from_slice(&bytes[..end - n]);
        n = end;
    };
    put(b"fuzz guard: allocation of ");
    put(digits(size).as_slice());
    put(b" bytes exceeds ");
    put(digits(max).as_slice());
    put(b"\n");
    n
}

struct Digits([u8; 20], usize);
impl Digits {
    fn as_slice(&self) -> &[u8] {
        &self.0[self.1..]
    }
}
fn digits(mut v: usize) -> Digits {
    let mut d = Digits([0; 20], 20);
    loop {
        d.1 -= 1;
        d.0[d.1] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return d;
        }
    }
}

// SAFETY: forwards to the system allocator unchanged after a size check.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GUARD: Guard = Guard;

/// Small limits for the decoder targets, so that the fuzzer reaches every limit check
/// with short inputs.
pub const LIMITS: swarmcc::protocol::Limits = swarmcc::protocol::Limits {
    max_argc: 8,
    max_string: 64,
    max_body: 4096,
    max_decompressed: 16 * 1024,
    max_header: 1024,
};

/// Sets the allocation ceiling for this process.
pub fn set_max_alloc(bytes: usize) {
    MAX_ALLOC.store(bytes, Ordering::Relaxed);
}

/// Chunk sizes for delivering a byte stream, derived from a seed: 0 delivers everything
/// at once, 1 drips byte by byte, anything else gives pseudo-random sizes in 1..=64.
pub struct Chunks(u64);

impl Chunks {
    pub fn new(seed: u8) -> Self {
        Chunks(u64::from(seed))
    }
    pub fn next_size(&mut self) -> usize {
        match self.0 {
            0 => usize::MAX,
            1 => 1,
            _ => {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 % 64) as usize + 1
            }
        }
    }
}

/// How a fed stream ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Fed<E, Err> {
    pub events: Vec<E>,
    /// `Some(err)` if the decoder refused the stream.
    pub error: Option<Err>,
    pub complete: bool,
    /// Bytes not consumed (delivered or not) when the decoder stopped.
    pub left: usize,
}

/// Feeds `bytes` to an incremental decoder the way `conn` does: append a chunk, decode
/// until it asks for more, drop exactly the bytes it used. Panics if the decoder breaks
/// its contract (claims more bytes than it was given, or makes no progress).
pub fn feed<E, Err>(
    bytes: &[u8],
    chunks: &mut Chunks,
    mut decode: impl FnMut(&[u8]) -> Result<Option<(E, usize)>, Err>,
    mut complete: impl FnMut() -> bool,
) -> Fed<E, Err> {
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut events = Vec::new();
    let mut zero_used_in_a_row = 0;
    loop {
        if complete() {
            return Fed {
                events,
                error: None,
                complete: true,
                left: buf.len() + bytes.len() - fed,
            };
        }
        match decode(&buf) {
            Err(e) => {
                return Fed {
                    events,
                    error: Some(e),
                    complete: false,
                    left: buf.len() + bytes.len() - fed,
                }
            }
            Ok(Some((event, used))) => {
                assert!(
                    used <= buf.len(),
                    "decoder used {used} bytes of a {}-byte buffer",
                    buf.len()
                );
                // An event may consume nothing (FilesDone), but never forever.
                zero_used_in_a_row = if used == 0 { zero_used_in_a_row + 1 } else { 0 };
                assert!(zero_used_in_a_row < 4, "decoder loops without consuming");
                buf.drain(..used);
                events.push(event);
            }
            Ok(None) if fed == bytes.len() => {
                return Fed {
                    events,
                    error: None,
                    complete: false,
                    left: buf.len(),
                }
            }
            Ok(None) => {
                let n = chunks.next_size().min(bytes.len() - fed);
                buf.extend_from_slice(&bytes[fed..fed + n]);
                fed += n;
            }
        }
    }
}

/// liblzo2, the C reference implementation, as an oracle for the LZO targets.
pub mod clzo {
    use lzo_sys::lzo1x::{lzo1x_1_compress, lzo1x_decompress_safe, LZO1X_1_MEM_COMPRESS};
    use lzo_sys::lzoconf::{lzo_init, LZO_E_OK};
    use std::sync::Once;

    fn init() {
        static INIT: Once = Once::new();
        // SAFETY: lzo_init only checks type sizes; it runs once before any other call.
        INIT.call_once(|| assert_eq!(unsafe { lzo_init() }, LZO_E_OK));
    }

    /// `lzo1x_1_compress`, distcc's compressor.
    pub fn compress(data: &[u8]) -> Vec<u8> {
        init();
        let mut out = vec![0u8; data.len() + data.len() / 16 + 64 + 3];
        let mut out_len = out.len();
        // u64 keeps the work memory aligned for the pointers liblzo stores in it.
        let mut work = vec![0u64; (LZO1X_1_MEM_COMPRESS as usize).div_ceil(8)];
        // SAFETY: the output buffer has liblzo's documented worst-case size.
        let rc = unsafe {
            lzo1x_1_compress(
                data.as_ptr(),
                data.len(),
                out.as_mut_ptr(),
                &mut out_len,
                work.as_mut_ptr().cast(),
            )
        };
        assert_eq!(rc, LZO_E_OK);
        out.truncate(out_len);
        out
    }

    /// `lzo1x_decompress_safe` into a buffer of `limit` bytes: the error code if it
    /// refuses the stream (including when the output would exceed `limit`).
    pub fn decompress(stream: &[u8], limit: usize) -> Result<Vec<u8>, i32> {
        init();
        let mut out = vec![0u8; limit];
        let mut out_len = out.len();
        // SAFETY: the safe decompressor never writes past `out_len` nor reads past the
        // input.
        let rc = unsafe {
            lzo1x_decompress_safe(
                stream.as_ptr(),
                stream.len(),
                out.as_mut_ptr(),
                &mut out_len,
                std::ptr::null_mut(),
            )
        };
        if rc != LZO_E_OK {
            return Err(rc);
        }
        out.truncate(out_len);
        Ok(out)
    }
}
