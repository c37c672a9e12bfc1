//! A job's use of the compile cache (keys and the store are `crate::cache`): its key,
//! made once from the preprocessed source however many hosts are tried; the local
//! cache in `SWARMCC_CACHE_DIR` (default `$DISTCC_DIR/cache`), which answers a repeat
//! build with no network at all; and storing there what a host sent back.

use std::cell::{Cell, OnceCell};
use std::path::PathBuf;

use crate::cache::{self, Cache, Entry, Key, Lookup};
use crate::config::{CacheMode, ClientConfig};
use crate::protocol::Reply;
use crate::toolchain::LazyIdentity;

use super::preprocess::Preprocessor;

/// The caches one job may use, and its key once made.
pub(in crate::client) struct JobCache {
    mode: CacheMode,
    /// The local cache's directory and bound, if it is on.
    local_dir: Option<(PathBuf, u64)>,
    /// The local cache, opened on first use (`None`: it could not be).
    local: OnceCell<Option<Cache>>,
    key: OnceCell<Option<Key>>,
    /// The result came from a host that did not check its compiler is ours.
    unchecked: Cell<bool>,
}

impl JobCache {
    pub(in crate::client) fn new(cfg: &ClientConfig) -> JobCache {
        JobCache {
            mode: cfg.cache,
            local_dir: cfg
                .cache
                .local()
                .then(|| (cfg.cache_dir.clone(), cfg.cache_bytes)),
            local: OnceCell::new(),
            key: OnceCell::new(),
            unchecked: Cell::new(false),
        }
    }

    /// Whether hosts' farm caches are asked.
    pub(in crate::client) fn farm(&self) -> bool {
        self.mode.farm()
    }

    /// Whether the local cache is worth a lookup: it is on and holds something. It
    /// holds only results of hosts that checked our compiler, so until one has, no
    /// job waits for its preprocessor (or asks the compiler who it is) to look.
    pub(in crate::client) fn has_local(&self) -> bool {
        self.local_dir.as_ref().is_some_and(|(dir, _)| {
            std::fs::read_dir(dir).is_ok_and(|mut items| items.next().is_some())
        })
    }

    fn local(&self) -> Option<&Cache> {
        self.local
            .get_or_init(|| {
                let (dir, bytes) = self.local_dir.as_ref()?;
                match Cache::open_lazy(dir, *bytes) {
                    Ok(cache) => Some(cache),
                    Err(e) => {
                        log::warn!("local compile cache {} cannot be used: {e}", dir.display());
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Whether the job was looked up in a cache (it has a key, and the local cache or
    /// a farm cache was asked): a result compiled after that is a miss.
    pub(in crate::client) fn looked_up(&self, farm_asked: bool) -> bool {
        matches!(self.key.get(), Some(Some(_))) && (self.local_dir.is_some() || farm_asked)
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
        let local = self.local()?;
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
                log::warn!("local cache: {why}; compiling it again");
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
    /// unpacked) in the local cache, for the next build; the key is made now if no
    /// lookup needed it.
    pub(in crate::client) fn store_local(
        &self,
        reply: &Reply,
        identity: &LazyIdentity<'_>,
        remote_argv: &[String],
        cpp: &mut Preprocessor<'_>,
    ) {
        if self.unchecked.get() || self.local_dir.is_none() || reply.status != 0 {
            return;
        }
        let Some(key) = self.key(identity, remote_argv, cpp) else {
            return;
        };
        let Some(local) = self.local() else {
            return;
        };
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
