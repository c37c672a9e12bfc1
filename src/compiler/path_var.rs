//! A PATH value read as distcc and `execvp` read it: its entries, and a lexical
//! normalisation so that different spellings of one directory compare equal.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Splits a PATH value into entries. An empty entry means the current directory, as
/// for `execvp`; a wholly empty PATH has no entries.
pub(super) fn path_entries(path_env: &OsStr) -> Vec<&OsStr> {
    if path_env.is_empty() {
        return Vec::new();
    }
    path_env
        .as_bytes()
        .split(|&b| b == b':')
        .map(OsStr::from_bytes)
        .collect()
}

/// A PATH entry as a directory (empty means `.`).
pub(super) fn entry_dir(entry: &OsStr) -> &Path {
    if entry.is_empty() {
        Path::new(".")
    } else {
        Path::new(entry)
    }
}

/// `p` made absolute against `cwd` and normalised lexically: `//`, trailing `/` and
/// `.` vanish and `..` removes the previous component. Purely textual, so that
/// `/tmp/shims/`, `/tmp//shims` and `/tmp/x/../shims` compare equal to `/tmp/shims`.
pub(super) fn normalize(p: &Path, cwd: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}
