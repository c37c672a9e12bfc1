//! `swarmcc --scan-includes COMPILER ARGS…`: distcc's "show the files that distcc would
//! send to the remote machine, and exit".
//!
//! distcc answers it only in pump mode (it asks its include server), and otherwise stops
//! with exit 100. swarmcc has no pump mode: what it sends is the preprocessed source,
//! whose text is the source file and every header the preprocessor reads. So it lists
//! those, found by running the job's own local preprocessing command with a dependency
//! file, one per line in distcc's format (`FILE      /abs/path`). A command that would
//! not be distributed at all sends nothing: it is refused with distcc's exit code 100
//! and the reason.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::args::{self, Decision, RemoteJob};
use crate::compiler::{self, Invocation};
use crate::config::ClientConfig;
use crate::exit::ExitCode;

use super::local::{self, CompilerCommand};

/// Runs `--scan-includes` on the compiler command `args`; returns the exit code.
pub fn run(args: &[String], cfg: &ClientConfig) -> i32 {
    if args.is_empty() {
        eprintln!("swarmcc: --scan-includes: missing operand (a compiler command, e.g. swarmcc --scan-includes gcc -c x.c)");
        return ExitCode::BadArguments.code();
    }
    let argv: Vec<String> = std::iter::once("swarmcc".to_string())
        .chain(args.iter().cloned())
        .collect();
    let compiler_argv = match compiler::classify_invocation(&argv, &cfg.path) {
        Invocation::Explicit { compiler_argv } | Invocation::Implicit { compiler_argv } => {
            compiler_argv
        }
        Invocation::Own { .. } | Invocation::Masquerade { .. } => {
            eprintln!("swarmcc: --scan-includes needs a compiler command, not a swarmcc option");
            return ExitCode::BadArguments.code();
        }
    };
    let expanded = args::expand_response_files(&compiler_argv, &|p| std::fs::read_to_string(p));
    let job = match args::classify(&expanded) {
        Decision::Remote(job) => job,
        Decision::Local(reason) => {
            eprintln!(
                "swarmcc: --scan-includes: this command would not be distributed ({reason}), \
                 so nothing would be sent"
            );
            return ExitCode::Distcc.code();
        }
    };
    if job.preprocessed_input {
        return print_files(&[PathBuf::from(&job.input)]);
    }
    let self_exe = std::env::current_exe().unwrap_or_default();
    let program = match compiler::find_real_compiler(&compiler_argv[0], &cfg.path, &self_exe) {
        Ok(p) => p,
        Err(e) => return super::cannot_exec(&compiler_argv[0], &e),
    };
    match included_files(&job, &program, cfg) {
        Ok(files) => print_files(&files),
        Err(e) => {
            eprintln!("swarmcc: --scan-includes: {e}");
            ExitCode::Distcc.code()
        }
    }
}

/// The files the preprocessor reads for `job`, from a dependency file written by the
/// job's own preprocessing command (its output thrown away).
fn included_files(
    job: &RemoteJob,
    program: &Path,
    cfg: &ClientConfig,
) -> Result<Vec<PathBuf>, String> {
    let dir = tempfile::Builder::new()
        .prefix("swarmcc_scan")
        .tempdir_in(&cfg.scratch_dir)
        .map_err(|e| {
            format!(
                "cannot create a temporary directory in {}: {e}",
                cfg.scratch_dir.display()
            )
        })?;
    let deps = dir.path().join("deps.d");
    let deps_text = deps.to_string_lossy().into_owned();
    let mut cpp = job.cpp_argv("/dev/null", Some(&deps_text));
    // The last -MD/-MF win: every header (system ones too), into our file.
    cpp.extend(["-MD".into(), "-MF".into(), deps_text]);
    // `cpp_argv` starts with the compiler's name, as the user's command does.
    let argv: Vec<OsString> = cpp.iter().map(OsString::from).collect();
    let cmd = CompilerCommand {
        program,
        argv: &argv,
        path: &cfg.path,
        safeguard_level: 1,
    };
    let code = local::run(&cmd)?;
    if code != 0 {
        return Err(format!("the preprocessor failed (exit {code})"));
    }
    let text = std::fs::read_to_string(&deps)
        .map_err(|e| format!("the preprocessor wrote no dependency file: {e}"))?;
    let cwd = std::env::current_dir().unwrap_or_default();
    Ok(prerequisites(&text)
        .into_iter()
        .map(|f| absolute(&cwd, &f))
        .collect())
}

/// The prerequisites of the first rule of a make dependency file, in order, without
/// duplicates; `\ ` is an escaped space, `\` at the end of a line continues it, `$$` is
/// a `$`.
fn prerequisites(text: &str) -> Vec<String> {
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    let Some(rule) = joined.lines().next() else {
        return Vec::new();
    };
    // The target ends at the first ": " (a Windows drive letter is never a target here).
    let Some((_, rest)) = rule.split_once(": ").or_else(|| rule.split_once(':')) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                word.push(' ');
                chars.next();
            }
            '$' if chars.peek() == Some(&'$') => {
                word.push('$');
                chars.next();
            }
            ' ' | '\t' => {
                if !word.is_empty() && !out.contains(&word) {
                    out.push(std::mem::take(&mut word));
                }
                word.clear();
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() && !out.contains(&word) {
        out.push(word);
    }
    out
}

fn absolute(cwd: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    // Like the include server's names: no `..` or `.` left where the file exists.
    p.canonicalize().unwrap_or(p)
}

/// distcc's `--scan-includes` lines: the category padded to 9 columns, then the path.
fn print_files(files: &[PathBuf]) -> i32 {
    for f in files {
        println!("{:<9} {}", "FILE", f.display());
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prerequisites_of_a_gcc_dependency_file() {
        let text = "x.o: x.c /usr/include/stdio.h \\\n /usr/include/a\\ b.h inc/$$d.h \\\n x.c\n\n/usr/include/stdio.h:\n";
        assert_eq!(
            prerequisites(text),
            [
                "x.c",
                "/usr/include/stdio.h",
                "/usr/include/a b.h",
                "inc/$d.h"
            ]
        );
        assert!(prerequisites("").is_empty());
    }
}
