//! Portage's `FEATURES="distcc"` recipe, as far as a Debian machine without emerge
//! allows: a masquerade folder laid out as Portage's `/usr/lib/distcc/bin` (installed
//! with `swarmcc::shims::install`, names from this machine) first on PATH, the build
//! run as an unprivileged user (`nobody` standing in for `portage`) with
//! `DISTCC_DIR=…/var/tmp/portage/.distcc` and `MAKEOPTS="-j16 -l4"`. Checks that every
//! object came from the server and that what swarmcc created in DISTCC_DIR belongs to
//! the build user, not root.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The unprivileged build user: `nobody`/`nogroup` (the `portage` user does not exist
/// here; creating one would change the machine).
const BUILD_UID: u32 = 65534;
const BUILD_GID: u32 = 65534;

/// The fixture project's sources (tests/fixtures/proj).
const PROJ_SOURCES: usize = 6;

fn chown_tree(p: &Path) {
    chown(p, Some(BUILD_UID), Some(BUILD_GID))
        .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
    if fs::symlink_metadata(p).unwrap().is_dir() {
        for e in fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path());
        }
    }
}

/// Every entry under `dir` (itself included) whose owner is not the build user.
fn not_owned_by_build_user(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut bad = Vec::new();
    let m = fs::symlink_metadata(dir).unwrap();
    if m.uid() != BUILD_UID {
        bad.push((dir.to_path_buf(), m.uid()));
    }
    if m.is_dir() {
        for e in fs::read_dir(dir).unwrap() {
            bad.extend(not_owned_by_build_user(&e.unwrap().path()));
        }
    }
    bad
}

#[test]
fn portage_layout_as_an_unprivileged_user_with_make_j16_l4() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test switches to the nobody user and must run as root (the test machine's default)"
    );
    let setpriv = Path::new("/usr/bin/setpriv");
    assert!(
        setpriv.exists(),
        "setpriv (util-linux) is needed to run the build as nobody"
    );

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // Tempdirs are 0700 root: the build user must traverse everything above its files.
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();

    // swarmcc where nobody can run it (the cargo target dir may be under /root).
    let bin = root.join("usr/bin");
    fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("swarmcc");
    fs::copy(SWARMCC, &exe).unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();

    // Portage's masquerade folder, from this machine's compilers.
    let shims = root.join("usr/lib/distcc/bin");
    let names = swarmcc::shims::compiler_names("/usr/local/bin:/usr/bin:/bin".as_ref());
    for needed in ["cc", "c++", "gcc", "g++"] {
        assert!(
            names.iter().any(|n| n == needed),
            "no {needed} on this machine: {names:?}"
        );
    }
    let report = swarmcc::shims::install(&shims, &exe, &names).unwrap();
    assert_eq!(report.created.len(), names.len(), "{report}");
    for d in [
        "usr",
        "usr/bin",
        "usr/lib",
        "usr/lib/distcc",
        "usr/lib/distcc/bin",
    ] {
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }

    // The same folder is the server's whitelist, as on a Gentoo helper.
    let server = start_swarmccd(
        root,
        &[
            "--allow",
            "127.0.0.1",
            "--whitelist-dir",
            shims.to_str().unwrap(),
        ],
    );

    // PORTAGE_TMPDIR=/var/tmp: root-owned parents, DISTCC_DIR owned by the build user
    // with Portage's setgid group-writable mode. swarmcc creates what it needs inside.
    let portage_tmp = root.join("var/tmp/portage");
    fs::create_dir_all(&portage_tmp).unwrap();
    for d in ["var", "var/tmp", "var/tmp/portage"] {
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let distcc_dir = portage_tmp.join(".distcc");
    fs::create_dir(&distcc_dir).unwrap();
    chown_tree(&distcc_dir);
    fs::set_permissions(&distcc_dir, fs::Permissions::from_mode(0o2775)).unwrap();
    let _reaper = AgentReaper(distcc_dir.clone());

    // The package's work directory ($WORKDIR), its $T and $HOME, owned by the build user.
    let pkg = portage_tmp.join("dev-util/fixture-1.0");
    let work = pkg.join("work/proj");
    copy_tree(&fixture("proj"), &work);
    let _ = fs::remove_dir_all(work.join("obj"));
    let _ = fs::remove_file(work.join("prog"));
    let temp = pkg.join("temp");
    let home = pkg.join("homedir");
    fs::create_dir_all(&temp).unwrap();
    fs::create_dir_all(&home).unwrap();
    fs::set_permissions(
        portage_tmp.join("dev-util"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    chown_tree(&pkg);

    let path = format!("{}:/usr/bin:/bin", shims.display());
    let out = run(Command::new(setpriv)
        .arg(format!("--reuid={BUILD_UID}"))
        .arg(format!("--regid={BUILD_GID}"))
        .arg("--clear-groups")
        .args(["make", "-j16", "-l4", "prog"])
        .current_dir(&work)
        .env_clear()
        .env("PATH", &path)
        .env("HOME", &home)
        .env("TMPDIR", &temp)
        .env("LC_ALL", "C")
        .env("DISTCC_HOSTS", format!("127.0.0.1:{}/16", server.port))
        .env("DISTCC_DIR", &distcc_dir)
        .env("DISTCC_FALLBACK", "0"));
    assert_success(&out, "make -j16 -l4 as nobody through the shims");
    let logged = |l: &str| l.matches("COMPILE_OK").count();
    // A job is logged once its reply is out: make can finish first.
    let log = server.log_when(|l| logged(l) >= PROJ_SOURCES);
    assert_eq!(
        logged(&log),
        PROJ_SOURCES,
        "every object came from the server\nmake output:\n{}{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    // make ran bare `cc` and `g++` (its defaults), found first on PATH: our links.
    let stdout = String::from_utf8_lossy(&out.stdout);
    for compiler in ["cc ", "g++ "] {
        assert!(
            stdout.lines().any(|l| l.starts_with(compiler)),
            "make ran no {compiler}:\n{stdout}"
        );
    }

    let prog = run(Command::new(work.join("prog")).current_dir(&work));
    assert_success(&prog, "the built program");

    // What swarmcc made in DISTCC_DIR (lock/, backoff and slot files, the agent's
    // socket if one ran) belongs to the build user.
    let made: Vec<_> = fs::read_dir(&distcc_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !made.is_empty(),
        "swarmcc keeps its state (agent socket or lock files) in DISTCC_DIR"
    );
    let bad = not_owned_by_build_user(&distcc_dir);
    assert!(bad.is_empty(), "not owned by uid {BUILD_UID}: {bad:?}");
    let objects = not_owned_by_build_user(&work.join("obj"));
    assert!(
        objects.is_empty(),
        "objects not owned by the build user: {objects:?}"
    );
}
