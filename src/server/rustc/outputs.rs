//! What a rustc job wrote: every regular file in its output directories (`--out-dir`,
//! those of `-o` and of `--emit kind=PATH`) that is not an input as it was placed,
//! named by its client path.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::protocol::rustc::OutputFile;

use super::inputs::{under, Placed};

/// The files rustc wrote in `dirs`, at most `limit` bytes in all.
pub(super) fn collect(
    root: &Path,
    dirs: &[String],
    placed: &Placed,
    limit: u64,
) -> Result<Vec<OutputFile>, String> {
    let mut out = Vec::new();
    let mut total = 0u64;
    for dir in dirs {
        let at = under(root, dir);
        let entries = fs::read_dir(&at).map_err(|e| format!("reading {dir}: {e}"))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_file() || placed.unchanged(&path, &meta) {
                continue;
            }
            total += meta.len();
            if total > limit {
                return Err(format!("outputs larger than {} MiB", limit >> 20));
            }
            let data = fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            out.push(OutputFile {
                path: format!("{}/{name}", dir.trim_end_matches('/')),
                executable: meta.permissions().mode() & 0o111 != 0,
                data,
            });
        }
    }
    Ok(out)
}
