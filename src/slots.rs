//! Concurrency slots as locked files, shared with distcc: `$DISTCC_DIR/lock/cpu_<host>_<n>`.
//!
//! A slot is held by an exclusive `fcntl` write lock on its file; the kernel drops the
//! lock when the holder exits, so a killed wrapper never leaks a slot. Using distcc's
//! names and lock type means distcc and swarmcc processes share one set of limits.
//! Choosing *which* host to use is the caller's business; this file only locks.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A held slot; dropping it releases the lock.
#[derive(Debug)]
pub struct SlotLease {
    _file: File,
    /// Index of the host in the caller's list (for local slots: 0).
    pub host: usize,
    /// Slot number on that host.
    pub slot: u32,
}

/// One lockable resource: its lock-file stem (`tcp_1.2.3.4_3632`, `localhost`) and limit.
#[derive(Debug, Clone)]
pub struct Pool<'a> {
    pub lock_name: &'a str,
    pub limit: u32,
}

fn lock_path(dir: &Path, lock_name: &str, slot: u32) -> PathBuf {
    dir.join(format!("cpu_{lock_name}_{slot}"))
}

/// Tries to take slot `slot` of `lock_name` without waiting.
fn try_lock(dir: &Path, lock_name: &str, slot: u32) -> io::Result<Option<File>> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o666)
        .open(lock_path(dir, lock_name, slot))?;
    // SAFETY: `flock` is a plain C struct for which all-zero is a valid value; fcntl only
    // reads it, and the fd is owned by `file` for the duration of the call.
    let rc = unsafe {
        let mut fl: libc::flock = std::mem::zeroed();
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl)
    };
    if rc == 0 {
        return Ok(Some(file));
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(None),
        _ => Err(err),
    }
}

/// Takes the first free slot among `pools`, filling slot 0 of every pool before slot 1
/// (as distcc does, so load spreads across hosts). Waits until one frees up or
/// `deadline` passes. Returns `Ok(None)` on timeout, and an error when the lock
/// directory is unusable (the caller then proceeds without a slot rather than hang).
pub fn acquire(
    dir: &Path,
    pools: &[Pool<'_>],
    deadline: Option<Instant>,
) -> io::Result<Option<SlotLease>> {
    fs::create_dir_all(dir)?;
    let max = pools.iter().map(|p| p.limit).max().unwrap_or(0);
    if max == 0 {
        return Ok(None);
    }
    let mut pause = Duration::from_millis(5);
    loop {
        for slot in 0..max {
            for (host, pool) in pools.iter().enumerate() {
                if slot < pool.limit {
                    if let Some(file) = try_lock(dir, pool.lock_name, slot)? {
                        return Ok(Some(SlotLease {
                            _file: file,
                            host,
                            slot,
                        }));
                    }
                }
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        // Lock files give no wake-up; poll with a short, growing pause. (A lock-free
        // agent with instant hand-over replaces this in the scheduler.)
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_fill_breadth_first_and_release_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let pools = [
            Pool {
                lock_name: "tcp_a_1",
                limit: 2,
            },
            Pool {
                lock_name: "tcp_b_1",
                limit: 1,
            },
        ];
        let now = Some(Instant::now());
        // fcntl locks are per process, so a second lock from this same process would
        // succeed; check names and order instead, and contention in a child process.
        let first = acquire(dir.path(), &pools, now).unwrap().unwrap();
        assert_eq!((first.host, first.slot), (0, 0));
        assert!(dir.path().join("cpu_tcp_a_1_0").exists());
        drop(first);
    }

    #[test]
    fn a_lock_held_by_another_process_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(dir.path(), "localhost", 0);
        fs::write(&path, b"").unwrap();
        // fcntl locks are per process, so the competing holder must be another
        // process: a forked child takes the lock, says so on one pipe, and keeps it
        // until the other pipe closes (no sleeps: a loaded machine may be slow to run
        // either side).
        let (mut locked, mut release) = ([0; 2], [0; 2]);
        // Close-on-exec: programs other tests start meanwhile must not hold the ends.
        // SAFETY: pipe2(2) fills the two-element arrays it is given.
        unsafe {
            assert_eq!(libc::pipe2(locked.as_mut_ptr(), libc::O_CLOEXEC), 0);
            assert_eq!(libc::pipe2(release.as_mut_ptr(), libc::O_CLOEXEC), 0);
        }
        // SAFETY: the child only calls async-signal-safe functions before _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let mut byte = 0u8;
            let code = match try_lock(dir.path(), "localhost", 0) {
                // SAFETY: write/read of one byte on the pipes' open ends.
                Ok(Some(_f)) => unsafe {
                    libc::close(release[1]);
                    libc::write(locked[1], [1u8].as_ptr().cast(), 1);
                    // Returns at end of file: the parent closed its end.
                    libc::read(release[0], (&mut byte as *mut u8).cast(), 1);
                    0
                },
                _ => 1,
            };
            unsafe { libc::_exit(code) };
        }
        // SAFETY: closing the ends this process does not use, reading one byte.
        let mut byte = 0u8;
        unsafe {
            libc::close(locked[1]);
            libc::close(release[0]);
            assert_eq!(libc::read(locked[0], (&mut byte as *mut u8).cast(), 1), 1);
            libc::close(locked[0]);
        }
        let pools = [Pool {
            lock_name: "localhost",
            limit: 1,
        }];
        let busy = acquire(dir.path(), &pools, Some(Instant::now())).unwrap();
        assert!(busy.is_none(), "slot held by the child must be busy");
        // Once the child exits the kernel drops its lock and we get the slot.
        // SAFETY: closing our end of the release pipe lets the child go.
        unsafe { libc::close(release[1]) };
        let got = acquire(
            dir.path(),
            &pools,
            Some(Instant::now() + Duration::from_secs(30)),
        )
        .unwrap();
        assert!(got.is_some());
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(status, 0);
    }
}
