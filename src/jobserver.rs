//! The GNU make jobserver, client side: what an inherited `MAKEFLAGS` says (jobserver,
//! `-j`, `-l`, `-n`), and a small fd layer to take and give back job tokens.
//!
//! Boundary: this module parses the make variables and talks to an inherited jobserver.
//! It decides nothing about scheduling (the client and the agent do), and it never
//! creates a jobserver: the launcher uses the `jobserver` crate for that.
//!
//! The contract followed here is section (d) of the field survey; in short:
//! * the variables are read in the order `CARGO_MAKEFLAGS`, `MAKEFLAGS`, `MFLAGS`, and the
//!   first one set names the jobserver: its **last** `--jobserver-auth=`, else its last
//!   `--jobserver-fds=` (make ≤ 4.1). `R,W` with negative fds means "disabled";
//!   `fifo:PATH` is make 4.4's named pipe; anything else is a style we do not speak.
//! * make exports `MAKEFLAGS` to every recipe but passes the pipe fds only to recipes it
//!   thinks recursive (`$(MAKE)` or `+`). A `CC=wrapper` recipe therefore often sees
//!   `--jobserver-auth=3,4` with fds 3 and 4 closed, or reused for something else, so
//!   [`Jobserver::connect`] validates them before anything is read or written.
//! * the inherited fds belong to the whole build: they are never closed, never made
//!   non-blocking and never marked close-on-exec here, so a compiler run locally inherits
//!   them untouched. Reads go through a private re-open of `/dev/fd/N` (a new open file
//!   description on Linux) that is non-blocking and close-on-exec.
//!
//! Measured with GNU make 4.3 (Debian 12), recipes printing `$MAKEFLAGS`:
//! * `make -j4 -l2` → `" -j4 -l2 --jobserver-auth=3,4"`; `make -j4 -l2 -k -s` →
//!   `"ks -j4 -l2 --jobserver-auth=3,4"` (single-letter flags first, without a dash);
//!   `MFLAGS` is the same with a dash on the first word: `"-ks -j4 -l2 …"`.
//! * `make -n -j3` → `"n -j3 --jobserver-auth=3,4"`; command-line variables follow a
//!   `--` word: `" -j2 --jobserver-auth=3,4 -- CC=foo X=a\ b"` (spaces escaped).
//! * a non-`+` recipe gets the same `MAKEFLAGS` but fds 3 and 4 are closed.
//! * a make started with a jobserver in `MAKEFLAGS` and no `-j` of its own uses it: with
//!   two tokens in the pipe it runs three recipes at once (its implicit slot plus two).

use std::ffi::{CString, OsStr};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The byte written when a token is given back that was not read from the pipe (the
/// implicit token lent by [`Jobserver::lend`]). jobserver-rs writes the same byte.
pub const LENT_TOKEN_BYTE: u8 = b'+';

/// How an inherited jobserver is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// An anonymous pipe: read tokens from `read`, write them back to `write`.
    Pipe { read: i32, write: i32 },
    /// make ≥ 4.4's named pipe (`--jobserver-auth=fifo:PATH`).
    Fifo(PathBuf),
}

impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Pipe { read, write } => write!(f, "{read},{write}"),
            Auth::Fifo(p) => write!(f, "fifo:{}", p.display()),
        }
    }
}

/// What the make variables say. Nothing here has been checked against the system:
/// [`Jobserver::connect`] does that.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MakeFlags {
    /// The jobserver to use, if any (negative fds and unknown styles give `None`).
    pub auth: Option<Auth>,
    /// make's `-l N` / `--load-average=N` / `--max-load=N` (a plain `-l` clears it).
    pub load_limit: Option<f64>,
    /// make's `-jN` / `--jobs=N`; a bare `-j` (no limit) gives `None`.
    pub jobs: Option<u32>,
    /// make `-n` (`--dry-run`, `--just-print`, `--recon`): commands are only printed;
    /// the few that still run (`+` lines) may choose to do nothing.
    pub dry_run: bool,
}

/// Reads `CARGO_MAKEFLAGS`, `MAKEFLAGS` and `MFLAGS` from the process environment and
/// parses them.
///
/// This is one of the documented exceptions to "only `config` reads the environment":
/// these variables describe file descriptors of this very process, so they are read
/// next to the code that validates those fds, and passed on to children untouched.
pub fn flags_from_env() -> MakeFlags {
    let get = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
    parse(
        get("CARGO_MAKEFLAGS").as_deref(),
        get("MAKEFLAGS").as_deref(),
        get("MFLAGS").as_deref(),
    )
}

/// Parses the make variables.
///
/// * The jobserver and `-j` come from the first variable that is set, in the order
///   `CARGO_MAKEFLAGS`, `MAKEFLAGS`, `MFLAGS` (as jobserver-rs and sccache): cargo sets
///   `CARGO_MAKEFLAGS` for its own jobserver even when it runs under make.
/// * `-l` and `-n` are make's own options, which cargo never writes: when the winning
///   variable is `CARGO_MAKEFLAGS` they come from `MAKEFLAGS`, else `MFLAGS`.
/// * Within a variable, words after a lone `--` are variable assignments
///   (`-- CC=gcc`) and are ignored; a later option overrides an earlier one.
pub fn parse(
    cargo_makeflags: Option<&str>,
    makeflags: Option<&str>,
    mflags: Option<&str>,
) -> MakeFlags {
    let Some(winner) = cargo_makeflags.or(makeflags).or(mflags) else {
        return MakeFlags::default();
    };
    let main = parse_one(winner);
    let make_own = if cargo_makeflags.is_some() {
        makeflags.or(mflags).map(parse_one)
    } else {
        None
    };
    let (load_limit, dry_run) = match make_own {
        Some(m) => (m.load_limit.or(main.load_limit), m.dry_run || main.dry_run),
        None => (main.load_limit, main.dry_run),
    };
    MakeFlags {
        auth: main.auth,
        load_limit,
        jobs: main.jobs,
        dry_run,
    }
}

/// Short options of make that take a value in the same or the next word: after one of
/// these, the rest of a flag cluster is that value, not more flags.
const SHORT_WITH_VALUE: &str = "CfIoWOEjl";

fn parse_one(text: &str) -> MakeFlags {
    let words = split_words(text);
    let mut out = MakeFlags::default();
    let mut auth: Option<String> = None;
    let mut fds: Option<String> = None;
    let mut i = 0;
    while i < words.len() {
        let word = words[i].as_str();
        let next_number = words.get(i + 1).filter(|w| is_number(w)).cloned();
        i += 1;
        if word == "--" {
            break;
        }
        if let Some(v) = word.strip_prefix("--jobserver-auth=") {
            auth = Some(v.to_string());
        } else if let Some(v) = word.strip_prefix("--jobserver-fds=") {
            fds = Some(v.to_string());
        } else if let Some(v) = word
            .strip_prefix("--load-average=")
            .or_else(|| word.strip_prefix("--max-load="))
        {
            out.load_limit = parse_load(v);
        } else if word == "--load-average" || word == "--max-load" {
            out.load_limit = next_number.as_deref().and_then(parse_load);
            i += usize::from(next_number.is_some());
        } else if let Some(v) = word.strip_prefix("--jobs=") {
            out.jobs = parse_jobs(v);
        } else if word == "--jobs" {
            out.jobs = next_number.as_deref().and_then(parse_jobs);
            i += usize::from(next_number.is_some());
        } else if matches!(word, "--dry-run" | "--just-print" | "--recon") {
            out.dry_run = true;
        } else if word.starts_with("--") {
            // Another long option (`--no-print-directory`, `--debug=…`): not ours.
        } else if let Some(cluster) = word.strip_prefix('-') {
            i += usize::from(short_cluster(cluster, next_number.as_deref(), &mut out));
        } else if i == 1 && word.chars().all(|c| c.is_ascii_alphabetic()) {
            // make 4.x writes its single-letter flags first, without a dash (`ks`).
            short_cluster(word, None, &mut out);
        }
    }
    out.auth = auth.or(fds).as_deref().and_then(parse_auth);
    out
}

/// Applies a cluster of short flags (`ks`, `kj4`, `l2`); returns true when it used
/// `next` (a separate value, as in a hand-written `MAKEFLAGS="-j 4"`).
fn short_cluster(cluster: &str, next: Option<&str>, out: &mut MakeFlags) -> bool {
    for (pos, c) in cluster.char_indices() {
        if !SHORT_WITH_VALUE.contains(c) {
            if c == 'n' {
                out.dry_run = true;
            }
            continue;
        }
        let rest = &cluster[pos + c.len_utf8()..];
        let (value, used_next) = match (rest.is_empty(), next) {
            (false, _) => (Some(rest), false),
            (true, Some(n)) if matches!(c, 'j' | 'l') => (Some(n), true),
            (true, _) => (None, false),
        };
        match c {
            'j' => out.jobs = value.and_then(parse_jobs),
            'l' => out.load_limit = value.and_then(parse_load),
            // -C dir, -f file…: the rest of the word is that value (or the next word
            // is, which then does not look like a flag cluster we care about).
            _ => {}
        }
        return used_next;
    }
    false
}

fn is_number(w: &str) -> bool {
    !w.is_empty() && w.parse::<f64>().is_ok()
}

fn parse_jobs(v: &str) -> Option<u32> {
    v.parse::<u32>().ok().filter(|&n| n > 0)
}

fn parse_load(v: &str) -> Option<f64> {
    // make treats 0 (and negative) as "no limit".
    v.parse::<f64>().ok().filter(|&l| l.is_finite() && l > 0.0)
}

/// `R,W` → a pipe (negative numbers: disabled → `None`); `fifo:PATH` → a named pipe.
fn parse_auth(v: &str) -> Option<Auth> {
    if let Some(path) = v.strip_prefix("fifo:") {
        return (!path.is_empty()).then(|| Auth::Fifo(PathBuf::from(path)));
    }
    let (r, w) = v.split_once(',')?;
    let read: i32 = r.trim().parse().ok()?;
    let write: i32 = w.trim().parse().ok()?;
    (read >= 0 && write >= 0).then_some(Auth::Pipe { read, write })
}

/// Splits on unescaped whitespace; make escapes spaces inside a word with a backslash.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => cur.push(n),
                None => cur.push('\\'),
            },
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Why an inherited jobserver cannot be used.
#[derive(Debug)]
pub struct Unusable {
    pub auth: Auth,
    pub reason: String,
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "jobserver {} is not usable: {}", self.auth, self.reason)?;
        if matches!(self.auth, Auth::Pipe { .. }) {
            write!(
                f,
                " (make passes the jobserver fds only to recursive recipes: prefix the \
                 recipe line with `+`)"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Unusable {}

/// A validated connection to an inherited jobserver.
#[derive(Debug)]
pub struct Jobserver {
    auth: Auth,
    /// Private, non-blocking, close-on-exec reader (a re-open of the pipe's read side,
    /// or the fifo opened read-write).
    reader: File,
    /// Where tokens are written back: the inherited write fd (never closed or altered),
    /// or the private fifo handle.
    write_fd: RawFd,
}

impl Jobserver {
    /// Connects to the jobserver `flags` name, after validating it; `None` (with the
    /// reason logged at debug level) when there is none or it cannot be used, in which
    /// case the caller behaves as if there were no jobserver.
    pub fn from_flags(flags: &MakeFlags) -> Option<Jobserver> {
        let auth = flags.auth.as_ref()?;
        match Jobserver::connect(auth) {
            Ok(js) => Some(js),
            Err(e) => {
                log::debug!("{e}");
                None
            }
        }
    }

    /// Validates and opens `auth`. For a pipe, both fds must be open (`F_GETFD`), be
    /// FIFOs (`fstat`), be open for reading and writing respectively, and be the two
    /// ends of one pipe (same inode): a closed fd 3 reused by an unrelated pipe or file
    /// is refused instead of being read from. A fifo is opened `O_RDWR` (so opening
    /// never blocks and a read never sees EOF) and must be a FIFO.
    pub fn connect(auth: &Auth) -> Result<Jobserver, Unusable> {
        let fail = |reason: String| Unusable {
            auth: auth.clone(),
            reason,
        };
        match auth {
            Auth::Pipe { read, write } => {
                let (r, w) = (*read, *write);
                let rs = check_fd(r, libc::O_RDONLY).map_err(|e| fail(format!("fd {r}: {e}")))?;
                let ws = check_fd(w, libc::O_WRONLY).map_err(|e| fail(format!("fd {w}: {e}")))?;
                if (rs.st_dev, rs.st_ino) != (ws.st_dev, ws.st_ino) {
                    return Err(fail(format!(
                        "fds {r} and {w} are not the two ends of one pipe"
                    )));
                }
                let reader = reopen_nonblocking(r).map_err(|e| {
                    fail(format!(
                        "cannot re-open fd {r} privately as /dev/fd/{r}: {e}"
                    ))
                })?;
                Ok(Jobserver {
                    auth: auth.clone(),
                    reader,
                    write_fd: w,
                })
            }
            Auth::Fifo(path) => {
                let file = open_fifo(path).map_err(|e| fail(e.to_string()))?;
                let write_fd = file.as_raw_fd();
                Ok(Jobserver {
                    auth: auth.clone(),
                    reader: file,
                    write_fd,
                })
            }
        }
    }

    /// What this jobserver was connected from (for messages).
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Takes one extra token, waiting as long as it takes (retrying after signals).
    /// It goes back when the [`Token`] is dropped.
    pub fn acquire(&self) -> io::Result<Token<'_>> {
        let byte = self
            .read_token(None)?
            .ok_or_else(|| io::Error::other("jobserver wait ended without a token"))?;
        Ok(Token { js: self, byte })
    }

    /// Takes one extra token if one is free right now.
    pub fn try_acquire(&self) -> io::Result<Option<Token<'_>>> {
        Ok(self
            .read_token(Some(Duration::ZERO))?
            .map(|byte| Token { js: self, byte }))
    }

    /// Lends this process's implicit token to the build while it only waits (on the
    /// network, for a remote compile): one token is written, so make can start another
    /// job meanwhile. The token must be taken back, with [`Lent::reclaim`], before the
    /// process runs anything CPU-heavy here (a local compile or fallback) and before it
    /// exits; dropping the [`Lent`] reclaims too, so an early return or a panic never
    /// leaves an extra token in the pool. (`std::process::exit` runs no destructors:
    /// reclaim before calling it.)
    ///
    /// Trade-off: while tokens are lent, make runs more processes than `-j`, but no more
    /// CPU-busy ones; and reclaiming waits for a free token, so a finished remote job
    /// may exit a little later than it could (it never deadlocks: every lender has put
    /// a token in, and jobs that hold one finish).
    ///
    /// Signals: no handler is installed here. When SIGINT or SIGTERM hit the build,
    /// make is going down with its children (it dies by the signal and checks no
    /// count), so the one surplus token per process that dies while lending is
    /// harmless. A process that alone is killed while lending (SIGKILL, the OOM killer)
    /// leaves one surplus token behind: the rest of that build may run one job more
    /// than `-j`, and GNU make 4.3 says at exit "INTERNAL: Exiting with 4 jobserver
    /// tokens available; should be 3!" (for `-j3`) but still exits 0 (measured in
    /// tests/jobserver.rs). A caller that catches SIGTERM itself can avoid even that by
    /// reclaiming before it exits.
    pub fn lend(&self) -> io::Result<Lent<'_>> {
        self.write_token(LENT_TOKEN_BYTE)?;
        Ok(Lent {
            js: self,
            reclaimed: false,
        })
    }

    /// Waits for a token byte: `None` as timeout means forever; `Ok(None)` when the
    /// timeout passed first.
    fn read_token(&self, timeout: Option<Duration>) -> io::Result<Option<u8>> {
        let fd = self.reader.as_raw_fd();
        loop {
            let mut byte = 0u8;
            // SAFETY: reading one byte into a valid one-byte buffer.
            let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
            if n == 1 {
                return Ok(Some(byte));
            }
            if n == 0 {
                // Cannot happen while we hold a writer (the inherited write fd or the
                // O_RDWR fifo), but never spin on it.
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("jobserver {} was closed", self.auth),
                ));
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {}
                _ => return Err(err),
            }
            // Another process took the token first, or there is none yet: wait until
            // the pipe is readable again.
            let ms = match timeout {
                None => -1,
                Some(t) if t.is_zero() => return Ok(None),
                Some(t) => t.as_millis().min(i32::MAX as u128) as i32,
            };
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r < 0 {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            } else if r == 0 {
                return Ok(None);
            }
        }
    }

    fn write_token(&self, byte: u8) -> io::Result<()> {
        loop {
            // SAFETY: writing one byte from a valid buffer to an fd validated at connect.
            let n = unsafe { libc::write(self.write_fd, (&byte as *const u8).cast(), 1) };
            if n == 1 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                // The fifo handle is non-blocking; a pipe holding 64 KiB of tokens is
                // not a real case, but waiting is the right answer to it.
                io::ErrorKind::WouldBlock => {
                    let mut pfd = libc::pollfd {
                        fd: self.write_fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut pfd, 1, 100) };
                }
                _ => {
                    return Err(io::Error::new(
                        err.kind(),
                        format!("cannot give a token back to jobserver {}: {err}", self.auth),
                    ))
                }
            }
        }
    }
}

/// An extra token taken from the jobserver; written back (the same byte) when dropped.
#[derive(Debug)]
pub struct Token<'a> {
    js: &'a Jobserver,
    byte: u8,
}

impl Drop for Token<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.js.write_token(self.byte) {
            log::error!("{e}");
        }
    }
}

/// The implicit token, lent to the build by [`Jobserver::lend`]. Reclaim it before
/// running anything CPU-heavy and before exiting; dropping it reclaims (waiting).
#[derive(Debug)]
#[must_use = "dropping a Lent reclaims the token at once"]
pub struct Lent<'a> {
    js: &'a Jobserver,
    reclaimed: bool,
}

impl Lent<'_> {
    /// Takes a token back, waiting until one is free (retrying after signals).
    pub fn reclaim(mut self) -> io::Result<()> {
        self.reclaimed = true;
        self.js.read_token(None).map(|_| ())
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if !self.reclaimed {
            self.reclaimed = true;
            if let Err(e) = self.js.read_token(None) {
                log::error!("cannot take back the lent jobserver token: {e}");
            }
        }
    }
}

/// Checks that `fd` is open, is a FIFO and is open for `mode` (or read-write).
fn check_fd(fd: RawFd, mode: libc::c_int) -> Result<libc::stat, String> {
    // SAFETY: F_GETFD on any integer is harmless; it fails with EBADF if not open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(format!("not open ({})", io::Error::last_os_error()));
    }
    // SAFETY: fstat fills a zeroed stat struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } == -1 {
        return Err(format!("fstat failed ({})", io::Error::last_os_error()));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err("not a pipe".to_string());
    }
    // SAFETY: F_GETFL on an open fd.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    let acc = fl & libc::O_ACCMODE;
    if fl == -1 || (acc != mode && acc != libc::O_RDWR) {
        let want = if mode == libc::O_RDONLY {
            "reading"
        } else {
            "writing"
        };
        return Err(format!("not open for {want}"));
    }
    Ok(st)
}

/// Opens `/dev/fd/N` read-only, non-blocking and close-on-exec: on Linux a new open
/// file description of the same pipe, so O_NONBLOCK stays private to us.
fn reopen_nonblocking(fd: RawFd) -> io::Result<File> {
    open_path(
        Path::new(&format!("/dev/fd/{fd}")),
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
    )
}

fn open_fifo(path: &Path) -> io::Result<File> {
    let file = open_path(path, libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    // SAFETY: fstat of an fd we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(file.as_raw_fd(), &mut st) } == -1 {
        return Err(io::Error::last_os_error());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a named pipe", path.display()),
        ));
    }
    Ok(file)
}

fn open_path(path: &Path, flags: libc::c_int) -> io::Result<File> {
    let c = CString::new(OsStr::as_bytes(path.as_os_str()))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: a valid C string; the fd returned is owned by the File.
    let fd = unsafe { libc::open(c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(s: &str) -> MakeFlags {
        parse(None, Some(s), None)
    }

    fn pipe(read: i32, write: i32) -> Option<Auth> {
        Some(Auth::Pipe { read, write })
    }

    // --- real strings captured from GNU make 4.3 (Debian 12) ------------------------------

    #[test]
    fn make43_j4_l2() {
        let f = mk(" -j4 -l2 --jobserver-auth=3,4");
        assert_eq!(f.auth, pipe(3, 4));
        assert_eq!(f.jobs, Some(4));
        assert_eq!(f.load_limit, Some(2.0));
        assert!(!f.dry_run);
    }

    #[test]
    fn make43_cluster_first_word() {
        let f = mk("ks -j4 -l2 --jobserver-auth=3,4");
        assert_eq!(f.auth, pipe(3, 4));
        assert_eq!(f.jobs, Some(4));
        assert!(!f.dry_run);
    }

    #[test]
    fn make43_mflags_form() {
        let f = parse(None, None, Some("-ks -j4 -l2 --jobserver-auth=3,4"));
        assert_eq!(f.auth, pipe(3, 4));
        assert_eq!(f.load_limit, Some(2.0));
        assert!(!f.dry_run);
    }

    #[test]
    fn make43_dry_run() {
        let f = mk("n -j3 --jobserver-auth=3,4");
        assert!(f.dry_run);
        assert_eq!(f.jobs, Some(3));
        assert!(parse(None, None, Some("-kn -j3")).dry_run);
        assert!(mk("kns").dry_run);
    }

    #[test]
    fn make43_fractional_load() {
        let f = mk("i -j4 -l3.5 --jobserver-auth=3,4");
        assert_eq!(f.load_limit, Some(3.5));
        assert!(!f.dry_run);
    }

    #[test]
    fn make43_variables_after_double_dash_are_ignored() {
        let f = mk(" -j2 --jobserver-auth=3,4 -- CC=foo X=a\\ b MAKEFLAGS=--jobserver-auth=7,8");
        assert_eq!(f.auth, pipe(3, 4));
        let f = mk("k -j3 --jobserver-auth=3,4 -- X=-n V=1");
        assert!(!f.dry_run);
    }

    #[test]
    fn make43_long_options_in_between() {
        let f = mk("e -j2 -Otarget --jobserver-auth=3,4 --no-print-directory");
        assert_eq!(f.auth, pipe(3, 4));
        assert_eq!(f.jobs, Some(2));
        assert!(!f.dry_run);
    }

    #[test]
    fn make43_recursive_w_flag() {
        let f = mk("kw -j3 --jobserver-auth=3,4 -- V=1 X=a\\ b");
        assert_eq!(f.auth, pipe(3, 4));
        assert!(!f.dry_run);
    }

    #[test]
    fn bare_j_means_no_limit() {
        let f = mk(" -j");
        assert_eq!(f.jobs, None);
        assert_eq!(f.auth, None);
    }

    #[test]
    fn empty_makeflags() {
        assert_eq!(mk(""), MakeFlags::default());
        assert_eq!(parse(None, None, None), MakeFlags::default());
    }

    // --- make 4.4 forms ----------------------------------------------------------------------

    #[test]
    fn make44_fifo() {
        let f = mk(" -j8 --jobserver-auth=fifo:/tmp/GMfifo1234");
        assert_eq!(f.auth, Some(Auth::Fifo(PathBuf::from("/tmp/GMfifo1234"))));
        assert_eq!(f.jobs, Some(8));
    }

    #[test]
    fn make44_fifo_path_with_escaped_space() {
        let f = mk(" -j2 --jobserver-auth=fifo:/tmp/my\\ dir/GMfifo9");
        assert_eq!(
            f.auth,
            Some(Auth::Fifo(PathBuf::from("/tmp/my dir/GMfifo9")))
        );
    }

    #[test]
    fn make44_negative_fds_disable() {
        assert_eq!(mk(" -j4 --jobserver-auth=-2,-2").auth, None);
        assert_eq!(mk(" -j4 --jobserver-auth=3,-1").auth, None);
    }

    // --- which flag and which variable wins --------------------------------------------------

    #[test]
    fn last_jobserver_auth_wins() {
        let f = mk(" -j4 --jobserver-auth=3,4 --jobserver-auth=5,6");
        assert_eq!(f.auth, pipe(5, 6));
    }

    #[test]
    fn auth_beats_fds_whatever_the_order() {
        let f = mk("-j --jobserver-auth=5,6 --jobserver-fds=3,4");
        assert_eq!(f.auth, pipe(5, 6));
    }

    #[test]
    fn old_jobserver_fds_is_the_fallback() {
        let f = mk(" -j --jobserver-fds=3,4");
        assert_eq!(f.auth, pipe(3, 4));
        assert_eq!(f.jobs, None);
    }

    #[test]
    fn cargo_and_jobserver_rs_form() {
        let f = parse(
            Some("-j --jobserver-fds=7,8 --jobserver-auth=7,8"),
            None,
            None,
        );
        assert_eq!(f.auth, pipe(7, 8));
    }

    #[test]
    fn cargo_makeflags_wins_over_makeflags() {
        let f = parse(
            Some("-j --jobserver-fds=7,8 --jobserver-auth=7,8"),
            Some(" -j4 -l3 --jobserver-auth=3,4"),
            None,
        );
        assert_eq!(f.auth, pipe(7, 8));
        // make's own -l still applies to the machine.
        assert_eq!(f.load_limit, Some(3.0));
        assert_eq!(f.jobs, None);
    }

    #[test]
    fn makeflags_wins_over_mflags() {
        let f = parse(
            None,
            Some(" -j2 --jobserver-auth=3,4"),
            Some("-j9 --jobserver-auth=5,6"),
        );
        assert_eq!(f.auth, pipe(3, 4));
        assert_eq!(f.jobs, Some(2));
    }

    #[test]
    fn set_but_empty_variable_still_wins() {
        let f = parse(Some(""), Some(" -j2 --jobserver-auth=3,4"), None);
        assert_eq!(f.auth, None);
    }

    #[test]
    fn unknown_style_is_ignored() {
        assert_eq!(
            mk("-j --jobserver-auth=__rust_jobserver_semaphore_1").auth,
            None
        );
        assert_eq!(mk("-j --jobserver-auth=fifo:").auth, None);
        assert_eq!(mk("-j --jobserver-auth=3").auth, None);
        assert_eq!(mk("-j --jobserver-auth=a,b").auth, None);
    }

    // --- -l, -j, -n spellings ----------------------------------------------------------------

    #[test]
    fn load_spellings() {
        assert_eq!(mk("-l 4").load_limit, Some(4.0));
        assert_eq!(mk("-l4").load_limit, Some(4.0));
        assert_eq!(mk("--load-average=2.5").load_limit, Some(2.5));
        assert_eq!(mk("--max-load=6").load_limit, Some(6.0));
        assert_eq!(mk("--load-average 3").load_limit, Some(3.0));
        assert_eq!(mk("-kl2").load_limit, Some(2.0));
    }

    #[test]
    fn later_plain_l_clears_the_limit() {
        assert_eq!(mk("-l4 -l").load_limit, None);
        assert_eq!(mk("-l0").load_limit, None);
    }

    #[test]
    fn jobs_spellings() {
        assert_eq!(mk("-j 6").jobs, Some(6));
        assert_eq!(mk("--jobs=5").jobs, Some(5));
        assert_eq!(mk("--jobs 7").jobs, Some(7));
        assert_eq!(mk("-kj3").jobs, Some(3));
        assert_eq!(mk("-j0").jobs, None);
    }

    #[test]
    fn dry_run_spellings() {
        assert!(mk("--dry-run").dry_run);
        assert!(mk("--just-print -j2").dry_run);
        assert!(mk("--recon").dry_run);
        assert!(mk("-n").dry_run);
    }

    #[test]
    fn n_inside_values_is_not_dry_run() {
        // `-C` takes the rest of the word: the `n` of a directory name is not `-n`.
        assert!(!mk("-Cnowhere").dry_run);
        assert!(!mk(" -j4 --jobserver-auth=fifo:/tmp/nnn").dry_run);
        // Only the first word is a dashless cluster.
        assert!(!mk(" -j4 nope").dry_run);
        assert!(!mk("-Onone").dry_run);
    }

    // --- fd validation -----------------------------------------------------------------------

    fn os_pipe() -> (RawFd, RawFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two fds.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        (fds[0], fds[1])
    }

    fn close(fd: RawFd) {
        // SAFETY: closing fds this test opened.
        unsafe { libc::close(fd) };
    }

    #[test]
    fn closed_fds_are_refused() {
        let (r, w) = os_pipe();
        close(r);
        close(w);
        let e = Jobserver::connect(&Auth::Pipe { read: r, write: w }).unwrap_err();
        assert!(e.to_string().contains("not open"), "{e}");
        assert!(e.to_string().contains('+'), "{e}");
    }

    #[test]
    fn a_regular_file_is_refused() {
        let f = tempfile::tempfile().unwrap();
        let fd = f.as_raw_fd();
        let e = Jobserver::connect(&Auth::Pipe {
            read: fd,
            write: fd,
        })
        .unwrap_err();
        assert!(e.to_string().contains("not a pipe"), "{e}");
    }

    #[test]
    fn ends_of_two_different_pipes_are_refused() {
        let (r1, w1) = os_pipe();
        let (r2, w2) = os_pipe();
        let e = Jobserver::connect(&Auth::Pipe {
            read: r1,
            write: w2,
        })
        .unwrap_err();
        assert!(e.to_string().contains("one pipe"), "{e}");
        let e = Jobserver::connect(&Auth::Pipe {
            read: w1,
            write: r1,
        })
        .unwrap_err();
        assert!(e.to_string().contains("not open for reading"), "{e}");
        for fd in [r1, w1, r2, w2] {
            close(fd);
        }
    }

    #[test]
    fn tokens_lent_and_reclaimed_balance() {
        let (r, w) = os_pipe();
        // Two tokens in the pool.
        // SAFETY: writing to our own pipe.
        assert_eq!(unsafe { libc::write(w, b"ab".as_ptr().cast(), 2) }, 2);
        let js = Jobserver::connect(&Auth::Pipe { read: r, write: w }).unwrap();
        let t1 = js.try_acquire().unwrap().unwrap();
        let t2 = js.acquire().unwrap();
        assert!(js.try_acquire().unwrap().is_none());
        let lent = js.lend().unwrap();
        let t3 = js
            .try_acquire()
            .unwrap()
            .expect("the lent token is in the pool");
        drop(t3);
        lent.reclaim().unwrap();
        assert!(js.try_acquire().unwrap().is_none());
        drop((t1, t2));
        {
            let _lent = js.lend().unwrap();
            // Dropped without reclaim: Drop reclaims.
        }
        let mut buf = [0u8; 8];
        // SAFETY: reading our own pipe through the private non-blocking reader.
        let n = unsafe { libc::read(js.reader.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
        // As many tokens as at the start.
        assert_eq!(n, 2);
        // The shared description was not made non-blocking.
        // SAFETY: F_GETFL on our fd.
        assert_eq!(
            unsafe { libc::fcntl(r, libc::F_GETFL) } & libc::O_NONBLOCK,
            0
        );
        drop(js);
        // Still open after the Jobserver is gone.
        // SAFETY: F_GETFD on our fd.
        assert_ne!(unsafe { libc::fcntl(r, libc::F_GETFD) }, -1);
        close(r);
        close(w);
    }

    #[test]
    fn fifo_style_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("GMfifo1");
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo with a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let flags = mk(&format!(" -j3 --jobserver-auth=fifo:{}", path.display()));
        let js = Jobserver::from_flags(&flags).expect("fifo connects");
        assert!(js.try_acquire().unwrap().is_none());
        let lent = js.lend().unwrap();
        assert!(js.try_acquire().unwrap().is_some());
        lent.reclaim().unwrap();
        let e = Jobserver::connect(&Auth::Fifo(dir.path().join("missing"))).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
