//! The `--stats` listener: distccd's statistics port, plus `GET /metrics` for
//! Prometheus.
//!
//! As distccd (reference 5.5, observed 7): the `--allow` list applies (a denied peer is
//! closed without a byte), whatever arrives is read and otherwise ignored, the reply is
//! the `<distccstats>` page with LF line ends, and the connection is closed. The one
//! request we look at is `GET /metrics`, answered with the Prometheus text format.
//! Counting is `stats`; this file owns the socket and the facts read from `/proc`.
//!
//! Unlike distccd, which does one non-blocking read right after `accept`, we wait a
//! moment for the request, so that a scraper's `GET /metrics` is not missed because it
//! arrived a few milliseconds after the connection.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::access;
use super::stats::{render_distcc, render_prometheus, MachineInfo};
use super::Shared;

/// How long a connection may stay silent before it gets distccd's page anyway (a bare
/// connect, as `nc host 3633` sends nothing).
const FIRST_BYTE_WAIT: Duration = Duration::from_millis(500);
/// Once bytes arrive, the request ends at a blank line, at EOF, or after this silence.
const NEXT_BYTE_WAIT: Duration = Duration::from_millis(100);
/// Bounds on one request: time and size.
const REQUEST_WAIT: Duration = Duration::from_secs(2);
const REQUEST_MAX: usize = 8192;
/// Stats connections served at once; more are closed (the port is for monitoring, and
/// must not let anyone tie up threads).
const MAX_STATS_CONNECTIONS: usize = 16;

/// Serves the stats port until the server stops. Runs on its own thread; each
/// connection gets a short-lived thread.
pub(crate) fn serve_stats(listener: TcpListener, shared: Arc<Shared>) {
    let busy = Arc::new(AtomicUsize::new(0));
    while !shared.stopping() {
        match super::wait_readable(&listener, Duration::from_millis(250)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                log::error!("stats port: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        let (stream, peer) = match listener.accept() {
            Ok(pair) => pair,
            Err(e) if super::transient_accept_error(&e) => continue,
            Err(e) => {
                log::error!("stats port: accept failed: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let shown = SocketAddr::new(access::display_ip(peer.ip()), peer.port());
        if !shared.cfg.allow.allows(peer.ip()) {
            log::warn!("stats connection from client '{shown}' denied by access list");
            continue;
        }
        if busy.fetch_add(1, Ordering::SeqCst) >= MAX_STATS_CONNECTIONS {
            busy.fetch_sub(1, Ordering::SeqCst);
            log::warn!("stats connection from {shown} closed: too many at once");
            continue;
        }
        let worker = Arc::clone(&shared);
        let count = Arc::clone(&busy);
        let spawned = thread::Builder::new()
            .name(format!("stats {shown}"))
            .spawn(move || {
                if let Err(e) = answer(stream, &worker) {
                    log::debug!("stats request from {shown}: {e}");
                }
                count.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            busy.fetch_sub(1, Ordering::SeqCst);
            log::error!("stats connection from {shown}: cannot start a thread: {e}");
        }
    }
}

/// Reads the request (if any), writes the reply, and closes.
fn answer(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    let request = read_request(&mut stream)?;
    let mut snapshot = shared.stats.snapshot();
    snapshot.cache = shared.cache.as_ref().map(|c| c.counts());
    let reply = if is_metrics_request(&request) {
        let body = render_prometheus(&snapshot);
        format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        render_distcc(&snapshot, &machine_info(&shared.cfg.tmpdir))
    };
    stream.set_write_timeout(Some(REQUEST_WAIT))?;
    stream.write_all(reply.as_bytes())?;
    // Closing with unread bytes would reset the connection and could destroy the
    // reply in flight: say we are done, then let the client finish first.
    stream.shutdown(Shutdown::Write)?;
    let deadline = Instant::now() + NEXT_BYTE_WAIT * 2;
    let mut sink = [0u8; 1024];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(())
}

/// What the client sent, up to the end of its headers; possibly nothing.
fn read_request(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        let wait = if got.is_empty() {
            FIRST_BYTE_WAIT
        } else {
            NEXT_BYTE_WAIT
        };
        let left = REQUEST_WAIT.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok(got);
        }
        stream.set_read_timeout(Some(wait.min(left)))?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() >= REQUEST_MAX || headers_complete(&got) {
                    return Ok(got);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(got)
            }
            // A reset before we answered: nobody to answer.
            Err(e) => return Err(e),
        }
    }
}

fn headers_complete(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|w| w == b"\r\n\r\n") || bytes.windows(2).any(|w| w == b"\n\n")
}

/// `GET /metrics` (any HTTP version, a query string allowed). Everything else gets
/// distccd's page, as distccd ignores the request.
pub fn is_metrics_request(request: &[u8]) -> bool {
    let line = request.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_ascii_whitespace();
    let (Some("GET"), Some(path)) = (words.next(), words.next()) else {
        return false;
    };
    path == "/metrics" || path.starts_with("/metrics?")
}

/// The machine's side of distccd's page, read now. Missing files give zeros.
pub fn machine_info(tmpdir: &Path) -> MachineInfo {
    let loadavg = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let (current_load, load) = parse_loadavg(&loadavg);
    let procs = scan_processes();
    MachineInfo {
        current_load,
        load,
        procs_d: procs.in_d_state,
        max_rss_kib: procs.max_rss_kib,
        max_rss_name: procs.max_rss_name.unwrap_or_else(|| "none".to_owned()),
        free_mib: free_mib(tmpdir).unwrap_or(0),
    }
}

/// `/proc/loadavg`: "0.52 0.58 0.59 2/345 12345" → (2, [0.52, 0.58, 0.59]).
pub fn parse_loadavg(text: &str) -> (u64, [f64; 3]) {
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0.0);
    let running = fields
        .get(3)
        .and_then(|f| f.split('/').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    (running, [num(0), num(1), num(2)])
}

#[derive(Debug, Default, PartialEq)]
struct Processes {
    in_d_state: u64,
    max_rss_kib: u64,
    /// In parentheses, as `/proc/PID/stat` shows it.
    max_rss_name: Option<String>,
}

/// One pass over `/proc/*/stat` for both the D-state count and the largest process.
fn scan_processes() -> Processes {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page_kib = if page > 0 { page as u64 / 1024 } else { 4 };
    let mut out = Processes::default();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.as_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        // A process may exit between the listing and the read: skip it.
        if let Ok(stat) = fs::read_to_string(entry.path().join("stat")) {
            if let Some(p) = parse_stat(&stat) {
                add_process(&mut out, &p, page_kib);
            }
        }
    }
    out
}

#[derive(Debug, PartialEq)]
struct ProcStat<'a> {
    comm: &'a str,
    state: char,
    rss_pages: u64,
}

/// `/proc/PID/stat`: "PID (COMM) STATE PPID … RSS …" — COMM may hold spaces and
/// parentheses, so the fields are counted from the last `)`. RSS is field 24.
fn parse_stat(text: &str) -> Option<ProcStat<'_>> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?;
    let rest: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    Some(ProcStat {
        comm,
        state: rest.first()?.chars().next()?,
        rss_pages: rest.get(21)?.parse().ok()?,
    })
}

fn add_process(out: &mut Processes, p: &ProcStat<'_>, page_kib: u64) {
    if p.state == 'D' {
        out.in_d_state += 1;
    }
    // distccd means to leave compilers out of max_RSS (names ending in "cc" or "++"),
    // but tests the previous maximum's name, parentheses included, so it never
    // matches; we apply the rule it intended, to this process's name.
    if p.comm.ends_with("cc") || p.comm.ends_with("++") {
        return;
    }
    let kib = p.rss_pages * page_kib;
    if kib > out.max_rss_kib {
        out.max_rss_kib = kib;
        out.max_rss_name = Some(format!("({})", p.comm));
    }
}

/// Free space for unprivileged users of `dir`'s file system, in MiB.
fn free_mib(dir: &Path) -> Option<u64> {
    let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statvfs is a valid value for statvfs to overwrite.
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `vfs` is valid, writable storage.
    if unsafe { libc::statvfs(path.as_ptr(), &mut vfs) } != 0 {
        return None;
    }
    Some((vfs.f_bavail as u64).saturating_mul(vfs.f_frsize as u64) / (1024 * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_a_metrics_request() {
        assert!(is_metrics_request(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        ));
        assert!(is_metrics_request(b"GET /metrics HTTP/1.0\n\n"));
        assert!(is_metrics_request(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n"));
        assert!(!is_metrics_request(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(!is_metrics_request(b"GET /metricsx HTTP/1.0\r\n\r\n"));
        assert!(!is_metrics_request(b"POST /metrics HTTP/1.0\r\n\r\n"));
        assert!(!is_metrics_request(b""));
        assert!(!is_metrics_request(b"x"));
    }

    #[test]
    fn loadavg_fields() {
        assert_eq!(
            parse_loadavg("3.19 4.36 2.85 2/345 12345\n"),
            (2, [3.19, 4.36, 2.85])
        );
        assert_eq!(parse_loadavg(""), (0, [0.0; 3]));
    }

    #[test]
    fn stat_lines_with_odd_names() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 \
                    100 1000000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0";
        let p = parse_stat(line).unwrap();
        assert_eq!(p.comm, "a) b (c)");
        assert_eq!(p.state, 'S');
        assert_eq!(p.rss_pages, 250);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn compilers_are_left_out_of_max_rss() {
        let mut out = Processes::default();
        for (comm, state, rss) in [
            ("g++", 'R', 900),
            ("x86_64-linux-gnu-gcc", 'S', 800),
            ("rustc", 'S', 300),
            ("cc1plus", 'D', 200),
            ("bash", 'S', 10),
        ] {
            add_process(
                &mut out,
                &ProcStat {
                    comm,
                    state,
                    rss_pages: rss,
                },
                4,
            );
        }
        assert_eq!(
            out,
            Processes {
                in_d_state: 1,
                max_rss_kib: 1200,
                max_rss_name: Some("(rustc)".into()),
            }
        );
    }

    #[test]
    fn this_machine_has_processes_and_space() {
        let m = machine_info(&std::env::temp_dir());
        assert!(
            m.max_rss_kib > 0 && m.max_rss_name.starts_with('('),
            "{m:?}"
        );
        assert!(m.free_mib > 0, "{m:?}");
    }
}
