//! Masquerade against real directories: a shims directory whose `gcc`/`cc` are symlinks
//! to a stand-in "swarmcc" executable, a "real" compiler further along PATH, and the
//! awkward PATHs that defeat plain string trimming (the shims listed twice, with a
//! trailing slash, through `..`, through a symlinked directory, as hard links or
//! copies). `find_real_compiler` must always land on the real compiler, and the PATH
//! trimming must cut exactly our directory.
//!
//! The swarmcc binary itself is exercised elsewhere; here "self" is a small script, so
//! that file identity, link resolution and copy detection are tested on their own.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use swarmcc::compiler::{
    classify_invocation_with, exists_on_path, find_real_compiler, is_executable_file, is_swarmcc,
    probe_executable, resolve_generic, trim_masquerade_path, Invocation, Probe,
};
use tempfile::TempDir;

/// A temp tree:
/// ```text
/// bin/swarmcc            the stand-in for our own executable
/// shims/{gcc,cc}         symlinks to it (relative and absolute)
/// shimlink -> shims      a symlinked directory
/// real/gcc               the "real compiler", a script printing "real-gcc"
/// x/                     an empty directory, for `x/../shims` spellings
/// ```
struct World {
    _tmp: TempDir,
    root: PathBuf,
    self_exe: PathBuf,
    shims: PathBuf,
    real: PathBuf,
}

fn write_exe(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    // Canonical, so that expected paths compare equal even if TMPDIR is a symlink.
    let root = fs::canonicalize(tmp.path()).unwrap();
    for d in ["bin", "shims", "real", "x"] {
        fs::create_dir(root.join(d)).unwrap();
    }
    let self_exe = root.join("bin/swarmcc");
    write_exe(&self_exe, "#!/bin/sh\necho fake-swarmcc\nexit 99\n");
    let shims = root.join("shims");
    symlink("../bin/swarmcc", shims.join("gcc")).unwrap();
    symlink(&self_exe, shims.join("cc")).unwrap();
    symlink(&shims, root.join("shimlink")).unwrap();
    let real = root.join("real");
    write_exe(&real.join("gcc"), "#!/bin/sh\necho real-gcc\n");
    World {
        _tmp: tmp,
        root,
        self_exe,
        shims,
        real,
    }
}

fn path_of<P: AsRef<Path>>(entries: &[P]) -> OsString {
    let parts: Vec<String> = entries
        .iter()
        .map(|p| p.as_ref().to_str().unwrap().to_string())
        .collect();
    OsString::from(parts.join(":"))
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

impl World {
    fn find(&self, path: &OsString) -> Result<PathBuf, String> {
        find_real_compiler("gcc", path, &self.self_exe)
    }

    fn holds_self(&self) -> impl Fn(&Path) -> bool + '_ {
        move |p: &Path| is_executable_file(p) && is_swarmcc(p, &self.self_exe)
    }

    fn probe(&self) -> impl Fn(&Path) -> Probe + '_ {
        move |p: &Path| probe_executable(p, Some(&self.self_exe))
    }
}

// --- find_real_compiler ---------------------------------------------------------------------

#[test]
fn shim_first_on_path_finds_the_real_compiler() {
    let w = world();
    let found = w.find(&path_of(&[&w.shims, &w.real])).unwrap();
    assert_eq!(found, w.real.join("gcc"));
    // And what we found really is the compiler, not us.
    let out = Command::new(&found).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "real-gcc\n");
}

#[test]
fn shim_dir_listed_twice() {
    let w = world();
    let path = path_of(&[&w.shims, &w.shims, &w.real]);
    assert_eq!(w.find(&path).unwrap(), w.real.join("gcc"));
}

#[test]
fn shim_dir_under_other_spellings() {
    let w = world();
    let spellings = [
        format!("{}/", s(&w.shims)),
        format!("{}//", s(&w.shims)),
        format!("{}/./shims", s(&w.root)),
        format!("{}/x/../shims", s(&w.root)),
    ];
    let mut entries: Vec<String> = spellings.to_vec();
    entries.push(s(&w.real));
    assert_eq!(w.find(&path_of(&entries)).unwrap(), w.real.join("gcc"));
}

#[test]
fn shim_dir_through_a_symlinked_directory() {
    let w = world();
    let path = path_of(&[w.root.join("shimlink"), w.real.clone()]);
    assert_eq!(w.find(&path).unwrap(), w.real.join("gcc"));
}

#[test]
fn hard_link_and_copy_of_self_are_skipped() {
    let w = world();
    let hard = w.root.join("hard");
    let copy = w.root.join("copy");
    fs::create_dir(&hard).unwrap();
    fs::create_dir(&copy).unwrap();
    fs::hard_link(&w.self_exe, hard.join("gcc")).unwrap();
    fs::copy(&w.self_exe, copy.join("gcc")).unwrap();
    let path = path_of(&[&hard, &copy, &w.real]);
    assert_eq!(w.find(&path).unwrap(), w.real.join("gcc"));
}

#[test]
fn link_into_another_swarmcc_install_is_skipped() {
    // A different swarmcc build (not byte-identical to us) behind an older shim dir.
    let w = world();
    let other = w.root.join("opt");
    let other_shims = w.root.join("other-shims");
    fs::create_dir(&other).unwrap();
    fs::create_dir(&other_shims).unwrap();
    write_exe(&other.join("swarmcc-0.0.9"), "#!/bin/sh\nexit 98\n");
    symlink(other.join("swarmcc-0.0.9"), other_shims.join("gcc")).unwrap();
    let path = path_of(&[&other_shims, &w.real]);
    assert_eq!(w.find(&path).unwrap(), w.real.join("gcc"));
}

#[test]
fn only_shims_on_path_is_an_error_naming_compiler_and_path() {
    let w = world();
    let path = path_of(&[w.shims.clone(), w.root.join("shimlink")]);
    let err = w.find(&path).unwrap_err();
    assert!(err.contains("\"gcc\""), "{err}");
    assert!(err.contains(&s(&w.shims)), "{err}");
    assert!(err.contains("swarmcc itself"), "{err}");
}

#[test]
fn explicit_path_to_a_shim_is_refused() {
    let w = world();
    let shim = s(&w.shims.join("gcc"));
    let err = find_real_compiler(&shim, &path_of(&[&w.real]), &w.self_exe).unwrap_err();
    assert!(err.contains("swarmcc itself"), "{err}");
    let real = s(&w.real.join("gcc"));
    assert_eq!(
        find_real_compiler(&real, &OsString::new(), &w.self_exe).unwrap(),
        w.real.join("gcc")
    );
}

#[test]
fn the_system_gcc_is_found_behind_every_kind_of_shim() {
    let w = world();
    let system_gcc = Path::new("/usr/bin/gcc");
    if !system_gcc.exists() {
        eprintln!("skipping: /usr/bin/gcc is not installed");
        return;
    }
    let path = path_of(&[
        s(&w.shims),
        format!("{}/", s(&w.shims)),
        s(&w.root.join("shimlink")),
        "/usr/bin".to_string(),
    ]);
    assert_eq!(w.find(&path).unwrap(), system_gcc);
}

// --- trim_masquerade_path -------------------------------------------------------------------

#[test]
fn trim_by_argv0_directory() {
    let w = world();
    let path = path_of(&[w.root.join("x"), w.shims.clone(), w.real.clone()]);
    let argv0 = s(&w.shims.join("gcc"));
    let trimmed = trim_masquerade_path(&argv0, &path, &is_executable_file, &w.root);
    assert_eq!(trimmed, Some(OsString::from(s(&w.real))));
}

#[test]
fn trim_by_argv0_directory_with_trailing_slash_and_duplicate() {
    let w = world();
    let path = path_of(&[
        format!("{}/", s(&w.shims)),
        s(&w.real),
        format!("{}//", s(&w.shims)),
    ]);
    let argv0 = s(&w.shims.join("gcc"));
    let trimmed = trim_masquerade_path(&argv0, &path, &is_executable_file, &w.root);
    assert_eq!(trimmed, Some(OsString::from(s(&w.real))));
}

#[test]
fn trim_by_bare_name_with_a_real_executable_check() {
    let w = world();
    let path = path_of(&[&w.shims, &w.real]);
    let trimmed = trim_masquerade_path("gcc", &path, &is_executable_file, &w.root);
    assert_eq!(trimmed, Some(OsString::from(s(&w.real))));
}

#[test]
fn trim_by_bare_name_only_cuts_at_self_when_asked_to() {
    // PATH does not hold our shims (the caller's PATH differs from the one that found
    // us). distcc's rule would cut at the real compiler's directory; the narrowed
    // check refuses, leaving PATH whole.
    let w = world();
    let path = path_of(&[&w.real]);
    assert_eq!(
        trim_masquerade_path("gcc", &path, &is_executable_file, &w.root),
        Some(OsString::new())
    );
    assert_eq!(
        trim_masquerade_path("gcc", &path, &w.holds_self(), &w.root),
        None
    );
}

#[test]
fn trim_relative_argv0() {
    let w = world();
    let path = path_of(&[w.shims.clone(), w.real.clone()]);
    let trimmed = trim_masquerade_path("./gcc", &path, &is_executable_file, &w.shims);
    assert_eq!(trimmed, Some(OsString::from(s(&w.real))));
}

// --- the whole masquerade decision --------------------------------------------------------------

fn masquerade(w: &World, argv0: &str, path: &OsString, cwd: &Path) -> (Vec<String>, OsString) {
    let argv = vec![argv0.to_string(), "-c".into(), "x.c".into()];
    match classify_invocation_with(&argv, path, &w.probe(), cwd) {
        Invocation::Masquerade {
            compiler_argv,
            path,
        } => (compiler_argv, path),
        other => panic!("not masquerade: {other:?}"),
    }
}

#[test]
fn masquerade_through_symlinked_directory_still_trims() {
    // argv[0] names the symlinked spelling, PATH the real one: no string match, so the
    // fallback finds the entry whose gcc is us.
    let w = world();
    let path = path_of(&[&w.shims, &w.real]);
    let argv0 = s(&w.root.join("shimlink/gcc"));
    let (argv, trimmed) = masquerade(&w, &argv0, &path, &w.root);
    assert_eq!(argv, ["gcc", "-c", "x.c"]);
    assert_eq!(trimmed, OsString::from(s(&w.real)));
}

#[test]
fn masquerade_then_search_survives_every_odd_path() {
    let w = world();
    let nasty = [
        vec![s(&w.shims), s(&w.shims), s(&w.real)],
        vec![s(&w.root.join("shimlink")), s(&w.shims), s(&w.real)],
        vec![
            format!("{}/", s(&w.shims)),
            s(&w.root.join("shimlink")),
            s(&w.real),
        ],
        vec![s(&w.real), s(&w.shims)],
    ];
    for argv0 in [
        "gcc".to_string(),
        s(&w.shims.join("gcc")),
        s(&w.root.join("shimlink/gcc")),
    ] {
        for entries in &nasty {
            let path = path_of(entries);
            let (argv, trimmed) = masquerade(&w, &argv0, &path, &w.root);
            let found = find_real_compiler(&argv[0], &trimmed, &w.self_exe);
            assert_eq!(
                found.as_deref(),
                Ok(w.real.join("gcc").as_path()),
                "argv0 {argv0}, PATH {path:?}, trimmed {trimmed:?}"
            );
            // The compiler itself, run as plain `gcc`, must also meet the real gcc
            // first on PATH: gcc locates its installation that way.
            let first = trimmed
                .to_str()
                .unwrap()
                .split(':')
                .map(|e| Path::new(e).join("gcc"))
                .find(|p| is_executable_file(p));
            assert_eq!(
                first.as_deref(),
                Some(w.real.join("gcc").as_path()),
                "argv0 {argv0}, PATH {path:?}, trimmed {trimmed:?}"
            );
        }
    }
}

#[test]
fn masquerade_by_relative_path() {
    let w = world();
    let path = path_of(&[w.shims.clone(), w.real.clone()]);
    let (argv, trimmed) = masquerade(&w, "./cc", &path, &w.shims);
    assert_eq!(argv[0], "cc");
    assert_eq!(trimmed, OsString::from(s(&w.real)));
}

// --- resolving cc, checking names for the cross rewrite -------------------------------------------

#[test]
fn resolve_generic_follows_alternatives() {
    let w = world();
    let usrbin = w.root.join("usr-bin");
    let alternatives = w.root.join("etc/alternatives");
    fs::create_dir(&usrbin).unwrap();
    fs::create_dir_all(&alternatives).unwrap();
    symlink(w.real.join("gcc"), alternatives.join("cc")).unwrap();
    symlink("../etc/alternatives/cc", usrbin.join("cc")).unwrap();
    // A swarmcc masquerade directory first on PATH is skipped.
    let masq = w.root.join("swarmcc-shims");
    fs::create_dir(&masq).unwrap();
    symlink(&w.self_exe, masq.join("cc")).unwrap();
    let path = path_of(&[masq, usrbin.clone()]);
    assert_eq!(resolve_generic("cc", &path).as_deref(), Some("gcc"));

    // A direct link (no alternatives) resolves one level.
    let direct = w.root.join("direct");
    fs::create_dir(&direct).unwrap();
    symlink("gcc-12", direct.join("cc")).unwrap();
    write_exe(&direct.join("gcc-12"), "#!/bin/sh\n");
    assert_eq!(
        resolve_generic("cc", &path_of(&[direct])).as_deref(),
        Some("gcc-12")
    );

    // Not a link: unknown.
    assert_eq!(resolve_generic("gcc", &path_of(&[&w.real])), None);
}

#[test]
fn exists_on_path_ignores_links_to_swarmcc() {
    let w = world();
    let path = path_of(&[&w.shims]);
    assert!(!exists_on_path("gcc", &path));
    assert!(exists_on_path("gcc", &path_of(&[&w.shims, &w.real])));
    assert!(!exists_on_path(
        "x86_64-linux-gnu-gcc",
        &path_of(&[&w.real])
    ));
}
