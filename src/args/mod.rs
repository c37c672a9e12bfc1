//! Compiler command lines: decide whether a gcc/clang invocation can be compiled remotely,
//! and if so, derive the local preprocessing command and the command sent to the server.
//!
//! Everything here is a pure function of the argv (no I/O, no environment): `@file`
//! expansion takes its reader from the caller, and choosing temp paths, running the
//! preprocessor, and talking to servers are left to `client` and `server`. The option
//! knowledge lives in the table in `table.rs`; the rest is split by concept:
//! `scan` (the one generic loop and the checks that follow from what it found),
//! `passthrough` (cc1 and assembler option lists), `job` (the remote job and its derived
//! command lines), `reason` (why a command stays local), `response` (`@file`
//! expansion) and `filename` (what an extension says). `rustc` is rustc's own command
//! line (cargo's jobs), apart from the C grammar.
//!
//! The `.d` rules below were measured with gcc 12 (see `tests/args_gcc.rs`, which checks
//! them against the real compiler):
//! * driver-level `-MD`/`-MMD`: file = last `-MF`, else `-o` value with the suffix of its
//!   last component replaced by `.d`, else `<input stem>.d` in the cwd; target = the
//!   `-MT`/`-MQ` values if any, else `-o` value make-quoted (the driver adds `-MQ <o>`),
//!   else `<input stem>.o` (cc1's default, even for `-S`);
//! * `-Wp,-MD,FILE` / `-Wp,-MMD,FILE` go straight to cc1: file = FILE, target = cc1's
//!   default `<input stem>.o` with no directory, whatever `-o` says;
//! * with `-E` the driver never adds `-MQ <o>`, which is why `cpp_argv` adds it itself;
//! * an already preprocessed input produces no `.d` at all.

pub mod filename;
mod job;
mod passthrough;
mod reason;
mod response;
pub mod rustc;
mod rustc_env;
mod scan;
mod table;

pub use job::RemoteJob;
pub use reason::LocalReason;
pub use response::{expand_response_files, split_response_text};

/// What `classify` decided: the job to send, or why the command stays local.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Remote(RemoteJob),
    Local(LocalReason),
}

/// Classifies a compiler command line; argv[0] is the compiler. Unknown options pass
/// through (kept in both the cpp and the remote command). Never fails.
pub fn classify(argv: &[String]) -> Decision {
    match scan::scan(argv) {
        Ok(job) => Decision::Remote(job),
        Err(reason) => Decision::Local(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        shell_words::split(line).expect("test command line")
    }

    enum Want {
        /// input, output, dep_file
        Remote(&'static str, &'static str, Option<&'static str>),
        /// The start of the `LocalReason` Debug text (the variant name, maybe more).
        Local(&'static str),
    }
    use Want::{Local as L, Remote as R};

    const CASES: &[(&str, Want)] = &[
        // Plain compiles and derived outputs.
        ("gcc -c a.c", R("a.c", "a.o", None)),
        ("gcc -c a.c -o a.o", R("a.c", "a.o", None)),
        ("gcc -c sub/a.c -o out/x.o", R("sub/a.c", "out/x.o", None)),
        ("gcc -c sub/a.b.c", R("sub/a.b.c", "a.b.o", None)),
        ("gcc -S sub/a.c", R("sub/a.c", "a.s", None)),
        ("gcc -c -S a.c", R("a.c", "a.s", None)),
        ("gcc -S a.c -o out/a.s", R("a.c", "out/a.s", None)),
        ("gcc -c a.c -oout/x.o", R("a.c", "out/x.o", None)),
        (
            "gcc --compile a.c --output=out/x.o",
            R("a.c", "out/x.o", None),
        ),
        (
            "gcc --compile a.c --output out/x.o",
            R("a.c", "out/x.o", None),
        ),
        ("g++ -c a.cpp -o a.o", R("a.cpp", "a.o", None)),
        ("g++ -c a.cc", R("a.cc", "a.o", None)),
        ("g++ -c a.cxx", R("a.cxx", "a.o", None)),
        ("g++ -c a.C", R("a.C", "a.o", None)),
        ("g++ -c a.c++", R("a.c++", "a.o", None)),
        ("g++ -c a.cp", R("a.cp", "a.o", None)),
        ("g++ -c a.CPP", R("a.CPP", "a.o", None)),
        ("gcc -c a.m", R("a.m", "a.o", None)),
        ("g++ -c a.mm", R("a.mm", "a.o", None)),
        ("g++ -c a.M", R("a.M", "a.o", None)),
        ("gcc -c a.i", R("a.i", "a.o", None)),
        ("g++ -c a.ii -o b.o", R("a.ii", "b.o", None)),
        ("gcc -c a.mi", R("a.mi", "a.o", None)),
        ("gcc -x c -c foo.src -o foo.o", R("foo.src", "foo.o", None)),
        ("gcc -xc++ -c foo", R("foo", "foo.o", None)),
        ("gcc -c -x c -x none a.c", R("a.c", "a.o", None)),
        (
            "gcc -c 'sub/sp ace$.c'",
            R("sub/sp ace$.c", "sp ace$.o", None),
        ),
        // Values of options that take one are never inputs.
        (
            "gcc -c -I inc -Iinc2 -D X=1 -DY -U Z -include cfg.h -imacros m.h -isystem sys \
             -idirafter aft -iquote q -iprefix p -iwithprefix w -iwithprefixbefore wb a.c",
            R("a.c", "a.o", None),
        ),
        (
            "gcc -c -L lib -l m -lfoo -Xlinker x.c -T x.ld -u sym -z now a.c",
            R("a.c", "a.o", None),
        ),
        (
            "gcc -c -isysroot / --sysroot /s --sysroot=/t a.c",
            R("a.c", "a.o", None),
        ),
        (
            "gcc -c --param max-inline-insns-single=100 a.c",
            R("a.c", "a.o", None),
        ),
        (
            "gcc -c -Xassembler --noexecstack -Wa,--noexecstack a.c",
            R("a.c", "a.o", None),
        ),
        (
            "clang -c a.c -target x86_64-linux-gnu -Xclang -fno-pch-timestamp",
            R("a.c", "a.o", None),
        ),
        (
            "clang -c a.c -mllvm -inline-threshold=100 -arch x86_64",
            R("a.c", "a.o", None),
        ),
        ("gcc -c -Xpreprocessor -DX a.c", R("a.c", "a.o", None)),
        (
            "gcc -c -dumpbase x.c -dumpdir out/ a.c",
            R("a.c", "a.o", None),
        ),
        (
            "gcc -c a.c -O2 -g -Wall -march=x86-64-v2 -fno-lto -flto-partition=one",
            R("a.c", "a.o", None),
        ),
        ("gcc -c a.c -Wp,-D_FORTIFY_SOURCE=2", R("a.c", "a.o", None)),
        // Dependency files.
        (
            "gcc -c -MD a.c -o out/a.o",
            R("a.c", "out/a.o", Some("out/a.d")),
        ),
        ("gcc -c -MMD sub/a.c", R("sub/a.c", "a.o", Some("a.d"))),
        ("gcc -S -MD sub/a.c", R("sub/a.c", "a.s", Some("a.d"))),
        (
            "gcc -c -MD -o out.dir/x a.c",
            R("a.c", "out.dir/x", Some("out.dir/x.d")),
        ),
        (
            "gcc -c -MD -o out/.x.o a.c",
            R("a.c", "out/.x.o", Some("out/.x.d")),
        ),
        (
            "gcc -c -MD -MF deps/a.d a.c",
            R("a.c", "a.o", Some("deps/a.d")),
        ),
        (
            "gcc -c -MMD -MFdeps/a.d a.c",
            R("a.c", "a.o", Some("deps/a.d")),
        ),
        (
            "gcc -c -MD -MF x.d -MF y.d a.c",
            R("a.c", "a.o", Some("y.d")),
        ),
        (
            "gcc -c -MD -MP -MT foo -MQ bar a.c -o a.o",
            R("a.c", "a.o", Some("a.d")),
        ),
        (
            "gcc -c --write-dependencies a.c",
            R("a.c", "a.o", Some("a.d")),
        ),
        (
            "gcc -c -Wp,-MD,out/.a.o.d a.c -o out/a.o",
            R("a.c", "out/a.o", Some("out/.a.o.d")),
        ),
        (
            "gcc -c -Wp,-MMD,.a.d,-MT,t -Wp,-DX a.c",
            R("a.c", "a.o", Some(".a.d")),
        ),
        (
            "gcc -c -Wp,-MD,a.d,-MFb.d a.c",
            R("a.c", "a.o", Some("b.d")),
        ),
        (
            "gcc -c -Xpreprocessor -MD -Xpreprocessor x.d a.c",
            R("a.c", "a.o", Some("x.d")),
        ),
        ("gcc -c -MD a.ii", R("a.ii", "a.o", None)),
        ("gcc -c -MF x.d a.c", R("a.c", "a.o", None)),
        // Not a single compile.
        ("gcc a.c -o prog", L("NotACompile")),
        ("gcc a.o b.o -o prog", L("NotACompile")),
        ("gcc --version", L("NotACompile")),
        ("gcc -E a.c", L("Preprocess")),
        ("gcc -c -E a.c", L("Preprocess")),
        ("gcc -M a.c", L("Preprocess")),
        ("gcc -c -MM a.c", L("Preprocess")),
        ("gcc -c -MD -M a.c", L("Preprocess")),
        ("gcc -c -Wp,-M a.c", L("Preprocess")),
        ("gcc -c a.c b.c", L("SeveralInputs")),
        ("gcc -c a.c foo.o", L("SeveralInputs")),
        ("gcc -c a.c -x c -", L("SeveralInputs")),
        ("gcc -c", L("NoInput")),
        ("gcc -c -o a.o", L("NoInput")),
        ("gcc -c -", L("StdinInput")),
        ("gcc -c -x c - -o a.o", L("StdinInput")),
        ("gcc -c a.o", L("NotASource")),
        ("gcc -c libfoo.a", L("NotASource")),
        ("gcc -c a.s", L("UnsupportedLanguage(\"assembler")),
        ("gcc -c a.S", L("UnsupportedLanguage(\"assembler")),
        (
            "gcc -c -x assembler-with-cpp a.c",
            L("UnsupportedLanguage(\"assembler"),
        ),
        (
            "gcc -c -xassembler a.c",
            L("UnsupportedLanguage(\"assembler"),
        ),
        ("clang -c -x cuda a.cu", L("UnsupportedLanguage")),
        ("gcc -c a.h", L("UnsupportedLanguage(\"header")),
        (
            "g++ -c -x c++-header a.hpp -o a.hpp.gch",
            L("UnsupportedLanguage(\"header"),
        ),
        ("gfortran -c a.f90", L("UnsupportedLanguage")),
        ("gcc -c a.c -o a.o -o b.o", L("SeveralOutputs")),
        ("gcc -c a.c -o -", L("OutputToStdout")),
        ("gcc -c a.c -o", L("MissingArgument(\"-o")),
        ("gcc -c a.c -I", L("MissingArgument(\"-I")),
        ("gcc -c a.c -Wp,-MD", L("MissingArgument(\"-MD")),
        ("gcc -c conftest.c", L("Conftest")),
        ("gcc -c sub/tmp.conftest.c -o x.o", L("Conftest")),
        ("gcc -c a.c -fsyntax-only", L("NoOutput")),
        ("gcc -c a.c -MD -Wp,-MT,x", L("MixedDependencyOptions")),
        (
            "gcc -c a.c -MF a.d -Xpreprocessor -MD -Xpreprocessor b.d",
            L("MixedDependencyOptions"),
        ),
        // Options that need the local machine.
        (
            "gcc -c a.c -march=native",
            L("LocalOnlyOption(\"-march=native"),
        ),
        (
            "gcc -c a.c -mtune=native",
            L("LocalOnlyOption(\"-mtune=native"),
        ),
        (
            "gcc -c a.c -mcpu=native",
            L("LocalOnlyOption(\"-mcpu=native"),
        ),
        (
            "gcc -c a.c -fprofile-arcs",
            L("LocalOnlyOption(\"-fprofile-arcs"),
        ),
        ("gcc -c a.c -fprofile-generate", L("LocalOnlyOption")),
        ("gcc -c a.c -fprofile-use=prof", L("LocalOnlyOption")),
        ("gcc -c a.c --coverage", L("LocalOnlyOption(\"--coverage")),
        ("gcc -c a.c -ftest-coverage", L("LocalOnlyOption")),
        ("gcc -c a.c -fauto-profile=a.afdo", L("LocalOnlyOption")),
        ("gcc -c a.c -fbranch-probabilities", L("LocalOnlyOption")),
        ("g++ -c a.cc -frepo", L("LocalOnlyOption(\"-frepo")),
        ("gcc -c a.c -Wa,-alh=a.lst", L("LocalOnlyOption(\"-Wa,-alh")),
        (
            "gcc -c a.c -Wa,--noexecstack,--MD,a.dep",
            L("LocalOnlyOption(\"-Wa,"),
        ),
        (
            "gcc -c a.c -Xassembler -adhln",
            L("LocalOnlyOption(\"-Xassembler"),
        ),
        ("gcc -c a.c -save-temps", L("LocalOnlyOption(\"-save-temps")),
        ("gcc -c a.c -save-temps=obj", L("LocalOnlyOption")),
        (
            "gcc -c a.c -fdump-tree-all",
            L("LocalOnlyOption(\"-fdump-tree-all"),
        ),
        ("gcc -c a.c -dA", L("LocalOnlyOption(\"-dA")),
        ("gcc -c a.c -dr", L("LocalOnlyOption(\"-dr")),
        ("clang -c a.c -MJ a.json", L("LocalOnlyOption(\"-MJ")),
        ("clang -c a.c -ftime-trace", L("LocalOnlyOption")),
        (
            "gcc -c a.c -gsplit-dwarf",
            L("LocalOnlyOption(\"-gsplit-dwarf"),
        ),
        (
            "gcc -c a.c -specs=foo.specs",
            L("LocalOnlyOption(\"-specs=foo.specs"),
        ),
        ("gcc -c a.c -specs foo.specs", L("LocalOnlyOption(\"-specs")),
        (
            "gcc -c a.c -fplugin=./p.so",
            L("LocalOnlyOption(\"-fplugin="),
        ),
        ("gcc -c a.c -fplugin-arg-p-x=y", L("LocalOnlyOption")),
        (
            "gcc -c a.c -wrapper gdb,--args",
            L("LocalOnlyOption(\"-wrapper"),
        ),
        ("gcc -c a.c -B /opt/bin", L("LocalOnlyOption(\"-B")),
        ("gcc -c a.c -B/opt/bin/", L("LocalOnlyOption(\"-B/opt")),
        ("gcc -c a.c -flto", L("LocalOnlyOption(\"-flto")),
        ("gcc -c a.c -flto=auto", L("LocalOnlyOption(\"-flto=auto")),
        ("gcc -c a.c -fpch-preprocess", L("LocalOnlyOption")),
        (
            "clang -c a.c -include-pch x.pch",
            L("LocalOnlyOption(\"-include-pch"),
        ),
        ("g++ -c a.cc -fmodules-ts", L("LocalOnlyOption")),
        ("gcc -c a.c -Wp,-P", L("LocalOnlyOption(\"-P")),
        ("gcc -c a.c -P", L("LocalOnlyOption(\"-P")),
        ("gcc -c a.c -fstack-usage", L("LocalOnlyOption")),
        ("gcc -c a.c -aux-info a.aux", L("LocalOnlyOption")),
        ("gcc -c a.c --version", L("LocalOnlyOption(\"--version")),
        ("gcc -c a.c -print-search-dirs", L("LocalOnlyOption")),
        ("gcc -c a.c -###", L("LocalOnlyOption(\"-###")),
    ];

    #[test]
    fn decision_table() {
        assert!(CASES.len() >= 60);
        for (line, want) in CASES {
            let got = classify(&argv(line));
            match (want, &got) {
                (R(input, output, dep), Decision::Remote(job)) => {
                    assert_eq!(
                        (
                            job.input.as_str(),
                            job.output.as_str(),
                            job.dep_file.as_deref()
                        ),
                        (*input, *output, *dep),
                        "{line}"
                    );
                }
                (L(prefix), Decision::Local(reason)) => {
                    let debug = format!("{reason:?}");
                    assert!(debug.starts_with(prefix), "{line}: got {debug}");
                    assert!(!reason.to_string().is_empty());
                }
                _ => panic!("{line}: got {got:?}"),
            }
        }
    }

    #[test]
    fn empty_argv_is_local() {
        assert_eq!(classify(&[]), Decision::Local(LocalReason::EmptyCommand));
    }

    #[test]
    fn reasons_read_well() {
        let shown = |line: &str| match classify(&argv(line)) {
            Decision::Local(r) => r.to_string(),
            Decision::Remote(_) => panic!("{line} is remote"),
        };
        assert_eq!(shown("gcc a.c"), "not a compile (no -c or -S)");
        assert_eq!(
            shown("gcc -c a.c -march=native"),
            "-march=native depends on the local CPU"
        );
        assert!(shown("gcc -c a.c -Wa,-al").contains("listing"));
        assert!(shown("gcc -c a.c -flto").starts_with("-flto "));
    }

    fn job(line: &str) -> RemoteJob {
        match classify(&argv(line)) {
            Decision::Remote(job) => job,
            Decision::Local(r) => panic!("{line}: local: {r}"),
        }
    }

    fn joined(v: Vec<String>) -> String {
        v.join(" ")
    }

    #[test]
    fn remote_argv_strips_cpp_options_and_keeps_input() {
        let j = job(
            "gcc -c -I inc -DX=1 -include cfg.h -MD -MF a.d -MT t -MP -Wp,-DY -O2 \
             -Xpreprocessor -H -lm -Wl,-z,now sub/a.c -o out/a.o",
        );
        assert_eq!(joined(j.remote_argv()), "gcc -c -O2 sub/a.c -o out/a.o");
        let j = job("gcc -c sub/a.c -O2");
        assert_eq!(joined(j.remote_argv()), "gcc -c sub/a.c -O2 -o a.o");
        let j = job("gcc -S -oa.s a.c");
        assert_eq!(joined(j.remote_argv()), "gcc -S a.c -o a.s");
        let j = job("gcc --output=o/a.o -c a.c");
        assert_eq!(joined(j.remote_argv()), "gcc -c a.c -o o/a.o");
    }

    #[test]
    fn remote_argv_rewrites_languages_to_preprocessed() {
        let j = job("gcc -x c -c foo.src");
        assert_eq!(
            joined(j.remote_argv()),
            "gcc -x cpp-output -c foo.src -o foo.o"
        );
        assert_eq!(
            joined(job(&joined(j.remote_argv())).server_argv("t.i", "t.o")),
            "gcc -x cpp-output -c t.i -o t.o"
        );
        assert_eq!(
            joined(job(&joined(j.remote_argv())).server_argv_stdin("cpp-output", "t.o")),
            "gcc -x cpp-output -c -x cpp-output - -o t.o"
        );
        assert_eq!(j.preprocessed_ext, ".i");
        assert!(!j.preprocessed_input);
        let j = job("gcc -xc++ -c a.c");
        assert_eq!(
            joined(j.remote_argv()),
            "gcc -xc++-cpp-output -c a.c -o a.o"
        );
        assert_eq!(j.preprocessed_ext, ".ii");
        let j = job("gcc --language=objective-c -c a.c");
        assert_eq!(
            joined(j.remote_argv()),
            "gcc --language=objective-c-cpp-output -c a.c -o a.o"
        );
        let j = job("g++ -x objective-c++ -c a.c -x c");
        assert_eq!(
            joined(j.remote_argv()),
            "g++ -x objective-c++-cpp-output -c a.c -x c -o a.o"
        );
        assert_eq!(j.preprocessed_ext, ".mii");
        let j = job("gcc -x cpp-output -c a.c");
        assert!(j.preprocessed_input);
        assert_eq!(joined(j.remote_argv()), "gcc -x cpp-output -c a.c -o a.o");
    }

    #[test]
    fn cpp_argv_redirects_output_and_deps() {
        let j = job("gcc -c -MD sub/a.c -o out/a.o -O2");
        assert_eq!(
            joined(j.cpp_argv("/t/x.i", Some("/t/x.d"))),
            "gcc -E -MD sub/a.c -O2 -o /t/x.i -MF /t/x.d -MQ out/a.o"
        );
        assert_eq!(
            joined(j.cpp_argv("/t/x.i", None)),
            "gcc -E -MD sub/a.c -O2 -o /t/x.i -MF out/a.d -MQ out/a.o"
        );
        // User targets: the driver adds no -MQ, and neither do we.
        let j = job("gcc -c -MMD -MF a.d -MT t a.c -o a.o");
        assert_eq!(
            joined(j.cpp_argv("x.i", Some("x.d"))),
            "gcc -E -MMD -MT t a.c -o x.i -MF x.d"
        );
        // No -o: cc1's default target, which -E also uses.
        let j = job("gcc -c -MD a.c");
        assert_eq!(
            joined(j.cpp_argv("x.i", Some("x.d"))),
            "gcc -E -MD a.c -o x.i -MF x.d"
        );
        // No deps at all.
        let j = job("gcc -c -DX a.c -o a.o");
        assert_eq!(
            joined(j.cpp_argv("x.i", Some("x.d"))),
            "gcc -E -DX a.c -o x.i"
        );
    }

    #[test]
    fn cpp_argv_redirects_wp_dependency_files() {
        let j = job("gcc -c -Wp,-MMD,out/.a.o.d,-DX a.c -o out/a.o");
        assert_eq!(
            joined(j.cpp_argv("x.i", Some("/t/x,y.d"))),
            "gcc -E -Xpreprocessor -MMD -Xpreprocessor /t/x,y.d -Xpreprocessor -DX a.c -o x.i"
        );
        assert_eq!(
            joined(j.cpp_argv("x.i", None)),
            "gcc -E -Xpreprocessor -MMD -Xpreprocessor out/.a.o.d -Xpreprocessor -DX a.c -o x.i"
        );
        let j = job("gcc -c -Xpreprocessor -MD -Xpreprocessor a.d -Wp,-MFb.d a.c");
        assert_eq!(
            joined(j.cpp_argv("x.i", Some("t.d"))),
            "gcc -E -Xpreprocessor -MD -Xpreprocessor t.d -Xpreprocessor -MFt.d a.c -o x.i"
        );
    }

    #[test]
    fn server_reclassifies_the_remote_argv() {
        for line in [
            "gcc -c -MD -I inc sub/a.c -o out/a.o",
            "gcc -x c++ -c foo.src -MMD",
            "gcc -S -Wp,-MD,x.d a.cc",
        ] {
            let client = job(line);
            let server = job(&shell_words::join(client.remote_argv()));
            assert_eq!(server.input, client.input, "{line}");
            assert_eq!(server.output, client.output, "{line}");
            assert_eq!(server.dep_file, None, "{line}");
            assert_eq!(server.remote_argv(), client.remote_argv(), "{line}");
            let run = joined(server.server_argv("/t/d_1.i", "/t/d_1.o"));
            assert!(run.ends_with(" -o /t/d_1.o"), "{run}");
            assert_eq!(run.matches("/t/d_1.i").count(), 1, "{run}");
            assert!(!run.contains(&client.input), "{run}");
        }
    }
}
