//! The full-screen live view (`swarmcc --monitor SECONDS` on a terminal): per host its
//! slots as a bar, queue, mean job time and backoff; the local slots; throughput with a
//! sparkline; local vs remote counts; every job with phase and times; why jobs ran
//! locally.
//!
//! Terminal safety first: raw mode and the alternate screen are undone by a guard on
//! every way out — return, `q`/Esc/Ctrl-C, SIGTERM/SIGHUP/SIGINT (a flag the loop
//! checks), and panics (a hook restores the terminal before the message prints).
//! Drawing is plain text, one full repaint per refresh or resize, so it works over SSH
//! and in any terminal crossterm supports. `render` is pure, for tests.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, queue, style, terminal};

use super::model::{self, HostView, Snapshot, Tracker};
use crate::config::ClientConfig;
use crate::state::Phase;

/// Set by the signal handler; the loop checks it at least every `TICK`.
static STOP: AtomicBool = AtomicBool::new(false);
/// Longest time between two checks of `STOP`.
const TICK: Duration = Duration::from_millis(100);

extern "C" fn on_stop_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_stop_handlers() {
    for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGQUIT] {
        // SAFETY: sigaction with zeroed, then filled, plain-data structs; the handler
        // only stores to an atomic.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_stop_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

/// Puts the terminal back as it was. Safe to call more than once.
fn restore_terminal() {
    let mut out = io::stdout();
    let _ = execute!(
        out,
        style::ResetColor,
        cursor::Show,
        terminal::LeaveAlternateScreen
    );
    let _ = terminal::disable_raw_mode();
}

/// Raw mode + alternate screen while alive.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        terminal::enable_raw_mode()?;
        let guard = TerminalGuard;
        execute!(
            io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide,
            terminal::Clear(terminal::ClearType::All)
        )?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Runs the live view until a quit key or signal; returns the exit code.
pub fn run(cfg: &ClientConfig, interval: Duration) -> i32 {
    install_stop_handlers();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Restore first, or the panic message lands on a raw alternate screen.
        restore_terminal();
        previous(info);
    }));
    let guard = match TerminalGuard::enter() {
        Ok(g) => g,
        Err(e) => {
            restore_terminal();
            eprintln!("swarmcc: cannot use the terminal for --monitor: {e}");
            return 1;
        }
    };
    let code = match event_loop(cfg, interval) {
        Ok(()) => 0,
        Err(e) => {
            drop(guard);
            eprintln!("swarmcc: monitor: {e}");
            return 1;
        }
    };
    drop(guard);
    code
}

fn event_loop(cfg: &ClientConfig, interval: Duration) -> io::Result<()> {
    let utf8 = locale_is_utf8();
    let title = format!("DISTCC_DIR={}", cfg.distcc_dir.display());
    let mut tracker = Tracker::new(Instant::now());
    let mut out = io::stdout();
    loop {
        let now = Instant::now();
        let mut snap = model::collect(cfg);
        tracker.observe(&mut snap, now);
        let next = now + interval;
        let mut dirty = true;
        loop {
            if dirty {
                let (w, h) = terminal::size().unwrap_or((80, 24));
                let view = View {
                    snap: &snap,
                    tracker: &tracker,
                    now: Instant::now(),
                    title: &title,
                    interval,
                    utf8,
                };
                draw(&mut out, &render(&view, usize::from(w), usize::from(h)))?;
                dirty = false;
            }
            if STOP.load(Ordering::SeqCst) {
                return Ok(());
            }
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if event::poll(left.min(TICK))? {
                match event::read()? {
                    Event::Key(k) if k.kind != KeyEventKind::Release => {
                        let ctrl_c = k.modifiers.contains(KeyModifiers::CONTROL)
                            && matches!(k.code, KeyCode::Char('c') | KeyCode::Char('d'));
                        if ctrl_c
                            || matches!(
                                k.code,
                                KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc
                            )
                        {
                            return Ok(());
                        }
                    }
                    Event::Resize(_, _) => dirty = true,
                    _ => {}
                }
            }
        }
    }
}

fn draw(out: &mut impl Write, lines: &[String]) -> io::Result<()> {
    queue!(out, terminal::BeginSynchronizedUpdate)?;
    for (row, line) in lines.iter().enumerate() {
        let row = u16::try_from(row).unwrap_or(u16::MAX);
        queue!(
            out,
            cursor::MoveTo(0, row),
            style::Print(line),
            terminal::Clear(terminal::ClearType::UntilNewLine)
        )?;
    }
    let rows = u16::try_from(lines.len()).unwrap_or(u16::MAX);
    queue!(
        out,
        cursor::MoveTo(0, rows),
        terminal::Clear(terminal::ClearType::FromCursorDown),
        terminal::EndSynchronizedUpdate
    )?;
    out.flush()
}

fn locale_is_utf8() -> bool {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.is_empty())
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("utf-8") || v.contains("utf8")
        })
}

/// What one frame shows.
pub struct View<'a> {
    pub snap: &'a Snapshot,
    pub tracker: &'a Tracker,
    pub now: Instant,
    pub title: &'a str,
    pub interval: Duration,
    /// Block characters for bars and the sparkline (else ASCII).
    pub utf8: bool,
}

/// A slot bar: `[███░░]` (or `[###..]`), one cell per slot up to `max` cells.
pub fn bar(busy: u32, limit: u32, max: usize, utf8: bool) -> String {
    let (full, empty) = if utf8 { ('█', '░') } else { ('#', '.') };
    let cells = (limit as usize).clamp(1, max);
    let filled = if limit == 0 {
        0
    } else {
        ((busy as usize * cells).div_ceil(limit as usize)).min(cells)
    };
    let mut s = String::with_capacity(cells + 2);
    s.push('[');
    s.extend(std::iter::repeat_n(full, filled));
    s.extend(std::iter::repeat_n(empty, cells - filled));
    s.push(']');
    s
}

/// One character per value, scaled to the largest.
pub fn sparkline(values: &[u32], utf8: bool) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    const ASCII: [char; 8] = ['_', '.', '-', '~', '=', '+', '*', '#'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            let set = if utf8 { &BLOCKS } else { &ASCII };
            if max == 0 || v == 0 {
                if utf8 {
                    ' '
                } else {
                    '_'
                }
            } else {
                set[(v as usize * 7 / max as usize).min(7)]
            }
        })
        .collect()
}

/// `0.4s`, `12s`, `3m05s`.
pub fn fmt_dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.1}s")
    } else if s < 60.0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// Cuts or pads to exactly `width` characters.
fn fit(s: &str, width: usize) -> String {
    let mut out: String = s.chars().take(width).collect();
    let n = out.chars().count();
    out.extend(std::iter::repeat_n(' ', width - n));
    out
}

fn clock() -> String {
    // SAFETY: time/localtime_r fill the struct we own.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return String::new();
        }
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    }
}

/// Width of a host's slot bar.
const BAR: usize = 16;

/// The frame as lines, each at most `width` characters, at most `height` lines.
pub fn render(v: &View<'_>, width: usize, height: usize) -> Vec<String> {
    let mut top = summary_lines(v, width);
    top.extend(host_lines(v));
    let bottom = reason_lines(v.snap);
    // Jobs get what room is left.
    let room = height
        .saturating_sub(top.len() + bottom.len())
        .saturating_sub(1)
        .max(2);
    let mut lines = top;
    lines.extend(job_lines(v.snap, room));
    if !bottom.is_empty() {
        lines.push(String::new());
        lines.extend(bottom);
    }
    lines.truncate(height);
    lines
        .into_iter()
        .map(|l| l.chars().take(width).collect())
        .collect()
}

/// The title, the job counts and the throughput graph: the farm at a glance.
fn summary_lines(v: &View<'_>, width: usize) -> Vec<String> {
    let snap = v.snap;
    let mut top: Vec<String> = Vec::new();
    top.push(format!(
        "swarmcc monitor  {}  {}  every {}  (q quits)",
        v.title,
        clock(),
        fmt_dur(v.interval)
    ));
    let waiting = snap
        .farm
        .as_ref()
        .map_or(snap.blocked as u64, |f| {
            f.queued_remote + f.local_compile.waiting
        })
        .max(snap.blocked as u64);
    let mut counts = format!(
        "jobs: {} running ({} remote, {} local), {} waiting for a slot",
        snap.remote_running() + snap.local_running(),
        snap.remote_running(),
        snap.local_running(),
        waiting
    );
    if let Some(f) = &snap.farm {
        counts.push_str(&format!(
            "   done: {} remote, {} local ({} fallbacks)",
            f.done_remote, f.done_local, f.fallbacks
        ));
    } else {
        counts.push_str("   (no scheduling agent running)");
    }
    top.push(counts);
    let per = v.tracker.per_second(v.now);
    let spark_len = width.saturating_sub(40).max(8).min(per.len());
    top.push(format!(
        "throughput: {:.2} jobs/s  {}  (last {} s)",
        v.tracker.rate(v.now, 10),
        sparkline(&per[per.len() - spark_len..], v.utf8),
        spark_len
    ));
    top.push(String::new());
    top
}

/// The host table: one row per remote host, then the local compile slots.
fn host_lines(v: &View<'_>) -> Vec<String> {
    let mut rows: Vec<String> = Vec::new();
    rows.push(format!(
        "{}  {}  {:>5}  {:>5}  {:>6}  STATUS",
        fit("HOST", 24),
        fit("SLOTS", BAR + 2),
        "BUSY",
        "QUEUE",
        "MEAN"
    ));
    for h in &v.snap.hosts {
        rows.push(format!(
            "{}  {}  {:>5}  {:>5}  {:>6}  {}",
            fit(&h.label, 24),
            fit(&bar(h.busy, h.limit, BAR, v.utf8), BAR + 2),
            format!("{}/{}", h.busy, h.limit),
            h.waiting.map_or("-".into(), |w| w.to_string()),
            h.mean.map_or("-".into(), fmt_dur),
            host_status(h),
        ));
    }
    let l = &v.snap.local;
    rows.push(format!(
        "{}  {}  {:>5}  {:>5}  {:>6}  local compiles",
        fit("localhost", 24),
        fit(&bar(l.busy, l.limit, BAR, v.utf8), BAR + 2),
        format!("{}/{}", l.busy, l.limit),
        l.waiting.map_or("-".into(), |w| w.to_string()),
        "-"
    ));
    rows.push(String::new());
    rows
}

/// A host's STATUS cell: backed off (and why), failed within the last minute, or ok.
fn host_status(h: &HostView) -> String {
    match (&h.backoff, &h.last_failure) {
        (Some((left, why)), _) if why.is_empty() => {
            format!("backed off, {} left", fmt_dur(*left))
        }
        (Some((left, why)), _) => format!("backed off, {} left: {why}", fmt_dur(*left)),
        (None, Some((ago, why))) if *ago < Duration::from_secs(60) => {
            format!("failed {} ago: {why}", fmt_dur(*ago))
        }
        _ => "ok".into(),
    }
}

/// Why jobs ran locally (farm-wide, since the agent started), when the agent says.
fn reason_lines(snap: &Snapshot) -> Vec<String> {
    let mut bottom: Vec<String> = Vec::new();
    if let Some(f) = &snap.farm {
        if !f.reasons.is_empty() {
            let mut s = String::from("why local:");
            for (i, (why, n)) in f.reasons.iter().enumerate() {
                s.push_str(if i == 0 { " " } else { "; " });
                s.push_str(&format!("{n}x {why}"));
            }
            bottom.push(s);
        }
    }
    bottom
}

/// The job table in at most `room` lines (its heading included; "… N more" when cut).
fn job_lines(snap: &Snapshot, room: usize) -> Vec<String> {
    let mut jobs: Vec<String> = Vec::new();
    jobs.push(format!(
        "{:>7}  {}  {}  {}  {:>7}  {:>8}",
        "PID",
        fit("PHASE", 10),
        fit("FILE", 30),
        fit("HOST[SLOT]", 24),
        "TIME",
        "IN PHASE"
    ));
    if snap.jobs.is_empty() {
        jobs.push("   (no jobs running)".into());
    }
    let shown = snap.jobs.len().min(room.saturating_sub(1));
    for j in snap.jobs.iter().take(shown) {
        let where_ = if j.phase == Phase::Blocked && j.host.is_empty() {
            "(waiting for a slot)".to_string()
        } else {
            format!("{}[{}]", j.host, j.slot)
        };
        jobs.push(format!(
            "{:>7}  {}  {}  {}  {:>7}  {:>8}",
            j.pid,
            fit(j.phase.name(), 10),
            fit(&j.file, 30),
            fit(&where_, 24),
            j.elapsed.map_or("-".into(), fmt_dur),
            j.in_phase.map_or("-".into(), fmt_dur),
        ));
    }
    if shown < snap.jobs.len() {
        jobs.push(format!("   … {} more", snap.jobs.len() - shown));
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::model::{HostView, JobView, LocalView};

    #[test]
    fn bars_and_sparklines() {
        assert_eq!(bar(2, 4, 16, false), "[##..]");
        assert_eq!(bar(3, 4, 16, true), "[███░]");
        assert_eq!(bar(0, 0, 16, false), "[.]");
        assert_eq!(bar(32, 64, 16, false).len(), 18, "long limits are scaled");
        assert_eq!(bar(9, 4, 16, false), "[####]");
        assert_eq!(sparkline(&[0, 1, 2, 4], true), " ▂▄█");
        assert_eq!(sparkline(&[0, 0], false), "__");
        assert_eq!(fmt_dur(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_dur(Duration::from_secs(185)), "3m05s");
    }

    #[test]
    fn frame_shows_hosts_jobs_and_fits_the_screen() {
        let snap = Snapshot {
            jobs: (0..30)
                .map(|i| JobView {
                    pid: 1000 + i,
                    phase: Phase::Compile,
                    file: format!("file{i}.c"),
                    host: "10.0.0.1".into(),
                    slot: i as i32 % 4,
                    elapsed: Some(Duration::from_secs(2)),
                    in_phase: Some(Duration::from_secs(1)),
                })
                .collect(),
            hosts: vec![HostView {
                label: "10.0.0.1:3632".into(),
                hostname: "10.0.0.1".into(),
                lock_name: "tcp_10.0.0.1_3632".into(),
                limit: 4,
                busy: 4,
                waiting: Some(26),
                backoff: Some((Duration::from_secs(42), "connection refused".into())),
                ..HostView::default()
            }],
            local: LocalView {
                limit: 4,
                busy: 0,
                waiting: None,
            },
            farm: None,
            blocked: 0,
        };
        let tracker = Tracker::new(Instant::now());
        let view = View {
            snap: &snap,
            tracker: &tracker,
            now: Instant::now(),
            title: "DISTCC_DIR=/x",
            interval: Duration::from_secs(1),
            utf8: false,
        };
        let lines = render(&view, 120, 20);
        assert!(lines.len() <= 20);
        assert!(lines.iter().all(|l| l.chars().count() <= 120));
        let text = lines.join("\n");
        assert!(text.contains("10.0.0.1:3632"), "{text}");
        assert!(text.contains("[####]"), "{text}");
        assert!(text.contains("4/4"), "{text}");
        assert!(
            text.contains("backed off, 42s left: connection refused"),
            "{text}"
        );
        assert!(text.contains("file0.c"), "{text}");
        assert!(text.contains("10.0.0.1[0]"), "{text}");
        assert!(text.contains("more"), "{text}");
    }
}
