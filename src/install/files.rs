//! The filesystem steps of an install, each recorded as a manifest [`Entry`]: missing
//! directories created, files written atomically, command links placed where nothing
//! foreign is.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::manifest::{sha256_hex, Entry};

/// An io::Error that names the path it is about.
fn at(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Creates `dir` and its missing parents, recording each one created.
pub(super) fn create_dirs(dir: &Path, record: &mut Vec<Entry>) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d {
        if p.as_os_str().is_empty() || fs::symlink_metadata(p).is_ok() {
            break;
        }
        missing.push(p.to_path_buf());
        d = p.parent();
    }
    for p in missing.into_iter().rev() {
        fs::create_dir(&p).map_err(|e| at(&p, "cannot create", e))?;
        record.push(Entry::Dir { path: p });
    }
    Ok(())
}

/// Writes `bytes` to `path` (through a temporary file and a rename).
pub(super) fn write_file(path: &Path, bytes: &[u8], record: &mut Vec<Entry>) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        create_dirs(parent, record)?;
    }
    let tmp = path.with_extension("swarmcc-new");
    fs::write(&tmp, bytes).map_err(|e| at(&tmp, "cannot write", e))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))
        .map_err(|e| at(&tmp, "cannot set the mode of", e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        at(path, "cannot write", e)
    })?;
    record.push(Entry::File {
        path: path.to_path_buf(),
        sha256: sha256_hex(bytes),
    });
    Ok(())
}

/// What happened to a command link (`bin/distcc`, `bin/distccd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    Created,
    Unchanged,
    /// It pointed at an older swarmcc install.
    Replaced(PathBuf),
    /// Someone else's file or link: left as it is.
    LeftAlone(String),
}

/// Makes `path` a link to `target` unless something that is not ours is there: a
/// missing name is created; a link to `target` is kept; a link to another swarmcc or
/// swarmccd (an older install) is replaced; anything else is left alone.
pub fn place_link(path: &Path, target: &Path, record: &mut Vec<Entry>) -> io::Result<LinkOutcome> {
    if let Some(parent) = path.parent() {
        create_dirs(parent, record)?;
    }
    let outcome = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::os::unix::fs::symlink(target, path)
                .map_err(|e| at(path, "cannot create the link", e))?;
            LinkOutcome::Created
        }
        Err(e) => return Err(at(path, "cannot inspect", e)),
        Ok(m) if !m.file_type().is_symlink() => {
            return Ok(LinkOutcome::LeftAlone(
                "not a symlink (another program's file)".into(),
            ))
        }
        Ok(_) => {
            let raw = fs::read_link(path).map_err(|e| at(path, "cannot read the link", e))?;
            let same = raw == target
                || match (fs::metadata(path), fs::metadata(target)) {
                    (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
                    _ => false,
                };
            if same {
                LinkOutcome::Unchanged
            } else if raw
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains("swarmcc"))
            {
                let tmp = path.with_extension("swarmcc-new");
                let _ = fs::remove_file(&tmp);
                std::os::unix::fs::symlink(target, &tmp)
                    .map_err(|e| at(&tmp, "cannot create the link", e))?;
                fs::rename(&tmp, path).map_err(|e| at(path, "cannot replace", e))?;
                LinkOutcome::Replaced(raw)
            } else {
                return Ok(LinkOutcome::LeftAlone(format!(
                    "a link to {} (not swarmcc's)",
                    raw.display()
                )));
            }
        }
    };
    record.push(Entry::Link {
        path: path.to_path_buf(),
        target: target.to_path_buf(),
    });
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_placed_only_where_nothing_foreign_is() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        let target = tmp.path().join("swarmcc");
        fs::write(&target, "").unwrap();
        let mut rec = Vec::new();
        let link = bin.join("distcc");
        assert_eq!(
            place_link(&link, &target, &mut rec).unwrap(),
            LinkOutcome::Created
        );
        assert_eq!(rec[0], Entry::Dir { path: bin.clone() });
        assert_eq!(
            place_link(&link, &target, &mut rec).unwrap(),
            LinkOutcome::Unchanged
        );
        // An older install's link is taken over; a foreign file is not.
        let old = tmp.path().join("old/swarmcc");
        let other = bin.join("distccd");
        std::os::unix::fs::symlink(&old, &other).unwrap();
        assert_eq!(
            place_link(&other, &target, &mut rec).unwrap(),
            LinkOutcome::Replaced(old)
        );
        let foreign = bin.join("x");
        fs::write(&foreign, "real").unwrap();
        assert!(matches!(
            place_link(&foreign, &target, &mut rec).unwrap(),
            LinkOutcome::LeftAlone(_)
        ));
        assert_eq!(fs::read_to_string(&foreign).unwrap(), "real");
    }
}
