//! Why a command must compile locally: the reasons the classifier can give, and how each
//! reads in a log line. Deciding which reason applies is left to `scan`; the option
//! texts behind `LocalOnlyOption` come from `table`.

use std::fmt;

use super::table::{self, Class};

/// Why a command must run locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalReason {
    /// No `-c` or `-S`: linking, or nothing to do.
    NotACompile,
    /// `-E`, or `-M`/`-MM` (which imply `-E`).
    Preprocess,
    /// No input file at all.
    NoInput,
    /// More than one input file.
    SeveralInputs,
    /// The source comes from standard input (`-`).
    StdinInput,
    /// The input's language is not distributed (assembler, headers/PCH, Fortran…).
    UnsupportedLanguage(String),
    /// An option that needs the local machine; holds the option as given.
    LocalOnlyOption(String),
    /// An autoconf probe (`conftest.c`): cheap, and its failures must be local ones.
    Conftest,
    /// `-o -`.
    OutputToStdout,
    /// `-o ''`: gcc refuses it, and should say so itself.
    EmptyOutput,
    /// The compile writes no object (`-fsyntax-only`).
    NoOutput,
    /// More than one `-o`.
    SeveralOutputs,
    /// An option at the end of the command line lacks its value.
    MissingArgument(String),
    /// `-MD`-style options both directly and inside `-Wp,`/`-Xpreprocessor`, whose
    /// interplay in cc1 we do not reproduce.
    MixedDependencyOptions,
    /// The single input is not a C-family source (an object, a library…).
    NotASource(String),
    /// argv is empty.
    EmptyCommand,
}

impl fmt::Display for LocalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalReason::NotACompile => f.write_str("not a compile (no -c or -S)"),
            LocalReason::Preprocess => f.write_str("preprocessing only (-E, -M or -MM)"),
            LocalReason::NoInput => f.write_str("no input file"),
            LocalReason::SeveralInputs => f.write_str("more than one input file"),
            LocalReason::StdinInput => f.write_str("source read from standard input"),
            LocalReason::UnsupportedLanguage(lang) => {
                write!(f, "language {lang} is not distributed")
            }
            LocalReason::LocalOnlyOption(opt) => write!(f, "{opt} {}", local_why(opt)),
            LocalReason::Conftest => f.write_str("autoconf test program (conftest)"),
            LocalReason::OutputToStdout => f.write_str("output to standard output (-o -)"),
            LocalReason::EmptyOutput => f.write_str("empty output file name (-o '')"),
            LocalReason::NoOutput => f.write_str("the compile writes no object file"),
            LocalReason::SeveralOutputs => f.write_str("more than one -o"),
            LocalReason::MissingArgument(opt) => write!(f, "{opt} is missing its argument"),
            LocalReason::MixedDependencyOptions => f.write_str(
                "dependency options given both directly and through -Wp or -Xpreprocessor",
            ),
            LocalReason::NotASource(input) => {
                write!(f, "{input} is not a C, C++ or Objective-C source")
            }
            LocalReason::EmptyCommand => f.write_str("empty command line"),
        }
    }
}

/// The reason text for a local-only option, from the table.
fn local_why(opt: &str) -> &'static str {
    match table::lookup(opt).map(|(o, _)| o.class) {
        Some(Class::Local(why)) => why,
        Some(Class::Asm) => "asks the assembler for a listing or dependency file",
        _ => "must run locally",
    }
}
