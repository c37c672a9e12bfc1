//! `swarmcc --install PREFIX --distcc-names` and `--uninstall PREFIX` with the real
//! binaries: the shims, the documentation and the distcc names are put in place and
//! recorded; `PREFIX/bin/distcc gcc -c x.c` is swarmcc compiling on a server, and
//! `distccd` starts swarmccd (as a link to swarmccd, and as a link to swarmcc, which
//! hands over to the swarmccd beside it); installing twice changes nothing; uninstalling
//! removes exactly what was installed and leaves changed and foreign files alone.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn install(prefix: &Path, extra: &[&str]) -> String {
    let out = run(Command::new(SWARMCC)
        .arg("--install")
        .arg(prefix)
        .args(extra));
    assert_success(&out, "swarmcc --install");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn link_target(p: &Path) -> std::path::PathBuf {
    fs::read_link(p).unwrap_or_else(|e| panic!("{} is not a link: {e}", p.display()))
}

#[test]
fn install_use_and_uninstall() {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let prefix = tmp.path().join("prefix");
    let text = install(&prefix, &["--distcc-names"]);
    let swarmcc = fs::canonicalize(SWARMCC).unwrap();
    let swarmccd = fs::canonicalize(SWARMCCD).unwrap();
    // The shims (a custom prefix: inside it), the docs, the distcc names.
    let shims = prefix.join("lib/swarmcc/bin");
    assert_eq!(
        fs::canonicalize(shims.join("gcc")).unwrap(),
        swarmcc,
        "{text}"
    );
    for doc in [
        "share/man/man1/swarmcc.1",
        "share/man/man1/swarmccd.1",
        "share/bash-completion/completions/swarmcc",
        "share/zsh/site-functions/_swarmccd",
        "share/fish/vendor_completions.d/swarmcc.fish",
    ] {
        assert!(prefix.join(doc).is_file(), "{doc} missing:\n{text}");
    }
    assert_eq!(
        fs::canonicalize(prefix.join("bin/distcc")).unwrap(),
        swarmcc
    );
    assert_eq!(
        fs::canonicalize(prefix.join("bin/distccd")).unwrap(),
        swarmccd
    );
    let manifest = prefix.join("share/swarmcc/install-manifest");
    let recorded = fs::read_to_string(&manifest).unwrap();
    assert!(
        recorded.contains("shims\t") && recorded.contains("bin/distccd\t"),
        "{recorded}"
    );
    assert!(text.contains("swarmccd --whitelist-dir"), "{text}");

    // `distcc gcc -c x.c` is swarmcc, compiling on a server.
    let server = start_swarmccd(tmp.path(), &["--whitelist-dir", shims.to_str().unwrap()]);
    let src = tmp.path().join("x.c");
    fs::write(&src, "int x(int a) { return a * 3; }\n").unwrap();
    let out = run(Command::new(prefix.join("bin/distcc"))
        .args(["gcc", "-O2", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(tmp.path().join("x.o"))
        .env("DISTCC_HOSTS", format!("127.0.0.1:{}", server.port))
        .env("DISTCC_DIR", tmp.path().join("ddir"))
        .env("DISTCC_FALLBACK", "0"));
    assert_success(&out, "distcc gcc -c x.c");
    let log = eventually(|| server.log_text(), |l| l.contains("COMPILE_OK"));
    assert!(log.contains("COMPILE_OK"), "{log}");
    let out = run(Command::new(prefix.join("bin/distcc")).arg("--version"));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("swarmcc "));

    // `distccd` is swarmccd: the installed link, and swarmcc itself under that name.
    let out = run(Command::new(prefix.join("bin/distccd")).arg("--version"));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("swarmccd "),
        "{out:?}"
    );
    let alias = Path::new(SWARMCC).parent().unwrap().join("distccd");
    let _ = fs::remove_file(&alias);
    std::os::unix::fs::symlink(SWARMCC, &alias).unwrap();
    let out = run(Command::new(&alias).arg("--version"));
    let _ = fs::remove_file(&alias);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("swarmccd "),
        "{out:?}"
    );

    // Installing again changes nothing and records nothing twice.
    let again = install(&prefix, &["--distcc-names"]);
    assert!(
        again.contains("unchanged") && again.contains("0 new"),
        "{again}"
    );
    assert_eq!(fs::read_to_string(&manifest).unwrap(), recorded);

    // A file changed since, and one that was never ours, stay.
    let changed = prefix.join("share/fish/vendor_completions.d/swarmcc.fish");
    fs::write(&changed, "# mine now\n").unwrap();
    let foreign = prefix.join("share/man/man1/other.1");
    fs::write(&foreign, ".TH other 1\n").unwrap();
    let out = run(Command::new(SWARMCC).arg("--uninstall").arg(&prefix));
    assert_success(&out, "swarmcc --uninstall");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("left alone {}", changed.display())),
        "{text}"
    );
    assert_eq!(fs::read_to_string(&changed).unwrap(), "# mine now\n");
    assert!(foreign.exists());
    assert!(
        !prefix.join("bin/distcc").exists() && !prefix.join("bin").exists(),
        "{text}"
    );
    assert!(!shims.exists(), "{text}");
    assert!(!prefix.join("share/man/man1/swarmcc.1").exists());
    assert!(
        !manifest.exists() && !prefix.join("share/swarmcc").exists(),
        "{text}"
    );
    assert!(!prefix.join("share/bash-completion").exists(), "{text}");

    // Nothing recorded: nothing removed, and the message says where it looked.
    let out = run(Command::new(SWARMCC).arg("--uninstall").arg(&prefix));
    assert_eq!(out.status.code(), Some(107));
    assert!(String::from_utf8_lossy(&out.stderr).contains("install-manifest"));
}

#[test]
fn foreign_distcc_commands_are_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("p");
    fs::create_dir_all(prefix.join("bin")).unwrap();
    // A real distcc installed in the same prefix.
    fs::write(prefix.join("bin/distcc"), "#!/bin/sh\necho real distcc\n").unwrap();
    let text = install(&prefix, &["--distcc-names"]);
    assert!(
        text.contains("left alone") && text.contains("bin/distcc"),
        "{text}"
    );
    assert_eq!(
        fs::read_to_string(prefix.join("bin/distcc")).unwrap(),
        "#!/bin/sh\necho real distcc\n"
    );
    assert!(link_target(&prefix.join("bin/distccd")).ends_with("swarmccd"));
    let out = run(Command::new(SWARMCC).arg("--uninstall").arg(&prefix));
    assert_success(&out, "swarmcc --uninstall");
    assert!(prefix.join("bin/distcc").exists() && !prefix.join("bin/distccd").exists());
}

/// `shims/install.sh --no-build --service`: the binaries already in PREFIX/bin, the
/// service files placed (in a test's SYSCONFDIR and unit folder) with the unit pointing
/// at PREFIX/bin/swarmccd, option files never overwritten.
#[test]
fn install_script_places_the_service() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("p");
    fs::create_dir_all(prefix.join("bin")).unwrap();
    for (from, name) in [(SWARMCC, "swarmcc"), (SWARMCCD, "swarmccd")] {
        fs::copy(from, prefix.join("bin").join(name)).unwrap();
    }
    let etc = tmp.path().join("etc");
    let units = tmp.path().join("units");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("shims/install.sh");
    let go = || {
        run(Command::new("bash")
            .arg(&script)
            .args(["--no-build", "--service", "--prefix"])
            .arg(&prefix)
            .env("SYSCONFDIR", &etc)
            .env("SYSTEMD_UNIT_DIR", &units))
    };
    let out = go();
    assert_success(&out, "install.sh");
    let unit = fs::read_to_string(units.join("swarmccd.service")).unwrap();
    let exec = format!("ExecStart={}/bin/swarmccd ", prefix.display());
    assert!(unit.contains(&exec), "{unit}");
    let env = etc.join("default/swarmccd");
    assert!(fs::read_to_string(&env).unwrap().contains("SWARMCCD_OPTS="));
    assert!(prefix.join("share/man/man1/swarmccd.1").is_file());
    // A second run keeps the administrator's options.
    fs::write(&env, "SWARMCCD_OPTS=\"--allow 10.0.0.0/8\"\n").unwrap();
    let out = go();
    assert_success(&out, "install.sh again");
    assert!(String::from_utf8_lossy(&out.stdout).contains("kept"));
    assert_eq!(
        fs::read_to_string(&env).unwrap(),
        "SWARMCCD_OPTS=\"--allow 10.0.0.0/8\"\n"
    );
    let out = run(Command::new(prefix.join("bin/swarmcc"))
        .arg("--uninstall")
        .arg(&prefix));
    assert_success(&out, "swarmcc --uninstall");
    assert!(!prefix.join("share/man/man1/swarmccd.1").exists());
    assert!(
        prefix.join("bin/swarmccd").exists(),
        "the binaries are cargo's to remove"
    );
}
