//! The build's surroundings: the private masquerade folder first on the command's
//! `PATH`, and the farm its jobs go to (the configured hosts, or an embedded swarmccd
//! when none is configured). Running the server is [`super::embedded`]'s.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;

use super::embedded::Embedded;
use crate::config::ClientConfig;
use crate::hosts::{self, HostList};
use crate::shims;

/// The hosts the build's jobs go to, and the embedded server when it is one of them.
pub(super) struct Farm {
    pub(super) list: HostList,
    pub(super) embedded: Option<Embedded>,
}

impl Farm {
    /// The job slots of the farm: summed host limits plus the local slots.
    pub(super) fn size(&self) -> u32 {
        self.list
            .total_slots()
            .saturating_add(self.list.local_slots_or_default())
            .max(1)
    }
}

/// The configured host list (the same lookup as every job's and `--show-hosts`'), and
/// whether it could be read: the embedded server serves the build exactly when that
/// list names no host.
pub(super) fn load_hosts(cfg: &ClientConfig) -> (HostList, bool) {
    match cfg.load_hosts() {
        Ok((list, source)) => {
            // Said here once for the build; the jobs then find the notices fresh.
            crate::client::host_warnings::tell(cfg, &list, &source);
            (list, true)
        }
        Err(e) => {
            // The wrappers will say the same and compile locally; the build still runs.
            eprintln!("swarmcc: {e}; jobs will compile locally");
            (HostList::default(), false)
        }
    }
}

/// The farm: `list`, or with no host configured an embedded swarmccd whose
/// whitelist is the masquerade folder; `env` gets the `DISTCC_HOSTS` the jobs see.
pub(super) fn choose_farm(
    list: HostList,
    hosts_ok: bool,
    shim_dir: &Path,
    cfg: &ClientConfig,
    env: &mut Vec<(&str, OsString)>,
) -> Farm {
    if !(hosts_ok && list.is_empty()) {
        if let Some(h) = &cfg.hosts_env {
            env.push(("DISTCC_HOSTS", OsString::from(h)));
        }
        return Farm {
            list,
            embedded: None,
        };
    }
    match Embedded::start(shim_dir, cfg) {
        Ok(e) => {
            let spec = format!("127.0.0.1:{}/{},lzo", e.port, e.jobs);
            eprintln!(
                "swarmcc: no hosts configured: an embedded swarmccd serves this build on \
                 127.0.0.1:{} ({} jobs)",
                e.port, e.jobs
            );
            let mut farm = hosts::parse(&spec).unwrap_or_default();
            farm.local_slots = list.local_slots;
            env.push(("DISTCC_HOSTS", OsString::from(&spec)));
            Farm {
                list: farm,
                embedded: Some(e),
            }
        }
        Err(e) => {
            eprintln!("swarmcc: cannot start an embedded swarmccd: {e}; jobs will compile locally");
            Farm {
                list,
                embedded: None,
            }
        }
    }
}

/// `dir` first, then `path`.
pub(super) fn prepend_path(dir: &Path, path: &OsStr) -> OsString {
    let mut out = OsString::from(dir.as_os_str());
    if !path.is_empty() {
        out.push(":");
        out.push(path);
    }
    out
}

/// The private masquerade folder: links to `self_exe` named like every compiler found
/// on `cfg.path` (the generic names, target-prefixed and versioned ones), so that the
/// `x86_64-linux-gnu-gcc` a client sends is also in the embedded server's whitelist.
pub(super) fn make_shims(cfg: &ClientConfig, self_exe: &Path) -> io::Result<tempfile::TempDir> {
    // "swarmcc" in the name keeps it out of any server's compiler search path.
    let dir = tempfile::Builder::new()
        .prefix("swarmcc-shims-")
        .tempdir_in(&cfg.tmpdir)
        .or_else(|_| tempfile::Builder::new().prefix("swarmcc-shims-").tempdir())
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create the masquerade folder: {e}"),
            )
        })?;
    let names = shims::compiler_names(&cfg.path);
    if names.is_empty() {
        eprintln!("swarmcc: no C/C++ compiler found on PATH; the build runs without swarmcc");
    }
    shims::install(dir.path(), self_exe, &names)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_prepended() {
        assert_eq!(
            prepend_path(Path::new("/s"), OsStr::new("/usr/bin:/bin")),
            "/s:/usr/bin:/bin"
        );
        assert_eq!(prepend_path(Path::new("/s"), OsStr::new("")), "/s");
    }
}
