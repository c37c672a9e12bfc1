//! Is this file swarmcc? The checks behind the recursion guard: an executable probe,
//! file identity, and a byte-for-byte copy test.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// What a PATH candidate (`<entry>/<name>`) is, for masquerade decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Not there, or not an executable file.
    Missing,
    /// An executable that is not swarmcc: a compiler (or another wrapper).
    Compiler,
    /// swarmcc itself (see [`is_swarmcc`]).
    Swarmcc,
}

/// Probes one candidate file. `self_exe` is swarmcc's own executable; without it (no
/// /proc), a file is taken to be us when it resolves to a name containing "swarmcc"
/// or "distcc". Touches the filesystem.
pub fn probe_executable(candidate: &Path, self_exe: Option<&Path>) -> Probe {
    if !is_executable_file(candidate) {
        return Probe::Missing;
    }
    let us = match self_exe {
        Some(me) => is_swarmcc(candidate, me),
        None => links_to_wrapper(candidate),
    };
    if us {
        Probe::Swarmcc
    } else {
        Probe::Compiler
    }
}

/// True for an existing regular file (after following links) with an execute bit.
/// Touches the filesystem.
pub fn is_executable_file(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `candidate` is swarmcc: the same file as `self_exe` (a symlink, a hard link,
/// or a symlinked directory leading to it), a link into another swarmcc install (its
/// resolved name contains "swarmcc"), or a byte-for-byte copy of `self_exe`.
/// Touches the filesystem.
pub fn is_swarmcc(candidate: &Path, self_exe: &Path) -> bool {
    let Ok(cand) = fs::metadata(candidate) else {
        return false;
    };
    if let Ok(me) = fs::metadata(self_exe) {
        if cand.dev() == me.dev() && cand.ino() == me.ino() {
            return true;
        }
        // Only a file of exactly our size can be a copy of us; real compilers almost
        // never are, so the byte comparison is rare.
        if cand.len() == me.len() && same_contents(candidate, self_exe).unwrap_or(false) {
            return true;
        }
    }
    fs::canonicalize(candidate).is_ok_and(|real| {
        real.file_name()
            .is_some_and(|n| n.to_string_lossy().contains("swarmcc"))
    })
}

fn same_contents(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Whether `p` resolves to a file named like swarmcc or distcc (a masquerade link).
pub(super) fn links_to_wrapper(p: &Path) -> bool {
    fs::canonicalize(p).is_ok_and(|real| {
        real.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            n.contains("swarmcc") || n.contains("distcc")
        })
    })
}
