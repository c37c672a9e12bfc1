//! The farm cache's steps in a job (messages in `protocol::cache`, keys and the store
//! in `crate::cache`): answering a client's key before its request — a hit is the
//! whole job, with no compile slot taken — and storing a successful compile's result
//! under the key this server makes from what it received and ran. The key a client
//! sends is only ever looked up, never stored under: no client can put a result
//! under another job's key.

use std::path::{Path, PathBuf};

use crate::cache::{self, Cache, Entry, Key, Lookup};
use crate::conn::Conn;
use crate::exit::ExitCode;
use crate::protocol::cache::{encode_answer, Answer, KeyDecoder};
use crate::protocol::{Reply, Version};
use crate::transport::Peer;

use super::dialect::{Dialect, ExtJob};
use super::record::{JobResult, RejectReason, Summary};
use super::reply::{pack_object, send_reply, write_prelude};
use super::{CacheConfig, Shared};

/// The cache's directory when none is given, for the user the server runs as (never
/// root: started as root it has switched user by now): that user's cache area
/// (`$XDG_CACHE_HOME`, `~/.cache`) when `$HOME` is theirs, else a directory of theirs
/// in `tmpdir`. Per user: whoever can write to it chooses what clients get.
pub fn default_dir(tmpdir: &Path) -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let home = std::env::var_os("HOME").map(PathBuf::from);
    // A HOME that is not ours (left by a service manager) would be written as
    // someone else, or not at all.
    let ours = home.filter(|h| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(h).is_ok_and(|m| m.uid() == uid)
    });
    match ours {
        Some(home) => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".cache"))
            .join("swarmccd"),
        None => tmpdir.join(format!("swarmccd-cache-{uid}")),
    }
}

/// Opens the cache at start-up, saying where and how full; a cache that cannot be
/// opened is logged and left off, and the server compiles every job.
pub(super) fn open(cfg: &CacheConfig, tmpdir: &Path) -> Option<Cache> {
    let dir = cfg.dir.clone().unwrap_or_else(|| default_dir(tmpdir));
    let opened = Cache::open(&dir, cfg.bytes).and_then(|c| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(c)
    });
    match opened {
        Ok(c) => {
            let n = c.counts();
            log::info!(
                "farm cache {}: {} entries, {} MiB of {} MiB",
                dir.display(),
                n.entries,
                n.bytes >> 20,
                cfg.bytes >> 20
            );
            Some(c)
        }
        Err(e) => {
            log::error!("farm cache {}: {e}; compiling every job", dir.display());
            None
        }
    }
}

/// Answers an extension request's preamble at once when the client asked for the
/// cache: the accepted features, then (if the cache is on) the key, looked up. `Err`
/// is the job's end: a hit was answered, or the client broke off. On a miss the
/// request follows as without the cache.
pub(super) fn answer_key(
    conn: &mut Conn,
    peer: Peer,
    shared: &Shared,
    ext: &mut ExtJob,
) -> Result<(), Summary> {
    let mut bytes = Vec::new();
    let _ = crate::protocol::ext::encode_accepted(&ext.accepted(), &mut bytes);
    ext.prelude_sent = true;
    if !write_prelude(conn.stream(), &bytes) {
        return Err(Summary::disconnected(
            ExitCode::IoError,
            "client left before its reply",
        ));
    }
    let Some(cache) = shared.cache.as_ref().filter(|_| ext.offer_cache) else {
        return Ok(());
    };
    let read = conn.next_event(&mut KeyDecoder, Some(shared.cfg.io_timeout));
    // The decoder already checks the key's form; a file name is made of it, so again.
    let key = match read.map(|text| Key::parse(&text).ok_or(text)) {
        Ok(Ok(key)) => key,
        Ok(Err(text)) => return Err(bad_key(format!("{text:?} is not a key"))),
        Err(e) => return Err(bad_key(e.to_string())),
    };
    let entry = match cache.lookup(&key) {
        Lookup::Hit(entry) => entry,
        Lookup::Miss => return miss(conn, peer, &key, ext, "miss"),
        Lookup::Damaged(why) => {
            log::warn!("client {peer}: farm cache: {why}; compiling it again");
            return miss(conn, peer, &key, ext, "damaged entry");
        }
    };
    Err(answer_hit(conn, shared, ext, &key, entry))
}

fn bad_key(why: String) -> Summary {
    Summary::new(JobResult::RejBadReq, 0, ExitCode::ProtocolError.code())
        .because(format!("bad request: no cache key: {why}"))
        .rejected(RejectReason::BadRequest)
}

fn miss(
    conn: &mut Conn,
    peer: Peer,
    key: &Key,
    ext: &mut ExtJob,
    why: &str,
) -> Result<(), Summary> {
    log::debug!("client {peer}: farm cache {why} for {key}");
    ext.cache = true;
    let mut bytes = Vec::with_capacity(12);
    encode_answer(Answer::Miss, &mut bytes);
    conn.send(&bytes).map_err(|e| {
        Summary::disconnected(ExitCode::IoError, format!("sending the cache answer: {e}"))
    })
}

/// Sends a hit: `SWCH` and the stored result as the compile's reply.
fn answer_hit(conn: &mut Conn, shared: &Shared, ext: &ExtJob, key: &Key, entry: Entry) -> Summary {
    let mut bytes = Vec::with_capacity(12);
    encode_answer(Answer::Hit, &mut bytes);
    let dialect = Dialect {
        version: Version::V1,
        ext: Some(ext.clone()),
    };
    let object = match pack_object(&dialect, entry.object) {
        Ok(packed) => packed,
        Err(why) => return Summary::disconnected(ExitCode::IoError, why),
    };
    let reply = Reply {
        status: entry.status,
        stdout: entry.stdout,
        stderr: entry.stderr,
        object,
        deps: None,
    };
    let sent = conn
        .send(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|()| send_reply(conn, &shared.stats, &dialect, &reply));
    match sent {
        Ok(()) => Summary::new(JobResult::CacheHit, 0, 0).because(format!("farm cache hit {key}")),
        Err(e) => {
            Summary::disconnected(ExitCode::IoError, format!("sending the cached reply: {e}"))
        }
    }
}

/// Stores a successful compile's result, under the key made here from the job as
/// received, this server's identity of the compiler that ran, and the source's hash.
pub(super) fn store(
    shared: &Shared,
    peer: Peer,
    job: &crate::args::RemoteJob,
    program: &Path,
    source_sha256: &str,
    reply: &Reply,
    object: Vec<u8>,
) {
    let Some(cache) = &shared.cache else {
        return;
    };
    let identity = match shared.identities.get(program) {
        Ok(identity) => identity,
        Err(e) => {
            log::debug!(
                "client {peer}: not cached: cannot tell which compiler {} is: {e}",
                program.display()
            );
            return;
        }
    };
    let key = match cache::key::key_of_job(&identity, job, source_sha256) {
        Ok(key) => key,
        Err(why) => {
            log::debug!("client {peer}: not cached: {why}");
            return;
        }
    };
    let entry = Entry {
        status: reply.status,
        stdout: reply.stdout.clone(),
        stderr: reply.stderr.clone(),
        object,
    };
    match cache.store(&key, &entry) {
        Ok(()) => log::debug!(
            "client {peer}: stored {} in the farm cache as {key}",
            job.input
        ),
        Err(e) => log::warn!(
            "client {peer}: cannot store {} in the farm cache: {e}",
            job.input
        ),
    }
}
