//! Waiting for the command: signals forwarded, and on a terminal a live status line
//! read from the agent, drawn over the command's output without owning it.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use super::signals::SignalGuard;
use super::stats::StatsSource;
use crate::agent::BuildStats;

/// How often the status line is redrawn.
const STATUS_INTERVAL: Duration = Duration::from_millis(250);

/// How often the launcher checks whether the command has finished or a signal came.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Waits for the command, forwarding signals and redrawing the status line.
pub(super) fn wait_with_status(
    child: &mut Child,
    signals: &SignalGuard,
    stats: &mut StatsSource,
) -> io::Result<ExitStatus> {
    let tty = io::stderr().is_terminal();
    let mut last_draw: Option<Instant> = None;
    let mut last_line: Option<String> = None;
    let started = Instant::now();
    let result = loop {
        if let Some(sig) = signals.take_forward() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as libc::pid_t, sig);
            }
        }
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        if tty && last_draw.is_none_or(|t| t.elapsed() >= STATUS_INTERVAL) {
            last_draw = Some(Instant::now());
            if let Some(s) = stats.poll() {
                // Redrawn only when it changes: each redraw may overwrite the start of
                // a line the command is writing.
                let line = status_line(&s, started.elapsed());
                if last_line.as_deref() != Some(line.as_str()) {
                    draw_status(&line);
                    last_line = Some(line);
                }
            }
        }
        thread::sleep(POLL_INTERVAL);
    };
    if last_line.is_some() {
        clear_status();
    }
    result
}

/// `\r`, the line, clear to the end of the line, `\r`: the command's next output starts
/// at column 0 and overwrites the line (a shorter line leaves the tail visible until the
/// next redraw, which is the least the launcher can garble without owning the output).
fn draw_status(line: &str) {
    let width = terminal_width().unwrap_or(80).saturating_sub(1).max(10);
    let line: String = line.chars().take(width).collect();
    let mut err = io::stderr().lock();
    let _ = write!(err, "\r{line}\x1b[K\r");
    let _ = err.flush();
}

fn clear_status() {
    let mut err = io::stderr().lock();
    let _ = write!(err, "\r\x1b[K");
    let _ = err.flush();
}

fn terminal_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ fills a winsize struct.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some(ws.ws_col as usize)
}

fn status_line(s: &BuildStats, elapsed: Duration) -> String {
    let mut line = format!(
        "[swarmcc {:.0}s] running {} remote, {} local | done {} remote, {} local",
        elapsed.as_secs_f64(),
        s.running_remote,
        s.running_local,
        s.remote_ok,
        s.local
    );
    if s.fallbacks > 0 {
        let _ = write!(line, ", {} fallbacks", s.fallbacks);
    }
    if !s.failed_hosts.is_empty() {
        let names: Vec<&str> = s.failed_hosts.iter().map(|(h, _)| h.as_str()).collect();
        let _ = write!(line, " | failed: {}", names.join(" "));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_reads_like_the_summary() {
        let s = BuildStats {
            remote_ok: 3,
            local: 1,
            fallbacks: 1,
            running_remote: 2,
            running_local: 1,
            failed_hosts: vec![("tcp_h_1".into(), "x".into())],
            ..BuildStats::default()
        };
        let l = status_line(&s, Duration::from_secs(4));
        assert_eq!(
            l,
            "[swarmcc 4s] running 2 remote, 1 local | done 3 remote, 1 local, 1 fallbacks | failed: tcp_h_1"
        );
    }
}
