//! `--rustc` started as root: swarmccd serves as an unprivileged user, who cannot run
//! rustup's toolchains in a private home (`/root` is mode 0700). Before root is dropped,
//! each such toolchain is made reachable — its `bin/` and `lib/` hard-linked (the same
//! files, so the same `rustc -vV`) below `/var/lib/swarmccd/rust-toolchains/` — and
//! offered as if given with `--rustc-toolchain`.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::toolchain::rustc::{identity, link_tree, reachable_by_others, rustup_home};

use super::super::ServerConfig;

/// Where the reachable links are made.
const SHARED: &str = "/var/lib/swarmccd/rust-toolchains";

/// Links root's unreachable rustup toolchains and adds them to the configuration.
pub(super) fn share_roots_toolchains(cfg: &mut ServerConfig) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let Some(rustc) = cfg.rustc.as_mut() else {
        return;
    };
    let Some(home) = rustup_home() else { return };
    let Ok(entries) = fs::read_dir(home.join("toolchains")) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let real = entry.file_type().is_ok_and(|t| t.is_dir());
        if !real || reachable_by_others(&dir) || !dir.join("bin/rustc").is_file() {
            continue;
        }
        let dest = Path::new(SHARED).join(entry.file_name());
        match share(&dir, &dest) {
            Ok(()) => {
                log::info!(
                    "rustc toolchain {} linked at {} for the server's user",
                    dir.display(),
                    dest.display()
                );
                rustc.toolchains.push(dest.join("bin/rustc"));
            }
            Err(e) => log::warn!(
                "rustc toolchain {} cannot be offered (the server's user cannot reach it, \
                 and linking it below {SHARED} failed: {e}); install one for that user or \
                 give --rustc-toolchain",
                dir.display()
            ),
        }
    }
}

/// Links `toolchain` at `dest`, unless a link of the same identity is there already.
fn share(toolchain: &Path, dest: &Path) -> io::Result<()> {
    let rustc = |d: &Path| d.join("bin/rustc");
    if dest.exists() {
        if identity(&rustc(dest)).ok() == identity(&rustc(toolchain)).ok() {
            return Ok(());
        }
        fs::remove_dir_all(dest)?;
    }
    // Two servers may start at once: each links its own, the first rename wins.
    let staging = dest.with_extension(format!("new-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    for part in ["bin", "lib"] {
        // Copying a toolchain at start-up would take long: linked or not offered.
        link_tree(&toolchain.join(part), &staging.join(part), false)?;
    }
    let mut d = Some(Path::new(SHARED));
    while let Some(p) = d.filter(|p| *p != Path::new("/")) {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755))?;
        d = p.parent();
    }
    fs::set_permissions(&staging, fs::Permissions::from_mode(0o755))?;
    match fs::rename(&staging, dest) {
        Err(_) if dest.join("bin/rustc").is_file() => {
            let _ = fs::remove_dir_all(&staging);
            Ok(())
        }
        done => done,
    }
}
