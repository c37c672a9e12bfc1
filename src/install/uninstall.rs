//! `--uninstall`: the manifest's entries removed, last first, each only while it is
//! still as installed; everything else is left alone and listed.

use std::fs;
use std::io;
use std::path::Path;

use super::layout::{DEBIAN_DISTCC_DIR, PORTAGE_DISTCC_DIR};
use super::manifest::{format_manifest, parse_manifest, sha256_hex, Entry, MANIFEST};
use crate::exit::ExitCode;
use crate::shims;

/// Whether an entry stays in the manifest after an attempt to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// Removed, already gone, or left alone for good (changed since it was installed).
    Done,
    /// Could not be removed: kept recorded for another try.
    Kept,
}

/// `--uninstall`: removes the entries of `entries` that are still as installed, last
/// first. Returns the report lines and the entries that remain (left alone, or that
/// could not be removed).
pub fn uninstall(entries: &[Entry]) -> (Vec<String>, Vec<Entry>) {
    let mut lines = Vec::new();
    let mut kept = Vec::new();
    for e in entries.iter().rev() {
        if remove_entry(e, &mut lines) == Removal::Kept {
            kept.push(e.clone());
        }
    }
    kept.reverse();
    (lines, kept)
}

/// Removes one entry if it is still as installed, saying what happened in `lines`.
fn remove_entry(e: &Entry, lines: &mut Vec<String>) -> Removal {
    match e {
        Entry::File { path, sha256 } => match fs::read(path) {
            Ok(bytes) if sha256_hex(&bytes) == *sha256 => remove_file(path, lines),
            Ok(_) => {
                lines.push(format!(
                    "left alone {}: changed since it was installed",
                    path.display()
                ));
                Removal::Done
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Removal::Done,
            Err(err) => {
                lines.push(format!("cannot read {}: {err}", path.display()));
                Removal::Kept
            }
        },
        Entry::Link { path, target } => match fs::read_link(path) {
            Ok(raw) if raw == *target => remove_file(path, lines),
            Ok(raw) => {
                lines.push(format!(
                    "left alone {}: now a link to {}",
                    path.display(),
                    raw.display()
                ));
                Removal::Done
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Removal::Done,
            Err(_) => {
                lines.push(format!("left alone {}: no longer a link", path.display()));
                Removal::Done
            }
        },
        Entry::Shims { dir, target } => remove_shims(dir, target, lines),
        Entry::Dir { path } => {
            match fs::remove_dir(path) {
                Ok(()) => lines.push(format!("removed {}/", path.display())),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                // Not empty: something else lives there now. Keep it, say nothing.
                Err(_) => lines.push(format!("left alone {}/: not empty", path.display())),
            }
            Removal::Done
        }
    }
}

/// Removes a file or link that is still ours.
fn remove_file(path: &Path, lines: &mut Vec<String>) -> Removal {
    match fs::remove_file(path) {
        Ok(()) => {
            lines.push(format!("removed {}", path.display()));
            Removal::Done
        }
        Err(err) => {
            lines.push(format!("cannot remove {}: {err}", path.display()));
            Removal::Kept
        }
    }
}

/// Removes a masquerade folder's links to `target`; for distcc's folders, says how
/// distcc's own links come back.
fn remove_shims(dir: &Path, target: &Path, lines: &mut Vec<String>) -> Removal {
    match shims::uninstall(dir, target) {
        Ok(r) => {
            lines.push(format!(
                "removed {} links to {} from {}",
                r.removed.len(),
                target.display(),
                dir.display()
            ));
            if dir == Path::new(DEBIAN_DISTCC_DIR) || dir == Path::new(PORTAGE_DISTCC_DIR) {
                lines.push(format!(
                    "  (distcc's own links in {} come back with `update-distcc-symlinks` or by reinstalling distcc)",
                    dir.display()
                ));
            }
            Removal::Done
        }
        Err(err) => {
            lines.push(format!("cannot clean {}: {err}", dir.display()));
            Removal::Kept
        }
    }
}

/// `swarmcc --uninstall [PREFIX]`: reads the manifest, removes what it records, and
/// removes the manifest (and its directories) once nothing remains; returns the exit
/// code.
pub(super) fn run_uninstall(prefix: &Path) -> i32 {
    let manifest = prefix.join(MANIFEST);
    let entries = match read_manifest(prefix, &manifest) {
        Ok(e) => e,
        Err(code) => return code.code(),
    };
    // The manifest goes before the directories that hold it.
    let (own_dirs, others): (Vec<Entry>, Vec<Entry>) = entries
        .into_iter()
        .partition(|e| matches!(e, Entry::Dir { path } if manifest.starts_with(path)));
    let (lines, kept) = uninstall(&others);
    for l in &lines {
        println!("{l}");
    }
    if kept.is_empty() {
        if let Err(e) = fs::remove_file(&manifest) {
            eprintln!("swarmcc: cannot remove {}: {e}", manifest.display());
            return ExitCode::IoError.code();
        }
        println!("removed {}", manifest.display());
        for l in uninstall(&own_dirs).0 {
            println!("{l}");
        }
        0
    } else {
        let mut rest = own_dirs;
        rest.extend(kept);
        let _ = fs::write(&manifest, format_manifest(&rest));
        eprintln!(
            "swarmcc: some entries could not be removed; they stay recorded in {}",
            manifest.display()
        );
        ExitCode::IoError.code()
    }
}

/// The manifest's entries; an error (no manifest, or one that cannot be read) is
/// printed and becomes the exit code.
fn read_manifest(prefix: &Path, manifest: &Path) -> Result<Vec<Entry>, ExitCode> {
    let text = fs::read_to_string(manifest).map_err(|e| {
        eprintln!(
            "swarmcc: nothing recorded as installed under {} ({}: {e}); \
             `swarmcc --uninstall-shims [DIR]` removes masquerade links",
            prefix.display(),
            manifest.display()
        );
        ExitCode::IoError
    })?;
    parse_manifest(&text).map_err(|e| {
        eprintln!("swarmcc: {}: {e}", manifest.display());
        ExitCode::IoError
    })
}
