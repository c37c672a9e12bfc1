//! Flags and environment to the server's configuration: the allow list, the
//! environment read once ([`ServerEnv`]), `--auth-key-file`, `--listen`, and one
//! warning per distccd option that is accepted but does nothing here.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exit::ExitCode;
use crate::server::access::{self, AllowList};
use crate::server::authn::AuthPolicy;
use crate::server::cli::Cli;
use crate::server::whitelist::{compiler_search_path, Admission, CmdList};
use crate::server::ServerConfig;

use super::StartError;

/// The values `swarmccd` takes from its environment, read once.
#[derive(Debug, Clone, Default)]
pub struct ServerEnv {
    pub distccd_path: Option<OsString>,
    pub path: Option<OsString>,
    pub cmdlist: Option<PathBuf>,
    pub cmdlist_numwords: Option<String>,
    pub save_temps: bool,
    pub tmpdir: PathBuf,
    /// `DISTCCD_PRINCIPAL`, which only `--show-principal` prints.
    pub principal: Option<String>,
}

impl ServerEnv {
    pub fn from_process() -> Self {
        let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        ServerEnv {
            distccd_path: non_empty("DISTCCD_PATH"),
            path: non_empty("PATH"),
            cmdlist: non_empty("DISTCC_CMDLIST").map(PathBuf::from),
            cmdlist_numwords: std::env::var("DISTCC_CMDLIST_NUMWORDS").ok(),
            save_temps: std::env::var("DISTCC_SAVE_TEMPS").is_ok_and(|v| v == "1"),
            tmpdir: std::env::temp_dir(),
            principal: std::env::var("DISTCCD_PRINCIPAL").ok(),
        }
    }
}

/// What the flags say about the allow list, and whether the user gave one at all.
pub fn allow_list(cli: &Cli) -> Result<(AllowList, bool), StartError> {
    let mut list = AllowList::default();
    for entry in &cli.allow {
        list.push(
            access::parse_allow(entry).map_err(|e| StartError::new(ExitCode::BadArguments, e))?,
        );
    }
    if cli.allow_private {
        list.push(AllowList::private_nets());
    }
    if list.is_empty() {
        return Ok((AllowList::loopback(), false));
    }
    Ok((list, true))
}

/// Builds the server configuration from the flags and the environment. Reads the
/// `DISTCC_CMDLIST` file and the `--auth-key-file` (so both are read before
/// privileges are dropped); touches nothing else.
pub fn config(cli: &Cli, env: &ServerEnv, allow: AllowList) -> Result<ServerConfig, StartError> {
    let mut admission = Admission::whitelist(&cli.whitelist_dir, Vec::new());
    admission.search_path = compiler_search_path(
        env.distccd_path.as_deref(),
        env.path.as_deref(),
        &admission.whitelist_dirs,
    );
    admission.insecure = cli.enable_tcp_insecure;
    if let Some(path) = &env.cmdlist {
        let words = match env.cmdlist_numwords.as_deref() {
            None | Some("") => 1,
            Some(text) => text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    StartError::new(
                        ExitCode::BadArguments,
                        format!(
                            "bad DISTCC_CMDLIST_NUMWORDS value {text:?}: expected a number ≥ 1"
                        ),
                    )
                })?,
        };
        let list = CmdList::load(path, words).map_err(|e| {
            StartError::new(
                ExitCode::IoError,
                format!("cannot read DISTCC_CMDLIST file {}: {e}", path.display()),
            )
        })?;
        admission.cmdlist = Some(list);
    }
    let mut cfg = ServerConfig::new(allow, admission);
    if let Some(j) = cli.jobs {
        cfg.jobs = j as usize;
    }
    cfg.max_queued = cli.max_queued.unwrap_or(cfg.jobs * 2 + 4);
    cfg.max_connections = cli
        .max_connections
        .map_or(cfg.jobs + cfg.max_queued + 32, |n| n as usize);
    cfg.request_timeout = Duration::from_secs(cli.request_timeout);
    cfg.sandbox = !cli.no_sandbox;
    if !cli.no_direct_stages {
        cfg.stage_recorder = std::env::current_exe().ok();
    }
    let source_bytes = cli.max_source_size as usize * 1024 * 1024;
    cfg.limits.max_body = u32::try_from(source_bytes).unwrap_or(u32::MAX);
    cfg.limits.max_decompressed = source_bytes;
    cfg.io_timeout = Duration::from_secs(cli.io_timeout);
    cfg.job_lifetime = positive_seconds(cli.job_lifetime);
    cfg.lifetime = positive_seconds(cli.lifetime);
    cfg.tmpdir = env.tmpdir.clone();
    cfg.save_temps = env.save_temps;
    cfg.auth = auth_policy(cli)?;
    if cli.rustc {
        cfg.rustc = Some(crate::server::RustcConfig {
            cache_dir: cli.rustc_cache.clone(),
            cache_bytes: cli.rustc_cache_size << 20,
            toolchains: cli.rustc_toolchain.clone(),
        });
    }
    cfg.cache = (!cli.no_cache).then(|| crate::server::CacheConfig {
        dir: cli.cache_dir.clone(),
        bytes: cli.cache_size << 20,
    });
    Ok(cfg)
}

/// distccd's reading of a seconds option: 0 or less means "off".
fn positive_seconds(n: i64) -> Option<Duration> {
    u64::try_from(n)
        .ok()
        .filter(|&n| n > 0)
        .map(Duration::from_secs)
}

/// `--auth-key-file` and `--allow-unauthenticated`: reads and checks the key file (a
/// missing, short, or group- or world-accessible key stops the server, with the file's
/// name in the message).
fn auth_policy(cli: &Cli) -> Result<Option<AuthPolicy>, StartError> {
    let key = match &cli.auth_key_file {
        Some(path) => Some(
            crate::auth::load_key_file(path)
                .map_err(|e| StartError::new(ExitCode::BadArguments, e))?,
        ),
        // distccd's --auth: clients must authenticate, and none can (no GSS-API here).
        None if cli.auth => None,
        None => return Ok(None),
    };
    let mut allow_unauthenticated = AllowList::default();
    for entry in &cli.allow_unauthenticated {
        let nets = access::parse_allow(entry).map_err(|e| {
            // Same syntax as --allow; say which option was wrong.
            StartError::new(
                ExitCode::BadArguments,
                e.replacen("--allow", "--allow-unauthenticated", 1),
            )
        })?;
        allow_unauthenticated.push(nets);
    }
    Ok(Some(AuthPolicy {
        key,
        allow_unauthenticated,
    }))
}

/// The address to listen on when `--listen` is not given (see `--help`).
pub fn default_listen(allow_given: bool, allow: &AllowList) -> IpAddr {
    if !allow_given {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else if allow
        .nets()
        .iter()
        .any(|n| matches!(n, ipnet::IpNet::V6(_)))
    {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        access::ANY_V4
    }
}

/// One warning per option that is accepted for distccd's sake but cannot do here what
/// it does there.
pub(super) fn warn_ignored_options(cli: &Cli) {
    let principal_list = cli.whitelist.as_ref().or(cli.blacklist.as_ref());
    let notes = [
        (
            cli.zeroconf && cli.inetd,
            "--zeroconf needs a listening server, not --inetd; ignored".to_string(),
        ),
        (
            cli.stats_port.is_some() && !cli.stats,
            "--stats-port has no effect without --stats; ignored".into(),
        ),
        (
            cli.stats && cli.inetd,
            "--stats needs a listening server, not --inetd; ignored".into(),
        ),
        (
            cli.auth && cli.auth_key_file.is_none(),
            "--auth: swarmccd has no GSS-API, so no client can authenticate the way distcc \
             clients do: every request will be refused as unauthenticated; give \
             --auth-key-file FILE to serve swarmcc clients holding that key"
                .into(),
        ),
        (
            cli.auth && cli.auth_key_file.is_some(),
            "--auth: authentication is by the pre-shared key of --auth-key-file, not GSS-API"
                .into(),
        ),
        (
            principal_list.is_some(),
            format!(
                "--{}list {}: GSS-API principal lists do not apply (swarmccd authenticates \
                 keys, not Kerberos principals); ignored",
                if cli.whitelist.is_some() {
                    "white"
                } else {
                    "black"
                },
                principal_list
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
        ),
        (
            cli.lifetime > 0 && cli.inetd,
            "--lifetime has no effect with --inetd (one connection, bounded by its own \
             timeouts); ignored"
                .into(),
        ),
    ];
    for (given, what) in notes {
        if given {
            log::warn!("{what}");
        }
    }
}

/// `path` made absolute against the current directory (which detaching changes).
pub(super) fn absolute(path: &Path) -> Result<PathBuf, StartError> {
    std::path::absolute(path).map_err(|e| {
        StartError::new(
            ExitCode::BadArguments,
            format!("bad path {}: {e}", path.display()),
        )
    })
}

/// `--listen` value: an IP literal (brackets allowed) or a host name (first address).
pub fn parse_listen(text: &str) -> Result<IpAddr, StartError> {
    let host = text.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    (host, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(|a| a.ip())
        .ok_or_else(|| {
            StartError::new(
                ExitCode::BadArguments,
                format!("bad --listen value {text:?}: not an address or a known host name"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::fs;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("swarmccd").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn no_allow_means_loopback_only() {
        let (list, given) = allow_list(&cli(&[])).unwrap();
        assert!(!given);
        assert_eq!(list, AllowList::loopback());
        assert_eq!(
            default_listen(given, &list),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
    }

    #[test]
    fn listen_default_follows_the_allow_list() {
        let (list, given) = allow_list(&cli(&["-a", "10.0.0.0/8"])).unwrap();
        assert!(given);
        assert_eq!(default_listen(given, &list), access::ANY_V4);
        let (list, given) = allow_list(&cli(&["-a", "10.0.0.0/8", "-a", "fd00::/8"])).unwrap();
        assert_eq!(
            default_listen(given, &list),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        );
        let (list, given) = allow_list(&cli(&["--allow-private"])).unwrap();
        assert!(given && list.allows("::1".parse().unwrap()));
    }

    #[test]
    fn bad_allow_is_an_argument_error() {
        let e = allow_list(&cli(&["-a", "10.0.0.0/99"])).unwrap_err();
        assert_eq!(e.code, ExitCode::BadArguments);
    }

    #[test]
    fn config_from_flags_and_env() {
        let env = ServerEnv {
            distccd_path: Some("/opt/cc/bin:/usr/lib/distcc".into()),
            path: Some("/usr/bin".into()),
            tmpdir: "/var/tmp".into(),
            save_temps: true,
            ..ServerEnv::default()
        };
        let c = cli(&["-j", "3", "--job-lifetime", "9", "--whitelist-dir", "/w"]);
        let cfg = config(&c, &env, AllowList::loopback()).unwrap();
        assert_eq!(cfg.jobs, 3);
        assert_eq!(cfg.job_lifetime, Some(Duration::from_secs(9)));
        assert_eq!(
            cfg.admission.search_path,
            vec![PathBuf::from("/opt/cc/bin")]
        );
        assert!(cfg.admission.whitelist_dirs.contains(&PathBuf::from("/w")));
        assert!(cfg.save_temps);
        assert_eq!(cfg.tmpdir, PathBuf::from("/var/tmp"));
    }

    #[test]
    fn cmdlist_from_env() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("cmds");
        fs::write(&list, "/opt/x/bin/gcc\n").unwrap();
        let env = ServerEnv {
            cmdlist: Some(list),
            cmdlist_numwords: Some("2".into()),
            ..ServerEnv::default()
        };
        let cfg = config(&cli(&[]), &env, AllowList::loopback()).unwrap();
        let adm = &cfg.admission;
        assert_eq!(
            adm.admit_compiler("bin/gcc").unwrap(),
            Path::new("/opt/x/bin/gcc")
        );
        let bad = ServerEnv {
            cmdlist_numwords: Some("zero".into()),
            ..env
        };
        assert!(config(&cli(&[]), &bad, AllowList::loopback()).is_err());
    }

    #[test]
    fn auth_key_file_is_read_and_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("auth.key");
        crate::auth::generate_key_file(&key).unwrap();
        let k = key.to_str().unwrap();
        let cfg = config(
            &cli(&[
                "--auth-key-file",
                k,
                "--allow-unauthenticated",
                "10.1.0.0/16",
            ]),
            &ServerEnv::default(),
            AllowList::loopback(),
        )
        .unwrap();
        let policy = cfg.auth.expect("auth configured");
        assert!(policy
            .allow_unauthenticated
            .allows("10.1.2.3".parse().unwrap()));
        assert!(!policy
            .allow_unauthenticated
            .allows("127.0.0.1".parse().unwrap()));
        let none = config(&cli(&[]), &ServerEnv::default(), AllowList::loopback()).unwrap();
        assert!(none.auth.is_none());

        let bad = config(
            &cli(&[
                "--auth-key-file",
                k,
                "--allow-unauthenticated",
                "10.0.0.0/99",
            ]),
            &ServerEnv::default(),
            AllowList::loopback(),
        )
        .unwrap_err();
        assert!(bad.message.contains("--allow-unauthenticated"), "{bad}");

        fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
        let e = config(
            &cli(&["--auth-key-file", k]),
            &ServerEnv::default(),
            AllowList::loopback(),
        )
        .unwrap_err();
        assert!(e.message.contains(k) && e.message.contains("0640"), "{e}");
    }

    #[test]
    fn listen_values() {
        assert_eq!(
            parse_listen("127.0.0.1").unwrap(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            parse_listen("[::1]").unwrap(),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        );
        assert!(parse_listen("no-such-host.invalid").is_err());
    }
}
