//! Our LZO1X against the C reference (liblzo2 via `lzo-sys`): the compressor must be
//! byte-identical to `lzo1x_1_compress` (distcc's compressor), and the two
//! decompressors must agree on every stream, including `lzo1x_999` output that distcc
//! never produces but any LZO1X peer may send.

use std::ffi::c_void;
use std::path::Path;
use std::sync::Once;

use lzo_sys::lzo1x::{
    lzo1x_1_compress, lzo1x_999_compress, lzo1x_decompress_safe, LZO1X_1_MEM_COMPRESS,
    LZO1X_999_MEM_COMPRESS,
};
use lzo_sys::lzoconf::{lzo_init, LZO_E_OK};
use swarmcc::protocol::{lzo, Error};

fn init() {
    static INIT: Once = Once::new();
    // SAFETY: lzo_init only checks type sizes; it is called once before any use.
    INIT.call_once(|| assert_eq!(unsafe { lzo_init() }, LZO_E_OK));
}

fn worst_case(len: usize) -> usize {
    len + len / 16 + 64 + 3
}

type CompressFn = unsafe extern "C" fn(*const u8, usize, *mut u8, *mut usize, *mut c_void) -> i32;

fn c_compress(data: &[u8], f: CompressFn, wrkmem: usize) -> Vec<u8> {
    init();
    let mut out = vec![0u8; worst_case(data.len())];
    let mut out_len = out.len();
    // u64 keeps the work memory aligned for the pointers liblzo stores in it.
    let mut work = vec![0u64; wrkmem.div_ceil(8)];
    // SAFETY: buffers are sized per liblzo's documented worst case and work memory.
    let rc = unsafe {
        f(
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

fn c_lzo1x_1(data: &[u8]) -> Vec<u8> {
    c_compress(data, lzo1x_1_compress, LZO1X_1_MEM_COMPRESS as usize)
}

fn c_lzo1x_999(data: &[u8]) -> Vec<u8> {
    c_compress(data, lzo1x_999_compress, LZO1X_999_MEM_COMPRESS as usize)
}

/// `lzo1x_decompress_safe` into a buffer of exactly `expected_len` (+1 so an overrun
/// would show up as a wrong length rather than be hidden).
fn c_decompress(stream: &[u8], expected_len: usize) -> Result<Vec<u8>, i32> {
    init();
    let mut out = vec![0u8; expected_len + 1];
    let mut out_len = out.len();
    // SAFETY: the safe decompressor never writes past `out_len` nor reads past the input.
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

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.split_whitespace().skip(1))
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect()
}

fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let text = std::iter::repeat_n(
        "static int add(int a, int b) { return a + b; } /* distcc */\n",
        300,
    )
    .collect::<String>()
    .into_bytes();
    let mut mixed = Vec::new();
    let mut i = 0usize;
    while mixed.len() < 1 << 20 {
        match i % 5 {
            0 => mixed.extend_from_slice(&text[..(i * 37) % text.len()]),
            1 => mixed.extend(rng.bytes(i % 3000)),
            2 => mixed.extend(std::iter::repeat_n(i as u8, i % 5000)),
            3 => {
                // Long-distance repeats exercise M4 matches (16..48 KiB back).
                let from = mixed.len().saturating_sub(20_000 + i % 20_000);
                let chunk = mixed[from..(from + 300).min(mixed.len())].to_vec();
                mixed.extend(chunk);
            }
            _ => mixed.extend((0..i % 700).map(|k| (k % 7) as u8)),
        }
        i += 1;
    }
    let mut all = vec![
        ("empty".to_string(), vec![]),
        ("one byte".to_string(), vec![b'x']),
        ("short".to_string(), b"hello, world".to_vec()),
        ("text".to_string(), text),
        ("random".to_string(), rng.bytes(100_000)),
        ("zeros".to_string(), vec![0; 300_000]),
        ("period 3".to_string(), b"abc".repeat(50_000)),
        ("mixed 1 MiB".to_string(), mixed),
    ];
    for n in [
        2, 3, 4, 5, 15, 16, 17, 18, 19, 20, 21, 22, 31, 32, 33, 64, 255, 256, 1000,
    ] {
        all.push((format!("random {n}"), rng.bytes(n)));
        all.push((format!("run {n}"), vec![7; n]));
    }
    for name in [
        "distcc-observed-2.3-v1-request.hex",
        "distcc-observed-2.3-v1-reply.hex",
        "distcc-observed-2.5-v3-request.hex",
        "distcc-observed-2.5-v3-reply.hex",
    ] {
        all.push((name.to_string(), fixture(name)));
    }
    all
}

#[test]
fn compressor_is_lzo1x_1() {
    for (name, data) in inputs() {
        let ours = lzo::compress(&data);
        assert!(
            ours == c_lzo1x_1(&data),
            "{name}: differs from lzo1x_1_compress"
        );
        assert_eq!(
            c_decompress(&ours, data.len()).as_ref(),
            Ok(&data),
            "{name}"
        );
    }
}

#[test]
fn decompressor_reads_c_streams() {
    for (name, data) in inputs() {
        for (level, stream) in [("1", c_lzo1x_1(&data)), ("999", c_lzo1x_999(&data))] {
            let ours = lzo::decompress(&stream, data.len())
                .unwrap_or_else(|e| panic!("{name} (lzo1x_{level}): {e}"));
            assert!(ours == data, "{name} (lzo1x_{level}): wrong output");
        }
    }
}

#[test]
fn decompressors_agree_on_corrupt_streams() {
    // Whatever the C decoder accepts we must decode the same way, and vice versa.
    let mut rng = Rng(77);
    let data = inputs().swap_remove(3).1; // "text"
    let bases = [c_lzo1x_1(&data), c_lzo1x_999(&data)];
    let limit = data.len() * 2;
    let mut accepted = 0;
    for i in 0..20_000 {
        let mut s = bases[i % 2].clone();
        for _ in 0..(1 + rng.next() % 3) {
            let at = (rng.next() as usize) % s.len();
            s[at] = rng.next() as u8;
        }
        let ours = lzo::decompress(&s, limit);
        let c = c_decompress(&s, limit);
        match (&ours, &c) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b, "mutation {i}");
                accepted += 1;
            }
            (Err(_), Err(_)) => {}
            // C reports LZO_E_OUTPUT_OVERRUN when its buffer (limit + 1) is too small
            // where we report TooLarge; both refuse.
            _ => panic!(
                "mutation {i}: ours {:?} vs C {:?}",
                ours.map(|v| v.len()),
                c.map(|v| v.len())
            ),
        }
    }
    assert!(
        accepted > 0,
        "no mutation was valid: the test proves nothing"
    );
}

#[test]
fn bomb_is_refused() {
    // 64 MiB of zeros compress to a few hundred KiB; a 1 MiB limit must stop it early.
    let zeros = vec![0u8; 64 << 20];
    let stream = c_lzo1x_999(&zeros);
    assert!(stream.len() < 1 << 20);
    match lzo::decompress(&stream, 1 << 20) {
        Err(Error::TooLarge { limit, .. }) => assert_eq!(limit, 1 << 20),
        other => panic!("expected TooLarge, got {:?}", other.map(|v| v.len())),
    }
    // A hand-made run: one literal, then an M3 match of 255 * 400 + 33 bytes.
    let mut bomb = vec![18, 0, 0x20];
    bomb.extend(std::iter::repeat_n(0, 400));
    bomb.extend_from_slice(&[1, 0, 0, 0x11, 0, 0]);
    let expected = 1 + 255 * 400 + 31 + 1 + 2;
    assert_eq!(c_decompress(&bomb, expected).map(|v| v.len()), Ok(expected));
    assert_eq!(
        lzo::decompress(&bomb, expected).map(|v| v.len()),
        Ok(expected)
    );
    assert!(matches!(
        lzo::decompress(&bomb, expected - 1),
        Err(Error::TooLarge { .. })
    ));
}
