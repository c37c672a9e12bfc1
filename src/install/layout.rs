//! Where an install goes: the prefix (given, or the default for root and for a
//! user), whether it is a system install, and the masquerade folders it fills. Pure,
//! but for reading `HOME` and resolving the prefix to an absolute path.

use std::path::{Path, PathBuf};

use crate::shims;

/// Portage's masquerade folder (`FEATURES="distcc"`).
pub const PORTAGE_DISTCC_DIR: &str = "/usr/lib/distcc/bin";
/// Debian's masquerade folder (the `distcc` package's links live directly in it).
pub const DEBIAN_DISTCC_DIR: &str = "/usr/lib/distcc";

/// The default prefix: `/usr/local` for root, else `~/.local`. `None` without a home.
pub fn default_prefix(is_root: bool, home: Option<&Path>) -> Option<PathBuf> {
    if is_root {
        Some(PathBuf::from("/usr/local"))
    } else {
        home.filter(|h| !h.as_os_str().is_empty())
            .map(|h| h.join(".local"))
    }
}

/// A system install: root installing into `/usr/local` or `/usr`. Only then are folders
/// outside the prefix (`/usr/lib/swarmcc/bin`, `/usr/lib/distcc…`) touched.
pub fn is_system_install(is_root: bool, prefix: &Path) -> bool {
    is_root && (prefix == Path::new("/usr/local") || prefix == Path::new("/usr"))
}

/// The masquerade folder for swarmcc's shims.
pub fn shims_dir(system: bool, prefix: &Path) -> PathBuf {
    if system {
        PathBuf::from(shims::SYSTEM_DIR)
    } else {
        prefix.join("lib/swarmcc/bin")
    }
}

/// Which distcc masquerade folder a system install repoints: Debian's
/// `/usr/lib/distcc` when it exists without Portage's `bin` below it, else Portage's
/// `/usr/lib/distcc/bin`. Pure.
pub fn distcc_masquerade_dir(lib_distcc_exists: bool, lib_distcc_bin_exists: bool) -> &'static str {
    if lib_distcc_exists && !lib_distcc_bin_exists {
        DEBIAN_DISTCC_DIR
    } else {
        PORTAGE_DISTCC_DIR
    }
}

/// The prefix to install under, absolute: the one given, or the default.
pub(super) fn resolve_prefix(prefix: &Option<PathBuf>, is_root: bool) -> Result<PathBuf, String> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let p = match prefix {
        Some(p) => p.clone(),
        None => default_prefix(is_root, home.as_deref())
            .ok_or("HOME is not set; name the prefix: swarmcc --install PREFIX")?,
    };
    std::path::absolute(&p).map_err(|e| format!("cannot resolve {}: {e}", p.display()))
}

/// Whether `dir` is on `path`.
pub(super) fn on_path(dir: &Path, path: &std::ffi::OsStr) -> bool {
    std::env::split_paths(path).any(|p| p == dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_folders() {
        let home = Path::new("/home/u");
        assert_eq!(
            default_prefix(true, Some(home)),
            Some(PathBuf::from("/usr/local"))
        );
        assert_eq!(
            default_prefix(false, Some(home)),
            Some(PathBuf::from("/home/u/.local"))
        );
        assert_eq!(default_prefix(false, None), None);
        assert!(is_system_install(true, Path::new("/usr/local")));
        assert!(is_system_install(true, Path::new("/usr")));
        assert!(!is_system_install(true, Path::new("/tmp/stage")));
        assert!(!is_system_install(false, Path::new("/usr/local")));
        assert_eq!(
            shims_dir(true, Path::new("/usr/local")),
            PathBuf::from("/usr/lib/swarmcc/bin")
        );
        assert_eq!(
            shims_dir(false, home),
            PathBuf::from("/home/u/lib/swarmcc/bin")
        );
        assert_eq!(distcc_masquerade_dir(true, false), "/usr/lib/distcc");
        assert_eq!(distcc_masquerade_dir(true, true), "/usr/lib/distcc/bin");
        assert_eq!(distcc_masquerade_dir(false, false), "/usr/lib/distcc/bin");
    }
}
