//! The compile cache: a job's result kept under its key, so that the same job asked
//! again (another build, another machine of the farm) is answered without compiling.
//! swarmccd keeps one shared by all its clients (the farm cache); each swarmcc user
//! keeps one in `$DISTCC_DIR/cache` (the local cache), which answers repeat builds with
//! no network at all.
//!
//! `key` makes the key of a C job, the same on both sides; `entry` is what an entry
//! holds; `rustc` is both for a rustc job, made by the server alone from the request
//! it received (its own key domain and entry kind). The store is a keyed [`BlobStore`]: written to a temporary name, synced and
//! renamed (a torn write is never found under a key), bounded (least recently used
//! first), and every entry checked against its own sha256 when read: a damaged one is
//! removed, reported and treated as a miss, never served.

pub mod entry;
pub mod key;
pub mod rustc;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::blobs::BlobStore;

pub use entry::Entry;
pub use key::{job_key, Key};

/// What a lookup found (a C job's [`Entry`], or a rustc job's [`rustc::Entry`]).
#[derive(Debug)]
pub enum Lookup<E = Entry> {
    Hit(E),
    Miss,
    /// The entry was there but damaged (and is now removed): a miss, and why.
    Damaged(String),
}

/// What a store has done since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub hits: u64,
    pub misses: u64,
    pub stored: u64,
    pub evicted: u64,
    pub corrupt: u64,
    pub bytes: u64,
    pub entries: u64,
}

/// A cache in one directory.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    store: BlobStore,
    max_bytes: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    stored: AtomicU64,
    corrupt: AtomicU64,
}

impl Cache {
    /// Opens (creating it) the cache in `dir`, at most `max_bytes` in size.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Cache> {
        Self::with_store(dir, max_bytes, BlobStore::open_keyed(dir, max_bytes)?)
    }

    /// [`open`](Self::open) for one job of a short-lived process sharing the directory
    /// with others (the client): the directory is read only if something is stored.
    pub fn open_lazy(dir: &Path, max_bytes: u64) -> io::Result<Cache> {
        Self::with_store(dir, max_bytes, BlobStore::open_keyed_lazy(dir, max_bytes)?)
    }

    fn with_store(dir: &Path, max_bytes: u64, store: BlobStore) -> io::Result<Cache> {
        Ok(Cache {
            dir: dir.to_owned(),
            store,
            max_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Looks `key` up, and counts what it found.
    pub fn lookup(&self, key: &Key) -> Lookup {
        self.lookup_as(key, entry::MAGIC, Entry::decode)
    }

    /// Looks a rustc job's `key` up ([`rustc::job_key`]), and counts what it found.
    pub fn lookup_rustc(&self, key: &Key) -> Lookup<rustc::Entry> {
        self.lookup_as(key, rustc::MAGIC, rustc::Entry::decode)
    }

    /// Looks up an entry of the kind that begins with `magic`. One of the other kind
    /// (a C client can send any key, a rustc job's too) is a miss, and stays.
    fn lookup_as<E>(
        &self,
        key: &Key,
        magic: &[u8; 8],
        decode: fn(&[u8]) -> Result<E, String>,
    ) -> Lookup<E> {
        let other = |bytes: &[u8]| {
            [entry::MAGIC, rustc::MAGIC]
                .iter()
                .any(|m| *m != magic && bytes.starts_with(*m))
        };
        let found = match self.store.get(key.as_str()) {
            Ok(bytes) if other(&bytes) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                return Lookup::Miss;
            }
            Ok(bytes) => decode(&bytes).map_err(|why| {
                // Whole (its checksum holds) but not an entry we can read: a layout
                // from another version, or written by something else. Gone either way.
                self.store.remove(key.as_str());
                format!(
                    "{}: {why}; removed",
                    self.store.path_of(key.as_str()).display()
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                return Lookup::Miss;
            }
            Err(e) => Err(e.to_string()),
        };
        match found {
            Ok(entry) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Lookup::Hit(entry)
            }
            Err(why) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                self.corrupt.fetch_add(1, Ordering::Relaxed);
                Lookup::Damaged(why)
            }
        }
    }

    /// Stores a successful compile's result under `key`.
    pub fn store(&self, key: &Key, entry: &Entry) -> io::Result<()> {
        self.put(key, entry.status, || entry.encode())
    }

    /// Stores a successful rustc job's reply under `key` ([`rustc::job_key`]).
    pub fn store_rustc(&self, key: &Key, entry: &rustc::Entry) -> io::Result<()> {
        self.put(key, entry.reply.status, || entry.encode())
    }

    /// Stores an entry whose compile ended with `status`: only successes are kept.
    fn put(&self, key: &Key, status: u32, encode: impl FnOnce() -> Vec<u8>) -> io::Result<()> {
        if status != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "only successful compiles are cached",
            ));
        }
        self.store.put(key.as_str(), &encode())?;
        self.stored.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub fn counts(&self) -> Counts {
        let (bytes, entries) = self.store.usage();
        Counts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
            evicted: self.store.evicted(),
            corrupt: self.corrupt.load(Ordering::Relaxed),
            bytes,
            entries: entries as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const GCC: &str = "gcc version 12.2.0 (Debian 12.2.0-14); target x86_64-linux-gnu";

    fn job(n: u8) -> (Key, Entry) {
        let argv: Vec<String> = ["gcc", "-c", "a.c", "-o", "a.o"].map(String::from).into();
        let key = job_key(GCC, &argv, &[n]).unwrap();
        let entry = Entry {
            object: vec![n; 3000],
            stderr: b"warning\n".to_vec(),
            ..Entry::default()
        };
        (key, entry)
    }

    #[test]
    fn hits_misses_and_damage_are_told_apart_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1 << 20).unwrap();
        let (key, entry) = job(1);
        assert!(matches!(cache.lookup(&key), Lookup::Miss));
        cache.store(&key, &entry).unwrap();
        match cache.lookup(&key) {
            Lookup::Hit(e) => assert_eq!(e, entry),
            other => panic!("{other:?}"),
        }
        let failed = Entry {
            status: 1 << 8,
            ..Entry::default()
        };
        assert!(cache.store(&job(2).0, &failed).is_err());
        let path = dir.path().join(key.as_str());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
        match cache.lookup(&key) {
            Lookup::Damaged(why) => assert!(why.contains("damaged"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(cache.lookup(&key), Lookup::Miss));
        let c = cache.counts();
        assert_eq!((c.hits, c.misses, c.stored, c.corrupt), (1, 3, 1, 1));
        assert_eq!((c.entries, c.bytes), (0, 0));
    }

    #[test]
    fn an_entry_of_the_other_kind_is_a_miss_and_stays() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1 << 20).unwrap();
        let (key, entry) = job(3);
        cache.store(&key, &entry).unwrap();
        assert!(matches!(cache.lookup_rustc(&key), Lookup::Miss));
        let request = crate::protocol::rustc::RustcRequest::default();
        let rkey = rustc::job_key("rustc 1.95.0", &request, &Default::default());
        let rentry = rustc::Entry::default();
        cache.store_rustc(&rkey, &rentry).unwrap();
        assert!(matches!(cache.lookup(&rkey), Lookup::Miss));
        match (cache.lookup(&key), cache.lookup_rustc(&rkey)) {
            (Lookup::Hit(e), Lookup::Hit(r)) => assert_eq!((e, r), (entry, rentry)),
            other => panic!("{other:?}"),
        }
        assert_eq!(cache.counts().corrupt, 0);
    }

    #[test]
    fn the_cache_stays_within_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 10_000).unwrap();
        for n in 0..10 {
            let (key, entry) = job(n);
            cache.store(&key, &entry).unwrap();
        }
        let c = cache.counts();
        assert!(c.bytes <= 10_000 && c.entries == 3, "{c:?}");
        assert_eq!(c.evicted, 7);
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(on_disk, c.bytes);
    }
}
