//! swarmcc's own command-line options (`--help`, `--version`, `--show-hosts`, `-j`,
//! `--monitor`…), as opposed to a compiler command line.

use clap::{CommandFactory, Parser};

use crate::config::ClientConfig;
use crate::exit::ExitCode;
use crate::hosts;

/// swarmcc — a distcc-compatible distributed C/C++ compiler.
///
/// Usage as a compiler wrapper: `swarmcc gcc -c file.c -o file.o`, `swarmcc -c file.c`
/// (compiler `cc`), `CC="swarmcc gcc"`, or through a masquerade link named like the
/// compiler (`gcc`, `cc`, `g++`…) placed first on PATH. Hosts come from DISTCC_HOSTS,
/// else $DISTCC_DIR/hosts (default ~/.distcc/hosts), else /etc/distcc/hosts.
#[derive(Debug, Parser)]
#[command(name = "swarmcc", version, disable_version_flag = true, after_help = ENV_HELP)]
pub struct Cli {
    /// Print the version and exit.
    #[arg(long = "version", short = 'V')]
    pub version: bool,
    /// Print the host list, one host per line with its limit, port, protocol and options.
    #[arg(long = "show-hosts")]
    pub show_hosts: bool,
    /// Print the sum of the host limits: a good `make -j` value for this farm.
    #[arg(short = 'j')]
    pub jobs: bool,
    /// Run a build command (make, ninja, cargo…) with the masquerade shims first on PATH
    /// and a jobserver sized from the farm (unless the command sets -j), show a live
    /// status line on a terminal and a summary at the end. Without any host list, an
    /// embedded swarmccd serves the build on loopback.
    #[arg(long = "run", value_name = "COMMAND", num_args = 1.., allow_hyphen_values = true)]
    pub run: Vec<String>,
    /// Show the running jobs (pid, phase, file, host[slot]) in distccmon-text's format,
    /// once. With SECONDS: refresh every SECONDS — on a terminal a full-screen view of
    /// hosts, slots, queues, backoffs, throughput and jobs (q quits), else a new block
    /// each time, as `distccmon-text SECONDS`.
    #[arg(long = "monitor", value_name = "SECONDS", num_args = 0..=1)]
    pub monitor: Option<Option<f64>>,
    /// Run the scheduling agent for DIR (started on demand by swarmcc itself).
    #[arg(long = "agent-serve", value_name = "DIR", hide = true)]
    pub agent_serve: Option<std::path::PathBuf>,
    /// Create or update the masquerade folder DIR: links named like this machine's
    /// compilers, pointing at this swarmcc (default /usr/lib/swarmcc/bin as root, else
    /// ~/.local/lib/swarmcc/bin). Only links to swarmcc or distcc are ever replaced.
    #[arg(long = "install-shims", value_name = "DIR", num_args = 0..=1)]
    pub install_shims: Option<Option<std::path::PathBuf>>,
    /// Remove the links to this swarmcc from DIR (same default as --install-shims).
    #[arg(
        long = "uninstall-shims",
        value_name = "DIR",
        num_args = 0..=1,
        conflicts_with = "install_shims"
    )]
    pub uninstall_shims: Option<Option<std::path::PathBuf>>,
    /// With --install-shims or --uninstall-shims: default to Portage's distcc folder
    /// /usr/lib/distcc/bin (FEATURES="distcc" puts it first on PATH).
    #[arg(long = "distcc-names")]
    pub distcc_names: bool,
}

const ENV_HELP: &str = "\
Environment (as distcc):
  DISTCC_HOSTS            host list: HOST[:PORT][/LIMIT][,lzo] ... (a host without /LIMIT gets 4)
  DISTCC_DIR              state directory (default ~/.distcc): hosts file, lock/, backoff files
  DISTCC_VERBOSE=1        log every decision to stderr (or DISTCC_LOG)
  DISTCC_LOG=FILE         append swarmcc's messages to FILE
  DISTCC_FALLBACK=0       a failed distribution is an error (exit 116) instead of a local compile
  DISTCC_SKIP_LOCAL_RETRY do not recompile locally after a remote compile error
  DISTCC_BACKOFF_PERIOD=S skip a failed host for S seconds (default 60; 0 disables)
  DISTCC_IO_TIMEOUT=S     longest silence while sending/receiving (default 300)
  SWARMCC_CONNECT_TIMEOUT=S  connect timeout (default 4)
  SWARMCC_COMPILE_TIMEOUT=S  longest wait for a server's answer while it compiles (default 600)
  DISTCC_SAVE_TEMPS=1     keep temporary files
  DISTCC_NO_REWRITE_CROSS do not rename gcc to <triple>-gcc / add clang -target for the server
  TMPDIR                  where preprocessed files go (default /tmp)
  UNCACHED_ERR_FD         log to this fd when DISTCC_LOG is unset (set by ccache)";

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
    if let Some(interval) = cli.monitor {
        return crate::monitor::run(interval, cfg);
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
        eprintln!("swarmcc: --distcc-names goes with --install-shims or --uninstall-shims");
        return ExitCode::BadArguments.code();
    }
    if cli.version {
        println!(
            "swarmcc {} (distcc protocol 1 and 2 compatible; {} {})",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH,
            std::env::consts::OS
        );
        println!("Licence GPL-2.0-or-later. https://www.gnu.org/licenses/");
        return 0;
    }
    if cli.show_hosts || cli.jobs {
        let (list, source) = match cfg.load_hosts() {
            Ok(x) => x,
            Err(e) => {
                eprintln!("swarmcc: {e}");
                return ExitCode::BadHostSpec.code();
            }
        };
        if list.hosts.is_empty() {
            eprintln!("swarmcc: {source} contains no hosts; can't distribute work");
            return ExitCode::BadHostSpec.code();
        }
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
