//! The farm cache for rustc jobs: the request (with its input set's hashes) looked up
//! under the key this server makes of it (`cache::rustc`) before any content is asked
//! for or a compile slot taken — a hit is the whole job — and a successful run's reply
//! stored under that key. The client sends no key: only what it asked for is looked
//! up, and only what ran here is stored.

use crate::args::rustc::RustcJob;
use crate::cache::{self, Cache, Key, Lookup};
use crate::conn::Conn;
use crate::exit::ExitCode;
use crate::protocol::rustc::{self, RustcReply, RustcRequest};
use crate::transport::Peer;

use super::super::record::{JobResult, Summary};

/// The job's place in the cache: its key, and whether a hit is marked (`RHIT`).
pub(super) struct Cached<'a> {
    cache: &'a Cache,
    key: Key,
    mark: bool,
}

impl<'a> Cached<'a> {
    /// The job's key, if this server has a cache.
    pub(super) fn of(
        cache: Option<&'a Cache>,
        identity: &str,
        request: &RustcRequest,
        job: &RustcJob,
        mark: bool,
    ) -> Option<Cached<'a>> {
        cache.map(|cache| Cached {
            cache,
            key: cache::rustc::job_key(identity, request, job),
            mark,
        })
    }

    /// Looks the job up; `Some` is the job's end (a hit answered, or the client gone).
    pub(super) fn answer(&self, conn: &mut Conn, peer: Peer) -> Option<Summary> {
        let entry = match self.cache.lookup_rustc(&self.key) {
            Lookup::Hit(entry) => entry,
            Lookup::Miss => {
                log::debug!("client {peer}: farm cache miss for rustc {}", self.key);
                return None;
            }
            Lookup::Damaged(why) => {
                log::warn!("client {peer}: farm cache: {why}; compiling it again");
                return None;
            }
        };
        let mut bytes = Vec::new();
        if self.mark {
            rustc::encode_hit(&mut bytes);
        } else if let Err(e) = rustc::encode_needed(&[], &mut bytes) {
            log::warn!("client {peer}: farm cache hit not sent: {e}");
            return None;
        }
        if let Err(e) = rustc::encode_reply(&entry.reply, &mut bytes) {
            log::warn!("client {peer}: farm cache entry {} not sent: {e}", self.key);
            return None;
        }
        Some(match conn.send(&bytes) {
            Ok(()) => Summary::new(JobResult::CacheHit, 0, 0)
                .because(format!("farm cache hit {}", self.key)),
            Err(e) => {
                Summary::disconnected(ExitCode::IoError, format!("sending the cached reply: {e}"))
            }
        })
    }

    /// Stores a successful run's reply (its outputs checked already by `outputs`).
    pub(super) fn store(&self, peer: Peer, crate_name: &str, reply: &RustcReply) {
        if reply.status != 0 {
            return;
        }
        let entry = cache::rustc::Entry {
            reply: reply.clone(),
        };
        match self.cache.store_rustc(&self.key, &entry) {
            Ok(()) => log::debug!(
                "client {peer}: stored rustc {crate_name} in the farm cache as {}",
                self.key
            ),
            Err(e) => {
                log::warn!("client {peer}: cannot store rustc {crate_name} in the farm cache: {e}")
            }
        }
    }
}
