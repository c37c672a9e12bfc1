//! The argument analyser on arbitrary command lines: `args::classify`, the argv
//! builders of a `RemoteJob`, the server's `check_arguments`, and response-file
//! splitting.
//!
//! Input: NUL-separated arguments appended to `gcc`; a one-byte argument of 0x80 or
//! more stands for an entry of `TOKENS` (options and file names the analyser cares
//! about), which gets the fuzzer past the option table quickly.
//!
//! Checks: no panic; for a remote job, the command sent to the server ends in
//! `-o <output>` and the server, classifying it again, finds the same job (input,
//! output, extension, same remote command, no `.d`); the server's own argv names the
//! temp input exactly once and classifies as a remote compile of temp input to temp
//! output; the preprocessing command is a preprocessing-only command that redirects
//! the `.d` exactly when the compile writes one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmcc::args::{classify, split_response_text, Decision, LocalReason, RemoteJob};
use swarmcc::server::whitelist::check_arguments;
use swarmcc_fuzz::set_max_alloc;

const TOKENS: &str = "\
    -c -S -E -o -oout.o --output=o.o -x c c++ cpp-output -xc --language=c++ none \
    -MD -MMD -MF -MFx.d -MT -MQ -MP -M -MM -Wp,-MD,a.d -Wp,-MMD,b.d,-MT,t -Wp,-MF \
    -Xpreprocessor -I -Iinc -D -DX=1 -include -Xclang -Xlinker -Wl,-z -Wa,-a -g \
    -O2 a.c b.cc x.i y.ii sub/a.c a.o a.s a.h - conftest.c --compile -flto \
    -fsyntax-only -B @rsp -fplugin=x -target --sysroot -specs=x -dumpbase -MJ \
    -Xassembler";

/// Strings no argv element can contain (they have a NUL), so each is unique.
const T_IN: &str = "/fuzz/\0in.i";
const T_OUT: &str = "/fuzz/\0out.o";
const I_OUT: &str = "/fuzz/\0cpp.i";
const D_OUT: &str = "/fuzz/\0deps.d";

fn check_remote(argv: &[String], job: &RemoteJob) {
    assert_eq!(job.argv(), argv);
    assert!(argv[1..].contains(&job.input));
    assert!(job.output != "-" && !job.output.is_empty(), "{argv:?}");

    let remote = job.remote_argv();
    assert_eq!(remote[0], argv[0]);
    assert_eq!(remote[remote.len() - 2..], ["-o", job.output.as_str()]);
    let _ = check_arguments(&remote);

    let server = match classify(&remote) {
        Decision::Remote(s) => s,
        Decision::Local(r) => panic!("server refuses the remote argv {remote:?}: {r}"),
    };
    assert_eq!(server.input, job.input, "server sees another input");
    assert_eq!(server.output, job.output, "server sees another output");
    assert_eq!(server.preprocessed_ext, job.preprocessed_ext);
    assert_eq!(server.dep_file, None, "the server would write a .d");
    assert_eq!(
        server.remote_argv(),
        remote,
        "remote argv is not a fixed point"
    );

    let run = server.server_argv(T_IN, T_OUT);
    assert_eq!(run[run.len() - 2..], ["-o", T_OUT]);
    assert_eq!(run.iter().filter(|a| *a == T_IN).count(), 1);
    // Only the input itself and the output pair are replaced; other arguments that
    // happen to spell the input's name (an -Xclang value, say) stay.
    let count = |v: &[String]| v.iter().filter(|a| **a == job.input).count();
    let replaced = 1 + usize::from(job.output == job.input);
    assert_eq!(count(&run), count(&remote) - replaced);
    match classify(&run) {
        Decision::Remote(r) => {
            assert_eq!((r.input.as_str(), r.output.as_str()), (T_IN, T_OUT));
        }
        Decision::Local(r) => panic!("server's own argv {run:?} is local: {r}"),
    }

    if !job.preprocessed_input {
        let cpp = job.cpp_argv(I_OUT, Some(D_OUT));
        assert_eq!(cpp[0], argv[0]);
        assert!(cpp.contains(&job.input));
        assert_eq!(cpp.iter().filter(|a| *a == I_OUT).count(), 1);
        assert_eq!(
            cpp.iter().any(|a| a.contains(D_OUT)),
            job.dep_file.is_some(),
            "the .d is redirected iff the compile writes one: {cpp:?}"
        );
        assert_eq!(
            classify(&cpp),
            Decision::Local(LocalReason::Preprocess),
            "{cpp:?}"
        );
    }
}

/// Quotes `args` so that `split_response_text` must give them back: every character
/// escaped with a backslash, empty arguments as `''`.
fn quote(args: &[String]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| {
            if a.is_empty() {
                "''".to_string()
            } else {
                a.chars().flat_map(|c| ['\\', c]).collect()
            }
        })
        .collect();
    quoted.join(" ")
}

fuzz_target!(|data: &[u8]| {
    set_max_alloc(256 * data.len() + 64 * 1024);
    let mut argv = vec!["gcc".to_string()];
    for part in data.split(|&b| b == 0) {
        argv.push(match part {
            [b] if *b >= 0x80 => {
                let n = TOKENS.split_whitespace().count();
                let k = usize::from(*b - 0x80) % n;
                TOKENS
                    .split_whitespace()
                    .nth(k)
                    .unwrap_or_default()
                    .to_string()
            }
            _ => String::from_utf8_lossy(part).into_owned(),
        });
    }
    let _ = check_arguments(&argv);
    match classify(&argv) {
        Decision::Remote(job) => check_remote(&argv, &job),
        Decision::Local(reason) => assert!(!reason.to_string().is_empty()),
    }

    let text = String::from_utf8_lossy(data);
    let split = split_response_text(&text);
    assert_eq!(split_response_text(&quote(&split)), split);
});
