//! Which hosts speak swarmcc's extension, remembered across jobs and processes in the
//! client's directory, so that a swarmccd's very first job already carries the
//! compiler's identity and a plain distccd is not asked again on every job.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// What we know of each host's dialect, in `$DISTCC_DIR/ext/` (hosts that offered
/// swarmcc's extension) and `$DISTCC_DIR/plain/` (hosts that closed on it). A host in
/// neither is asked in the extension: a plain distccd closes at once on its version
/// number, and is then left alone for [`PLAIN_MEMORY`]. A swarmccd's very first job is
/// thus already checked for a matching compiler.
pub(super) struct ExtHosts {
    ext: PathBuf,
    plain: PathBuf,
}

/// How long a host that closed on the extension is spoken to in plain distcc only
/// (a swarmccd that replaces it is noticed sooner: it advertises after a plain reply).
const PLAIN_MEMORY: Duration = Duration::from_secs(3600);

/// What the memory of a host with a farm cache holds.
const CACHE_MARK: &[u8] = b"cache\n";

impl ExtHosts {
    pub fn new(distcc_dir: &Path) -> Self {
        ExtHosts {
            ext: distcc_dir.join("ext"),
            plain: distcc_dir.join("plain"),
        }
    }

    /// Whether to speak the extension to this host.
    pub fn try_ext(&self, lock_name: &str) -> bool {
        if self.ext.join(lock_name).exists() {
            return true;
        }
        let plain_since = std::fs::metadata(self.plain.join(lock_name))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        !matches!(plain_since, Some(age) if age < PLAIN_MEMORY)
    }

    /// Whether the host offered its farm cache (it listed `cache` in its features):
    /// only then is it sent a key before the request.
    pub fn offers_cache(&self, lock_name: &str) -> bool {
        std::fs::read(self.ext.join(lock_name)).is_ok_and(|t| t == CACHE_MARK)
    }

    /// The host offered the extension (and its farm cache, or not): speak it from now
    /// on. The file holds `cache` for a host with a farm cache.
    pub fn remember(&self, lock_name: &str, cache: bool) {
        let _ = std::fs::remove_file(self.plain.join(lock_name));
        let path = self.ext.join(lock_name);
        let mark: &[u8] = if cache { CACHE_MARK } else { b"" };
        if std::fs::read(&path).ok().as_deref() != Some(mark) {
            let _ = std::fs::create_dir_all(&self.ext);
            // Written whole under another name and renamed: a reader never sees half.
            let tmp = self
                .ext
                .join(format!(".{lock_name}.{}", std::process::id()));
            if std::fs::write(&tmp, mark).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
    }

    /// The host closed on the extension: plain distcc only, for [`PLAIN_MEMORY`].
    pub fn forget(&self, lock_name: &str) {
        let _ = std::fs::remove_file(self.ext.join(lock_name));
        let _ = std::fs::create_dir_all(&self.plain);
        let _ = std::fs::write(self.plain.join(lock_name), b"");
    }
}
