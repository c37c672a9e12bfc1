//! One remote compile: local preprocessing overlapped with connecting, the request, and
//! the reply — or the reason it failed, so the caller can pick another host or fall back.
//!
//! Sockets are driven through `conn`; bytes are made and parsed by `protocol`. The
//! phases a monitor shows (Preprocess, Send, Compile, Receive) are written here, where
//! they begin.
//!
//! With a `,auth` host the attempt first runs the authentication handshake
//! (`protocol::auth`, keys and MACs in `crate::auth`), MACs the request as it is sent,
//! and accepts the reply only once its MAC checks out, so nothing a man in the middle
//! changed, nor anything from a server without the key, is ever written.
//!
//! Steps: `conversation` (the dialect, and the order of the steps), `handshake`
//! (authentication), `send` (the request), `receive` (the reply); `error` says why an
//! attempt failed, in the terms the job decides on.

mod conversation;
mod error;
mod handshake;
mod receive;
mod send;

use std::path::Path;
use std::time::Duration;

use crate::auth;
use crate::cache::Key;
use crate::conn::Conn;
use crate::hosts::{HostKind, HostSpec};
use crate::protocol::{Reply, Version};
use crate::state::{Phase, StateFile};
use crate::toolchain::LazyIdentity;
use crate::transport::{Dialer, Link, Route, Tunnel};

pub use crate::client::preprocess::Preprocessor;
pub use error::{AttemptError, AuthFailure};

/// Timeouts of one attempt, kept apart so a long compile is not taken for a dead link.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub io: Duration,
    pub compile: Duration,
    /// Silence that means a swarmccd sending keep-alives is gone.
    pub stall: Duration,
}

/// What the attempt talks to.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub route: Route<'a>,
    /// How routes are opened (`DISTCC_SSH`, `DISTCC_SOCKS_PROXY`).
    pub dialer: &'a Dialer,
    pub version: Version,
    /// The slot held on the host (for the monitor's `host[slot]`).
    pub slot: u32,
    /// Where the phases go (none without a state file).
    pub state: Option<&'a StateFile>,
    /// `,auth` hosts: the key file to authenticate with. `None`: plain distcc.
    pub auth_key: Option<&'a Path>,
    /// Hosts that speak (or may speak) swarmcc's extension: our compiler's identity,
    /// sent so that the server refuses a different compiler. `None`: plain distcc.
    pub ext: Option<&'a LazyIdentity<'a>>,
    /// A host that offered its farm cache: the job's key, asked before the request.
    pub cache_key: Option<&'a Key>,
}

impl Target<'_> {
    /// Shows the attempt's phase in the state file, on this host and slot.
    fn phase(&self, phase: Phase) {
        if let Some(st) = self.state {
            st.phase_on(phase, self.route.host(), self.slot);
        }
    }
}

/// How a host of the list is reached; `None` for `localhost` (no daemon: jobs run
/// here) and for REAPI engines (no distcc conversation: `client::reapi`).
pub fn route_of(host: &HostSpec) -> Option<Route<'_>> {
    match &host.kind {
        HostKind::Localhost | HostKind::Reapi(_) => None,
        HostKind::Tcp { host, port } => Some(Route::Tcp { host, port: *port }),
        HostKind::Ssh {
            user,
            host,
            command,
        } => Some(Route::Ssh {
            user: user.as_deref(),
            host,
            command: command.as_deref(),
        }),
    }
}

/// A reply, and whether the host offered the extension after it.
#[derive(Debug)]
pub struct Answer {
    pub reply: Reply,
    /// The host is a swarmccd that speaks the extension (it advertised it, or just
    /// answered in it).
    pub offers_ext: bool,
    /// It listed its farm cache among its features.
    pub offers_cache: bool,
    /// What its farm cache said of the job's key.
    pub farm: FarmCache,
    /// The host checked that its compiler is ours (the extension, with our compiler's
    /// identity): only such a result may be kept in the local cache under our key.
    pub compiler_checked: bool,
}

/// What a host's farm cache said of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FarmCache {
    /// No key was sent (no key, not offered, or an authenticated session).
    NotAsked,
    /// The reply is the stored result: nothing was compiled.
    Hit,
    /// The host compiled the job (and stored the result, if it worked).
    Miss,
    /// A REAPI engine answered from its own action cache (`client::reapi`): nothing
    /// was compiled, and swarmcc's own key was not asked.
    ActionCache,
}

/// Runs one remote compile on `target`. The preprocessor is started before connecting,
/// so both overlap; the request header goes out while it still runs.
pub fn attempt(
    target: &Target<'_>,
    remote_argv: &[String],
    cpp: &mut Preprocessor<'_>,
    timeouts: Timeouts,
) -> Result<Answer, AttemptError> {
    cpp.start();
    // Read the key before connecting: without it there is nothing to say to the host.
    let key = match target.auth_key {
        Some(path) => Some(auth::load_key_file(path).map_err(AuthFailure::Local)?),
        None => None,
    };
    let Link { stream, tunnel } = target
        .dialer
        .open(target.route, timeouts.connect)
        .map_err(AttemptError::Connect)?;
    let mut conn = Conn::new(stream, timeouts.io);
    let result =
        conversation::converse(target, &mut conn, key.as_ref(), remote_argv, cpp, timeouts);
    // Closed before ssh is reaped: its end of the connection then ends too.
    drop(conn);
    match tunnel {
        Some(tunnel) => over_ssh(tunnel, result),
        None => result,
    }
}

/// The result of an attempt over ssh, once ssh is reaped: a conversation that failed
/// because ssh did (or the remote shell), not the server, is a failure to connect.
fn over_ssh(
    mut tunnel: Tunnel,
    result: Result<Answer, AttemptError>,
) -> Result<Answer, AttemptError> {
    match result {
        Err(AttemptError::Preprocess(e)) => {
            tunnel.abandon();
            Err(AttemptError::Preprocess(e))
        }
        Err(e) => {
            let why = tunnel.failure();
            tunnel.abandon();
            Err(why.map_or(e, AttemptError::Connect))
        }
        Ok(answer) => {
            tunnel.close();
            Ok(answer)
        }
    }
}
