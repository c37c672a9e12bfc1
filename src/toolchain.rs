//! Which compiler a program really is: its version and target, as `<cc> -v` reports
//! them (gcc and clang both print a `… version …` line and a `Target:` line).
//!
//! distcc's worst pitfall is a server whose compiler differs from the client's: objects
//! come back built by another version, silently. swarmcc sends this identity with each
//! extension request and swarmccd refuses a job whose compiler is not the same.
//!
//! Finding it costs a process run, so the client keeps it in a small file per compiler
//! (keyed by path, size and modification time) and the server in memory.

pub mod rustc;

use std::collections::HashMap;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The identity in `<cc> -v` output: `"<version line>; target <triple>"`.
pub fn parse_identity(verbose: &str) -> Option<String> {
    let version = verbose
        .lines()
        .map(str::trim)
        .find(|l| l.contains(" version ") && !l.starts_with("Configured"))?;
    let target = verbose
        .lines()
        .find_map(|l| l.trim().strip_prefix("Target:"))?
        .trim();
    Some(format!("{version}; target {target}"))
}

/// Runs `program -v` and returns its identity.
pub fn identity(program: &Path) -> io::Result<String> {
    let out = Command::new(program)
        .arg("-v")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        .output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    parse_identity(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} -v printed no version and target lines",
                program.display()
            ),
        )
    })
}

/// What makes a cached identity stale: the program file changed.
fn stamp(program: &Path) -> io::Result<String> {
    let m = fs::metadata(program)?;
    Ok(format!("{} {} {}", m.len(), m.mtime(), m.mtime_nsec()))
}

/// [`identity`], remembered in `cache_dir` (one file per compiler path); empty for a
/// compiler that runs but names no version and target. Any cache trouble just means
/// asking the compiler again.
pub fn cached_identity(cache_dir: &Path, program: &Path) -> io::Result<String> {
    cached_identity_with(cache_dir, program, identity)
}

/// [`cached_identity`] for another way of asking a program who it is (rustc's `-vV`:
/// [`rustc::identity`]).
pub fn cached_identity_with(
    cache_dir: &Path,
    program: &Path,
    identity: impl Fn(&Path) -> io::Result<String>,
) -> io::Result<String> {
    let canonical = fs::canonicalize(program)?;
    let stamp = stamp(&canonical)?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    canonical.hash(&mut h);
    let file = cache_dir.join(format!("{:016x}", h.finish()));
    if let Ok(text) = fs::read_to_string(&file) {
        if let Some((first, id)) = text.split_once('\n') {
            if first == format!("{} {stamp}", canonical.display()) {
                return Ok(id.trim().to_owned());
            }
        }
    }
    let id = match identity(&canonical) {
        Ok(id) => id,
        // It ran but does not say who it is: remembered as unknown (empty) too, or
        // every job would ask again.
        Err(e) if e.kind() == io::ErrorKind::InvalidData => String::new(),
        Err(e) => return Err(e),
    };
    let _ = fs::create_dir_all(cache_dir);
    let tmp = cache_dir.join(format!(".{:016x}.{}", h.finish(), std::process::id()));
    let body = format!("{} {stamp}\n{id}\n", canonical.display());
    if fs::write(&tmp, body).is_ok() {
        let _ = fs::rename(&tmp, &file);
    }
    Ok(id)
}

/// A compiler's identity, found on first use: a job asks for it only once a host
/// that speaks the extension has answered the connection.
#[derive(Debug)]
pub struct LazyIdentity<'a> {
    cache_dir: &'a Path,
    program: &'a Path,
    found: std::sync::OnceLock<String>,
}

impl<'a> LazyIdentity<'a> {
    pub fn new(cache_dir: &'a Path, program: &'a Path) -> Self {
        LazyIdentity {
            cache_dir,
            program,
            found: std::sync::OnceLock::new(),
        }
    }

    /// The identity, or an empty string if the compiler does not say (the server then
    /// cannot check it).
    pub fn get(&self) -> &str {
        self.found.get_or_init(|| {
            cached_identity(self.cache_dir, self.program).unwrap_or_else(|e| {
                log::debug!("cannot tell which compiler this is: {e}");
                String::new()
            })
        })
    }
}

/// The server's memory of its compilers' identities.
#[derive(Debug, Default)]
pub struct IdentityCache {
    known: Mutex<HashMap<PathBuf, (String, String)>>,
}

impl IdentityCache {
    /// The identity of `program`, asking it only when it is new or changed.
    pub fn get(&self, program: &Path) -> io::Result<String> {
        let stamp = stamp(program)?;
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, id)) = known.get(program) {
            if *s == stamp {
                return Ok(id.clone());
            }
        }
        let id = identity(program)?;
        known.insert(program.to_owned(), (stamp, id.clone()));
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gcc_and_clang() {
        let gcc = "Using built-in specs.\nCOLLECT_GCC=gcc\nTarget: x86_64-linux-gnu\n\
            Configured with: ../src/configure -v --with-pkgversion='Debian 12.2.0-14'\n\
            Thread model: posix\nSupported LTO compression algorithms: zlib zstd\n\
            gcc version 12.2.0 (Debian 12.2.0-14) \n";
        assert_eq!(
            parse_identity(gcc).unwrap(),
            "gcc version 12.2.0 (Debian 12.2.0-14); target x86_64-linux-gnu"
        );
        let clang = "Debian clang version 14.0.6\nTarget: x86_64-pc-linux-gnu\n\
            Thread model: posix\nInstalledDir: /usr/bin\n";
        assert_eq!(
            parse_identity(clang).unwrap(),
            "Debian clang version 14.0.6; target x86_64-pc-linux-gnu"
        );
        assert_eq!(parse_identity("no such thing"), None);
    }

    #[test]
    fn real_gcc_is_cached_and_refreshed() {
        let dir = tempfile::tempdir().unwrap();
        let gcc = which::which("gcc").unwrap();
        let id = cached_identity(dir.path(), &gcc).unwrap();
        assert!(id.contains(" version ") && id.contains("; target "), "{id}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // A corrupted cache is ignored and rewritten.
        let file = fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        fs::write(&file, "garbage").unwrap();
        assert_eq!(cached_identity(dir.path(), &gcc).unwrap(), id);
        assert!(fs::read_to_string(&file).unwrap().contains(&id));
        // A compiler that names no version is remembered as unknown: asked once.
        let fake = dir.path().join("fakecc");
        let count = dir.path().join("asked");
        fs::write(&fake, format!("#!/bin/sh\necho x >> {}\n", count.display())).unwrap();
        fs::set_permissions(
            &fake,
            <fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
        )
        .unwrap();
        assert_eq!(cached_identity(dir.path(), &fake).unwrap(), "");
        assert_eq!(cached_identity(dir.path(), &fake).unwrap(), "");
        assert_eq!(fs::read_to_string(&count).unwrap(), "x\n");
        let cache = IdentityCache::default();
        assert_eq!(cache.get(&fs::canonicalize(&gcc).unwrap()).unwrap(), id);
    }
}
