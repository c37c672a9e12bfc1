//! swarmcc's own command-line options (`--help`, `--version`, `--show-hosts`, `-j`,
//! `--monitor`, `--check-hosts`, `--install`…), as opposed to a compiler command line.
//! The options themselves are declared in `client::cli` (shared with `build.rs`, which
//! makes the man page and completions from them); this module runs them.

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
    // distcc's two options that sit in front of a compiler command, checked as distcc
    // checks them: exactly as the first argument.
    match args[0].as_str() {
        "--scan-includes" => return super::scan::run(&args[1..], cfg),
        "--show-principal" => {
            // distcc's exact lines; swarmcc has no GSS-API, so this is all it does.
            match &cfg.principal {
                Some(p) => println!("Principal is\t: {p}"),
                None => println!("Principal\t: Not Set."),
            }
            return 0;
        }
        _ => {}
    }
    let cli = match Cli::try_parse_from(
        std::iter::once("swarmcc".to_string()).chain(args.iter().cloned()),
    ) {
        Ok(c) => c,
        Err(e) => {
            let is_help = matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            );
            let _ = e.print();
            return if is_help {
                0
            } else {
                ExitCode::BadArguments.code()
            };
        }
    };
    if let Some(dir) = &cli.agent_serve {
        return crate::agent::serve_main(dir);
    }
    if let Some(dir) = &cli.zeroconf_serve {
        return crate::zeroconf::browse::serve_main(dir);
    }
    if let Some(interval) = cli.monitor {
        return crate::monitor::run(interval, cfg);
    }
    if let Some(compilers) = &cli.check_hosts {
        return crate::check::run(compilers.as_deref(), cfg);
    }
    if let Some(prefix) = &cli.install {
        return crate::install::run(crate::install::Command::Install {
            prefix: prefix.clone(),
            distcc_names: cli.distcc_names,
        });
    }
    if let Some(prefix) = &cli.uninstall {
        return crate::install::run(crate::install::Command::Uninstall {
            prefix: prefix.clone(),
        });
    }
    if let Some(prefix) = &cli.install_docs {
        return crate::install::run(crate::install::Command::Docs {
            prefix: prefix.clone(),
        });
    }
    let shims = match (&cli.install_shims, &cli.uninstall_shims) {
        (Some(dir), _) => Some((crate::shims::Action::Install, dir.clone())),
        (None, Some(dir)) => Some((crate::shims::Action::Uninstall, dir.clone())),
        (None, None) => None,
    };
    if let Some((action, dir)) = shims {
        return crate::shims::run_install(&crate::shims::InstallArgs {
            action,
            dir,
            distcc_names: cli.distcc_names,
            target: None,
        });
    }
    if cli.distcc_names {
        eprintln!(
            "swarmcc: --distcc-names goes with --install, --install-shims or --uninstall-shims"
        );
        return ExitCode::BadArguments.code();
    }
    if cli.version {
        print!("{}", crate::version::text("swarmcc"));
        return 0;
    }
    if cli.show_hosts || cli.jobs {
        let (list, _) = match super::host_warnings::load_some(cfg) {
            Ok(x) => x,
            Err(why) => {
                eprintln!("swarmcc: {why}; can't distribute work");
                return ExitCode::BadHostSpec.code();
            }
        };
        if cli.show_hosts {
            for h in &list.hosts {
                println!("{}", hosts::describe(h));
            }
        }
        if cli.jobs {
            println!("{}", list.total_slots());
        }
        return 0;
    }
    let _ = Cli::command().print_help();
    println!();
    0
}
