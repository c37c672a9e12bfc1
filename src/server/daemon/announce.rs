//! The startup lines of the log: where the server listens, its limits, sandbox,
//! statistics, access, authentication and compiler policy.

use std::fs;
use std::net::{SocketAddr, TcpListener};

use crate::server::cli::Cli;
use crate::server::ServerConfig;

/// The startup lines of the log: where it listens, its limits, sandbox, statistics,
/// access, authentication and compiler policy.
pub(super) fn announce(
    cfg: &ServerConfig,
    cli: &Cli,
    local: SocketAddr,
    stats: Option<&TcpListener>,
    allow_given: bool,
) {
    log::info!(
        "swarmccd {} listening on {local}",
        env!("CARGO_PKG_VERSION")
    );
    log::info!(
        "allowing up to {} active jobs, {} more waiting, {} connections",
        cfg.jobs,
        cfg.max_queued,
        cfg.max_connections
    );
    if let Some(l) = cfg.lifetime {
        log::info!(
            "--lifetime: accepting connections for {}s, then exiting once the jobs in flight are done",
            l.as_secs()
        );
    }
    if !cfg.sandbox {
        log::warn!("--no-sandbox: compilers may write anywhere this user can");
    } else if crate::sandbox::available() {
        log::info!("compilers confined with Landlock: writes only inside their job directory");
    } else {
        log::warn!("this kernel has no Landlock: compilers run unconfined");
    }
    if let Some(addr) = stats.and_then(|l| l.local_addr().ok()) {
        log::info!(
            "statistics on {addr}: distccd's <distccstats> page, and GET /metrics for Prometheus"
        );
    }
    if allow_given {
        log::info!("allowed clients: {}", cfg.allow);
    } else {
        log::warn!(
            "no --allow option specified: serving this machine only ({}); \
             pass --allow ADDR[/BITS] or --allow-private to serve other hosts",
            cfg.allow
        );
    }
    if let (Some(policy), Some(path)) = (&cfg.auth, &cli.auth_key_file) {
        log::info!(
            "clients must authenticate with the key in {}",
            path.display()
        );
        if !policy.allow_unauthenticated.is_empty() {
            log::info!(
                "plain distcc clients allowed without authentication from: {}",
                policy.allow_unauthenticated
            );
        }
    }
    announce_compilers(cfg);
}

/// Which compilers the server will run, and a warning when that is none at all.
fn announce_compilers(cfg: &ServerConfig) {
    if let Some(list) = &cfg.admission.cmdlist {
        log::info!(
            "compilers allowed by DISTCC_CMDLIST {} ({} entries)",
            list.source.display(),
            list.len()
        );
    } else if cfg.admission.insecure {
        log::warn!("--enable-tcp-insecure: any compiler a client names will run");
    } else {
        let dirs = cfg
            .admission
            .whitelist_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        log::info!("compiler whitelist: {dirs}");
        // distccd refuses to start in this case; we serve (refusing each job with its
        // reason) but say at once what is missing.
        let whitelisted = cfg
            .admission
            .whitelist_dirs
            .iter()
            .filter_map(|d| fs::read_dir(d).ok())
            .flat_map(|entries| entries.flatten())
            .count();
        if whitelisted == 0 {
            log::warn!(
                "no compiler is whitelisted in {dirs}: every job will be refused; create the \
                 links with `swarmcc --install-shims /usr/lib/swarmcc/bin` (or install \
                 distcc), or pass --whitelist-dir DIR"
            );
        }
    }
    log::debug!(
        "compiler search path: {}",
        std::env::join_paths(&cfg.admission.search_path)
            .unwrap_or_default()
            .to_string_lossy()
    );
    log::debug!("job directories in {}", cfg.tmpdir.display());
}
