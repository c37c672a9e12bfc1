//! Job state files for monitors, in distcc's own `binstate_<pid>` format, so that the
//! real `distccmon-text` (and `swarmcc --monitor`) can list swarmcc's jobs.
//!
//! Three parts, one per concern:
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

use std::ffi::{CStr, CString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// `DCC_STATE_MAGIC`: "\0HID" read as a little-endian number.
pub const MAGIC: u64 = 0x4449_4800;
/// Bytes in `char file[]` and `char host[]`.
const NAME_LEN: usize = 128;
/// Width of `size_t`, `unsigned long` and pointers: the C layout follows the platform.
const WORD: usize = std::mem::size_of::<usize>();
/// `sizeof(struct dcc_task_state)`: 296 on 64-bit Linux, 280 on 32-bit.
pub const STRUCT_SIZE: usize = 3 * WORD + 2 * NAME_LEN + 4 + 4 + WORD;

const OFF_SIZE: usize = 0;
const OFF_MAGIC: usize = WORD;
const OFF_PID: usize = 2 * WORD;
const OFF_FILE: usize = 3 * WORD;
const OFF_HOST: usize = OFF_FILE + NAME_LEN;
const OFF_SLOT: usize = OFF_HOST + NAME_LEN;
const OFF_PHASE: usize = OFF_SLOT + 4;
const OFF_NEXT: usize = OFF_PHASE + 4;

/// How often a live job's file is rewritten (distccmon-text deletes files whose mtime
/// is more than 60 s old, even if the process lives).
pub const REFRESH: Duration = Duration::from_secs(20);
/// How long a change waits before it is written, so that a burst of phases costs one
/// write (a temporary file and a rename cost ~100 µs on ext4).
pub const SETTLE: Duration = Duration::from_millis(25);

/// distcc's `enum dcc_phase`, with its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Startup = 0,
    /// Waiting for a slot (remote or local compile).
    Blocked = 1,
    /// Connecting to the server.
    Connect = 2,
    /// The local preprocessor runs (host `localhost`, the local slot).
    Preprocess = 3,
    /// Sending the request.
    Send = 4,
    /// Compiling: waiting for the server's answer, or the local compiler.
    Compile = 5,
    /// Receiving the server's answer.
    Receive = 6,
    /// Finished; writing the results.
    Done = 7,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Startup,
        Phase::Blocked,
        Phase::Connect,
        Phase::Preprocess,
        Phase::Send,
        Phase::Compile,
        Phase::Receive,
        Phase::Done,
    ];

    /// The name the monitors print (`dcc_get_phase_name`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Startup => "Startup",
            Phase::Blocked => "Blocked",
            Phase::Connect => "Connect",
            Phase::Preprocess => "Preprocess",
            Phase::Send => "Send",
            Phase::Compile => "Compile",
            Phase::Receive => "Receive",
            Phase::Done => "Done",
        }
    }

    /// distccmon's reading of a raw value: anything beyond Done counts as Compile.
    pub fn from_raw(v: u32) -> Phase {
        Phase::ALL
            .get(v as usize)
            .copied()
            .unwrap_or(Phase::Compile)
    }
}

/// One `struct dcc_task_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub pid: u64,
    /// Basename of the input (at most 127 bytes are kept).
    pub file: String,
    /// Host name without port or limit, or `localhost`.
    pub host: String,
    pub slot: i32,
    pub phase: Phase,
}

impl Record {
    /// The record of process `pid` at start-up: no file, no host.
    pub fn startup(pid: u64) -> Record {
        Record {
            pid,
            file: String::new(),
            host: String::new(),
            slot: 0,
            phase: Phase::Startup,
        }
    }

    /// The native bytes distcc writes: `struct_size`, magic, pid, file, host, slot,
    /// phase, and a null `next` pointer.
    pub fn encode(&self) -> [u8; STRUCT_SIZE] {
        let mut b = [0u8; STRUCT_SIZE];
        put_word(&mut b[OFF_SIZE..], STRUCT_SIZE as u64);
        put_word(&mut b[OFF_MAGIC..], MAGIC);
        put_word(&mut b[OFF_PID..], self.pid);
        put_name(&mut b[OFF_FILE..OFF_FILE + NAME_LEN], &self.file);
        put_name(&mut b[OFF_HOST..OFF_HOST + NAME_LEN], &self.host);
        b[OFF_SLOT..OFF_SLOT + 4].copy_from_slice(&self.slot.to_ne_bytes());
        b[OFF_PHASE..OFF_PHASE + 4].copy_from_slice(&(self.phase as u32).to_ne_bytes());
        // `next` (OFF_NEXT) stays zero: a pointer means nothing in a file.
        debug_assert_eq!(OFF_NEXT + WORD, STRUCT_SIZE);
        b
    }

    /// Reads a record as distccmon does: exactly `STRUCT_SIZE` bytes, the right size
    /// field and magic; names are cut at their first NUL (or at 127 bytes).
    pub fn decode(b: &[u8]) -> Option<Record> {
        if b.len() != STRUCT_SIZE
            || get_word(&b[OFF_SIZE..])? != STRUCT_SIZE as u64
            || get_word(&b[OFF_MAGIC..])? != MAGIC
        {
            return None;
        }
        let slot = i32::from_ne_bytes(b[OFF_SLOT..OFF_SLOT + 4].try_into().ok()?);
        let phase = u32::from_ne_bytes(b[OFF_PHASE..OFF_PHASE + 4].try_into().ok()?);
        Some(Record {
            pid: get_word(&b[OFF_PID..])?,
            file: get_name(&b[OFF_FILE..OFF_FILE + NAME_LEN]),
            host: get_name(&b[OFF_HOST..OFF_HOST + NAME_LEN]),
            slot,
            phase: Phase::from_raw(phase),
        })
    }
}

fn put_word(dst: &mut [u8], v: u64) {
    // A native `unsigned long`: 8 or 4 bytes, native order.
    if WORD == 8 {
        dst[..8].copy_from_slice(&v.to_ne_bytes());
    } else {
        dst[..4].copy_from_slice(&(v as u32).to_ne_bytes());
    }
}

fn get_word(src: &[u8]) -> Option<u64> {
    if WORD == 8 {
        Some(u64::from_ne_bytes(src.get(..8)?.try_into().ok()?))
    } else {
        Some(u64::from(u32::from_ne_bytes(
            src.get(..4)?.try_into().ok()?,
        )))
    }
}

/// Copies `s` NUL-terminated into `dst`, cut at a character boundary if too long.
fn put_name(dst: &mut [u8], s: &str) {
    let mut end = s.len().min(dst.len() - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    dst[..end].copy_from_slice(&s.as_bytes()[..end]);
}

fn get_name(src: &[u8]) -> String {
    // distccmon forces the last byte to NUL: at most 127 bytes count.
    let src = &src[..src.len() - 1];
    let end = src.iter().position(|&c| c == 0).unwrap_or(src.len());
    String::from_utf8_lossy(&src[..end]).into_owned()
}

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

    #[test]
    #[cfg(all(target_pointer_width = "64", target_endian = "little"))]
    fn encoding_matches_the_documented_x86_64_layout() {
        assert_eq!(STRUCT_SIZE, 296);
        let rec = Record {
            pid: 12906,
            file: "slow2.c".into(),
            host: "127.0.0.1".into(),
            slot: 1,
            phase: Phase::Compile,
        };
        let b = rec.encode();
        // The dump of a live distcc 3.4 file (distcc-observed.md 4.1).
        let mut want = [0u8; 296];
        want[0x000..0x010].copy_from_slice(&[
            0x28, 0x01, 0, 0, 0, 0, 0, 0, 0x00, 0x48, 0x49, 0x44, 0, 0, 0, 0,
        ]);
        want[0x010..0x018].copy_from_slice(&[0x6a, 0x32, 0, 0, 0, 0, 0, 0]);
        want[0x018..0x01f].copy_from_slice(b"slow2.c");
        want[0x098..0x0a1].copy_from_slice(b"127.0.0.1");
        want[0x118..0x120].copy_from_slice(&[1, 0, 0, 0, 5, 0, 0, 0]);
        assert_eq!(b.as_slice(), want.as_slice());
        // Offsets by field, as the reference table lists them.
        assert_eq!(u64::from_le_bytes(b[0..8].try_into().unwrap()), 296);
        assert_eq!(
            u64::from_le_bytes(b[8..16].try_into().unwrap()),
            0x4449_4800
        );
        assert_eq!(u64::from_le_bytes(b[16..24].try_into().unwrap()), 12906);
        assert_eq!(&b[24..32], b"slow2.c\0");
        assert_eq!(&b[152..162], b"127.0.0.1\0");
        assert_eq!(i32::from_le_bytes(b[280..284].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(b[284..288].try_into().unwrap()), 5);
        assert_eq!(&b[288..296], &[0u8; 8]);
        assert_eq!(Record::decode(&b), Some(rec));
    }

    #[test]
    fn phases_have_distccs_numbers_and_names() {
        for (i, p) in Phase::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i);
            assert_eq!(Phase::from_raw(i as u32), *p);
        }
        assert_eq!(Phase::Blocked.name(), "Blocked");
        assert_eq!(Phase::from_raw(99), Phase::Compile);
    }

    #[test]
    fn decode_rejects_what_distccmon_rejects_and_names_are_bounded() {
        let rec = Record {
            pid: 7,
            file: "é".repeat(100),
            host: "h".repeat(300),
            slot: 3,
            phase: Phase::Send,
        };
        let b = rec.encode();
        let back = Record::decode(&b).unwrap();
        assert!(back.file.len() <= 127 && back.file.chars().all(|c| c == 'é'));
        assert_eq!(back.host, "h".repeat(127));
        assert!(Record::decode(&b[..STRUCT_SIZE - 1]).is_none());
        let mut bad = b;
        bad[OFF_MAGIC] ^= 1;
        assert!(Record::decode(&bad).is_none());
        let mut bad = b;
        bad[OFF_SIZE] ^= 1;
        assert!(Record::decode(&bad).is_none());
    }

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
