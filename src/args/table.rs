//! The static table of gcc/clang options the classifier must understand: each option's
//! name, how its value attaches, and what it means for distribution.
//!
//! Only options that matter are listed: those that take a value (so the value is never
//! taken for an input), those that change the compile mode, output, language or
//! dependency file, those that only the preprocessor needs (stripped before sending),
//! and those that force a local compile (with the reason). Everything else (`-O2`,
//! `-Wall`, `-fPIC`…) is unknown here and passes through unchanged. What to do with a
//! class is `args::classify`'s business; this file only looks names up.

/// How an option's value is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value {
    /// No value; the argument must equal the name (`-c`).
    Bare,
    /// The value is the next argument (`-Xlinker x`).
    Separate,
    /// The value is the rest of the argument, possibly empty (`-Wp,a,b`, `-fdump-tree-all`).
    Joined,
    /// Joined if anything follows the name, else the next argument (`-ofile`, `-o file`).
    Either,
    /// `--name=value` or `--name value`.
    EqOrSeparate,
}

/// What an option means for distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// `-c`: compile to an object.
    StopC,
    /// `-S`: compile to assembly.
    StopS,
    /// `-E`, `-M`, `-MM`: the job is preprocessing only.
    Preprocess,
    /// `-o`: the output file.
    Output,
    /// `-x`: the language of the following inputs.
    Language,
    /// Needed only by the preprocessor; stripped from the remote command.
    Cpp,
    /// `-Wp,` / `-Xpreprocessor`: options handed straight to cc1's preprocessor, which
    /// may include dependency options; stripped from the remote command.
    CppPass,
    /// `-MD` / `-MMD`: write a .d file as a side effect of compiling.
    DepMode,
    /// `-MF`: where the .d file goes.
    DepFile,
    /// `-MT` / `-MQ`: the targets named in the .d file.
    DepTarget,
    /// `-MP` / `-MG`: other dependency-output flags.
    DepFlag,
    /// `-Wa,` / `-Xassembler`: assembler options, local if they ask for listings or deps.
    Asm,
    /// Linker-only; meaningless with `-c`, stripped from the remote command.
    Link,
    /// Kept everywhere (listed only because it takes a separate value).
    Pass,
    /// The compile writes no object (`-fsyntax-only`).
    NoOutput,
    /// Must run locally, for the reason given (read as "<option> <reason>").
    Local(&'static str),
}

#[derive(Debug)]
pub(crate) struct Opt {
    pub name: &'static str,
    pub value: Value,
    pub class: Class,
}

const fn opt(name: &'static str, value: Value, class: Class) -> Opt {
    Opt { name, value, class }
}

use Class::*;
use Value::*;

const CPU: Class = Local("depends on the local CPU");
const PROFILE: Class = Local("reads or writes profile data next to the local files");
const EXTRA_OUTPUT: Class = Local("writes extra output files that a remote compile would lose");
const INFO: Class = Local("prints information instead of compiling");
const LOCAL_FILE: Class = Local("makes the compiler read a local file or program");
const LTO: Class =
    Local("emits compiler-version-specific IR, and the real work happens at link time anyway");
const MODULES: Class = Local("uses C++ module files that exist only locally");
const DUMPS: Class = Local("writes compiler dumps next to the output");

/// Sorted by name in byte order (checked by a test), one entry per name.
pub(crate) static OPTS: &[Opt] = &[
    opt("-###", Bare, INFO),
    opt("--assemble", Bare, StopS),
    opt("--compile", Bare, StopC),
    opt("--coverage", Bare, PROFILE),
    opt("--define-macro", EqOrSeparate, Cpp),
    opt("--dependencies", Bare, Preprocess),
    opt("--entry", EqOrSeparate, Link),
    opt("--help", Joined, INFO),
    opt("--imacros", EqOrSeparate, Cpp),
    opt("--include", EqOrSeparate, Cpp),
    opt("--include-barrier", Bare, Cpp),
    opt("--include-directory", EqOrSeparate, Cpp),
    opt("--include-directory-after", EqOrSeparate, Cpp),
    opt("--include-prefix", EqOrSeparate, Cpp),
    opt("--include-with-prefix", EqOrSeparate, Cpp),
    opt("--include-with-prefix-after", EqOrSeparate, Cpp),
    opt("--include-with-prefix-before", EqOrSeparate, Cpp),
    opt("--language", EqOrSeparate, Language),
    opt("--no-standard-includes", Bare, Cpp),
    opt("--output", EqOrSeparate, Output),
    opt("--param", EqOrSeparate, Pass),
    opt("--preprocess", Bare, Preprocess),
    opt("--print-", Joined, INFO),
    opt("--save-temps", Joined, EXTRA_OUTPUT),
    opt("--specs", EqOrSeparate, LOCAL_FILE),
    opt("--sysroot", EqOrSeparate, Pass),
    opt("--target-help", Bare, INFO),
    opt("--undefine-macro", EqOrSeparate, Cpp),
    opt("--user-dependencies", Bare, Preprocess),
    opt("--version", Bare, INFO),
    opt("--write-dependencies", Bare, DepMode),
    opt("--write-user-dependencies", Bare, DepMode),
    opt("-A", Either, Cpp),
    opt("-B", Either, LOCAL_FILE),
    opt("-C", Bare, Cpp),
    opt("-CC", Bare, Cpp),
    opt("-D", Either, Cpp),
    opt("-E", Bare, Preprocess),
    opt("-F", Either, Cpp),
    opt("-G", Either, Pass),
    opt("-H", Bare, Cpp),
    opt("-I", Either, Cpp),
    opt("-L", Either, Link),
    opt("-M", Bare, Preprocess),
    opt("-MD", Bare, DepMode),
    opt("-MF", Either, DepFile),
    opt("-MG", Bare, DepFlag),
    opt("-MJ", Either, Local("writes a compilation database entry")),
    opt("-MM", Bare, Preprocess),
    opt("-MMD", Bare, DepMode),
    opt("-MP", Bare, DepFlag),
    opt("-MQ", Either, DepTarget),
    opt("-MT", Either, DepTarget),
    opt("-Mmodules", Bare, MODULES),
    opt("-Mno-modules", Bare, MODULES),
    opt(
        "-P",
        Bare,
        Local("drops the line markers that keep the object identical"),
    ),
    opt("-S", Bare, StopS),
    opt("-T", Either, Link),
    opt("-Tbss", Separate, Link),
    opt("-Tdata", Separate, Link),
    opt("-Ttext", Separate, Link),
    opt("-U", Either, Cpp),
    opt("-Wa,", Joined, Asm),
    opt("-Wl,", Joined, Link),
    opt("-Wp,", Joined, CppPass),
    opt("-Xanalyzer", Separate, Pass),
    opt("-Xassembler", Separate, Asm),
    opt("-Xclang", Separate, Pass),
    opt("-Xlinker", Separate, Link),
    opt("-Xpreprocessor", Separate, CppPass),
    opt("-arch", Separate, Pass),
    opt("-aux-info", Separate, EXTRA_OUTPUT),
    opt("-c", Bare, StopC),
    opt("-cxx-isystem", Either, Cpp),
    opt("-d", Joined, DUMPS),
    opt("-dumpbase", Separate, Pass),
    opt("-dumpbase-ext", Separate, Pass),
    opt("-dumpdir", Separate, Pass),
    opt("-dumpfullversion", Bare, INFO),
    opt("-dumpmachine", Bare, INFO),
    opt("-dumpspecs", Bare, INFO),
    opt("-dumpversion", Bare, INFO),
    opt("-e", Either, Link),
    opt("-fauto-profile", Joined, PROFILE),
    opt("-fbranch-probabilities", Bare, PROFILE),
    opt("-fcallgraph-info", Joined, EXTRA_OUTPUT),
    opt("-fcoverage-mapping", Bare, PROFILE),
    opt("-fcs-profile-generate", Joined, PROFILE),
    opt("-fdeps-", Joined, MODULES),
    opt("-fdump-", Joined, DUMPS),
    opt("-finput-charset=", Joined, Cpp),
    opt("-flto", Bare, LTO),
    opt("-flto=", Joined, LTO),
    opt("-fmemory-profile", Joined, PROFILE),
    opt("-fmodule-", Joined, MODULES),
    opt("-fmodules", Joined, MODULES),
    opt(
        "-fpch-preprocess",
        Bare,
        Local("leaves a reference to a local precompiled header in the preprocessed text"),
    ),
    opt("-fplugin-arg-", Joined, LOCAL_FILE),
    opt("-fplugin=", Joined, LOCAL_FILE),
    opt("-fprofile-", Joined, PROFILE),
    opt("-frepo", Bare, Local("needs a local .rpo repository")),
    opt("-fsanitize-blacklist=", Joined, LOCAL_FILE),
    opt("-fsanitize-ignorelist=", Joined, LOCAL_FILE),
    opt("-fsave-optimization-record", Joined, EXTRA_OUTPUT),
    opt("-fstack-usage", Bare, EXTRA_OUTPUT),
    opt("-fsyntax-only", Bare, NoOutput),
    opt("-ftest-coverage", Bare, PROFILE),
    opt("-ftime-trace", Joined, EXTRA_OUTPUT),
    opt("-gcc-toolchain", Separate, LOCAL_FILE),
    opt("-gsplit-dwarf", Joined, EXTRA_OUTPUT),
    opt("-idirafter", Either, Cpp),
    opt("-iframework", Either, Cpp),
    opt("-imacros", Either, Cpp),
    opt("-imultiarch", Either, Cpp),
    opt("-imultilib", Either, Cpp),
    opt("-include", Either, Cpp),
    opt(
        "-include-pch",
        Separate,
        Local("reads a local precompiled header"),
    ),
    opt("-iprefix", Either, Cpp),
    opt("-iquote", Either, Cpp),
    opt("-isysroot", Either, Cpp),
    opt("-isystem", Either, Cpp),
    opt("-isystem-after", Either, Cpp),
    opt("-ivfsoverlay", Either, Cpp),
    opt("-iwithprefix", Either, Cpp),
    opt("-iwithprefixbefore", Either, Cpp),
    opt("-l", Either, Link),
    opt("-march=native", Bare, CPU),
    opt("-mcpu=native", Bare, CPU),
    opt("-mllvm", Separate, Pass),
    opt("-mtune=native", Bare, CPU),
    opt("-nostdinc", Bare, Cpp),
    opt("-nostdinc++", Bare, Cpp),
    opt("-o", Either, Output),
    opt("-print-", Joined, INFO),
    opt("-remap", Bare, Cpp),
    opt("-save-temps", Joined, EXTRA_OUTPUT),
    opt("-specs", EqOrSeparate, LOCAL_FILE),
    opt("-target", Separate, Pass),
    opt("-u", Either, Link),
    opt("-undef", Bare, Cpp),
    opt("-wrapper", Separate, LOCAL_FILE),
    opt("-x", Either, Language),
    opt("-z", Either, Link),
];

/// One argument matched against the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found<'a> {
    /// The option takes no value.
    Bare,
    /// The value is inside the argument.
    Joined(&'a str),
    /// The value is the next argument.
    NextArg,
}

/// Looks `arg` up: the longest table name that matches it with a compatible value form.
pub(crate) fn lookup(arg: &str) -> Option<(&'static Opt, Found<'_>)> {
    // Try prefixes from longest to shortest; the table is sorted, so each probe is a
    // binary search. The first compatible hit is the longest match, as in gcc.
    let mut ends: Vec<usize> = arg.char_indices().map(|(i, _)| i).skip(2).collect();
    ends.push(arg.len());
    for &end in ends.iter().rev() {
        let name = &arg[..end];
        let Ok(pos) = OPTS.binary_search_by(|o| o.name.cmp(name)) else {
            continue;
        };
        let opt = &OPTS[pos];
        let rest = &arg[end..];
        let found = match (opt.value, rest.is_empty()) {
            (Bare, true) => Found::Bare,
            (Separate | Either | EqOrSeparate, true) => Found::NextArg,
            (Joined, _) | (Either, false) => Found::Joined(rest),
            (EqOrSeparate, false) => match rest.strip_prefix('=') {
                Some(value) => Found::Joined(value),
                None => continue,
            },
            (Bare | Separate, false) => continue,
        };
        return Some((opt, found));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_without_duplicates() {
        for pair in OPTS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} must sort before {}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn every_entry_is_an_option_and_local_entries_have_reasons() {
        for o in OPTS {
            assert!(o.name.starts_with('-') && o.name.len() >= 2, "{}", o.name);
            if let Class::Local(why) = o.class {
                assert!(why.len() > 10, "{} needs a real reason", o.name);
                assert!(!why.ends_with('.'), "{}: reasons are fragments", o.name);
            }
            // A joined-only option whose name ends in a letter would swallow longer
            // unrelated options; those must end in '=', ',' or '-' unless listed here.
            if o.value == Value::Joined {
                let tail = o.name.as_bytes()[o.name.len() - 1];
                let whitelisted = [
                    "--help",
                    "--save-temps",
                    "-d",
                    "-fauto-profile",
                    "-fcallgraph-info",
                    "-fcs-profile-generate",
                    "-fmemory-profile",
                    "-fmodules",
                    "-fsave-optimization-record",
                    "-ftime-trace",
                    "-gsplit-dwarf",
                    "-save-temps",
                ];
                assert!(
                    matches!(tail, b'=' | b',' | b'-') || whitelisted.contains(&o.name),
                    "{} is a broad prefix",
                    o.name
                );
            }
        }
    }

    #[test]
    fn lookup_prefers_longest_compatible_name() {
        fn name(a: &str) -> Option<(&'static str, Found<'_>)> {
            lookup(a).map(|(o, f)| (o.name, f))
        }
        assert_eq!(name("-c"), Some(("-c", Found::Bare)));
        assert_eq!(name("-cfoo"), None);
        assert_eq!(name("-o"), Some(("-o", Found::NextArg)));
        assert_eq!(name("-ofoo.o"), Some(("-o", Found::Joined("foo.o"))));
        assert_eq!(name("-include"), Some(("-include", Found::NextArg)));
        assert_eq!(
            name("-includex.h"),
            Some(("-include", Found::Joined("x.h")))
        );
        assert_eq!(
            name("-isystem-after"),
            Some(("-isystem-after", Found::NextArg))
        );
        assert_eq!(
            name("-isystemfoo"),
            Some(("-isystem", Found::Joined("foo")))
        );
        assert_eq!(name("-MMD"), Some(("-MMD", Found::Bare)));
        assert_eq!(name("-MFx.d"), Some(("-MF", Found::Joined("x.d"))));
        assert_eq!(name("-MTx"), Some(("-MT", Found::Joined("x"))));
        assert_eq!(name("-Mx"), None);
        assert_eq!(
            name("--sysroot=/s"),
            Some(("--sysroot", Found::Joined("/s")))
        );
        assert_eq!(name("--sysroot"), Some(("--sysroot", Found::NextArg)));
        assert_eq!(name("--sysrootx"), None);
        assert_eq!(name("-dumpbase"), Some(("-dumpbase", Found::NextArg)));
        assert_eq!(name("-dA"), Some(("-d", Found::Joined("A"))));
        assert_eq!(name("-Tdata"), Some(("-Tdata", Found::NextArg)));
        assert_eq!(name("-Tfoo.ld"), Some(("-T", Found::Joined("foo.ld"))));
        assert_eq!(name("-flto"), Some(("-flto", Found::Bare)));
        assert_eq!(name("-flto=auto"), Some(("-flto=", Found::Joined("auto"))));
        assert_eq!(name("-flto-partition=one"), None);
        assert_eq!(name("-march=native"), Some(("-march=native", Found::Bare)));
        assert_eq!(name("-march=native2"), None);
        assert_eq!(name("-O2"), None);
        assert_eq!(name("-Wall"), None);
        assert_eq!(name("-Wp,-MD,x"), Some(("-Wp,", Found::Joined("-MD,x"))));
        assert_eq!(name("-é"), None);
    }
}
