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

    /// The result is stored if the compile works.
    pub(super) fn caching(&self) -> bool {
        self.ext.as_ref().is_some_and(|e| e.cache)
    }
}

/// What an extension request asked for, as far as this server speaks it.
#[derive(Debug, Clone)]
pub(super) struct ExtJob {
    pub(super) zstd: bool,
    pub(super) keepalive: bool,
    /// The client's compiler identity; empty if it did not say.
    pub(super) identity: String,
    /// The client asked for the farm cache (its key comes before the request).
    pub(super) asked_cache: bool,
    /// This connection may use the farm cache: it is listed in the features we answer,
    /// asked or not, so that swarmcc learns it.
    pub(super) offer_cache: bool,
    /// Store the result if the compile works (the key was sent and missed, or the
    /// client named its compiler without asking for the cache).
    pub(super) cache: bool,
    /// The accepted features have been sent already (at once, when the cache was
    /// asked for).
    pub(super) prelude_sent: bool,
}

impl ExtJob {
    pub(super) fn from_preamble(p: &Preamble) -> Self {
        ExtJob {
            zstd: p.has(ext::ZSTD),
            keepalive: p.has(ext::KEEPALIVE),
            identity: p.identity.clone(),
            asked_cache: p.has(ext::CACHE),
            offer_cache: false,
            cache: false,
            prelude_sent: false,
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
        if self.offer_cache {
            f.push(ext::CACHE);
        }
        f
    }
}
