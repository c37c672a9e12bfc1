//! Generates the man pages and the shell completions of `swarmcc` and `swarmccd` from
//! the same clap definitions as their `--help` (`src/client/cli.rs`, `src/server/cli.rs`,
//! which are kept free of crate-internal dependencies for this), into `$OUT_DIR/docs`.
//! The binaries embed them (`swarmcc --install-docs`, `--install`).
//!
//! It also generates the Remote Execution API's gRPC clients (`src/reapi`) from the
//! vendored protos in `proto/`, with the `protoc` that the `protoc-bin-vendored` crate
//! ships, so that a fresh machine builds with cargo alone.

use std::fs;
use std::io;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

#[path = "src/client/cli.rs"]
#[allow(dead_code)]
mod client_cli;
#[path = "src/server/cli.rs"]
#[allow(dead_code)]
mod server_cli;

fn main() -> io::Result<()> {
    println!("cargo:rerun-if-changed=src/client/cli.rs");
    println!("cargo:rerun-if-changed=src/server/cli.rs");
    println!("cargo:rerun-if-changed=build.rs");
    reapi_protos()?;
    // `--version` names the target as distcc's first line does (`distcc 3.4 TARGET`).
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    println!("cargo:rustc-env=SWARMCC_TARGET={target}");
    let out = Path::new(&std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("docs");
    fs::create_dir_all(&out)?;
    for (name, cmd, sections) in [
        (
            "swarmcc",
            client_cli::Cli::command(),
            client_cli::MAN_SECTIONS,
        ),
        (
            "swarmccd",
            server_cli::Cli::command(),
            server_cli::MAN_SECTIONS,
        ),
    ] {
        fs::write(out.join(format!("{name}.1")), man_page(&cmd, sections)?)?;
        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut cmd = cmd.clone();
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd, name, &mut text);
            fs::write(out.join(file), text)?;
        }
    }
    Ok(())
}

/// The REAPI v2 clients (no servers: swarmcc only calls engines) and their messages.
/// Comments are left out: the protos' prose holds code samples rustdoc would try to
/// run as doctests, and the README and `src/reapi` say what is used and why.
fn reapi_protos() -> io::Result<()> {
    println!("cargo:rerun-if-changed=proto");
    let protoc = protoc_bin_vendored::protoc_bin_path().map_err(io::Error::other)?;
    let wkt = protoc_bin_vendored::include_path().map_err(io::Error::other)?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .build_server(false)
        .build_transport(false)
        .disable_comments(["."])
        .compile_with_config(
            config,
            &[
                Path::new("proto/build/bazel/remote/execution/v2/remote_execution.proto"),
                Path::new("proto/google/bytestream/bytestream.proto"),
            ],
            &[Path::new("proto"), wkt.as_path()],
        )
}

/// The man page: clap_mangen's title, NAME, SYNOPSIS, DESCRIPTION and OPTIONS (from the
/// definition), then our own sections (the text `--help` shows after the options) as
/// preformatted blocks, and VERSION.
fn man_page(cmd: &clap::Command, sections: &[(&str, &str)]) -> io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    for (title, text) in sections {
        page.extend_from_slice(format!(".SH \"{title}\"\n.nf\n").as_bytes());
        // --help indents these under their heading; the man page indents by itself.
        let indent = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.len() - l.trim_start().len())
            .min()
            .unwrap_or(0);
        for line in text.lines() {
            page.extend_from_slice(roff_line(line.get(indent..).unwrap_or("")).as_bytes());
            page.push(b'\n');
        }
        page.extend_from_slice(b".fi\n");
    }
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// One line of text for a roff no-fill block: backslashes and minus signs escaped (so
/// options stay ASCII `-`), a leading `.` or `'` made literal.
fn roff_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    if line.starts_with('.') || line.starts_with('\'') {
        out.push_str("\\&");
    }
    for c in line.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            _ => out.push(c),
        }
    }
    out
}
