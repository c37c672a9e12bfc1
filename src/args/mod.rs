//! Compiler command lines: decide whether a gcc/clang invocation can be compiled remotely,
//! and if so, derive the local preprocessing command and the command sent to the server.
//!
//! Everything here is a pure function of the argv (no I/O, no environment): `@file`
//! expansion takes its reader from the caller, and choosing temp paths, running the
//! preprocessor, and talking to servers are left to `client` and `server`. The option
//! knowledge lives in the table in `table.rs`; this file has the one generic scanning
//! loop and the rules that follow from what it found.
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
mod table;

use std::fmt;

use filename::Language;
use table::{Class, Found};

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Remote(RemoteJob),
    Local(LocalReason),
}

/// What each argv element becomes in the two derived command lines.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    /// Kept in both (unknown options, code generation flags, the input).
    Keep,
    /// Kept for the preprocessor, dropped from the remote command.
    CppOnly,
    /// `-c`/`-S`: `-E` for the preprocessor, kept remotely.
    Stop,
    /// `-o` and its value: replaced in both derived commands.
    Output,
    /// Driver-level `-MF` and its value: replaced by our own `-MF` for the preprocessor.
    DepFile,
    /// A `-x` language: kept for the preprocessor, this text remotely.
    Language(String),
}

/// A cc1-level (`-Wp,`/`-Xpreprocessor`) dependency-file value that `cpp_argv` redirects.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CppDepFile {
    /// argv index of the `-Wp,` element or of the `-Xpreprocessor` value.
    index: usize,
    /// Position in the comma-separated `-Wp,` list; `None` for `-Xpreprocessor`.
    item: Option<usize>,
    /// Text before the path in the item (`"-MF"` for a joined `-MFfile`, else empty).
    prefix: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJob {
    /// The source file argument as given.
    pub input: String,
    /// The output path the compile writes: the `-o` value, or derived like gcc.
    pub output: String,
    /// The `.d` file a local compile would write, if any.
    pub dep_file: Option<String>,
    /// The input is already preprocessed: no local cpp run is needed.
    pub preprocessed_input: bool,
    /// `".i"`, `".ii"`, `".mi"` or `".mii"`: the extension for the cpp output.
    pub preprocessed_ext: &'static str,
    argv: Vec<String>,
    roles: Vec<Role>,
    input_index: usize,
    /// The user gave `-o` (otherwise `output` is derived by gcc's rules).
    output_given: bool,
    /// `-MD`/`-MMD` given to the driver: `cpp_argv` adds `-MF` (and maybe `-MQ`).
    driver_deps: bool,
    /// Driver-level `-MT`/`-MQ` present: the driver would not add `-MQ <output>`.
    user_targets: bool,
    cpp_dep_files: Vec<CppDepFile>,
}

impl RemoteJob {
    /// The local preprocessing command: `-c`/`-S` become `-E`, `-o` is replaced by
    /// `-o i_out`, and the dependency options are kept, with the `.d` redirected to
    /// `deps_out` (or to `dep_file` when `None`) and its targets pinned to what the
    /// original compile would name. Callers skip this for `preprocessed_input`.
    pub fn cpp_argv(&self, i_out: &str, deps_out: Option<&str>) -> Vec<String> {
        let deps_path = deps_out.or(self.dep_file.as_deref());
        let mut out = Vec::with_capacity(self.argv.len() + 6);
        for (index, (arg, role)) in self.argv.iter().zip(&self.roles).enumerate() {
            match role {
                Role::Keep | Role::CppOnly | Role::Language(_) => {
                    match (deps_path, self.cpp_dep_rewrite(index)) {
                        (Some(path), Some(edits)) => {
                            push_cpp_rewritten(&mut out, arg, &edits, path)
                        }
                        _ => out.push(arg.clone()),
                    }
                }
                Role::Stop => out.push("-E".to_owned()),
                Role::Output | Role::DepFile => {}
            }
        }
        out.push("-o".to_owned());
        out.push(i_out.to_owned());
        if let (true, Some(path)) = (self.driver_deps, deps_path) {
            // The driver passes -MF after its own `-MD <derived>`, so ours wins.
            out.push("-MF".to_owned());
            out.push(path.to_owned());
            if self.output_given && !self.user_targets {
                // What the driver adds for a compile but not for -E.
                out.push("-MQ".to_owned());
                out.push(self.output.clone());
            }
        }
        out
    }

    /// The command for the server: preprocessor-only options removed, `-x` rewritten to
    /// the preprocessed language, the original input name kept (the server substitutes
    /// its temp file), and the output always given as the last two arguments,
    /// `-o <output>`, whatever form the user wrote it in.
    pub fn remote_argv(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.argv.len() + 2);
        for (arg, role) in self.argv.iter().zip(&self.roles) {
            match role {
                Role::Keep | Role::Stop => out.push(arg.clone()),
                Role::Language(text) => out.push(text.clone()),
                Role::CppOnly | Role::DepFile | Role::Output => {}
            }
        }
        out.push("-o".to_owned());
        out.push(self.output.clone());
        out
    }

    /// For the server, on a job classified from the argv it received: that argv with the
    /// input replaced by `temp_input` and the output by `temp_output` (as a final
    /// `-o temp_output`). Nothing else is changed.
    pub fn server_argv(&self, temp_input: &str, temp_output: &str) -> Vec<String> {
        self.server_argv_with(&[temp_input], temp_output)
    }

    /// [`server_argv`](Self::server_argv) with the source read from standard input
    /// (`-x <language> -`), so that the compiler can start before the source arrives.
    pub fn server_argv_stdin(&self, language: &str, temp_output: &str) -> Vec<String> {
        self.server_argv_with(&["-x", language, "-"], temp_output)
    }

    /// The received argv with the input replaced by `input` and the output by a final
    /// `-o temp_output`.
    fn server_argv_with(&self, input: &[&str], temp_output: &str) -> Vec<String> {
        let mut out = Vec::with_capacity(self.argv.len() + input.len() + 1);
        for (index, (arg, role)) in self.argv.iter().zip(&self.roles).enumerate() {
            if index == self.input_index {
                out.extend(input.iter().map(|s| s.to_string()));
            } else if *role != Role::Output {
                out.push(arg.clone());
            }
        }
        out.push("-o".to_owned());
        out.push(temp_output.to_owned());
        out
    }

    /// The expanded argv this job was classified from.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The cc1-level dependency-file values inside argv element `index`, if any.
    fn cpp_dep_rewrite(&self, index: usize) -> Option<Vec<&CppDepFile>> {
        let edits: Vec<&CppDepFile> = self
            .cpp_dep_files
            .iter()
            .filter(|d| d.index == index)
            .collect();
        (!edits.is_empty()).then_some(edits)
    }
}

/// Emits argv element `arg` with its cc1-level dependency-file values replaced by `path`.
/// A `-Wp,` list is re-emitted as `-Xpreprocessor` pairs (the driver feeds both to cc1
/// in the same order), so a path containing a comma cannot be split.
fn push_cpp_rewritten(out: &mut Vec<String>, arg: &str, edits: &[&CppDepFile], path: &str) {
    let Some(list) = arg.strip_prefix("-Wp,") else {
        // An -Xpreprocessor value: the whole element is the item.
        out.push(format!("{}{path}", edits[0].prefix));
        return;
    };
    for (k, item) in list.split(',').enumerate() {
        out.push("-Xpreprocessor".to_owned());
        match edits.iter().find(|d| d.item == Some(k)) {
            Some(d) => out.push(format!("{}{path}", d.prefix)),
            None => out.push(item.to_owned()),
        }
    }
}

/// One argument handed to cc1 through `-Wp,` or `-Xpreprocessor`.
struct CppItem<'a> {
    index: usize,
    item: Option<usize>,
    text: &'a str,
}

/// What the cc1-level items say about dependencies.
#[derive(Default)]
struct CppDeps {
    any: bool,
    mode: bool,
    file: Option<String>,
    files: Vec<CppDepFile>,
}

/// Scans cc1-level options. At this level `-MD`/`-MMD` take the file as a separate
/// argument (that is how `-Wp,-MD,FILE` works), and the last file option wins.
fn scan_cpp_items(items: &[CppItem<'_>]) -> Result<CppDeps, LocalReason> {
    let mut deps = CppDeps::default();
    let mut j = 0;
    while j < items.len() {
        let text = items[j].text;
        let takes_file = matches!(text, "-MD" | "-MMD" | "-MF");
        let takes_target = matches!(text, "-MT" | "-MQ");
        if takes_file || takes_target {
            let value = items
                .get(j + 1)
                .ok_or_else(|| LocalReason::MissingArgument(text.to_owned()))?;
            deps.any = true;
            deps.mode |= text != "-MF" && takes_file;
            if takes_file {
                deps.file = Some(value.text.to_owned());
                deps.files.push(CppDepFile {
                    index: value.index,
                    item: value.item,
                    prefix: "",
                });
            }
            j += 2;
            continue;
        }
        if let Some(file) = text.strip_prefix("-MF") {
            deps.any = true;
            deps.file = Some(file.to_owned());
            deps.files.push(CppDepFile {
                index: items[j].index,
                item: items[j].item,
                prefix: "-MF",
            });
        } else if text.starts_with("-MT")
            || text.starts_with("-MQ")
            || text == "-MP"
            || text == "-MG"
        {
            deps.any = true;
        } else if let Some((opt, _)) = table::lookup(text) {
            match opt.class {
                Class::Preprocess => return Err(LocalReason::Preprocess),
                Class::Local(_) => return Err(LocalReason::LocalOnlyOption(text.to_owned())),
                _ => {}
            }
        }
        j += 1;
    }
    Ok(deps)
}

/// Whether assembler options ask for a listing (`-a…`) or a dependency file (`--MD`),
/// which would be written on the server and lost.
fn asm_wants_local(items: &str, comma_list: bool) -> bool {
    let wants = |item: &str| item.starts_with("-a") || item.starts_with("--MD");
    if comma_list {
        items.split(',').any(wants)
    } else {
        wants(items)
    }
}

/// Classifies a compiler command line; argv[0] is the compiler. Unknown options pass
/// through (kept in both the cpp and the remote command). Never fails.
pub fn classify(argv: &[String]) -> Decision {
    match scan(argv) {
        Ok(job) => Decision::Remote(job),
        Err(reason) => Decision::Local(reason),
    }
}

fn scan(argv: &[String]) -> Result<RemoteJob, LocalReason> {
    if argv.is_empty() {
        return Err(LocalReason::EmptyCommand);
    }
    let mut roles = vec![Role::Keep; argv.len()];
    let mut missing: Option<String> = None;
    let mut preprocess = false;
    let (mut seen_c, mut seen_s) = (false, false);
    let mut first_local: Option<LocalReason> = None;
    let mut outputs: Vec<&str> = Vec::new();
    // (argv index, language in effect) for every non-option argument.
    let mut inputs: Vec<(usize, Option<Language>)> = Vec::new();
    let mut language: Option<Language> = None;
    // (argv index holding the language name, text before the name in that element).
    let mut language_opts: Vec<(usize, String)> = Vec::new();
    let mut cpp_items: Vec<CppItem<'_>> = Vec::new();
    let (mut driver_mode, mut driver_any, mut user_targets) = (false, false, false);
    let mut driver_mf: Option<&str> = None;

    let mut i = 1;
    while i < argv.len() {
        let arg = argv[i].as_str();
        if !arg.starts_with('-') || arg == "-" {
            inputs.push((i, language));
            i += 1;
            continue;
        }
        let Some((opt, found)) = table::lookup(arg) else {
            i += 1; // unknown: passes through
            continue;
        };
        // The value and the argv index it lives in (the next one for separate values).
        let (value, value_index) = match found {
            Found::Bare => ("", i),
            Found::Joined(v) => (v, i),
            Found::NextArg => match argv.get(i + 1) {
                Some(v) => (v.as_str(), i + 1),
                None => {
                    missing.get_or_insert_with(|| arg.to_owned());
                    break;
                }
            },
        };
        let role = match opt.class {
            Class::StopC => {
                seen_c = true;
                Role::Stop
            }
            Class::StopS => {
                seen_s = true;
                Role::Stop
            }
            Class::Preprocess => {
                preprocess = true;
                Role::Keep
            }
            Class::Output => {
                outputs.push(value);
                Role::Output
            }
            Class::Language => {
                language = Language::from_x(value);
                let prefix = if value_index == i {
                    arg[..arg.len() - value.len()].to_owned()
                } else {
                    String::new()
                };
                language_opts.push((value_index, prefix));
                Role::Keep
            }
            Class::Cpp | Class::Link => Role::CppOnly,
            Class::CppPass => {
                if value_index == i {
                    for (k, text) in value.split(',').enumerate() {
                        cpp_items.push(CppItem {
                            index: i,
                            item: Some(k),
                            text,
                        });
                    }
                } else {
                    cpp_items.push(CppItem {
                        index: value_index,
                        item: None,
                        text: value,
                    });
                }
                Role::CppOnly
            }
            Class::DepMode => {
                driver_mode = true;
                driver_any = true;
                Role::CppOnly
            }
            Class::DepFile => {
                driver_any = true;
                driver_mf = Some(value);
                Role::DepFile
            }
            Class::DepTarget => {
                driver_any = true;
                user_targets = true;
                Role::CppOnly
            }
            Class::DepFlag => {
                driver_any = true;
                Role::CppOnly
            }
            Class::Asm => {
                if asm_wants_local(value, value_index == i) {
                    first_local.get_or_insert_with(|| LocalReason::LocalOnlyOption(arg.to_owned()));
                }
                Role::Keep
            }
            Class::Pass => Role::Keep,
            Class::NoOutput => {
                first_local.get_or_insert(LocalReason::NoOutput);
                Role::Keep
            }
            Class::Local(_) => {
                first_local.get_or_insert_with(|| LocalReason::LocalOnlyOption(arg.to_owned()));
                Role::Keep
            }
        };
        roles[i] = role.clone();
        roles[value_index] = role;
        i = value_index + 1;
    }

    // The order of these checks only decides which reason is reported.
    if let Some(opt) = missing {
        return Err(LocalReason::MissingArgument(opt));
    }
    if preprocess {
        return Err(LocalReason::Preprocess);
    }
    if !seen_c && !seen_s {
        return Err(LocalReason::NotACompile);
    }
    let cpp_deps = scan_cpp_items(&cpp_items)?;
    if let Some(reason) = first_local {
        return Err(reason);
    }
    if outputs.len() > 1 {
        return Err(LocalReason::SeveralOutputs);
    }
    let (input_index, input_language) = match inputs.as_slice() {
        [] => return Err(LocalReason::NoInput),
        [one] => *one,
        _ => return Err(LocalReason::SeveralInputs),
    };
    let input = argv[input_index].as_str();
    if input == "-" {
        return Err(LocalReason::StdinInput);
    }
    let lang = match input_language.or_else(|| Language::from_path(input)) {
        Some(lang) if lang.is_distributable() => lang,
        Some(lang) => return Err(LocalReason::UnsupportedLanguage(lang.name().to_owned())),
        None => return Err(LocalReason::NotASource(input.to_owned())),
    };
    let base = filename::basename(input);
    if base.starts_with("conftest.") || base.starts_with("tmp.conftest.") {
        return Err(LocalReason::Conftest);
    }
    let output = match outputs.first() {
        Some(&"-") => return Err(LocalReason::OutputToStdout),
        Some(&"") => return Err(LocalReason::EmptyOutput),
        Some(o) => (*o).to_owned(),
        // -S wins over -c, as in gcc.
        None => filename::default_output(input, if seen_s { ".s" } else { ".o" }),
    };
    if driver_any && cpp_deps.any {
        return Err(LocalReason::MixedDependencyOptions);
    }

    let preprocessed_input = lang.is_preprocessed();
    let dep_file = if preprocessed_input {
        None // cc1 does not run the preprocessor, so nothing is written
    } else if driver_mode {
        Some(match (driver_mf, outputs.first()) {
            (Some(mf), _) => mf.to_owned(),
            (None, Some(o)) => filename::dep_file_for_output(o),
            (None, None) => filename::default_output(input, ".d"),
        })
    } else if cpp_deps.mode {
        cpp_deps.file.clone()
    } else {
        None
    };
    // Without -MD/-MMD a stray -MF is not ours to redirect: keep it as given.
    if !driver_mode {
        for role in roles.iter_mut().filter(|r| **r == Role::DepFile) {
            *role = Role::CppOnly;
        }
    }
    // The server compiles preprocessed text, so a -x naming a source language (only
    // those before the input can matter) must name its preprocessed form; otherwise the
    // server would run cpp again on the .i.
    for (index, prefix) in language_opts {
        if index > input_index {
            continue;
        }
        let pre =
            Language::from_x(&argv[index][prefix.len()..]).and_then(Language::preprocessed_x_name);
        if let Some(pre) = pre {
            roles[index] = Role::Language(format!("{prefix}{pre}"));
        }
    }

    Ok(RemoteJob {
        input: input.to_owned(),
        output,
        dep_file,
        preprocessed_input,
        preprocessed_ext: lang.preprocessed_ext().unwrap_or(".i"),
        argv: argv.to_vec(),
        roles,
        input_index,
        output_given: !outputs.is_empty(),
        driver_deps: driver_mode && !preprocessed_input,
        user_targets,
        cpp_dep_files: if cpp_deps.mode {
            cpp_deps.files
        } else {
            Vec::new()
        },
    })
}

/// How deep `@file` arguments may nest before they are left as literals.
const MAX_RESPONSE_DEPTH: usize = 16;

/// Expands gcc `@file` response-file arguments (recursively, bounded depth, gcc quoting
/// rules: whitespace separates, '…' and "…" quote, backslash escapes) using `read` to get
/// a file's text. A file that cannot be read is left as the literal argument (as gcc does).
pub fn expand_response_files(
    argv: &[String],
    read: &dyn Fn(&str) -> std::io::Result<String>,
) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    for arg in argv {
        expand_one(arg, read, 0, &mut out);
    }
    out
}

fn expand_one(
    arg: &str,
    read: &dyn Fn(&str) -> std::io::Result<String>,
    depth: usize,
    out: &mut Vec<String>,
) {
    let text = match arg.strip_prefix('@') {
        Some(path) if depth < MAX_RESPONSE_DEPTH => read(path).ok(),
        _ => None,
    };
    match text {
        Some(text) => {
            for inner in split_response_text(&text) {
                expand_one(&inner, read, depth + 1, out);
            }
        }
        None => out.push(arg.to_owned()),
    }
}

/// Splits response-file text like libiberty's `buildargv`: whitespace separates
/// arguments outside quotes, `'…'` and `"…"` quote (an empty pair gives an empty
/// argument), and a backslash takes the next character literally, even inside quotes.
pub fn split_response_text(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| is_gcc_space(*c)) {
            chars.next();
        }
        if chars.peek().is_none() {
            return args;
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => {
                    if let Some(next) = chars.next() {
                        arg.push(next);
                    }
                }
                (c, Some(q)) if c == q => quote = None,
                (c, Some(_)) => arg.push(c),
                ('\'' | '"', None) => quote = Some(c),
                (c, None) if is_gcc_space(c) => break,
                (c, None) => arg.push(c),
            }
        }
        args.push(arg);
    }
}

/// C `isspace` in the C locale, which `buildargv` uses.
fn is_gcc_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
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
    fn response_files_expand_recursively_with_gcc_quoting() {
        let read = |path: &str| -> std::io::Result<String> {
            match path {
                "a.rsp" => Ok("-c  'sp ace.c'\n-o \"out dir/x.o\" @b.rsp @missing".into()),
                "b.rsp" => Ok("-DX=\\\"q\\\" '' a\\ b 'it\\'s'".into()),
                "loop.rsp" => Ok("@loop.rsp".into()),
                _ => Err(std::io::ErrorKind::NotFound.into()),
            }
        };
        let got = expand_response_files(&argv("gcc @a.rsp -O2"), &read);
        assert_eq!(
            got,
            [
                "gcc",
                "-c",
                "sp ace.c",
                "-o",
                "out dir/x.o",
                "-DX=\"q\"",
                "",
                "a b",
                "it's",
                "@missing",
                "-O2"
            ]
        );
        assert_eq!(
            expand_response_files(&argv("gcc @loop.rsp"), &read),
            ["gcc", "@loop.rsp"]
        );
        assert_eq!(split_response_text(" \t\n"), Vec::<String>::new());
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
