//! Farm-wide caps, end to end through real make and the real binaries: two concurrent
//! builds of one user never exceed a host's `/LIMIT`, and with the whole farm down
//! `make -j64` never runs more than the local cap at once, nor more than the load limit
//! allows. The compiler is a fake that sleeps and records how many copies of it run at
//! once: these tests are about scheduling, not compiling.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;

/// A "compiler" that answers `-E` at once and otherwise sleeps, counting how many of
/// its compiles overlap (in `$FAKECC_DIR/samples`).
const FAKECC: &str = r#"#!/bin/sh
out=""; prev=""; mode=compile
for a in "$@"; do
  [ "$prev" = "-o" ] && out="$a"
  [ "$a" = "-E" ] && mode=cpp
  prev="$a"
done
if [ "$mode" = cpp ]; then echo "int x;" > "$out"; exit 0; fi
d="$FAKECC_DIR"
touch "$d/running.$$"
ls "$d" | grep -c '^running\.' >> "$d/samples"
sleep "${FAKECC_SLEEP:-0.3}"
rm -f "$d/running.$$"
printf 'obj' > "$out"
"#;

struct Fake {
    /// Directory holding the `fakecc` script.
    bin: PathBuf,
    /// Where it counts concurrent runs.
    counts: PathBuf,
}

fn fake_compiler(root: &Path, name: &str) -> Fake {
    let bin = root.join(format!("{name}-bin"));
    let counts = root.join(format!("{name}-counts"));
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(&counts).unwrap();
    let script = bin.join("fakecc");
    fs::write(&script, FAKECC).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    // The server may run as an unprivileged user: let it write its samples.
    fs::set_permissions(&counts, fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    Fake { bin, counts }
}

fn max_concurrency(fake: &Fake) -> (usize, usize) {
    let text = fs::read_to_string(fake.counts.join("samples")).unwrap_or_default();
    let samples: Vec<usize> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    (samples.iter().copied().max().unwrap_or(0), samples.len())
}

/// A project of `n` one-line sources and a Makefile compiling them with `$(CC)`.
fn project(dir: &Path, n: usize) {
    fs::create_dir_all(dir).unwrap();
    let mut objs = String::new();
    for i in 0..n {
        fs::write(dir.join(format!("j{i}.c")), format!("int f{i};\n")).unwrap();
        objs.push_str(&format!(" j{i}.o"));
    }
    fs::write(
        dir.join("Makefile"),
        format!("all:{objs}\n%.o: %.c\n\t$(CC) -c $< -o $@\n"),
    )
    .unwrap();
    let mut p = Some(dir);
    while let Some(d) = p {
        if d == Path::new("/") {
            break;
        }
        if let Ok(m) = fs::metadata(d) {
            let mode = m.permissions().mode();
            let _ = fs::set_permissions(d, fs::Permissions::from_mode(mode | 0o755));
        }
        p = d.parent();
    }
}

fn make(dir: &Path, jobs: &str, env: &[(&str, String)]) -> std::process::Output {
    let mut cmd = Command::new("make");
    cmd.current_dir(dir)
        .args([jobs, "-s", "all"])
        .arg(format!("CC={SWARMCC} fakecc"))
        .env_remove("MAKEFLAGS")
        .env_remove("DISTCC_VERBOSE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

#[test]
fn farm_down_make_j64_never_exceeds_the_local_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_compiler(tmp.path(), "local");
    let proj = tmp.path().join("proj");
    project(&proj, 64);
    let path = format!("{}:{}", fake.bin.display(), std::env::var("PATH").unwrap());
    let dead = free_port();
    let out = make(
        &proj,
        "-j64",
        &[
            ("PATH", path),
            (
                "DISTCC_HOSTS",
                format!("127.0.0.1:{dead}/16 --localslots=3"),
            ),
            ("DISTCC_DIR", tmp.path().join("ddir").display().to_string()),
            ("FAKECC_DIR", fake.counts.display().to_string()),
            ("FAKECC_SLEEP", "0.2".into()),
        ],
    );
    assert_success(&out, "make -j64 with the farm down");
    for i in 0..64 {
        assert!(proj.join(format!("j{i}.o")).exists(), "j{i}.o built");
    }
    let (max, samples) = max_concurrency(&fake);
    assert_eq!(samples, 64, "every job compiled locally, once");
    assert!(
        max <= 3,
        "at most --localslots=3 local compiles at once, saw {max}"
    );
    assert!(max >= 2, "local compiles still ran in parallel (saw {max})");
}

#[test]
fn two_concurrent_builds_share_one_host_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_compiler(tmp.path(), "remote");
    // The server's whitelist holds `fakecc`; the program itself is found on
    // DISTCCD_PATH (never in a whitelist directory).
    let wl = tmp.path().join("whitelist");
    fs::create_dir_all(&wl).unwrap();
    std::os::unix::fs::symlink(fake.bin.join("fakecc"), wl.join("fakecc")).unwrap();
    fs::set_permissions(&wl, fs::Permissions::from_mode(0o755)).unwrap();
    let search_path = format!("{}:/usr/bin:/bin", fake.bin.display());
    let counts = fake.counts.display().to_string();
    let server = start_swarmccd_env(
        tmp.path(),
        &[
            "--allow",
            "127.0.0.1",
            "--jobs",
            "8",
            "--whitelist-dir",
            wl.to_str().unwrap(),
            // The fake compiler counts itself in a file outside its job directory.
            "--no-sandbox",
        ],
        &[
            ("FAKECC_DIR", &counts),
            ("FAKECC_SLEEP", "0.3"),
            ("DISTCCD_PATH", &search_path),
        ],
    );
    let path = format!("{}:{}", fake.bin.display(), std::env::var("PATH").unwrap());
    let hosts = format!("127.0.0.1:{}/3", server.port);
    let ddir = tmp.path().join("ddir").display().to_string();
    let builds: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            let proj = tmp.path().join(name);
            project(&proj, 12);
            let env = vec![
                ("PATH", path.clone()),
                ("DISTCC_HOSTS", hosts.clone()),
                ("DISTCC_DIR", ddir.clone()),
                ("DISTCC_FALLBACK", "0".to_string()),
                // The client-side fake only answers -E; it must not count.
                (
                    "FAKECC_DIR",
                    tmp.path().join("unused").display().to_string(),
                ),
            ];
            thread::spawn(move || (proj.clone(), make(&proj, "-j16", &env)))
        })
        .collect();
    for b in builds {
        let (proj, out) = b.join().unwrap();
        assert_success(&out, &format!("build in {}", proj.display()));
    }
    // The server logs a job after its reply is out: make can finish before the last
    // lines are written.
    let compiled = |log: &str| log.matches("COMPILE_OK").count();
    let log = server.log_when(|l| compiled(l) >= 24);
    assert_eq!(compiled(&log), 24, "all 24 jobs compiled remotely:\n{log}");
    let (max, samples) = max_concurrency(&fake);
    assert_eq!(samples, 24);
    assert!(
        max <= 3,
        "the host's /3 holds across both builds, saw {max} at once"
    );
    assert!(max == 3, "the cap was reached (saw at most {max})");
}

#[test]
fn load_limit_gates_local_compiles() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_compiler(tmp.path(), "gated");
    let proj = tmp.path().join("proj");
    project(&proj, 8);
    let path = format!("{}:{}", fake.bin.display(), std::env::var("PATH").unwrap());
    let dead = free_port();
    // make starts all 8 wrappers at once (no -l of its own); a load limit below the
    // machine's own runnable count lets only one local compile run at a time (make's
    // rule: the first one always may), and the build still finishes.
    let out = make(
        &proj,
        "-j8",
        &[
            ("PATH", path),
            ("DISTCC_HOSTS", format!("127.0.0.1:{dead}/8")),
            ("DISTCC_DIR", tmp.path().join("ddir").display().to_string()),
            ("SWARMCC_LOAD_LIMIT", "0.5".into()),
            ("FAKECC_DIR", fake.counts.display().to_string()),
            ("FAKECC_SLEEP", "0.2".into()),
        ],
    );
    assert_success(&out, "make -j8 with a load limit");
    let (max, samples) = max_concurrency(&fake);
    assert_eq!(samples, 8);
    assert_eq!(max, 1, "one local compile at a time under the load limit");
}
