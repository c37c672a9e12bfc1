//! A rustc job's input files: those the store lacks are asked for (`RNED`) and arrive
//! as blobs, each checked against its hash before it is kept; then each file is placed
//! at `ROOT/<client path>`, linked from the store.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::blobs::BlobStore;
use crate::conn::Conn;
use crate::exit::ExitCode;
use crate::protocol::rustc::{self, BlobDecoder, RustcRequest};

use super::super::record::{RejectReason, Summary};
use super::super::request::read_failure;
use super::Stop;

/// Asks for the files the store lacks (each content once) and stores them.
pub(super) fn receive(conn: &mut Conn, store: &BlobStore, req: &RustcRequest) -> Result<(), Stop> {
    let mut paths = HashSet::new();
    if let Some(f) = req.files.iter().find(|f| !paths.insert(f.path.as_str())) {
        return Err(Stop::Refuse(
            format!("{} is listed twice", f.path),
            RejectReason::BadRequest,
        ));
    }
    let mut asked = HashSet::new();
    let needed: Vec<u32> = (0..req.files.len() as u32)
        .filter(|&i| {
            let hash = req.files[i as usize].hash.as_str();
            !store.contains(hash) && asked.insert(hash)
        })
        .collect();
    let mut bytes = Vec::new();
    rustc::encode_needed(&needed, &mut bytes)
        .map_err(|e| Stop::Refuse(e.to_string(), RejectReason::ServerError))?;
    conn.send(&bytes)
        .map_err(|e| Stop::Gone(Summary::disconnected(ExitCode::IoError, e.to_string())))?;
    for i in needed {
        let f = &req.files[i as usize];
        let data = conn
            .next_event(&mut BlobDecoder::new(f.size), None)
            .map_err(|e| Stop::Gone(read_failure(e)))?;
        if data.len() as u64 != f.size {
            return Err(Stop::Refuse(
                format!(
                    "{}: {} bytes sent, {} announced",
                    f.path,
                    data.len(),
                    f.size
                ),
                RejectReason::BadRequest,
            ));
        }
        store.put(&f.hash, &data).map_err(|e| {
            let reason = if e.kind() == io::ErrorKind::InvalidData {
                RejectReason::BadRequest
            } else {
                RejectReason::ServerError
            };
            Stop::Refuse(format!("{}: {e}", f.path), reason)
        })?;
    }
    Ok(())
}

/// The job's files as placed, to tell inputs from outputs afterwards.
#[derive(Debug, Default)]
pub(super) struct Placed {
    /// Job-root path → (device, inode, mtime) of the file placed there.
    files: HashMap<PathBuf, (u64, u64, i64)>,
    /// Job-root path → the content hash, for the store's sake.
    hashes: HashMap<PathBuf, String>,
}

impl Placed {
    /// Whether `path` is an input as it was placed (not replaced or rewritten).
    pub(super) fn unchanged(&self, path: &Path, meta: &fs::Metadata) -> bool {
        self.files
            .get(path)
            .is_some_and(|&id| id == (meta.dev(), meta.ino(), meta.mtime()))
    }

    /// Store entries whose link was written to in place (by a proc-macro, say): they
    /// no longer hold their content and must go.
    pub(super) fn damaged(&self) -> Vec<&str> {
        self.files
            .iter()
            .filter(|(p, &id)| {
                fs::symlink_metadata(p)
                    .is_ok_and(|m| (m.dev(), m.ino()) == (id.0, id.1) && m.mtime() != id.2)
            })
            .filter_map(|(p, _)| self.hashes.get(p).map(String::as_str))
            .collect()
    }
}

/// `ROOT/<path>` for an absolute client path.
pub(super) fn under(root: &Path, client_path: &str) -> PathBuf {
    root.join(client_path.trim_start_matches('/'))
}

/// Places every input below `root`: a hard link to the store's entry (read-only), or a
/// copy where links cannot be made (another file system) and for executables.
pub(super) fn place(store: &BlobStore, req: &RustcRequest, root: &Path) -> Result<Placed, Stop> {
    let mut placed = Placed::default();
    let fail = |what: &str, p: &Path, e: io::Error| {
        let reason = if e.kind() == io::ErrorKind::NotFound {
            // Evicted since it was counted as present: the client runs rustc itself.
            RejectReason::ServerError
        } else {
            RejectReason::BadRequest
        };
        Stop::Refuse(format!("{what} {}: {e}", p.display()), reason)
    };
    for f in &req.files {
        let at = under(root, &f.path);
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent).map_err(|e| fail("creating", parent, e))?;
        }
        let from = store.path_of(&f.hash);
        let linked = !f.executable && fs::hard_link(&from, &at).is_ok();
        if !linked {
            fs::copy(&from, &at).map_err(|e| fail("placing", &at, e))?;
            let mode = if f.executable { 0o555 } else { 0o444 };
            fs::set_permissions(&at, fs::Permissions::from_mode(mode))
                .map_err(|e| fail("placing", &at, e))?;
        }
        let meta = fs::symlink_metadata(&at).map_err(|e| fail("placing", &at, e))?;
        placed
            .files
            .insert(at.clone(), (meta.dev(), meta.ino(), meta.mtime()));
        placed.hashes.insert(at, f.hash.clone());
    }
    Ok(placed)
}
