//! Finding the real compiler on PATH, never swarmcc itself, and what the generic
//! `cc`/`c++` names really are.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use super::identity::{is_executable_file, is_swarmcc, links_to_wrapper};
use super::path_var::{entry_dir, path_entries};

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
