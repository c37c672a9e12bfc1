//! Interoperability with Debian's real distcc 3.4, both ways, on a multi-file C and C++
//! project built by real `make`: swarmcc → distccd and distcc → swarmccd, with plain and
//! `,lzo` hosts. Objects must be byte-identical to a local build, and so must the
//! dependency files that swarmcc writes.

mod common;

use common::project::*;
use common::*;
use std::fs;

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// The server log once it shows at least `want` COMPILE_OK lines, or as it is after
/// [`PATIENCE`]: servers log a job after its reply is out, so make can finish first.
fn compiled_at_least(log: impl Fn() -> String, want: usize) -> String {
    eventually(log, |l| count(l, "COMPILE_OK") >= want)
}

#[test]
fn swarmcc_to_real_distccd_plain_and_lzo() {
    let tmp = tempfile::tempdir().unwrap();
    let local = reference_build(tmp.path());
    let server = start_distccd(tmp.path());
    for (i, opts) in ["", ",lzo"].iter().enumerate() {
        let dir = tmp.path().join(format!("remote{i}"));
        copy_tree(&fixture("proj"), &dir);
        let ddir = tmp.path().join(format!("ddir{i}"));
        let hosts = format!("127.0.0.1:{}/4{opts}", server.port);
        let cc = format!("{SWARMCC} gcc");
        let cxx = format!("{SWARMCC} g++");
        let before = count(&server.log_text(), "COMPILE_OK");
        let out = make(
            &dir,
            &cc,
            &cxx,
            &[
                ("DISTCC_HOSTS", hosts.as_str()),
                ("DISTCC_DIR", ddir.to_str().unwrap()),
                ("DISTCC_FALLBACK", "0"),
            ],
        );
        assert_success(&out, &format!("build through swarmcc to distccd ({hosts})"));
        let log = compiled_at_least(|| server.log_text(), before + 6);
        assert_eq!(
            count(&log, "COMPILE_OK") - before,
            6,
            "distccd compiled all six sources:\n{log}"
        );
        assert_same_outputs(&local, &dir, true);
        // The compiler warning reaches the user exactly once.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(count(&stderr, "unused variable"), 1, "stderr:\n{stderr}");
    }
}

#[test]
fn real_distcc_to_swarmccd_plain_and_lzo() {
    let tmp = tempfile::tempdir().unwrap();
    let local = reference_build(tmp.path());
    let server = start_swarmccd(tmp.path(), &["--allow", "127.0.0.1"]);
    for (i, opts) in ["", ",lzo"].iter().enumerate() {
        let dir = tmp.path().join(format!("remote{i}"));
        copy_tree(&fixture("proj"), &dir);
        let ddir = tmp.path().join(format!("ddir{i}"));
        fs::create_dir_all(&ddir).unwrap();
        let hosts = format!("127.0.0.1:{}/4{opts}", server.port);
        let before = count(&server.log_text(), "COMPILE_OK");
        let out = make(
            &dir,
            "distcc gcc",
            "distcc g++",
            &[
                ("DISTCC_HOSTS", hosts.as_str()),
                ("DISTCC_DIR", ddir.to_str().unwrap()),
                ("DISTCC_FALLBACK", "0"),
            ],
        );
        assert_success(
            &out,
            &format!("build through real distcc to swarmccd ({hosts})"),
        );
        let log = compiled_at_least(|| server.log_text(), before + 6);
        assert_eq!(
            count(&log, "COMPILE_OK") - before,
            6,
            "swarmccd compiled all six sources:\n{log}"
        );
        // distcc's own client writes the .d files (and gets their names wrong, its bug
        // #62), so only the objects are ours to compare here.
        assert_same_outputs(&local, &dir, false);
    }
}

#[test]
fn swarmcc_to_swarmccd_through_masquerade_shims() {
    let tmp = tempfile::tempdir().unwrap();
    let local = reference_build(tmp.path());
    let server = start_swarmccd(tmp.path(), &["--allow", "127.0.0.1"]);
    let shims = tmp.path().join("shims");
    fs::create_dir_all(&shims).unwrap();
    for name in ["cc", "gcc", "c++", "g++"] {
        std::os::unix::fs::symlink(SWARMCC, shims.join(name)).unwrap();
    }
    let path = format!("{}:{}", shims.display(), std::env::var("PATH").unwrap());
    let dir = tmp.path().join("remote");
    copy_tree(&fixture("proj"), &dir);
    let ddir = tmp.path().join("ddir");
    let hosts = format!("127.0.0.1:{}/4,lzo", server.port);
    let out = make(
        &dir,
        "cc",
        "c++",
        &[
            ("PATH", path.as_str()),
            ("DISTCC_HOSTS", hosts.as_str()),
            ("DISTCC_DIR", ddir.to_str().unwrap()),
            ("DISTCC_FALLBACK", "0"),
        ],
    );
    assert_success(&out, "masquerade build");
    let log = compiled_at_least(|| server.log_text(), 6);
    assert_eq!(count(&log, "COMPILE_OK"), 6, "{log}");
    assert_same_outputs(&local, &dir, true);
}

/// Regression (found building jemalloc with `CC="swarmcc gcc"` under `swarmcc --run`,
/// which puts a masquerade folder first on PATH): gcc finds cc1 from argv[0], so the
/// real compiler must not be run as a bare `gcc` that PATH resolves to a shim.
#[test]
fn explicit_wrapper_with_shims_first_on_path() {
    let tmp = tempfile::tempdir().unwrap();
    let local = reference_build(tmp.path());
    let server = start_swarmccd(tmp.path(), &["--allow", "127.0.0.1"]);
    let shims = tmp.path().join("shims");
    fs::create_dir_all(&shims).unwrap();
    for name in ["cc", "gcc", "c++", "g++"] {
        std::os::unix::fs::symlink(SWARMCC, shims.join(name)).unwrap();
    }
    let path = format!("{}:{}", shims.display(), std::env::var("PATH").unwrap());
    for (i, hosts) in [format!("127.0.0.1:{}/4", server.port), String::new()]
        .iter()
        .enumerate()
    {
        // Remote (the local preprocessor runs the real gcc), then with no hosts at all
        // (the local compile runs it).
        let dir = tmp.path().join(format!("explicit{i}"));
        copy_tree(&fixture("proj"), &dir);
        let out = make(
            &dir,
            &format!("{SWARMCC} gcc"),
            &format!("{SWARMCC} g++"),
            &[
                ("PATH", path.as_str()),
                ("DISTCC_HOSTS", hosts.as_str()),
                ("DISTCC_DIR", tmp.path().join("ddir").to_str().unwrap()),
            ],
        );
        assert_success(
            &out,
            &format!("explicit CC with shims first on PATH ({hosts:?})"),
        );
        assert_same_outputs(&local, &dir, true);
    }
    let log = compiled_at_least(|| server.log_text(), 6);
    assert_eq!(count(&log, "COMPILE_OK"), 6, "{log}");
}
