//! LZO1X block compression as distcc uses it: a bare stream, no header, no length.
//!
//! Compression delegates to the `lzo1x` crate at the level that reproduces liblzo2's
//! `lzo1x_1_compress` byte for byte (so our packets match what distcc would send).
//! Decompression is our own single-pass decoder: distcc's streams carry no
//! uncompressed size, and the crate's decoder needs to know it in advance. Deciding
//! whether a body is compressed at all (zero-length bodies never are) is left to
//! [`super::message`].

use super::Error;

/// Compresses with LZO1X-1 (byte-identical to liblzo2's `lzo1x_1_compress`).
pub fn compress(data: &[u8]) -> Vec<u8> {
    // Level 3 of the crate is LZO1X-1 with a 2^14-entry dictionary, which is exactly
    // the variant liblzo2 and miniLZO call `lzo1x_1_compress`.
    lzo1x::compress(data, lzo1x::CompressLevel::new(3))
}

/// Decompresses a bare LZO1X stream whose uncompressed size is unknown, refusing to
/// produce more than `limit` bytes (no decompression bomb).
///
/// Accepts the output of any LZO1X compressor level. Like `lzo1x_decompress_safe` it
/// refuses truncated input, references before the start of the output, and bytes after
/// the end-of-stream marker (distcc treats all three as errors). It never reads or
/// writes out of bounds and never allocates more than `limit` bytes of output.
pub fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    let mut d = Decoder {
        input: data,
        ip: 0,
        // A guess, not a bound: typical source and object files compress 2-4x. Growth
        // past it is amortised by Vec, and every growth is checked against `limit`.
        out: Vec::with_capacity(data.len().saturating_mul(4).min(limit)),
        limit,
    };
    d.run()?;
    Ok(d.out)
}

/// Where the instruction stream is between two instruction bytes. LZO1X gives the
/// low values of an instruction byte (0..15) a different meaning depending on what
/// came just before it, which is what these states track.
enum State {
    /// After a match whose trailing literal count was 0 (or at the start): a byte
    /// below 16 is a literal run of 4 or more.
    Literal,
    /// Right after such a literal run: a byte below 16 is a 3-byte match with a
    /// distance beyond 2 KiB.
    AfterLiteralRun,
    /// An instruction byte `t` that is (or, below 16, behaves as) a match.
    Match(usize),
    /// After a match that ended with 1..=3 literals to copy.
    TrailingLiterals(usize),
}

struct Decoder<'a> {
    input: &'a [u8],
    ip: usize,
    out: Vec<u8>,
    limit: usize,
}

/// Distances longer than this use the M4 form, which adds it as a bias.
const M4_BIAS: usize = 0x4000;
/// The 3-byte match right after a literal run reaches past the 2-byte M1 window.
const M1_AFTER_LITERALS_BIAS: usize = 0x0800;

impl Decoder<'_> {
    fn truncated(&self) -> Error {
        Error::Lzo(format!(
            "stream ends after {} bytes without its end-of-stream marker",
            self.input.len()
        ))
    }

    fn byte(&mut self) -> Result<usize, Error> {
        let b = *self.input.get(self.ip).ok_or_else(|| self.truncated())?;
        self.ip += 1;
        Ok(usize::from(b))
    }

    /// A length continued in extra bytes: each 0 byte adds 255, the first non-zero
    /// byte ends it and is added to `base`.
    ///
    /// With `early_limit`, a length past the output limit is refused as soon as it is
    /// one (a bomb, before reading further zeros). An M4 length must not be: it may
    /// belong to the end-of-stream marker, which liblzo2 accepts whatever its length;
    /// copying the match checks the limit anyway.
    fn long_length(&mut self, base: usize, early_limit: bool) -> Result<usize, Error> {
        let mut len = base;
        loop {
            let b = self.byte()?;
            if b != 0 {
                return Ok(len.saturating_add(b));
            }
            // Each zero byte stands for 255 output bytes.
            len = len.saturating_add(255);
            if early_limit && len > self.limit {
                return Err(self.too_large(len));
            }
        }
    }

    fn too_large(&self, wanted: usize) -> Error {
        Error::TooLarge {
            what: "decompressed LZO1X body",
            got: u64::try_from(self.out.len().saturating_add(wanted)).unwrap_or(u64::MAX),
            limit: u64::try_from(self.limit).unwrap_or(u64::MAX),
        }
    }

    fn reserve(&self, n: usize) -> Result<(), Error> {
        match self.out.len().checked_add(n) {
            Some(total) if total <= self.limit => Ok(()),
            _ => Err(self.too_large(n)),
        }
    }

    fn literals(&mut self, n: usize) -> Result<(), Error> {
        let end = self.ip.checked_add(n).ok_or_else(|| self.truncated())?;
        let src = self
            .input
            .get(self.ip..end)
            .ok_or_else(|| self.truncated())?;
        self.reserve(n)?;
        self.out.extend_from_slice(src);
        self.ip = end;
        Ok(())
    }

    fn copy_match(&mut self, distance: usize, len: usize) -> Result<(), Error> {
        if distance == 0 || distance > self.out.len() {
            return Err(Error::Lzo(format!(
                "match at input offset {} looks back {distance} bytes, but only {} were produced",
                self.ip,
                self.out.len()
            )));
        }
        self.reserve(len)?;
        // A match may overlap its own output (distance < len repeats a pattern). The
        // bytes from `start` onwards are final once written, so copying in chunks no
        // longer than what already exists is the same as copying byte by byte.
        let mut start = self.out.len() - distance;
        let mut left = len;
        while left > 0 {
            let n = left.min(self.out.len() - start);
            self.out.extend_from_within(start..start + n);
            start += n;
            left -= n;
        }
        Ok(())
    }

    /// The low 2 bits of a match's last offset byte count the literals that follow it.
    fn after_match(trailing: usize) -> State {
        match trailing & 3 {
            0 => State::Literal,
            n => State::TrailingLiterals(n),
        }
    }

    /// The instruction loop: each state reads its instruction and says what follows.
    fn run(&mut self) -> Result<(), Error> {
        let mut state = self.start()?;
        loop {
            state = match state {
                State::Literal => self.literal_run()?,
                State::AfterLiteralRun => self.after_literal_run()?,
                State::TrailingLiterals(n) => {
                    self.literals(n)?;
                    State::Match(self.byte()?)
                }
                State::Match(t) => match self.copy_instruction(t)? {
                    Some(next) => next,
                    None => return self.finish(),
                },
            };
        }
    }

    /// The first byte: above 17 it is a literal run with no match before it; the
    /// encoder uses this to start the stream without the usual 3-literal minimum.
    fn start(&mut self) -> Result<State, Error> {
        let first = *self
            .input
            .first()
            .ok_or_else(|| Error::Lzo("empty stream (expected at least 11 00 00)".into()))?;
        if first <= 17 {
            return Ok(State::Literal);
        }
        self.ip = 1;
        let n = usize::from(first) - 17;
        if n < 4 {
            Ok(State::TrailingLiterals(n))
        } else {
            self.literals(n)?;
            Ok(State::AfterLiteralRun)
        }
    }

    /// In [`State::Literal`]: a byte below 16 is a run of 3 + n literals.
    fn literal_run(&mut self) -> Result<State, Error> {
        let t = self.byte()?;
        if t >= 16 {
            return Ok(State::Match(t));
        }
        let n = if t == 0 {
            self.long_length(15, true)?
        } else {
            t
        };
        self.literals(n.saturating_add(3))?;
        Ok(State::AfterLiteralRun)
    }

    /// In [`State::AfterLiteralRun`]: a byte below 16 is a 3-byte match beyond 2 KiB.
    fn after_literal_run(&mut self) -> Result<State, Error> {
        let t = self.byte()?;
        if t >= 16 {
            return Ok(State::Match(t));
        }
        let h = self.byte()?;
        let distance = 1 + M1_AFTER_LITERALS_BIAS + (t >> 2) + (h << 2);
        self.copy_match(distance, 3)?;
        Ok(Self::after_match(t))
    }

    /// A match instruction `t` (M1 to M4 by its high bits); `None` at the
    /// end-of-stream marker.
    fn copy_instruction(&mut self, t: usize) -> Result<Option<State>, Error> {
        let trailing = if t >= 64 {
            // M2: length 3..8 and distance up to 2 KiB in two bytes.
            let h = self.byte()?;
            let distance = 1 + ((t >> 2) & 7) + (h << 3);
            self.copy_match(distance, (t >> 5) + 1)?;
            t
        } else if t >= 32 {
            // M3: distance up to 16 KiB.
            let len = match t & 31 {
                0 => self.long_length(31, true)?,
                n => n,
            };
            let (lo, hi) = (self.byte()?, self.byte()?);
            let distance = 1 + (lo >> 2) + (hi << 6);
            self.copy_match(distance, len.saturating_add(2))?;
            lo
        } else if t >= 16 {
            // M4: distance 16..48 KiB; distance 0 (before the bias) ends the stream,
            // which is what `11 00 00` encodes.
            let len = match t & 7 {
                0 => self.long_length(7, false)?,
                n => n,
            };
            let (lo, hi) = (self.byte()?, self.byte()?);
            let offset = ((t & 8) << 11) + (lo >> 2) + (hi << 6);
            if offset == 0 {
                return Ok(None);
            }
            self.copy_match(offset + M4_BIAS, len.saturating_add(2))?;
            lo
        } else {
            // M1 after trailing literals: a 2-byte match within 1 KiB.
            let h = self.byte()?;
            let distance = 1 + (t >> 2) + (h << 2);
            self.copy_match(distance, 2)?;
            t
        };
        Ok(Some(Self::after_match(trailing)))
    }

    fn finish(&self) -> Result<(), Error> {
        if self.ip == self.input.len() {
            Ok(())
        } else {
            Err(Error::Lzo(format!(
                "{} bytes follow the end-of-stream marker at offset {}",
                self.input.len() - self.ip,
                self.ip - 3
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator so failures reproduce without a seed file.
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

    fn samples() -> Vec<Vec<u8>> {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let text = b"int add(int a, int b) { return a + b; }\n".repeat(200);
        let mut mixed = Vec::new();
        for i in 0..300 {
            mixed.extend_from_slice(&text[..(i * 7) % 100]);
            mixed.extend(rng.bytes(i % 50));
            mixed.extend(std::iter::repeat_n(i as u8, i % 300));
        }
        vec![
            vec![],
            vec![0],
            b"abc".to_vec(),
            b"hello hello hello hello hello".to_vec(),
            vec![0xaa; 100],
            vec![0; 70_000],
            rng.bytes(5000),
            text,
            mixed,
        ]
    }

    #[test]
    fn round_trips() {
        for data in samples() {
            let c = compress(&data);
            assert_eq!(c.get(c.len().saturating_sub(3)..), Some(&[0x11, 0, 0][..]));
            assert_eq!(decompress(&c, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn empty_stream_is_the_marker() {
        assert_eq!(compress(b""), [0x11, 0, 0]);
        assert_eq!(decompress(&[0x11, 0, 0], 0).unwrap(), b"");
    }

    #[test]
    fn limit_is_exact() {
        for data in samples().into_iter().filter(|d| !d.is_empty()) {
            let c = compress(&data);
            assert!(decompress(&c, data.len()).is_ok());
            assert!(
                matches!(decompress(&c, data.len() - 1), Err(Error::TooLarge { .. })),
                "len {}",
                data.len()
            );
        }
    }

    #[test]
    fn bomb_is_refused() {
        let data = vec![0u8; 10 * 1024 * 1024];
        let c = compress(&data);
        assert!(c.len() < 100_000);
        assert!(matches!(
            decompress(&c, 1024 * 1024),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn truncation_and_trailing_bytes_are_errors() {
        let data = b"int add(int a, int b) { return a + b; }\n".repeat(20);
        let c = compress(&data);
        for n in 0..c.len() {
            assert!(decompress(&c[..n], usize::MAX).is_err(), "prefix {n}");
        }
        let mut extra = c.clone();
        extra.push(0);
        assert!(matches!(decompress(&extra, usize::MAX), Err(Error::Lzo(_))));
    }

    #[test]
    fn lookbehind_overrun_is_refused() {
        // One literal, then an M2 match 8 bytes back.
        assert!(matches!(
            decompress(&[18, b'a', 0x5c, 0x00, 0x11, 0, 0], 100),
            Err(Error::Lzo(_))
        ));
        // Same with distance 1: valid, repeats the literal.
        let out = decompress(&[18, b'a', 0x40, 0x00, 0x11, 0, 0], 100).unwrap();
        assert_eq!(out, b"aaaa");
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut rng = Rng(12345);
        for i in 0..20_000 {
            let len = (rng.next() % 64) as usize;
            let mut data = rng.bytes(len);
            if i % 2 == 0 {
                data.extend_from_slice(&[0x11, 0, 0]);
            }
            let _ = decompress(&data, 4096);
        }
        // Mutations of a valid stream reach deeper states than pure noise.
        let base = compress(&b"#include <stdio.h>\nint main(void) { return 0; }\n".repeat(30));
        for _ in 0..20_000 {
            let mut data = base.clone();
            for _ in 0..(rng.next() % 4 + 1) {
                let at = (rng.next() as usize) % data.len();
                data[at] = rng.next() as u8;
            }
            let _ = decompress(&data, 1 << 20);
        }
    }
}
