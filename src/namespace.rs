//! Running a process at its client's paths: in a private user and mount namespace, a
//! job root whose tree holds the client's files at their paths becomes `/`, with this
//! machine's system directories (and the toolchain) bound read-only at theirs. rustc
//! then records exactly the paths a local build records, so its outputs are
//! byte-identical to a local build's — which `--remap-path-prefix` cannot give, since
//! rustc marks remapped paths in the metadata it writes.
//!
//! Needs unprivileged user namespaces (or root); where they are not allowed the
//! process does not start, and the caller runs it another way. Everything the child
//! does between fork and exec is a system call on data prepared before the fork.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Top-level directories of this machine that a compiler and its linker need.
const SYSTEM: [&str; 8] = [
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc",
];
/// Devices a compiler may open.
const DEVICES: [&str; 4] = ["null", "zero", "random", "urandom"];

struct Bind {
    src: CString,
    dst: CString,
    /// Remount read-only, keeping these flags of the source (the kernel refuses to
    /// drop them inside a user namespace).
    readonly: Option<libc::c_ulong>,
}

/// A prepared view; [`View::configure`] makes a command start in it.
pub struct View {
    root: CString,
    cwd: CString,
    binds: Vec<Bind>,
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
}

fn c_path(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{} has a NUL byte", p.display()))
}

/// Mount flags of the file system at `p` that a read-only remount must keep.
fn kept_flags(p: &Path) -> libc::c_ulong {
    let Ok(path) = c_path(p) else { return 0 };
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let pairs = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    pairs
        .iter()
        .filter(|(st_flag, _)| st.f_flag & st_flag != 0)
        .fold(0, |acc, (_, ms)| acc | ms)
}

/// Prepares `root` (creating the mount points in it) so that a process started in the
/// view sees it as `/`, in `cwd`, with the system directories and each of `extra` at
/// their places. `Err` when the client's paths use those places (the view would hide
/// one or the other).
pub fn prepare(root: &Path, cwd: &Path, extra: &[PathBuf]) -> Result<View, String> {
    let mut binds = Vec::new();
    let taken = |name: &Path| -> Result<PathBuf, String> {
        let at = root.join(name.strip_prefix("/").unwrap_or(name));
        if fs::symlink_metadata(&at).is_ok() {
            return Err(format!("the job has files in /{}", name.display()));
        }
        Ok(at)
    };
    let fail = |what: &Path, e: io::Error| format!("{}: {e}", what.display());
    for name in SYSTEM {
        let src = Path::new("/").join(name);
        let Ok(meta) = fs::symlink_metadata(&src) else {
            continue;
        };
        let at = taken(Path::new(name))?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&src).map_err(|e| fail(&src, e))?;
            symlink(target, &at).map_err(|e| fail(&at, e))?;
        } else if meta.is_dir() {
            fs::create_dir(&at).map_err(|e| fail(&at, e))?;
            binds.push(Bind {
                src: c_path(&src)?,
                dst: c_path(&at)?,
                readonly: Some(kept_flags(&src)),
            });
        }
    }
    for dir in extra {
        let covered = SYSTEM
            .iter()
            .any(|s| dir.starts_with(Path::new("/").join(s)));
        if covered {
            continue;
        }
        let at = taken(dir)?;
        fs::create_dir_all(&at).map_err(|e| fail(&at, e))?;
        binds.push(Bind {
            src: c_path(dir)?,
            dst: c_path(&at)?,
            readonly: Some(kept_flags(dir)),
        });
    }
    let proc_at = taken(Path::new("proc"))?;
    fs::create_dir(&proc_at).map_err(|e| fail(&proc_at, e))?;
    binds.push(Bind {
        src: c_path(Path::new("/proc"))?,
        dst: c_path(&proc_at)?,
        readonly: None,
    });
    let dev_at = taken(Path::new("dev"))?;
    fs::create_dir(&dev_at).map_err(|e| fail(&dev_at, e))?;
    for d in DEVICES {
        let src = Path::new("/dev").join(d);
        let at = dev_at.join(d);
        fs::write(&at, b"").map_err(|e| fail(&at, e))?;
        binds.push(Bind {
            src: c_path(&src)?,
            dst: c_path(&at)?,
            readonly: None,
        });
    }
    // SAFETY: geteuid/getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    Ok(View {
        root: c_path(root)?,
        cwd: c_path(cwd)?,
        binds,
        uid_map: format!("{uid} {uid} 1\n").into_bytes(),
        gid_map: format!("{gid} {gid} 1\n").into_bytes(),
    })
}

impl View {
    /// Makes `cmd` start in the view (its own `current_dir` would be applied before
    /// the view exists: the view's `cwd` is used instead). Hooks added to `cmd` after
    /// this one run inside the view.
    pub fn configure(self, cmd: &mut Command) {
        // SAFETY: the hook makes only system calls, on memory prepared before the
        // fork and owned by the closure.
        unsafe {
            cmd.pre_exec(move || self.enter());
        }
    }

    fn enter(&self) -> io::Result<()> {
        let check = |rc: libc::c_int| {
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        // SAFETY: system calls with NUL-terminated strings and buffers we own.
        unsafe {
            // A server that dropped root is not dumpable, and then its /proc/self files
            // belong to root: the maps could not be written. exec resets this anyway.
            check(libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0))?;
            check(libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS))?;
            // setgroups may be absent on old kernels; the gid map then needs none.
            let _ = write_proc(b"/proc/self/setgroups\0", b"deny");
            write_proc(b"/proc/self/uid_map\0", &self.uid_map)?;
            write_proc(b"/proc/self/gid_map\0", &self.gid_map)?;
            let none = std::ptr::null();
            check(libc::mount(
                none,
                c"/".as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            for b in &self.binds {
                let flags = libc::MS_BIND | libc::MS_REC;
                check(libc::mount(
                    b.src.as_ptr(),
                    b.dst.as_ptr(),
                    none,
                    flags,
                    std::ptr::null(),
                ))?;
                if let Some(kept) = b.readonly {
                    let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | kept;
                    check(libc::mount(
                        none,
                        b.dst.as_ptr(),
                        none,
                        flags,
                        std::ptr::null(),
                    ))?;
                }
            }
            check(libc::chroot(self.root.as_ptr()))?;
            check(libc::chdir(self.cwd.as_ptr()))?;
        }
        Ok(())
    }
}

/// Writes `data` to a /proc file with raw system calls.
///
/// # Safety
/// `path` must be NUL-terminated.
unsafe fn write_proc(path: &[u8], data: &[u8]) -> io::Result<()> {
    let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = libc::write(fd, data.as_ptr().cast(), data.len());
    let err = io::Error::last_os_error();
    libc::close(fd);
    if n == data.len() as isize {
        Ok(())
    } else {
        Err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    #[test]
    fn a_process_in_the_view_sees_the_root_at_slash_and_the_system_beside_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let client = root.join("home/u/p");
        fs::create_dir_all(&client).unwrap();
        fs::write(client.join("a.txt"), "from the client\n").unwrap();
        let view = prepare(&root, Path::new("/home/u/p"), &[]).unwrap();
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "cat a.txt; pwd; ls /home/u/p; test -x /usr/bin/cc && echo cc; touch /usr/x 2>/dev/null || echo ro"])
            .stdin(Stdio::null());
        view.configure(&mut cmd);
        let out = match cmd.output() {
            Ok(out) => out,
            Err(e) => {
                // Unprivileged user namespaces are off on this kernel: the caller
                // then runs the job another way, which its own tests cover.
                eprintln!("SKIP: no user namespaces here: {e}");
                return;
            }
        };
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "from the client\n/home/u/p\na.txt\ncc\nro\n",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn client_files_where_the_system_is_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("usr/src/p")).unwrap();
        let err = prepare(&root, Path::new("/usr/src/p"), &[]).err().unwrap();
        assert!(err.contains("/usr"), "{err}");
    }
}
