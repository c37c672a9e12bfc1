//! Which rust toolchains a server can run, by identity: a rustc job is run only by a
//! toolchain whose `rustc -vV` (release, commit, host, LLVM) is the client's, found
//! among the configured programs and the rustup toolchains.
//!
//! rustup's `rustc` on `PATH` is a proxy that runs whichever toolchain is the default
//! at the time; the toolchains' own binaries are what is listed, so that the program
//! chosen for an identity stays that identity.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::args::rustc::identity_from_vv;

/// Runs `program -vV` and returns its identity (see [`identity_from_vv`]) with this
/// machine's C library.
pub fn identity(program: &Path) -> io::Result<String> {
    let out = Command::new(program)
        .arg("-vV")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running {} -vV: {e}", program.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    identity_from_vv(&text)
        .map(|id| id + &libc_suffix())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} -vV does not describe a rustc", program.display()),
            )
        })
}

/// `; glibc 2.36`: a proc-macro or a program linked on a server must load here, so the
/// C library is part of what must match (empty where it is not glibc).
fn libc_suffix() -> String {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: returns a pointer to a static NUL-terminated string.
        let v = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
        format!("; glibc {}", v.to_string_lossy())
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    String::new()
}

/// The toolchains found, each with its identity, in the order they were looked for.
#[derive(Debug, Clone, Default)]
pub struct Toolchains {
    found: Vec<(String, PathBuf)>,
    /// Configured programs that could not be used, and why, for the start-up log.
    pub problems: Vec<String>,
    /// Why rustup's toolchains could not be listed (a private home), if so.
    pub rustup_unreadable: Option<String>,
}

impl Toolchains {
    /// Looks at the `configured` programs first, then each `toolchains/*/bin/rustc`
    /// under `rustup_home`; the first program of an identity is the one used.
    pub fn discover(configured: &[PathBuf], rustup_home: Option<&Path>) -> Toolchains {
        let mut t = Toolchains::default();
        for program in configured {
            match identity(program) {
                Ok(id) => t.add(id, program.clone()),
                Err(e) => t.problems.push(e.to_string()),
            }
        }
        let dir = rustup_home.map(|home| home.join("toolchains"));
        let entries = match dir.as_deref().map(fs::read_dir) {
            Some(Ok(entries)) => Some(entries),
            Some(Err(e)) if e.kind() == io::ErrorKind::PermissionDenied => {
                let dir = dir.as_deref().unwrap_or(Path::new("")).display();
                t.rustup_unreadable = Some(format!(
                    "{dir}: {e} (rustup's toolchains there cannot be run)"
                ));
                None
            }
            _ => None,
        };
        let mut listed: Vec<PathBuf> = entries
            .into_iter()
            .flatten()
            .filter_map(|d| Some(d.ok()?.path().join("bin").join("rustc")))
            .filter(|p| p.is_file())
            .collect();
        listed.sort();
        for program in listed {
            // A broken rustup toolchain is not the configuration's fault: skipped.
            if let Ok(id) = identity(&program) {
                t.add(id, program);
            }
        }
        t
    }

    fn add(&mut self, id: String, program: PathBuf) {
        if !self.found.iter().any(|(known, _)| *known == id) {
            self.found.push((id, program));
        }
    }

    /// The program of the toolchain with this identity.
    pub fn find(&self, identity: &str) -> Option<&Path> {
        self.found
            .iter()
            .find(|(id, _)| id == identity)
            .map(|(_, p)| p.as_path())
    }

    /// Every identity found, for refusals ("no toolchain …; this server has …").
    pub fn identities(&self) -> Vec<&str> {
        self.found.iter().map(|(id, _)| id.as_str()).collect()
    }
}

/// Whether others may enter every directory from `/` down to `dir`: a toolchain there
/// can be run by another user (swarmccd's, once root is dropped).
pub fn reachable_by_others(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    dir.ancestors()
        .all(|d| fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// `from` recreated at `to` for another user to run: directories made (mode 0755),
/// files hard-linked (the same files, so the same `rustc -vV`), symbolic links copied
/// as links. Where a file cannot be linked (another file system) it is copied when
/// `copy_across`, else that is the error.
pub fn link_tree(from: &Path, to: &Path, copy_across: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(to)?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o755))?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            link_tree(&entry.path(), &dest, copy_across)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &dest)?;
        } else if let Err(e) = fs::hard_link(entry.path(), &dest) {
            if !copy_across {
                return Err(e);
            }
            fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// Where rustup keeps its toolchains: `RUSTUP_HOME`, else `~/.rustup`.
pub fn rustup_home() -> Option<PathBuf> {
    std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rustc that built these tests, as cargo names it.
    fn this_rustc() -> PathBuf {
        PathBuf::from(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
    }

    #[test]
    fn the_running_toolchain_is_found_by_its_identity() {
        let id = identity(&this_rustc()).expect("rustc -vV");
        assert!(id.starts_with("rustc 1."), "{id}");
        assert!(id.contains("; host "), "{id}");
        // Configured explicitly, it is found whatever rustup has.
        let t = Toolchains::discover(&[this_rustc()], None);
        assert_eq!(t.find(&id), Some(this_rustc().as_path()));
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        assert_eq!(t.find("rustc 0.0.0; commit 0; host none"), None);
    }

    #[test]
    fn rustup_toolchains_are_listed_by_their_own_binaries() {
        let Some(home) = rustup_home().filter(|h| h.join("toolchains").is_dir()) else {
            eprintln!("no rustup toolchains here: nothing to list");
            return;
        };
        let t = Toolchains::discover(&[], Some(&home));
        assert!(!t.identities().is_empty());
        for id in t.identities() {
            let program = t.find(id).unwrap();
            assert!(
                program.starts_with(home.join("toolchains")),
                "{}",
                program.display()
            );
            assert_eq!(identity(program).unwrap(), id);
        }
    }

    #[test]
    fn a_configured_program_that_is_not_rustc_is_reported() {
        let t = Toolchains::discover(
            &[PathBuf::from("/bin/true"), "/nonexistent/rustc".into()],
            None,
        );
        assert!(t.identities().is_empty());
        assert_eq!(t.problems.len(), 2, "{:?}", t.problems);
        assert!(
            t.problems[0].contains("/bin/true -vV does not describe a rustc"),
            "{:?}",
            t.problems
        );
        assert!(
            t.problems[1].contains("/nonexistent/rustc"),
            "{:?}",
            t.problems
        );
    }
}
