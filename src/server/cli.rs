//! `swarmccd`'s command line: distccd's flags (so existing init scripts and unit files
//! keep working) plus a few of our own, each documented for `--help`.
//!
//! Plain data filled in by clap; turning it into a configuration, and every check that
//! touches the system, is `daemon`'s job.
//!
//! This file is also compiled by `build.rs` (through `#[path]`) to generate the man page
//! and the shell completions from the same definition as `--help`: it must not use
//! anything of the crate, only `clap` and `std`.

use std::path::PathBuf;

use clap::Parser;

/// distccd's port (the same as `server::DEFAULT_PORT`; a unit test keeps them equal).
pub const DEFAULT_PORT: u16 = 3632;

macro_rules! env_help {
    () => {
        "  DISTCCD_PATH             where compilers are searched (instead of PATH)
  DISTCC_CMDLIST=FILE      an explicit list of compilers that replaces the whitelist
  DISTCC_CMDLIST_NUMWORDS  how many trailing path components of a DISTCC_CMDLIST entry
                           must match (default 1)
  DISTCC_SAVE_TEMPS=1      keep job directories
  TMPDIR                   where job directories are made (default /tmp)"
    };
}

macro_rules! exit_help {
    () => {
        "  Distcc's numbers: 101 bad arguments, 102 cannot bind the port, 107 I/O error (log file,
  pid file, key file, TMPDIR), 112 cannot switch user."
    };
}

macro_rules! files_help {
    () => {
        "  /usr/lib/swarmcc/bin, /usr/lib/distcc, /usr/lib/distcc/bin
      the compiler whitelist: one link per allowed compiler name
  /etc/default/swarmccd (systemd), /etc/conf.d/swarmccd (OpenRC)
      SWARMCCD_OPTS, the options of the service"
    };
}

macro_rules! examples_help {
    () => {
        "  swarmccd --allow 192.168.0.0/24 -j 16 -N 15
  swarmccd --no-detach --log-stderr --allow 10.0.0.0/8 --stats
  swarmccd --gen-auth-key /etc/swarmcc/auth.key"
    };
}

/// After `--help`: examples, environment, exit codes, files.
pub const LONG_AFTER_HELP: &str = concat!(
    "Examples:\n",
    examples_help!(),
    "\n\nEnvironment:\n",
    env_help!(),
    "\n\nExit status:\n",
    exit_help!(),
    "\n\nFiles:\n",
    files_help!(),
    "\n\nSee also: swarmcc(1), distccd(1)."
);

/// The man page's sections after OPTIONS (title, preformatted text): the same text as
/// `--help`'s.
pub const MAN_SECTIONS: &[(&str, &str)] = &[
    ("EXAMPLES", examples_help!()),
    ("ENVIRONMENT", env_help!()),
    ("EXIT STATUS", exit_help!()),
    ("FILES", files_help!()),
    ("SEE ALSO", "swarmcc(1), distccd(1)"),
];

#[derive(Debug, Clone, Parser)]
#[command(
    name = "swarmccd",
    version,
    disable_version_flag = true,
    // As distccd (popt): an option given twice takes its last value, so options
    // appended to an init script's defaults override them.
    args_override_self = true,
    about = "Compile server for distcc and swarmcc clients (distccd-compatible)",
    long_about = "Compile server for distcc and swarmcc clients. Accepts distccd's options.\n\n\
        Without any --allow, only this machine (127.0.0.0/8 and ::1) may connect. \
        Refused requests (compiler not whitelisted, unsafe options, pump mode) are \
        answered with the reason, which distcc clients print before compiling locally.",
    after_long_help = LONG_AFTER_HELP
)]
pub struct Cli {
    /// Allow clients from ADDR[/BITS] (IPv4, IPv6 or a host name; repeatable). An IPv4
    /// entry also matches IPv4-mapped IPv6 peers.
    #[arg(short = 'a', long = "allow", value_name = "ADDR[/BITS]")]
    pub allow: Vec<String>,

    /// Allow private networks: 192.168.0.0/16, 10.0.0.0/8, 172.16.0.0/12,
    /// 127.0.0.0/8, fe80::/10, fc00::/7 and ::1.
    #[arg(long)]
    pub allow_private: bool,

    /// Listen on this address only. Default: 127.0.0.1 when no --allow or
    /// --allow-private is given; otherwise 0.0.0.0, or [::] (IPv4 and IPv6) when an
    /// allowed network is IPv6.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// TCP port to listen on.
    #[arg(short = 'p', long, value_name = "PORT", default_value_t = DEFAULT_PORT,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// Maximum number of compilers running at once [default: CPUs + 2].
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,

    /// Niceness increment applied at startup (inherited by compilers).
    #[arg(
        short = 'N',
        long,
        value_name = "N",
        default_value_t = 5,
        allow_negative_numbers = true
    )]
    pub nice: i32,

    /// Run as a standalone TCP server (the default unless --inetd).
    #[arg(long)]
    pub daemon: bool,

    /// Stay in the foreground instead of detaching.
    #[arg(long)]
    pub no_detach: bool,

    /// Write the server's pid to FILE (after detaching); removed at exit.
    #[arg(short = 'P', long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,

    /// Append log lines to FILE (opened before privileges are dropped).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,

    /// Log level: critical, error, warning, notice, info or debug (distccd's and
    /// syslog's other names too). An unknown level is warned about and notice is kept,
    /// as distccd does.
    #[arg(long, value_name = "LEVEL", default_value = "notice")]
    pub log_level: String,

    /// Log to standard error (kept open when detaching).
    #[arg(long)]
    pub log_stderr: bool,

    /// Log everything (--log-level debug).
    #[arg(long)]
    pub verbose: bool,

    /// When started as root, run as USER [default: distccd, else distcc, else nobody].
    /// swarmccd never serves as root.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Kill a compiler that runs longer than SECONDS (its whole process group); the
    /// client gets exit status 118. 0 (or a negative number, as distccd) means no limit.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub job_lifetime: i64,

    /// Stop accepting connections SECONDS after startup and exit once the jobs in flight
    /// are done (distccd's option for test harnesses and one-shot servers; distccd
    /// itself dies at that moment, jobs and all). 0 or negative: run until signalled.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub lifetime: i64,

    /// Run any compiler the client names (no whitelist). Only for trusted clients,
    /// e.g. over ssh.
    #[arg(long, alias = "make-me-a-botnet")]
    pub enable_tcp_insecure: bool,

    /// Serve one connection on standard input and output (a socket passed by inetd, or
    /// the pipes sshd gives the command of an ssh host), then exit.
    #[arg(long)]
    pub inetd: bool,

    /// Extra whitelist directory (repeatable): a compiler name is allowed when an
    /// executable entry of that name is in one of /usr/lib/distcc, /usr/lib/distcc/bin,
    /// /usr/lib/swarmcc/bin or these.
    #[arg(long, value_name = "DIR")]
    pub whitelist_dir: Vec<PathBuf>,

    /// Close a connection whose client stays silent this long while sending its
    /// request or receiving the reply.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub io_timeout: u64,

    /// Close a connection whose whole request has not arrived after SECONDS, however
    /// steadily it trickles in.
    #[arg(long, value_name = "SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout: u64,

    /// Answer "busy" at once (the client compiles locally or tries another host) when
    /// this many jobs already wait for a compile slot [default: 2 x jobs + 4].
    #[arg(long, value_name = "N")]
    pub max_queued: Option<usize>,

    /// Most connections served at once (reading requests, waiting, compiling, replying);
    /// more wait in the listen backlog [default: jobs + max-queued + 32].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,

    /// Largest preprocessed source accepted, in MiB, as sent and after decompression;
    /// larger ones are answered with a refusal so the client compiles them locally.
    #[arg(long, value_name = "MIB", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=4095))]
    pub max_source_size: u32,

    /// Do not confine compilers with Landlock. By default each compiler may write only
    /// inside its private job directory (on kernels with Landlock, 5.13 and later).
    #[arg(long)]
    pub no_sandbox: bool,

    /// Always run gcc jobs through the gcc driver. By default the server learns, once
    /// per distinct command line, which stages (cc1 or cc1plus, then as) the driver
    /// runs and with what arguments and environment, and later starts those stages
    /// itself: the same processes, about a tenth less CPU on a small file.
    #[arg(long)]
    pub no_direct_stages: bool,

    /// Serve rustc jobs (`RUSTC_WRAPPER=swarmcc` clients) with a rust toolchain whose
    /// `rustc -vV` matches the client's, found among rustup's toolchains and
    /// --rustc-toolchain. Proc-macros run on this machine as the server's user
    /// (confined like every job): allow only clients you trust to run code here.
    #[arg(long)]
    pub rustc: bool,

    /// A rustc program to offer besides rustup's toolchains (repeatable), e.g.
    /// /opt/rust/bin/rustc.
    #[arg(long, value_name = "PATH", requires = "rustc")]
    pub rustc_toolchain: Vec<PathBuf>,

    /// Where the input files of rustc jobs are kept by content, so that each is sent
    /// once [default: $TMPDIR/swarmccd-rustc-cache-UID, UID the server's user].
    #[arg(long, value_name = "DIR", requires = "rustc")]
    pub rustc_cache: Option<PathBuf>,

    /// Bound of that cache in MiB; the least recently used files go first.
    #[arg(long, value_name = "MIB", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(64..))]
    pub rustc_cache_size: u64,

    /// Where the farm cache keeps the results of successful compiles, shared by every
    /// client: a swarmcc client sends a job's key before its source, and a job seen
    /// before is answered from here without compiling [default: ~/.cache/swarmccd of
    /// the user the server runs as, if $HOME is theirs, else $TMPDIR/swarmccd-cache-UID].
    /// Removing the directory while the server is stopped clears it.
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,

    /// Bound of the farm cache in MiB; the least recently used results go first.
    #[arg(long, value_name = "MIB", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub cache_size: u64,

    /// No farm cache: every job is compiled, nothing is stored, and clients are not
    /// offered the cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Debug mode: --no-detach --log-stderr --log-level debug.
    #[arg(short = 'W', long)]
    pub wizard: bool,

    /// Accepted for distccd compatibility; has no effect (one thread per connection).
    #[arg(long)]
    pub no_fork: bool,

    /// Accepted for distccd compatibility; has no effect.
    #[arg(long)]
    pub no_fifo: bool,

    /// Announce this server over mDNS/DNS-SD through avahi-daemon, as distccd does
    /// (`distcc@HOSTNAME`, type _distcc._tcp, with the compiler subtype and the cpus and
    /// jobs TXT records), so that clients with `+zeroconf` in their host list find it.
    /// Without a running avahi-daemon a warning is logged and the server serves anyway.
    #[arg(long)]
    pub zeroconf: bool,

    /// distccd's GSS-API mutual authentication. swarmccd has no GSS-API: with --auth it
    /// still insists that clients authenticate, so only swarmcc clients holding the
    /// --auth-key-file key are served and everyone else is refused with the reason
    /// (a warning says so at startup).
    #[arg(long)]
    pub auth: bool,

    /// distccd's GSS-API principal allow list (with --auth). Accepted and ignored with a
    /// warning: swarmccd authenticates keys, not Kerberos principals.
    #[arg(long, value_name = "FILE", conflicts_with = "blacklist")]
    pub whitelist: Option<PathBuf>,

    /// distccd's GSS-API principal deny list (with --auth). Accepted and ignored with a
    /// warning, as --whitelist.
    #[arg(long, value_name = "FILE")]
    pub blacklist: Option<PathBuf>,

    /// Print the GSS-API principal distccd would use (DISTCCD_PRINCIPAL), as distccd
    /// prints it, and exit.
    #[arg(long)]
    pub show_principal: bool,

    /// Print the version (distccd's first lines: name, version, target; protocols and
    /// default port), then swarmccd's own details, and exit.
    #[arg(long)]
    pub version: bool,

    /// Serve statistics on --stats-port, at the --listen address, to allowed clients:
    /// distccd's <distccstats> page for any request, Prometheus metrics for
    /// GET /metrics.
    #[arg(long)]
    pub stats: bool,

    /// TCP port of the statistics listener (with --stats) [default: 3633].
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub stats_port: Option<u16>,

    /// Require swarmcc clients to authenticate with the pre-shared key in FILE (hex,
    /// at least 32 bytes, only the owner may access it: mode 0600). Plain distcc clients
    /// are refused with the reason, unless --allow-unauthenticated lists them. Read at
    /// startup, before privileges are dropped.
    #[arg(long, value_name = "FILE")]
    pub auth_key_file: Option<PathBuf>,

    /// With --auth-key-file: plain distcc clients from ADDR[/BITS] may still compile
    /// without authenticating (repeatable, same syntax as --allow; they must be allowed
    /// by --allow too).
    #[arg(long, value_name = "ADDR[/BITS]", requires = "auth_key_file")]
    pub allow_unauthenticated: Vec<String>,

    /// Write a new random key for --auth-key-file to FILE (32 bytes as hex, mode 0600;
    /// an existing file is never overwritten) and exit. Copy it to each client as
    /// ~/.distcc/auth.key (or where SWARMCC_AUTH_KEY_FILE points) and list the server
    /// there with ,auth.
    #[arg(long, value_name = "FILE")]
    pub gen_auth_key: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("swarmccd").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
        assert_eq!(DEFAULT_PORT, crate::server::DEFAULT_PORT);
    }

    #[test]
    fn distccd_init_script_flags() {
        let c = parse(&[
            "--daemon",
            "--allow",
            "10.0.0.0/8",
            "-a",
            "127.0.0.1",
            "--listen",
            "127.0.0.1",
            "-p",
            "3700",
            "-j",
            "4",
            "-N",
            "10",
            "--pid-file",
            "/run/d.pid",
            "--log-file",
            "/var/log/d.log",
            "--log-level",
            "debug",
            "--no-detach",
            "--user",
            "distccd",
            "--job-lifetime",
            "600",
            "--zeroconf",
            "--stats",
            "--stats-port",
            "3633",
            "--no-fork",
            "--no-fifo",
            "--make-me-a-botnet",
        ]);
        assert_eq!(c.allow, ["10.0.0.0/8", "127.0.0.1"]);
        assert_eq!(c.port, 3700);
        assert_eq!(c.jobs, Some(4));
        assert_eq!(c.nice, 10);
        assert!(c.daemon && c.no_detach && c.enable_tcp_insecure);
        assert_eq!(c.job_lifetime, 600);
    }

    #[test]
    fn auth_flags() {
        let c = parse(&[
            "--auth-key-file",
            "/etc/swarmcc/auth.key",
            "--allow-unauthenticated",
            "10.0.0.0/24",
            "--allow-unauthenticated",
            "::1",
        ]);
        assert_eq!(
            c.auth_key_file.as_deref(),
            Some(std::path::Path::new("/etc/swarmcc/auth.key"))
        );
        assert_eq!(c.allow_unauthenticated, ["10.0.0.0/24", "::1"]);
        // Exempting peers from a requirement that does not exist is a mistake.
        assert!(Cli::try_parse_from(["swarmccd", "--allow-unauthenticated", "10.0.0.1"]).is_err());
        assert!(parse(&["--gen-auth-key", "k"]).gen_auth_key.is_some());
    }

    #[test]
    fn defaults_and_bounds() {
        let c = parse(&[]);
        assert_eq!(c.port, 3632);
        assert_eq!(c.nice, 5);
        assert_eq!(c.jobs, None);
        assert_eq!(c.log_level, "notice");
        let no = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("swarmccd").chain(args.iter().copied())).is_err()
        };
        assert!(no(&["-j", "0"]));
        assert!(no(&["-p", "0"]));
        assert!(no(&["--bogus"]));
        assert_eq!(parse(&["--nice", "-3"]).nice, -3);
    }
}
