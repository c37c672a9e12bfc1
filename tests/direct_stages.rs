//! swarmccd runs a gcc job's stages (cc1 or cc1plus, then as) without the driver once
//! it has learnt them from a driver run of the same command line. The answers must be
//! the driver's to the byte: object, status, diagnostics, whatever the flags — checked
//! here against a local compile and against a server that always uses the driver.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::wire::{compile, Reply};
use common::{run, start_swarmccd, Swarmccd};
use swarmcc::protocol::Version;

const WARNS: &str = "int f(int x) { int unused; return x * 2; }\n";
const PLAIN: &str = "static int sq(int v) { return v * v; }\n\
    int g(int n) { int s = 0; for (int i = 0; i < n; i++) s += sq(i); return s; }\n";
const OMP: &str =
    "void h(int *a, int n) {\n#pragma omp parallel for\n  for (int i = 0; i < n; i++) a[i] *= 2;\n}\n";
const CXX: &str = "#include <vector>\n#include <string>\n\
    template <class T> struct Box {\n\
      T v;\n\
      explicit Box(T x) : v(x) {}\n\
      virtual ~Box() = default;\n\
      virtual T get() const { return v; }\n\
    };\n\
    int k(const std::vector<std::string>& v) { Box<int> b{(int)v.size()}; return b.get(); }\n";
const ERROR: &str = "int e(void) { return undeclared; }\n";

struct Case {
    name: &'static str,
    driver: &'static str,
    ext: &'static str,
    source: &'static str,
    flags: &'static [&'static str],
}

/// A C case compiled by `gcc`.
const fn gcc(name: &'static str, source: &'static str, flags: &'static [&'static str]) -> Case {
    Case {
        name,
        driver: "gcc",
        ext: "c",
        source,
        flags,
    }
}

const CASES: &[Case] = &[
    gcc("warning", WARNS, &["-O2", "-Wall"]),
    gcc("debug-pic", PLAIN, &["-g", "-O1", "-fPIC"]),
    gcc(
        "march",
        PLAIN,
        &["-O2", "-march=x86-64-v2", "-D", "X=1", "-I", "inc"],
    ),
    gcc(
        "hardened",
        PLAIN,
        &[
            "-O2",
            "-fstack-protector-strong",
            "-D_FORTIFY_SOURCE=2",
            "-ffunction-sections",
        ],
    ),
    gcc("openmp", OMP, &["-O2", "-fopenmp"]),
    Case {
        name: "cxx",
        driver: "g++",
        ext: "cpp",
        source: CXX,
        flags: &["-O2", "-std=c++17"],
    },
    gcc("error", ERROR, &["-O2"]),
    gcc("werror", WARNS, &["-O2", "-Wall", "-Werror"]),
];

/// Preprocesses the case locally as a client would; returns the `.i` text.
fn preprocess(dir: &Path, case: &Case) -> Vec<u8> {
    let src = dir.join(format!("{}.{}", case.name, case.ext));
    fs::write(&src, case.source).unwrap();
    let out = run(Command::new(case.driver)
        .current_dir(dir)
        .args(case.flags)
        .arg("-E")
        .arg(&src));
    assert!(out.status.success(), "{}: cpp failed", case.name);
    out.stdout
}

/// The local compile of that `.i`, through the driver: (status, object, stderr).
fn local(dir: &Path, case: &Case, doti: &[u8]) -> (i32, Vec<u8>, String) {
    let ext = if case.ext == "c" { "i" } else { "ii" };
    let i = dir.join(format!("{}.{ext}", case.name));
    fs::write(&i, doti).unwrap();
    let obj = dir.join(format!("{}.o", case.name));
    let out = run(Command::new(case.driver)
        .current_dir(dir)
        .args(case.flags)
        .arg("-c")
        .arg(&i)
        .arg("-o")
        .arg(&obj));
    let object = fs::read(&obj).unwrap_or_default();
    let _ = fs::remove_file(&obj);
    let code = out.status.code().unwrap();
    (
        code,
        object,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn remote(server: &Swarmccd, case: &Case, doti: &[u8]) -> Reply {
    remote_as(server, case.driver, case, doti)
}

/// [`remote`] with the compiler named `cc` (a whitelisted stand-in).
fn remote_as(server: &Swarmccd, cc: &str, case: &Case, doti: &[u8]) -> Reply {
    let input = format!("{}.{}", case.name, case.ext);
    let output = format!("{}.o", case.name);
    let mut argv = vec![cc];
    argv.extend_from_slice(case.flags);
    argv.extend(["-c", input.as_str(), "-o", output.as_str()]);
    compile(server.port, Version::V1, &argv, doti)
}

/// A server whose extra compilers are the links in `wl`, found on `path`.
fn start_with_whitelist(dir: &Path, wl: &Path, path: &str, extra: &[&str]) -> Swarmccd {
    let mut flags = vec!["--whitelist-dir", wl.to_str().unwrap()];
    flags.extend_from_slice(extra);
    common::start_swarmccd_env(dir, &flags, &[("DISTCCD_PATH", path)])
}

/// Diagnostics name the `.i` locally and the original source remotely only through
/// its line markers, which both follow: they must be identical.
fn same(case: &Case, what: &str, a: &Reply, b: &Reply) {
    assert_eq!(a.status, b.status, "{}: status, {what}", case.name);
    assert_eq!(a.stderr, b.stderr, "{}: diagnostics, {what}", case.name);
    assert!(a.object == b.object, "{}: object, {what}", case.name);
}

#[test]
fn direct_stages_answer_exactly_as_the_driver_does() {
    let tmp = tempfile::tempdir().unwrap();
    let direct = start_swarmccd(tmp.path(), &[]);
    let driver_only = start_swarmccd(tmp.path(), &["--no-direct-stages"]);
    for case in CASES {
        let doti = preprocess(tmp.path(), case);
        let (code, object, stderr) = local(tmp.path(), case, &doti);
        let learning = remote(&direct, case, &doti);
        let direct_run = remote(&direct, case, &doti);
        let plain = remote(&driver_only, case, &doti);
        same(
            case,
            "learning run vs driver-only server",
            &learning,
            &plain,
        );
        same(
            case,
            "direct run vs driver-only server",
            &direct_run,
            &plain,
        );
        // And the driver-only server matches a local compile of the same text.
        assert_eq!(plain.status >> 8, code as u32, "{}: exit code", case.name);
        assert!(
            plain.object == object,
            "{}: object vs local compile",
            case.name
        );
        let should_fail = matches!(case.name, "error" | "werror");
        assert_eq!(code != 0, should_fail, "{}: {stderr}", case.name);
        if code == 0 {
            assert!(!object.is_empty(), "{}: an object was made", case.name);
        }
        for line in stderr
            .lines()
            .filter(|l| l.contains("error") || l.contains("warning"))
        {
            assert!(
                plain.stderr.contains(line.trim()),
                "{}: missing `{line}`",
                case.name
            );
        }
    }
    let log = direct.log_when(|l| l.matches("COMPILE_").count() >= 2 * CASES.len());
    // Each command line was learnt once and run directly the second time; the ones
    // that fail went back to the driver.
    let learnt = log.matches("learnt the stages of").count();
    let direct_runs = log
        .matches("running the learnt stages without the driver")
        .count();
    assert_eq!(learnt, CASES.len() - 2, "{log}"); // error and -Werror fail when learning
    assert_eq!(direct_runs, CASES.len() - 2, "{log}");
    assert_eq!(
        log.matches("stages run without the driver did not succeed; running the driver")
            .count(),
        0,
        "{log}"
    );
    let plain_log = driver_only.log_when(|l| l.matches("COMPILE_").count() >= CASES.len());
    assert!(!plain_log.contains("learnt the stages"), "{plain_log}");
    assert!(!plain_log.contains("without the driver"), "{plain_log}");
}

#[test]
fn a_failing_direct_run_is_answered_by_the_driver() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_swarmccd(tmp.path(), &[]);
    // The same command line first succeeds (and is learnt), then fails.
    let good = gcc("t", PLAIN, &["-O2"]);
    let bad = gcc("t", ERROR, &["-O2"]);
    let good_i = preprocess(tmp.path(), &good);
    let first = remote(&server, &good, &good_i);
    assert_eq!(first.status, 0);
    let bad_i = preprocess(tmp.path(), &bad);
    let failed = remote(&server, &bad, &bad_i);
    let (code, _, stderr) = local(tmp.path(), &bad, &bad_i);
    assert_eq!(failed.status >> 8, code as u32);
    assert_eq!(code, 1);
    assert!(failed.object.is_empty());
    assert!(failed.stderr.contains("undeclared"), "{}", failed.stderr);
    assert_eq!(
        failed.stderr.lines().count(),
        stderr.lines().count(),
        "{}",
        failed.stderr
    );
    let log = server.log_when(|l| l.matches("COMPILE_").count() >= 2);
    assert!(
        log.contains("running the learnt stages without the driver"),
        "{log}"
    );
    assert!(
        log.contains("stages run without the driver did not succeed; running the driver"),
        "{log}"
    );
    // A good job with that command line still runs directly afterwards.
    let again = remote(&server, &good, &good_i);
    assert!(again.object == first.object);
}

#[test]
fn options_the_driver_acts_on_keep_the_driver() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_swarmccd(tmp.path(), &[]);
    let case = gcc("v", PLAIN, &["-O2", "-v"]);
    let doti = preprocess(tmp.path(), &case);
    for _ in 0..2 {
        let r = remote(&server, &case, &doti);
        assert_eq!(r.status, 0);
        // -v: the driver's own report, which only the driver prints.
        assert!(r.stderr.contains("gcc version"), "{}", r.stderr);
    }
    let log = server.log_when(|l| l.matches("COMPILE_").count() >= 2);
    assert!(!log.contains("learnt the stages"), "{log}");
}

/// A whitelisted compiler that is `src` compiled, in `bin`, linked from `wl`.
fn whitelisted_binary(dir: &Path, name: &str, src: &str) -> (std::path::PathBuf, String) {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let c = dir.join(format!("{name}.c"));
    fs::write(&c, src).unwrap();
    let exe = bin.join(name);
    let out = run(Command::new("gcc").arg("-o").arg(&exe).arg(&c));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wl = dir.join("wl");
    fs::create_dir_all(&wl).unwrap();
    symlink(&exe, wl.join(name)).unwrap();
    (wl, format!("{}:/usr/bin:/bin", bin.display()))
}

/// A gcc-compatible driver binary that does not run `-wrapper` programs: it either
/// refuses the option (as clang does) or warns and ignores it (as older clang did).
fn no_wrapper_driver(refuse: bool) -> String {
    let on_wrapper = if refuse {
        "fprintf(stderr, \"nowrapcc: unknown option -wrapper\\n\"); return 1;"
    } else {
        "fprintf(stderr, \"nowrapcc: warning: -wrapper ignored\\n\"); \
         for (int j = i; j + 2 <= argc; j++) argv[j] = argv[j + 2]; argc -= 2; i--; continue;"
    };
    format!(
        "#include <stdio.h>\n#include <string.h>\n#include <unistd.h>\n\
         int main(int argc, char **argv) {{\n\
           for (int i = 1; i < argc; i++) if (!strcmp(argv[i], \"-wrapper\")) {{ {on_wrapper} }}\n\
           argv[0] = \"gcc\"; execvp(\"gcc\", argv); return 127; }}\n"
    )
}

#[test]
fn a_driver_that_refuses_or_ignores_the_recorder_keeps_serving_through_itself() {
    for refuse in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let (wl, path) = whitelisted_binary(tmp.path(), "nowrapcc", &no_wrapper_driver(refuse));
        let server = start_with_whitelist(tmp.path(), &wl, &path, &[]);
        let case = gcc("w", PLAIN, &["-O2"]);
        let doti = preprocess(tmp.path(), &case);
        let (_, object, _) = local(tmp.path(), &case, &doti);
        for _ in 0..3 {
            let r = remote_as(&server, "nowrapcc", &case, &doti);
            assert_eq!(r.status, 0, "refuse {refuse}: {}", r.stderr);
            // Never a word about -wrapper: the answers are the driver's alone.
            assert!(r.stderr.is_empty(), "refuse {refuse}: {}", r.stderr);
            assert!(r.object == object);
        }
        let log = server.log_when(|l| l.matches("COMPILE_OK").count() >= 3);
        // Tried once with the recorder, then the driver alone, for good.
        let alone = log
            .matches("did not run the recorder; running it alone")
            .count();
        assert_eq!(alone, 1, "refuse {refuse}: {log}");
        assert!(!log.contains("learnt the stages"), "{log}");
    }
}

#[test]
fn a_script_in_front_of_gcc_is_always_run() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // The script counts its runs: none may be skipped.
    let count = tmp.path().join("runs");
    fs::write(&count, "").unwrap();
    fs::set_permissions(&count, fs::Permissions::from_mode(0o666)).unwrap();
    let cc = bin.join("countcc");
    fs::write(
        &cc,
        format!(
            "#!/bin/sh\necho run >> {}\nexec gcc \"$@\"\n",
            count.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&cc, fs::Permissions::from_mode(0o755)).unwrap();
    let wl = tmp.path().join("wl");
    fs::create_dir(&wl).unwrap();
    symlink(&cc, wl.join("countcc")).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    // Unconfined: the script writes its count outside the job directory.
    let server = start_with_whitelist(tmp.path(), &wl, &path, &["--no-sandbox"]);
    let case = gcc("s", PLAIN, &["-O2"]);
    let doti = preprocess(tmp.path(), &case);
    for _ in 0..3 {
        let r = remote_as(&server, "countcc", &case, &doti);
        assert_eq!(r.status, 0, "{}", r.stderr);
    }
    assert_eq!(fs::read_to_string(&count).unwrap().lines().count(), 3);
    let log = server.log_when(|l| l.matches("COMPILE_OK").count() >= 3);
    assert!(!log.contains("learnt the stages"), "{log}");
    assert!(!log.contains("without the driver"), "{log}");
}

#[test]
fn a_recorder_the_server_user_cannot_run_turns_direct_stages_off() {
    use std::os::unix::fs::PermissionsExt;
    // Started as root, swarmccd serves as an unprivileged user: a binary in a
    // directory only root may enter can start the server but never run as a recorder.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: needs root (the server must drop to another user)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let hidden = tmp.path().join("root-only");
    fs::create_dir(&hidden).unwrap();
    fs::set_permissions(&hidden, fs::Permissions::from_mode(0o700)).unwrap();
    let bin = hidden.join("swarmccd");
    fs::copy(common::SWARMCCD, &bin).unwrap();
    let server = common::start_swarmccd_bin(&bin, tmp.path(), &[], &[]);
    let log = server.log_when(|l| l.contains("run through their driver"));
    assert!(log.contains("cannot be executed by user"), "{log}");
    let case = gcc("r", PLAIN, &["-O2"]);
    let doti = preprocess(tmp.path(), &case);
    let (_, object, _) = local(tmp.path(), &case, &doti);
    for _ in 0..2 {
        let r = remote(&server, &case, &doti);
        assert_eq!(r.status, 0, "{}", r.stderr);
        assert!(r.object == object);
    }
    let log = server.log_when(|l| l.matches("COMPILE_OK").count() >= 2);
    assert!(!log.contains("learnt the stages"), "{log}");
    assert!(!log.contains("did not run the recorder"), "{log}");
}
