//! Claiming a `DISTCC_DIR` for one agent: the start lock (only its holder binds) and
//! the socket file, bound under a private name and renamed into place. What is
//! claimed is served by `socket.rs`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{lock_path, socket_path};

/// How long a starting agent that lost the lock waits for the winner to serve.
const LOSER_WAIT: Duration = Duration::from_secs(2);

/// A claimed directory: the bound socket and the lock held for the agent's life.
pub(super) struct Claim {
    pub(super) socket: PathBuf,
    /// (device, inode) of the socket file we bound, to notice removal or replacement.
    pub(super) socket_id: (u64, u64),
    pub(super) listener: UnixListener,
    /// Closing it releases the lock.
    pub(super) lock: File,
}

/// Takes the start lock and binds the socket; `None` when another agent has the lock
/// (and so serves, or is about to).
pub(super) fn claim(dir: &Path) -> io::Result<Option<Claim>> {
    fs::create_dir_all(dir)?;
    let socket = socket_path(dir);
    let Some(lock) = take_lock(dir, &socket)? else {
        return Ok(None);
    };
    let listener = bind_socket(dir, &socket)?;
    listener.set_nonblocking(true)?;
    let socket_id = file_id(&socket).ok_or_else(|| io::Error::other("socket vanished"))?;
    // A marker left by clients that failed to start an agent is now stale.
    let _ = fs::remove_file(super::broken_marker(dir));
    raise_fd_limit();
    Ok(Some(Claim {
        socket,
        socket_id,
        listener,
        lock,
    }))
}

/// The start lock, or `None` when another agent serves `socket` or keeps the lock.
fn take_lock(dir: &Path, socket: &Path) -> io::Result<Option<File>> {
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path(dir))?;
    if try_flock(&lock)? {
        return Ok(Some(lock));
    }
    // Another agent holds the lock. Usually it serves already; but it may be
    // exiting after idling, in which case its lock goes in a moment and
    // nobody else would serve. Start-up is the one place a short poll is fine.
    let deadline = Instant::now() + LOSER_WAIT;
    loop {
        if UnixStream::connect(socket).is_ok() {
            return Ok(None);
        }
        if try_flock(&lock)? {
            return Ok(Some(lock));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Binds the socket at `socket`; the caller holds the lock, so it alone binds.
fn bind_socket(dir: &Path, socket: &Path) -> io::Result<UnixListener> {
    // Bind under a private name, set the mode, then rename over the public name:
    // clients never see a socket with the umask's permissions, and a stale socket is
    // replaced atomically.
    let tmp = dir.join(format!("swarmcc-agent.sock.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    let placed = fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
        .and_then(|()| fs::rename(&tmp, socket));
    if let Err(e) = placed {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

/// (device, inode) of `path` itself (not what a symlink points to).
pub(super) fn file_id(path: &Path) -> Option<(u64, u64)> {
    fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn try_flock(file: &File) -> io::Result<bool> {
    // SAFETY: flock on an fd owned by `file` for the duration of the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}
/// Lets the agent keep many clients: raise the soft fd limit to the hard one.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(65536).max(lim.rlim_cur);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
