//! The client runs its local preprocessor (`cc1 -E`) without the gcc driver once it
//! has learnt the driver's command line for jobs of that shape. What the build sees
//! must not change: objects, dependency files, warnings and errors are compared with
//! the same jobs run through the driver (`SWARMCC_DIRECT_CPP=0`) and with local gcc.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::{assert_success, run, start_swarmccd, swarmcc, write_exe, AgentReaper, Swarmccd};

struct Farm {
    _reaper: AgentReaper,
    server: Swarmccd,
    distcc_dir: std::path::PathBuf,
}

fn farm(tmp: &Path) -> Farm {
    let distcc_dir = tmp.join("distcc");
    fs::create_dir_all(&distcc_dir).unwrap();
    let server = start_swarmccd(&tmp.join("server"), &[]);
    Farm {
        _reaper: AgentReaper(distcc_dir.clone()),
        server,
        distcc_dir,
    }
}

impl Farm {
    /// One swarmcc job in `dir`, with its verbose log; `direct` false turns direct
    /// preprocessing off.
    fn job<S: AsRef<std::ffi::OsStr>>(&self, dir: &Path, argv: &[S], direct: bool) -> Job {
        let hosts = format!("127.0.0.1:{}/2", self.server.port);
        let log = self.distcc_dir.join("client.log");
        let _ = fs::remove_file(&log);
        let mut cmd = swarmcc(&self.distcc_dir, &hosts);
        cmd.args(argv)
            .current_dir(dir)
            .env("DISTCC_VERBOSE", "1")
            .env("DISTCC_LOG", &log)
            .env("SWARMCC_DIRECT_CPP", if direct { "1" } else { "0" })
            // Each job must be compiled: the same job again would come from a cache.
            .env("SWARMCC_CACHE", "0");
        let out = run(&mut cmd);
        Job {
            log: fs::read_to_string(&log).unwrap_or_default(),
            out,
        }
    }

    fn plans(&self) -> usize {
        fs::read_dir(self.distcc_dir.join("cpp-plans"))
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0)
    }
}

/// A finished job: its output (stderr holds only the compiler's diagnostics) and
/// swarmcc's log of it.
struct Job {
    out: Output,
    log: String,
}

impl Job {
    fn learnt(&self) -> bool {
        self.log
            .contains("preprocesses commands of this shape: plan")
    }

    fn direct(&self) -> bool {
        self.log
            .contains("preprocessing without the driver, as learnt: /")
    }

    fn remote_ok(&self) -> bool {
        self.log.contains(" ok in ")
    }

    fn diagnostics(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn ok(&self, what: &str) -> &Self {
        assert_success(&self.out, &format!("{what}\nlog:\n{}", self.log));
        self
    }
}

fn write_project(dir: &Path) {
    fs::create_dir_all(dir.join("src/inc")).unwrap();
    fs::create_dir_all(dir.join("build")).unwrap();
    fs::write(dir.join("src/inc/conf.h"), "#define SCALE 3\n").unwrap();
    fs::write(
        dir.join("src/one.c"),
        "#include \"conf.h\"\n#include <stdio.h>\nint one(int x) { return printf(\"%d\", x * SCALE); }\n",
    )
    .unwrap();
    fs::write(
        dir.join("src/two.c"),
        "#include \"conf.h\"\n#warning two is old\nint two(int x) { int unused; return x + SCALE; }\n",
    )
    .unwrap();
    fs::write(
        dir.join("src/three.c"),
        "#include \"conf.h\"\nstatic const char *f = __FILE__; int three(void) { return f[0] + __LINE__; }\n",
    )
    .unwrap();
}

/// A farm of one swarmccd and a small C project in a fresh directory (kept alive by the
/// returned `TempDir`).
fn project() -> (tempfile::TempDir, Farm, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let f = farm(tmp.path());
    let proj = tmp.path().join("proj");
    write_project(&proj);
    (tmp, f, proj)
}

fn flags(file: &str, out: &str) -> Vec<String> {
    [
        "gcc",
        "-O2",
        "-g",
        "-Wall",
        "-MD",
        "-MP",
        "-Isrc/inc",
        "-DNAME=\"x y\"",
        "-c",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("src/{file}.c"), "-o".into(), out.into()])
    .collect()
}

#[test]
fn jobs_of_one_shape_learn_once_and_then_skip_the_driver_with_identical_results() {
    let (_tmp, f, proj) = project();
    for (i, file) in ["one", "two", "three"].iter().enumerate() {
        let argv = flags(file, &format!("build/{file}.o"));
        let read = |ext: &str| fs::read(proj.join(format!("build/{file}.{ext}"))).unwrap();
        // Through the driver first: the reference for this file.
        let by_driver = f.job(&proj, &argv, false);
        by_driver.ok("driver job");
        assert!(by_driver.remote_ok(), "{}", by_driver.log);
        let (obj_driver, dep_driver) = (read("o"), read("d"));

        let job = f.job(&proj, &argv, true);
        job.ok("direct job");
        assert!(job.remote_ok(), "{}", job.log);
        // The first file teaches the plan; the others, same flags, use it.
        assert_eq!(job.learnt(), i == 0, "{}", job.log);
        assert_eq!(job.direct(), i > 0, "{}", job.log);
        assert_eq!(read("o"), obj_driver, "{file}.o");
        assert_eq!(read("d"), dep_driver, "{file}.d");
        assert_eq!(job.diagnostics(), by_driver.diagnostics(), "{file} stderr");

        // And the .d is a local gcc's, and so are the preprocessor's diagnostics
        // (the compiler's lack the source line, remotely, with or without the driver).
        let local = run(Command::new("gcc").args(&argv[1..]).current_dir(&proj));
        assert_success(&local, "local gcc");
        assert_eq!(read("d"), dep_driver, "{file}.d against local gcc");
        let cpp_part = |text: &str| -> String {
            text.lines()
                .take_while(|l| !l.contains("In function"))
                .collect()
        };
        assert_eq!(
            cpp_part(&job.diagnostics()),
            cpp_part(&String::from_utf8_lossy(&local.stderr)),
            "{file} preprocessor diagnostics against local gcc"
        );
    }
    let two = f.job(&proj, &flags("two", "build/two.o"), true);
    assert!(two.direct() && two.diagnostics().contains("#warning two is old"));
    assert_eq!(f.plans(), 1, "one shape, one plan");
}

#[test]
fn a_failing_preprocessor_is_run_again_by_the_driver_and_the_error_shown_once() {
    let (_tmp, f, proj) = project();
    fs::write(proj.join("src/bad.c"), "#include \"missing.h\"\nint b;\n").unwrap();
    let learn = f.job(&proj, &flags("one", "build/one.o"), true);
    assert!(learn.learnt(), "{}", learn.log);
    let argv = flags("bad", "build/bad.o");
    let job = f.job(&proj, &argv, true);
    assert!(job.direct(), "{}", job.log);
    assert!(
        job.log
            .contains("did not succeed that way; running the driver"),
        "{}",
        job.log
    );
    let local = run(Command::new("gcc").args(&argv[1..]).current_dir(&proj));
    assert_eq!(local.status.code(), Some(1));
    assert_eq!(job.out.status.code(), Some(1));
    assert_eq!(job.diagnostics(), String::from_utf8_lossy(&local.stderr));
    assert_eq!(
        job.diagnostics().matches("missing.h: No such file").count(),
        1
    );
}

/// A private gcc installation: a copy of the driver that finds the real cc1 through
/// `../lib/gcc/<triple>/<version>`, as an installed gcc does.
fn private_gcc(root: &Path) -> std::path::PathBuf {
    let real = fs::canonicalize(which::which("gcc").unwrap()).unwrap();
    let probe = run(Command::new(&real).arg("-print-prog-name=cc1"));
    let cc1 = std::path::PathBuf::from(String::from_utf8(probe.stdout).unwrap().trim());
    let version_dir = cc1.parent().unwrap();
    let triple_dir = version_dir.parent().unwrap();
    let lib = root.join("lib/gcc").join(triple_dir.file_name().unwrap());
    fs::create_dir_all(&lib).unwrap();
    std::os::unix::fs::symlink(version_dir, lib.join(version_dir.file_name().unwrap())).unwrap();
    fs::create_dir_all(root.join("bin")).unwrap();
    let gcc = root.join("bin/gcc");
    fs::copy(&real, &gcc).unwrap();
    gcc
}

#[test]
fn a_replaced_driver_is_learnt_again_and_scripts_are_never_learnt() {
    let (tmp, f, proj) = project();
    let gcc = private_gcc(&tmp.path().join("gcc"));
    let job = |driver: &Path, file: &str| {
        let mut argv = flags(file, &format!("build/{file}.o"));
        argv[0] = driver.to_str().unwrap().to_owned();
        let job = f.job(&proj, &argv, true);
        job.ok(file);
        job
    };
    assert!(job(&gcc, "one").learnt());
    assert!(job(&gcc, "two").direct());
    // Upgraded in place: same path, new content and mtime.
    let mut bytes = fs::read(&gcc).unwrap();
    bytes.extend_from_slice(b"\0upgrade");
    fs::write(&gcc, bytes).unwrap();
    let again = job(&gcc, "three");
    assert!(again.learnt(), "not relearnt:\n{}", again.log);
    assert!(job(&gcc, "one").direct());

    // A shell script in front of gcc is run as it is: what it does is its own business.
    let script = tmp.path().join("my-gcc");
    write_exe(&script, "#!/bin/sh\nexec gcc \"$@\"\n");
    for file in ["one", "two"] {
        let out = job(&script, file);
        assert!(!out.learnt() && !out.direct(), "{}", out.log);
        assert!(out.log.contains("preprocessing: "), "{}", out.log);
    }
}

#[test]
fn the_switch_keeps_every_job_on_the_driver() {
    let (_tmp, f, proj) = project();
    for file in ["one", "two"] {
        let job = f.job(&proj, &flags(file, &format!("build/{file}.o")), false);
        job.ok(file);
        assert!(job.remote_ok());
        assert!(!job.learnt() && !job.direct(), "{}", job.log);
    }
    assert_eq!(f.plans(), 0);
}

#[test]
fn cxx_jobs_with_other_flags_get_their_own_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let f = farm(tmp.path());
    let proj = tmp.path().join("proj");
    fs::create_dir_all(&proj).unwrap();
    for name in ["a", "b"] {
        fs::write(
            proj.join(format!("{name}.cpp")),
            "#include <vector>\nint n() { std::vector<int> v{1, 2}; return (int)v.size(); }\n",
        )
        .unwrap();
    }
    for (name, flag) in [("a", "-O1"), ("b", "-O1"), ("a", "-O3"), ("b", "-O3")] {
        let src = format!("{name}.cpp");
        let obj = format!("{name}{flag}.o");
        let local = format!("local-{obj}");
        let job = f.job(
            &proj,
            &["g++", flag, "-std=c++17", "-c", &src, "-o", &obj],
            true,
        );
        job.ok("c++ job");
        assert!(job.remote_ok(), "{}", job.log);
        assert_eq!(job.learnt(), name == "a", "{name} {flag}: {}", job.log);
        assert_eq!(job.direct(), name == "b", "{name} {flag}: {}", job.log);
        assert_success(
            &run(Command::new("g++")
                .args([flag, "-std=c++17", "-c", &src, "-o", &local])
                .current_dir(&proj)),
            "local g++",
        );
        assert_eq!(
            fs::read(proj.join(&obj)).unwrap(),
            fs::read(proj.join(&local)).unwrap(),
            "{obj}"
        );
    }
    assert_eq!(f.plans(), 2);
}
