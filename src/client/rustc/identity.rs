//! Our rustc's identity (`toolchain::rustc::identity`), which a server must match:
//! asked once per toolchain binary and remembered under `DISTCC_DIR` as C compilers'
//! identities are (`toolchain::cached_identity_with`), since cargo starts the wrapper
//! hundreds of times per build and `rustc -vV` costs a process each time.

use std::fs;
use std::path::Path;

use crate::config::ClientConfig;
use crate::toolchain::{self, rustc::identity};

/// The identity of `program`, from the cache when the file is unchanged; `None` when
/// it does not say it is a rustc.
pub(super) fn of(cfg: &ClientConfig, program: &Path) -> Option<String> {
    // cargo run by rustup names the toolchain's own rustc; rustup's proxy (a link to
    // `rustup`) runs whichever toolchain is selected where it runs: asked each time.
    let real = fs::canonicalize(program).ok()?;
    if real.file_name().is_some_and(|n| n == "rustup") {
        return identity(program).ok();
    }
    let dir = cfg.distcc_dir.join("rustc-identities");
    toolchain::cached_identity_with(&dir, program, identity)
        .ok()
        .filter(|id| !id.is_empty())
}
