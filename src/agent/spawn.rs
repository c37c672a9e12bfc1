//! Starting the agent process: the detached spawn (its own session, no inherited
//! descriptors, adopted by init), the marker that stops every client from waiting again
//! for an agent that just failed to start, and the wait until it answers. The running
//! agent's own start-up lock is `socket.rs`'s; what "answers" means is `client.rs`'s.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::broken_marker;

/// How long `connect` waits for a freshly started agent.
const START_WAIT: Duration = Duration::from_secs(2);
/// After a failed start, how long clients skip starting and fail at once.
const BROKEN_FOR: Duration = Duration::from_secs(60);

/// Starts the agent of `dir` (`self_exe --agent-serve DIR`, detached) and waits until
/// `answers` says it does. Fails at once, without starting anything, when a start failed
/// less than `BROKEN_FOR` ago (the marker file says so); a failure sets the marker.
pub(super) fn start_agent(
    dir: &Path,
    self_exe: &Path,
    answers: &dyn Fn() -> bool,
) -> io::Result<()> {
    let marker = broken_marker(dir);
    let recently_broken = fs::metadata(&marker)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < BROKEN_FOR);
    if recently_broken {
        return Err(io::Error::other(format!(
            "the agent failed to start less than {} s ago",
            BROKEN_FOR.as_secs()
        )));
    }
    let failed = |e: io::Error| {
        // Re-created rather than rewritten, so its time is surely now.
        let _ = fs::remove_file(&marker);
        let _ = fs::File::create(&marker);
        e
    };
    let args = ["--agent-serve".as_ref(), dir.as_os_str()];
    spawn_detached(self_exe, &args).map_err(failed)?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(5);
    let mut respawned = false;
    loop {
        // Start-up is the one place where polling is acceptable: the new process
        // gives no other signal that it listens.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
        if answers() {
            return Ok(());
        }
        let waited = started.elapsed();
        if !respawned && waited >= START_WAIT / 4 {
            // The one we started may have seen a dying agent's socket and left.
            respawned = true;
            spawn_detached(self_exe, &args).map_err(failed)?;
        }
        if waited >= START_WAIT {
            return Err(failed(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the agent for {} did not start", dir.display()),
            )));
        }
    }
}

/// Starts `self_exe ARGS` (the agent, the zeroconf helper) fully detached: its own
/// session (a terminal's ^C to make does not reach it), stdio on /dev/null, cwd `/`, no
/// inherited descriptors (make's jobserver pipe, a caller's output pipe), and not our
/// child: the pre-exec hook forks once more and the intermediate exits at once, so the
/// process is adopted by init (or a subreaper) and never lingers as a zombie of a
/// long-lived caller.
pub fn spawn_detached(self_exe: &Path, args: &[&std::ffi::OsStr]) -> io::Result<()> {
    let mut cmd = Command::new(self_exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/");
    // SAFETY: the hook runs in the forked child before exec and only makes
    // async-signal-safe calls (fork, _exit, setsid, fcntl, close_range).
    unsafe {
        cmd.pre_exec(|| {
            match libc::fork() {
                -1 => return Err(io::Error::last_os_error()),
                0 => {}
                _ => libc::_exit(0),
            }
            libc::setsid();
            mark_cloexec_from(3);
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    // Reaps the intermediate process; it exits as soon as it has forked.
    child.wait()?;
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec (runs between fork and exec).
fn mark_cloexec_from(first: libc::c_int) {
    #[cfg(target_os = "linux")]
    {
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        // SAFETY: a plain syscall on descriptor numbers; fails harmlessly if unknown.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            )
        };
        if rc == 0 {
            return;
        }
    }
    // SAFETY: sysconf and fcntl on descriptor numbers have no memory effects.
    unsafe {
        let max = libc::sysconf(libc::_SC_OPEN_MAX).clamp(1024, 65536) as libc::c_int;
        for fd in first..max {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}
