//! swarmcc's own command line (`--help`, `--show-hosts`, `--check-hosts`, `--install`…)
//! as plain clap data.
//!
//! This file is also compiled by `build.rs` (through `#[path]`) to generate the man page
//! and the shell completions from the same definition as `--help`: it must not use
//! anything of the crate, only `clap` and `std`. What the options do is `own`'s job.

use std::path::PathBuf;

use clap::Parser;

/// A distcc-compatible distributed C/C++ compiler.
///
/// swarmcc compiles C and C++ on the machines of a farm, and here when they fail. Usage
/// as a compiler wrapper: `swarmcc gcc -c file.c -o file.o`, `swarmcc -c file.c`
/// (compiler `cc`), `CC="swarmcc gcc"`, or through a masquerade link named like the
/// compiler (`gcc`, `cc`, `g++`...) placed first on PATH. Installed under the name
/// `distcc` it behaves the same (`distcc gcc -c x.c`). As cargo's `RUSTC_WRAPPER` it
/// sends crate compiles to swarmccds started with --rustc. Hosts come from
/// DISTCC_HOSTS, else $DISTCC_DIR/hosts (default ~/.distcc/hosts), else
/// /etc/distcc/hosts.
#[derive(Debug, Parser)]
#[command(
    name = "swarmcc",
    version,
    disable_version_flag = true,
    after_help = ENV_HELP,
    after_long_help = LONG_AFTER_HELP
)]
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
    /// Check every configured host: whether it answers (and how fast), which server it
    /// is, whether it accepts this machine's compilers, and whether it produces the same
    /// object as the local compiler for a probe source compiled at -O2 (preprocessed
    /// here, as a real job). COMPILERS is a comma-separated list [default: gcc,g++];
    /// `rustc` in it probes a rustc job too (outputs compared with a local build).
    /// Prints a verdict per host (OK, DIFFERENT COMPILER, REFUSED, UNREACHABLE,
    /// FAILED...) and a summary; exits 0 only when every usable host is OK.
    #[arg(
        long = "check-hosts",
        value_name = "COMPILERS",
        num_args = 0..=1,
        require_equals = true
    )]
    pub check_hosts: Option<Option<String>>,
    /// Run a build command (make, ninja, cargo...) with the masquerade shims first on PATH
    /// and a jobserver sized from the farm (unless the command sets -j), show a live
    /// status line on a terminal and a summary at the end. The hosts are the ones every
    /// job uses (the first of DISTCC_HOSTS, $DISTCC_DIR/hosts, /etc/distcc/hosts that
    /// exists); exactly when that list names no host (none of them exists, or the one
    /// found is empty, e.g. DISTCC_HOSTS=""), an embedded swarmccd on loopback serves
    /// the build, and says so.
    #[arg(long = "run", value_name = "COMMAND", num_args = 1.., allow_hyphen_values = true)]
    pub run: Vec<String>,
    /// Show the running jobs (pid, phase, file, host[slot]) in distccmon-text's format,
    /// once. With SECONDS: refresh every SECONDS - on a terminal a full-screen view of
    /// hosts, slots, queues, backoffs, throughput and jobs (q quits), else a new block
    /// each time, as `distccmon-text SECONDS`.
    #[arg(long = "monitor", value_name = "SECONDS", num_args = 0..=1)]
    pub monitor: Option<Option<f64>>,
    /// Run the scheduling agent for DIR (started on demand by swarmcc itself).
    #[arg(long = "agent-serve", value_name = "DIR", hide = true)]
    pub agent_serve: Option<PathBuf>,
    /// Run the zeroconf browse helper for DIR (started on demand by `+zeroconf`).
    #[arg(long = "zeroconf-serve", value_name = "DIR", hide = true)]
    pub zeroconf_serve: Option<PathBuf>,
    /// Install in one step under PREFIX [default: /usr/local as root, else ~/.local]:
    /// the masquerade links (as --install-shims), the man pages and the bash, zsh and
    /// fish completions; with --distcc-names also PREFIX/bin/distcc and
    /// PREFIX/bin/distccd (links to swarmcc and swarmccd) and, as root, the distcc
    /// masquerade folders. What was installed is recorded for --uninstall.
    #[arg(long = "install", value_name = "PREFIX", num_args = 0..=1)]
    pub install: Option<Option<PathBuf>>,
    /// Remove what --install put under PREFIX (same default), as recorded then; files
    /// and links changed since are left alone.
    #[arg(
        long = "uninstall",
        value_name = "PREFIX",
        num_args = 0..=1,
        conflicts_with = "install"
    )]
    pub uninstall: Option<Option<PathBuf>>,
    /// Write the man pages (share/man/man1) and the shell completions (bash, zsh, fish)
    /// under PREFIX [default: as --install], for packaging: nothing is recorded.
    #[arg(long = "install-docs", value_name = "PREFIX", num_args = 0..=1)]
    pub install_docs: Option<Option<PathBuf>>,
    /// Create or update the masquerade folder DIR: links named like this machine's
    /// compilers, pointing at this swarmcc (default /usr/lib/swarmcc/bin as root, else
    /// ~/.local/lib/swarmcc/bin). Only links to swarmcc or distcc are ever replaced.
    #[arg(long = "install-shims", value_name = "DIR", num_args = 0..=1)]
    pub install_shims: Option<Option<PathBuf>>,
    /// Remove the links to this swarmcc from DIR (same default as --install-shims).
    #[arg(
        long = "uninstall-shims",
        value_name = "DIR",
        num_args = 0..=1,
        conflicts_with = "install_shims"
    )]
    pub uninstall_shims: Option<Option<PathBuf>>,
    /// With --install-shims or --uninstall-shims: default to Portage's distcc folder
    /// /usr/lib/distcc/bin (FEATURES="distcc" puts it first on PATH). With --install:
    /// also the distcc names (PREFIX/bin/distcc, PREFIX/bin/distccd and, for a system
    /// install, the distcc masquerade folder: Portage's /usr/lib/distcc/bin, or
    /// Debian's /usr/lib/distcc); --uninstall removes them as recorded.
    #[arg(long = "distcc-names")]
    pub distcc_names: bool,
}

/// The sections after the options, as literals (so `concat!` can build the help texts).
macro_rules! env_help {
    () => {
        "  DISTCC_HOSTS            host list: HOST[:PORT][/LIMIT][,lzo] ... (a host without /LIMIT gets 4)
                          and REAPI engines: reapi://HOST:PORT[/INSTANCE][/LIMIT][,token=FILE],
                          reapis://HOST[:PORT][/INSTANCE][/LIMIT][,token=FILE][,ca=FILE] (TLS)
  DISTCC_DIR              state directory (default ~/.distcc): hosts file, lock/, backoff files
  DISTCC_VERBOSE=1        log every decision to stderr (or DISTCC_LOG)
  DISTCC_LOG=FILE         append swarmcc's messages to FILE
  DISTCC_FALLBACK=0       a failed distribution is an error (exit 116) instead of a local compile
  DISTCC_SKIP_LOCAL_RETRY do not recompile locally after a remote compile error
  DISTCC_BACKOFF_PERIOD=S skip a failed host for S seconds (default 60; 0 disables)
  DISTCC_IO_TIMEOUT=S     longest silence while sending/receiving (default 300)
  SWARMCC_CONNECT_TIMEOUT=S  connect timeout (default 4)
  SWARMCC_COMPILE_TIMEOUT=S  longest wait for a server's answer while it compiles (default 600)
  SWARMCC_STALL_TIMEOUT=S    silence after which a swarmccd (it sends keep-alives) is gone (default 20)
  SWARMCC_AUTH_KEY_FILE   pre-shared key for hosts listed with ,auth (default $DISTCC_DIR/auth.key)
  SWARMCC_REAPI_TOKEN_FILE  bearer token file for REAPI engines listed without ,token=FILE
  SWARMCC_CACHE=1|farm|0  compile cache: local and the servers' (default), servers' only, none
  SWARMCC_CACHE_DIR=DIR   the local compile cache (default $DISTCC_DIR/cache; rm -rf clears it)
  SWARMCC_CACHE_SIZE=MIB  bound of the local cache; least recently used first (default 1024)
  DISTCC_SSH              ssh command for USER@HOST hosts (default ssh; split at spaces, as distcc)
  DISTCC_SOCKS_PROXY      SOCKSv5 proxy for TCP hosts: /path/to/unix.socket (Portage's
                          network-sandbox sets it) or HOST[:PORT] (default port 1080)
  DISTCC_SAVE_TEMPS=1     keep temporary files
  DISTCC_NO_REWRITE_CROSS do not rename gcc to <triple>-gcc / add clang -target for the server
  TMPDIR                  where preprocessed files go (default /dev/shm if a writable tmpfs, else /tmp)
  UNCACHED_ERR_FD         log to this fd when DISTCC_LOG is unset (set by ccache)"
    };
}

macro_rules! exit_help {
    () => {
        "  The compiler's own exit status is passed through. swarmcc's own failures use distcc's
  numbers: 101 bad arguments, 106 bad host list, 107 I/O error, 110 compiler not found,
  111 recursive call, 116 no host could take the job with DISTCC_FALLBACK=0.
  --check-hosts exits 0 when every host is OK, 1 when one is not."
    };
}

macro_rules! files_help {
    () => {
        "  ~/.distcc/hosts, /etc/distcc/hosts     host lists (after DISTCC_HOSTS)
  ~/.distcc/lock/                        slots and backoff files, shared with distcc
  /usr/lib/swarmcc/bin                   masquerade links (root; ~/.local/lib/swarmcc/bin
                                         for a user), also swarmccd's compiler whitelist
  PREFIX/share/swarmcc/install-manifest  what --install created, for --uninstall"
    };
}

/// The environment, after `-h`.
pub const ENV_HELP: &str = concat!("Environment (as distcc):\n", env_help!());

/// After `--help`: the environment, exit codes, files.
pub const LONG_AFTER_HELP: &str = concat!(
    "Environment (as distcc):\n",
    env_help!(),
    "\n\nExit status:\n",
    exit_help!(),
    "\n\nFiles:\n",
    files_help!(),
    "\n\nSee also: swarmccd(1), distcc(1)."
);

/// The man page's sections after OPTIONS (title, preformatted text): the same text as
/// `--help`'s.
pub const MAN_SECTIONS: &[(&str, &str)] = &[
    ("ENVIRONMENT", env_help!()),
    ("EXIT STATUS", exit_help!()),
    ("FILES", files_help!()),
    ("SEE ALSO", "swarmccd(1), distcc(1), distccd(1), gcc(1)"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("swarmcc").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn check_hosts_takes_its_list_only_after_an_equals_sign() {
        assert_eq!(parse(&["--check-hosts"]).check_hosts, Some(None));
        assert_eq!(
            parse(&["--check-hosts=gcc,clang"]).check_hosts,
            Some(Some("gcc,clang".into()))
        );
        assert!(Cli::try_parse_from(["swarmcc", "--check-hosts", "gcc"]).is_err());
    }

    #[test]
    fn install_commands() {
        assert_eq!(parse(&["--install"]).install, Some(None));
        let c = parse(&["--install", "/opt/s", "--distcc-names"]);
        assert_eq!(c.install, Some(Some(PathBuf::from("/opt/s"))));
        assert!(c.distcc_names);
        assert_eq!(parse(&["--uninstall"]).uninstall, Some(None));
        assert!(Cli::try_parse_from(["swarmcc", "--install", "--uninstall"]).is_err());
        assert_eq!(
            parse(&["--install-docs", "/d"]).install_docs,
            Some(Some(PathBuf::from("/d")))
        );
    }
}
