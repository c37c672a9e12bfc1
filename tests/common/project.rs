//! The fixture project (`tests/fixtures/proj`: C and C++ sources, `-MD` dependency
//! files) built by real `make`, and the comparison of a build with a local one.

use super::{assert_success, copy_tree, fixture, run};
use std::fs;
use std::path::Path;
use std::process::Command;

/// Builds the fixture project in `dir` with the given CC/CXX and environment.
pub fn make(dir: &Path, cc: &str, cxx: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new("make");
    cmd.current_dir(dir)
        .args(["-j4", "-s", "prog"])
        .arg(format!("CC={cc}"))
        .arg(format!("CXX={cxx}"))
        .env_remove("MAKEFLAGS")
        .env_remove("DISTCC_VERBOSE")
        .env_remove("DISTCC_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// Local reference build of the fixture.
pub fn reference_build(root: &Path) -> std::path::PathBuf {
    let dir = root.join("local");
    copy_tree(&fixture("proj"), &dir);
    let out = make(&dir, "gcc", "g++", &[]);
    assert_success(&out, "local reference build");
    dir
}

/// Every object and dependency file of the fixture build.
pub fn outputs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join("obj"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn assert_same_outputs(local: &Path, remote: &Path, compare_deps: bool) {
    let keep = |n: &String| compare_deps || n.ends_with(".o");
    let names: Vec<String> = outputs(local).into_iter().filter(keep).collect();
    let got: Vec<String> = outputs(remote).into_iter().filter(keep).collect();
    assert_eq!(names, got, "the same files were produced");
    let mut objects = 0;
    for n in &names {
        let is_dep = n.ends_with(".d");
        if is_dep && !compare_deps {
            continue;
        }
        let a = fs::read(local.join("obj").join(n)).unwrap();
        let b = fs::read(remote.join("obj").join(n)).unwrap();
        assert!(a == b, "obj/{n} differs from the local build");
        if n.ends_with(".o") {
            objects += 1;
        }
    }
    assert_eq!(objects, 6, "all six objects compared");
    // The program links and runs the same.
    let run_prog = |d: &Path| run(Command::new(d.join("prog")).current_dir(d)).stdout;
    assert_eq!(run_prog(local), run_prog(remote));
}
