//! The masquerade folder: which names get a link (from a fake PATH of empty
//! executables), what installing and reinstalling do to the folder, what they never
//! touch, the `swarmcc --install-shims` command and its script, and the folder used as
//! swarmccd's compiler whitelist.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use swarmcc::shims::{self, Skipped};

/// An empty executable file: enough for a name to "exist" on PATH.
fn fake_exe(dir: &Path, name: &str) {
    fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    fs::write(&p, b"").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The names in `dir` that are links to `target`, sorted.
fn links_to(dir: &Path, target: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| fs::read_link(e.path()).is_ok_and(|t| t == target))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn swarmcc_path() -> PathBuf {
    PathBuf::from(SWARMCC)
}

/// A fake machine: two PATH directories with compilers and compiler-named tools.
fn fake_path(root: &Path) -> std::ffi::OsString {
    let usr = root.join("usr-bin");
    let local = root.join("local-bin");
    for n in ["x86_64-linux-gnu-gcc-12", "gcc-12", "gcc-ar-12", "clang-15"] {
        fake_exe(&usr, n);
    }
    for n in ["x86_64-linux-gnu-gcc-ar", "clang-format-15", "ls"] {
        fake_exe(&usr, n);
    }
    // Not executable: not a compiler.
    fs::write(usr.join("g++-12"), b"").unwrap();
    // The same name in two directories is linked once.
    fake_exe(&local, "gcc-12");
    fake_exe(&local, "cc");
    format!("{}::relative-dir:{}", usr.display(), local.display()).into()
}

#[test]
fn names_come_from_the_path_and_exclude_tools() {
    let tmp = tempfile::tempdir().unwrap();
    let names = shims::compiler_names(&fake_path(tmp.path()));
    assert_eq!(
        names,
        strings(&["cc", "clang-15", "gcc-12", "x86_64-linux-gnu-gcc-12"])
    );
}

#[test]
fn install_links_every_name_to_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let names = shims::compiler_names(&fake_path(tmp.path()));
    let dir = tmp.path().join("lib/swarmcc/bin");
    let report = shims::install(&dir, &swarmcc_path(), &names).unwrap();
    assert_eq!(report.created, names);
    assert!(report.updated.is_empty() && report.removed.is_empty() && report.skipped.is_empty());
    assert_eq!(links_to(&dir, &swarmcc_path()), {
        let mut n = names.clone();
        n.sort();
        n
    });
    assert!(!dir.join("gcc-ar-12").exists(), "gcc-ar-12 is a tool");
    // Installing again changes nothing.
    let again = shims::install(&dir, &swarmcc_path(), &names).unwrap();
    assert!(again.created.is_empty() && again.removed.is_empty());
    assert_eq!(again.unchanged.len(), names.len());
    assert!(again
        .to_string()
        .contains(&format!("{} links to", names.len())));
}

#[test]
fn reinstall_removes_stale_links_and_leaves_others_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shims");
    let target = swarmcc_path();
    shims::install(&dir, &target, &strings(&["cc", "gcc-12", "clang-15"])).unwrap();
    // Someone else's entries, including ones named like wanted compilers.
    fs::write(dir.join("gcc"), b"#!/bin/sh\n").unwrap();
    fs::write(dir.join("notes.txt"), b"mine").unwrap();
    symlink("/usr/bin/true", dir.join("g++")).unwrap();
    symlink("/usr/bin/true", dir.join("clang-14")).unwrap();

    // clang-15 is gone from the machine; gcc and g++ are new names.
    let report = shims::install(&dir, &target, &strings(&["cc", "gcc", "g++", "gcc-12"])).unwrap();
    assert_eq!(report.removed, strings(&["clang-15"]));
    assert!(!dir.join("clang-15").exists() && fs::symlink_metadata(dir.join("clang-15")).is_err());
    assert_eq!(report.unchanged, strings(&["cc", "gcc-12"]));
    assert!(report.created.is_empty());
    assert_eq!(
        report.skipped,
        vec![
            (
                "g++".to_owned(),
                Skipped::LinkElsewhere(PathBuf::from("/usr/bin/true"))
            ),
            ("gcc".to_owned(), Skipped::NotALink),
        ]
    );
    let text = report.to_string();
    assert!(text.contains("left alone gcc: not a symlink"), "{text}");
    assert!(
        text.contains("left alone g++: a link to /usr/bin/true"),
        "{text}"
    );
    // Untouched, byte for byte.
    assert_eq!(fs::read(dir.join("gcc")).unwrap(), b"#!/bin/sh\n");
    assert_eq!(fs::read(dir.join("notes.txt")).unwrap(), b"mine");
    assert_eq!(
        fs::read_link(dir.join("g++")).unwrap(),
        Path::new("/usr/bin/true")
    );
    assert_eq!(
        fs::read_link(dir.join("clang-14")).unwrap(),
        Path::new("/usr/bin/true")
    );
}

#[test]
fn links_to_an_older_swarmcc_or_to_distcc_are_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("distcc-bin");
    fs::create_dir_all(&dir).unwrap();
    // A previous install whose binary is gone, and Portage's links to distcc.
    symlink("/opt/old/bin/swarmcc", dir.join("cc")).unwrap();
    symlink("../../../usr/bin/distcc", dir.join("gcc")).unwrap();
    let target = swarmcc_path();
    let report = shims::install(&dir, &target, &strings(&["cc", "gcc"])).unwrap();
    assert_eq!(
        report.updated,
        vec![
            ("cc".to_owned(), PathBuf::from("/opt/old/bin/swarmcc")),
            ("gcc".to_owned(), PathBuf::from("../../../usr/bin/distcc")),
        ]
    );
    assert_eq!(links_to(&dir, &target), strings(&["cc", "gcc"]));
    // No temporary names are left behind.
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
}

#[test]
fn uninstall_removes_only_links_to_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shims");
    let target = swarmcc_path();
    shims::install(&dir, &target, &strings(&["cc", "c++"])).unwrap();
    symlink("/usr/bin/true", dir.join("gcc")).unwrap();
    fs::write(dir.join("g++"), b"").unwrap();
    let report = shims::uninstall(&dir, &target).unwrap();
    assert_eq!(report.removed, strings(&["c++", "cc"]));
    let mut left: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, strings(&["g++", "gcc"]));
    // A folder that does not exist has nothing to uninstall.
    let none = shims::uninstall(&tmp.path().join("missing"), &target).unwrap();
    assert!(none.removed.is_empty());
}

#[test]
fn a_shim_folder_on_path_does_not_keep_its_own_names_alive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shims");
    let target = swarmcc_path();
    shims::install(&dir, &target, &strings(&["gcc-99", "clang-99"])).unwrap();
    let real = tmp.path().join("real");
    fake_exe(&real, "gcc-99");
    // The shim folder first on PATH, as when the user reinstalls from a shell that
    // already uses it: clang-99 exists only as our own link, so it is not a compiler.
    let path = format!("{}:{}", dir.display(), real.display());
    let names = shims::compiler_names(path.as_ref());
    assert_eq!(names, strings(&["gcc-99"]));
    let report = shims::install(&dir, &target, &names).unwrap();
    assert_eq!(report.removed, strings(&["clang-99"]));
}

#[test]
fn install_errors_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    fs::write(&file, b"").unwrap();
    let dir = file.join("bin");
    let err = shims::install(&dir, &swarmcc_path(), &strings(&["cc"])).unwrap_err();
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err}"
    );
    let err =
        shims::install(&tmp.path().join("d"), &swarmcc_path(), &strings(&["../cc"])).unwrap_err();
    assert!(err.to_string().contains("\"../cc\""), "{err}");
}

/// `swarmcc --install-shims DIR` links the machine's compilers to the running swarmcc;
/// `--uninstall-shims DIR` removes them again.
#[test]
fn install_shims_command() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bin");
    let path = "/usr/local/bin:/usr/bin:/bin";
    let out = run(Command::new(SWARMCC)
        .arg("--install-shims")
        .arg(&dir)
        .env("PATH", path));
    assert_success(&out, "swarmcc --install-shims");
    let target = fs::canonicalize(SWARMCC).unwrap();
    let mut expected = shims::compiler_names(path.as_ref());
    expected.sort();
    assert!(expected.contains(&"cc".to_owned()), "this machine has cc");
    assert_eq!(links_to(&dir, &target), expected);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("export PATH=\"{}:$PATH\"", dir.display())),
        "{stdout}"
    );

    let out = run(Command::new(SWARMCC).arg("--uninstall-shims").arg(&dir));
    assert_success(&out, "swarmcc --uninstall-shims");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
}

/// The standalone script takes DIR and SWARMCC and delegates to the command.
#[test]
fn install_shims_script() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bin");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("shims/install-shims.sh");
    let out = run(Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .arg(SWARMCC)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin"));
    assert_success(&out, "install-shims.sh");
    let target = fs::canonicalize(SWARMCC).unwrap();
    let linked = links_to(&dir, &target);
    assert!(
        linked.contains(&"cc".to_owned()) && linked.contains(&"gcc".to_owned()),
        "{linked:?}"
    );
}

/// The shims folder doubles as swarmccd's whitelist (`--whitelist-dir`): `c89` has a
/// link there and nowhere in the default whitelist folders, so a remote `c89` compile
/// is accepted because of that folder.
#[test]
fn shims_folder_is_a_server_whitelist() {
    let tmp = tempfile::tempdir().unwrap();
    let names = shims::compiler_names("/usr/local/bin:/usr/bin:/bin".as_ref());
    assert!(
        names.contains(&"c89".to_owned()),
        "this test needs c89 (Debian's gcc package has it): {names:?}"
    );
    let shim_dir = tmp.path().join("shims");
    shims::install(&shim_dir, &swarmcc_path(), &names).unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("k.c"), "int k(void) { return 89; }\n").unwrap();
    let compile = |port: u16, ddir: &str| {
        let hosts = format!("127.0.0.1:{port}/2");
        // Through the link, as a build finds `c89` on PATH: masquerade mode.
        let mut cmd = Command::new(shim_dir.join("c89"));
        cmd.env("DISTCC_DIR", tmp.path().join(ddir))
            .env("DISTCC_HOSTS", &hosts)
            .env_remove("DISTCC_VERBOSE")
            .env_remove("DISTCC_LOG")
            .env_remove("DISTCC_SKIP_LOCAL_RETRY")
            .env_remove("_DISTCC_SAFEGUARD")
            .args(["-c", "k.c", "-o", "k.o"])
            .current_dir(&src)
            .env("PATH", format!("{}:/usr/bin:/bin", shim_dir.display()))
            .env("DISTCC_FALLBACK", "0")
            .env("DISTCC_BACKOFF_PERIOD", "0");
        run(&mut cmd)
    };

    let default_has_c89 = swarmcc::server::whitelist::DEFAULT_WHITELIST_DIRS
        .iter()
        .any(|d| Path::new(d).join("c89").exists());
    if !default_has_c89 {
        let plain = start_swarmccd(tmp.path(), &["--allow", "127.0.0.1"]);
        let out = compile(plain.port, "d1");
        assert!(
            !out.status.success(),
            "c89 must be refused without the whitelist folder"
        );
        let log = plain.log_when(|l| l.contains("whitelist") && l.contains("c89"));
        assert_eq!(log.matches("COMPILE_OK").count(), 0, "{log}");
    }

    let server = start_swarmccd(
        tmp.path(),
        &[
            "--allow",
            "127.0.0.1",
            "--whitelist-dir",
            shim_dir.to_str().unwrap(),
        ],
    );
    let out = compile(server.port, "d2");
    assert_success(
        &out,
        "c89 through the shims, whitelisted by the shims folder",
    );
    // A job is logged once its reply is out: the client can finish first.
    let log = server.log_when(|l| l.contains("COMPILE_OK"));
    assert_eq!(log.matches("COMPILE_OK").count(), 1, "{log}");
    assert!(src.join("k.o").exists());
}
