//! Proves `args::RemoteJob::{cpp_argv, remote_argv}` against the real gcc/g++: for each
//! command line, a local compile and the distributed path (local cpp, then a simulated
//! server compiling the preprocessed text in another directory) must give byte-identical
//! objects and byte-identical `.d` files.
//!
//! The server simulation here (substituting the input and `-o`) stands in for `server`;
//! it only exercises what `args` promises.

use std::fs;
use std::path::Path;
use std::process::Command;

use swarmcc::args::{self, Decision, RemoteJob};

const A_C: &str = r#"#include <string.h>
#include "h.h"
#ifndef VAL
#define VAL 1
#endif
#ifdef STR
const char *s = STR;
#endif
static int helper(int x) { return x * VAL + H_CONST; }
int f(const char *p) { return helper((int)strlen(p)) + __LINE__; }
const char *file = __FILE__;
"#;

const B_CC: &str = r#"#include <string>
#include <vector>
#include "h.h"
namespace {
struct Init { Init() { v.push_back(H_CONST); } std::vector<int> v; } init;
}
std::string g(const std::string &s) { return s + std::to_string(init.v.size()); }
"#;

/// Command lines run in a fresh workspace (sources in `sub/`, headers in `inc/`,
/// an empty `out/`), written as shell words.
const CASES: &[&str] = &[
    "gcc -c sub/a.c -Iinc -MD",
    "gcc -c sub/a.c -Iinc -MMD",
    "gcc -c sub/a.c -Iinc -MD -o out/x.o",
    "gcc -c sub/a.c -Iinc -MMD -o out/x.o -MF out/dep.d",
    "gcc -c sub/a.c -Iinc -MD -MT foo -MT 'b ar$' -MQ 'q x$' -o out/x.o",
    "gcc -c sub/a.c -Iinc -MD -MQ q1 -MT t1 -MQ q2 -o out/x.o",
    "gcc -c sub/a.c -Iinc -MD -MP -o out/x.o",
    "gcc -c sub/a.c -Iinc -MD -MMD -o out/x.o",
    "gcc -c sub/a.c -Iinc -Wp,-MD,out/.x.o.d -o out/x.o",
    "gcc -c sub/a.c -Iinc -Wp,-MMD,out/.x.o.d,-DVAL=3 -o out/x.o",
    "gcc -c sub/a.c -Iinc -Xpreprocessor -MD -Xpreprocessor out/xp.d -o out/x.o",
    "gcc -c sub/a.c -Iinc -MD -o out.dir/x",
    "gcc -c 'sub/sp ace$x.c' -Iinc -MD -o 'out/o ut$.o'",
    "gcc -c 'sub/sp ace$x.c' -Iinc -MMD -MP",
    "gcc -S sub/a.c -Iinc -MD",
    "gcc -S sub/a.c -Iinc -MD -o out/y.s",
    "gcc -c -Iinc -DVAL=7 -D 'STR=\"s p\"' -include inc/cfg.h sub/a.c -MD -o out/x.o -O2",
    "gcc -c -isystem inc -iquote inc sub/a.c -MD -MF out/dep.d -MT custom",
    "gcc -c -I inc -U VAL -DVAL=2 -O1 sub/a.c -o out/n.o",
    "gcc -x c -c sub/weird.src -Iinc -MD -o out/w.o",
    "gcc -xc -c sub/weird.src -Iinc -MMD",
    "g++ -c sub/b.cc -Iinc -MMD -MP -o out/b.o -O2",
    "g++ -c -x c++ sub/a.c -Iinc -MD -o out/ax.o",
    "g++ -c sub/b.cc -Iinc -MD -o out/b.o -std=c++17 -Wp,-D_GLIBCXX_ASSERTIONS",
    "g++ -S sub/b.cc -I inc -Wp,-MD,out/.b.d",
    "gcc @args.rsp",
    "gcc -c sub/pre.i -MD -o out/p.o",
];

/// Words of a test command line.
fn words(line: &str) -> Vec<String> {
    shell_words::split(line).unwrap()
}

fn setup(dir: &Path) {
    for sub in ["sub", "inc", "out", "out.dir"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    fs::write(dir.join("sub/a.c"), A_C).unwrap();
    fs::write(dir.join("sub/sp ace$x.c"), A_C).unwrap();
    fs::write(dir.join("sub/weird.src"), A_C).unwrap();
    fs::write(dir.join("sub/b.cc"), B_CC).unwrap();
    fs::write(dir.join("inc/h.h"), "#define H_CONST 42\n").unwrap();
    fs::write(dir.join("inc/cfg.h"), "#define CONFIGURED 1\n").unwrap();
    fs::write(
        dir.join("args.rsp"),
        "-c sub/a.c -MMD\n-o 'out/r sp.o' @more.rsp",
    )
    .unwrap();
    fs::write(dir.join("more.rsp"), "-I inc \"-DSTR=\\\"x y\\\"\"").unwrap();
    run(dir, &words("gcc -E sub/a.c -Iinc -o sub/pre.i"));
}

fn run(cwd: &Path, argv: &[String]) {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?} failed in {}:\n{}",
        cwd.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// What the server does: swap the input for its temp file and `-o` for its temp output.
/// Done by hand here, then compared with `RemoteJob::server_argv`.
fn server_argv(remote: &[String], temp_in: &str, temp_out: &str) -> Vec<String> {
    let Decision::Remote(job) = args::classify(remote) else {
        panic!("server refuses {remote:?}");
    };
    let mut out = Vec::new();
    let mut inputs = 0;
    let mut iter = remote.iter();
    while let Some(arg) = iter.next() {
        if arg == "-o" {
            iter.next();
            out.extend(["-o".to_owned(), temp_out.to_owned()]);
        } else if arg.starts_with("-o") {
            out.push(format!("-o{temp_out}"));
        } else if *arg == job.input {
            inputs += 1;
            out.push(temp_in.to_owned());
        } else {
            out.push(arg.clone());
        }
    }
    assert_eq!(inputs, 1, "{remote:?}");
    assert_eq!(out, job.server_argv(temp_in, temp_out));
    out
}

/// Runs one case; returns a description of what differs, if anything.
fn check(line: &str) -> Result<String, String> {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("work");
    // Commas in the client's temp paths make sure nothing splits them (-Wp would).
    let client_tmp = root.path().join("client,tmp");
    let server_tmp = root.path().join("server");
    for d in [&work, &client_tmp, &server_tmp] {
        fs::create_dir_all(d).unwrap();
    }
    setup(&work);

    let original = words(line);
    let argv = args::expand_response_files(&original, &|p: &str| fs::read_to_string(work.join(p)));
    let job: RemoteJob = match args::classify(&argv) {
        Decision::Remote(job) => job,
        Decision::Local(why) => return Err(format!("classified local: {why}")),
    };

    // (a) the local compile, exactly as the user wrote it.
    run(&work, &original);
    let local_obj = read(&work.join(&job.output));
    let local_dep = job.dep_file.as_ref().map(|d| read(&work.join(d)));
    fs::remove_file(work.join(&job.output)).unwrap();
    if let Some(d) = &job.dep_file {
        fs::remove_file(work.join(d)).unwrap();
    }

    // (b) the distributed path: local cpp, then the "server" in its own directory.
    let temp_in = server_tmp.join(format!("distccd_1{}", job.preprocessed_ext));
    let d_tmp = client_tmp.join("swarmcc_1.d");
    let mut cpp_note = String::new();
    if job.preprocessed_input {
        fs::copy(work.join(&job.input), &temp_in).unwrap();
    } else {
        let i_out = client_tmp.join(format!("swarmcc_1{}", job.preprocessed_ext));
        let cpp = job.cpp_argv(path_str(&i_out), Some(path_str(&d_tmp)));
        cpp_note = format!("cpp: {}", shell_words::join(&cpp));
        run(&work, &cpp);
        fs::copy(&i_out, &temp_in).unwrap();
    }
    if let Some(d) = &job.dep_file {
        if work.join(d).exists() {
            return Err(format!("{cpp_note}\nthe cpp run also wrote {d}"));
        }
    }
    let temp_out = server_tmp.join("distccd_1.o");
    let remote = job.remote_argv();
    let server = server_argv(&remote, path_str(&temp_in), path_str(&temp_out));
    run(&server_tmp, &server);

    let mut problems = Vec::new();
    if read(&temp_out) != local_obj {
        problems.push(format!("objects differ ({})", job.output));
    }
    match (&local_dep, d_tmp.exists()) {
        (Some(want), true) => {
            let got = read(&d_tmp);
            if &got != want {
                problems.push(format!(
                    "dep files differ:\n--- local\n{}--- cpp\n{}",
                    String::from_utf8_lossy(want),
                    String::from_utf8_lossy(&got)
                ));
            }
        }
        (Some(_), false) => problems.push("cpp wrote no dep file".to_owned()),
        (None, true) => problems.push("cpp wrote an unexpected dep file".to_owned()),
        (None, false) => {}
    }
    let summary = format!(
        "{cpp_note}\nremote: {}\nserver: {}",
        shell_words::join(&remote),
        shell_words::join(&server)
    );
    if problems.is_empty() {
        Ok(summary)
    } else {
        Err(format!("{summary}\n{}", problems.join("\n")))
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn distributed_compiles_match_local_ones() {
    assert!(CASES.len() >= 15);
    let mut failures = Vec::new();
    for line in CASES {
        match check(line) {
            Ok(summary) => eprintln!("ok: {line}\n{summary}\n"),
            Err(why) => failures.push(format!("FAIL: {line}\n{why}\n")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// The `.d` facts `cpp_argv` relies on, stated directly against gcc so that a future
/// gcc changing them fails loudly here rather than silently in builds.
#[test]
fn gcc_dependency_naming_facts() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    setup(dir);
    let dep = |line: &str, file: &str| -> String {
        run(dir, &words(line));
        let text = fs::read_to_string(dir.join(file)).unwrap();
        fs::remove_file(dir.join(file)).unwrap();
        text.split(':').next().unwrap().to_owned()
    };
    // -MD with -o: .d next to the object, target = the -o value, make-quoted.
    assert_eq!(
        dep("gcc -c sub/a.c -Iinc -MD -o out/x.o", "out/x.d"),
        "out/x.o"
    );
    assert_eq!(
        dep(
            "gcc -c 'sub/sp ace$x.c' -Iinc -MD -o 'out/o ut$.o'",
            "out/o ut$.d"
        ),
        "out/o\\ ut$$.o"
    );
    // Without -o: in the cwd, named after the source; the target is <stem>.o even for -S.
    assert_eq!(dep("gcc -S sub/a.c -Iinc -MD", "a.d"), "a.o");
    // -Wp,-MD goes straight to cc1: the target ignores -o.
    assert_eq!(
        dep(
            "gcc -c sub/a.c -Iinc -Wp,-MD,out/.x.d -o out/x.o",
            "out/.x.d"
        ),
        "a.o"
    );
    // With -E the driver does not add -MQ <o>, which is why cpp_argv must.
    assert_eq!(
        dep("gcc -E sub/a.c -Iinc -MD -o out/x.i -MF out/e.d", "out/e.d"),
        "a.o"
    );
}
