//! The machine's load as make ≥ 4.4 sees it for `-l`: the instantaneous runnable count,
//! field 4 of `/proc/loadavg` (`running/total`). Only reads; the decision is `sched.rs`'s.
//!
//! The reader itself is running while it reads, so an idle machine reads 1. We keep
//! that count as is (the agent does not subtract itself): a `-l N` limit then lets at
//! most about N-1 other runnable tasks exist when a new local job starts, which errs on
//! the side of not overloading the machine.

/// The runnable count now, or the 1-minute load average where `/proc/loadavg` is
/// missing; `None` if neither can be read (the load gate then stays open).
pub fn current() -> Option<f64> {
    if let Ok(text) = std::fs::read_to_string("/proc/loadavg") {
        if let Some(n) = parse_loadavg(&text) {
            return Some(n);
        }
    }
    let mut avg = [0f64; 1];
    // SAFETY: getloadavg writes at most `nelem` (1) doubles into the buffer we pass.
    let n = unsafe { libc::getloadavg(avg.as_mut_ptr(), 1) };
    (n == 1).then_some(avg[0])
}

/// Field 4's running count from `/proc/loadavg` text (`0.52 0.58 0.59 3/1234 5678`).
pub fn parse_loadavg(text: &str) -> Option<f64> {
    let field = text.split_ascii_whitespace().nth(3)?;
    let (running, _total) = field.split_once('/')?;
    running.parse::<u32>().ok().map(f64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_four_is_the_running_count() {
        assert_eq!(parse_loadavg("0.52 0.58 0.59 3/1234 5678\n"), Some(3.0));
        assert_eq!(parse_loadavg("0.52 0.58 0.59\n"), None);
        assert_eq!(parse_loadavg("0.52 0.58 0.59 x/1 5"), None);
        assert_eq!(parse_loadavg(""), None);
    }

    #[test]
    fn the_reader_counts_itself() {
        // On Linux the reading thread is running, so the count is at least 1.
        if std::path::Path::new("/proc/loadavg").exists() {
            assert!(current().unwrap() >= 1.0);
        }
    }
}
