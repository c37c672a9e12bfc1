//! Zeroconf (mDNS/DNS-SD) discovery and publishing, as distcc 3.4 does it through Avahi.
//!
//! Both directions go through the machine's own `avahi-daemon` over the D-Bus system bus
//! (`avahi`), as distcc's libavahi-client does, so swarmcc never runs a second mDNS stack
//! beside the system's responder on port 5353.
//!
//! * **Publishing** (`swarmccd --zeroconf`, [`publish`]): the service `distcc@HOSTNAME` of
//!   type `_distcc._tcp` on the server's port, also under the subtype
//!   `_<cc -dumpmachine>--<cc -dumpversion>._sub._distcc._tcp`, with distccd's TXT
//!   records. Withdrawn at shutdown (and by Avahi itself when the process dies), renamed
//!   after a name collision, registered again when avahi-daemon restarts.
//! * **Discovery** (`+zeroconf` in a host list, [`cache`] and [`browse`]): a background
//!   helper per `DISTCC_DIR` browses that subtype (so only servers whose `cc` matches the
//!   client's are listed) and keeps `$DISTCC_DIR/zeroconf/hosts` up to date, one
//!   `ADDR:PORT/LIMIT` line per server, under distcc's locks. Clients splice that file's
//!   hosts into their list where `+zeroconf` stands. The files, locks and rules are
//!   distcc's, so a real distcc and swarmcc share one helper and one cache.

pub mod avahi;
pub mod browse;
pub mod cache;
pub mod publish;

use std::process::{Command, Stdio};

/// The DNS-SD service type of distcc servers.
pub const SERVICE_TYPE: &str = "_distcc._tcp";

/// Slot limit of a server whose TXT data has no `jobs` (distcc 3.4's default).
const DEFAULT_JOBS: u32 = 4;

/// What `cc -dumpversion` and `cc -dumpmachine` print: the compiler identity servers are
/// published and browsed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CcIdentity {
    pub version: String,
    pub machine: String,
}

/// Runs `cc -dumpversion` and `cc -dumpmachine` from `PATH`, as distcc does (the plain
/// `cc`, whatever compiler a job names, so that every client of one `DISTCC_DIR` shares
/// one browse). `None` when either fails. The safeguard variable keeps a `cc` that is a
/// swarmcc masquerade link from looking at host lists (and so at this very helper).
pub fn cc_identity() -> Option<CcIdentity> {
    let ask = |flag: &str| -> Option<String> {
        let out = Command::new("cc")
            .arg(flag)
            .env(crate::compiler::SAFEGUARD_VAR, "1")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let word = text.lines().next()?.split([' ', '\t', '\r']).next()?;
        (out.status.success() && !word.is_empty()).then(|| word.to_string())
    };
    Some(CcIdentity {
        version: ask("-dumpversion")?,
        machine: ask("-dumpmachine")?,
    })
}

/// The subtype a server with this compiler is also published under, and the one clients
/// browse: `_x86-64-linux-gnu--12._sub._distcc._tcp`. Each part is cut to 63 bytes, then
/// lower-cased with every character but letters and digits turned into `-`, as distcc's
/// `dcc_make_dnssd_subtype` does.
pub fn subtype(id: &CcIdentity) -> String {
    let clean = |s: &str| -> String {
        s.bytes()
            .take(63)
            .map(|b| match b {
                b'a'..=b'z' | b'0'..=b'9' => b as char,
                b'A'..=b'Z' => b.to_ascii_lowercase() as char,
                _ => '-',
            })
            .collect()
    };
    format!(
        "_{}--{}._sub.{SERVICE_TYPE}",
        clean(&id.machine),
        clean(&id.version)
    )
}

/// The slot limit a server's TXT data gives it, by distcc 3.4's rules: `jobs=N` when N
/// is positive; `jobs` present but not positive (or not a number) means `cpus + 2`,
/// where `cpus` defaults to 1 and is at least 1; no `jobs` at all means 4.
pub fn limit_from_txt(txt: &[Vec<u8>]) -> u32 {
    let value = |key: &str| {
        txt.iter().rev().find_map(|entry| {
            let text = String::from_utf8_lossy(entry);
            let (k, v) = text.split_once('=').unwrap_or((&text, ""));
            (k == key).then(|| atoi(v))
        })
    };
    let cpus = value("cpus").map_or(1, |n| if n <= 0 { 1 } else { n });
    match value("jobs") {
        None => DEFAULT_JOBS,
        Some(n) if n <= 0 => u32::try_from(cpus.saturating_add(2)).unwrap_or(u32::MAX),
        Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
    }
}

/// C's `atoi`: optional leading whitespace and sign, then digits; anything else ends it,
/// and no digits at all is 0.
fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if negative {
        -n
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txt(entries: &[&str]) -> Vec<Vec<u8>> {
        entries.iter().map(|e| e.as_bytes().to_vec()).collect()
    }

    #[test]
    fn subtype_is_distccs() {
        let id = CcIdentity {
            version: "12".into(),
            machine: "x86_64-linux-gnu".into(),
        };
        assert_eq!(subtype(&id), "_x86-64-linux-gnu--12._sub._distcc._tcp");
        let odd = CcIdentity {
            version: "4.8.5".into(),
            machine: "ARM_Linux.GNUeabihf".into(),
        };
        assert_eq!(
            subtype(&odd),
            "_arm-linux-gnueabihf--4-8-5._sub._distcc._tcp"
        );
    }

    #[test]
    fn limits_follow_distcc_3_4() {
        // What a real distcc 3.4 wrote for these TXT sets (tests/zeroconf.rs checks it).
        assert_eq!(limit_from_txt(&txt(&["txtvers=1", "cpus=2", "jobs=3"])), 3);
        assert_eq!(limit_from_txt(&txt(&["cpus=5"])), 4);
        assert_eq!(limit_from_txt(&txt(&["cpus=5", "jobs=0"])), 7);
        assert_eq!(limit_from_txt(&txt(&[])), 4);
        assert_eq!(limit_from_txt(&txt(&["jobs=many"])), 3);
        assert_eq!(limit_from_txt(&txt(&["cpus=-4", "jobs=-1"])), 3);
        assert_eq!(limit_from_txt(&txt(&["jobs= 12abc"])), 12);
        assert_eq!(limit_from_txt(&txt(&["jobs=2", "jobs=6"])), 6);
        assert_eq!(limit_from_txt(&txt(&["jobs"])), 3);
    }

    #[test]
    fn atoi_is_cs() {
        assert_eq!(atoi("  42x"), 42);
        assert_eq!(atoi("-7"), -7);
        assert_eq!(atoi("+3"), 3);
        assert_eq!(atoi("x1"), 0);
        assert_eq!(atoi(""), 0);
        assert_eq!(atoi("99999999999999999999999"), i64::MAX);
    }
}
