//! Our rustc's identity (`toolchain::rustc::identity`), which a server must match: run
//! once per toolchain binary and kept under `DISTCC_DIR`, since cargo starts the
//! wrapper hundreds of times per build and `rustc -vV` costs a process each time.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::blobs::sha256_hex;
use crate::config::ClientConfig;
use crate::toolchain::rustc::identity;

/// The identity of `program`, from the cache when the file is unchanged.
pub(super) fn of(cfg: &ClientConfig, program: &Path) -> Option<String> {
    // cargo run by rustup names the toolchain's own rustc; rustup's proxy (a link to
    // `rustup`) runs whichever toolchain is selected where it runs: asked each time.
    let real = fs::canonicalize(program).ok()?;
    if real.file_name().is_some_and(|n| n == "rustup") {
        return identity(program).ok();
    }
    let meta = fs::metadata(&real).ok()?;
    let key = sha256_hex(
        format!(
            "{}\0{}\0{}\0{}\0{}",
            real.display(),
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime_nsec() + meta.mtime() * 1_000_000_000
        )
        .as_bytes(),
    );
    let dir = cfg.distcc_dir.join("rustc-identities");
    let file = dir.join(&key[..32]);
    if let Ok(text) = fs::read_to_string(&file) {
        if !text.is_empty() {
            return Some(text);
        }
    }
    let id = identity(program).ok()?;
    if fs::create_dir_all(&dir).is_ok() {
        let tmp = dir.join(format!(".{}.{}", &key[..32], std::process::id()));
        if fs::write(&tmp, &id).is_ok() && fs::rename(&tmp, &file).is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }
    Some(id)
}
