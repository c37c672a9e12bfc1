//! Two objects compared: the ELF sections that differ and the compilers'
//! identification strings (`.comment`), so that a DIFFERENT COMPILER verdict says why.
//! Pure functions on bytes; which objects are compared is left to [`super::host`].

/// Why two objects differ, in words: the ELF sections that differ and, when the
/// compilers' identification strings (`.comment`) differ, both of them; else sizes and
/// the first differing byte.
pub fn explain_difference(here: &[u8], there: &[u8]) -> String {
    let basic = || {
        let first = here
            .iter()
            .zip(there)
            .position(|(a, b)| a != b)
            .unwrap_or(here.len().min(there.len()));
        format!(
            "{} bytes here, {} there, first difference at byte {first:#x}",
            here.len(),
            there.len()
        )
    };
    let (Some(a), Some(b)) = (elf_sections(here), elf_sections(there)) else {
        return basic();
    };
    let mut differing: Vec<String> = Vec::new();
    for (name, data) in &a {
        match b.iter().find(|(n, _)| n == name) {
            Some((_, other)) if other == data => {}
            Some(_) => differing.push(name.clone()),
            None => differing.push(format!("{name} (only here)")),
        }
    }
    for (name, _) in &b {
        if !a.iter().any(|(n, _)| n == name) {
            differing.push(format!("{name} (only there)"));
        }
    }
    if differing.is_empty() {
        return basic();
    }
    let mut out = format!("sections {} differ", differing.join(", "));
    let comment = |s: &[(String, Vec<u8>)]| {
        s.iter()
            .find(|(n, _)| n == ".comment")
            .map(|(_, d)| {
                d.split(|&b| b == 0)
                    .filter(|p| !p.is_empty())
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
            .unwrap_or_default()
    };
    let (ca, cb) = (comment(&a), comment(&b));
    if ca != cb {
        out.push_str(&format!("; compiler here: \"{ca}\", there: \"{cb}\""));
    } else if !ca.is_empty() {
        out.push_str(&format!(
            "; both say \"{ca}\", so the options or the compiler's configuration differ there"
        ));
    }
    out
}

/// The named sections of an ELF relocatable object with their contents (empty for
/// sections without file data), in header order. `None` if `obj` is not ELF or is
/// malformed.
pub fn elf_sections(obj: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    if obj.len() < 0x34 || &obj[..4] != b"\x7fELF" {
        return None;
    }
    let wide = match obj[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let le = match obj[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let rd = |at: usize, n: usize| -> Option<u64> {
        let b = obj.get(at..at.checked_add(n)?)?;
        let mut v: u64 = 0;
        for i in 0..n {
            let byte = if le { b[n - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    };
    let (shoff, shentsize, shnum, shstrndx) = if wide {
        (rd(0x28, 8)?, rd(0x3a, 2)?, rd(0x3c, 2)?, rd(0x3e, 2)?)
    } else {
        (rd(0x20, 4)?, rd(0x2e, 2)?, rd(0x30, 2)?, rd(0x32, 2)?)
    };
    let header = |i: u64| -> Option<(u64, u64, u64, u64)> {
        let at = usize::try_from(shoff.checked_add(i.checked_mul(shentsize)?)?).ok()?;
        if wide {
            Some((rd(at, 4)?, rd(at + 4, 4)?, rd(at + 24, 8)?, rd(at + 32, 8)?))
        } else {
            Some((rd(at, 4)?, rd(at + 4, 4)?, rd(at + 16, 4)?, rd(at + 20, 4)?))
        }
    };
    let data = |kind: u64, off: u64, size: u64| -> Option<&[u8]> {
        const SHT_NOBITS: u64 = 8;
        if kind == SHT_NOBITS {
            return Some(&[]);
        }
        let start = usize::try_from(off).ok()?;
        obj.get(start..start.checked_add(usize::try_from(size).ok()?)?)
    };
    if shnum > 4096 {
        return None;
    }
    let (_, st_kind, st_off, st_size) = header(shstrndx)?;
    let strtab = data(st_kind, st_off, st_size)?;
    let mut out = Vec::new();
    for i in 1..shnum {
        let (name_at, kind, off, size) = header(i)?;
        let name_bytes = strtab.get(usize::try_from(name_at).ok()?..)?;
        let end = name_bytes.iter().position(|&b| b == 0)?;
        let name = String::from_utf8_lossy(&name_bytes[..end]).into_owned();
        out.push((name, data(kind, off, size)?.to_vec()));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::process::Command;

    use crate::check::PROBE_C;

    #[test]
    fn non_elf_objects_are_compared_by_bytes() {
        let why = explain_difference(b"abcdef", b"abXdefg");
        assert_eq!(why, "6 bytes here, 7 there, first difference at byte 0x2");
        assert!(elf_sections(b"\x7fELF").is_none());
        assert!(elf_sections(&[0u8; 100]).is_none());
    }

    /// A real object from the machine's gcc: sections parse, and a changed `.comment`
    /// and `.text` are named.
    #[test]
    fn elf_sections_of_a_real_object() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("p.c");
        fs::write(&src, PROBE_C).unwrap();
        let obj = dir.path().join("p.o");
        let ok = Command::new("gcc")
            .args(["-O2", "-c"])
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: no working gcc");
            return;
        }
        let bytes = fs::read(&obj).unwrap();
        let sections = elf_sections(&bytes).expect("gcc's object is ELF");
        let names: Vec<&str> = sections.iter().map(|(n, _)| n.as_str()).collect();
        assert!(
            names.contains(&".text") && names.contains(&".symtab"),
            "{names:?}"
        );
        // Another compile of another optimisation level: .text differs.
        let o0 = dir.path().join("p0.o");
        assert!(Command::new("gcc")
            .args(["-O0", "-c"])
            .arg(&src)
            .arg("-o")
            .arg(&o0)
            .status()
            .unwrap()
            .success());
        let why = explain_difference(&bytes, &fs::read(&o0).unwrap());
        assert!(why.contains(".text"), "{why}");
        assert!(why.contains("both say \"GCC"), "{why}");
        // A different compiler identification is quoted.
        if let Some(at) = bytes.windows(4).position(|w| w == b"GCC:") {
            let mut other = bytes.clone();
            other[at + 5] ^= 0x20;
            let why = explain_difference(&bytes, &other);
            assert!(
                why.contains(".comment") && why.contains("compiler here:"),
                "{why}"
            );
        }
    }
}
