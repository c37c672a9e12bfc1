//! The process's standing: `--nice`, dropping root to `--user` (or distcc's default
//! account), and the checks that need the final user (job directory, stage recorder).

use std::ffi::CString;
use std::io;
use std::path::Path;

use crate::exit::ExitCode;
use crate::server::ServerConfig;

use super::readiness::PidFile;
use super::StartError;

/// Applies `--nice`. A failure (e.g. a negative value without privilege) is logged.
pub(super) fn nice(inc: i32) {
    if inc == 0 {
        return;
    }
    // SAFETY: errno is thread-local and we are the only thread; nice has no
    // memory-safety preconditions.
    let failed = unsafe {
        *libc::__errno_location() = 0;
        libc::nice(inc) == -1 && *libc::__errno_location() != 0
    };
    if failed {
        log::warn!(
            "cannot change niceness by {inc}: {}",
            io::Error::last_os_error()
        );
    }
}

struct Account {
    name: String,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

fn lookup_user(name: &str) -> Option<Account> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value for getpwnam_r to overwrite.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live, correctly sized storage for the call.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then(|| Account {
        name: name.to_owned(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

/// When running as root, becomes `user` (or distccd, distcc, nobody, uid 65534 in
/// that order), with no supplementary groups and no way to regain privileges. Returns
/// the user name when it switched.
pub(super) fn drop_root(
    user: Option<&str>,
    pid_file: Option<&PidFile>,
) -> Result<Option<String>, StartError> {
    // SAFETY: getuid/geteuid cannot fail and have no preconditions.
    let root = unsafe { libc::getuid() == 0 || libc::geteuid() == 0 };
    if !root {
        if let Some(u) = user {
            log::debug!("--user {u} ignored: not started as root");
        }
        return Ok(None);
    }
    let account = match user {
        Some(name) => lookup_user(name).ok_or_else(|| {
            StartError::new(
                ExitCode::SetuidFailed,
                format!("--user {name}: no such user"),
            )
        })?,
        None => ["distccd", "distcc", "nobody"]
            .iter()
            .find_map(|n| lookup_user(n))
            .unwrap_or(Account {
                name: "uid 65534".to_owned(),
                uid: 65534,
                gid: 65534,
            }),
    };
    if account.uid == 0 {
        return Err(StartError::new(
            ExitCode::SetuidFailed,
            format!("refusing to run as root (--user {})", account.name),
        ));
    }
    if let Some(p) = pid_file {
        p.chown(account.uid, account.gid);
    }
    let fail = |what: &str| {
        StartError::new(
            ExitCode::SetuidFailed,
            format!(
                "cannot switch to user {} ({what}): {}",
                account.name,
                io::Error::last_os_error()
            ),
        )
    };
    // SAFETY: the group list is one valid gid that outlives the call.
    if unsafe { libc::setgroups(1, &account.gid) } != 0 {
        return Err(fail("setgroups"));
    }
    // SAFETY: setgid/setuid have no memory-safety preconditions.
    if unsafe { libc::setgid(account.gid) } != 0 {
        return Err(fail("setgid"));
    }
    // SAFETY: as above.
    if unsafe { libc::setuid(account.uid) } != 0 {
        return Err(fail("setuid"));
    }
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes plain integers.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        log::warn!("cannot set no_new_privs: {}", io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::getuid() == 0 || libc::geteuid() == 0 } {
        return Err(StartError::new(
            ExitCode::SetuidFailed,
            "still root after dropping privileges",
        ));
    }
    log::info!(
        "running as user {} (uid {}, gid {})",
        account.name,
        account.uid,
        account.gid
    );
    Ok(Some(account.name))
}

/// Direct gcc stages are learnt by running this executable as gcc's `-wrapper`
/// (`stages`): if the server's user cannot execute it (a binary under `/root`), every
/// learning run would fail, so the feature is turned off at once, with the reason.
pub(super) fn check_recorder(cfg: &mut ServerConfig, user: Option<&str>) {
    use std::os::unix::ffi::OsStrExt;
    let Some(path) = &cfg.stage_recorder else {
        return;
    };
    let runnable = std::ffi::CString::new(path.as_os_str().as_bytes())
        // SAFETY: access only reads the path, a valid C string.
        .is_ok_and(|c| unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0);
    if !runnable {
        let who = user.map(|u| format!(" by user {u}")).unwrap_or_default();
        log::warn!(
            "gcc jobs run through their driver: {} cannot be executed{who} to learn their \
             stages (install swarmccd where that user can run it)",
            path.display()
        );
        cfg.stage_recorder = None;
    }
}

/// Fails early, with the reason, when jobs could not create their directories.
pub(super) fn check_tmpdir(dir: &Path, user: Option<&str>) -> Result<(), StartError> {
    tempfile::Builder::new()
        .prefix("swarmccd_probe")
        .tempdir_in(dir)
        .map(drop)
        .map_err(|e| {
            let who = user.map(|u| format!(" by user {u}")).unwrap_or_default();
            StartError::new(
                ExitCode::IoError,
                format!(
                    "TMPDIR {} is not usable{who}: {e}; set TMPDIR to a directory it can write",
                    dir.display()
                ),
            )
        })
}
