//! The documentation the build generates from the clap definitions (`build.rs`) and
//! `swarmcc --install-docs` writes out: both man pages render with `man -l` and mention
//! every long option of their program, and the completions are valid scripts (bash -n;
//! zsh and fish when installed).

mod common;

use clap::CommandFactory;
use common::*;
use std::path::Path;
use std::process::Command;

/// The long options a command documents (hidden ones excepted).
fn long_flags(cmd: &clap::Command) -> Vec<String> {
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect()
}

/// `man -l PAGE` as plain ASCII text, wide enough that no option is broken across lines.
fn render(page: &Path) -> String {
    let out = run(Command::new("man")
        .arg("-l")
        .arg(page)
        .env("LC_ALL", "C")
        .env("MANWIDTH", "250")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MAN_KEEP_FORMATTING", ""));
    assert_success(&out, &format!("man -l {}", page.display()));
    // No troff warnings (a character the font lacks, a bad request…).
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(
        warnings.trim().is_empty(),
        "man -l {}: {warnings}",
        page.display()
    );
    // Strip overstriking (bold: c\bc, underline: _\bc) should any be left.
    let mut text = String::new();
    for c in String::from_utf8_lossy(&out.stdout).chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    text
}

fn install_docs() -> tempfile::TempDir {
    let prefix = tempfile::tempdir().unwrap();
    let out = run(Command::new(SWARMCC)
        .arg("--install-docs")
        .arg(prefix.path()));
    assert_success(&out, "swarmcc --install-docs");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed.lines().count(), 8, "{listed}");
    prefix
}

#[test]
fn man_pages_render_and_mention_every_long_option() {
    if which::which("man").is_err() {
        panic!("man is not installed (integration/run-tests.sh installs man-db)");
    }
    let prefix = install_docs();
    for (name, cmd) in [
        ("swarmcc", swarmcc::client::cli::Cli::command()),
        ("swarmccd", swarmcc::server::cli::Cli::command()),
    ] {
        let page = prefix.path().join(format!("share/man/man1/{name}.1"));
        let text = render(&page);
        assert!(text.contains("NAME") && text.contains("SYNOPSIS"), "{text}");
        let flags = long_flags(&cmd);
        assert!(flags.len() > 5, "{flags:?}");
        let missing: Vec<&String> = flags
            .iter()
            .filter(|f| !text.contains(f.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "{name}.1 does not mention {missing:?}:\n{text}"
        );
        // The prose of --help is there too, not just the option names.
        let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
        let first_words: String = about
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            text.contains(&first_words),
            "{name}.1 lacks {first_words:?}:\n{text}"
        );
    }
}

#[test]
fn completions_are_valid_scripts() {
    let prefix = install_docs();
    let p = |rel: &str| prefix.path().join(rel);
    for name in ["swarmcc", "swarmccd"] {
        let bash = p(&format!("share/bash-completion/completions/{name}"));
        assert_success(&run(Command::new("bash").arg("-n").arg(&bash)), "bash -n");
        // Loading it registers the completion function.
        let out = run(Command::new("bash")
            .arg("-c")
            .arg(format!("source {} && complete -p {name}", bash.display())));
        assert_success(&out, "bash: complete -p");
        assert!(String::from_utf8_lossy(&out.stdout).contains(name));
        let zsh = p(&format!("share/zsh/site-functions/_{name}"));
        let fish = p(&format!("share/fish/vendor_completions.d/{name}.fish"));
        assert!(std::fs::read_to_string(&zsh)
            .unwrap()
            .starts_with("#compdef"));
        assert!(std::fs::read_to_string(&fish)
            .unwrap()
            .contains("complete -c"));
        if which::which("zsh").is_ok() {
            assert_success(&run(Command::new("zsh").arg("-n").arg(&zsh)), "zsh -n");
        }
        if which::which("fish").is_ok() {
            assert_success(&run(Command::new("fish").arg("-n").arg(&fish)), "fish -n");
        }
    }
}
