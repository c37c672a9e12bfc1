//! Reads the client's environment and host files once, into a [`ClientConfig`].
//!
//! No other module calls `env::var`: they receive the values from here. Invalid values
//! are reported with the variable's name; they never crash the wrapper.

use std::env;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::hosts::{self, HostList};
use crate::transport::Dialer;

/// The system-wide host list, used when neither `DISTCC_HOSTS` nor `$DISTCC_DIR/hosts`
/// exists.
pub const SYSTEM_HOSTS_FILES: &[&str] = &["/etc/distcc/hosts", "/etc/swarmcc/hosts"];

/// Host files larger than this are refused, as distcc does (1 MiB).
const MAX_HOSTS_FILE: u64 = 1024 * 1024;

/// Everything the client takes from its environment.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `DISTCC_VERBOSE=1`: show every decision.
    pub verbose: bool,
    /// `DISTCC_LOG`: append wrapper messages to this file instead of stderr.
    pub log_file: Option<PathBuf>,
    /// `UNCACHED_ERR_FD`: log to this inherited fd (ccache sets it) when no log file.
    pub uncached_err_fd: Option<i32>,
    /// `DISTCC_DIR`, default `$HOME/.distcc`.
    pub distcc_dir: PathBuf,
    /// `DISTCC_HOSTS`, if set at all (an empty value means "no hosts").
    pub hosts_env: Option<String>,
    /// `DISTCC_IO_TIMEOUT`: longest silence while sending or receiving (default 300 s).
    pub io_timeout: Duration,
    /// `SWARMCC_CONNECT_TIMEOUT`: connect timeout (default 4 s, as distcc).
    pub connect_timeout: Duration,
    /// `SWARMCC_COMPILE_TIMEOUT`: how long a server may compile before its answer
    /// starts (default 600 s). Kept apart from the IO timeout so that a long compile on
    /// a healthy server is not mistaken for a dead link.
    pub compile_timeout: Duration,
    /// `SWARMCC_STALL_TIMEOUT`: with a swarmccd that sends keep-alives (the extension),
    /// this much silence while it compiles means it is gone (default 20 s).
    pub stall_timeout: Duration,
    /// `DISTCC_BACKOFF_PERIOD` (default 60 s; 0 disables backoff).
    pub backoff_period: Duration,
    /// `DISTCC_FALLBACK` (default on; "0" turns a failed distribution into an error).
    pub fallback: bool,
    /// `DISTCC_SKIP_LOCAL_RETRY` set (any value): accept a remote compile error as final.
    pub skip_local_retry: bool,
    /// `DISTCC_SAVE_TEMPS=1`: keep temporary files.
    pub save_temps: bool,
    /// `TMPDIR`, default `/tmp`.
    pub tmpdir: PathBuf,
    /// Where a job's preprocessed source is written: `TMPDIR` when set, else
    /// `/dev/shm` when it is a tmpfs this user can write, else `/tmp`. A file that lives
    /// for one job costs less in memory than through a disk filesystem's journal and
    /// block allocation (measured: 0.4 ms of client CPU per tiny job, 0.8 ms for a
    /// 1.8 MB source, against ext4).
    pub scratch_dir: PathBuf,
    /// `DISTCC_NO_REWRITE_CROSS` (or the man page's `DISTCC_NO_CROSS_REWRITE`) set.
    pub no_rewrite_cross: bool,
    /// `_DISTCC_SAFEGUARD`: recursion level inherited from a parent swarmcc/distcc.
    pub safeguard: Option<String>,
    /// `PATH` as inherited.
    pub path: OsString,
    /// `SWARMCC_BUILD_ID`: set by `swarmcc --run` to group a build's jobs for its summary.
    pub build_id: Option<String>,
    /// The load above which no local compile starts: `SWARMCC_LOAD_LIMIT`, else make's
    /// `-l` from `MAKEFLAGS`.
    pub load_limit: Option<f64>,
    /// `SWARMCC_AUTH_KEY_FILE`, default `$DISTCC_DIR/auth.key`: the pre-shared key for
    /// hosts listed with `,auth`. Read only when such a host is tried.
    pub auth_key_file: PathBuf,
    /// `DISTCC_PRINCIPAL`: distcc's GSS-API service name, which only
    /// `--show-principal` prints (swarmcc has no GSS-API).
    pub principal: Option<String>,
    /// `DISTCC_SSH` (the ssh command for `user@host` hosts) and `DISTCC_SOCKS_PROXY`
    /// (the SOCKSv5 proxy TCP hosts are reached through: Gentoo's network-sandbox).
    pub dialer: Dialer,
    /// The compile cache: `SWARMCC_CACHE` (`1`, the default: the local cache and the
    /// hosts' farm caches; `farm`: only the hosts'; `0`: neither).
    pub cache: CacheMode,
    /// `SWARMCC_CACHE_DIR`, default `$DISTCC_DIR/cache`: the local cache.
    pub cache_dir: PathBuf,
    /// `SWARMCC_CACHE_SIZE` in MiB (default 1024): the local cache's bound.
    pub cache_bytes: u64,
    /// `SWARMCC_REAPI_TOKEN_FILE`: the bearer token's file for REAPI hosts listed
    /// without `,token=FILE`. Read only when such a host is tried.
    pub reapi_token_file: Option<PathBuf>,
}

/// Which compile caches a client uses (`SWARMCC_CACHE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// The local cache, then the farm caches of hosts that offer one.
    All,
    /// Only the hosts' farm caches.
    Farm,
    /// No cache: every job is compiled.
    Off,
}

impl CacheMode {
    pub fn local(self) -> bool {
        self == CacheMode::All
    }

    pub fn farm(self) -> bool {
        self != CacheMode::Off
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad {} value {:?}: expected {}",
            self.variable, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// Where the host list came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostsSource {
    Env,
    File(PathBuf),
    None,
}

impl fmt::Display for HostsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostsSource::Env => write!(f, "$DISTCC_HOSTS"),
            HostsSource::File(p) => write!(f, "{}", p.display()),
            HostsSource::None => write!(f, "(no host list)"),
        }
    }
}

/// Why no usable host list could be read.
#[derive(Debug)]
pub enum HostsError {
    Parse {
        source: HostsSource,
        error: hosts::ParseError,
    },
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    TooLarge(PathBuf),
}

impl fmt::Display for HostsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostsError::Parse { source, error } => write!(f, "{source}: {error}"),
            HostsError::Read { path, error } => {
                write!(f, "cannot read host list {}: {error}", path.display())
            }
            HostsError::TooLarge(p) => {
                write!(f, "host list {} is larger than 1 MiB", p.display())
            }
        }
    }
}

impl std::error::Error for HostsError {}

impl ClientConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<ClientConfig, ConfigError> {
        Self::from_lookup(&|name| env::var_os(name))
    }

    /// Reads configuration through `get`, so tests can supply their own environment.
    pub fn from_lookup(
        get: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<ClientConfig, ConfigError> {
        let text = |name: &str| get(name).map(|v| v.to_string_lossy().into_owned());
        let distcc_dir = distcc_dir(get);
        let (tmpdir, scratch_dir) = temp_dirs(get);
        let uncached_err_fd = uncached_err_fd(&text)?;
        let auth_key_file = match get("SWARMCC_AUTH_KEY_FILE") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => distcc_dir.join("auth.key"),
        };
        Ok(ClientConfig {
            dialer: Dialer::new(
                text("DISTCC_SSH").as_deref(),
                text("DISTCC_SOCKS_PROXY").as_deref(),
            ),
            auth_key_file,
            principal: text("DISTCC_PRINCIPAL"),
            verbose: text("DISTCC_VERBOSE").is_some_and(|v| v.trim() == "1"),
            log_file: get("DISTCC_LOG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            uncached_err_fd,
            hosts_env: text("DISTCC_HOSTS"),
            io_timeout: seconds(&text, "DISTCC_IO_TIMEOUT", 300, false)?,
            connect_timeout: seconds(&text, "SWARMCC_CONNECT_TIMEOUT", 4, false)?,
            compile_timeout: seconds(&text, "SWARMCC_COMPILE_TIMEOUT", 600, false)?,
            stall_timeout: seconds(&text, "SWARMCC_STALL_TIMEOUT", 20, false)?,
            backoff_period: seconds(&text, "DISTCC_BACKOFF_PERIOD", 60, true)?,
            fallback: text("DISTCC_FALLBACK").is_none_or(|v| v.trim() != "0"),
            skip_local_retry: get("DISTCC_SKIP_LOCAL_RETRY").is_some(),
            save_temps: text("DISTCC_SAVE_TEMPS").is_some_and(|v| v.trim() == "1"),
            tmpdir,
            scratch_dir,
            no_rewrite_cross: get("DISTCC_NO_REWRITE_CROSS").is_some()
                || get("DISTCC_NO_CROSS_REWRITE").is_some(),
            safeguard: text(crate::compiler::SAFEGUARD_VAR),
            path: get("PATH").unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin")),
            build_id: text("SWARMCC_BUILD_ID").filter(|v| !v.trim().is_empty()),
            load_limit: load_limit(&text)?,
            reapi_token_file: get("SWARMCC_REAPI_TOKEN_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            cache: cache_mode(&text)?,
            cache_dir: get("SWARMCC_CACHE_DIR")
                .filter(|v| !v.is_empty())
                .map_or_else(|| distcc_dir.join("cache"), PathBuf::from),
            cache_bytes: cache_mib(&text)? << 20,
            distcc_dir,
        })
    }

    /// The host list: `DISTCC_HOSTS`, else `$DISTCC_DIR/hosts`, else the system file.
    /// `Ok((list, HostsSource::None))` with an empty list when none exists.
    pub fn load_hosts(&self) -> Result<(HostList, HostsSource), HostsError> {
        if let Some(text) = &self.hosts_env {
            let list = hosts::parse(text).map_err(|error| HostsError::Parse {
                source: HostsSource::Env,
                error,
            })?;
            return Ok((self.with_zeroconf(list), HostsSource::Env));
        }
        let mut candidates = vec![self.distcc_dir.join("hosts")];
        candidates.extend(SYSTEM_HOSTS_FILES.iter().map(PathBuf::from));
        for path in candidates {
            match std::fs::metadata(&path) {
                Ok(m) if m.len() > MAX_HOSTS_FILE => return Err(HostsError::TooLarge(path)),
                Ok(_) => {}
                Err(_) => continue,
            }
            let text = std::fs::read_to_string(&path).map_err(|error| HostsError::Read {
                path: path.clone(),
                error,
            })?;
            let source = HostsSource::File(path);
            let list = hosts::parse(&text).map_err(|error| HostsError::Parse {
                source: source.clone(),
                error,
            })?;
            return Ok((self.with_zeroconf(list), source));
        }
        Ok((HostList::default(), HostsSource::None))
    }

    /// The list with the servers zeroconf found (`$DISTCC_DIR/zeroconf/hosts`, kept by
    /// the browse helper, started here when none runs) where `+zeroconf` stands. When
    /// none can be had, the list goes on without them, and the reason is told once per
    /// backoff period.
    fn with_zeroconf(&self, mut list: HostList) -> HostList {
        let Some(at) = list.zeroconf else {
            return list;
        };
        let cache = crate::zeroconf::cache::CacheDir::new(&self.distcc_dir);
        let start = || {
            let exe = std::env::current_exe()?;
            let args = ["--zeroconf-serve".as_ref(), cache.dir.as_os_str()];
            crate::agent::spawn_detached(&exe, &args)
        };
        let found = cache.read_for_client(&start).and_then(|text| {
            let problem = crate::zeroconf::cache::problem(&text);
            hosts::parse(&text)
                .map(|found| (found.hosts, problem))
                .map_err(|e| {
                    std::io::Error::other(format!("{}: {e}", cache.hosts_path().display()))
                })
        });
        let problem = match found {
            Ok((found, problem)) => {
                log::debug!(
                    "zeroconf: {} servers from {}",
                    found.len(),
                    cache.hosts_path().display()
                );
                let at = at.min(list.hosts.len());
                list.hosts.splice(at..at, found);
                problem
            }
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = problem {
            if crate::backoff::first_notice(&self.lock_dir(), "zeroconf", self.backoff_period) {
                log::warn!(
                    target: crate::logging::NOTICE,
                    "+zeroconf: {why}; no servers discovered (said once per {}s)",
                    crate::backoff::notice_period(self.backoff_period).as_secs()
                );
            }
        }
        list
    }

    /// Directory of lock and backoff files (`$DISTCC_DIR/lock`), shared with distcc.
    pub fn lock_dir(&self) -> PathBuf {
        self.distcc_dir.join("lock")
    }
}

fn seconds(
    text: &dyn Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
    zero_ok: bool,
) -> Result<Duration, ConfigError> {
    let Some(raw) = text(variable) else {
        return Ok(Duration::from_secs(default));
    };
    let bad = || ConfigError {
        variable,
        value: raw.clone(),
        expected: if zero_ok {
            "a number of seconds (0 or more)"
        } else {
            "a positive number of seconds"
        },
    };
    let n: u64 = raw.trim().parse().map_err(|_| bad())?;
    if n == 0 && !zero_ok {
        return Err(bad());
    }
    Ok(Duration::from_secs(n))
}

/// Whether `dir` is a directory on a tmpfs that this user may create files in.
fn is_writable_tmpfs(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `st` is a plain C struct statfs fills in; `c` is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 || st.f_type as i64 != TMPFS_MAGIC {
        return false;
    }
    // SAFETY: access only reads the path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// `DISTCC_DIR`, else `$HOME/.distcc` (distcc's default; `/` when `HOME` is unset).
/// `SWARMCC_CACHE`: `1` (or unset), `farm`, or `0`.
fn cache_mode(text: &dyn Fn(&str) -> Option<String>) -> Result<CacheMode, ConfigError> {
    match text("SWARMCC_CACHE").as_deref().map(str::trim) {
        None | Some("") | Some("1") => Ok(CacheMode::All),
        Some("farm") => Ok(CacheMode::Farm),
        Some("0") => Ok(CacheMode::Off),
        Some(other) => Err(ConfigError {
            variable: "SWARMCC_CACHE",
            value: other.to_owned(),
            expected: "1 (local and farm caches), farm (the hosts' only) or 0 (none)",
        }),
    }
}

/// `SWARMCC_CACHE_SIZE`: the local cache's bound in MiB, default 1024.
fn cache_mib(text: &dyn Fn(&str) -> Option<String>) -> Result<u64, ConfigError> {
    let Some(value) = text("SWARMCC_CACHE_SIZE").filter(|v| !v.trim().is_empty()) else {
        return Ok(1024);
    };
    match value.trim().parse::<u64>() {
        Ok(n) if (1..1 << 40).contains(&n) => Ok(n),
        _ => Err(ConfigError {
            variable: "SWARMCC_CACHE_SIZE",
            value,
            expected: "a size in MiB, at least 1",
        }),
    }
}

fn distcc_dir(get: &dyn Fn(&str) -> Option<OsString>) -> PathBuf {
    match get("DISTCC_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let home = get("HOME").unwrap_or_else(|| OsString::from("/"));
            Path::new(&home).join(".distcc")
        }
    }
}

/// `(tmpdir, scratch_dir)`: `TMPDIR` for both when set; else `/tmp`, with scratch files
/// in `/dev/shm` when it is a writable tmpfs (see [`ClientConfig::scratch_dir`]).
fn temp_dirs(get: &dyn Fn(&str) -> Option<OsString>) -> (PathBuf, PathBuf) {
    match get("TMPDIR") {
        Some(d) if !d.is_empty() => (PathBuf::from(&d), PathBuf::from(d)),
        _ => {
            let shm = Path::new("/dev/shm");
            let scratch = if is_writable_tmpfs(shm) {
                shm
            } else {
                Path::new("/tmp")
            };
            (PathBuf::from("/tmp"), scratch.to_owned())
        }
    }
}

/// `UNCACHED_ERR_FD`, the fd ccache hands us for messages; a value that is not a
/// number is a [`ConfigError`] naming the variable.
fn uncached_err_fd(text: &dyn Fn(&str) -> Option<String>) -> Result<Option<i32>, ConfigError> {
    match text("UNCACHED_ERR_FD") {
        Some(v) => Ok(Some(v.trim().parse::<i32>().map_err(|_| ConfigError {
            variable: "UNCACHED_ERR_FD",
            value: v.clone(),
            expected: "a file descriptor number",
        })?)),
        None => Ok(None),
    }
}

/// `SWARMCC_LOAD_LIMIT`, else make's `-l` from the make flags: the enclosing make's
/// own load limit applies to our local work too.
fn load_limit(text: &dyn Fn(&str) -> Option<String>) -> Result<Option<f64>, ConfigError> {
    match text("SWARMCC_LOAD_LIMIT") {
        Some(v) => Ok(Some(
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|l| *l > 0.0)
                .ok_or(ConfigError {
                    variable: "SWARMCC_LOAD_LIMIT",
                    value: v.clone(),
                    expected: "a positive number (a load, like make -l)",
                })?,
        )),
        None => Ok(crate::jobserver::parse(
            text("CARGO_MAKEFLAGS").as_deref(),
            text("MAKEFLAGS").as_deref(),
            text("MFLAGS").as_deref(),
        )
        .load_limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<ClientConfig, ConfigError> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        ClientConfig::from_lookup(&|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_match_distcc() {
        let c = cfg(&[("HOME", "/home/u")]).unwrap();
        assert_eq!(c.distcc_dir, PathBuf::from("/home/u/.distcc"));
        assert_eq!(c.io_timeout, Duration::from_secs(300));
        assert_eq!(c.backoff_period, Duration::from_secs(60));
        assert!(c.fallback);
        assert!(!c.skip_local_retry);
        assert!(!c.verbose);
        assert_eq!(c.tmpdir, PathBuf::from("/tmp"));
        // Without TMPDIR, sources go to /dev/shm where it is a writable tmpfs.
        let shm = is_writable_tmpfs(Path::new("/dev/shm"));
        let expected = if shm { "/dev/shm" } else { "/tmp" };
        assert_eq!(c.scratch_dir, PathBuf::from(expected));
        assert!(!is_writable_tmpfs(Path::new("/proc")));
        assert_eq!(c.hosts_env, None);
        assert_eq!(c.auth_key_file, PathBuf::from("/home/u/.distcc/auth.key"));
    }

    #[test]
    fn the_compile_cache_settings() {
        let c = cfg(&[("DISTCC_DIR", "/d")]).unwrap();
        assert_eq!(c.cache, CacheMode::All);
        assert!(c.cache.local() && c.cache.farm());
        assert_eq!(c.cache_dir, PathBuf::from("/d/cache"));
        assert_eq!(c.cache_bytes, 1024 << 20);
        let c = cfg(&[
            ("SWARMCC_CACHE", "farm"),
            ("SWARMCC_CACHE_DIR", "/c"),
            ("SWARMCC_CACHE_SIZE", "10"),
        ])
        .unwrap();
        assert!(!c.cache.local() && c.cache.farm());
        assert_eq!(
            (c.cache_dir, c.cache_bytes),
            (PathBuf::from("/c"), 10 << 20)
        );
        let c = cfg(&[("SWARMCC_CACHE", "0")]).unwrap();
        assert!(!c.cache.local() && !c.cache.farm());
        let e = cfg(&[("SWARMCC_CACHE", "yes")]).unwrap_err();
        assert_eq!(e.variable, "SWARMCC_CACHE");
        assert!(e.to_string().contains("expected 1"), "{e}");
        for bad in ["0", "-1", "lots"] {
            let e = cfg(&[("SWARMCC_CACHE_SIZE", bad)]).unwrap_err();
            assert_eq!(e.variable, "SWARMCC_CACHE_SIZE", "{bad}");
        }
    }

    #[test]
    fn auth_key_file_follows_distcc_dir_unless_set() {
        let c = cfg(&[("DISTCC_DIR", "/d")]).unwrap();
        assert_eq!(c.auth_key_file, PathBuf::from("/d/auth.key"));
        let c = cfg(&[("DISTCC_DIR", "/d"), ("SWARMCC_AUTH_KEY_FILE", "/etc/k")]).unwrap();
        assert_eq!(c.auth_key_file, PathBuf::from("/etc/k"));
        let c = cfg(&[("HOME", "/h"), ("SWARMCC_AUTH_KEY_FILE", "")]).unwrap();
        assert_eq!(c.auth_key_file, PathBuf::from("/h/.distcc/auth.key"));
    }

    #[test]
    fn variables_are_read() {
        let c = cfg(&[
            ("DISTCC_DIR", "/var/tmp/portage/.distcc"),
            ("DISTCC_VERBOSE", "1"),
            ("DISTCC_FALLBACK", "0"),
            ("DISTCC_SKIP_LOCAL_RETRY", "0"),
            ("DISTCC_BACKOFF_PERIOD", "0"),
            ("DISTCC_IO_TIMEOUT", "7"),
            ("DISTCC_HOSTS", ""),
            ("TMPDIR", "/scratch"),
        ])
        .unwrap();
        assert_eq!(c.distcc_dir, PathBuf::from("/var/tmp/portage/.distcc"));
        assert!(c.verbose);
        assert!(!c.fallback);
        // distcc: any value, even "0", skips the local retry.
        assert!(c.skip_local_retry);
        assert_eq!(c.backoff_period, Duration::ZERO);
        assert_eq!(c.io_timeout, Duration::from_secs(7));
        assert_eq!(c.hosts_env.as_deref(), Some(""));
        assert_eq!(c.tmpdir, PathBuf::from("/scratch"));
        assert_eq!(c.scratch_dir, PathBuf::from("/scratch"));
    }

    #[test]
    fn load_limit_comes_from_make_unless_set() {
        let c = cfg(&[("MAKEFLAGS", " -j16 -l4 --jobserver-auth=3,4")]).unwrap();
        assert_eq!(c.load_limit, Some(4.0));
        let c = cfg(&[
            ("MAKEFLAGS", " -j16 -l4 --jobserver-auth=3,4"),
            ("SWARMCC_LOAD_LIMIT", "2.5"),
        ])
        .unwrap();
        assert_eq!(c.load_limit, Some(2.5));
        assert_eq!(cfg(&[]).unwrap().load_limit, None);
        assert!(cfg(&[("SWARMCC_LOAD_LIMIT", "-1")]).is_err());
    }

    #[test]
    fn bad_timeout_names_the_variable() {
        let e = cfg(&[("DISTCC_IO_TIMEOUT", "soon")]).unwrap_err();
        assert_eq!(e.variable, "DISTCC_IO_TIMEOUT");
        assert!(e.to_string().contains("\"soon\""), "{e}");
        assert!(cfg(&[("DISTCC_IO_TIMEOUT", "0")]).is_err());
    }
}
