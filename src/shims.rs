//! The masquerade folder: symlinks named like the compilers on this machine (`cc`,
//! `gcc`, `x86_64-linux-gnu-g++-12`, `clang-15`…), all pointing at swarmcc. Put the
//! folder first on `PATH` and every compiler call of a build goes through swarmcc; give
//! it to swarmccd as `--whitelist-dir` and the same names are the server's whitelist.
//!
//! Three layers, so the rules can be tested without a machine full of compilers:
//! * pure name rules: [`is_compiler_name`], [`select_names`], [`default_dir`];
//! * the filesystem: [`compiler_names`] (reads `PATH`), [`install`], [`uninstall`]
//!   (touch only the one folder, and in it only links that are swarmcc's);
//! * the command: [`run_install`] (`swarmcc --install-shims`), whose option parsing
//!   belongs to `client::own`.
//!
//! What happens when a link is run (masquerade mode, PATH trimming, recursion guards)
//! is `compiler`'s job, not this module's.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::compiler::is_executable_file;
use crate::exit::ExitCode;

/// The generic names, linked when they exist on the machine, in this order (the same
/// set as Debian's `update-distcc-symlinks` plus clang's).
pub const BASE_NAMES: &[&str] = &[
    "cc", "c++", "c89", "c99", "gcc", "g++", "c89-gcc", "c99-gcc", "clang", "clang++",
];

/// Where root's shims go, and the folder swarmccd whitelists by default.
pub const SYSTEM_DIR: &str = "/usr/lib/swarmcc/bin";

/// Portage's masquerade folder: `FEATURES="distcc"` puts it first on `PATH`.
pub const DISTCC_DIR: &str = "/usr/lib/distcc/bin";

/// A user's shims, relative to `$HOME`.
pub const USER_DIR: &str = ".local/lib/swarmcc/bin";

/// The compiler stems a versioned or target-prefixed name is built on.
/// `clang++` before `clang` and `g++` before `gcc` only matters for readability: every
/// occurrence of every stem is tried.
const STEMS: &[&str] = &["clang++", "clang", "g++", "gcc"];

/// Programs that are wrappers, not compilers: a PATH entry resolving to one of these
/// (a distcc, ccache or swarmcc masquerade folder) does not prove a compiler exists.
const WRAPPERS: &[&str] = &["distcc", "ccache", "sccache", "icecc", "buildcache"];

/// Whether `name` is a compiler name worth a link: one of [`BASE_NAMES`], or
/// `[<triple>-]{gcc,g++,clang,clang++}[-<version>]` where a version is digits and dots
/// (`gcc-12`, `x86_64-linux-gnu-g++-12`, `clang++-15`, `x86_64-pc-linux-gnu-gcc-13.2.1`).
/// Tools built on the same stems (`gcc-ar-12`, `x86_64-linux-gnu-gcc-nm`,
/// `clang-format-15`, `clang-tidy`) are not compilers and are rejected: a masquerade
/// link for them would send `ar` commands through swarmcc.
pub fn is_compiler_name(name: &str) -> bool {
    if BASE_NAMES.contains(&name) {
        return true;
    }
    STEMS.iter().any(|stem| {
        name.match_indices(stem).any(|(at, _)| {
            let (prefix, suffix) = (&name[..at], &name[at + stem.len()..]);
            (prefix.is_empty() || prefix.strip_suffix('-').is_some_and(is_triple))
                && (suffix.is_empty() || suffix.strip_prefix('-').is_some_and(is_version))
        })
    })
}

/// A target triple as compiler prefixes spell it: dash-separated words of letters,
/// digits, `_` and `.`, the first starting with a letter (`x86_64-linux-gnu`,
/// `arm-none-eabi`, `avr`). A single word is allowed for bare-metal ports (`avr-gcc`).
fn is_triple(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.split('-').all(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        })
}

/// A version suffix: digits and dots, starting with a digit (`12`, `13.2.1`). The same
/// rule as the client's cross-compile rewrite, so every linked name is one it knows.
fn is_version(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit()) && s.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// From the executable names found on a machine, the ones to link, without duplicates:
/// [`BASE_NAMES`] first in their order, then the others sorted. Pure.
pub fn select_names<I, S>(found: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let found: BTreeSet<String> = found
        .into_iter()
        .map(|s| s.as_ref().to_owned())
        .filter(|n| is_compiler_name(n))
        .collect();
    let mut names: Vec<String> = BASE_NAMES
        .iter()
        .filter(|b| found.contains(**b))
        .map(|b| (*b).to_owned())
        .collect();
    names.extend(
        found
            .into_iter()
            .filter(|n| !BASE_NAMES.contains(&n.as_str())),
    );
    names
}

/// The compiler names that exist on this machine: every executable on `path_env` whose
/// name passes [`is_compiler_name`], as [`select_names`] orders them. A name that only
/// exists as a link to a wrapper (swarmcc, distcc, ccache…) does not count, so a shim
/// folder on PATH never keeps its own stale links alive. Empty and relative PATH
/// entries are skipped: they depend on the current directory. Touches the filesystem
/// (reads the PATH directories); unreadable ones are skipped.
pub fn compiler_names(path_env: &OsStr) -> Vec<String> {
    let mut found = Vec::new();
    for entry in path_env.as_bytes().split(|&b| b == b':') {
        let dir = Path::new(OsStr::from_bytes(entry));
        if !dir.is_absolute() {
            continue;
        }
        let Ok(rd) = fs::read_dir(dir) else { continue };
        for e in rd.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !is_compiler_name(&name) {
                continue;
            }
            let p = e.path();
            if is_executable_file(&p) && !resolves_to_wrapper(&p) {
                found.push(name);
            }
        }
    }
    select_names(found)
}

/// Whether `p`, links followed, is swarmcc or another compiler wrapper.
fn resolves_to_wrapper(p: &Path) -> bool {
    fs::canonicalize(p).is_ok_and(|real| {
        real.file_name()
            .is_some_and(|n| is_wrapper_name(&n.to_string_lossy()))
    })
}

/// swarmcc under any name that contains it, or a known wrapper.
fn is_wrapper_name(base: &str) -> bool {
    base.contains("swarmcc") || WRAPPERS.contains(&base)
}

/// The default shims folder: Portage's `/usr/lib/distcc/bin` when `distcc_names`,
/// else [`SYSTEM_DIR`] for root (the folder swarmccd whitelists by default), else
/// `~/.local/lib/swarmcc/bin`. `None` when a user has no home. Pure.
pub fn default_dir(is_root: bool, home: Option<&Path>, distcc_names: bool) -> Option<PathBuf> {
    if distcc_names {
        Some(PathBuf::from(DISTCC_DIR))
    } else if is_root {
        Some(PathBuf::from(SYSTEM_DIR))
    } else {
        home.filter(|h| !h.as_os_str().is_empty())
            .map(|h| h.join(USER_DIR))
    }
}

/// Why an entry of the folder was left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// A file or directory that is not a symlink: someone else's.
    NotALink,
    /// A symlink to something that is not swarmcc (nor distcc): someone else's.
    LinkElsewhere(PathBuf),
}

/// What [`install`] or [`uninstall`] did, name by name (each list sorted by name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallReport {
    pub dir: PathBuf,
    pub target: PathBuf,
    /// New links.
    pub created: Vec<String>,
    /// Links that pointed at another swarmcc (or distcc) and now point at the target,
    /// with what they pointed at before.
    pub updated: Vec<(String, PathBuf)>,
    /// Links already pointing at the target.
    pub unchanged: Vec<String>,
    /// Links to the target removed (no longer a compiler here, or uninstall).
    pub removed: Vec<String>,
    /// Entries named like a wanted compiler that are not ours, left as they are.
    pub skipped: Vec<(String, Skipped)>,
}

impl InstallReport {
    /// The links in the folder that now point at the target.
    pub fn linked(&self) -> usize {
        self.created.len() + self.updated.len() + self.unchanged.len()
    }
}

impl fmt::Display for InstallReport {
    /// A summary line, then one line per change and per entry left alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} links to {} ({} new, {} updated, {} removed, {} left alone)",
            self.dir.display(),
            self.linked(),
            self.target.display(),
            self.created.len(),
            self.updated.len(),
            self.removed.len(),
            self.skipped.len()
        )?;
        for n in &self.created {
            writeln!(f, "  created {n}")?;
        }
        for (n, old) in &self.updated {
            writeln!(f, "  updated {n} (was -> {})", old.display())?;
        }
        for n in &self.removed {
            writeln!(f, "  removed {n}")?;
        }
        for (n, why) in &self.skipped {
            match why {
                Skipped::NotALink => writeln!(f, "  left alone {n}: not a symlink")?,
                Skipped::LinkElsewhere(t) => {
                    writeln!(f, "  left alone {n}: a link to {}", t.display())?
                }
            }
        }
        Ok(())
    }
}

/// An io::Error that names the path it is about.
fn at(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// A name that is safe as one entry of the folder.
fn valid_entry_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// Where a link points, absolute (a relative target is relative to the link's folder).
fn link_target_abs(link: &Path, raw: &Path) -> PathBuf {
    if raw.is_absolute() {
        raw.to_path_buf()
    } else {
        link.parent().unwrap_or(Path::new("/")).join(raw)
    }
}

/// Whether the link at `link` (pointing at `raw`) leads to `target`: the same spelling,
/// or the same file (so `~/.cargo/bin/swarmcc` and its resolved path are one target).
fn points_to(link: &Path, raw: &Path, target: &Path, target_id: Option<(u64, u64)>) -> bool {
    if link_target_abs(link, raw) == target {
        return true;
    }
    match (fs::metadata(link), target_id) {
        (Ok(m), Some(id)) => (m.dev(), m.ino()) == id,
        _ => false,
    }
}

/// Whether a link's destination is a swarmcc or distcc binary, i.e. a link of a
/// masquerade folder that installing may take over. By name, because an old install's
/// binary may be gone (a dangling link is still ours).
fn points_to_a_wrapper(link: &Path, raw: &Path) -> bool {
    let dest = link_target_abs(link, raw);
    let by_name = |p: &Path| {
        p.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            n.contains("swarmcc") || n == "distcc"
        })
    };
    by_name(&dest) || fs::canonicalize(&dest).is_ok_and(|real| by_name(&real))
}

/// Makes `dir` (created if missing) hold exactly one link `dir/NAME -> target` per
/// name in `names`: missing links are created; links to another swarmcc or to distcc
/// (an older install, Portage's distcc links) are replaced atomically; links to
/// `target` whose name is no longer wanted are removed. Anything else — a regular file,
/// a directory, a link to another program — is never touched and is listed in
/// [`InstallReport::skipped`]. A relative `target` is made absolute first.
///
/// Errors name the path; an error stops the run (what was done so far stays done, and
/// running it again finishes the job).
pub fn install(dir: &Path, target: &Path, names: &[String]) -> io::Result<InstallReport> {
    let target = std::path::absolute(target).map_err(|e| at(target, "cannot resolve", e))?;
    if let Some(bad) = names.iter().find(|n| !valid_entry_name(n)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "invalid compiler name {bad:?} for a link in {}",
                dir.display()
            ),
        ));
    }
    fs::create_dir_all(dir).map_err(|e| at(dir, "cannot create", e))?;
    let target_id = fs::metadata(&target).ok().map(|m| (m.dev(), m.ino()));
    let mut report = InstallReport {
        dir: dir.to_path_buf(),
        target: target.clone(),
        ..InstallReport::default()
    };
    let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    for name in &wanted {
        let link = dir.join(name);
        match fs::symlink_metadata(&link) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::os::unix::fs::symlink(&target, &link)
                    .map_err(|e| at(&link, "cannot create the link", e))?;
                report.created.push((*name).to_owned());
            }
            Err(e) => return Err(at(&link, "cannot inspect", e)),
            Ok(m) if !m.file_type().is_symlink() => {
                report.skipped.push(((*name).to_owned(), Skipped::NotALink));
            }
            Ok(_) => {
                let raw = fs::read_link(&link).map_err(|e| at(&link, "cannot read the link", e))?;
                if points_to(&link, &raw, &target, target_id) {
                    report.unchanged.push((*name).to_owned());
                } else if points_to_a_wrapper(&link, &raw) {
                    replace_link(&link, &target)?;
                    report.updated.push(((*name).to_owned(), raw));
                } else {
                    report
                        .skipped
                        .push(((*name).to_owned(), Skipped::LinkElsewhere(raw)));
                }
            }
        }
    }
    report.removed = remove_links_to(dir, &target, target_id, |n| !wanted.contains(n))?;
    Ok(report)
}

/// Removes every link in `dir` that points at `target` (see [`install`] for what
/// "points at" means). Other entries are left alone and not reported. A missing `dir`
/// is not an error: there is nothing to uninstall. The folder itself stays.
pub fn uninstall(dir: &Path, target: &Path) -> io::Result<InstallReport> {
    let target = std::path::absolute(target).map_err(|e| at(target, "cannot resolve", e))?;
    let target_id = fs::metadata(&target).ok().map(|m| (m.dev(), m.ino()));
    let mut report = InstallReport {
        dir: dir.to_path_buf(),
        target: target.clone(),
        ..InstallReport::default()
    };
    if fs::symlink_metadata(dir).is_err() {
        return Ok(report);
    }
    report.removed = remove_links_to(dir, &target, target_id, |_| true)?;
    Ok(report)
}

/// Removes the links of `dir` to `target` whose name `doomed` accepts; returns their
/// names, sorted.
fn remove_links_to(
    dir: &Path,
    target: &Path,
    target_id: Option<(u64, u64)>,
    doomed: impl Fn(&str) -> bool,
) -> io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| at(dir, "cannot read", e))? {
        let e = e.map_err(|e| at(dir, "cannot read", e))?;
        let link = e.path();
        let is_link = e.file_type().is_ok_and(|t| t.is_symlink());
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_link || !doomed(&name) {
            continue;
        }
        let Ok(raw) = fs::read_link(&link) else {
            continue;
        };
        if points_to(&link, &raw, target, target_id) {
            fs::remove_file(&link).map_err(|e| at(&link, "cannot remove", e))?;
            removed.push(name);
        }
    }
    removed.sort();
    Ok(removed)
}

/// Points the existing link `link` at `target` in one step (a new link under a
/// temporary name, renamed over the old one), so a build running meanwhile never finds
/// the name missing.
fn replace_link(link: &Path, target: &Path) -> io::Result<()> {
    let name = link.file_name().unwrap_or_default().to_string_lossy();
    let tmp = link.with_file_name(format!(".{name}.swarmcc-new-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| at(&tmp, "cannot create the link", e))?;
    fs::rename(&tmp, link).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        at(link, "cannot replace", e)
    })
}

/// Install or uninstall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Install,
    Uninstall,
}

/// The `swarmcc --install-shims [DIR]` / `--uninstall-shims [DIR]` command, as parsed
/// by `client::own`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallArgs {
    pub action: Action,
    /// The folder; `None` means [`default_dir`].
    pub dir: Option<PathBuf>,
    /// `--distcc-names`: the default folder is Portage's `/usr/lib/distcc/bin`.
    pub distcc_names: bool,
    /// What the links point at; `None` means this swarmcc executable.
    pub target: Option<PathBuf>,
}

/// Runs the install/uninstall command: prints the report on stdout, errors (naming the
/// path) on stderr, and returns the exit code (0, or 101 for a missing folder argument,
/// 107 for a filesystem error). Reads `PATH`, `HOME` and the effective uid.
pub fn run_install(args: &InstallArgs) -> i32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let Some(dir) = args
        .dir
        .clone()
        .or_else(|| default_dir(is_root, home.as_deref(), args.distcc_names))
    else {
        eprintln!("swarmcc: HOME is not set; name the shims folder: swarmcc --install-shims DIR");
        return ExitCode::BadArguments.code();
    };
    let target = match &args.target {
        Some(t) => t.clone(),
        None => match std::env::current_exe() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("swarmcc: cannot find the swarmcc executable: {e}");
                return ExitCode::IoError.code();
            }
        },
    };
    let result = match args.action {
        Action::Install => {
            let path =
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
            install(&dir, &target, &compiler_names(&path))
        }
        Action::Uninstall => uninstall(&dir, &target),
    };
    match result {
        Ok(report) => {
            print!("{report}");
            if args.action == Action::Install {
                if report.linked() == 0 {
                    eprintln!("swarmcc: no compiler found on PATH; the folder has no links");
                }
                println!("use: export PATH=\"{}:$PATH\"", dir.display());
                if dir != Path::new(SYSTEM_DIR) && !args.distcc_names {
                    println!("server: swarmccd --whitelist-dir {}", dir.display());
                }
            }
            0
        }
        Err(e) => {
            eprintln!("swarmcc: {e}");
            ExitCode::IoError.code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_names_are_accepted() {
        for n in [
            "cc",
            "c++",
            "c89",
            "c99",
            "gcc",
            "g++",
            "c89-gcc",
            "c99-gcc",
            "clang",
            "clang++",
            "gcc-12",
            "g++-12",
            "gcc-13.2.1",
            "x86_64-linux-gnu-gcc",
            "x86_64-linux-gnu-g++",
            "x86_64-linux-gnu-gcc-12",
            "x86_64-linux-gnu-g++-12",
            "x86_64-pc-linux-gnu-gcc-13.2.1",
            "arm-none-eabi-gcc",
            "avr-gcc",
            "clang-15",
            "clang++-15",
            "x86_64-pc-linux-gnu-clang",
            "x86_64-pc-linux-gnu-clang++-17",
        ] {
            assert!(is_compiler_name(n), "{n}");
        }
    }

    #[test]
    fn tools_and_lookalikes_are_rejected() {
        for n in [
            "gcc-ar",
            "gcc-nm",
            "gcc-ranlib",
            "gcc-ar-12",
            "gcc-nm-12",
            "gcc-ranlib-12",
            "x86_64-linux-gnu-gcc-ar",
            "x86_64-linux-gnu-gcc-ar-12",
            "x86_64-linux-gnu-gcc-ranlib-12",
            "clang-format",
            "clang-format-15",
            "clang-tidy",
            "clang-cpp-15",
            "git-clang-format",
            "run-clang-tidy-15",
            "gccgo",
            "gccgo-12",
            "x86_64-linux-gnu-gccgo-12",
            "gcc-",
            "-gcc",
            "gcc-12a",
            "gcc-.12",
            "12-gcc",
            "x86_64--gcc",
            "cpp",
            "ld",
            "",
        ] {
            assert!(!is_compiler_name(n), "{n}");
        }
    }

    #[test]
    fn selection_orders_base_names_first_and_drops_duplicates_and_tools() {
        let got = select_names([
            "gcc-12",
            "gcc",
            "gcc-ar-12",
            "cc",
            "clang-15",
            "gcc",
            "x86_64-linux-gnu-gcc-12",
            "ls",
            "c++",
        ]);
        assert_eq!(
            got,
            [
                "cc",
                "c++",
                "gcc",
                "clang-15",
                "gcc-12",
                "x86_64-linux-gnu-gcc-12"
            ]
        );
        assert!(select_names(Vec::<String>::new()).is_empty());
    }

    #[test]
    fn default_dirs() {
        let home = Path::new("/home/u");
        assert_eq!(
            default_dir(true, Some(home), false),
            Some(PathBuf::from("/usr/lib/swarmcc/bin"))
        );
        assert_eq!(
            default_dir(false, Some(home), false),
            Some(PathBuf::from("/home/u/.local/lib/swarmcc/bin"))
        );
        assert_eq!(
            default_dir(false, Some(home), true),
            Some(PathBuf::from("/usr/lib/distcc/bin"))
        );
        assert_eq!(
            default_dir(true, None, true),
            Some(PathBuf::from("/usr/lib/distcc/bin"))
        );
        assert_eq!(default_dir(false, None, false), None);
        assert_eq!(default_dir(false, Some(Path::new("")), false), None);
    }

    #[test]
    fn entry_names_cannot_escape_the_folder() {
        for bad in ["", ".", "..", "a/b", "/gcc"] {
            assert!(!valid_entry_name(bad), "{bad}");
        }
        assert!(valid_entry_name("g++-12"));
    }

    #[test]
    fn wrappers_are_recognised_by_name() {
        for w in [
            "swarmcc",
            "swarmcc-0.1",
            "distcc",
            "ccache",
            "sccache",
            "icecc",
        ] {
            assert!(is_wrapper_name(w), "{w}");
        }
        for c in ["gcc", "x86_64-linux-gnu-gcc-12", "clang-15"] {
            assert!(!is_wrapper_name(c), "{c}");
        }
    }
}
