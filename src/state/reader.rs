//! The reader for monitors: the jobs of a state directory, sorted as distccmon-text
//! sorts them. Files of dead processes are skipped and deleted (distccmon-text does
//! the same); a live process's file is never deleted.

use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

use super::record::{Phase, Record, STRUCT_SIZE};

/// One job as a monitor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub record: Record,
    /// The file's last modification (the last phase change or refresh).
    pub mtime: SystemTime,
}

/// Whether process `pid` exists (EPERM: it does, under another user).
pub fn pid_alive(pid: u64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The jobs in `state_dir`, sorted as distccmon-text sorts them (host, then slot).
/// Files of processes that no longer exist are skipped and deleted, with their
/// temporary files; unreadable or foreign files are skipped. Done jobs are included
/// (the text printer leaves them out).
pub fn read_dir(state_dir: &Path) -> Vec<Entry> {
    read_dir_with(state_dir, &pid_alive)
}

/// [`read_dir`] with a liveness check of the caller's (for tests).
pub fn read_dir_with(state_dir: &Path, alive: &dyn Fn(u64) -> bool) -> Vec<Entry> {
    let Ok(entries) = fs::read_dir(state_dir) else {
        return Vec::new();
    };
    let mut jobs = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.as_bytes();
        if let Some(pid) = name
            .strip_prefix(b".binstate_")
            .and_then(|r| r.strip_suffix(b".tmp"))
            .and_then(|p| std::str::from_utf8(p).ok()?.parse::<u64>().ok())
        {
            // A writer killed between its write and its rename.
            if !alive(pid) {
                let _ = fs::remove_file(entry.path());
            }
            continue;
        }
        if !name.starts_with(b"binstate_") {
            continue;
        }
        let path = entry.path();
        let Some((record, mtime)) = read_one(&path) else {
            continue;
        };
        if record.phase != Phase::Done && !alive(record.pid) {
            // The client died without cleaning up (SIGKILL, a crash).
            let _ = fs::remove_file(&path);
            continue;
        }
        jobs.push(Entry { record, mtime });
    }
    jobs.sort_by(|a, b| {
        a.record
            .host
            .as_bytes()
            .cmp(b.record.host.as_bytes())
            .then(a.record.slot.cmp(&b.record.slot))
    });
    jobs
}

fn read_one(path: &Path) -> Option<(Record, SystemTime)> {
    let mut f = fs::File::open(path).ok()?;
    let mtime = f.metadata().ok()?.modified().ok()?;
    // One byte more than a record: a longer file is not ours to read.
    let mut buf = [0u8; STRUCT_SIZE + 1];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Record::decode(&buf[..n]).map(|r| (r, mtime))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{file_path, temp_path};

    #[test]
    fn reader_skips_and_cleans_dead_processes_only() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        let put = |pid: u64, host: &str, slot: i32| {
            let rec = Record {
                pid,
                file: format!("f{pid}.c"),
                host: host.into(),
                slot,
                phase: Phase::Compile,
            };
            fs::write(file_path(state, pid), rec.encode()).unwrap();
        };
        put(1, "b", 0);
        put(2, "a", 1);
        put(3, "a", 0);
        put(4, "dead", 0);
        fs::write(temp_path(state, 4), b"half").unwrap();
        fs::write(state.join("binstate_junk"), b"short").unwrap();
        fs::write(state.join("other"), b"x").unwrap();
        let jobs = read_dir_with(state, &|pid| pid != 4);
        let order: Vec<u64> = jobs.iter().map(|e| e.record.pid).collect();
        assert_eq!(order, vec![3, 2, 1], "sorted by host, then slot");
        assert!(!file_path(state, 4).exists(), "dead process's file deleted");
        assert!(!temp_path(state, 4).exists());
        assert!(file_path(state, 1).exists(), "live process's file kept");
        assert!(
            state.join("binstate_junk").exists(),
            "foreign file left alone"
        );
    }
}
