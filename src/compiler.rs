//! Which compiler to run: how swarmcc was invoked (explicit, implicit, masquerade or
//! one of its own options), the masquerade PATH trimming, the real-compiler search with
//! its recursion guard, the `_DISTCC_SAFEGUARD` rule, and the cross-compile rewrite of
//! argv[0] for the remote command.
//!
//! It leaves argument scanning (is this a distributable compile?) to `args`, running
//! anything to `client`/`exec`, and reading the environment to `config`: the decisions
//! here are pure functions of the values they are given. The functions that look at the
//! filesystem say so in their docs; each has a pure counterpart (or takes its checks as
//! closures) so that the rules can be unit-tested.
//!
//! Masquerade safety has three layers, because any one of them can be defeated by an
//! unusual PATH:
//! 1. [`trim_masquerade_path`] drops PATH entries up to and including our directory
//!    (as distcc does), plus later entries that spell that same directory;
//! 2. [`find_real_compiler`] never returns a file that is swarmcc (same inode, a link
//!    into a swarmcc install, or a byte-for-byte copy), whatever directory it is in, so
//!    a shim directory listed twice or under another spelling is harmless;
//! 3. [`check_safeguard`] stops a loop that got past both, via `_DISTCC_SAFEGUARD`.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The recursion-level variable. We use distcc's own name rather than a swarmcc one so
/// that a build mixing distcc and swarmcc (a distcc masquerade directory on PATH ahead
/// of ours, or the reverse) still counts one level per wrapper and cannot loop.
pub const SAFEGUARD_VAR: &str = "_DISTCC_SAFEGUARD";

/// The compiler inserted in implicit mode (`swarmcc -c a.c`).
pub const IMPLICIT_COMPILER: &str = "cc";

/// How swarmcc was invoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `swarmcc gcc -c a.c` (argv[1] is the compiler, maybe a path).
    Explicit { compiler_argv: Vec<String> },
    /// `swarmcc -c a.c` / `swarmcc a.c`: compiler `cc` inserted.
    Implicit { compiler_argv: Vec<String> },
    /// Invoked through a link named gcc/cc/g++/clang…: argv[0]'s basename is the
    /// compiler. `path` is PATH with everything up to and including swarmcc's own
    /// directory removed; it is the original PATH unchanged when that directory could
    /// not be found, so `path != original` tells whether it was trimmed.
    Masquerade {
        compiler_argv: Vec<String>,
        path: OsString,
    },
    /// argv[1] is one of swarmcc's own options (`--help`, `--version`,
    /// `--show-hosts`, `-j`, or any `--option` that is not a compiler option), or there
    /// are no arguments at all (`args` is empty). The caller handles it.
    Own { args: Vec<String> },
}

impl Invocation {
    /// The compiler command line, or `None` for [`Invocation::Own`].
    pub fn compiler_argv(&self) -> Option<&[String]> {
        match self {
            Invocation::Explicit { compiler_argv }
            | Invocation::Implicit { compiler_argv }
            | Invocation::Masquerade { compiler_argv, .. } => Some(compiler_argv),
            Invocation::Own { .. } => None,
        }
    }
}

/// True when a program basename means "this is swarmcc itself" rather than a
/// masquerade link: it contains "swarmcc", or is exactly "distcc" (swarmcc installed
/// under distcc's name so existing `CC="distcc gcc"` setups keep working).
pub fn is_self_name(basename: &str) -> bool {
    basename.contains("swarmcc") || basename == "distcc"
}

/// swarmcc's own options (`client::cli`, where a test keeps this list complete) and
/// distcc's (`--scan-includes`, `--show-principal`). As distcc, `swarmcc ARG…` is a
/// command of swarmcc's only when ARG is exactly one of them (or `--NAME=VALUE` of one
/// of them): anything else starting with `-` is an implicit compile with `cc`, so a
/// compiler option swarmcc has never heard of is passed to the compiler, never taken
/// for a swarmcc mistake.
pub const OWN_OPTIONS: &[&str] = &[
    "--help",
    "-h",
    "--version",
    "-V",
    "--show-hosts",
    "-j",
    "--check-hosts",
    "--run",
    "--monitor",
    "--agent-serve",
    "--zeroconf-serve",
    "--install",
    "--uninstall",
    "--install-docs",
    "--install-shims",
    "--uninstall-shims",
    "--distcc-names",
    "--scan-includes",
    "--show-principal",
];

fn is_own_option(arg: &str) -> bool {
    let name = arg.split_once('=').map_or(arg, |(n, _)| n);
    OWN_OPTIONS.contains(&name) && (name.starts_with("--") || name == arg)
}

/// Extensions that make argv[1] an input rather than a compiler name (implicit mode).
/// distcc uses its source list plus `.o`; assembler and header inputs are added so
/// that `swarmcc x.S` or `swarmcc h.hpp` do not try to run a program called `x.S`.
const INPUT_EXTENSIONS: &[&str] = &[
    "c", "cc", "cpp", "cxx", "cp", "c++", "C", "i", "ii", "m", "mm", "mi", "mii", "M", "s", "S",
    "sx", "h", "hh", "hpp", "hxx", "H", "o",
];

fn looks_like_input(arg: &str) -> bool {
    Path::new(arg)
        .extension()
        .and_then(OsStr::to_str)
        .is_some_and(|ext| INPUT_EXTENSIONS.contains(&ext))
}

fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// Decides how swarmcc was invoked (see [`Invocation`]).
///
/// Touches the filesystem in masquerade mode only: it reads the current directory and
/// swarmcc's own executable, and probes PATH entries, to trim PATH. Use
/// [`classify_invocation_with`] to supply those yourself.
pub fn classify_invocation(argv: &[String], path_env: &OsStr) -> Invocation {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let self_exe = std::env::current_exe().ok();
    let probe = |candidate: &Path| probe_executable(candidate, self_exe.as_deref());
    classify_invocation_with(argv, path_env, &probe, &cwd)
}

/// What a PATH candidate (`<entry>/<name>`) is, for masquerade decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Not there, or not an executable file.
    Missing,
    /// An executable that is not swarmcc: a compiler (or another wrapper).
    Compiler,
    /// swarmcc itself (see [`is_swarmcc`]).
    Swarmcc,
}

/// Probes one candidate file. `self_exe` is swarmcc's own executable; without it (no
/// /proc), a file is taken to be us when it resolves to a name containing "swarmcc"
/// or "distcc". Touches the filesystem.
pub fn probe_executable(candidate: &Path, self_exe: Option<&Path>) -> Probe {
    if !is_executable_file(candidate) {
        return Probe::Missing;
    }
    let us = match self_exe {
        Some(me) => is_swarmcc(candidate, me),
        None => links_to_wrapper(candidate),
    };
    if us {
        Probe::Swarmcc
    } else {
        Probe::Compiler
    }
}

/// [`classify_invocation`] with its filesystem checks injected: `probe` says what
/// `<dir>/<name>` is, and `cwd` resolves relative PATH entries and argv[0].
///
/// The masquerade PATH is found in up to three steps:
/// 1. [`trim_masquerade_path`] on argv[0], as distcc does;
/// 2. if argv[0] has a directory that no PATH entry spells (it went through a
///    symlinked directory, say), trimming through the first entry whose `<name>` is
///    swarmcc; narrowed to swarmcc, this bare-name rule cannot cut at the real
///    compiler's directory;
/// 3. if the trimmed PATH has no real `<name>` left but the original does (swarmcc's
///    directory came *after* the compiler's, e.g. `CC=/opt/shims/gcc` with
///    `PATH=/usr/bin:/opt/shims`), the original PATH: distcc fails such a build, while
///    [`find_real_compiler`] skips swarmcc on any PATH;
/// 4. finally, any entry still ahead of the first real `<name>` whose `<name>` is
///    swarmcc is removed (a second shim directory, or ours under a spelling that step
///    1 could not match). This matters beyond our own search: gcc, run as plain
///    `gcc`, finds its installation by looking itself up on PATH, and if it meets our
///    shim first it looks for `cc1` next to swarmcc and fails.
///
/// Dropping the entries before our directory (step 1) is kept on purpose: with ccache
/// ahead of us (`/usr/lib/ccache:/opt/shims:/usr/bin`) keeping them would send the
/// compile back into ccache, and from there into us again.
pub fn classify_invocation_with(
    argv: &[String],
    path_env: &OsStr,
    probe: &dyn Fn(&Path) -> Probe,
    cwd: &Path,
) -> Invocation {
    let Some(argv0) = argv.first() else {
        return Invocation::Own { args: Vec::new() };
    };
    let name = basename(argv0);
    if is_self_name(name) {
        let rest = &argv[1..];
        let Some(first) = rest.first() else {
            return Invocation::Own { args: Vec::new() };
        };
        if is_own_option(first) {
            return Invocation::Own {
                args: rest.to_vec(),
            };
        }
        if first.starts_with('-') || looks_like_input(first) {
            let mut compiler_argv = Vec::with_capacity(rest.len() + 1);
            compiler_argv.push(IMPLICIT_COMPILER.to_string());
            compiler_argv.extend_from_slice(rest);
            return Invocation::Implicit { compiler_argv };
        }
        return Invocation::Explicit {
            compiler_argv: rest.to_vec(),
        };
    }

    let is_self = |p: &Path| probe(p) == Probe::Swarmcc;
    let has_compiler = |path: &OsStr| {
        path_entries(path)
            .into_iter()
            .any(|e| probe(&normalize(entry_dir(e), cwd).join(name)) == Probe::Compiler)
    };
    let trimmed = trim_masquerade_path(argv0, path_env, &is_self, cwd)
        .or_else(|| {
            if argv0.contains('/') {
                trim_masquerade_path(name, path_env, &is_self, cwd)
            } else {
                None
            }
        })
        .filter(|t| has_compiler(t) || !has_compiler(path_env));
    let path = drop_shims_before_compiler(trimmed.as_deref().unwrap_or(path_env), name, probe, cwd);
    let mut compiler_argv = Vec::with_capacity(argv.len());
    // The basename goes onwards: the server and the PATH search want `gcc`, not the
    // shim's path.
    compiler_argv.push(name.to_string());
    compiler_argv.extend_from_slice(&argv[1..]);
    Invocation::Masquerade {
        compiler_argv,
        path,
    }
}

/// PATH without the entries, before the first one holding a real `name`, whose `name`
/// is swarmcc (step 4 of [`classify_invocation_with`]). Entries after the compiler's
/// are kept: they cannot shadow it, and may hold other tools the build needs.
fn drop_shims_before_compiler(
    path_env: &OsStr,
    name: &str,
    probe: &dyn Fn(&Path) -> Probe,
    cwd: &Path,
) -> OsString {
    let mut seen_compiler = false;
    let kept: Vec<&[u8]> = path_entries(path_env)
        .into_iter()
        .filter(|e| {
            if seen_compiler {
                return true;
            }
            match probe(&normalize(entry_dir(e), cwd).join(name)) {
                Probe::Swarmcc => false,
                Probe::Compiler => {
                    seen_compiler = true;
                    true
                }
                Probe::Missing => true,
            }
        })
        .map(OsStr::as_bytes)
        .collect();
    if kept.len() == path_entries(path_env).len() {
        // Unchanged: hand back the value exactly as given.
        return path_env.to_os_string();
    }
    OsString::from_vec(kept.join(&b':'))
}

/// Splits a PATH value into entries. An empty entry means the current directory, as
/// for `execvp`; a wholly empty PATH has no entries.
fn path_entries(path_env: &OsStr) -> Vec<&OsStr> {
    if path_env.is_empty() {
        return Vec::new();
    }
    path_env
        .as_bytes()
        .split(|&b| b == b':')
        .map(OsStr::from_bytes)
        .collect()
}

/// A PATH entry as a directory (empty means `.`).
fn entry_dir(entry: &OsStr) -> &Path {
    if entry.is_empty() {
        Path::new(".")
    } else {
        Path::new(entry)
    }
}

/// `p` made absolute against `cwd` and normalised lexically: `//`, trailing `/` and
/// `.` vanish and `..` removes the previous component. Purely textual, so that
/// `/tmp/shims/`, `/tmp//shims` and `/tmp/x/../shims` compare equal to `/tmp/shims`.
fn normalize(p: &Path, cwd: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Masquerade PATH trimming (what distcc's `dcc_support_masquerade` does).
///
/// * `argv0` with a directory (`/usr/lib/swarmcc/gcc`, `./gcc`): drop PATH entries up
///   to and including the first one naming that directory;
/// * a bare name (`gcc`): drop entries up to and including the first one where
///   `is_executable(entry/name)` holds.
///
/// Fixes over distcc: entries are compared after lexical normalisation against `cwd`
/// (distcc compares strings, so `/tmp/shims/` did not match `/tmp/shims`), and later
/// entries spelling the same directory are dropped too (distcc left the second copy of
/// a doubled entry, and so ran itself again). Returns `None`, leaving PATH as it is,
/// when no entry matches. Callers may pass an `is_executable` that only accepts
/// swarmcc itself; that makes the bare-name rule safe even when the PATH we got is not
/// the one that found us.
pub fn trim_masquerade_path(
    argv0: &str,
    path_env: &OsStr,
    is_executable: &dyn Fn(&Path) -> bool,
    cwd: &Path,
) -> Option<OsString> {
    let entries = path_entries(path_env);
    let norm = |e: &OsStr| normalize(entry_dir(e), cwd);
    let cut = if argv0.contains('/') {
        let dir = Path::new(argv0).parent().unwrap_or(Path::new("/"));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let want = normalize(dir, cwd);
        entries.iter().position(|e| norm(e) == want)?
    } else {
        entries
            .iter()
            .position(|e| is_executable(&normalize(entry_dir(e), cwd).join(argv0)))?
    };
    let ours = norm(entries[cut]);
    let kept: Vec<&[u8]> = entries[cut + 1..]
        .iter()
        .filter(|e| norm(e) != ours)
        .map(|e| e.as_bytes())
        .collect();
    Some(OsString::from_vec(kept.join(&b':')))
}

/// True for an existing regular file (after following links) with an execute bit.
/// Touches the filesystem.
pub fn is_executable_file(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `candidate` is swarmcc: the same file as `self_exe` (a symlink, a hard link,
/// or a symlinked directory leading to it), a link into another swarmcc install (its
/// resolved name contains "swarmcc"), or a byte-for-byte copy of `self_exe`.
/// Touches the filesystem.
pub fn is_swarmcc(candidate: &Path, self_exe: &Path) -> bool {
    let Ok(cand) = fs::metadata(candidate) else {
        return false;
    };
    if let Ok(me) = fs::metadata(self_exe) {
        if cand.dev() == me.dev() && cand.ino() == me.ino() {
            return true;
        }
        // Only a file of exactly our size can be a copy of us; real compilers almost
        // never are, so the byte comparison is rare.
        if cand.len() == me.len() && same_contents(candidate, self_exe).unwrap_or(false) {
            return true;
        }
    }
    fs::canonicalize(candidate).is_ok_and(|real| {
        real.file_name()
            .is_some_and(|n| n.to_string_lossy().contains("swarmcc"))
    })
}

fn same_contents(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Finds the real compiler `name` on `path_env`, never returning swarmcc itself (see
/// [`is_swarmcc`]): the recursion guard that keeps masquerade safe even when PATH
/// trimming missed (shim directory listed twice, under another spelling, or through a
/// symlinked directory). A `name` containing `/` is checked as given.
///
/// Returns the path as found on PATH (links not resolved, so a compiler that looks at
/// its own path still sees it), or an error naming the compiler and the PATH searched.
/// Touches the filesystem.
pub fn find_real_compiler(
    name: &str,
    path_env: &OsStr,
    self_exe: &Path,
) -> Result<PathBuf, String> {
    if name.is_empty() {
        return Err("empty compiler name".into());
    }
    if name.contains('/') {
        let p = PathBuf::from(name);
        if !is_executable_file(&p) {
            return Err(format!(
                "compiler \"{name}\" does not exist or is not executable"
            ));
        }
        if is_swarmcc(&p, self_exe) {
            return Err(format!(
                "compiler \"{name}\" is swarmcc itself; name the real compiler"
            ));
        }
        return Ok(p);
    }
    let mut skipped: Vec<PathBuf> = Vec::new();
    for entry in path_entries(path_env) {
        let candidate = entry_dir(entry).join(name);
        if !is_executable_file(&candidate) {
            continue;
        }
        if is_swarmcc(&candidate, self_exe) {
            skipped.push(candidate);
            continue;
        }
        return Ok(candidate);
    }
    let mut msg = format!(
        "cannot find the real compiler \"{name}\" on PATH \"{}\"",
        path_env.to_string_lossy()
    );
    if !skipped.is_empty() {
        let list: Vec<String> = skipped.iter().map(|p| p.display().to_string()).collect();
        msg.push_str(&format!(
            " (skipped {}, which {} swarmcc itself)",
            list.join(", "),
            if list.len() == 1 { "is" } else { "are" }
        ));
    }
    Err(msg)
}

/// The first executable `name` on `path_env` that is not swarmcc (by name: see
/// [`find_real_compiler`], which also checks file identity). Suitable as the
/// `exists_on_path` check of [`rewrite_for_remote`]. Touches the filesystem.
pub fn exists_on_path(name: &str, path_env: &OsStr) -> bool {
    path_entries(path_env).into_iter().any(|e| {
        let c = entry_dir(e).join(name);
        is_executable_file(&c) && !links_to_wrapper(&c)
    })
}

/// Whether `p` resolves to a file named like swarmcc or distcc (a masquerade link).
fn links_to_wrapper(p: &Path) -> bool {
    fs::canonicalize(p).is_ok_and(|real| {
        real.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            n.contains("swarmcc") || n.contains("distcc")
        })
    })
}

/// What the generic name `cc` or `c++` really is: finds it on `path_env` (skipping
/// masquerade directories and links to swarmcc/distcc), reads the link, following one
/// more link when it points into an `alternatives` directory (`/usr/bin/cc` →
/// `/etc/alternatives/cc` → `/usr/bin/gcc`), and returns the final basename (`gcc`).
/// `None` when it is not a link or cannot be found. Touches the filesystem.
pub fn resolve_generic(name: &str, path_env: &OsStr) -> Option<String> {
    let found = path_entries(path_env).into_iter().find_map(|e| {
        let dir = entry_dir(e);
        let d = dir.to_string_lossy();
        if d.contains("distcc") || d.contains("swarmcc") {
            return None;
        }
        let c = dir.join(name);
        (is_executable_file(&c) && !links_to_wrapper(&c)).then_some(c)
    })?;
    let mut target = read_link_abs(&found)?;
    let in_alternatives = target
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "alternatives");
    if in_alternatives {
        target = read_link_abs(&target)?;
    }
    target.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// `readlink`, with a relative target resolved against the link's directory.
fn read_link_abs(link: &Path) -> Option<PathBuf> {
    let t = fs::read_link(link).ok()?;
    Some(if t.is_absolute() {
        t
    } else {
        link.parent().unwrap_or(Path::new("/")).join(t)
    })
}

/// What to do given the inherited `_DISTCC_SAFEGUARD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safeguard {
    /// Not nested: distribute as usual.
    Normal,
    /// Started by a swarmcc/distcc (e.g. a local cpp run passing back through a
    /// masquerade link): run the real compiler at once, no locks, no distribution.
    RunLocally,
    /// We are running ourselves in a loop: exit 111, "swarmcc seems to have invoked
    /// itself recursively".
    Recursive,
}

/// The level in a `_DISTCC_SAFEGUARD` value. Unset, empty, negative or non-numeric
/// count as 0, as distcc's `atoi` does: only distcc and swarmcc set it, always to a
/// number, so anything else was not set by a parent wrapper.
pub fn safeguard_level(level: Option<&str>) -> u32 {
    level
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map_or(0, |n| n.clamp(0, i64::from(u32::MAX)) as u32)
}

/// The value to give `_DISTCC_SAFEGUARD` in every child we start: one more than ours.
pub fn child_safeguard_level(level: Option<&str>) -> String {
    safeguard_level(level).saturating_add(1).to_string()
}

/// The recursion rule, as distcc's: any level above 0 means run locally; a level that
/// is still above 0 after discounting one for a trimmed masquerade PATH means we are
/// looping. (A masquerade call at level 1 is the normal local-cpp round trip; an
/// explicit `swarmcc gcc` at level 1 means the compiler found was swarmcc again.)
pub fn check_safeguard(level: Option<&str>, path_trimmed: bool) -> Safeguard {
    let level = i64::from(safeguard_level(level));
    if level - i64::from(path_trimmed) > 0 {
        Safeguard::Recursive
    } else if level > 0 {
        Safeguard::RunLocally
    } else {
        Safeguard::Normal
    }
}

/// `gcc`, `g++`, or either with a version suffix (`gcc-12`, `g++-13.2`).
fn is_gcc_name(n: &str) -> bool {
    ["gcc", "g++"].iter().any(|base| is_versioned(n, base))
}

/// `clang`, `clang++`, or either with a version suffix (`clang-17`).
fn is_clang_name(n: &str) -> bool {
    ["clang", "clang++"]
        .iter()
        .any(|base| is_versioned(n, base))
}

/// `n` is `base` or `base-<version>`, where a version is digits and dots. distcc
/// accepted any `gcc-*`, which also caught tools like `gcc-ar`.
fn is_versioned(n: &str, base: &str) -> bool {
    match n.strip_prefix(base) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('-').is_some_and(|v| {
            v.starts_with(|c: char| c.is_ascii_digit())
                && v.chars().all(|c| c.is_ascii_digit() || c == '.')
        }),
        None => false,
    }
}

/// The triple gcc cross-compiler names use: vendor `pc` and `unknown` dropped
/// (`x86_64-pc-linux-gnu` → `x86_64-linux-gnu`).
fn gcc_prefix_triple(triple: &str) -> String {
    let mut parts: Vec<&str> = triple.split('-').collect();
    if parts.len() > 2 && matches!(parts[1], "pc" | "unknown") {
        parts.remove(1);
    }
    parts.join("-")
}

fn has_target_option(args: &[String]) -> bool {
    args.iter().any(|a| {
        a == "-target" || a == "--target" || a.starts_with("--target=") || a.starts_with("-target=")
    })
}

/// Cross-compile rewriting of argv[0] for the *remote* command, so that a server of
/// another architecture produces code for ours:
/// * `cc`/`c++` → what `resolve_generic` says they are, when that is gcc, g++, clang or
///   clang++ (optionally versioned); then the rules below apply to the new name;
/// * `gcc`, `gcc-12`, `g++`, `g++-12` → `<triple>-gcc…` (vendor `pc`/`unknown`
///   dropped) when `exists_on_path` finds that name, else unchanged;
/// * `clang`, `clang-17`, `clang++`… → `-target <triple>` inserted after argv[0]
///   unless `-target`, `--target` or `--target=…` is already there (distcc missed
///   `--target=`, and overrode cross builds: issues #416, #483);
/// * a compiler given as a path: a clang gets `-target` like a bare name (it is the
///   same binary on the server either way); `/usr/bin/gcc` and `/usr/bin/cc` are left
///   alone, because the user picked that exact file and a different name might not
///   exist or be allowed on the server;
/// * `enabled` false (`DISTCC_NO_REWRITE_CROSS` set) or an empty `triple`: unchanged.
pub fn rewrite_for_remote(
    argv: &[String],
    triple: &str,
    enabled: bool,
    exists_on_path: &dyn Fn(&str) -> bool,
    resolve_generic: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut out = argv.to_vec();
    if !enabled || triple.is_empty() || out.is_empty() {
        return out;
    }
    let add_target = |out: &mut Vec<String>| {
        if !has_target_option(&out[1..]) {
            out.splice(1..1, ["-target".to_string(), triple.to_string()]);
        }
    };
    if out[0].contains('/') {
        if is_clang_name(basename(&out[0])) {
            add_target(&mut out);
        }
        return out;
    }
    if out[0] == "cc" || out[0] == "c++" {
        if let Some(real) = resolve_generic(&out[0]) {
            let real = basename(&real).to_string();
            if is_gcc_name(&real) || is_clang_name(&real) {
                out[0] = real;
            }
        }
    }
    if is_gcc_name(&out[0]) {
        let full = format!("{}-{}", gcc_prefix_triple(triple), out[0]);
        if exists_on_path(&full) {
            out[0] = full;
        }
    } else if is_clang_name(&out[0]) {
        add_target(&mut out);
    }
    out
}

/// The native GNU triple without vendor (`x86_64-linux-gnu`), from the target swarmcc
/// was built for. Limitation: it knows the Debian-style names only (`<arch>-linux-gnu`,
/// `arm-linux-gnueabihf`, `<arch>-linux-musl`); distributions with a vendor in their
/// compiler names (`x86_64-redhat-linux-gcc`) simply get no gcc rewrite, because that
/// name is then not on PATH. [`native_triple_from_compiler`] asks the compiler instead.
pub fn native_triple() -> String {
    let arch = match std::env::consts::ARCH {
        "x86" => "i686",
        "powerpc64" if cfg!(target_endian = "little") => "powerpc64le",
        "mips64" if cfg!(target_endian = "little") => "mips64el",
        "mips" if cfg!(target_endian = "little") => "mipsel",
        other => other,
    };
    let os = std::env::consts::OS;
    if os != "linux" {
        return format!("{arch}-{os}");
    }
    let env = if cfg!(target_env = "musl") {
        "musl"
    } else {
        "gnu"
    };
    if arch == "arm" {
        let abi = if cfg!(target_abi = "eabihf") {
            "eabihf"
        } else {
            "eabi"
        };
        return format!("arm-linux-{env}{abi}");
    }
    if arch == "mips64" || arch == "mips64el" {
        return format!("{arch}-linux-{env}abi64");
    }
    format!("{arch}-linux-{env}")
}

/// The triple a compiler reports with `-dumpmachine`, vendor `pc`/`unknown` dropped;
/// `None` if it cannot be run or says nothing. Runs the compiler (a few milliseconds),
/// so callers should do it at most once per process.
pub fn native_triple_from_compiler(compiler: &Path) -> Option<String> {
    let out = std::process::Command::new(compiler)
        .arg("-dumpmachine")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let t = String::from_utf8(out.stdout).ok()?;
    let t = t.trim();
    (!t.is_empty()).then(|| gcc_prefix_triple(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    fn classify(args: &[&str]) -> Invocation {
        classify_invocation_with(
            &v(args),
            OsStr::new("/a:/b"),
            &|_| Probe::Missing,
            Path::new("/"),
        )
    }

    // --- classify_invocation ------------------------------------------------------------------

    #[test]
    fn no_arguments_is_own() {
        assert_eq!(classify(&["swarmcc"]), Invocation::Own { args: vec![] });
        assert_eq!(classify(&[]), Invocation::Own { args: vec![] });
    }

    #[test]
    fn own_options() {
        for opt in [
            "--help",
            "--version",
            "--show-hosts",
            "-j",
            "--scan-includes",
            "--check-hosts=gcc",
            "--monitor",
        ] {
            assert_eq!(
                classify(&["/usr/bin/swarmcc", opt, "x"]),
                Invocation::Own {
                    args: v(&[opt, "x"])
                },
                "{opt}"
            );
        }
        // As distcc: anything else is an implicit compile, passed to `cc` (which may
        // well reject it) — a compiler's own options among them.
        for opt in ["--frob", "--sysroot=/x", "--param", "-jx", "--help-me"] {
            assert!(
                matches!(
                    classify(&["swarmcc", opt, "-c", "a.c"]),
                    Invocation::Implicit { .. }
                ),
                "{opt}"
            );
        }
    }

    #[test]
    fn own_options_are_exactly_the_clis() {
        use clap::CommandFactory;
        let cmd = crate::client::cli::Cli::command();
        let mut from_cli: Vec<String> = cmd
            .get_arguments()
            .flat_map(|a| {
                let long = a.get_long().map(|l| format!("--{l}"));
                let short = a.get_short().map(|c| format!("-{c}"));
                long.into_iter().chain(short)
            })
            .chain(["--help".to_string(), "-h".to_string()])
            .chain([
                "--scan-includes".to_string(),
                "--show-principal".to_string(),
            ])
            .collect();
        from_cli.sort();
        from_cli.dedup();
        let mut ours: Vec<String> = OWN_OPTIONS.iter().map(|s| s.to_string()).collect();
        ours.sort();
        assert_eq!(ours, from_cli);
    }

    #[test]
    fn explicit_compiler() {
        assert_eq!(
            classify(&["swarmcc", "gcc", "-c", "a.c"]),
            Invocation::Explicit {
                compiler_argv: v(&["gcc", "-c", "a.c"])
            }
        );
        assert_eq!(
            classify(&["distcc", "/usr/bin/g++-12", "-c", "a.cc"]),
            Invocation::Explicit {
                compiler_argv: v(&["/usr/bin/g++-12", "-c", "a.cc"])
            }
        );
    }

    #[test]
    fn implicit_compiler() {
        for first in [
            "-c",
            "a.c",
            "x.o",
            "dir/b.cpp",
            "k.S",
            "-j4",
            "--sysroot=/x",
            "--coverage",
        ] {
            assert_eq!(
                classify(&["swarmcc", first, "z"]),
                Invocation::Implicit {
                    compiler_argv: v(&["cc", first, "z"])
                },
                "{first}"
            );
        }
    }

    #[test]
    fn self_names() {
        assert!(is_self_name("swarmcc"));
        assert!(is_self_name("swarmcc-0.1"));
        assert!(is_self_name("distcc"));
        assert!(!is_self_name("distccd"));
        assert!(!is_self_name("gcc"));
    }

    #[test]
    fn masquerade_keeps_basename_and_path_when_not_trimmable() {
        assert_eq!(
            classify(&["/opt/shims/gcc", "-c", "a.c"]),
            Invocation::Masquerade {
                compiler_argv: v(&["gcc", "-c", "a.c"]),
                path: OsString::from("/a:/b"),
            }
        );
    }

    #[test]
    fn masquerade_trims_by_path() {
        let inv = classify_invocation_with(
            &v(&["/opt/shims/cc", "-c", "a.c"]),
            OsStr::new("/x:/opt/shims:/usr/bin"),
            &|_| Probe::Missing,
            Path::new("/"),
        );
        assert_eq!(
            inv,
            Invocation::Masquerade {
                compiler_argv: v(&["cc", "-c", "a.c"]),
                path: OsString::from("/usr/bin"),
            }
        );
        assert_eq!(inv.compiler_argv().unwrap()[0], "cc");
    }

    #[test]
    fn masquerade_falls_back_to_self_search_for_odd_spelling() {
        // argv[0] goes through a symlinked directory that PATH does not spell.
        let inv = classify_invocation_with(
            &v(&["/home/u/shimlink/gcc", "-c", "a.c"]),
            OsStr::new("/opt/shims:/usr/bin"),
            &fake_probe,
            Path::new("/"),
        );
        match inv {
            Invocation::Masquerade { path, .. } => assert_eq!(path, OsString::from("/usr/bin")),
            other => panic!("{other:?}"),
        }
    }

    /// Shims in /opt/shims, compilers in /usr/bin and (ccache) /usr/lib/ccache.
    fn fake_probe(p: &Path) -> Probe {
        match p.parent().and_then(Path::to_str) {
            Some("/opt/shims" | "/home/u/shimlink") => Probe::Swarmcc,
            Some("/usr/bin" | "/usr/lib/ccache") => Probe::Compiler,
            _ => Probe::Missing,
        }
    }

    fn masquerade_path(argv0: &str, path: &str) -> OsString {
        let argv = v(&[argv0, "-c", "a.c"]);
        match classify_invocation_with(&argv, OsStr::new(path), &fake_probe, Path::new("/w")) {
            Invocation::Masquerade { path, .. } => path,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn masquerade_shims_after_compiler_keeps_original_path() {
        // distcc would leave an empty PATH here and fail the build.
        let path = "/usr/bin:/opt/shims";
        assert_eq!(
            masquerade_path("/opt/shims/gcc", path),
            OsString::from(path)
        );
        assert_eq!(masquerade_path("gcc", path), OsString::from(path));
    }

    #[test]
    fn masquerade_behind_ccache_drops_ccache() {
        let path = "/usr/lib/ccache:/opt/shims:/usr/bin";
        assert_eq!(
            masquerade_path("/opt/shims/gcc", path),
            OsString::from("/usr/bin")
        );
        assert_eq!(masquerade_path("gcc", path), OsString::from("/usr/bin"));
    }

    #[test]
    fn masquerade_drops_other_shim_spellings_ahead_of_the_compiler() {
        assert_eq!(
            masquerade_path("gcc", "/opt/shims:/home/u/shimlink:/x:/usr/bin:/opt/shims"),
            // (the trailing /opt/shims is a duplicate of ours, so step 1 drops it)
            OsString::from("/x:/usr/bin")
        );
        assert_eq!(
            masquerade_path("gcc", "/opt/shims:/usr/bin:/home/u/shimlink"),
            OsString::from("/usr/bin:/home/u/shimlink")
        );
        assert_eq!(
            masquerade_path("/opt/shims/gcc", "/home/u/shimlink:/opt/shims:/usr/bin"),
            OsString::from("/usr/bin")
        );
        // Not trimmable by name, and no compiler at all: shims still go.
        assert_eq!(
            masquerade_path("/elsewhere/gcc", "/home/u/shimlink:/x"),
            OsString::from("/x")
        );
    }

    #[test]
    fn masquerade_without_any_compiler_still_trims() {
        assert_eq!(
            masquerade_path("/opt/shims/gcc", "/opt/shims:/x"),
            OsString::from("/x")
        );
    }

    // --- trim_masquerade_path ----------------------------------------------------------------

    fn trim(argv0: &str, path: &str, exes: &[&str], cwd: &str) -> Option<String> {
        let is_exe = |p: &Path| exes.iter().any(|e| Path::new(e) == p);
        trim_masquerade_path(argv0, OsStr::new(path), &is_exe, Path::new(cwd))
            .map(|s| s.into_string().unwrap())
    }

    #[test]
    fn trim_by_dir() {
        assert_eq!(
            trim(
                "/usr/lib/distcc/gcc",
                "/a:/usr/lib/distcc:/usr/bin",
                &[],
                "/"
            )
            .as_deref(),
            Some("/usr/bin")
        );
    }

    #[test]
    fn trim_by_dir_other_spellings() {
        for entry in [
            "/tmp/shims/",
            "/tmp//shims",
            "/tmp/./shims",
            "/tmp/x/../shims",
        ] {
            let path = format!("{entry}:/usr/bin");
            assert_eq!(
                trim("/tmp/shims/gcc", &path, &[], "/").as_deref(),
                Some("/usr/bin"),
                "{entry}"
            );
        }
    }

    #[test]
    fn trim_relative_argv0_and_entries() {
        assert_eq!(
            trim("./gcc", "/a:.:/usr/bin", &[], "/tmp/shims").as_deref(),
            Some("/usr/bin")
        );
        assert_eq!(
            trim("shims/gcc", "/a:shims:/usr/bin", &[], "/tmp").as_deref(),
            Some("/usr/bin")
        );
        assert_eq!(
            trim("../shims/gcc", "/tmp/shims:/usr/bin", &[], "/tmp/work").as_deref(),
            Some("/usr/bin")
        );
    }

    #[test]
    fn trim_drops_duplicates_of_our_dir() {
        assert_eq!(
            trim("/s/gcc", "/s:/usr/bin:/s/:/bin", &[], "/").as_deref(),
            Some("/usr/bin:/bin")
        );
    }

    #[test]
    fn trim_by_bare_name() {
        assert_eq!(
            trim("gcc", "/x:/s:/usr/bin", &["/s/gcc", "/usr/bin/gcc"], "/").as_deref(),
            Some("/usr/bin")
        );
    }

    #[test]
    fn trim_bare_name_empty_entry_is_cwd() {
        assert_eq!(
            trim("gcc", "/x::/usr/bin", &["/w/gcc"], "/w").as_deref(),
            Some("/usr/bin")
        );
    }

    #[test]
    fn trim_no_match_is_none() {
        assert_eq!(trim("/s/gcc", "/a:/b", &[], "/"), None);
        assert_eq!(trim("gcc", "/a:/b", &[], "/"), None);
        assert_eq!(trim("gcc", "", &["/gcc"], "/"), None);
    }

    #[test]
    fn trim_last_entry_leaves_empty_path() {
        assert_eq!(trim("/s/gcc", "/a:/s", &[], "/").as_deref(), Some(""));
    }

    // --- safeguard --------------------------------------------------------------------------------

    #[test]
    fn safeguard_rules() {
        assert_eq!(check_safeguard(None, false), Safeguard::Normal);
        assert_eq!(check_safeguard(None, true), Safeguard::Normal);
        assert_eq!(check_safeguard(Some("0"), false), Safeguard::Normal);
        assert_eq!(check_safeguard(Some(""), false), Safeguard::Normal);
        assert_eq!(check_safeguard(Some("1"), true), Safeguard::RunLocally);
        assert_eq!(check_safeguard(Some("1"), false), Safeguard::Recursive);
        assert_eq!(check_safeguard(Some("2"), true), Safeguard::Recursive);
        assert_eq!(check_safeguard(Some("2"), false), Safeguard::Recursive);
        assert_eq!(check_safeguard(Some(" 1 "), true), Safeguard::RunLocally);
        assert_eq!(check_safeguard(Some("junk"), false), Safeguard::Normal);
        assert_eq!(check_safeguard(Some("-3"), false), Safeguard::Normal);
    }

    #[test]
    fn safeguard_levels() {
        assert_eq!(safeguard_level(None), 0);
        assert_eq!(safeguard_level(Some("7")), 7);
        assert_eq!(child_safeguard_level(None), "1");
        assert_eq!(child_safeguard_level(Some("1")), "2");
        assert_eq!(
            child_safeguard_level(Some("99999999999")),
            u32::MAX.to_string()
        );
        assert_eq!(SAFEGUARD_VAR, "_DISTCC_SAFEGUARD");
    }

    // --- rewrite_for_remote -----------------------------------------------------------------------

    const T: &str = "x86_64-linux-gnu";

    fn rw(args: &[&str], on_path: &[&str], generic: Option<&str>) -> Vec<String> {
        let exists = |n: &str| on_path.contains(&n);
        let resolve = |_: &str| generic.map(str::to_string);
        rewrite_for_remote(&v(args), T, true, &exists, &resolve)
    }

    #[test]
    fn gcc_gets_triple_prefix_when_present() {
        let on = ["x86_64-linux-gnu-gcc", "x86_64-linux-gnu-g++-12"];
        assert_eq!(
            rw(&["gcc", "-c", "a.c"], &on, None),
            v(&["x86_64-linux-gnu-gcc", "-c", "a.c"])
        );
        assert_eq!(
            rw(&["g++-12", "-c", "a.cc"], &on, None)[0],
            "x86_64-linux-gnu-g++-12"
        );
    }

    #[test]
    fn gcc_unchanged_when_prefixed_name_missing() {
        assert_eq!(
            rw(&["gcc", "-c", "a.c"], &[], None),
            v(&["gcc", "-c", "a.c"])
        );
        assert_eq!(rw(&["g++-13", "-c"], &[], None)[0], "g++-13");
    }

    #[test]
    fn gcc_like_tools_are_not_compilers() {
        let on = ["x86_64-linux-gnu-gcc-ar"];
        assert_eq!(rw(&["gcc-ar", "x"], &on, None)[0], "gcc-ar");
        assert_eq!(
            rw(&["gccx", "x"], &["x86_64-linux-gnu-gccx"], None)[0],
            "gccx"
        );
    }

    #[test]
    fn cc_resolves_to_gcc_then_prefixed() {
        let on = ["x86_64-linux-gnu-gcc"];
        assert_eq!(
            rw(&["cc", "-c", "a.c"], &on, Some("gcc"))[0],
            "x86_64-linux-gnu-gcc"
        );
        assert_eq!(
            rw(&["cc", "-c", "a.c"], &[], Some("/usr/bin/gcc"))[0],
            "gcc"
        );
        assert_eq!(rw(&["c++", "-c", "a.cc"], &[], Some("g++-12"))[0], "g++-12");
    }

    #[test]
    fn cc_unknown_target_stays_cc() {
        assert_eq!(rw(&["cc", "-c", "a.c"], &[], Some("tcc"))[0], "cc");
        assert_eq!(rw(&["cc", "-c", "a.c"], &[], None)[0], "cc");
    }

    #[test]
    fn cc_resolving_to_clang_gets_target() {
        assert_eq!(
            rw(&["cc", "-c", "a.c"], &[], Some("clang")),
            v(&["clang", "-target", T, "-c", "a.c"])
        );
    }

    #[test]
    fn clang_gets_target() {
        assert_eq!(
            rw(&["clang", "-c", "a.c"], &[], None),
            v(&["clang", "-target", T, "-c", "a.c"])
        );
        assert_eq!(
            rw(&["clang++-17", "-c", "a.cc"], &[], None)[1..3],
            v(&["-target", T])
        );
    }

    #[test]
    fn clang_existing_target_is_respected() {
        for t in [
            &["-target", "aarch64-linux-gnu"][..],
            &["--target=aarch64-linux-gnu"],
            &["--target", "arm"],
        ] {
            let mut args = vec!["clang", "-c", "a.c"];
            args.extend_from_slice(t);
            assert_eq!(rw(&args, &[], None), v(&args), "{t:?}");
        }
    }

    #[test]
    fn clang_full_path_gets_target_gcc_full_path_alone() {
        assert_eq!(
            rw(&["/usr/bin/clang-16", "-c", "a.c"], &[], None),
            v(&["/usr/bin/clang-16", "-target", T, "-c", "a.c"])
        );
        let on = ["x86_64-linux-gnu-gcc", "/usr/bin/x86_64-linux-gnu-gcc"];
        assert_eq!(
            rw(&["/usr/bin/gcc", "-c", "a.c"], &on, None)[0],
            "/usr/bin/gcc"
        );
        assert_eq!(
            rw(&["/usr/bin/cc", "-c", "a.c"], &on, Some("gcc"))[0],
            "/usr/bin/cc"
        );
    }

    #[test]
    fn rewrite_disabled_or_no_triple() {
        let exists = |_: &str| true;
        let resolve = |_: &str| Some("gcc".to_string());
        let a = v(&["cc", "-c", "a.c"]);
        assert_eq!(rewrite_for_remote(&a, T, false, &exists, &resolve), a);
        assert_eq!(rewrite_for_remote(&a, "", true, &exists, &resolve), a);
        assert!(rewrite_for_remote(&[], T, true, &exists, &resolve).is_empty());
    }

    #[test]
    fn vendor_is_dropped_for_gcc_prefix() {
        let exists = |n: &str| n == "x86_64-linux-gnu-gcc";
        let resolve = |_: &str| None;
        let a = v(&["gcc", "-c", "a.c"]);
        assert_eq!(
            rewrite_for_remote(&a, "x86_64-pc-linux-gnu", true, &exists, &resolve)[0],
            "x86_64-linux-gnu-gcc"
        );
        assert_eq!(
            gcc_prefix_triple("x86_64-unknown-linux-gnu"),
            "x86_64-linux-gnu"
        );
        assert_eq!(
            gcc_prefix_triple("x86_64-redhat-linux"),
            "x86_64-redhat-linux"
        );
        assert_eq!(gcc_prefix_triple("aarch64-linux-gnu"), "aarch64-linux-gnu");
    }

    #[test]
    fn versioned_names() {
        assert!(is_gcc_name("gcc-12") && is_gcc_name("g++-4.9") && is_gcc_name("g++"));
        assert!(!is_gcc_name("gcc-") && !is_gcc_name("gcc-ranlib") && !is_gcc_name("xgcc"));
        assert!(
            is_clang_name("clang++-17") && !is_clang_name("clang-cl") && !is_clang_name("clangd")
        );
    }

    #[test]
    fn own_option_values() {
        assert!(is_own_option("--check-hosts=gcc,clang"));
        assert!(is_own_option("-j"));
        assert!(!is_own_option("-j=4") && !is_own_option("--show-hostsx"));
    }

    // --- native triple ------------------------------------------------------------------------------

    #[test]
    fn native_triple_shape() {
        let t = native_triple();
        assert!(
            t.starts_with(std::env::consts::ARCH)
                || t.starts_with("i686")
                || t.starts_with("powerpc64le"),
            "{t}"
        );
        assert!(!t.contains("-pc-") && !t.contains("unknown"), "{t}");
        #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
        assert_eq!(t, "x86_64-linux-gnu");
    }

    #[test]
    fn native_triple_from_missing_compiler_is_none() {
        assert_eq!(
            native_triple_from_compiler(Path::new("/nonexistent/cc")),
            None
        );
    }
}
