//! The generated documentation (man pages, bash, zsh and fish completions), made by
//! `build.rs` from the clap definitions, embedded in the binary and written under a
//! prefix.

use std::io;
use std::path::{Path, PathBuf};

use super::files::write_file;
use super::manifest::Entry;

/// The generated documentation, relative to the prefix.
pub const DOCS: &[(&str, &[u8])] = &[
    (
        "share/man/man1/swarmcc.1",
        include_bytes!(concat!(env!("OUT_DIR"), "/docs/swarmcc.1")),
    ),
    (
        "share/man/man1/swarmccd.1",
        include_bytes!(concat!(env!("OUT_DIR"), "/docs/swarmccd.1")),
    ),
    (
        "share/bash-completion/completions/swarmcc",
        include_bytes!(concat!(env!("OUT_DIR"), "/docs/swarmcc.bash")),
    ),
    (
        "share/bash-completion/completions/swarmccd",
        include_bytes!(concat!(env!("OUT_DIR"), "/docs/swarmccd.bash")),
    ),
    (
        "share/zsh/site-functions/_swarmcc",
        include_bytes!(concat!(env!("OUT_DIR"), "/docs/_swarmcc")),
    ),
    (
        "share/zsh/site-functions/_swarmccd",
        include_bytes!(concat!(env!("OUT_DIR"), "/docs/_swarmccd")),
    ),
    (
        "share/fish/vendor_completions.d/swarmcc.fish",
        include_bytes!(concat!(env!("OUT_DIR"), "/docs/swarmcc.fish")),
    ),
    (
        "share/fish/vendor_completions.d/swarmccd.fish",
        include_bytes!(concat!(env!("OUT_DIR"), "/docs/swarmccd.fish")),
    ),
];

/// Writes the documentation under `prefix`; returns the paths written.
pub fn install_docs(prefix: &Path, record: &mut Vec<Entry>) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (rel, bytes) in DOCS {
        let path = prefix.join(rel);
        write_file(&path, bytes, record)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_are_embedded() {
        for (rel, bytes) in DOCS {
            assert!(bytes.len() > 100, "{rel} is empty");
        }
        let man = String::from_utf8_lossy(DOCS[0].1);
        assert!(man.contains(".TH swarmcc"), "{man}");
    }
}
