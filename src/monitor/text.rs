//! The distccmon-text-compatible printer: one line per running job, byte for byte the
//! format of distcc 3.4's `mon-text.c`
//! (`"%6ld  %-10.10s  %-30.30s %24.24s[%d]\n"`: pid, phase, file, host, slot), then an
//! empty line. Scripts that parse distccmon-text parse this too.

use crate::state::{Entry, Phase};

/// C's `%-W.Ps` / `%W.Ps` on bytes: at most `prec` bytes, padded with spaces to `width`.
fn field(out: &mut Vec<u8>, s: &str, width: usize, prec: usize, left: bool) {
    let b = &s.as_bytes()[..s.len().min(prec)];
    let pad = width.saturating_sub(b.len());
    if !left {
        out.resize(out.len() + pad, b' ');
    }
    out.extend_from_slice(b);
    if left {
        out.resize(out.len() + pad, b' ');
    }
}

/// One block as distccmon-text prints it per poll: the jobs not Done, each on a line,
/// then an empty line. Bytes, since a file name may cut a character in two as C does.
pub fn block(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 * entries.len() + 1);
    for e in entries.iter().filter(|e| e.record.phase != Phase::Done) {
        let r = &e.record;
        field(&mut out, &r.pid.to_string(), 6, usize::MAX, false);
        out.extend_from_slice(b"  ");
        field(&mut out, r.phase.name(), 10, 10, true);
        out.extend_from_slice(b"  ");
        field(&mut out, &r.file, 30, 30, true);
        out.push(b' ');
        field(&mut out, &r.host, 24, 24, false);
        out.extend_from_slice(format!("[{}]\n", r.slot).as_bytes());
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Record;
    use std::time::SystemTime;

    fn e(pid: u64, phase: Phase, file: &str, host: &str, slot: i32) -> Entry {
        Entry {
            record: Record {
                pid,
                file: file.into(),
                host: host.into(),
                slot,
                phase,
            },
            mtime: SystemTime::now(),
        }
    }

    #[test]
    fn matches_distccmon_text_byte_for_byte() {
        // The capture in distcc-observed.md section 4 (two jobs, then an empty line).
        let got = block(&[
            e(13595, Phase::Compile, "slow1.c", "127.0.0.1", 0),
            e(13601, Phase::Compile, "slow2.c", "localhost", 0),
            e(13602, Phase::Done, "gone.c", "127.0.0.1", 1),
        ]);
        let want = concat!(
            " 13595  Compile     slow1.c                                       127.0.0.1[0]\n",
            " 13601  Compile     slow2.c                                       localhost[0]\n",
            "\n"
        );
        assert_eq!(String::from_utf8(got).unwrap(), want);
        assert_eq!(block(&[]), b"\n");
    }

    #[test]
    fn long_fields_are_cut_like_printf() {
        let long_host = "a-very-long-host-name.example.org";
        let got = block(&[e(
            1234567,
            Phase::Preprocess,
            &"x".repeat(40),
            long_host,
            12,
        )]);
        let line = String::from_utf8(got).unwrap();
        let want = format!(
            "1234567  Preprocess  {} {}[12]\n\n",
            "x".repeat(30),
            &long_host[..24]
        );
        assert_eq!(line, want);
    }
}
