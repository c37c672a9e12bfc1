//! Writes results where the compiler would have: atomically, never a torn file.
//!
//! Knows nothing of hosts or protocols: it gets bytes and a path.

use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename,
/// so a reader (or an interrupted build) sees the old file or the new one, never half.
/// Missing parent directories are created, as distcc and gcc do. A path that exists and
/// is not a regular file (`/dev/null`, a FIFO) is written in place: renaming over it
/// would replace the device.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Ok(meta) = fs::metadata(path) {
        if !meta.file_type().is_file() {
            let mut f = OpenOptions::new().write(true).open(path)?;
            return f.write_all(bytes);
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".swarmcc-")
        .suffix(".tmp")
        // open(2) applies the umask, so the result gets the mode a compiler's file gets.
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Moves a finished temporary file (written by the local preprocessor next to its final
/// place) over `path`, with the same care for non-regular targets as [`write_atomic`].
pub fn install(tmp: &Path, path: &Path) -> io::Result<()> {
    if let Ok(meta) = fs::metadata(path) {
        if !meta.file_type().is_file() {
            let bytes = fs::read(tmp)?;
            let _ = fs::remove_file(tmp);
            let mut f = OpenOptions::new().write(true).open(path)?;
            return f.write_all(&bytes);
        }
    }
    fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sub/dir/x.o");
        write_atomic(&out, b"first").unwrap();
        write_atomic(&out, b"second").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"second");
        let leftovers: Vec<_> = fs::read_dir(out.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp files left: {leftovers:?}");
    }

    #[test]
    fn dev_null_is_not_replaced() {
        write_atomic(Path::new("/dev/null"), b"data").unwrap();
        let meta = fs::metadata("/dev/null").unwrap();
        assert!(!meta.file_type().is_file());
    }

    #[test]
    fn mode_follows_umask_like_a_compiler_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.o");
        write_atomic(&out, b"x").unwrap();
        let mode = fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        // SAFETY: umask is process-wide; read it and put it back at once.
        let mask = unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        };
        assert_eq!(mode, 0o666 & !(mask as u32));
    }
}
