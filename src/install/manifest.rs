//! The install manifest: every file, link, masquerade folder and directory `--install`
//! created, as text (one tab-separated entry per line), read back by `--uninstall`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Where the manifest lives, relative to the prefix.
pub const MANIFEST: &str = "share/swarmcc/install-manifest";

/// One thing `--install` created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A file, with the SHA-256 of what was written.
    File { path: PathBuf, sha256: String },
    /// A symbolic link and its target.
    Link { path: PathBuf, target: PathBuf },
    /// A masquerade folder whose links to `target` are ours.
    Shims { dir: PathBuf, target: PathBuf },
    /// A directory that did not exist before.
    Dir { path: PathBuf },
}

impl Entry {
    fn key(&self) -> (&'static str, &Path) {
        match self {
            Entry::File { path, .. } => ("file", path),
            Entry::Link { path, .. } => ("link", path),
            Entry::Shims { dir, .. } => ("shims", dir),
            Entry::Dir { path } => ("dir", path),
        }
    }
}

/// The manifest's text: a comment, then one tab-separated entry per line.
pub fn format_manifest(entries: &[Entry]) -> String {
    let mut out = String::from(
        "# swarmcc install manifest: what `swarmcc --install` created here.\n\
         # `swarmcc --uninstall` removes each entry that is still as installed.\n",
    );
    for e in entries {
        let _ = match e {
            Entry::File { path, sha256 } => writeln!(out, "file\t{}\t{sha256}", path.display()),
            Entry::Link { path, target } => {
                writeln!(out, "link\t{}\t{}", path.display(), target.display())
            }
            Entry::Shims { dir, target } => {
                writeln!(out, "shims\t{}\t{}", dir.display(), target.display())
            }
            Entry::Dir { path } => writeln!(out, "dir\t{}", path.display()),
        };
    }
    out
}

/// Parses a manifest; the error names the line.
pub fn parse_manifest(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let p = |i: usize| PathBuf::from(f[i]);
        let entry = match (f[0], f.len()) {
            ("file", 3) => Entry::File {
                path: p(1),
                sha256: f[2].to_owned(),
            },
            ("link", 3) => Entry::Link {
                path: p(1),
                target: p(2),
            },
            ("shims", 3) => Entry::Shims {
                dir: p(1),
                target: p(2),
            },
            ("dir", 2) => Entry::Dir { path: p(1) },
            _ => return Err(format!("line {}: cannot read {line:?}", n + 1)),
        };
        out.push(entry);
    }
    Ok(out)
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Merges `new` into `old`: one entry per (kind, path), the newest wins, the order of
/// first appearance kept (directories before what they hold).
pub fn merge(old: Vec<Entry>, new: Vec<Entry>) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for e in old.into_iter().chain(new) {
        match out.iter_mut().find(|o| o.key() == e.key()) {
            Some(slot) => *slot = e,
            None => out.push(e),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trip_and_merge() {
        let entries = vec![
            Entry::Dir {
                path: "/p/share".into(),
            },
            Entry::File {
                path: "/p/share/a".into(),
                sha256: "00ff".into(),
            },
            Entry::Link {
                path: "/p/bin/distcc".into(),
                target: "/x/swarmcc".into(),
            },
            Entry::Shims {
                dir: "/p/lib/swarmcc/bin".into(),
                target: "/x/swarmcc".into(),
            },
        ];
        let text = format_manifest(&entries);
        assert_eq!(parse_manifest(&text).unwrap(), entries);
        assert!(parse_manifest("bogus\tline")
            .unwrap_err()
            .contains("line 1"));
        let newer = vec![Entry::File {
            path: "/p/share/a".into(),
            sha256: "11".into(),
        }];
        let merged = merge(entries.clone(), newer);
        assert_eq!(merged.len(), 4);
        assert_eq!(
            merged[1],
            Entry::File {
                path: "/p/share/a".into(),
                sha256: "11".into()
            }
        );
    }
}
