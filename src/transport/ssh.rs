//! ssh hosts (`[user]@host[:command]`), run as distcc 3.4 runs them (`src/ssh.c`):
//!
//! ```text
//! <ssh> [DISTCC_SSH's other words…] [-l USER] HOST <COMMAND|distccd> --inetd --enable-tcp-insecure
//! ```
//!
//! started without a shell, its standard input and output one end of a socketpair
//! that is the connection. The remote server serves that one connection in `--inetd`
//! mode and exits; ssh exits with it and is reaped after the job. What ssh writes on
//! stderr is collected: a failure's reason quotes it, otherwise it goes to the log.
//!
//! ssh's own failures look like a server closing the connection; its exit status
//! tells them apart: 255 is ssh's (no connection, refused, authentication), 126 and
//! 127 the remote shell's (the command is not there, or cannot run); anything else is
//! the server's, which ran.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use wait_timeout::ChildExt;

use super::Stream;

/// The program run when `DISTCC_SSH` names none.
pub const DEFAULT_SSH: &str = "ssh";
/// The remote command when the host names none.
pub const DEFAULT_COMMAND: &str = "distccd";
/// How many of `DISTCC_SSH`'s words after the program distcc passes on.
pub const MAX_SSH_ARGS: usize = 12;
/// How long a finished job waits for ssh to exit before it is killed.
const EXIT_WAIT: Duration = Duration::from_secs(5);
/// How long a failed conversation waits for ssh's exit status.
const FAILURE_WAIT: Duration = Duration::from_secs(2);
/// The tail of ssh's stderr that is kept.
const STDERR_KEEP: usize = 8 * 1024;

/// `DISTCC_SSH`, split as distcc splits it: at spaces (no quoting), the first word
/// the program, then at most [`MAX_SSH_ARGS`] words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshCommand {
    pub program: String,
    pub args: Vec<String>,
    /// Words beyond the twelfth, which distcc drops.
    pub dropped: Vec<String>,
}

impl Default for SshCommand {
    fn default() -> Self {
        SshCommand {
            program: DEFAULT_SSH.into(),
            args: Vec::new(),
            dropped: Vec::new(),
        }
    }
}

impl SshCommand {
    pub fn parse(value: Option<&str>) -> SshCommand {
        let mut words = value.unwrap_or("").split(' ').filter(|w| !w.is_empty());
        let Some(program) = words.next() else {
            return SshCommand::default();
        };
        let mut args: Vec<String> = words.map(str::to_owned).collect();
        let dropped = args.split_off(args.len().min(MAX_SSH_ARGS));
        SshCommand {
            program: program.to_owned(),
            args,
            dropped,
        }
    }

    /// The child's command line for a host.
    pub fn argv(&self, user: Option<&str>, host: &str, command: Option<&str>) -> Vec<String> {
        let mut argv = vec![self.program.clone()];
        argv.extend(self.args.iter().cloned());
        if let Some(user) = user {
            argv.extend(["-l".to_owned(), user.to_owned()]);
        }
        argv.extend([
            host.to_owned(),
            command.unwrap_or(DEFAULT_COMMAND).to_owned(),
            "--inetd".to_owned(),
            "--enable-tcp-insecure".to_owned(),
        ]);
        argv
    }

    /// Starts ssh for a host; the connection is our end of its stdin and stdout.
    pub fn start(
        &self,
        user: Option<&str>,
        host: &str,
        command: Option<&str>,
    ) -> Result<(Stream, Tunnel), String> {
        let argv = self.argv(user, host, command);
        let shown = shell_words::join(&argv);
        if !self.dropped.is_empty() {
            log::warn!(
                "DISTCC_SSH has more than {MAX_SSH_ARGS} words after the program; \
                 dropped as distcc drops them: {}",
                self.dropped.join(" ")
            );
        }
        let fail = |e: std::io::Error| format!("cannot run {shown} (DISTCC_SSH): {e}");
        let (ours, theirs) = UnixStream::pair().map_err(fail)?;
        let theirs_out = theirs.try_clone().map_err(fail)?;
        log::debug!("connecting over ssh: {shown}");
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs_out)))
            .stderr(Stdio::piped())
            .spawn()
            .map_err(fail)?;
        let stderr = collect(child.stderr.take());
        let label = match user {
            Some(u) => format!("{u}@{host}"),
            None => format!("@{host}"),
        };
        let tunnel = Tunnel {
            child,
            label,
            shown,
            stderr,
            said: None,
            reaped: false,
        };
        Ok((Stream::Unix(ours), tunnel))
    }
}

/// A running ssh child that carries one connection.
#[derive(Debug)]
pub struct Tunnel {
    child: Child,
    /// `user@host`, for messages.
    label: String,
    /// The command line, for messages.
    shown: String,
    /// ssh's stderr, whole once it closed.
    stderr: Receiver<Vec<u8>>,
    said: Option<Vec<u8>>,
    reaped: bool,
}

impl Tunnel {
    /// After a conversation failed (the connection closed, broke or went silent),
    /// with our end of it closed: why, if ssh or the remote shell is to blame rather
    /// than the server. Waits a little for ssh's exit status.
    pub fn failure(&mut self) -> Option<String> {
        let status = self.wait(FAILURE_WAIT)?;
        let code = status.code();
        let what = match code {
            Some(255) => format!("ssh to {} failed (exit 255)", self.label),
            Some(127) => format!(
                "the remote command was not found on {} (exit 127 from `{}`)",
                self.label, self.shown
            ),
            Some(126) => format!(
                "the remote command cannot be run on {} (exit 126 from `{}`)",
                self.label, self.shown
            ),
            None => format!("ssh to {} was killed ({status})", self.label),
            Some(_) => return None,
        };
        let said = self.stderr_text(FAILURE_WAIT);
        Some(match last_lines(&said, 2) {
            Some(text) => format!("{what}: {text}"),
            None => what,
        })
    }

    /// Reaps ssh after a job it carried: waits for it to exit (it does once the server
    /// has), killing it if it does not, and logs what it said on stderr.
    pub fn close(mut self) {
        self.reap(EXIT_WAIT);
    }

    /// Reaps ssh after a failed attempt: killed at once unless it has exited.
    pub fn abandon(mut self) {
        self.reap(Duration::ZERO);
    }

    fn reap(&mut self, patience: Duration) {
        if !self.reaped && self.wait(patience).is_none() {
            if !patience.is_zero() {
                log::warn!(
                    "{} did not exit {}s after the job; killing it",
                    self.shown,
                    patience.as_secs()
                );
            }
            self.kill();
        }
        let said = self.stderr_text(Duration::from_millis(100));
        for line in said.lines().map(str::trim).filter(|l| !l.is_empty()) {
            log::info!("ssh {}: {line}", self.label);
        }
    }

    /// The exit status, once ssh exits within `wait`.
    fn wait(&mut self, wait: Duration) -> Option<ExitStatus> {
        match self.child.wait_timeout(wait) {
            Ok(Some(status)) => {
                self.reaped = true;
                Some(status)
            }
            _ => None,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
    }

    /// What ssh wrote on stderr, waiting up to `wait` for the pipe to close (a
    /// connection-sharing master it started may keep it open: then what came so far).
    fn stderr_text(&mut self, wait: Duration) -> String {
        if self.said.is_none() {
            self.said = self.stderr.recv_timeout(wait).ok();
        }
        String::from_utf8_lossy(self.said.as_deref().unwrap_or_default()).into_owned()
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
        }
    }
}

/// Reads a child's stderr to its end on a thread of its own, keeping the tail.
fn collect(pipe: Option<std::process::ChildStderr>) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > STDERR_KEEP {
                    kept.drain(..kept.len() - STDERR_KEEP);
                }
            }
            let _ = tx.send(kept);
        });
    }
    rx
}

/// The last `n` non-empty lines, joined with "; ".
fn last_lines(text: &str, n: usize) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return None;
    }
    Some(lines[lines.len().saturating_sub(n)..].join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distcc_ssh_is_split_at_spaces_as_distcc_splits_it() {
        assert_eq!(SshCommand::parse(None), SshCommand::default());
        assert_eq!(SshCommand::parse(Some("   ")), SshCommand::default());
        let c = SshCommand::parse(Some("  /usr/bin/ssh  -p 2222 -o\tBatchMode=yes "));
        assert_eq!(c.program, "/usr/bin/ssh");
        // Only spaces separate words, as with distcc's strtok(" ").
        assert_eq!(c.args, ["-p", "2222", "-o\tBatchMode=yes"]);
        let many: Vec<String> = (0..15).map(|i| format!("a{i}")).collect();
        let c = SshCommand::parse(Some(&format!("ssh {}", many.join(" "))));
        assert_eq!(c.args, many[..12]);
        assert_eq!(c.dropped, many[12..]);
    }

    #[test]
    fn command_line_is_distccs() {
        let c = SshCommand::parse(Some("ssh -p 2222"));
        assert_eq!(
            c.argv(Some("me"), "box", Some("/opt/bin/distccd")),
            [
                "ssh",
                "-p",
                "2222",
                "-l",
                "me",
                "box",
                "/opt/bin/distccd",
                "--inetd",
                "--enable-tcp-insecure"
            ]
        );
        assert_eq!(
            SshCommand::default().argv(None, "box", None),
            ["ssh", "box", "distccd", "--inetd", "--enable-tcp-insecure"]
        );
    }

    #[test]
    fn a_dead_ssh_is_told_apart_from_a_server_that_closed() {
        // `sh -c` stands in for ssh: it ignores the words after its script.
        let run = |script: &str| {
            let c = SshCommand {
                program: "sh".into(),
                args: vec!["-c".into(), script.into()],
                dropped: Vec::new(),
            };
            let (stream, mut tunnel) = c.start(None, "box", None).unwrap();
            drop(stream);
            tunnel.failure()
        };
        let why = run("echo 'ssh: connect to host box port 22: Connection refused' >&2; exit 255")
            .unwrap();
        assert!(why.contains("ssh to @box failed (exit 255)"), "{why}");
        assert!(why.ends_with("Connection refused"), "{why}");
        let why = run("exit 127").unwrap();
        assert!(why.contains("not found"), "{why}");
        assert_eq!(run("exit 109"), None, "the server ran and closed");
    }

    #[test]
    fn a_missing_ssh_program_is_a_clear_error() {
        let c = SshCommand::parse(Some("/nonexistent/ssh -p 1"));
        let e = c.start(Some("u"), "h", None).unwrap_err();
        assert!(
            e.contains("cannot run /nonexistent/ssh -p 1 -l u h distccd"),
            "{e}"
        );
    }
}
