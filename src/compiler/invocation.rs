//! How swarmcc was invoked: explicit, implicit, masquerade or one of its own options.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use super::basename;
use super::identity::{probe_executable, Probe};
use super::masquerade::masquerade_path;
use super::own_options::{is_own_option, is_self_name};

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
        return self_named(&argv[1..]);
    }
    let path = masquerade_path(argv0, path_env, probe, cwd);
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

/// `swarmcc ARG…` (argv[0] is swarmcc itself): one of our own options, an implicit
/// compile with `cc`, or an explicit compiler, decided on the first argument alone.
fn self_named(rest: &[String]) -> Invocation {
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
    Invocation::Explicit {
        compiler_argv: rest.to_vec(),
    }
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
}
