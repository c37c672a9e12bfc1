//! A job's use of the compile cache (keys and the store are `crate::cache`): its key,
//! made once from the preprocessed source however many hosts are tried; the local
//! cache in `SWARMCC_CACHE_DIR` (default `$DISTCC_DIR/cache`), which answers a repeat
//! build with no network at all; and storing there what a host sent back.

use std::cell::{Cell, OnceCell};

use crate::cache::{self, Cache, Entry, Key, Lookup};
use crate::config::{CacheMode, ClientConfig};
use crate::protocol::Reply;
use crate::toolchain::LazyIdentity;

use super::preprocess::Preprocessor;

/// The caches one job may use, and its key once made.
pub(in crate::client) struct JobCache {
    mode: CacheMode,
    /// The local cache, if it is on and could be opened.
    local: Option<Cache>,
    key: OnceCell<Option<Key>>,
    /// The result came from a host that did not check its compiler is ours.
    unchecked: Cell<bool>,
}

impl JobCache {
    pub(in crate::client) fn new(cfg: &ClientConfig) -> JobCache {
        let local = cfg
            .cache
            .local()
            .then(|| Cache::open_lazy(&cfg.cache_dir, cfg.cache_bytes));
        let local = match local {
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                log::warn!(
                    "local compile cache {} cannot be used: {e}",
                    cfg.cache_dir.display()
                );
                None
            }
            None => None,
        };
        JobCache {
            mode: cfg.cache,
            local,
            key: OnceCell::new(),
            unchecked: Cell::new(false),
        }
    }

    /// Whether hosts' farm caches are asked.
    pub(in crate::client) fn farm(&self) -> bool {
        self.mode.farm()
    }

    pub(in crate::client) fn has_local(&self) -> bool {
        self.local.is_some()
    }

    /// Whether the job was looked up in a cache (it has a key, and the local cache or
    /// a farm cache was asked): a result compiled after that is a miss.
    pub(in crate::client) fn looked_up(&self, farm_asked: bool) -> bool {
        matches!(self.key.get(), Some(Some(_))) && (self.local.is_some() || farm_asked)
    }

    /// The job's key, made the first time from the finished preprocessor's output
    /// (the preprocessor is waited for); `None` if the job has none (the reason is
    /// logged with `DISTCC_VERBOSE=1`).
    pub(in crate::client) fn key(
        &self,
        identity: &LazyIdentity<'_>,
        remote_argv: &[String],
        cpp: &mut Preprocessor<'_>,
    ) -> Option<&Key> {
        self.key
            .get_or_init(|| {
                let pre = cpp.wait().ok()?;
                let text = pre.text().ok()?;
                match cache::job_key(identity.get(), remote_argv, text) {
                    Ok(key) => {
                        log::debug!("cache key {key} (format {})", cache::key::FORMAT);
                        Some(key)
                    }
                    Err(why) => {
                        log::debug!("no cache key, not cached: {why}");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Looks the key up in the local cache. A damaged entry is removed and reported,
    /// and the job goes on as a miss.
    pub(in crate::client) fn local_hit(&self, key: &Key) -> Option<Entry> {
        let local = self.local.as_ref()?;
        match local.lookup(key) {
            Lookup::Hit(entry) => {
                log::debug!("local cache hit for {key}");
                Some(entry)
            }
            Lookup::Miss => {
                log::debug!("local cache miss for {key}");
                None
            }
            Lookup::Damaged(why) => {
                log::warn!("local cache entry {key} is damaged: {why}; compiling it again");
                None
            }
        }
    }

    /// The result about to be written was not made by a compiler known to be ours
    /// (a plain distccd): it is not stored.
    pub(in crate::client) fn forget_key(&self) {
        self.unchecked.set(true);
    }

    /// Keeps a host's successful reply (checked on the way: whole, its MAC if any,
    /// unpacked) in the local cache, for the next build.
    pub(in crate::client) fn store_local(&self, reply: &Reply) {
        let (Some(local), Some(Some(key))) = (&self.local, self.key.get()) else {
            return;
        };
        if self.unchecked.get() {
            return;
        }
        let entry = Entry {
            status: reply.status,
            stdout: reply.stdout.clone(),
            stderr: reply.stderr.clone(),
            object: reply.object.clone(),
        };
        match local.store(key, &entry) {
            Ok(()) => log::debug!("stored {key} in the local cache"),
            Err(e) => log::warn!(
                "cannot store a result in the local cache {}: {e}",
                local.dir().display()
            ),
        }
    }
}
