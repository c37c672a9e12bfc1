//! Telling the user what the host parser warned about (`hosts::ParseWarning`): the
//! parser only collects the warnings, the places that load the list say them here.
//!
//! Commands a user runs by hand (`--show-hosts`, `-j`, `--check-hosts`) say every
//! warning each time. Compile jobs and `--run` say each one once per backoff period
//! across all processes sharing the lock directory, so a `make -j16` over a list with
//! one sloppy token prints one line, not one per job.

use sha2::{Digest, Sha256};

use crate::backoff;
use crate::config::{ClientConfig, HostsSource};
use crate::hosts::HostList;

/// The host list for a command that needs hosts (`--show-hosts`, `-j`,
/// `--check-hosts`), its warnings said on stderr first (they tell why a list whose
/// every token was left out names no host). The error is the message to print.
pub fn load_some(cfg: &ClientConfig) -> Result<(HostList, HostsSource), String> {
    let (list, source) = cfg.load_hosts().map_err(|e| e.to_string())?;
    print(&list, &source);
    if list.hosts.is_empty() {
        return Err(format!("{source} contains no hosts"));
    }
    Ok((list, source))
}

/// Says each warning on stderr (`swarmcc: Warning: <where>: host spec …`).
pub fn print(list: &HostList, source: &HostsSource) {
    for w in &list.warnings {
        eprintln!("swarmcc: Warning: {source}: {w}");
    }
}

/// Says each warning once per backoff period, through the notice log target.
pub fn tell(cfg: &ClientConfig, list: &HostList, source: &HostsSource) {
    for w in &list.warnings {
        let text = format!("{source}: {w}");
        if backoff::first_notice(&cfg.lock_dir(), &notice_key(&text), cfg.backoff_period) {
            log::warn!(
                target: crate::logging::NOTICE,
                "{text} (said once per {}s)",
                backoff::notice_period(cfg.backoff_period).as_secs()
            );
        }
    }
}

/// A file-name-safe key per warning text: the same warning from the same list is one
/// notice, a changed list or token a new one.
fn notice_key(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("hostspec_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_per_warning_and_are_file_names() {
        let a = notice_key("$DISTCC_HOSTS: host spec \"h,lzo/7\" (line 1, column 1): x");
        let b = notice_key("$DISTCC_HOSTS: host spec \"h,lzo/8\" (line 1, column 1): x");
        assert_ne!(a, b);
        assert_eq!(
            a,
            notice_key("$DISTCC_HOSTS: host spec \"h,lzo/7\" (line 1, column 1): x")
        );
        assert!(a.starts_with("hostspec_") && a.len() == "hostspec_".len() + 16);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'));
    }
}
