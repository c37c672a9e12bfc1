//! `--install`: the masquerade links, the documentation and (with `--distcc-names`)
//! the distcc command names put in place under a prefix, each recorded in the
//! manifest, then the hints for using them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::docs::install_docs;
use super::files::{create_dirs, place_link, LinkOutcome};
use super::layout::{
    distcc_masquerade_dir, is_system_install, on_path, shims_dir, DEBIAN_DISTCC_DIR,
    PORTAGE_DISTCC_DIR,
};
use super::manifest::{format_manifest, merge, parse_manifest, Entry, MANIFEST};
use super::Machine;
use crate::exit::ExitCode;
use crate::shims;

/// What `--install` did, for the report.
#[derive(Debug, Default)]
pub struct InstallReport {
    pub lines: Vec<String>,
    pub entries: Vec<Entry>,
}

/// `--install`: everything described in the module documentation, under `prefix`.
/// Errors name the path; what was done before an error is recorded all the same.
pub fn install(
    prefix: &Path,
    distcc_names: bool,
    m: &Machine,
) -> (InstallReport, Option<io::Error>) {
    let mut rep = InstallReport::default();
    let system = is_system_install(m.is_root, prefix);
    let names = shims::compiler_names(&m.path);
    let result = install_shims(&mut rep, shims_dir(system, prefix), m, &names)
        .and_then(|()| install_docs_step(&mut rep, prefix))
        .and_then(|()| {
            if distcc_names {
                install_distcc_names(&mut rep, prefix, system, m, &names)
            } else {
                Ok(())
            }
        });
    (rep, result.err())
}

/// Step 1 (and the distcc folder of step 3): a masquerade folder of links to swarmcc.
fn install_shims(
    rep: &mut InstallReport,
    dir: PathBuf,
    m: &Machine,
    names: &[String],
) -> io::Result<()> {
    create_dirs(&dir, &mut rep.entries)?;
    let r = shims::install(&dir, &m.swarmcc, names)?;
    rep.lines.push(r.to_string().trim_end().to_owned());
    rep.entries.push(Entry::Shims {
        dir,
        target: r.target.clone(),
    });
    Ok(())
}

/// Step 2: the man pages and completions.
fn install_docs_step(rep: &mut InstallReport, prefix: &Path) -> io::Result<()> {
    let written = install_docs(prefix, &mut rep.entries)?;
    let pages = written
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "1"))
        .count();
    rep.lines.push(format!(
        "installed {pages} man pages and {} shell completions (bash, zsh, fish) under {}",
        written.len() - pages,
        prefix.join("share").display()
    ));
    Ok(())
}

/// Step 3, `--distcc-names`: `bin/distcc` and `bin/distccd`, and for a system install
/// the distcc masquerade folder repointed at swarmcc.
fn install_distcc_names(
    rep: &mut InstallReport,
    prefix: &Path,
    system: bool,
    m: &Machine,
    names: &[String],
) -> io::Result<()> {
    let bin = prefix.join("bin");
    let links = [
        ("distcc", Some(m.swarmcc.clone())),
        ("distccd", m.swarmccd.clone()),
    ];
    for (name, target) in links {
        let path = bin.join(name);
        let Some(target) = target else {
            rep.lines.push(format!(
                "not linked {}: swarmccd is not next to {} (install both binaries: cargo install --path .)",
                path.display(),
                m.swarmcc.display()
            ));
            continue;
        };
        let outcome = place_link(&path, &target, &mut rep.entries)?;
        rep.lines.push(describe_link(&path, &target, outcome));
    }
    if system {
        let dir = distcc_masquerade_dir(
            Path::new(DEBIAN_DISTCC_DIR).is_dir(),
            Path::new(PORTAGE_DISTCC_DIR).is_dir(),
        );
        install_shims(rep, PathBuf::from(dir), m, names)?;
    } else {
        rep.lines.push(format!(
            "the distcc masquerade folders ({PORTAGE_DISTCC_DIR}, {DEBIAN_DISTCC_DIR}) are \
             only repointed by a system install (as root, prefix /usr/local); {} serves the same purpose",
            shims_dir(system, prefix).display()
        ));
    }
    Ok(())
}

/// The report line for a placed command link.
fn describe_link(path: &Path, target: &Path, outcome: LinkOutcome) -> String {
    match outcome {
        LinkOutcome::Created => format!("linked {} -> {}", path.display(), target.display()),
        LinkOutcome::Unchanged => {
            format!("unchanged {} -> {}", path.display(), target.display())
        }
        LinkOutcome::Replaced(old) => format!(
            "updated {} -> {} (was -> {})",
            path.display(),
            target.display(),
            old.display()
        ),
        LinkOutcome::LeftAlone(why) => format!("left alone {}: {why}", path.display()),
    }
}

/// `swarmcc --install [PREFIX]`: installs, records the manifest (merged with an
/// earlier install's) and prints how to use what was installed; returns the exit code.
/// `prefix_given`: the user named the prefix (so `--uninstall` must name it too).
pub(super) fn run_install(
    prefix: &Path,
    prefix_given: bool,
    distcc_names: bool,
    m: &Machine,
) -> i32 {
    let manifest = prefix.join(MANIFEST);
    let old = match fs::read_to_string(&manifest) {
        Ok(text) => parse_manifest(&text).unwrap_or_else(|e| {
            eprintln!("swarmcc: ignoring {}: {e}", manifest.display());
            Vec::new()
        }),
        Err(_) => Vec::new(),
    };
    let (rep, err) = install(prefix, distcc_names, m);
    for l in &rep.lines {
        println!("{l}");
    }
    if let Err(code) = record(&manifest, old, rep.entries) {
        return code.code();
    }
    if let Some(e) = err {
        eprintln!("swarmcc: {e}");
        return ExitCode::IoError.code();
    }
    println!(
        "recorded in {} (swarmcc --uninstall{} removes it all)",
        manifest.display(),
        if prefix_given {
            format!(" {}", prefix.display())
        } else {
            String::new()
        }
    );
    print_hints(prefix, distcc_names, m);
    0
}

/// Writes the manifest: the earlier entries merged with this run's, and the
/// manifest's own directory if this run creates it.
fn record(manifest: &Path, old: Vec<Entry>, mut entries: Vec<Entry>) -> Result<(), ExitCode> {
    let mut own = Vec::new();
    if let Some(parent) = manifest.parent() {
        if let Err(e) = create_dirs(parent, &mut own) {
            eprintln!("swarmcc: {e}");
            return Err(ExitCode::IoError);
        }
    }
    entries.extend(own);
    let all = merge(old, entries);
    if let Err(e) = fs::write(manifest, format_manifest(&all)) {
        eprintln!("swarmcc: cannot write {}: {e}", manifest.display());
        return Err(ExitCode::IoError);
    }
    Ok(())
}

/// How to use the install: the masquerade `PATH`, the server's whitelist, and what
/// would stop `distcc` from running swarmcc.
fn print_hints(prefix: &Path, distcc_names: bool, m: &Machine) {
    let system = is_system_install(m.is_root, prefix);
    let shim_dir = shims_dir(system, prefix);
    println!("masquerade: export PATH=\"{}:$PATH\"", shim_dir.display());
    if !system {
        println!("server: swarmccd --whitelist-dir {}", shim_dir.display());
    }
    if distcc_names && !on_path(&prefix.join("bin"), &m.path) {
        println!(
            "note: {} is not on PATH: add it, ahead of /usr/bin, for `distcc` to run swarmcc",
            prefix.join("bin").display()
        );
    }
    let home_install = ["/root/", "/home/"]
        .iter()
        .any(|h| m.swarmcc.starts_with(h));
    if m.is_root && home_install {
        println!(
            "note: the links point at {}, inside a home directory other users may not be able to enter; \
             for a machine-wide install use `cargo install --path . --root /usr/local`",
            m.swarmcc.display()
        );
    }
}
