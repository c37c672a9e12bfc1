//! Confining the compilers the server runs for the network.
//!
//! The option checks in `server::whitelist` refuse what is known to write files or
//! run code; this is the second line, for whatever a review missed: with Landlock
//! (Linux 5.13 and later) a compiler, and everything it starts, may create, write,
//! rename or remove files only beneath its job directory (and write `/dev/null`).
//! Reading and executing stay unrestricted — the compiler needs its headers,
//! libraries and helper programs — so the confinement is about what a job can
//! change, not what it can see.
//!
//! The ruleset is built in the parent, where allocating is safe; the child, between
//! `fork` and `exec`, makes only the two async-signal-safe system calls that apply it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use landlock::{
    AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, ABI,
};

/// The newest Landlock ABI whose write rights we ask for; older kernels get what they
/// support (best effort), newer rights are not needed for a compiler.
const ABI_WANTED: ABI = ABI::V5;

/// A ready ruleset for one job; apply it in the child with [`apply_fd_in_child`].
#[derive(Debug)]
pub struct Confinement {
    fd: OwnedFd,
}

/// Whether this kernel confines jobs (Landlock enabled).
pub fn available() -> bool {
    matches!(prepare(Path::new("/")), Ok(Some(_)))
}

/// Builds the ruleset for a job directory. `Ok(None)` when the kernel has no Landlock
/// (the job then runs unconfined, as distccd's always do); an error when Landlock is
/// there but the ruleset cannot be built, which the caller treats as a server fault.
pub fn prepare(job_dir: &Path) -> Result<Option<Confinement>, String> {
    let write = AccessFs::from_write(ABI_WANTED);
    let file_write = write & AccessFs::from_file(ABI_WANTED);
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("landlock: {what}: {e}");
    let open = |p: &Path| PathFd::new(p).map_err(|e| fail(&format!("open {}", p.display()), &e));
    let ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(write)
        .map_err(|e| fail("ruleset", &e))?
        .create()
        .map_err(|e| fail("ruleset", &e))?
        .add_rule(PathBeneath::new(open(job_dir)?, write))
        .map_err(|e| fail("job directory rule", &e))?
        .add_rule(PathBeneath::new(open(Path::new("/dev/null"))?, file_write))
        .map_err(|e| fail("/dev/null rule", &e))?;
    let fd: Option<OwnedFd> = ruleset.into();
    Ok(fd.map(|fd| Confinement { fd }))
}

impl Confinement {
    /// The raw descriptor, for a `pre_exec` closure that must be `'static`.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// Restricts the calling process (and its future children) to the ruleset `fd`, which
/// the caller keeps open (as a [`Confinement`]) until the child has been spawned.
///
/// Meant for `CommandExt::pre_exec`: it allocates nothing and makes only raw system
/// calls. `no_new_privs` is required by Landlock for an unprivileged process, and is
/// welcome anyway: nothing a job runs can gain privileges through set-uid files.
pub fn apply_fd_in_child(fd: i32) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two integer arguments.
    let rc = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0 as libc::c_uint) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// Runs `sh -c script` confined to `dir`; true if it exited 0.
    fn confined_sh(dir: &Path, script: &str) -> bool {
        let Some(conf) = prepare(dir).unwrap() else {
            return false;
        };
        let fd = conf.raw_fd();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(script).current_dir(dir);
        // SAFETY: the closure makes only raw system calls.
        unsafe {
            cmd.pre_exec(move || apply_fd_in_child(fd));
        }
        let ok = cmd.status().unwrap().success();
        drop(conf);
        ok
    }

    #[test]
    fn writes_only_inside_the_job_directory() {
        if !available() {
            eprintln!("SKIP: this kernel has no Landlock");
            return;
        }
        let job = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        assert!(confined_sh(
            job.path(),
            "echo in > inside && mkdir d && echo x > d/y && mv d/y d/z && echo > /dev/null"
        ));
        assert!(job.path().join("inside").exists());
        assert!(job.path().join("d/z").exists());
        let v = victim.display();
        assert!(!confined_sh(job.path(), &format!("echo bad > {v}")));
        assert!(!confined_sh(job.path(), &format!("rm {v}")));
        assert!(!confined_sh(
            job.path(),
            &format!("echo new > {}/new", outside.path().display())
        ));
        assert!(!confined_sh(
            job.path(),
            &format!("ln -s / {}/l", outside.path().display())
        ));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(!outside.path().join("new").exists());
        // Reading is not restricted: the compiler needs its headers.
        assert!(confined_sh(job.path(), "cat /etc/passwd > copy"));
    }
}
