//! A bounded, crash-safe store of files by content (sha256): where a server keeps the
//! inputs clients send once (a rustc job's sources and extern rlibs, `protocol::rustc`)
//! and, later, results keyed by content.
//!
//! Crash safety: an entry is written to a temporary name, synced, and renamed into
//! place, so a torn write is never found under a hash; and every read checks the
//! content against its hash, so a file damaged on disk after the fact is removed and
//! reported rather than served. Entries are read-only files, so a job that links one
//! into its directory cannot change it for the others.
//!
//! Bounded: the total size is kept under the limit by removing the least recently used
//! entries (use is counted in memory, and from the files' times after a restart). A
//! removed entry that is still linked into a job directory stays whole there.
//!
//! A keyed store ([`BlobStore::open_keyed`]) holds entries under a name chosen by its
//! user (the farm cache's job keys, `cache`) rather than their hash: each file then
//! ends with the sha256 of what precedes it, checked on every read as the name is in
//! a store by content. A keyed read also refreshes the file's time, so that processes
//! sharing one directory (every swarmcc of a build) agree on what was used last.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// The sha256 of `data`, as 64 lowercase hex digits.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Whether `hash` has the form of a sha256 in hex, so that it is safe as a file name.
pub fn is_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[derive(Debug)]
struct Entry {
    size: u64,
    /// A counter, larger for more recent use.
    used: u64,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<String, Entry>,
    total: u64,
    clock: u64,
    /// Entries removed to stay within the size, since the store was opened.
    evicted: u64,
    /// The directory has been read into the index (a lazy store reads it only
    /// when it first needs its size).
    scanned: bool,
}

/// How old a temporary file must be to be taken for the leftover of an interrupted
/// write rather than one in progress.
const LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// The length of a keyed entry's trailer: the sha256 of the content before it.
const TRAILER: usize = 32;

/// The store in one directory, shared by the threads of one process.
#[derive(Debug)]
pub struct BlobStore {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
    /// Entries are named by their user and end with their own sha256 (see the module
    /// documentation), rather than being named by it.
    keyed: bool,
}

impl BlobStore {
    /// Opens (creating it if need be) the store in `dir`, holding at most `max_bytes`;
    /// leftovers of interrupted writes are removed, entries found are indexed oldest
    /// first.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<BlobStore> {
        Self::open_as(dir, max_bytes, false)
    }

    /// Opens a keyed store: entries under names of the form of a sha256 chosen by the
    /// caller, each checked against the sha256 it ends with.
    pub fn open_keyed(dir: &Path, max_bytes: u64) -> io::Result<BlobStore> {
        Self::open_as(dir, max_bytes, true)
    }

    /// [`open_keyed`](Self::open_keyed) for a short-lived process: the directory is
    /// read only when something is stored, so that a lookup costs one file read however
    /// many entries the store holds.
    pub fn open_keyed_lazy(dir: &Path, max_bytes: u64) -> io::Result<BlobStore> {
        Self::unscanned(dir, max_bytes, true)
    }

    fn open_as(dir: &Path, max_bytes: u64, keyed: bool) -> io::Result<BlobStore> {
        let store = Self::unscanned(dir, max_bytes, keyed)?;
        store.scan()?;
        Ok(store)
    }

    fn unscanned(dir: &Path, max_bytes: u64, keyed: bool) -> io::Result<BlobStore> {
        fs::create_dir_all(dir).map_err(|e| named(e, "creating the store", dir))?;
        Ok(BlobStore {
            dir: dir.to_owned(),
            max_bytes,
            index: Mutex::new(Index::default()),
            keyed,
        })
    }

    /// Indexes what the directory holds, oldest first (leftovers of interrupted writes
    /// are removed), and trims it to its size.
    fn scan(&self) -> io::Result<()> {
        let dir = &self.dir;
        let mut found = Vec::new();
        for item in fs::read_dir(dir).map_err(|e| named(e, "reading the store", dir))? {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            // Removed meanwhile by another process sharing the directory.
            let Ok(meta) = item.metadata() else {
                continue;
            };
            if !is_hash(&name) || !meta.is_file() {
                // A write in progress in another process is left alone; one this old
                // was interrupted.
                let age = meta.modified().ok().and_then(|t| t.elapsed().ok());
                if age.is_none_or(|a| a > LEFTOVER_AGE) {
                    let _ = fs::remove_file(item.path());
                }
                continue;
            }
            let when = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            found.push((when, name, meta.len()));
        }
        found.sort();
        {
            let mut index = self.lock();
            index.entries.clear();
            index.total = 0;
            index.scanned = true;
            for (_, name, size) in found {
                index.clock += 1;
                let used = index.clock;
                index.total += size;
                index.entries.insert(name, Entry { size, used });
            }
        }
        self.evict();
        Ok(())
    }

    fn ensure_scanned(&self) -> io::Result<()> {
        if self.lock().scanned {
            return Ok(());
        }
        self.scan()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the entry for `hash` lives (whether or not it is there).
    pub fn path_of(&self, hash: &str) -> PathBuf {
        self.dir.join(hash)
    }

    /// Whether the store holds `hash`; counts as a use.
    pub fn contains(&self, hash: &str) -> bool {
        let mut index = self.lock();
        index.clock += 1;
        let now = index.clock;
        match index.entries.get_mut(hash) {
            Some(e) => {
                e.used = now;
                true
            }
            None => false,
        }
    }

    /// The bytes held and the number of entries.
    pub fn usage(&self) -> (u64, usize) {
        let _ = self.ensure_scanned();
        let index = self.lock();
        (index.total, index.entries.len())
    }

    /// How many entries were removed to stay within the size since the store opened.
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }

    /// Stores `data` under `hash`, which must be its sha256 (else `InvalidData`: the
    /// sender is confused or hostile, and nothing is stored).
    /// In a keyed store `hash` is the entry's name, of the same form, and any content
    /// goes under it.
    pub fn put(&self, hash: &str, data: &[u8]) -> io::Result<()> {
        if !is_hash(hash) || (!self.keyed && sha256_hex(data) != hash) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("content does not match its hash {hash}"),
            ));
        }
        self.ensure_scanned()?;
        if self.contains(hash) {
            return Ok(());
        }
        let trailer = self.keyed.then(|| Sha256::digest(data));
        let path = self.path_of(hash);
        let tmp = self.dir.join(format!(
            ".{hash}.{}.{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(data)?;
            if let Some(trailer) = &trailer {
                f.write_all(trailer)?;
            }
            f.sync_all()?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o444))?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(named(e, "writing", &path));
        }
        {
            let mut index = self.lock();
            index.clock += 1;
            let used = index.clock;
            let size = (data.len() + trailer.map_or(0, |_| TRAILER)) as u64;
            if index
                .entries
                .insert(hash.to_owned(), Entry { size, used })
                .is_none()
            {
                index.total += size;
            }
        }
        self.evict();
        Ok(())
    }

    /// The content of `hash`, checked against it. A damaged entry is removed and
    /// reported as `InvalidData`; a missing one as `NotFound`.
    pub fn get(&self, hash: &str) -> io::Result<Vec<u8>> {
        if self.keyed {
            return self.get_keyed(hash);
        }
        if !self.contains(hash) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{hash} is not in the store"),
            ));
        }
        let path = self.path_of(hash);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(e) => {
                self.forget(hash);
                return Err(named(e, "reading", &path));
            }
        };
        if sha256_hex(&data) != hash {
            self.remove(hash);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is damaged (content does not match its name); removed",
                    path.display()
                ),
            ));
        }
        Ok(data)
    }

    /// A keyed entry, checked against its trailer. Another process sharing the
    /// directory may have written it since this one opened the store: the file, not
    /// the index, says whether it is there.
    fn get_keyed(&self, key: &str) -> io::Result<Vec<u8>> {
        let path = self.path_of(key);
        let mut data = match is_hash(key).then(|| fs::read(&path)) {
            Some(Ok(data)) => data,
            Some(Err(e)) if e.kind() == io::ErrorKind::NotFound => {
                self.forget(key);
                return Err(named(e, "reading", &path));
            }
            Some(Err(e)) => return Err(named(e, "reading", &path)),
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{key:?} is not a key"),
                ))
            }
        };
        let body = data.len().checked_sub(TRAILER);
        if body.is_none_or(|n| Sha256::digest(&data[..n])[..] != data[n..]) {
            self.remove(key);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is damaged (content does not match its checksum: {} bytes); removed",
                    path.display(),
                    data.len()
                ),
            ));
        }
        let size = data.len() as u64;
        data.truncate(body.unwrap_or(0));
        self.touch(key, size);
        // The time is the order of use for the next process that opens the store.
        if let Ok(f) = fs::File::open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Ok(data)
    }

    /// Counts a use of an entry that is there, indexing it if it was not.
    fn touch(&self, key: &str, size: u64) {
        let mut index = self.lock();
        index.clock += 1;
        let used = index.clock;
        match index.entries.get_mut(key) {
            Some(e) => e.used = used,
            None => {
                index.total += size;
                index.entries.insert(key.to_owned(), Entry { size, used });
            }
        }
    }

    /// Drops an entry found damaged outside the store (a link to it was written to).
    pub fn remove(&self, hash: &str) {
        self.forget(hash);
        let _ = fs::remove_file(self.path_of(hash));
    }

    fn forget(&self, hash: &str) {
        let mut index = self.lock();
        if let Some(e) = index.entries.remove(hash) {
            index.total -= e.size;
        }
    }

    /// Removes least recently used entries until the store is within its size.
    fn evict(&self) {
        let mut index = self.lock();
        if index.total <= self.max_bytes {
            return;
        }
        // One pass in order of use, rather than a search of every entry for each one
        // removed: opening a large store over a smaller limit removes many at once.
        let mut by_use: Vec<(u64, String)> = index
            .entries
            .iter()
            .map(|(h, e)| (e.used, h.clone()))
            .collect();
        by_use.sort_unstable();
        for (_, oldest) in by_use {
            if index.total <= self.max_bytes {
                break;
            }
            let e = index.entries.remove(&oldest).expect("indexed");
            index.total -= e.size;
            index.evicted += 1;
            let _ = fs::remove_file(self.dir.join(&oldest));
        }
    }
}

fn named(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: u8, len: usize) -> Vec<u8> {
        vec![n; len]
    }

    #[test]
    fn stored_content_comes_back_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 1 << 20).unwrap();
        let d = data(1, 1000);
        let h = sha256_hex(&d);
        assert!(!store.contains(&h));
        store.put(&h, &d).unwrap();
        assert!(store.contains(&h));
        assert_eq!(store.get(&h).unwrap(), d);
        assert_eq!(store.usage(), (1000, 1));
        let mode = fs::metadata(store.path_of(&h))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o222, 0, "entries are read-only");
        // Stored twice: counted once.
        store.put(&h, &d).unwrap();
        assert_eq!(store.usage(), (1000, 1));
    }

    #[test]
    fn content_under_the_wrong_hash_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 1 << 20).unwrap();
        let wrong = sha256_hex(b"other");
        let e = store.put(&wrong, b"content").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(!store.contains(&wrong));
        let e = store.put("../../etc/passwd", b"content").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_damaged_entry_is_removed_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 1 << 20).unwrap();
        let d = data(2, 4096);
        let h = sha256_hex(&d);
        store.put(&h, &d).unwrap();
        let path = store.path_of(&h);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let mut torn = d.clone();
        torn.truncate(100);
        fs::write(&path, &torn).unwrap();
        let e = store.get(&h).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert!(!path.exists());
        assert!(!store.contains(&h));
        assert_eq!(store.usage(), (0, 0));
    }

    #[test]
    fn the_least_recently_used_go_first_to_stay_within_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 3000).unwrap();
        let blobs: Vec<Vec<u8>> = (0..3).map(|n| data(n, 1000)).collect();
        let hashes: Vec<String> = blobs.iter().map(|b| sha256_hex(b)).collect();
        for (h, b) in hashes.iter().zip(&blobs) {
            store.put(h, b).unwrap();
        }
        // Using the first makes the second the oldest.
        assert!(store.contains(&hashes[0]));
        let fourth = data(9, 1000);
        store.put(&sha256_hex(&fourth), &fourth).unwrap();
        assert!(store.contains(&hashes[0]));
        assert!(!store.contains(&hashes[1]));
        assert!(!store.path_of(&hashes[1]).exists());
        assert!(store.contains(&hashes[2]));
        assert_eq!(store.usage(), (3000, 3));
    }

    #[test]
    fn keyed_entries_are_checked_by_their_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open_keyed(dir.path(), 1 << 20).unwrap();
        let key = sha256_hex(b"a job's key");
        let d = data(4, 2000);
        store.put(&key, &d).unwrap();
        assert_eq!(store.usage(), (2032, 1));
        assert_eq!(store.get(&key).unwrap(), d);
        // Another process (another store on the same directory) sees it.
        let other = BlobStore::open_keyed(dir.path(), 1 << 20).unwrap();
        assert_eq!(other.get(&key).unwrap(), d);
        let late = sha256_hex(b"written after the other opened");
        store.put(&late, b"late").unwrap();
        assert_eq!(other.get(&late).unwrap(), b"late");
        assert!(store.put("not a key", b"x").is_err());
        assert_eq!(
            store.get("../x").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // A flipped byte, then a truncation: found, removed, never served.
        let path = store.path_of(&key);
        for damage in [0usize, 1] {
            store.put(&key, &d).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let mut bytes = fs::read(&path).unwrap();
            if damage == 0 {
                bytes[10] ^= 1;
            } else {
                bytes.truncate(1500);
            }
            fs::write(&path, &bytes).unwrap();
            let e = store.get(&key).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
            assert!(!path.exists());
        }
        fs::write(&path, b"short").unwrap();
        assert_eq!(
            store.get(&key).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn keyed_stores_count_what_they_evict() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open_keyed(dir.path(), 2500).unwrap();
        for n in 0..5u8 {
            store.put(&sha256_hex(&[n]), &data(n, 1000)).unwrap();
        }
        let (bytes, entries) = store.usage();
        assert!(bytes <= 2500, "{bytes}");
        assert_eq!(entries, 2);
        assert_eq!(store.evicted(), 3);
    }

    #[test]
    fn reopening_finds_entries_and_drops_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let d = data(3, 500);
        let h = sha256_hex(&d);
        {
            let store = BlobStore::open(dir.path(), 1 << 20).unwrap();
            store.put(&h, &d).unwrap();
        }
        // An interrupted write of another process, and one still in progress.
        let old = dir.path().join(format!(".{h}.123.ThreadId(1)"));
        fs::write(&old, b"par").unwrap();
        let an_hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
        let writing = dir.path().join(format!(".{h}.456.ThreadId(1)"));
        fs::write(&writing, b"par").unwrap();
        let store = BlobStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.usage(), (500, 1));
        assert_eq!(store.get(&h).unwrap(), d);
        assert!(!old.exists() && writing.exists());
        fs::remove_file(&writing).unwrap();
        // Reopened smaller than what it holds: trimmed at once.
        drop(store);
        let store = BlobStore::open(dir.path(), 100).unwrap();
        assert_eq!(store.usage(), (0, 0));
    }
}
