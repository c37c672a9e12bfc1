//! The masquerade PATH: which entries to drop so that the compiler run next is the
//! real one, not swarmcc again (what distcc's `dcc_support_masquerade` does, and more).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use super::identity::Probe;
use super::path_var::{entry_dir, normalize, path_entries};

/// The PATH a masquerade call (argv[0] named `gcc`, `cc`…) runs the compiler with:
/// steps 1 to 4 of [`classify_invocation_with`](super::classify_invocation_with).
pub(super) fn masquerade_path(
    argv0: &str,
    path_env: &OsStr,
    probe: &dyn Fn(&Path) -> Probe,
    cwd: &Path,
) -> OsString {
    let name = super::basename(argv0);
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
    drop_shims_before_compiler(trimmed.as_deref().unwrap_or(path_env), name, probe, cwd)
}

/// PATH without the entries, before the first one holding a real `name`, whose `name`
/// is swarmcc (step 4 of [`classify_invocation_with`](super::classify_invocation_with)). Entries after the compiler's
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compiler::{classify_invocation_with, Invocation};

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
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
}
