//! Detaching into the background, telling the launching process how startup ended
//! (so that it returns only once the server is ready), and the pid file.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::exit::ExitCode;

use super::StartError;

/// Forks into the background. The parent waits until the child reports how its
/// startup ended ([`Readiness`]) and exits with that: 0 once the server is ready (pid
/// file written, port listening), else the child's exit code and message, so scripts can
/// read the pid file the moment the command returns, as with distccd. The child starts
/// a new session, leaves the working directory, and points stdio at /dev/null (stderr
/// stays when it is the log). Must run before any thread is started.
pub(super) fn detach_from_terminal(keep_stderr: bool) -> Result<Readiness, StartError> {
    let fail = |what: &str| {
        StartError::new(
            ExitCode::Distcc,
            format!("cannot detach ({what}): {}", io::Error::last_os_error()),
        )
    };
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(fail("pipe"));
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no other thread exists yet, so the child's copy of the process is
    // consistent; both sides only continue with ordinary code.
    match unsafe { libc::fork() } {
        -1 => return Err(fail("fork")),
        0 => drop(read_end),
        _ => {
            drop(write_end);
            let code = Readiness::wait(read_end);
            // SAFETY: _exit skips destructors and atexit handlers that belong to the child.
            unsafe { libc::_exit(code) }
        }
    }
    // SAFETY: setsid has no memory-safety preconditions.
    if unsafe { libc::setsid() } == -1 {
        return Err(fail("setsid"));
    }
    std::env::set_current_dir("/").map_err(|_| fail("chdir /"))?;
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|_| fail("open /dev/null"))?;
    let targets: &[libc::c_int] = if keep_stderr { &[0, 1] } else { &[0, 1, 2] };
    for &fd in targets {
        // SAFETY: dup2 onto a standard descriptor from one we own.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } == -1 {
            return Err(fail("redirect stdio"));
        }
    }
    Ok(Readiness {
        pipe: fs::File::from(write_end),
    })
}

/// The detached server's pipe to the process that launched it: one byte 0 for "ready",
/// or an exit code byte and the message of the failure.
pub(super) struct Readiness {
    pipe: fs::File,
}

impl Readiness {
    pub(super) fn succeeded(mut self) {
        let _ = self.pipe.write_all(&[0]);
    }

    pub(super) fn failed(mut self, e: &StartError) {
        let mut msg = vec![e.code.code() as u8];
        msg.extend_from_slice(e.message.as_bytes());
        let _ = self.pipe.write_all(&msg);
    }

    /// The launcher's side: what the detached server said, as this process's exit code.
    fn wait(pipe: OwnedFd) -> i32 {
        let mut said = Vec::new();
        let _ = io::Read::read_to_end(&mut fs::File::from(pipe), &mut said);
        match said.split_first() {
            Some((0, _)) => 0,
            Some((&code, message)) => {
                eprintln!("swarmccd: {}", String::from_utf8_lossy(message));
                i32::from(code)
            }
            None => {
                eprintln!(
                    "swarmccd: the server exited during startup without saying why (see its log)"
                );
                ExitCode::Distcc.code()
            }
        }
    }
}

/// The pid file: written after detaching, removed (or emptied, if the directory does
/// not let the unprivileged user remove it) when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    pub fn write(path: &Path) -> Result<PidFile, StartError> {
        let text = format!("{}\n", std::process::id());
        let written = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        written.map_err(|e| {
            StartError::new(
                ExitCode::IoError,
                format!("cannot write pid file {}: {e}", path.display()),
            )
        })?;
        Ok(PidFile {
            path: path.to_owned(),
        })
    }

    pub(super) fn chown(&self, uid: libc::uid_t, gid: libc::gid_t) {
        if let Err(e) = std::os::unix::fs::chown(&self.path, Some(uid), Some(gid)) {
            log::warn!(
                "cannot hand pid file {} to uid {uid}: {e}",
                self.path.display()
            );
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if fs::remove_file(&self.path).is_err() {
            let _ = OpenOptions::new()
                .write(true)
                .open(&self.path)
                .and_then(|f| f.set_len(0));
        }
    }
}
