//! `swarmcc --monitor [SECONDS]`: what the farm is doing now.
//!
//! * No interval (or 0): the running jobs once, in distccmon-text's exact format (for
//!   scripts), from the state files in `$DISTCC_DIR/state`.
//! * An interval, stdout not a terminal: the same block every SECONDS, as
//!   `distccmon-text SECONDS` prints it.
//! * An interval on a terminal: the full-screen live view (`tui.rs`).
//!
//! Files: `model.rs` folds the sources (state files, the agent's FARM answer, backoff
//! files, the host list) into a snapshot; `text.rs` prints distccmon-text's lines;
//! `tui.rs` draws the live view. The monitor only reads — except that, as
//! distccmon-text, it deletes the state files of clients that died.

pub mod model;
pub mod text;
pub mod tui;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use crate::config::ClientConfig;
use crate::state;

/// Runs the monitor; returns the exit code.
pub fn run(interval: Option<f64>, cfg: &ClientConfig) -> i32 {
    let interval = match interval {
        None => None,
        Some(s) if (0.0..1e9).contains(&s) => (s > 0.0).then(|| Duration::from_secs_f64(s)),
        Some(s) => {
            eprintln!("swarmcc: --monitor: {s} is not a number of seconds");
            return crate::exit::ExitCode::BadArguments.code();
        }
    };
    let dir = state::state_dir(&cfg.distcc_dir);
    let Some(interval) = interval else {
        return print_block(&dir);
    };
    if std::io::stdout().is_terminal() {
        return tui::run(cfg, interval);
    }
    loop {
        if print_block(&dir) != 0 {
            // stdout is gone (a closed pipe): nothing left to do.
            return 0;
        }
        std::thread::sleep(interval);
    }
}

fn print_block(dir: &std::path::Path) -> i32 {
    let block = text::block(&state::read_dir(dir));
    let mut out = std::io::stdout().lock();
    match out.write_all(&block).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}
