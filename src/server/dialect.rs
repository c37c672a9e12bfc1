//! How a connection speaks: plain distcc in some version, or swarmcc's extension
//! (features negotiated in the request's preamble). Read by `request`, honoured by
//! `reply`.

use crate::protocol::ext::{self, Preamble};
use crate::protocol::Version;

/// How a connection speaks: plain distcc in some version, or swarmcc's extension
/// (a protocol-1 request and reply with the features the client asked for).
#[derive(Debug, Clone)]
pub(super) struct Dialect {
    pub(super) version: Version,
    pub(super) ext: Option<ExtJob>,
}

impl Dialect {
    pub(super) fn plain(version: Version) -> Self {
        Dialect { version, ext: None }
    }

    pub(super) fn zstd(&self) -> bool {
        self.ext.as_ref().is_some_and(|e| e.zstd)
    }

    pub(super) fn keepalive(&self) -> bool {
        self.ext.as_ref().is_some_and(|e| e.keepalive)
    }
}

/// What an extension request asked for, as far as this server speaks it.
#[derive(Debug, Clone)]
pub(super) struct ExtJob {
    pub(super) zstd: bool,
    pub(super) keepalive: bool,
    /// The client's compiler identity; empty if it did not say.
    pub(super) identity: String,
}

impl ExtJob {
    pub(super) fn from_preamble(p: &Preamble) -> Self {
        ExtJob {
            zstd: p.has(ext::ZSTD),
            keepalive: p.has(ext::KEEPALIVE),
            identity: p.identity.clone(),
        }
    }

    pub(super) fn accepted(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.zstd {
            f.push(ext::ZSTD);
        }
        if self.keepalive {
            f.push(ext::KEEPALIVE);
        }
        f
    }
}
