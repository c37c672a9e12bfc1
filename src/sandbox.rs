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
//! Landlock confines a *thread* (credentials are per thread on Linux), and a process
//! inherits the credentials of the thread that started it. So a job's compiler is
//! started from a short-lived thread that confines itself first ([`spawn_confined`]):
//! the spawn itself can then stay a `posix_spawn` (a `vfork`-like clone), where a
//! `pre_exec` hook would force a full `fork` of the multi-threaded server, whose page
//! table copy and copy-on-write faults cost more than the thread (about 0.4 ms of
//! server CPU per job, measured by `integration/bench`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::thread;

use landlock::{
    AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, ABI,
};

/// The newest Landlock ABI whose write rights we ask for; older kernels get what they
/// support (best effort), newer rights are not needed for a compiler.
const ABI_WANTED: ABI = ABI::V5;

/// A ready ruleset for one job; start the job's processes under it with
/// [`spawn_confined`].
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

/// Runs `spawn` on a new thread confined by `confinement` (when there is one) and
/// returns what it returned. Whatever `spawn` starts inherits the confinement; the
/// calling thread, and the rest of the server, are untouched. The thread ends with
/// `spawn`, so nothing else ever runs confined. `spawn` should only start processes:
/// files it opens are subject to the confinement too.
pub fn spawn_confined<T: Send>(
    confinement: Option<&Confinement>,
    spawn: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    let Some(conf) = confinement else {
        return spawn();
    };
    let fd = conf.fd.as_raw_fd();
    thread::scope(|scope| {
        thread::Builder::new()
            .name("confined-spawn".into())
            .stack_size(64 * 1024)
            .spawn_scoped(scope, move || {
                restrict_this_thread(fd)?;
                spawn()
            })?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Confines `cmd` from inside the child, as the last step before it runs: for a child
/// that must first change its mounts (`namespace`), which a confined thread may not.
/// The ruleset must outlive the spawn.
pub fn confine_in_child(confinement: &Confinement, cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let fd = confinement.fd.as_raw_fd();
    // SAFETY: the hook makes two system calls on an integer.
    unsafe {
        cmd.pre_exec(move || restrict_this_thread(fd));
    }
}

/// Restricts the calling thread (and what it starts) to the ruleset `fd`.
/// `no_new_privs` is required by Landlock for an unprivileged thread, and is welcome
/// anyway: nothing a job runs can gain privileges through set-uid files.
fn restrict_this_thread(fd: i32) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only; it sets a flag of this thread.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two integer arguments; flags 0 restricts the calling thread only.
    let rc = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0 as libc::c_uint) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Runs `sh -c script` confined to `dir`; true if it exited 0.
    fn confined_sh(dir: &Path, script: &str) -> bool {
        let Some(conf) = prepare(dir).unwrap() else {
            return false;
        };
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(script).current_dir(dir);
        let mut child = spawn_confined(Some(&conf), || cmd.spawn()).unwrap();
        child.wait().unwrap().success()
    }

    #[test]
    fn the_spawning_thread_alone_is_confined() {
        if !available() {
            eprintln!("SKIP: this kernel has no Landlock");
            return;
        }
        let job = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let conf = prepare(job.path()).unwrap().unwrap();
        // Inside the confined thread, a write outside the job directory fails...
        let inside = spawn_confined(Some(&conf), || {
            Ok(std::fs::write(outside.path().join("x"), "x").is_err())
        });
        assert!(inside.unwrap());
        // ...while this thread (the rest of the server) still writes anywhere.
        std::fs::write(outside.path().join("y"), "y").unwrap();
        assert!(!outside.path().join("x").exists());
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
