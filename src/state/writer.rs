//! The writer of one client process's state file: each phase written by a background
//! thread to a temporary file and renamed into place, refreshed so monitors never take
//! a live job for a stale one, and removed when the job ends, when the writer is
//! dropped, and on SIGINT/SIGTERM/SIGHUP.

use std::ffi::{CStr, CString};
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::record::{Phase, Record};
use super::{file_path, state_dir, temp_path};

/// How often a live job's file is rewritten (distccmon-text deletes files whose mtime
/// is more than 60 s old, even if the process lives).
pub const REFRESH: Duration = Duration::from_secs(20);
/// How long a change waits before it is written, so that a burst of phases costs one
/// write (a temporary file and a rename cost ~100 µs on ext4).
pub const SETTLE: Duration = Duration::from_millis(25);

/// Paths the signal handler unlinks: set while a state file may exist. Leaked
/// C strings, so the handler never sees freed memory.
static SIGNAL_PATH: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
static SIGNAL_TEMP: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
/// Set by the signal handler: the writer thread must not rename a file into place
/// while the process is going down.
static DYING: AtomicBool = AtomicBool::new(false);

extern "C" fn on_fatal_signal(sig: libc::c_int) {
    // Only async-signal-safe calls: unlink and raise. SA_RESETHAND restored the
    // default action, so the re-raised signal (delivered when we return) ends the
    // process as it would have without us.
    DYING.store(true, Ordering::SeqCst);
    for p in [&SIGNAL_PATH, &SIGNAL_TEMP] {
        let path = p.load(Ordering::SeqCst);
        if !path.is_null() {
            // SAFETY: the pointer is a leaked, NUL-terminated C string.
            unsafe {
                libc::unlink(path);
            }
        }
    }
    // SAFETY: raise is async-signal-safe.
    unsafe {
        libc::raise(sig);
    }
}

/// Installs the cleanup handler for the signals that end a build (once per process).
/// A signal the parent set to ignored (`nohup`) stays ignored.
fn install_signal_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: sigaction with zeroed, then filled, plain-data structs.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                    || old.sa_sigaction != libc::SIG_DFL
                {
                    // Ignored, or someone else's handler: leave it alone.
                    continue;
                }
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = on_fatal_signal as extern "C" fn(libc::c_int) as usize;
                act.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
                libc::sigemptyset(&mut act.sa_mask);
                libc::sigaction(sig, &act, std::ptr::null_mut());
            }
        }
    });
}

fn leak_c_path(p: &Path) -> Option<&'static CStr> {
    CString::new(p.as_os_str().as_bytes())
        .ok()
        .map(|c| &*Box::leak(c.into_boxed_c_str()))
}

#[derive(Debug)]
struct Shared {
    record: Record,
    /// The record changed since the writer last wrote it.
    dirty: bool,
    /// The writer is writing (outside the lock).
    writing: bool,
    /// False once the job ended: nothing may (re)create the file after that.
    live: bool,
}

#[derive(Debug)]
struct Inner {
    shared: Mutex<Shared>,
    /// Wakes the writer (a change, or the end) and `remove` (a write finished).
    wake: Condvar,
    path: PathBuf,
    temp: PathBuf,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        match self.shared.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn wait<'a>(&self, g: MutexGuard<'a, Shared>) -> MutexGuard<'a, Shared> {
        match self.wake.wait(g) {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

/// The state file of this process (`$DISTCC_DIR/state/binstate_<pid>`). Every method
/// is best effort: a state file must never fail or slow down a compile.
///
/// Why a writer thread: on ext4 a temporary file and a rename cost ~100 µs, and a job
/// goes through eight phases. The compile path only updates the record in memory and
/// wakes the thread, which writes the newest record [`SETTLE`] after a change (phases
/// shorter than that are coalesced — no monitor polling a few times a second could
/// have shown them) and rewrites it every [`REFRESH`] during a long phase.
pub struct StateFile {
    inner: Arc<Inner>,
}

impl StateFile {
    /// Creates the state directory, queues the Startup record, and installs the
    /// signal cleanup and the writer. `None` if the directory cannot be made.
    pub fn create(distcc_dir: &Path) -> Option<StateFile> {
        let dir = state_dir(distcc_dir);
        if let Err(e) = fs::create_dir_all(&dir) {
            log::debug!("no state file: cannot create {}: {e}", dir.display());
            return None;
        }
        let pid = u64::from(std::process::id());
        let inner = Arc::new(Inner {
            shared: Mutex::new(Shared {
                record: Record::startup(pid),
                dirty: true,
                writing: false,
                live: true,
            }),
            wake: Condvar::new(),
            path: file_path(&dir, pid),
            temp: temp_path(&dir, pid),
        });
        if let (Some(p), Some(t)) = (leak_c_path(&inner.path), leak_c_path(&inner.temp)) {
            SIGNAL_PATH.store(p.as_ptr().cast_mut(), Ordering::SeqCst);
            SIGNAL_TEMP.store(t.as_ptr().cast_mut(), Ordering::SeqCst);
            install_signal_handlers();
        }
        let for_thread = Arc::clone(&inner);
        if let Err(e) = std::thread::Builder::new()
            .name("swarmcc-state".into())
            .spawn(move || writer(&for_thread))
        {
            log::debug!("no state file: cannot start its writer: {e}");
            return None;
        }
        Some(StateFile { inner })
    }

    /// Changes the record with `f`; the writer thread writes it.
    pub fn update(&self, f: impl FnOnce(&mut Record)) {
        let mut g = self.inner.lock();
        f(&mut g.record);
        g.dirty = true;
        drop(g);
        self.inner.wake.notify_all();
    }

    /// Sets the input file (its basename, as distcc shows it).
    pub fn set_file(&self, input: &str) {
        let base = Path::new(input)
            .file_name()
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.update(|r| r.file = base);
    }

    /// Phase without a host: waiting for a slot.
    pub fn blocked(&self) {
        self.update(|r| {
            r.phase = Phase::Blocked;
            r.host.clear();
            r.slot = 0;
        });
    }

    /// Phase on `host[slot]`.
    pub fn phase_on(&self, phase: Phase, host: &str, slot: u32) {
        self.update(|r| {
            r.phase = phase;
            if r.host != host {
                r.host.clear();
                r.host.push_str(host);
            }
            r.slot = i32::try_from(slot).unwrap_or(i32::MAX);
        });
    }

    /// Phase on the current host and slot.
    pub fn phase(&self, phase: Phase) {
        self.update(|r| r.phase = phase);
    }

    /// The record as last set.
    pub fn record(&self) -> Record {
        self.inner.lock().record.clone()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Waits until the file holds the latest record (for tests and tools; the compile
    /// path never waits).
    pub fn sync(&self) {
        let mut g = self.inner.lock();
        while g.live && (g.dirty || g.writing) {
            g = self.inner.wait(g);
        }
    }

    /// Ends the job: removes the file (after a write in progress, if any); later
    /// updates write nothing.
    pub fn remove(&self) {
        let mut g = self.inner.lock();
        if !g.live {
            return;
        }
        g.live = false;
        self.inner.wake.notify_all();
        while g.writing {
            g = self.inner.wait(g);
        }
        SIGNAL_PATH.store(std::ptr::null_mut(), Ordering::SeqCst);
        SIGNAL_TEMP.store(std::ptr::null_mut(), Ordering::SeqCst);
        let _ = fs::remove_file(&self.inner.path);
        let _ = fs::remove_file(&self.inner.temp);
    }
}

/// The writer thread: writes each new record, and the current one again every
/// `REFRESH`, until the job ends.
fn writer(inner: &Inner) {
    let mut g = inner.lock();
    loop {
        let refresh_at = Instant::now() + REFRESH;
        while g.live && !g.dirty {
            let left = refresh_at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // A rewrite, not a touch: it also restores a file a monitor in another
                // PID namespace wrongly deleted as stale.
                g.dirty = true;
                break;
            }
            g = match inner.wake.wait_timeout(g, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        if !g.live {
            return;
        }
        // Let a burst of phase changes settle: a phase shorter than this is never
        // seen by a monitor polling a few times a second, and a job shorter than it
        // never touches the disk at all.
        let settle_until = Instant::now() + SETTLE;
        while g.live {
            let left = settle_until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            g = match inner.wake.wait_timeout(g, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        if !g.live {
            return;
        }
        g.dirty = false;
        g.writing = true;
        let rec = g.record.clone();
        drop(g);
        if let Err(e) = write_atomic(&inner.path, &inner.temp, &rec) {
            log::debug!("cannot write {}: {e}", inner.path.display());
        }
        g = inner.lock();
        g.writing = false;
        inner.wake.notify_all();
    }
}

impl std::fmt::Debug for StateFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateFile")
            .field("path", &self.inner.path)
            .field("record", &self.record())
            .finish()
    }
}

impl Drop for StateFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Writes `rec` to `temp`, then renames it over `path`: distccmon-text reads the file
/// with one `read`, and must never see it short.
fn write_atomic(path: &Path, temp: &Path, rec: &Record) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o666)
        .open(temp)?;
    f.write_all(&rec.encode())?;
    drop(f);
    if DYING.load(Ordering::SeqCst) {
        let _ = fs::remove_file(temp);
        return Ok(());
    }
    fs::rename(temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::read_dir;

    #[test]
    fn writer_updates_atomically_and_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let sf = StateFile::create(dir.path()).unwrap();
        let path = sf.path().to_path_buf();
        let me = u64::from(std::process::id());
        assert_eq!(path, file_path(&state_dir(dir.path()), me));
        let read = || {
            sf.sync();
            Record::decode(&fs::read(&path).unwrap()).unwrap()
        };
        assert_eq!(read().phase, Phase::Startup);
        sf.set_file("src/dir/x.c");
        sf.blocked();
        assert_eq!(
            (read().phase, read().file.as_str()),
            (Phase::Blocked, "x.c")
        );
        sf.phase_on(Phase::Connect, "10.0.0.2", 3);
        let r = read();
        assert_eq!((r.host.as_str(), r.slot, r.pid), ("10.0.0.2", 3, me));
        // Only the record itself is in the directory: the temp file was renamed.
        let names: Vec<_> = fs::read_dir(state_dir(dir.path()))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let jobs = read_dir(&state_dir(dir.path()));
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].record, sf.record());
        drop(sf);
        assert!(!path.exists());
    }
}
