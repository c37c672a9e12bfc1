//! The IP allow list (`--allow`, `--allow-private`): which peers may talk to the server.
//!
//! Pure matching of addresses against networks, plus parsing of the `ADDR[/BITS]` option
//! values (a host name is resolved once, when the option is parsed). Accepting and
//! closing connections is `server`'s job.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// What `--allow-private` adds (distcc's list, plus the `::1/128` that distcc 3.4 drops).
pub const PRIVATE_NETS: &[&str] = &[
    "192.168.0.0/16",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "127.0.0.0/8",
    "fe80::/10",
    "fc00::/7",
    "::1/128",
];

/// What a server started without any `--allow` serves: this machine only.
pub const LOOPBACK_NETS: &[&str] = &["127.0.0.0/8", "::1/128"];

/// A set of networks. An empty list allows nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<IpNet>,
}

impl AllowList {
    pub fn new(nets: Vec<IpNet>) -> Self {
        AllowList { nets }
    }

    /// 127.0.0.0/8 and ::1.
    pub fn loopback() -> Self {
        AllowList::new(LOOPBACK_NETS.iter().map(|n| fixed(n)).collect())
    }

    /// The `--allow-private` networks.
    pub fn private_nets() -> Vec<IpNet> {
        PRIVATE_NETS.iter().map(|n| fixed(n)).collect()
    }

    pub fn push(&mut self, nets: impl IntoIterator<Item = IpNet>) {
        for net in nets {
            if !self.nets.contains(&net) {
                self.nets.push(net);
            }
        }
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `peer` is in one of the networks. An IPv4-mapped IPv6 peer
    /// (`::ffff:a.b.c.d`, which is how a dual-stack listener sees IPv4 clients) also
    /// matches IPv4 entries.
    pub fn allows(&self, peer: IpAddr) -> bool {
        let mapped = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.nets
            .iter()
            .any(|net| net.contains(&peer) || mapped.is_some_and(|v4| net.contains(&v4)))
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nets.is_empty() {
            return f.write_str("(nobody)");
        }
        for (i, net) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

fn fixed(text: &str) -> IpNet {
    text.parse().expect("built-in network literal")
}

/// Parses one `--allow` value: `ADDR`, `ADDR/BITS`, or a host name (optionally with
/// `/BITS`), which is resolved now and contributes each of its addresses. No bits means
/// the full address length. Host bits under the mask are ignored, as distcc does.
pub fn parse_allow(text: &str) -> Result<Vec<IpNet>, String> {
    let (host, bits) = match text.rsplit_once('/') {
        Some((host, bits)) => {
            let bits: u8 = bits.parse().map_err(|_| {
                format!("bad --allow value {text:?}: {bits:?} is not a mask length")
            })?;
            (host, Some(bits))
        }
        None => (text, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("bad --allow value {text:?}: expected ADDR[/BITS]"));
    }
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => {
            let resolved = (host, 0)
                .to_socket_addrs()
                .map_err(|e| format!("bad --allow value {text:?}: cannot resolve {host}: {e}"))?;
            let mut v: Vec<IpAddr> = resolved.map(|a| a.ip()).collect();
            v.dedup();
            v
        }
    };
    if addrs.is_empty() {
        return Err(format!("bad --allow value {text:?}: {host} has no address"));
    }
    addrs
        .into_iter()
        .map(|ip| net_of(ip, bits).map_err(|why| format!("bad --allow value {text:?}: {why}")))
        .collect()
}

fn net_of(ip: IpAddr, bits: Option<u8>) -> Result<IpNet, String> {
    Ok(match ip {
        IpAddr::V4(a) => IpNet::V4(
            Ipv4Net::new(a, bits.unwrap_or(32))
                .map_err(|_| "an IPv4 mask is at most 32 bits".to_owned())?
                .trunc(),
        ),
        IpAddr::V6(a) => IpNet::V6(
            Ipv6Net::new(a, bits.unwrap_or(128))
                .map_err(|_| "an IPv6 mask is at most 128 bits".to_owned())?
                .trunc(),
        ),
    })
}

/// The address as people write it: an IPv4-mapped IPv6 address is shown as IPv4.
pub fn display_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// True for 127.0.0.0/8 and ::1 (also in their IPv4-mapped form).
pub fn is_loopback(ip: IpAddr) -> bool {
    match display_ip(ip) {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a == Ipv6Addr::LOCALHOST,
    }
}

/// The unspecified IPv4 address, for messages and defaults.
pub const ANY_V4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        let mut l = AllowList::default();
        for e in entries {
            l.push(parse_allow(e).unwrap());
        }
        l
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_entries_and_masks() {
        let l = list(&["10.1.2.3/8", "192.168.5.7"]);
        assert!(l.allows(ip("10.200.0.1")));
        assert!(!l.allows(ip("11.0.0.1")));
        assert!(l.allows(ip("192.168.5.7")));
        assert!(!l.allows(ip("192.168.5.8")));
    }

    #[test]
    fn ipv4_entry_matches_mapped_peer_distcc_issue_443() {
        let l = list(&["127.0.0.1"]);
        assert!(l.allows(ip("::ffff:127.0.0.1")));
        assert!(!l.allows(ip("::ffff:127.0.0.2")));
        // ::1 is not 0.0.0.1 in disguise.
        assert!(!list(&["0.0.0.1"]).allows(ip("::1")));
    }

    #[test]
    fn ipv6_entries() {
        let l = list(&["fe80::/10", "::1"]);
        assert!(l.allows(ip("fe80::1234")));
        assert!(l.allows(ip("::1")));
        assert!(!l.allows(ip("2001:db8::1")));
        assert!(!l.allows(ip("127.0.0.1")));
    }

    #[test]
    fn private_includes_ipv6_loopback() {
        let l = AllowList::new(AllowList::private_nets());
        assert!(l.allows(ip("::1")));
        assert!(l.allows(ip("172.31.255.255")));
        assert!(!l.allows(ip("172.32.0.0")));
        assert!(!l.allows(ip("8.8.8.8")));
    }

    #[test]
    fn loopback_default() {
        let l = AllowList::loopback();
        assert!(l.allows(ip("127.0.0.1")));
        assert!(l.allows(ip("127.9.9.9")));
        assert!(l.allows(ip("::1")));
        assert!(l.allows(ip("::ffff:127.0.0.1")));
        assert!(!l.allows(ip("192.168.1.1")));
        assert_eq!(l.to_string(), "127.0.0.0/8, ::1/128");
    }

    #[test]
    fn bad_values() {
        assert!(parse_allow("10.0.0.0/33").is_err());
        assert!(parse_allow("::/129").is_err());
        assert!(parse_allow("10.0.0.0/x").is_err());
        assert!(parse_allow("/8").is_err());
        assert!(parse_allow("no-such-host.invalid").is_err());
    }

    #[test]
    fn host_names_resolve() {
        let nets = parse_allow("localhost").unwrap();
        assert!(AllowList::new(nets).allows(ip("127.0.0.1")));
    }

    #[test]
    fn empty_list_allows_nobody() {
        assert!(!AllowList::default().allows(ip("127.0.0.1")));
    }

    #[test]
    fn mapped_peers_are_shown_as_ipv4() {
        assert_eq!(display_ip(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert!(is_loopback(ip("::ffff:127.0.0.1")));
        assert!(!is_loopback(ip("10.0.0.1")));
    }
}
