//! `$DISTCC_DIR/zeroconf/`: the host file that the browse helper keeps and clients read,
//! and the lock that says a helper is running. Names, format and locks are distcc's
//! (`src/zeroconf.c`), so a real distcc and swarmcc share them:
//!
//! * `lock`: the helper holds an exclusive `fcntl` lock on it for as long as it runs. A
//!   client that can take that lock itself knows no helper runs, and starts one.
//! * `hosts`: one `ADDR:PORT/LIMIT` (or `[ADDR6]:PORT/LIMIT`) line per server. The
//!   helper rewrites it under an exclusive `fcntl` lock, clients read it under a shared
//!   one. It is read when the host list is, so its access time says when it was last
//!   used: the helper exits once nobody read it for [`MAX_IDLE`].
//!
//! Where swarmcc does better than distcc, it stays compatible: a client that starts the
//! helper waits for the helper's first complete answer (at most [`FIRST_ANSWER`]) instead
//! of a fixed second, because the new helper holds the host file's lock until then; and
//! clients set the access time themselves after reading, so a mount with `relatime` or
//! `noatime` does not make the helper think it is unused.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// The helper exits when the host file has not been read for this long (distcc's
/// `MAX_IDLE_TIME`).
pub const MAX_IDLE: Duration = Duration::from_secs(20);
/// How long the helper may hold back its first answer: the time Avahi takes to say it
/// has told everything it heard (about 1 s), plus resolving what it found.
pub const FIRST_ANSWER: Duration = Duration::from_secs(3);
/// Host files this large are refused (distcc's limit).
const MAX_FILE: u64 = 100 * 1024;
/// How long a started helper has to take its lock before the client gives up on it.
const START_WAIT: Duration = Duration::from_secs(2);
/// Longest wait for the host file's lock (a helper holds it at most [`FIRST_ANSWER`]
/// plus a write); past it the file is read without the lock.
const READ_WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(10);

/// The files of one `DISTCC_DIR`'s zeroconf cache.
#[derive(Debug, Clone)]
pub struct CacheDir {
    pub dir: PathBuf,
}

impl CacheDir {
    /// `$DISTCC_DIR/zeroconf`.
    pub fn new(distcc_dir: &Path) -> CacheDir {
        CacheDir {
            dir: distcc_dir.join("zeroconf"),
        }
    }

    pub fn hosts_path(&self) -> PathBuf {
        self.dir.join("hosts")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// Opens (creating) one of the two files read-write, mode 0666 before umask, as
    /// distcc does, so that one user's distcc and swarmcc can share them.
    pub fn open(&self, path: &Path) -> io::Result<File> {
        std::fs::create_dir_all(&self.dir)?;
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o666)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }

    /// True when some process (a helper) holds the lock file.
    pub fn helper_running(&self) -> io::Result<bool> {
        let lock = self.open(&self.lock_path())?;
        // Another process's lock shows in F_GETLK; our own would not conflict, and this
        // process holds none here.
        Ok(lock_holder(&lock)?.is_some())
    }

    /// The host file's text for a client: starts the helper (with `start`) when none
    /// runs and waits for its first answer, then reads the file under a shared lock and
    /// marks it used. An error says why no zeroconf hosts can be had.
    pub fn read_for_client(&self, start: &dyn Fn() -> io::Result<()>) -> io::Result<String> {
        if !self.helper_running()? {
            log::debug!(
                "zeroconf: no helper for {}; starting one",
                self.dir.display()
            );
            start().map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start the zeroconf helper: {e}"))
            })?;
            let deadline = Instant::now() + START_WAIT;
            while !self.helper_running()? {
                if Instant::now() >= deadline {
                    return Err(io::Error::other(format!(
                        "the zeroconf helper did not start within {}s",
                        START_WAIT.as_secs()
                    )));
                }
                thread::sleep(POLL);
            }
        }
        // Created if missing: distcc's helper takes its lock before it creates the file.
        let mut file = self.open(&self.hosts_path())?;
        let locked = wait_for_lock(&file, libc::F_RDLCK, Instant::now() + READ_WAIT)?;
        if !locked {
            log::warn!(
                "zeroconf: {} stayed locked for {}s; reading it anyway",
                self.hosts_path().display(),
                READ_WAIT.as_secs()
            );
        }
        let text = read_small(&mut file, &self.hosts_path());
        let _ = unlock(&file);
        mark_used(&file);
        text
    }
}

/// One server as the host file lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The service name (`distcc@host`): one line per name, however many addresses.
    pub name: String,
    pub address: IpAddr,
    /// The interface of an IPv6 link-local address, which is useless without it.
    pub zone: Option<String>,
    pub port: u16,
    pub limit: u32,
}

/// The host file's text: one line per service name (an IPv4 address preferred to an
/// IPv6 one), sorted by name so that the list is stable from one write to the next.
pub fn format_hosts(entries: &[Entry]) -> String {
    let mut chosen: Vec<&Entry> = Vec::new();
    for e in entries {
        match chosen.iter_mut().find(|c| c.name == e.name) {
            Some(c) if c.address.is_ipv6() && e.address.is_ipv4() => *c = e,
            Some(_) => {}
            None => chosen.push(e),
        }
    }
    chosen.sort_by(|a, b| a.name.cmp(&b.name));
    chosen
        .iter()
        .map(|e| match (e.address, &e.zone) {
            (IpAddr::V4(a), _) => format!("{a}:{}/{}\n", e.port, e.limit),
            (IpAddr::V6(a), Some(zone)) => format!("[{a}%{zone}]:{}/{}\n", e.port, e.limit),
            (IpAddr::V6(a), None) => format!("[{a}]:{}/{}\n", e.port, e.limit),
        })
        .collect()
}

/// The comment line a helper that cannot reach Avahi writes into the host file, which
/// both distcc and swarmcc skip as a comment.
const PROBLEM: &str = "# zeroconf: ";

/// The host file's text for a helper that cannot browse: no hosts, and why.
pub fn problem_text(why: &str) -> String {
    format!("{PROBLEM}{}\n", why.replace(['\n', '\r'], " "))
}

/// Why the helper that wrote `text` found no servers, if it said.
pub fn problem(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(PROBLEM))
        .map(str::to_string)
}

/// Replaces the host file's content under its exclusive lock (taken if not yet held,
/// and released afterwards unless `keep_lock`).
pub fn write_hosts(file: &File, text: &str, keep_lock: bool) -> io::Result<()> {
    if !wait_for_lock(file, libc::F_WRLCK, Instant::now() + READ_WAIT)? {
        return Err(io::Error::other("the host file stays locked by a reader"));
    }
    let result = file
        .set_len(0)
        .and_then(|()| file.write_all_at(text.as_bytes(), 0));
    if !keep_lock {
        unlock(file)?;
    }
    result
}

/// Reads a host file, refusing one of [`MAX_FILE`] bytes or more.
fn read_small(file: &mut File, path: &Path) -> io::Result<String> {
    let len = file.metadata()?.len();
    if len >= MAX_FILE {
        return Err(io::Error::other(format!(
            "{} is too large ({len} bytes)",
            path.display()
        )));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// Sets the file's access time to now, leaving its modification time: what a read
/// does on a mount without `noatime`/`relatime`, and what the helper's idle check reads.
fn mark_used(file: &File) {
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
    ];
    // SAFETY: futimens reads two timespecs from a valid array; the fd is owned by `file`.
    unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) };
}

/// How long ago the host file was last read, counting no earlier than `since` (the
/// helper's start: an old access time must not end a helper that just began).
pub fn idle_for(file: &File, since: SystemTime) -> io::Result<Duration> {
    let used = file.metadata()?.accessed()?.max(since);
    Ok(SystemTime::now().duration_since(used).unwrap_or_default())
}

/// After a read under `relatime` the kernel updates the access time again only once
/// the change time is newer, so a helper that only saw distcc clients (which do not
/// set it themselves) would think itself unused: touching the change time (by setting
/// the modification time to itself) makes the next read count.
pub fn rearm_access_time(file: &File) -> io::Result<()> {
    let meta = file.metadata()?;
    use std::os::unix::fs::MetadataExt;
    if (meta.atime(), meta.atime_nsec()) < (meta.ctime(), meta.ctime_nsec()) {
        return Ok(());
    }
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: meta.mtime() as libc::time_t,
            tv_nsec: meta.mtime_nsec() as libc::c_long,
        },
    ];
    // SAFETY: as in `mark_used`.
    if unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn flock_of(kind: libc::c_int) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl
}

/// Tries to take a whole-file `fcntl` lock (`F_RDLCK` or `F_WRLCK`) without waiting.
pub fn try_lock(file: &File, kind: libc::c_int) -> io::Result<bool> {
    let fl = flock_of(kind);
    // SAFETY: fcntl reads `fl` only; the fd is owned by `file` for the call.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(err),
    }
}

/// Waits for a whole-file lock until `deadline`; false if it could not be had by then.
/// Polls rather than blocking in `F_SETLKW`, so that a stuck holder costs a bounded wait.
pub fn wait_for_lock(file: &File, kind: libc::c_int, deadline: Instant) -> io::Result<bool> {
    loop {
        if try_lock(file, kind)? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        thread::sleep(POLL);
    }
}

pub fn unlock(file: &File) -> io::Result<()> {
    let fl = flock_of(libc::F_UNLCK);
    // SAFETY: as in `try_lock`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The pid of another process holding a conflicting lock on the whole file, if any.
fn lock_holder(file: &File) -> io::Result<Option<libc::pid_t>> {
    let mut fl = flock_of(libc::F_WRLCK);
    // SAFETY: F_GETLK writes into `fl`, a valid flock; the fd is owned by `file`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((fl.l_type != libc::F_UNLCK as libc::c_short).then_some(fl.l_pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, address: &str, zone: Option<&str>, limit: u32) -> Entry {
        Entry {
            name: name.into(),
            address: address.parse().unwrap(),
            zone: zone.map(str::to_string),
            port: 3632,
            limit,
        }
    }

    #[test]
    fn host_lines_are_distccs_one_per_name() {
        let text = format_hosts(&[
            entry("distcc@b", "fe80::1", Some("eth0"), 4),
            entry("distcc@b", "10.0.0.2", None, 4),
            entry("distcc@a", "2001:db8::5", None, 7),
            entry("distcc@b", "10.0.0.9", None, 4),
        ]);
        assert_eq!(text, "[2001:db8::5]:3632/7\n10.0.0.2:3632/4\n");
        let v6 = format_hosts(&[entry("distcc@c", "fe80::1", Some("eth0"), 2)]);
        assert_eq!(v6, "[fe80::1%eth0]:3632/2\n");
        // What the client makes of them: plain TCP hosts, protocol 1.
        let list = crate::hosts::parse(&format!("{text}{v6}")).unwrap();
        assert_eq!(list.hosts.len(), 3);
        assert!(list.hosts.iter().all(|h| h.protocol() == 1));
        assert_eq!(list.hosts[1].limit, 4);
    }

    #[test]
    fn a_problem_is_a_comment_to_the_host_parser() {
        let text = problem_text("cannot reach avahi-daemon\n(no bus)");
        assert_eq!(
            problem(&text).as_deref(),
            Some("cannot reach avahi-daemon (no bus)")
        );
        assert!(crate::hosts::parse(&text).unwrap().hosts.is_empty());
        assert_eq!(problem("10.0.0.1:3632/4\n"), None);
    }

    #[test]
    fn write_replaces_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(dir.path());
        let f = cache.open(&cache.hosts_path()).unwrap();
        write_hosts(&f, "10.0.0.1:3632/4\n10.0.0.2:3632/4\n", false).unwrap();
        write_hosts(&f, "10.0.0.3:3632/4\n", false).unwrap();
        let text = std::fs::read_to_string(cache.hosts_path()).unwrap();
        assert_eq!(text, "10.0.0.3:3632/4\n");
    }

    #[test]
    fn read_refuses_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(dir.path());
        let mut f = cache.open(&cache.hosts_path()).unwrap();
        f.set_len(MAX_FILE).unwrap();
        let e = read_small(&mut f, &cache.hosts_path()).unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }

    #[test]
    fn a_client_without_helper_starts_one_and_fails_if_it_never_locks() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(dir.path());
        let started = std::cell::Cell::new(0);
        let start = || {
            started.set(started.get() + 1);
            Ok(())
        };
        let e = cache.read_for_client(&start).unwrap_err();
        assert_eq!(started.get(), 1);
        assert!(e.to_string().contains("did not start"), "{e}");
    }

    #[test]
    fn mark_used_moves_the_access_time_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(dir.path());
        let f = cache.open(&cache.hosts_path()).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        f.set_times(
            std::fs::FileTimes::new()
                .set_accessed(old)
                .set_modified(old),
        )
        .unwrap();
        assert!(idle_for(&f, old).unwrap() >= Duration::from_secs(3500));
        mark_used(&f);
        assert!(idle_for(&f, old).unwrap() < Duration::from_secs(60));
        let modified = f.metadata().unwrap().modified().unwrap();
        assert!(modified <= old + Duration::from_secs(1));
    }
}
