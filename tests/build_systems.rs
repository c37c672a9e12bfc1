//! swarmcc driven by real build systems on real (small) projects, each against its own
//! swarmccd: cargo (`RUSTC_WRAPPER=swarmcc`, and the cc crate with `CC="swarmcc gcc"`)
//! and CMake (`CMAKE_<LANG>_COMPILER_LAUNCHER=swarmcc`, with make and with ninja).
//! `DISTCC_FALLBACK=0` and the server's COMPILE_OK count prove the C/C++ compiles
//! really went remote. Masquerade with make is covered by tests/interop.rs.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// The count once at least `want` jobs are logged (a job is logged after its reply is
/// out, so the build can finish first), or as it is after [`PATIENCE`].
fn compile_ok_reaching(server: &Swarmccd, want: usize) -> usize {
    let count = |log: &str| log.matches("COMPILE_OK").count();
    count(&eventually(|| server.log_text(), |l| count(l) >= want))
}

/// Fails with a clear message when a tool the test needs is missing (never a silent
/// skip: integration/run-tests.sh installs them).
fn require_tool(tool: &str, package: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is needed by this test and was not found: apt-get install {package} \
         (integration/run-tests.sh installs it)"
    );
}

/// The environment of a distributed build: the server, a private DISTCC_DIR, no
/// fallback, and nothing inherited that would change what the tools do.
fn distcc_env(cmd: &mut Command, server: &Swarmccd, distcc_dir: &Path) {
    cmd.env("DISTCC_HOSTS", format!("127.0.0.1:{}/4", server.port))
        .env("DISTCC_DIR", distcc_dir)
        .env("DISTCC_FALLBACK", "0")
        .env("DISTCC_BACKOFF_PERIOD", "0");
    for var in [
        "DISTCC_VERBOSE",
        "DISTCC_LOG",
        "DISTCC_SKIP_LOCAL_RETRY",
        "_DISTCC_SAFEGUARD",
        "MAKEFLAGS",
        "MFLAGS",
        "CARGO_MAKEFLAGS",
        "CC",
        "CXX",
        "CFLAGS",
        "CXXFLAGS",
        "CPPFLAGS",
        "LDFLAGS",
        "TARGET_CC",
        "HOST_CC",
        "CC_x86_64_unknown_linux_gnu",
        "CC_x86_64-unknown-linux-gnu",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_TARGET_DIR",
        "CMAKE_C_COMPILER_LAUNCHER",
        "CMAKE_CXX_COMPILER_LAUNCHER",
        "CMAKE_GENERATOR",
    ] {
        cmd.env_remove(var);
    }
}

fn output_text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `cargo build` of a crate whose build script compiles three C files with the cc
/// crate, with `CC="swarmcc gcc"` + `CC_KNOWN_WRAPPER_CUSTOM=swarmcc` and
/// `RUSTC_WRAPPER=swarmcc`: the three C compiles go to the server, rustc (and cargo's
/// rustc probes) run locally through the wrapper, the program runs.
#[test]
fn cargo_cc_crate_distributes_the_c_build() {
    assert_eq!(
        Path::new(SWARMCC).file_name().unwrap(),
        "swarmcc",
        "cc splits CC=\"<wrapper> gcc\" by the wrapper's file name"
    );
    let tmp = tempfile::tempdir().unwrap();
    let server = start_swarmccd(tmp.path(), &["--allow", "127.0.0.1"]);
    let krate = tmp.path().join("cc-crate");
    copy_tree(&fixture("cc-crate"), &krate);
    let ddir = tmp.path().join("distcc");
    let _reaper = AgentReaper(ddir.clone());
    let target_dir = tmp.path().join("target");

    let mut cmd = Command::new(cargo());
    cmd.args(["build", "--offline", "--locked"])
        .current_dir(&krate);
    distcc_env(&mut cmd, &server, &ddir);
    cmd.env("CARGO_TARGET_DIR", &target_dir)
        .env("CC", format!("{SWARMCC} gcc"))
        .env("CC_KNOWN_WRAPPER_CUSTOM", "swarmcc")
        .env("RUSTC_WRAPPER", SWARMCC)
        // build.rs checks that cc split CC into wrapper `swarmcc` and compiler `gcc`.
        .env("CC_FIXTURE_EXPECT_WRAPPER", "swarmcc");
    let out = run(&mut cmd);
    assert_success(&out, "cargo build of the cc fixture through swarmcc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // rustc, run through swarmcc, found cargo's jobserver fds open.
    assert!(
        !stderr.contains("jobserver"),
        "rustc complained about the jobserver:\n{stderr}"
    );
    assert_eq!(
        compile_ok_reaching(&server, 3),
        3,
        "the three C files compiled on the server\n{}\nserver log:\n{}",
        output_text(&out),
        server.log_text()
    );
    let prog = run(&mut Command::new(target_dir.join("debug/cc-fixture")));
    assert_success(&prog, "the built program");
    assert_eq!(
        String::from_utf8_lossy(&prog.stdout),
        "add=5 mul=42 hello from C\n"
    );
}

/// rustc through the wrapper, directly: cargo's probes (`-vV`, `--print`, a crate on
/// stdin) and an `@argfile` compile pass through untouched.
#[test]
fn rustc_probes_and_argfile_pass_through() {
    let tmp = tempfile::tempdir().unwrap();
    let ddir = tmp.path().join("distcc");
    // No host at all: rustc never needs one.
    let wrapped = |args: &[&str]| {
        let mut c = swarmcc(&ddir, "");
        c.arg("rustc").args(args).current_dir(tmp.path());
        c
    };
    let direct = run(Command::new("rustc").arg("-vV"));
    let out = run(&mut wrapped(&["-vV"]));
    assert_success(&out, "swarmcc rustc -vV");
    assert_eq!(out.stdout, direct.stdout);

    let out = run(&mut wrapped(&["--print", "sysroot"]));
    assert_success(&out, "swarmcc rustc --print sysroot");
    assert!(!out.stdout.is_empty());

    // cargo's target-info probe reads a crate from stdin.
    let mut probe = wrapped(&[
        "-",
        "--crate-name",
        "___",
        "--print=file-names",
        "--crate-type",
        "bin",
        "--crate-type",
        "lib",
    ]);
    let out = run(probe.stdin(fs::File::open("/dev/null").unwrap()));
    assert_success(&out, "swarmcc rustc - --print=file-names");
    assert!(String::from_utf8_lossy(&out.stdout).contains("___"));

    // A tiny crate compiled from an @argfile (cargo retries with one when the command
    // line is too long).
    fs::write(
        tmp.path().join("tiny.rs"),
        "fn main() { println!(\"tiny {}\", 6 * 7); }\n",
    )
    .unwrap();
    let out_bin = tmp.path().join("tiny");
    fs::write(
        tmp.path().join("args"),
        format!(
            "--crate-name\ntiny\n--edition\n2021\n--crate-type\nbin\n-o\n{}\n{}\n",
            out_bin.display(),
            tmp.path().join("tiny.rs").display()
        ),
    )
    .unwrap();
    let out = run(&mut wrapped(&["@args"]));
    assert_success(&out, "swarmcc rustc @args");
    let prog = run(&mut Command::new(&out_bin));
    assert_eq!(String::from_utf8_lossy(&prog.stdout), "tiny 42\n");
}

/// A make jobserver reaches a rustc run through swarmcc: the recipe is marked
/// recursive (`+`), so make passes its pipe fds, and the fake `rustc` (a script, found
/// by name) checks that the fds named in MAKEFLAGS are open pipes in its own process.
#[test]
fn jobserver_fds_reach_rustc() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("rustc");
    fs::write(
        &fake,
        r#"#!/bin/bash
auth=$(printf '%s\n' $MAKEFLAGS | grep -E '^--jobserver-(auth|fds)=' | tail -n1)
auth=${auth#*=}
case "$auth" in
  fifo:*) [ -p "${auth#fifo:}" ] || { echo "fifo ${auth#fifo:} missing" >&2; exit 3; } ;;
  *,*) r=${auth%,*}; w=${auth#*,}
       [ -p /proc/self/fd/$r ] && [ -p /proc/self/fd/$w ] || { echo "fds $auth not open pipes" >&2; exit 4; } ;;
  *) echo "no jobserver in MAKEFLAGS: '$MAKEFLAGS'" >&2; exit 5 ;;
esac
echo "jobserver ok: $auth"
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(
        tmp.path().join("Makefile"),
        format!(
            "all: a b\na b:\n\t+@{SWARMCC} {} --crate-name $@\n",
            fake.display()
        ),
    )
    .unwrap();
    let out = run(Command::new("make")
        .args(["-j2", "-s"])
        .current_dir(tmp.path())
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env("DISTCC_HOSTS", "")
        .env("DISTCC_DIR", tmp.path().join("distcc")));
    assert_success(&out, "make -j2 with a rustc behind swarmcc");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("jobserver ok")
            .count(),
        2,
        "{}",
        output_text(&out)
    );
}

/// The CMake fixture's sources: one COMPILE_OK each.
const CMAKE_SOURCES: [&str; 5] = ["add.c", "scale.c", "report.cpp", "words.cpp", "main.cpp"];

/// The server's COMPILE_OK lines for the fixture's own sources (CMake's compiler checks
/// compile files of other names, and may or may not go through the launcher).
fn fixture_compiles(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("COMPILE_OK"))
        .filter(|l| {
            CMAKE_SOURCES
                .iter()
                .any(|n| l.contains(&format!("/{n}")) || l.contains(&format!(" {n}")))
        })
        .count()
}

fn cmake_build(generator: &str) {
    require_tool("cmake", "cmake");
    if generator == "Ninja" {
        require_tool("ninja", "ninja-build");
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = start_swarmccd(tmp.path(), &["--allow", "127.0.0.1"]);
    let src = tmp.path().join("src");
    copy_tree(&fixture("cmake-proj"), &src);
    let build = tmp.path().join("build");
    let ddir = tmp.path().join("distcc");
    let _reaper = AgentReaper(ddir.clone());

    let mut configure = Command::new("cmake");
    configure
        .arg("-S")
        .arg(&src)
        .arg("-B")
        .arg(&build)
        .args(["-G", generator, "-DCMAKE_BUILD_TYPE=Release"])
        .arg(format!("-DCMAKE_C_COMPILER_LAUNCHER={SWARMCC}"))
        .arg(format!("-DCMAKE_CXX_COMPILER_LAUNCHER={SWARMCC}"));
    distcc_env(&mut configure, &server, &ddir);
    let out = run(&mut configure);
    assert_success(&out, &format!("cmake -G {generator}"));

    let mut make = Command::new("cmake");
    make.arg("--build").arg(&build).args(["-j", "4"]);
    distcc_env(&mut make, &server, &ddir);
    let out = run(&mut make);
    assert_success(&out, &format!("cmake --build ({generator})"));
    let log = eventually(
        || server.log_text(),
        |l| fixture_compiles(l) >= CMAKE_SOURCES.len(),
    );
    assert_eq!(
        fixture_compiles(&log),
        CMAKE_SOURCES.len(),
        "every source compiled on the server ({generator})\n{}\nserver log:\n{log}",
        output_text(&out),
    );
    let prog = run(&mut Command::new(build.join("app")));
    assert_success(&prog, "the CMake-built program");
    assert_eq!(
        String::from_utf8_lossy(&prog.stdout),
        "5 words, 26 letters, x3 = 78\n"
    );
}

#[test]
fn cmake_launcher_with_make() {
    cmake_build("Unix Makefiles");
}

#[test]
fn cmake_launcher_with_ninja() {
    cmake_build("Ninja");
}
