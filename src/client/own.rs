//! swarmcc's own command-line options (`--help`, `--version`, `--show-hosts`, `-j`,
//! `--monitor`, `--check-hosts`, `--install`…), as opposed to a compiler command line.
//! The options themselves are declared in `client::cli` (shared with `build.rs`, which
//! makes the man page and completions from them); this module runs them.

use std::path::PathBuf;

use clap::{CommandFactory, Parser};

pub use super::cli::Cli;
use crate::config::ClientConfig;
use crate::exit::ExitCode;
use crate::hosts;

/// Runs one of swarmcc's own commands; returns the exit code.
pub fn run(args: &[String], cfg: &ClientConfig) -> i32 {
    if args.is_empty() {
        // As distcc: a bare `swarmcc` is a mistake (a missing compiler command).
        eprintln!("swarmcc: no compiler command given; usage: swarmcc [COMPILER] ARGS..., or see swarmcc --help");
        return ExitCode::BadArguments.code();
    }
    // `--run` takes the rest of the command line verbatim, before clap sees it.
    if let Some(code) = crate::launcher::dispatch(args, cfg) {
        return code;
    }
    if let Some(code) = distcc_front_option(args, cfg) {
        return code;
    }
    match parse(args) {
        Ok(cli) => execute(decide(&cli), cfg),
        Err(code) => code,
    }
}

/// One own command, decided from the parsed options. The variants are in the order
/// [`decide`] tries them: when several options are given, the first one wins.
enum Command {
    AgentServe(PathBuf),
    ZeroconfServe(PathBuf),
    Monitor(Option<f64>),
    CheckHosts(Option<String>),
    Install(crate::install::Command),
    Shims(crate::shims::InstallArgs),
    /// `--distcc-names` with none of the options it modifies: a usage error.
    StrayDistccNames,
    Version,
    /// `--show-hosts` and/or `-j`: both read the host list.
    Hosts {
        show: bool,
        jobs: bool,
    },
    Help,
}

/// distcc's two options that sit in front of a compiler command, checked as distcc
/// checks them: exactly as the first argument. `None` when it is neither.
fn distcc_front_option(args: &[String], cfg: &ClientConfig) -> Option<i32> {
    match args[0].as_str() {
        "--scan-includes" => Some(super::scan::run(&args[1..], cfg)),
        "--show-principal" => {
            // distcc's exact lines; swarmcc has no GSS-API, so this is all it does.
            match &cfg.principal {
                Some(p) => println!("Principal is\t: {p}"),
                None => println!("Principal\t: Not Set."),
            }
            Some(0)
        }
        _ => None,
    }
}

/// The options through clap; `Err` is the exit code once clap has printed its
/// message (0 for `--help`/`--version` output, a usage error otherwise).
fn parse(args: &[String]) -> Result<Cli, i32> {
    Cli::try_parse_from(std::iter::once("swarmcc".to_string()).chain(args.iter().cloned())).map_err(
        |e| {
            let is_help = matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            );
            let _ = e.print();
            if is_help {
                0
            } else {
                ExitCode::BadArguments.code()
            }
        },
    )
}

/// Which command the options ask for (see [`Command`] for the precedence).
fn decide(cli: &Cli) -> Command {
    if let Some(dir) = &cli.agent_serve {
        return Command::AgentServe(dir.clone());
    }
    if let Some(dir) = &cli.zeroconf_serve {
        return Command::ZeroconfServe(dir.clone());
    }
    if let Some(interval) = cli.monitor {
        return Command::Monitor(interval);
    }
    if let Some(compilers) = &cli.check_hosts {
        return Command::CheckHosts(compilers.clone());
    }
    if let Some(install) = install_command(cli) {
        return Command::Install(install);
    }
    let shims = match (&cli.install_shims, &cli.uninstall_shims) {
        (Some(dir), _) => Some((crate::shims::Action::Install, dir.clone())),
        (None, Some(dir)) => Some((crate::shims::Action::Uninstall, dir.clone())),
        (None, None) => None,
    };
    if let Some((action, dir)) = shims {
        return Command::Shims(crate::shims::InstallArgs {
            action,
            dir,
            distcc_names: cli.distcc_names,
            target: None,
        });
    }
    if cli.distcc_names {
        return Command::StrayDistccNames;
    }
    if cli.version {
        return Command::Version;
    }
    if cli.show_hosts || cli.jobs {
        return Command::Hosts {
            show: cli.show_hosts,
            jobs: cli.jobs,
        };
    }
    Command::Help
}

/// `--install`, `--uninstall` or `--install-docs`, first given first.
fn install_command(cli: &Cli) -> Option<crate::install::Command> {
    if let Some(prefix) = &cli.install {
        return Some(crate::install::Command::Install {
            prefix: prefix.clone(),
            distcc_names: cli.distcc_names,
        });
    }
    if let Some(prefix) = &cli.uninstall {
        return Some(crate::install::Command::Uninstall {
            prefix: prefix.clone(),
        });
    }
    cli.install_docs
        .as_ref()
        .map(|prefix| crate::install::Command::Docs {
            prefix: prefix.clone(),
        })
}

/// Runs the decided command; returns the exit code.
fn execute(command: Command, cfg: &ClientConfig) -> i32 {
    match command {
        Command::AgentServe(dir) => crate::agent::serve_main(&dir),
        Command::ZeroconfServe(dir) => crate::zeroconf::browse::serve_main(&dir),
        Command::Monitor(interval) => crate::monitor::run(interval, cfg),
        Command::CheckHosts(compilers) => crate::check::run(compilers.as_deref(), cfg),
        Command::Install(install) => crate::install::run(install),
        Command::Shims(args) => crate::shims::run_install(&args),
        Command::StrayDistccNames => {
            eprintln!(
                "swarmcc: --distcc-names goes with --install, --install-shims or --uninstall-shims"
            );
            ExitCode::BadArguments.code()
        }
        Command::Version => {
            print!("{}", crate::version::text("swarmcc"));
            0
        }
        Command::Hosts { show, jobs } => show_hosts(cfg, show, jobs),
        Command::Help => {
            let _ = Cli::command().print_help();
            println!();
            0
        }
    }
}

/// `--show-hosts` (one line per host) and `-j` (the total of their slots).
fn show_hosts(cfg: &ClientConfig, show: bool, jobs: bool) -> i32 {
    let (list, _) = match super::host_warnings::load_some(cfg) {
        Ok(x) => x,
        Err(why) => {
            eprintln!("swarmcc: {why}; can't distribute work");
            return ExitCode::BadHostSpec.code();
        }
    };
    if show {
        for h in &list.hosts {
            println!("{}", hosts::describe(h));
        }
    }
    if jobs {
        println!("{}", list.total_slots());
    }
    0
}
