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

/// How often [`first_notice`] lets a notice through for a backoff `period`.
pub fn notice_period(period: Duration) -> Duration {
    if period.is_zero() {
        Duration::from_secs(60)
    } else {
        period
    }
}

/// Decides, among all the processes sharing `lock_dir`, which one reports `key` (a host's
/// failure, "no hosts") to the user: true for the first caller in each `period`, false
/// for the others, so a dead host is announced once per backoff period rather than by
/// every job of a `make -j16`. A `period` of zero (backoff disabled) still limits the
/// notice to once a minute. A `lock_dir` that cannot be written means every caller
/// reports: a repeated message beats a lost one.
pub fn first_notice(lock_dir: &Path, key: &str, period: Duration) -> bool {
    use std::os::unix::io::AsRawFd;
    let period = notice_period(period);
    let _ = fs::create_dir_all(lock_dir);
    let path = lock_dir.join(format!("notice_{key}"));
    let Ok(mut file) = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
    else {
        return true;
    };
    // SAFETY: flock on a descriptor `file` owns for the whole call; the lock goes with it.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return true;
    }
    let fresh = file.metadata().is_ok_and(|m| {
        m.len() > 0
            && m.modified()
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age < period)
    });
    if fresh {
        return false;
    }
    // Rewriting the byte moves the mtime: the next period starts now.
    let _ = file.set_len(0);
    let _ = file.write_all(b"x");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_notice_per_period_among_many_callers() {
        let dir = tempfile::tempdir().unwrap();
        let period = Duration::from_secs(60);
        let claims: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|_| s.spawn(|| first_notice(dir.path(), "tcp_10.0.0.1_3632", period)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap() as usize)
                .sum()
        });
        assert_eq!(claims, 1);
        // Another key is independent; an expired period gives one more notice.
        assert!(first_notice(dir.path(), "nohosts", period));
        let old = SystemTime::now() - Duration::from_secs(120);
        let f = fs::File::options()
            .write(true)
            .open(dir.path().join("notice_tcp_10.0.0.1_3632"))
            .unwrap();
        f.set_modified(old).unwrap();
        assert!(first_notice(dir.path(), "tcp_10.0.0.1_3632", period));
        assert!(!first_notice(dir.path(), "tcp_10.0.0.1_3632", period));
    }

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
