//! A rustc command line as cargo runs it: whether it can run on a server, where its
//! paths are, and the two texts rustc leaves (`-vV`, dep-info) that decide whether a
//! server's result can be trusted. No I/O.
//!
//! The option grammar is rustc's (getopts): a long option takes its value as
//! `--flag value` or `--flag=value`; a short one as `-X value` or `-Xvalue`; short
//! flags may be grouped (`-vV`, `-gO`). An option rustc does not document is refused,
//! since its meaning (a path? a plugin?) is unknown.
//!
//! Additions to the shared design, none changing its API: `--crate-type` values are
//! split at commas as rustc does; `-C`/`--codegen` is also refused for
//! `linker-flavor`, which picks the linker program; `--help` is refused like
//! `--version`.

use std::path::{Component, Path, PathBuf};

/// `path` without `.` and `..` components, lexically (as rustc's dep-info names
/// files, and as a job names its inputs).
pub fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// What a remote-able rustc command does, from its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RustcJob {
    pub crate_name: String,
    pub crate_types: Vec<String>,
    pub input: String,
    pub out_dir: Option<String>,
    pub output: Option<String>,
    /// `-C extra-filename`, which cargo appends to every output's name.
    pub extra_filename: String,
    pub externs: Vec<(String, Option<String>)>,
    pub dependency_dirs: Vec<String>,
    pub emits: Vec<(String, Option<String>)>,
    pub target: Option<String>,
    /// The job links (a bin, a proc-macro, a test harness), so it needs the
    /// dependencies' code, not just their metadata.
    pub links: bool,
}

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Flag,
    Value,
}

/// rustc's long options (stable ones; the unstable ones need `-Z`, refused anyway).
const LONG: &[(&str, Kind)] = &[
    ("--crate-name", Kind::Value),
    ("--edition", Kind::Value),
    ("--error-format", Kind::Value),
    ("--json", Kind::Value),
    ("--crate-type", Kind::Value),
    ("--emit", Kind::Value),
    ("--cfg", Kind::Value),
    ("--check-cfg", Kind::Value),
    ("--out-dir", Kind::Value),
    ("--extern", Kind::Value),
    ("--cap-lints", Kind::Value),
    ("--target", Kind::Value),
    ("--explain", Kind::Value),
    ("--print", Kind::Value),
    ("--sysroot", Kind::Value),
    ("--remap-path-prefix", Kind::Value),
    ("--color", Kind::Value),
    ("--diagnostic-width", Kind::Value),
    ("--codegen", Kind::Value),
    ("--warn", Kind::Value),
    ("--allow", Kind::Value),
    ("--deny", Kind::Value),
    ("--forbid", Kind::Value),
    ("--force-warn", Kind::Value),
    ("--test", Kind::Flag),
    ("--verbose", Kind::Flag),
    ("--version", Kind::Flag),
    ("--help", Kind::Flag),
];

/// Short options that take a value.
const SHORT_VALUE: &[u8] = b"oLlCZWADF";
/// Short options that are flags (and may be grouped).
const SHORT_FLAG: &[u8] = b"gOhvV";

/// One argument, or an option with its value, as rustc reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item<'a> {
    /// `name` is the option as written without a value (`--out-dir`, `-L`, `-vV`).
    Opt {
        name: &'a str,
        value: Option<&'a str>,
    },
    Input(&'a str),
}

/// Where an option's value sits, so that `map_paths` can rewrite it in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// No value.
    Bare,
    /// The next argument.
    Next,
    /// Inside this argument after this many bytes (`--flag=`, `-L`).
    Attached(usize),
}

/// Reads the argument at `args[i]`: its item, how many arguments it spans, and where
/// its value is.
fn read<'a>(args: &'a [String], i: usize) -> Result<(Item<'a>, usize, Form), String> {
    let arg = args[i].as_str();
    let value_at = |form: Form| -> Result<Option<&'a str>, String> {
        match form {
            Form::Bare => Ok(None),
            Form::Next => match args.get(i + 1) {
                Some(v) => Ok(Some(v.as_str())),
                None => Err(format!("{arg} without its value")),
            },
            Form::Attached(n) => Ok(Some(&arg[n..])),
        }
    };
    let (name, form) = if let Some(long) = arg.strip_prefix("--") {
        let name_len = long.find('=').map_or(arg.len(), |n| n + 2);
        let name = &arg[..name_len];
        let kind = LONG
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
            .ok_or_else(|| format!("unknown option {arg}"))?;
        let form = match (kind, name_len < arg.len()) {
            (Kind::Flag, false) => Form::Bare,
            (Kind::Flag, true) => return Err(format!("{name} takes no value")),
            (Kind::Value, true) => Form::Attached(name_len + 1),
            (Kind::Value, false) => Form::Next,
        };
        (name, form)
    } else if arg.len() > 1 && arg.starts_with('-') {
        let letter = arg.as_bytes()[1];
        if SHORT_VALUE.contains(&letter) {
            let form = if arg.len() > 2 {
                Form::Attached(2)
            } else {
                Form::Next
            };
            (&arg[..2], form)
        } else if arg.bytes().skip(1).all(|c| SHORT_FLAG.contains(&c)) {
            (arg, Form::Bare)
        } else {
            return Err(format!("unknown option {arg}"));
        }
    } else {
        return Ok((Item::Input(arg), 1, Form::Bare));
    };
    let value = value_at(form)?;
    let span = if form == Form::Next { 2 } else { 1 };
    Ok((Item::Opt { name, value }, span, form))
}

/// Every item of a command line, with the index of its first argument and its form.
fn items(args: &[String]) -> Result<Vec<(usize, Item<'_>, Form)>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if args[i].starts_with('@') {
            return Err(format!("argument file {}", args[i]));
        }
        let (item, span, form) = read(args, i)?;
        out.push((i, item, form));
        i += span;
    }
    Ok(out)
}

/// `-C` options whose effect depends on the client machine (its linker, its
/// files outside the job) or that write state outside the outputs.
const LOCAL_CODEGEN: &[&str] = &[
    "incremental",
    "linker",
    "linker-flavor",
    "link-arg",
    "link-args",
    "link-self-contained",
    "linker-plugin-lto",
    "dlltool",
    "profile-generate",
    "profile-use",
];

fn check_codegen(value: &str) -> Result<(), String> {
    let (key, setting) = value.split_once('=').unwrap_or((value, ""));
    if LOCAL_CODEGEN.contains(&key) {
        return Err(format!("-C {key}"));
    }
    // The server's CPU is not the client's: code for it may not run here.
    if key == "target-cpu" && setting == "native" {
        return Err("-C target-cpu=native".into());
    }
    Ok(())
}

fn check_link_dir(value: &str) -> Result<String, String> {
    match value.split_once('=') {
        Some(("dependency", dir)) => Ok(dir.to_owned()),
        Some((kind @ ("native" | "all" | "crate" | "framework"), _)) => Err(format!("-L {kind}=…")),
        _ => Err(format!("-L {value} (no dependency= kind)")),
    }
}

fn parse_emit(value: &str, emits: &mut Vec<(String, Option<String>)>) {
    for part in value.split(',').filter(|p| !p.is_empty()) {
        let entry = match part.split_once('=') {
            Some((kind, path)) => (kind.to_owned(), Some(path.to_owned())),
            None => (part.to_owned(), None),
        };
        emits.push(entry);
    }
}

/// Applies one option to the job, or says why the command must run locally.
fn apply(job: &mut RustcJob, name: &str, value: &str, test: &mut bool) -> Result<(), String> {
    match name {
        "--crate-name" => job.crate_name = value.to_owned(),
        "--crate-type" => job.crate_types.extend(value.split(',').map(str::to_owned)),
        "--emit" => parse_emit(value, &mut job.emits),
        "--out-dir" => job.out_dir = Some(value.to_owned()),
        "-o" => job.output = Some(value.to_owned()),
        "--extern" => job.externs.push(match value.split_once('=') {
            Some((n, p)) => (n.to_owned(), Some(p.to_owned())),
            None => (value.to_owned(), None),
        }),
        "-L" => job.dependency_dirs.push(check_link_dir(value)?),
        "-C" | "--codegen" => {
            check_codegen(value)?;
            if let Some(extra) = value.strip_prefix("extra-filename=") {
                job.extra_filename = extra.to_owned();
            }
        }
        "--target" if value.ends_with(".json") => return Err(format!("--target {value}")),
        "--target" => job.target = Some(value.to_owned()),
        "--test" => *test = true,
        "--print"
        | "--explain"
        | "--sysroot"
        | "--remap-path-prefix"
        | "--version"
        | "--help"
        | "-l"
        | "-Z" => return Err(name.to_owned()),
        flags if flags.starts_with('-') && !flags.starts_with("--") => {
            if let Some(c) = flags.chars().find(|c| "Vh".contains(*c)) {
                return Err(format!("-{c} (in {flags})"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// The `--crate-name` of a command line, whether or not it can run remotely (for the
/// log and the monitor).
pub fn crate_name(args: &[String]) -> Option<&str> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--crate-name" {
            return it.next().map(String::as_str);
        }
        if let Some(name) = a.strip_prefix("--crate-name=") {
            return Some(name);
        }
    }
    None
}

/// Whether the command can run on a server, and what it does; `Err` says why it
/// must run locally, naming the flag.
pub fn classify(args: &[String]) -> Result<RustcJob, String> {
    let mut job = RustcJob::default();
    let mut inputs = Vec::new();
    let mut test = false;
    for (_, item, _) in items(args)? {
        match item {
            Item::Input(path) => inputs.push(path),
            Item::Opt { name, value } => apply(&mut job, name, value.unwrap_or(""), &mut test)?,
        }
    }
    if job.crate_name.is_empty() {
        return Err("no --crate-name".into());
    }
    match inputs[..] {
        [input] if input != "-" && input.ends_with(".rs") => job.input = input.to_owned(),
        [input] => return Err(format!("input {input} is not a .rs file")),
        [] => return Err("no input file".into()),
        _ => return Err(format!("{} input files", inputs.len())),
    }
    if job.crate_types.is_empty() {
        job.crate_types.push("bin".into());
    }
    const REMOTE_TYPES: [&str; 4] = ["lib", "rlib", "bin", "proc-macro"];
    if let Some(t) = job
        .crate_types
        .iter()
        .find(|t| !REMOTE_TYPES.contains(&t.as_str()))
    {
        return Err(format!("--crate-type {t}"));
    }
    if !job.emits.iter().any(|(kind, _)| kind == "dep-info") {
        return Err("--emit without dep-info".into());
    }
    job.links = test
        || job
            .crate_types
            .iter()
            .any(|t| t == "bin" || t == "proc-macro");
    Ok(job)
}

/// The client directories rustc writes its outputs in, absolute.
pub fn output_dirs(job: &RustcJob, cwd: &str) -> Vec<String> {
    let absolute = |p: &str| {
        if p == "." {
            let cwd = cwd.trim_end_matches('/');
            if cwd.is_empty() {
                "/".to_owned()
            } else {
                cwd.to_owned()
            }
        } else if p.starts_with('/') {
            p.to_owned()
        } else {
            format!("{}/{p}", cwd.trim_end_matches('/'))
        }
    };
    let parent = |p: &str| {
        let p = absolute(p);
        match p.rfind('/') {
            Some(0) | None => "/".to_owned(),
            Some(i) => p[..i].to_owned(),
        }
    };
    let mut dirs: Vec<String> = Vec::new();
    dirs.extend(job.out_dir.as_deref().map(absolute));
    dirs.extend(job.output.as_deref().map(parent));
    dirs.extend(
        job.emits
            .iter()
            .filter_map(|(_, p)| p.as_deref().map(parent)),
    );
    if dirs.is_empty() {
        dirs.push(absolute("."));
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Where the job's dep-info goes: `--emit dep-info=PATH`, else `<crate><extra>.d` in
/// the output directory (or `cwd`), absolute.
pub fn dep_info_path(job: &RustcJob, cwd: &str) -> String {
    let cwd = cwd.trim_end_matches('/');
    let absolute = |p: &str| {
        if p.starts_with('/') {
            p.to_owned()
        } else {
            format!("{cwd}/{p}")
        }
    };
    let explicit = job.emits.iter().find(|(kind, _)| kind == "dep-info");
    if let Some((_, Some(p))) = explicit {
        return absolute(p);
    }
    let dir = job
        .out_dir
        .as_deref()
        .map_or_else(|| cwd.to_owned(), absolute);
    format!(
        "{}/{}{}.d",
        dir.trim_end_matches('/'),
        job.crate_name,
        job.extra_filename
    )
}

/// The value with every absolute path in it rewritten, for an option whose value
/// holds one; `None` for the options whose values are not paths.
fn mapped_value(name: &str, value: &str, map: &dyn Fn(&str) -> String) -> Option<String> {
    let path = |p: &str| {
        if p.starts_with('/') {
            map(p)
        } else {
            p.to_owned()
        }
    };
    let after = |value: &str, prefix: &str| -> Option<String> {
        let (head, p) = value.split_once('=')?;
        (prefix.is_empty() || head == prefix).then(|| format!("{head}={}", path(p)))
    };
    match name {
        "--out-dir" | "-o" => Some(path(value)),
        "--extern" => after(value, ""),
        "-L" => after(value, "dependency"),
        "--emit" => {
            let parts: Vec<String> = value
                .split(',')
                .map(|part| after(part, "").unwrap_or_else(|| part.to_owned()))
                .collect();
            Some(parts.join(","))
        }
        _ => None,
    }
}

/// The command line with each absolute path argument (`--out-dir`, `-o`, `--extern
/// name=PATH`, `-L dependency=PATH`, `--emit kind=PATH`, the input) passed through
/// `map`, in the form it was written; every other argument as it was. A command that
/// does not parse is returned unchanged (`classify` refuses it anyway).
pub fn map_paths(args: &[String], map: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut out = args.to_vec();
    let Ok(items) = items(args) else {
        return out;
    };
    for (i, item, form) in items {
        match item {
            Item::Input(p) if p.starts_with('/') => out[i] = map(p),
            Item::Input(_) => {}
            Item::Opt { name, value } => {
                let Some(new) = value.and_then(|v| mapped_value(name, v, map)) else {
                    continue;
                };
                match form {
                    Form::Next => out[i + 1] = new,
                    Form::Attached(n) => out[i] = format!("{}{new}", &args[i][..n]),
                    Form::Bare => {}
                }
            }
        }
    }
    out
}

/// The identity of a toolchain from `rustc -vV`: release, commit, host and LLVM
/// version (when it has one), e.g. `rustc 1.95.0; commit 5980…; host
/// x86_64-unknown-linux-gnu; LLVM 22.1.2`. `None` if the text is not rustc's.
pub fn identity_from_vv(vv: &str) -> Option<String> {
    let field = |key: &str| {
        vv.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if !vv.starts_with("rustc ") {
        return None;
    }
    let mut id = format!(
        "rustc {}; commit {}; host {}",
        field("release")?,
        field("commit-hash")?,
        field("host")?
    );
    if let Some(llvm) = field("LLVM version") {
        id.push_str(&format!("; LLVM {llvm}"));
    }
    Some(id)
}

pub use super::rustc_env::{allowed_on_server, build_script_env, forwarded_env, mapped_env};

/// What a rustc dep-info file says a compile read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DepInfo {
    /// Every file read, in first-mention order, without repeats.
    pub files: Vec<String>,
    /// `env!`/`option_env!` lookups: the value seen, `None` when it was unset.
    pub env: Vec<(String, Option<String>)>,
}

/// Splits a rule's text at unescaped spaces, undoing rustc's `\ ` escape.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                word.push(' ');
                chars.next();
            }
            ' ' | '\t' => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The byte index of a rule's separating colon: the first one followed by an
/// unescaped blank or the end (paths may hold colons; rustc escapes only spaces).
fn rule_colon(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    (0..b.len()).find(|&i| b[i] == b':' && matches!(b.get(i + 1), None | Some(b' ' | b'\t')))
}

/// Undoes rustc's escaping of an env-dep value (`\n`, `\r`, `\\`).
fn unescape_env(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Reads rustc's dep-info (`--emit dep-info`): the files of its make rules and its
/// `# env-dep:NAME[=VALUE]` lines. Outputs (the targets of rules with prerequisites)
/// are not files read.
pub fn parse_dep_info(text: &str) -> DepInfo {
    let mut info = DepInfo::default();
    let mut seen = std::collections::HashSet::new();
    let mut add = |files: &mut Vec<String>, f: String| {
        if seen.insert(f.clone()) {
            files.push(f);
        }
    };
    let joined = text.replace("\\\n", " ");
    for line in joined.lines() {
        if let Some(dep) = line.strip_prefix("# env-dep:") {
            let entry = match dep.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(unescape_env(value))),
                None => (dep.to_owned(), None),
            };
            info.env.push(entry);
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some(colon) = rule_colon(line) else {
            continue;
        };
        let prerequisites = words(&line[colon + 1..]);
        if prerequisites.is_empty() {
            for target in words(&line[..colon]) {
                add(&mut info.files, target);
            }
        }
        for p in prerequisites {
            add(&mut info.files, p);
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cargo 1.95's command for a registry library (from `cargo build -v`).
    const SERDE: &str = "--crate-name serde --edition=2021 \
        /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/serde-1.0.228/src/lib.rs \
        --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat \
        --crate-type lib --emit=dep-info,metadata,link -C embed-bitcode=no -C debuginfo=2 \
        --cfg 'feature=\"derive\"' --check-cfg 'cfg(docsrs,test)' \
        --check-cfg 'cfg(feature, values(\"alloc\", \"default\"))' -C metadata=d807d97b2efbfea7 \
        -C extra-filename=-90ea9c81a65cb426 --out-dir /p/target/debug/deps \
        -L dependency=/p/target/debug/deps \
        --extern serde_core=/p/target/debug/deps/libserde_core-f8aaf1f9eab74305.rmeta \
        --extern serde_derive=/p/target/debug/deps/libserde_derive-891070be04d98e11.so \
        --cap-lints allow --cfg if_docsrs_then_no_serde_core";

    /// A proc-macro, with `--extern proc_macro` (no path) and `-C prefer-dynamic`.
    const DERIVE: &str = "--crate-name serde_derive --edition=2021 \
        /r/serde_derive-1.0.229/src/lib.rs --error-format=json --crate-type proc-macro \
        --emit=dep-info,link -C prefer-dynamic -C embed-bitcode=no \
        --cfg 'feature=\"default\"' -C metadata=1e83cad7e3a8e9ca \
        -C extra-filename=-891070be04d98e11 --out-dir /p/target/debug/deps \
        -L dependency=/p/target/debug/deps \
        --extern quote=/p/target/debug/deps/libquote-076c685bd5a54966.rlib \
        --extern proc_macro --cap-lints allow";

    /// A build script: a bin like any other.
    const BUILD_RS: &str = "--crate-name build_script_build --edition=2021 \
        /r/serde-1.0.229/build.rs --error-format=json \
        --json=diagnostic-rendered-ansi,artifacts,future-incompat --crate-type bin \
        --emit=dep-info,link -C embed-bitcode=no -C metadata=b2ca16f253483ba \
        -C extra-filename=-b2abab732441ffc7 --out-dir /p/target/debug/build/serde-b2abab732441ffc7 \
        -L dependency=/p/target/debug/deps --cap-lints allow";

    /// A workspace bin in a debug build: cargo asks for incremental compilation.
    const APP: &str = "--crate-name app --edition=2024 src/main.rs --error-format=json \
        --crate-type bin --emit=dep-info,link -C embed-bitcode=no -C debuginfo=2 \
        -C metadata=93935fa423129295 -C extra-filename=-00146cc7c2cc65d8 \
        --out-dir /p/target/debug/deps -C incremental=/p/target/debug/incremental \
        -L dependency=/p/target/debug/deps \
        --extern serde=/p/target/debug/deps/libserde-90ea9c81a65cb426.rlib";

    fn argv(line: &str) -> Vec<String> {
        shell_words::split(line).unwrap()
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_crate_name_is_found_in_any_command() {
        assert_eq!(
            crate_name(&argv("--crate-name ring x.rs -L native=/o")),
            Some("ring")
        );
        assert_eq!(crate_name(&argv("--crate-name=syn x.rs")), Some("syn"));
        assert_eq!(crate_name(&argv("-vV")), None);
        assert_eq!(crate_name(&argv("x.rs --crate-name")), None);
    }

    #[test]
    fn output_directories_come_from_every_output_option() {
        let job = RustcJob {
            out_dir: Some("/t/deps".into()),
            output: Some("bin/app".into()),
            emits: vec![
                ("dep-info".into(), Some("/t/x.d".into())),
                ("link".into(), None),
            ],
            ..RustcJob::default()
        };
        assert_eq!(output_dirs(&job, "/p/"), ["/p/bin", "/t", "/t/deps"]);
        assert_eq!(output_dirs(&RustcJob::default(), "/p"), ["/p"]);
        let top = RustcJob {
            output: Some("/x".into()),
            ..RustcJob::default()
        };
        assert_eq!(output_dirs(&top, "/p"), ["/"]);
    }

    #[test]
    fn cargo_library_is_remote() {
        let job = classify(&argv(SERDE)).unwrap();
        assert_eq!(job.crate_name, "serde");
        assert_eq!(job.crate_types, ["lib"]);
        assert!(job.input.ends_with("/serde-1.0.228/src/lib.rs"));
        assert_eq!(job.out_dir.as_deref(), Some("/p/target/debug/deps"));
        assert_eq!(job.output, None);
        assert_eq!(job.extra_filename, "-90ea9c81a65cb426");
        assert_eq!(job.externs.len(), 2);
        assert_eq!(job.externs[0].0, "serde_core");
        assert_eq!(job.dependency_dirs, ["/p/target/debug/deps"]);
        let kinds: Vec<_> = job
            .emits
            .iter()
            .map(|(k, p)| (k.as_str(), p.clone()))
            .collect();
        assert_eq!(
            kinds,
            [("dep-info", None), ("metadata", None), ("link", None)]
        );
        assert_eq!(job.target, None);
        assert!(!job.links);
    }

    #[test]
    fn proc_macro_and_build_script_are_remote_and_link() {
        let job = classify(&argv(DERIVE)).unwrap();
        assert_eq!(job.crate_types, ["proc-macro"]);
        assert!(job.links);
        assert_eq!(job.externs[1], ("proc_macro".to_string(), None));
        let job = classify(&argv(BUILD_RS)).unwrap();
        assert_eq!(job.crate_name, "build_script_build");
        assert_eq!(job.crate_types, ["bin"]);
        assert!(job.input.ends_with("build.rs"));
        assert!(job.links);
        let mut test = argv(SERDE);
        test.push("--test".into());
        assert!(classify(&test).unwrap().links);
    }

    #[test]
    fn both_value_forms_are_read() {
        let job = classify(&strs(&[
            "--crate-name=x",
            "--crate-type=lib,rlib",
            "--emit",
            "dep-info=/o/x.d,link=/o/libx.rlib",
            "-Cextra-filename=-1",
            "--codegen=opt-level=3",
            "-L/dev/null",
            "x.rs",
        ]));
        assert_eq!(job.unwrap_err(), "-L /dev/null (no dependency= kind)");
        let job = classify(&strs(&[
            "--crate-name=x",
            "--crate-type=lib,rlib",
            "--emit",
            "dep-info=/o/x.d,link=/o/libx.rlib",
            "-Cextra-filename=-1",
            "--codegen=opt-level=3",
            "-Ldependency=/d",
            "--target=x86_64-unknown-linux-gnu",
            "-gO",
            "-o",
            "/o/libx.rlib",
            "x.rs",
        ]))
        .unwrap();
        assert_eq!(job.crate_name, "x");
        assert_eq!(job.crate_types, ["lib", "rlib"]);
        assert_eq!(job.emits[0], ("dep-info".into(), Some("/o/x.d".into())));
        assert_eq!(job.extra_filename, "-1");
        assert_eq!(job.dependency_dirs, ["/d"]);
        assert_eq!(job.target.as_deref(), Some("x86_64-unknown-linux-gnu"));
        assert_eq!(job.output.as_deref(), Some("/o/libx.rlib"));
        let plain = classify(&strs(&["--crate-name", "x", "--emit=dep-info", "m.rs"])).unwrap();
        assert_eq!(plain.crate_types, ["bin"], "rustc's default");
        assert!(plain.links);
    }

    #[test]
    fn each_refusal_names_its_reason() {
        let base = "--crate-name x --emit=dep-info,link --crate-type lib";
        let refused = |extra: &str, why: &str| {
            let line = format!("{base} {extra}");
            assert_eq!(classify(&argv(&line)).unwrap_err(), why, "{line}");
        };
        refused("x.rs -C incremental=/p/i", "-C incremental");
        refused("x.rs -Cincremental=/p/i", "-C incremental");
        refused("x.rs --codegen incremental=/p/i", "-C incremental");
        refused("x.rs -C linker=/usr/bin/clang", "-C linker");
        refused("x.rs -C linker-flavor=gcc", "-C linker-flavor");
        refused("x.rs -C link-arg=-fuse-ld=lld", "-C link-arg");
        refused("x.rs -C link-args=-s", "-C link-args");
        refused("x.rs -Clink-self-contained=y", "-C link-self-contained");
        refused("x.rs -C profile-generate=/tmp/p", "-C profile-generate");
        refused("x.rs -C profile-use=/tmp/p.profdata", "-C profile-use");
        refused("x.rs -Z unstable-options", "-Z");
        refused("x.rs -Zthreads=8", "-Z");
        refused("x.rs --sysroot /s", "--sysroot");
        refused("x.rs --remap-path-prefix=/a=/b", "--remap-path-prefix");
        refused("x.rs -l ssl", "-l");
        refused("x.rs -lstatic=z", "-l");
        refused("x.rs -L native=/usr/lib", "-L native=…");
        refused("x.rs -C target-cpu=native", "-C target-cpu=native");
        refused(
            "x.rs -C linker-plugin-lto=/p/LLVMgold.so",
            "-C linker-plugin-lto",
        );
        refused("x.rs -Ctarget-cpu=native", "-C target-cpu=native");
        refused("x.rs --codegen target-cpu=native", "-C target-cpu=native");
        refused("x.rs -Lall=/usr/lib", "-L all=…");
        refused("x.rs -L crate=/c", "-L crate=…");
        refused("x.rs -L framework=/f", "-L framework=…");
        refused("x.rs -L /usr/lib", "-L /usr/lib (no dependency= kind)");
        refused("x.rs --target /t/my.json", "--target /t/my.json");
        refused("x.rs --target=my.json", "--target my.json");
        refused("x.rs --print cfg", "--print");
        refused("x.rs --print=sysroot", "--print");
        refused("x.rs --explain E0308", "--explain");
        refused("x.rs -vV", "-V (in -vV)");
        refused("x.rs -V", "-V (in -V)");
        refused("x.rs --version", "--version");
        refused("x.rs --help", "--help");
        refused("x.rs @/tmp/args", "argument file @/tmp/args");
        refused("-", "input - is not a .rs file");
        refused("x.c", "input x.c is not a .rs file");
        refused("", "no input file");
        refused("x.rs y.rs", "2 input files");
        refused("x.rs --crate-type dylib", "--crate-type dylib");
        refused("x.rs --crate-type=cdylib", "--crate-type cdylib");
        refused("x.rs --crate-type staticlib", "--crate-type staticlib");
        refused("x.rs --frobnicate", "unknown option --frobnicate");
        refused("x.rs -Q", "unknown option -Q");
        refused("x.rs --test=yes", "--test takes no value");
        refused("x.rs --out-dir", "--out-dir without its value");
        let no_dep = argv("--crate-name x --emit=metadata,link x.rs");
        assert_eq!(classify(&no_dep).unwrap_err(), "--emit without dep-info");
        let no_emit = argv("--crate-name x x.rs");
        assert_eq!(classify(&no_emit).unwrap_err(), "--emit without dep-info");
        let no_name = argv("--emit=dep-info x.rs");
        assert_eq!(classify(&no_name).unwrap_err(), "no --crate-name");
        assert_eq!(classify(&argv(APP)).unwrap_err(), "-C incremental");
    }

    fn root(p: &str) -> String {
        format!("/R{p}")
    }

    #[test]
    fn map_paths_rewrites_every_absolute_path_in_its_form() {
        let args = strs(&[
            "--crate-name",
            "x",
            "/src/x.rs",
            "--out-dir",
            "/o",
            "--out-dir=/o2",
            "--out-dir=rel",
            "-o",
            "/o/x",
            "-o/o/y",
            "--extern",
            "a=/d/liba.rlib",
            "--extern=b=/d/libb.rlib",
            "--extern",
            "proc_macro",
            "--extern",
            "c=rel/libc.rlib",
            "-L",
            "dependency=/d",
            "-Ldependency=/e",
            "-L",
            "native=/n",
            "--emit",
            "dep-info=/o/x.d,metadata,link=rel/x",
            "--emit=link=/o/z",
            "--cfg",
            "feature=\"/not/a/path\"",
            "-C",
            "metadata=/x",
            "--json=artifacts",
        ]);
        let mapped = map_paths(&args, &root);
        let expected = strs(&[
            "--crate-name",
            "x",
            "/R/src/x.rs",
            "--out-dir",
            "/R/o",
            "--out-dir=/R/o2",
            "--out-dir=rel",
            "-o",
            "/R/o/x",
            "-o/R/o/y",
            "--extern",
            "a=/R/d/liba.rlib",
            "--extern=b=/R/d/libb.rlib",
            "--extern",
            "proc_macro",
            "--extern",
            "c=rel/libc.rlib",
            "-L",
            "dependency=/R/d",
            "-Ldependency=/R/e",
            "-L",
            "native=/n",
            "--emit",
            "dep-info=/R/o/x.d,metadata,link=rel/x",
            "--emit=link=/R/o/z",
            "--cfg",
            "feature=\"/not/a/path\"",
            "-C",
            "metadata=/x",
            "--json=artifacts",
        ]);
        assert_eq!(mapped, expected);
        let relative = argv(APP);
        let mapped = map_paths(&relative, &root);
        assert_eq!(mapped[3], "src/main.rs", "a relative input stays");
        assert!(mapped.contains(&"--out-dir".to_string()));
        assert!(mapped.contains(&"/R/p/target/debug/deps".to_string()));
        assert!(mapped.contains(&"dependency=/R/p/target/debug/deps".to_string()));
        let bad = strs(&["--frobnicate", "/x"]);
        assert_eq!(map_paths(&bad, &root), bad);
    }

    #[test]
    fn identity() {
        let vv = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\n\
            commit-hash: 59807616e1fa2540724bfbac14d7976d7e4a3860\ncommit-date: 2026-04-14\n\
            host: x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";
        assert_eq!(
            identity_from_vv(vv).unwrap(),
            "rustc 1.95.0; commit 59807616e1fa2540724bfbac14d7976d7e4a3860; \
             host x86_64-unknown-linux-gnu; LLVM 22.1.2"
        );
        let no_llvm = vv.replace("LLVM version: 22.1.2\n", "");
        assert!(!identity_from_vv(&no_llvm).unwrap().contains("LLVM"));
        assert_eq!(identity_from_vv(&vv.replace("host:", "hast:")), None);
        assert_eq!(identity_from_vv("gcc (Debian 12.2.0-14) 12.2.0\n"), None);
        assert_eq!(identity_from_vv(""), None);
    }

    #[test]
    fn dep_info_as_rustc_writes_it() {
        // rustc 1.95 `--emit=dep-info,metadata` on `m y.rs` with include_str!("a b.txt"),
        // env!("XDEP") (value "v=1 \ x<newline>y") and option_env!("NOPE_UNSET").
        let text = "my.d: m\\ y.rs a\\ b.txt\n\nlibmy.rmeta: m\\ y.rs a\\ b.txt\n\n\
                    m\\ y.rs:\na\\ b.txt:\n\n# env-dep:NOPE_UNSET\n\
                    # env-dep:XDEP=v=1 \\\\ x\\ny\n";
        let info = parse_dep_info(text);
        assert_eq!(info.files, ["m y.rs", "a b.txt"]);
        assert_eq!(
            info.env,
            [
                ("NOPE_UNSET".to_string(), None),
                ("XDEP".to_string(), Some("v=1 \\ x\ny".to_string())),
            ]
        );
    }

    #[test]
    fn dep_info_odd_cases() {
        let text = "/o/x.d: /s/lib.rs /s/a:b.rs \\\n /s/c.rs\n\n/s/lib.rs:\n/s/a:b.rs:\n\
                    /s/c.rs:\n/s/only-phony.rs:\n# checksum:abc\n# env-dep:E=\n";
        let info = parse_dep_info(text);
        assert_eq!(
            info.files,
            ["/s/lib.rs", "/s/a:b.rs", "/s/c.rs", "/s/only-phony.rs"]
        );
        assert_eq!(info.env, [("E".to_string(), Some(String::new()))]);
        assert_eq!(parse_dep_info(""), DepInfo::default());
    }
}
