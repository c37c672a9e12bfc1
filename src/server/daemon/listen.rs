//! The listening sockets: the job port (with the IPv4 fallback of the wildcard
//! default) and `--stats`'s, opened while still root.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener};

use crate::exit::ExitCode;
use crate::server::access;
use crate::server::cli::Cli;
use crate::server::ServerConfig;

use super::options::{default_listen, parse_listen};
use super::StartError;

/// distccd's default `--stats-port`.
pub const DEFAULT_STATS_PORT: u16 = 3633;

/// The sockets a listening server serves on.
pub(super) struct Listening {
    pub(super) listener: TcpListener,
    /// The address actually bound (maybe the IPv4 fallback of `[::]`).
    pub(super) local: SocketAddr,
    /// `--stats`: on the same address, its own port.
    pub(super) stats: Option<TcpListener>,
}

impl Listening {
    /// Binds the job port (`--listen`, `--port`) and, with `--stats`, the stats port.
    pub(super) fn open(
        cli: &Cli,
        cfg: &ServerConfig,
        allow_given: bool,
    ) -> Result<Self, StartError> {
        let listen = match &cli.listen {
            Some(text) => parse_listen(text)?,
            None => default_listen(allow_given, &cfg.allow),
        };
        let listener = bind(listen, cli.port)?;
        let local = listener
            .local_addr()
            .map_err(|e| StartError::new(ExitCode::BindFailed, format!("bound socket: {e}")))?;
        // On the address actually bound, which may be the IPv4 fallback of [::].
        let stats = if cli.stats {
            let port = cli.stats_port.unwrap_or(DEFAULT_STATS_PORT);
            let addr = SocketAddr::new(local.ip(), port);
            Some(TcpListener::bind(addr).map_err(|e| {
                StartError::new(
                    ExitCode::BindFailed,
                    format!("cannot listen on {addr} for --stats: {e}"),
                )
            })?)
        } else {
            None
        };
        Ok(Listening {
            listener,
            local,
            stats,
        })
    }
}

fn bind(ip: IpAddr, port: u16) -> Result<TcpListener, StartError> {
    let addr = SocketAddr::new(ip, port);
    match TcpListener::bind(addr) {
        Ok(l) => Ok(l),
        // A host without IPv6: fall back to IPv4 for the wildcard default.
        Err(e) if ip == IpAddr::V6(Ipv6Addr::UNSPECIFIED) => {
            log::warn!("cannot listen on {addr} ({e}); listening on IPv4 only");
            bind(access::ANY_V4, port)
        }
        Err(e) => Err(StartError::new(
            ExitCode::BindFailed,
            format!("cannot listen on {addr}: {e}"),
        )),
    }
}
