//! distcc's `struct dcc_task_state` record and its phases, encoded and decoded in the
//! native layout and endianness distcc writes (296 bytes on 64-bit Linux). Pure: the
//! files are written by [`super::writer`] and read by [`super::reader`].

/// `DCC_STATE_MAGIC`: "\0HID" read as a little-endian number.
pub const MAGIC: u64 = 0x4449_4800;
/// Bytes in `char file[]` and `char host[]`.
const NAME_LEN: usize = 128;
/// Width of `size_t`, `unsigned long` and pointers: the C layout follows the platform.
const WORD: usize = std::mem::size_of::<usize>();
/// `sizeof(struct dcc_task_state)`: 296 on 64-bit Linux, 280 on 32-bit.
pub const STRUCT_SIZE: usize = 3 * WORD + 2 * NAME_LEN + 4 + 4 + WORD;

const OFF_SIZE: usize = 0;
const OFF_MAGIC: usize = WORD;
const OFF_PID: usize = 2 * WORD;
const OFF_FILE: usize = 3 * WORD;
const OFF_HOST: usize = OFF_FILE + NAME_LEN;
const OFF_SLOT: usize = OFF_HOST + NAME_LEN;
const OFF_PHASE: usize = OFF_SLOT + 4;
const OFF_NEXT: usize = OFF_PHASE + 4;

/// distcc's `enum dcc_phase`, with its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Startup = 0,
    /// Waiting for a slot (remote or local compile).
    Blocked = 1,
    /// Connecting to the server.
    Connect = 2,
    /// The local preprocessor runs (host `localhost`, the local slot).
    Preprocess = 3,
    /// Sending the request.
    Send = 4,
    /// Compiling: waiting for the server's answer, or the local compiler.
    Compile = 5,
    /// Receiving the server's answer.
    Receive = 6,
    /// Finished; writing the results.
    Done = 7,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Startup,
        Phase::Blocked,
        Phase::Connect,
        Phase::Preprocess,
        Phase::Send,
        Phase::Compile,
        Phase::Receive,
        Phase::Done,
    ];

    /// The name the monitors print (`dcc_get_phase_name`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Startup => "Startup",
            Phase::Blocked => "Blocked",
            Phase::Connect => "Connect",
            Phase::Preprocess => "Preprocess",
            Phase::Send => "Send",
            Phase::Compile => "Compile",
            Phase::Receive => "Receive",
            Phase::Done => "Done",
        }
    }

    /// distccmon's reading of a raw value: anything beyond Done counts as Compile.
    pub fn from_raw(v: u32) -> Phase {
        Phase::ALL
            .get(v as usize)
            .copied()
            .unwrap_or(Phase::Compile)
    }
}

/// One `struct dcc_task_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub pid: u64,
    /// Basename of the input (at most 127 bytes are kept).
    pub file: String,
    /// Host name without port or limit, or `localhost`.
    pub host: String,
    pub slot: i32,
    pub phase: Phase,
}

impl Record {
    /// The record of process `pid` at start-up: no file, no host.
    pub fn startup(pid: u64) -> Record {
        Record {
            pid,
            file: String::new(),
            host: String::new(),
            slot: 0,
            phase: Phase::Startup,
        }
    }

    /// The native bytes distcc writes: `struct_size`, magic, pid, file, host, slot,
    /// phase, and a null `next` pointer.
    pub fn encode(&self) -> [u8; STRUCT_SIZE] {
        let mut b = [0u8; STRUCT_SIZE];
        put_word(&mut b[OFF_SIZE..], STRUCT_SIZE as u64);
        put_word(&mut b[OFF_MAGIC..], MAGIC);
        put_word(&mut b[OFF_PID..], self.pid);
        put_name(&mut b[OFF_FILE..OFF_FILE + NAME_LEN], &self.file);
        put_name(&mut b[OFF_HOST..OFF_HOST + NAME_LEN], &self.host);
        b[OFF_SLOT..OFF_SLOT + 4].copy_from_slice(&self.slot.to_ne_bytes());
        b[OFF_PHASE..OFF_PHASE + 4].copy_from_slice(&(self.phase as u32).to_ne_bytes());
        // `next` (OFF_NEXT) stays zero: a pointer means nothing in a file.
        debug_assert_eq!(OFF_NEXT + WORD, STRUCT_SIZE);
        b
    }

    /// Reads a record as distccmon does: exactly `STRUCT_SIZE` bytes, the right size
    /// field and magic; names are cut at their first NUL (or at 127 bytes).
    pub fn decode(b: &[u8]) -> Option<Record> {
        if b.len() != STRUCT_SIZE
            || get_word(&b[OFF_SIZE..])? != STRUCT_SIZE as u64
            || get_word(&b[OFF_MAGIC..])? != MAGIC
        {
            return None;
        }
        let slot = i32::from_ne_bytes(b[OFF_SLOT..OFF_SLOT + 4].try_into().ok()?);
        let phase = u32::from_ne_bytes(b[OFF_PHASE..OFF_PHASE + 4].try_into().ok()?);
        Some(Record {
            pid: get_word(&b[OFF_PID..])?,
            file: get_name(&b[OFF_FILE..OFF_FILE + NAME_LEN]),
            host: get_name(&b[OFF_HOST..OFF_HOST + NAME_LEN]),
            slot,
            phase: Phase::from_raw(phase),
        })
    }
}

fn put_word(dst: &mut [u8], v: u64) {
    // A native `unsigned long`: 8 or 4 bytes, native order.
    if WORD == 8 {
        dst[..8].copy_from_slice(&v.to_ne_bytes());
    } else {
        dst[..4].copy_from_slice(&(v as u32).to_ne_bytes());
    }
}

fn get_word(src: &[u8]) -> Option<u64> {
    if WORD == 8 {
        Some(u64::from_ne_bytes(src.get(..8)?.try_into().ok()?))
    } else {
        Some(u64::from(u32::from_ne_bytes(
            src.get(..4)?.try_into().ok()?,
        )))
    }
}

/// Copies `s` NUL-terminated into `dst`, cut at a character boundary if too long.
fn put_name(dst: &mut [u8], s: &str) {
    let mut end = s.len().min(dst.len() - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    dst[..end].copy_from_slice(&s.as_bytes()[..end]);
}

fn get_name(src: &[u8]) -> String {
    // distccmon forces the last byte to NUL: at most 127 bytes count.
    let src = &src[..src.len() - 1];
    let end = src.iter().position(|&c| c == 0).unwrap_or(src.len());
    String::from_utf8_lossy(&src[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_pointer_width = "64", target_endian = "little"))]
    fn encoding_matches_the_documented_x86_64_layout() {
        assert_eq!(STRUCT_SIZE, 296);
        let rec = Record {
            pid: 12906,
            file: "slow2.c".into(),
            host: "127.0.0.1".into(),
            slot: 1,
            phase: Phase::Compile,
        };
        let b = rec.encode();
        // The dump of a live distcc 3.4 file (distcc-observed.md 4.1).
        let mut want = [0u8; 296];
        want[0x000..0x010].copy_from_slice(&[
            0x28, 0x01, 0, 0, 0, 0, 0, 0, 0x00, 0x48, 0x49, 0x44, 0, 0, 0, 0,
        ]);
        want[0x010..0x018].copy_from_slice(&[0x6a, 0x32, 0, 0, 0, 0, 0, 0]);
        want[0x018..0x01f].copy_from_slice(b"slow2.c");
        want[0x098..0x0a1].copy_from_slice(b"127.0.0.1");
        want[0x118..0x120].copy_from_slice(&[1, 0, 0, 0, 5, 0, 0, 0]);
        assert_eq!(b.as_slice(), want.as_slice());
        // Offsets by field, as the reference table lists them.
        assert_eq!(u64::from_le_bytes(b[0..8].try_into().unwrap()), 296);
        assert_eq!(
            u64::from_le_bytes(b[8..16].try_into().unwrap()),
            0x4449_4800
        );
        assert_eq!(u64::from_le_bytes(b[16..24].try_into().unwrap()), 12906);
        assert_eq!(&b[24..32], b"slow2.c\0");
        assert_eq!(&b[152..162], b"127.0.0.1\0");
        assert_eq!(i32::from_le_bytes(b[280..284].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(b[284..288].try_into().unwrap()), 5);
        assert_eq!(&b[288..296], &[0u8; 8]);
        assert_eq!(Record::decode(&b), Some(rec));
    }

    #[test]
    fn phases_have_distccs_numbers_and_names() {
        for (i, p) in Phase::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i);
            assert_eq!(Phase::from_raw(i as u32), *p);
        }
        assert_eq!(Phase::Blocked.name(), "Blocked");
        assert_eq!(Phase::from_raw(99), Phase::Compile);
    }

    #[test]
    fn decode_rejects_what_distccmon_rejects_and_names_are_bounded() {
        let rec = Record {
            pid: 7,
            file: "é".repeat(100),
            host: "h".repeat(300),
            slot: 3,
            phase: Phase::Send,
        };
        let b = rec.encode();
        let back = Record::decode(&b).unwrap();
        assert!(back.file.len() <= 127 && back.file.chars().all(|c| c == 'é'));
        assert_eq!(back.host, "h".repeat(127));
        assert!(Record::decode(&b[..STRUCT_SIZE - 1]).is_none());
        let mut bad = b;
        bad[OFF_MAGIC] ^= 1;
        assert!(Record::decode(&bad).is_none());
        let mut bad = b;
        bad[OFF_SIZE] ^= 1;
        assert!(Record::decode(&bad).is_none());
    }
}
