//! The early metadata part (feature `rustc-early-metadata`): while rustc runs, its
//! stderr is watched for the notice cargo pipelines on — `{"$message_type":"artifact",
//! "artifact":"…/libfoo-….rmeta","emit":"metadata"}` — and once it is there, that
//! stderr, the `.rmeta` and the dep-info go to the client, which lets cargo start the
//! crates that need only this one's metadata while its code is generated here.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::protocol::rustc::{OutputFile, RustcReply};

/// Watches one job's stderr capture.
pub(super) struct Watch {
    stderr: File,
    seen: Vec<u8>,
    /// Sent, or given up on: nothing more to do.
    over: bool,
    /// The job root; rustc's paths are below it unless it runs in a view.
    root: PathBuf,
    in_view: bool,
    /// The dep-info's client path.
    dep_info: String,
}

impl Watch {
    pub(super) fn new(stderr: File, root: &Path, in_view: bool, dep_info: String) -> Watch {
        Watch {
            stderr,
            seen: Vec::new(),
            over: false,
            root: root.to_owned(),
            in_view,
            dep_info,
        }
    }

    /// The early part, the first time rustc's stderr has the metadata notice and the
    /// files it names are there.
    pub(super) fn ready(&mut self) -> Option<RustcReply> {
        if self.over {
            return None;
        }
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match self.stderr.read_at(&mut chunk, self.seen.len() as u64) {
                Ok(0) => break,
                Ok(n) => self.seen.extend_from_slice(&chunk[..n]),
                Err(_) => {
                    self.over = true;
                    return None;
                }
            }
        }
        let (end, path) = metadata_notice(&self.seen)?;
        self.over = true;
        let (server_rmeta, client_rmeta) = self.places(&path)?;
        let server_d = self.root.join(self.dep_info.trim_start_matches('/'));
        let files = [
            (server_d, self.dep_info.clone()),
            (server_rmeta, client_rmeta),
        ];
        let mut outputs = Vec::new();
        for (at, client) in files {
            outputs.push(OutputFile {
                path: client,
                executable: false,
                data: fs::read(at).ok()?,
            });
        }
        let root = if self.in_view {
            "/".to_string()
        } else {
            self.root.to_string_lossy().into_owned()
        };
        Some(RustcReply {
            status: 0,
            stdout: Vec::new(),
            stderr: self.seen[..end].to_vec(),
            root,
            outputs,
        })
    }

    /// The server's and the client's path of a path rustc printed.
    fn places(&self, printed: &str) -> Option<(PathBuf, String)> {
        if self.in_view {
            return Some((
                self.root.join(printed.trim_start_matches('/')),
                printed.to_owned(),
            ));
        }
        let client = Path::new(printed).strip_prefix(&self.root).ok()?;
        Some((
            PathBuf::from(printed),
            format!("/{}", client.to_string_lossy()),
        ))
    }
}

/// The end of the line (after its newline) that says the metadata is written, and
/// the path it names; `None` if there is no such complete line (or its path is
/// escaped, which a plain path never is).
fn metadata_notice(stderr: &[u8]) -> Option<(usize, String)> {
    let mut start = 0;
    while let Some(nl) = stderr[start..].iter().position(|&b| b == b'\n') {
        let line = &stderr[start..start + nl];
        start += nl + 1;
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        if !line.contains(r#""$message_type":"artifact""#) || !line.contains(r#""emit":"metadata""#)
        {
            continue;
        }
        let rest = line.split_once(r#""artifact":""#)?.1;
        let path = rest.split_once('"')?.0;
        if path.contains('\\') || !path.ends_with(".rmeta") {
            return None;
        }
        return Some((start, path.to_owned()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metadata_notice_is_found_after_whole_lines_only() {
        let warn = "{\"$message_type\":\"diagnostic\",\"message\":\"unused\"}\n";
        let notice = "{\"$message_type\":\"artifact\",\"artifact\":\"/t/deps/libx-1.rmeta\",\"emit\":\"metadata\"}\n";
        let text = format!("{warn}{notice}{{\"$message_type\":\"artifact\"");
        assert_eq!(
            metadata_notice(text.as_bytes()),
            Some((warn.len() + notice.len(), "/t/deps/libx-1.rmeta".into()))
        );
        let cut = &notice[..notice.len() - 1];
        assert_eq!(metadata_notice(format!("{warn}{cut}").as_bytes()), None);
        let dep_info =
            "{\"$message_type\":\"artifact\",\"artifact\":\"/t/x.d\",\"emit\":\"dep-info\"}\n";
        assert_eq!(metadata_notice(dep_info.as_bytes()), None);
    }

    #[test]
    fn rustcs_paths_are_placed_for_both_ways_of_running() {
        let f = tempfile::tempfile().unwrap();
        let w = Watch::new(f, Path::new("/j/root"), false, "/p/x.d".into());
        assert_eq!(
            w.places("/j/root/p/libx.rmeta"),
            Some((
                PathBuf::from("/j/root/p/libx.rmeta"),
                "/p/libx.rmeta".into()
            ))
        );
        assert_eq!(w.places("/elsewhere/libx.rmeta"), None);
        let f = tempfile::tempfile().unwrap();
        let v = Watch::new(f, Path::new("/j/root"), true, "/p/x.d".into());
        assert_eq!(
            v.places("/p/libx.rmeta"),
            Some((
                PathBuf::from("/j/root/p/libx.rmeta"),
                "/p/libx.rmeta".into()
            ))
        );
    }
}
