//! The command's parallelism: which build tool it is, whether the user (or an outer
//! make's jobserver) already chose a job count, and otherwise a new GNU make jobserver
//! (or `-jN` for ninja) sized from the farm. Sizing the farm is left to the caller.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;
use std::process::Command;

use super::JobsSetting;
use crate::jobserver::{self, MakeFlags};

/// The jobserver this process was started under, read before anything else is opened:
/// a later open could take the numbers of inherited fds that make did not really pass.
pub(super) struct Inherited {
    flags: MakeFlags,
    /// Its fds are really open and a jobserver's.
    valid: bool,
}

impl Inherited {
    pub(super) fn from_env() -> Inherited {
        let flags = jobserver::flags_from_env();
        let valid = jobserver::Jobserver::from_flags(&flags).is_some();
        Inherited { flags, valid }
    }
}

/// How the command's job count is set, for a farm of `size` job slots.
pub(super) fn choose(
    tool: Tool,
    args: &[OsString],
    inherited: &Inherited,
    size: u32,
) -> JobsSetting {
    // An inherited jobserver that fails validation (a non-`+` recipe of an outer make)
    // is replaced, together with its `-jN`; a `-jN` without a jobserver is the user's.
    if tool.user_set_jobs(args)
        || (inherited.flags.jobs.is_some() && inherited.flags.auth.is_none())
    {
        JobsSetting::User
    } else if inherited.valid {
        JobsSetting::Inherited
    } else if tool == Tool::Ninja {
        JobsSetting::Argument(size)
    } else {
        JobsSetting::Jobserver(size)
    }
}

/// The kind of command, for the job-count conventions it understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tool {
    Make,
    Ninja,
    Cargo,
    Other,
}

impl Tool {
    pub(super) fn of(program: &OsStr) -> Tool {
        let base = Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match base.as_str() {
            "make" | "gmake" => Tool::Make,
            "ninja" | "ninja-build" | "samu" => Tool::Ninja,
            "cargo" => Tool::Cargo,
            _ => Tool::Other,
        }
    }

    /// Whether the user gave a job count on the command line.
    fn user_set_jobs(self, args: &[OsString]) -> bool {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        // Short options whose value may follow in the same word: after one of these
        // the rest of a cluster is a value (`-Cdir`), not more flags.
        let (with_value, stop_at): (&str, &[&str]) = match self {
            Tool::Make => ("CfIoWEljO", &[]),
            Tool::Ninja => ("Cfjkldw", &["-t"]),
            Tool::Cargo => ("jpZ", &["--"]),
            Tool::Other => ("j", &["--"]),
        };
        let mut skip_next = false;
        for a in &args {
            if skip_next {
                skip_next = false;
                continue;
            }
            if stop_at.contains(&a.as_str()) {
                return false;
            }
            if a == "--jobs" || a.starts_with("--jobs=") {
                return true;
            }
            let Some(cluster) = a.strip_prefix('-').filter(|c| !c.starts_with('-')) else {
                continue;
            };
            for (i, c) in cluster.char_indices() {
                if c == 'j' {
                    return true;
                }
                if with_value.contains(c) {
                    // `-C dir`: the value is the next word.
                    skip_next = i + 1 == cluster.len() && !matches!(c, 'l' | 'O');
                    break;
                }
                if self == Tool::Other {
                    break;
                }
            }
        }
        false
    }
}

/// Creates a jobserver with `size` slots and hands it to `cmd` (`MAKEFLAGS`,
/// `CARGO_MAKEFLAGS`, `MFLAGS`, fds inherited). The pipe holds `size - 1` tokens: the
/// command's own implicit slot is the last one, so `make` runs `size` jobs at once, as
/// `make -jsize` would (measured with make 4.3: two tokens, three recipes at once).
pub(super) fn jobserver_for(cmd: &mut Command, size: u32) -> io::Result<::jobserver::Client> {
    let client = ::jobserver::Client::new(size.saturating_sub(1) as usize)?;
    client.configure_make(cmd);
    // configure_make replaces MAKEFLAGS; keep the user's own make options
    // (`MAKEFLAGS=-k`, variable assignments) around ours. Read here, not in `config`,
    // because it is passed straight on to the command and nothing else uses it.
    let ours = cmd
        .get_envs()
        .find(|(k, _)| *k == OsStr::new("MAKEFLAGS"))
        .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let user = std::env::var("MAKEFLAGS").ok();
    cmd.env("MAKEFLAGS", merge_makeflags(user.as_deref(), &ours));
    Ok(client)
}

/// `user`'s options, then `ours` (so our jobserver is the last one and wins), then
/// `user`'s variable assignments after `--`.
fn merge_makeflags(user: Option<&str>, ours: &str) -> String {
    let Some(user) = user.map(str::trim).filter(|u| !u.is_empty()) else {
        return ours.to_string();
    };
    let (opts, vars) = match user.split_once(" -- ") {
        Some((o, v)) => (o.trim(), Some(v)),
        None if user.starts_with("-- ") => ("", Some(&user[3..])),
        None => (user, None),
    };
    // make writes its single-letter flags first without a dash (`k`); elsewhere than
    // first such a word would be read as a target. A stale jobserver and its `-jN`
    // (from an outer make whose fds did not reach us) are dropped.
    let opts: Vec<String> = opts
        .split(' ')
        .filter(|w| !w.is_empty())
        .enumerate()
        .filter(|(_, w)| !w.starts_with("--jobserver-") && !w.starts_with("-j"))
        .map(|(i, w)| {
            if i == 0 && !w.starts_with('-') {
                format!("-{w}")
            } else {
                w.to_string()
            }
        })
        .collect();
    let opts = opts.join(" ");
    let mut out = String::new();
    if !opts.is_empty() {
        out.push_str(&opts);
        out.push(' ');
    }
    out.push_str(ours);
    if let Some(v) = vars {
        out.push_str(" -- ");
        out.push_str(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn tools_are_recognised_by_basename() {
        assert_eq!(Tool::of(OsStr::new("/usr/bin/make")), Tool::Make);
        assert_eq!(Tool::of(OsStr::new("gmake")), Tool::Make);
        assert_eq!(Tool::of(OsStr::new("ninja")), Tool::Ninja);
        assert_eq!(Tool::of(OsStr::new("cargo")), Tool::Cargo);
        assert_eq!(Tool::of(OsStr::new("emerge")), Tool::Other);
    }

    #[test]
    fn make_job_options() {
        let m = Tool::Make;
        assert!(m.user_set_jobs(&os(&["-j"])));
        assert!(m.user_set_jobs(&os(&["-j8", "all"])));
        assert!(m.user_set_jobs(&os(&["-kj4"])));
        assert!(m.user_set_jobs(&os(&["--jobs=3"])));
        assert!(m.user_set_jobs(&os(&["--jobs", "3"])));
        assert!(
            !m.user_set_jobs(&os(&["-C", "-j", "prog"])),
            "-C takes the next word"
        );
        assert!(!m.user_set_jobs(&os(&["-Cjdir", "prog"])));
        assert!(!m.user_set_jobs(&os(&["-l4", "-k", "prog", "CFLAGS=-j"])));
        assert!(!m.user_set_jobs(&os(&["-f", "Makefile.j"])));
    }

    #[test]
    fn ninja_and_cargo_job_options() {
        assert!(Tool::Ninja.user_set_jobs(&os(&["-C", "build", "-j", "4"])));
        assert!(!Tool::Ninja.user_set_jobs(&os(&["-C", "build"])));
        assert!(!Tool::Ninja.user_set_jobs(&os(&["-t", "compdb", "-j"])));
        assert!(Tool::Cargo.user_set_jobs(&os(&["build", "-j2"])));
        assert!(Tool::Cargo.user_set_jobs(&os(&["build", "--jobs", "2"])));
        assert!(!Tool::Cargo.user_set_jobs(&os(&["run", "--", "-j", "2"])));
        assert!(!Tool::Other.user_set_jobs(&os(&["-c", "make"])));
        assert!(Tool::Other.user_set_jobs(&os(&["-j4"])));
    }

    #[test]
    fn makeflags_merge_keeps_user_options_and_variables() {
        let ours = "-j --jobserver-fds=3,4 --jobserver-auth=3,4";
        assert_eq!(merge_makeflags(None, ours), ours);
        assert_eq!(merge_makeflags(Some("  "), ours), ours);
        assert_eq!(merge_makeflags(Some("k"), ours), format!("-k {ours}"));
        assert_eq!(
            merge_makeflags(Some("ks -j4 -l2 --jobserver-auth=3,4"), ours),
            format!("-ks -l2 {ours}")
        );
        assert_eq!(
            merge_makeflags(Some("-k -- CC=gcc"), ours),
            format!("-k {ours} -- CC=gcc")
        );
        assert_eq!(
            merge_makeflags(Some("-- V=1"), ours),
            format!("{ours} -- V=1")
        );
        // Ours comes last, so ours is the jobserver make uses.
        let merged = merge_makeflags(Some("--jobserver-auth=7,8"), ours);
        assert_eq!(
            jobserver::parse(None, Some(&merged), None).auth,
            Some(jobserver::Auth::Pipe { read: 3, write: 4 })
        );
    }
}
