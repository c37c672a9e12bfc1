//! Job state files for monitors, in distcc's own `binstate_<pid>` format, so that the
//! real `distccmon-text` (and `swarmcc --monitor`) can list swarmcc's jobs.
//!
//! Three parts, one per concern and submodule (`record`, `writer`, `reader`):
//! * [`Record`]: the `struct dcc_task_state` record, encoded and decoded (pure; native
//!   layout and endianness, as distcc writes it: 296 bytes on 64-bit Linux).
//! * [`StateFile`]: the writer of one client process. Each phase is written to a
//!   temporary file and renamed into place (a reader never sees a half-written
//!   record), by a background thread, so the compile never waits for the disk and a
//!   burst of short phases costs one write. It rewrites the file every [`REFRESH`], so
//!   distccmon-text's "older than 60 s" rule never deletes a live job's file. The file
//!   is removed when the job ends, when the writer is dropped, and on
//!   SIGINT/SIGTERM/SIGHUP.
//! * [`read_dir`]: the reader for monitors. Files of dead processes are skipped and
//!   deleted (distccmon-text does the same); a live process's file is never deleted.
//!
//! Boundary: this module knows nothing about jobs or hosts beyond the strings it is
//! given; the client decides what a phase means.

mod reader;
mod record;
mod writer;

use std::path::{Path, PathBuf};

pub use reader::{pid_alive, read_dir, read_dir_with, Entry};
pub use record::{Phase, Record, MAGIC, STRUCT_SIZE};
pub use writer::{StateFile, REFRESH, SETTLE};

/// `$DISTCC_DIR/state`.
pub fn state_dir(distcc_dir: &Path) -> PathBuf {
    distcc_dir.join("state")
}

/// The state file of process `pid`.
pub fn file_path(state_dir: &Path, pid: u64) -> PathBuf {
    state_dir.join(format!("binstate_{pid}"))
}

/// The writer's temporary file. It must not start with `binstate_`: distccmon-text
/// reads every such name.
fn temp_path(state_dir: &Path, pid: u64) -> PathBuf {
    state_dir.join(format!(".binstate_{pid}.tmp"))
}
