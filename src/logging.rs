//! The one logging path: a `log` backend writing `prog[pid] LEVEL message` lines.
//!
//! Every module logs through the `log` macros; only this file decides where lines go
//! (stderr, a file, or an inherited fd such as ccache's `UNCACHED_ERR_FD`) and which
//! levels pass. It reads no environment itself: `config` decides the target.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

pub use log::LevelFilter;

/// The `log` target of the few warnings every user must see even at the quiet default
/// level (a host that fails, no host list): `log::warn!(target: NOTICE, …)`. Their
/// callers keep them rare (once per host and backoff period).
pub const NOTICE: &str = "notice";

/// Where log lines go.
#[derive(Debug)]
pub enum Target {
    Stderr,
    File(File),
    /// The system log (facility daemon), distccd's default for a detached server.
    Syslog,
}

impl Target {
    /// Opens `path` for appending (mode 0666 as distcc), creating it.
    pub fn append_file(path: &Path) -> std::io::Result<Target> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o666)
            .open(path)?;
        Ok(Target::File(f))
    }
}

struct Logger {
    prog: &'static str,
    level: LevelFilter,
    target: Mutex<Target>,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level
            || (metadata.target() == NOTICE && metadata.level() <= log::Level::Warn)
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let prefix = match record.level() {
            log::Level::Error => "ERROR: ",
            log::Level::Warn => "Warning: ",
            _ => "",
        };
        let mut target = match self.target.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Target::Syslog = &*target {
            syslog(record.level(), &format!("{prefix}{}", record.args()));
            return;
        }
        let line = format!(
            "{}[{}] {}{}\n",
            self.prog,
            std::process::id(),
            prefix,
            record.args()
        );
        // One write per line so concurrent processes appending to one file do not
        // interleave inside a line. A failing log write must never fail a compile.
        let _ = match &mut *target {
            Target::Stderr => std::io::stderr().write_all(line.as_bytes()),
            Target::File(f) => f.write_all(line.as_bytes()),
            Target::Syslog => Ok(()),
        };
    }

    fn flush(&self) {}
}

fn syslog(level: log::Level, message: &str) {
    let priority = match level {
        log::Level::Error => libc::LOG_ERR,
        log::Level::Warn => libc::LOG_WARNING,
        log::Level::Info => libc::LOG_NOTICE,
        log::Level::Debug | log::Level::Trace => libc::LOG_DEBUG,
    };
    // A message with a NUL cannot be passed to C; drop what follows it.
    let text = message.split('\0').next().unwrap_or_default();
    if let Ok(c) = std::ffi::CString::new(text) {
        // SAFETY: both pointers are valid NUL-terminated strings for the call, and the
        // "%s" format consumes exactly the one argument given.
        unsafe { libc::syslog(priority, c"%s".as_ptr(), c.as_ptr()) };
    }
}

/// Installs the logger once per process. Later calls are ignored.
pub fn init(prog: &'static str, level: LevelFilter, target: Target) {
    if let Target::Syslog = target {
        // openlog keeps the ident pointer: it must live for the whole process, which a
        // &'static str turned into a leaked CString does.
        let ident = std::ffi::CString::new(prog).unwrap_or_default();
        // SAFETY: `ident` is leaked below, so the pointer stays valid forever.
        unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
        std::mem::forget(ident);
    }
    let logger = Logger {
        prog,
        level,
        target: Mutex::new(target),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        // Notices are warnings: they must reach `enabled` even when only errors pass.
        log::set_max_level(level.max(LevelFilter::Warn));
    }
}

/// Parses a distccd-style level name (`--log-level`).
pub fn parse_level(name: &str) -> Option<LevelFilter> {
    Some(match name.to_ascii_lowercase().as_str() {
        "emerg" | "alert" | "crit" | "critical" | "err" | "error" => LevelFilter::Error,
        "warn" | "warning" => LevelFilter::Warn,
        "notice" | "note" | "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distccd_level_names() {
        assert_eq!(parse_level("notice"), Some(LevelFilter::Info));
        assert_eq!(parse_level("WARNING"), Some(LevelFilter::Warn));
        assert_eq!(parse_level("crit"), Some(LevelFilter::Error));
        assert_eq!(parse_level("debug"), Some(LevelFilter::Debug));
        assert_eq!(parse_level("loud"), None);
    }
}
