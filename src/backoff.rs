//! Remembers failing hosts for a while, in distcc's own "timefile" format.
//!
//! A failure writes one byte to `$DISTCC_DIR/lock/backoff_<host>_0`; the file's mtime is
//! the failure time. distcc and swarmcc sharing one `DISTCC_DIR` therefore honour each
//! other's backoffs. This module decides nothing about which host to use next.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The timefile of a host, named as distcc names it.
pub fn timefile(lock_dir: &Path, lock_name: &str) -> PathBuf {
    lock_dir.join(format!("backoff_{lock_name}_0"))
}

/// True while the host failed less than `period` ago. A period of zero disables backoff.
pub fn is_backed_off(lock_dir: &Path, lock_name: &str, period: Duration, now: SystemTime) -> bool {
    if period.is_zero() {
        return false;
    }
    let Ok(meta) = fs::metadata(timefile(lock_dir, lock_name)) else {
        return false;
    };
    let Ok(mtime) = meta.modified() else {
        return false;
    };
    match now.duration_since(mtime) {
        Ok(age) => age < period,
        // A timefile from the future (clock stepped back) counts as fresh.
        Err(_) => true,
    }
}

/// Records a failure of the host now. Errors are ignored: backoff is an optimisation,
/// and a read-only `DISTCC_DIR` must not fail a build.
pub fn mark(lock_dir: &Path, lock_name: &str, period: Duration) {
    if period.is_zero() {
        return;
    }
    let _ = fs::create_dir_all(lock_dir);
    let path = timefile(lock_dir, lock_name);
    if let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
    {
        let _ = f.write_all(b"x");
    }
}

/// Forgets a host's failure (after a success, or when the failure was not its fault).
pub fn clear(lock_dir: &Path, lock_name: &str) {
    let _ = fs::remove_file(timefile(lock_dir, lock_name));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_then_clear() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("lock");
        let period = Duration::from_secs(60);
        let now = SystemTime::now();
        assert!(!is_backed_off(&lock, "tcp_10.0.0.1_3632", period, now));
        mark(&lock, "tcp_10.0.0.1_3632", period);
        assert_eq!(
            fs::read(lock.join("backoff_tcp_10.0.0.1_3632_0")).unwrap(),
            b"x"
        );
        assert!(is_backed_off(
            &lock,
            "tcp_10.0.0.1_3632",
            period,
            SystemTime::now()
        ));
        // Expired once the period has passed.
        let later = SystemTime::now() + Duration::from_secs(61);
        assert!(!is_backed_off(&lock, "tcp_10.0.0.1_3632", period, later));
        clear(&lock, "tcp_10.0.0.1_3632");
        assert!(!is_backed_off(
            &lock,
            "tcp_10.0.0.1_3632",
            period,
            SystemTime::now()
        ));
    }

    #[test]
    fn zero_period_disables() {
        let dir = tempfile::tempdir().unwrap();
        mark(dir.path(), "h", Duration::ZERO);
        assert!(!timefile(dir.path(), "h").exists());
        assert!(!is_backed_off(
            dir.path(),
            "h",
            Duration::ZERO,
            SystemTime::now()
        ));
    }
}
