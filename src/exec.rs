//! Runs one compiler process (or a pipeline of them) to completion: its own process
//! group, stdout and stderr captured, a deadline, a cancellation check, and the raw
//! wait status as distcc sends it.
//!
//! It knows nothing of sockets, protocols or what the arguments mean: callers build the
//! `Command` (program, arguments, cwd, environment) and decide what a status means.
//!
//! Output goes to anonymous temp files rather than pipes, so a chatty compiler can never
//! block on a full pipe and a stray grandchild that keeps a descriptor open can never
//! block us. The exit is noticed by a small waiter thread (`waitid` with `WNOWAIT`), so
//! a fast compile costs no polling latency, while the caller's cancellation check still
//! runs every `poll_interval`. Because the waiter does not reap, the process group still
//! exists (its leader is a zombie) when we kill leftovers, so the group id cannot have
//! been reused by then.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How to supervise a compiler.
#[derive(Debug, Clone)]
pub struct Options {
    /// Kill the process group when this instant passes.
    pub deadline: Option<Instant>,
    /// How often the cancellation check runs while the compiler is alive.
    pub poll_interval: Duration,
    /// Between SIGTERM and SIGKILL when killing.
    pub kill_grace: Duration,
    /// Directory for the capture files (default: `std::env::temp_dir()`).
    pub capture_dir: Option<PathBuf>,
    /// At most this many bytes of each of stdout and stderr are returned.
    pub max_output: u64,
    /// SIGKILL whatever is left in the process group once the compiler exits, so a
    /// job never leaves processes behind.
    pub kill_leftovers: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            deadline: None,
            poll_interval: Duration::from_millis(250),
            kill_grace: Duration::from_secs(2),
            capture_dir: None,
            max_output: 64 * 1024 * 1024,
            kill_leftovers: true,
        }
    }
}

/// How the compiler's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It exited (or died of a signal) on its own.
    Exited,
    /// The deadline passed and the process group was killed.
    TimedOut,
    /// The cancellation check returned true and the process group was killed.
    Cancelled,
}

/// A finished compiler run.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Raw wait(2) status (`exit << 8 | signal`, plus 0x80 for a core dump); for a
    /// pipeline, that of its first stage that did not exit 0 (else 0).
    pub status: u32,
    /// The status of each stage of a pipeline, in order (one for a single command).
    pub stages: Vec<u32>,
    pub end: End,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

/// Spawns `cmd` in a new process group with stdin from `/dev/null` and stdout/stderr
/// captured, and waits for it. `cancel` is called about every `poll_interval` while the
/// compiler runs; returning true kills the group (SIGTERM, then SIGKILL after
/// `kill_grace`). Fails only if the compiler cannot be started or captured.
pub fn run(
    cmd: &mut Command,
    opts: &Options,
    cancel: &mut dyn FnMut() -> bool,
) -> io::Result<Finished> {
    spawn(cmd, opts, false)?.wait(opts, cancel)
}

/// A compiler started by [`spawn`]; [`Running::wait`] supervises it to the end.
#[derive(Debug)]
pub struct Running {
    /// The stages in pipeline order; the first leads the process group.
    children: Vec<Child>,
    /// Its standard input, when asked for: write the source, then drop it.
    pub stdin: Option<ChildStdin>,
    out: File,
    err: File,
    start: Instant,
    /// Set once `wait` has reaped the child.
    reaped: bool,
}

/// Starts `cmd` as [`run`] does; with `piped_stdin` its standard input is a pipe the
/// caller feeds (so the compiler can start before its input has arrived).
pub fn spawn(cmd: &mut Command, opts: &Options, piped_stdin: bool) -> io::Result<Running> {
    spawn_pipeline(std::slice::from_mut(cmd), opts, piped_stdin)
}

/// Starts `cmds` as a pipeline, each one's standard output feeding the next one's
/// input, all in one process group led by the first; the last one's output and every
/// stage's diagnostics are captured (as a compiler driver runs its `-pipe` stages).
pub fn spawn_pipeline(
    cmds: &mut [Command],
    opts: &Options,
    piped_stdin: bool,
) -> io::Result<Running> {
    let start = Instant::now();
    let capture = || match &opts.capture_dir {
        Some(dir) => tempfile::tempfile_in(dir),
        None => tempfile::tempfile(),
    };
    let out = capture()?;
    let err = capture()?;
    let mut running = Running {
        children: Vec::with_capacity(cmds.len()),
        stdin: None,
        out,
        err,
        start,
        reaped: false,
    };
    let last = cmds.len().saturating_sub(1);
    let mut previous_out: Option<Stdio> = None;
    for (i, cmd) in cmds.iter_mut().enumerate() {
        let stdin = match previous_out.take() {
            Some(pipe) => pipe,
            None if piped_stdin => Stdio::piped(),
            None => Stdio::null(),
        };
        let stdout = if i == last {
            Stdio::from(running.out.try_clone()?)
        } else {
            Stdio::piped()
        };
        let leader = running.children.first().map_or(0, |c| c.id() as i32);
        cmd.stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::from(running.err.try_clone()?))
            .process_group(leader);
        let spawned = cmd.spawn();
        // Our copies of the descriptors inside `cmd` must not outlive the spawn: they
        // would keep files and pipes open, and the Command may be reused.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // On an error, dropping `running` kills and reaps the stages already started.
        let mut child = spawned?;
        if i == 0 {
            running.stdin = child.stdin.take();
        }
        if let Some(pipe) = child.stdout.take() {
            previous_out = Some(Stdio::from(pipe));
        }
        running.children.push(child);
    }
    Ok(running)
}

impl Running {
    /// Another handle on the file capturing its stderr, to read what it has written so
    /// far while it runs (with positioned reads: the file's offset is shared).
    pub fn stderr_file(&self) -> io::Result<File> {
        self.err.try_clone()
    }

    /// Waits for the compiler (see [`run`]), killing its group on the deadline or when
    /// `cancel` says so. Closes its standard input first if the caller has not.
    pub fn wait(
        mut self,
        opts: &Options,
        cancel: &mut dyn FnMut() -> bool,
    ) -> io::Result<Finished> {
        drop(self.stdin.take());
        let pids: Vec<libc::pid_t> = self.children.iter().map(|c| c.id() as _).collect();
        let pid = pids.first().copied().unwrap_or(0);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for pid in pids {
                wait_exited_no_reap(pid);
            }
            let _ = tx.send(());
        });

        let mut end = End::Exited;
        loop {
            let mut wait = opts.poll_interval;
            if let Some(deadline) = opts.deadline {
                wait = wait.min(deadline.saturating_duration_since(Instant::now()));
            }
            match rx.recv_timeout(wait) {
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if opts.deadline.is_some_and(|d| Instant::now() >= d) {
                end = End::TimedOut;
            } else if cancel() {
                end = End::Cancelled;
            } else {
                continue;
            }
            kill_group(pid, libc::SIGTERM);
            if rx.recv_timeout(opts.kill_grace).is_err() {
                kill_group(pid, libc::SIGKILL);
                let _ = rx.recv();
            }
            break;
        }
        if opts.kill_leftovers || end != End::Exited {
            // The leader is a zombie until we reap it below, so the group id is still ours.
            kill_group(pid, libc::SIGKILL);
        }
        let mut stages = Vec::with_capacity(self.children.len());
        for child in &mut self.children {
            stages.push(child.wait()?.into_raw() as u32);
        }
        self.reaped = true;
        Ok(Finished {
            status: stages.iter().copied().find(|&s| s != 0).unwrap_or(0),
            stages,
            end,
            stdout: read_capture(&mut self.out, opts.max_output)?,
            stderr: read_capture(&mut self.err, opts.max_output)?,
            elapsed: self.start.elapsed(),
        })
    }
}

impl Drop for Running {
    /// A compiler nobody waited for (an abandoned job) is killed with its group and
    /// reaped: a job never leaves processes behind.
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        drop(self.stdin.take());
        if let Some(leader) = self.children.first() {
            kill_group(leader.id() as libc::pid_t, libc::SIGKILL);
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
    }
}

/// Blocks until process `pid` has exited, without reaping it.
fn wait_exited_no_reap(pid: libc::pid_t) {
    loop {
        // SAFETY: `info` is a plain C struct that waitid fills in; zeroed is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid only writes to `info`, which lives for the whole call.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// Sends `sig` to the process group led by `pgid`; a group that is already gone is fine.
fn kill_group(pgid: libc::pid_t, sig: libc::c_int) {
    if pgid <= 0 {
        return; // never signal "every process" or our own group by accident
    }
    // SAFETY: killpg has no memory-safety preconditions.
    unsafe {
        libc::killpg(pgid, sig);
    }
}

fn read_capture(f: &mut File, max: u64) -> io::Result<Vec<u8>> {
    f.seek(SeekFrom::Start(0))?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The raw status of a normal exit with `code`.
pub fn exit_status(code: u8) -> u32 {
    u32::from(code) << 8
}

/// The exit code, if the process exited normally.
pub fn exit_code(status: u32) -> Option<i32> {
    (status & 0x7f == 0).then_some(((status >> 8) & 0xff) as i32)
}

/// The signal that killed the process, if one did.
pub fn signal(status: u32) -> Option<i32> {
    let sig = (status & 0x7f) as i32;
    (sig != 0 && sig != 0x7f).then_some(sig)
}

/// Whether the process dumped core.
pub fn core_dumped(status: u32) -> bool {
    signal(status).is_some() && status & 0x80 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn captures_output_and_status() {
        let f = run(
            &mut sh("echo out; echo err >&2; exit 3"),
            &Options::default(),
            &mut || false,
        )
        .unwrap();
        assert_eq!(f.end, End::Exited);
        assert_eq!(exit_code(f.status), Some(3));
        assert_eq!(f.status, 0x300);
        assert_eq!(f.stdout, b"out\n");
        assert_eq!(f.stderr, b"err\n");
    }

    #[test]
    fn chatty_output_does_not_deadlock() {
        let f = run(
            &mut sh("head -c 3000000 /dev/zero; head -c 2000000 /dev/zero >&2"),
            &Options::default(),
            &mut || false,
        )
        .unwrap();
        assert_eq!(f.stdout.len(), 3_000_000);
        assert_eq!(f.stderr.len(), 2_000_000);
    }

    /// A live (not zombie) process whose command line contains `needle`.
    fn running_with(needle: &str) -> Option<u32> {
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let zombie = stat.rsplit_once(')')?.1.trim_start().starts_with('Z');
            let named = String::from_utf8_lossy(&cmdline).contains(needle);
            (named && !zombie).then_some(pid)
        })
    }

    #[test]
    fn deadline_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild-survived");
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let opts = Options {
            deadline: Some(Instant::now() + Duration::from_millis(300)),
            ..Options::default()
        };
        let t = Instant::now();
        let f = run(&mut sh(&script), &opts, &mut || false).unwrap();
        assert_eq!(f.end, End::TimedOut);
        assert_eq!(signal(f.status), Some(libc::SIGTERM));
        // Ended by the deadline, not by the script's 30 s.
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
        // The subshell that would touch the marker is a fork of the script's shell (its
        // command line names the marker): once none runs, the marker can never appear.
        // A loaded machine may take a while to let it die; a survivor touches the
        // marker after its 2 s.
        let needle = marker.display().to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(pid) = running_with(&needle) {
            assert!(Instant::now() < deadline, "{pid} still runs: {needle}");
            thread::sleep(Duration::from_millis(20));
        }
        assert!(!marker.exists(), "the grandchild was killed with the group");
    }

    #[test]
    fn cancellation_is_polled() {
        let mut calls = 0;
        let opts = Options {
            poll_interval: Duration::from_millis(20),
            ..Options::default()
        };
        let f = run(&mut sh("sleep 30"), &opts, &mut || {
            calls += 1;
            calls >= 3
        })
        .unwrap();
        assert_eq!(f.end, End::Cancelled);
        assert_eq!(calls, 3);
    }

    #[test]
    fn missing_program_is_an_error() {
        let err = run(
            &mut Command::new("/nonexistent/cc"),
            &Options::default(),
            &mut || false,
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_pipeline_feeds_each_stage_from_the_previous_one() {
        let mut cmds = [sh("tr a-z A-Z; echo one >&2"), sh("rev; echo two >&2")];
        let mut r = spawn_pipeline(&mut cmds, &Options::default(), true).unwrap();
        std::io::Write::write_all(r.stdin.as_mut().unwrap(), b"abc\n").unwrap();
        let f = r.wait(&Options::default(), &mut || false).unwrap();
        assert_eq!(f.end, End::Exited);
        assert_eq!(f.stdout, b"CBA\n");
        let err = String::from_utf8(f.stderr).unwrap();
        assert!(err.contains("one\n") && err.contains("two\n"), "{err}");
        assert_eq!(f.stages, vec![0, 0]);
        assert_eq!(f.status, 0);
    }

    #[test]
    fn a_pipeline_reports_every_stage_and_its_first_failure() {
        let mut cmds = [sh("cat >/dev/null; exit 3"), sh("cat; exit 5")];
        let f = spawn_pipeline(&mut cmds, &Options::default(), false)
            .unwrap()
            .wait(&Options::default(), &mut || false)
            .unwrap();
        assert_eq!(f.stages, vec![0x300, 0x500]);
        assert_eq!(f.status, 0x300);
    }

    #[test]
    fn a_pipeline_is_one_process_group_killed_together() {
        let opts = Options {
            deadline: Some(Instant::now() + Duration::from_millis(300)),
            ..Options::default()
        };
        let t = Instant::now();
        let mut cmds = [sh("sleep 30"), sh("cat; sleep 30")];
        let f = spawn_pipeline(&mut cmds, &opts, false)
            .unwrap()
            .wait(&opts, &mut || false)
            .unwrap();
        assert_eq!(f.end, End::TimedOut);
        assert!(f.stages.iter().all(|&s| signal(s) == Some(libc::SIGTERM)));
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn status_helpers() {
        assert_eq!(exit_status(1), 0x100);
        assert_eq!(exit_code(0x6e00), Some(110));
        assert_eq!(signal(0x6e00), None);
        assert_eq!(signal(9), Some(9));
        assert_eq!(exit_code(9), None);
        assert!(core_dumped(0x8b));
        assert!(!core_dumped(0x100));
    }
}
