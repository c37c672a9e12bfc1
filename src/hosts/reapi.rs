//! The grammar of a REAPI engine in the host list:
//!
//! ```text
//! reapi://HOST:PORT[/INSTANCE][/LIMIT][,OPTION]...     plain gRPC
//! reapis://HOST[:PORT][/INSTANCE][/LIMIT][,OPTION]...  gRPC over TLS (port 443 by default)
//! ```
//!
//! `HOST` is a name, an IPv4 address or a bracketed IPv6 address. `INSTANCE` is the
//! REAPI instance name and may hold `/` (`main/linux`); a last segment of digits only
//! is the limit, as in distcc's `host/N` (so an instance named by digits alone needs
//! the limit after it: `/2024/8`). Options: `token=FILE` (a bearer token read from
//! FILE), `ca=FILE` (PEM certificates to check a TLS engine against, `reapis` only),
//! `down`. distcc has no such hosts: these tokens never reach its grammar. A token
//! that starts with a REAPI scheme but cannot be read is skipped with a warning that
//! says why, and the rest of the list is used.

use super::spec::{Res, Taken};
use super::{HostKind, HostSpec, DEFAULT_LIMIT};

/// A REAPI engine: where it is, which instance, and how to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReapiHost {
    /// Stored without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// The REAPI instance name; may be empty.
    pub instance: String,
    /// `reapis://`: gRPC over TLS.
    pub tls: bool,
    /// `,token=FILE`: the bearer token's file.
    pub token_file: Option<String>,
    /// `,ca=FILE`: PEM certificates to check the engine's against.
    pub ca_file: Option<String>,
}

impl ReapiHost {
    /// Where the engine is, as a spec names it: `reapi[s]://HOST:PORT[/INSTANCE]`
    /// (an IPv6 address in brackets), without the limit and options.
    pub fn address(&self) -> String {
        let scheme = if self.tls { "reapis" } else { "reapi" };
        let mut out = if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        };
        if !self.instance.is_empty() {
            out.push('/');
            out.push_str(&self.instance);
        }
        out
    }
}

/// The port of `reapis://` without one (HTTPS's).
pub const TLS_PORT: u16 = 443;

/// A REAPI host token, or `None` when `tok` is not one.
pub(super) fn host(tok: &str) -> Option<Res<Taken>> {
    let (tls, rest) = if let Some(rest) = tok.strip_prefix("reapi://") {
        (false, rest)
    } else if let Some(rest) = tok.strip_prefix("reapis://") {
        (true, rest)
    } else {
        return None;
    };
    Some(Ok(match read(tok, tls, rest) {
        Ok(spec) => Taken::Host(spec),
        Err(why) => Taken::Skipped(why),
    }))
}

fn read(tok: &str, tls: bool, rest: &str) -> Result<HostSpec, String> {
    let (main, options) = rest.split_once(',').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let (host, port) = authority_of(authority, tls)?;
    let mut segments: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    let mut limit = DEFAULT_LIMIT;
    if let Some(last) = segments.last().filter(|s| is_digits(s)) {
        limit = last
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("bad limit \"{last}\" (a number from 1)"))?;
        segments.pop();
    }
    let instance = segments.join("/");
    if segments.iter().any(|s| s.is_empty()) {
        return Err(format!("empty segment in the instance name \"{instance}\""));
    }
    let mut reapi = ReapiHost {
        host,
        port,
        instance,
        tls,
        token_file: None,
        ca_file: None,
    };
    let mut down = false;
    for opt in options.split(',').filter(|o| !o.is_empty()) {
        match opt.split_once('=') {
            Some(("token", file)) if !file.is_empty() => reapi.token_file = Some(file.into()),
            Some(("ca", file)) if !file.is_empty() && tls => reapi.ca_file = Some(file.into()),
            Some(("ca", _)) if !tls => {
                return Err("ca= is for TLS engines: write reapis://".into());
            }
            None if opt == "down" => down = true,
            _ => {
                return Err(format!(
                    "unknown option \"{opt}\" (REAPI hosts take token=FILE, ca=FILE, down)"
                ))
            }
        }
    }
    Ok(HostSpec {
        spec: tok.to_string(),
        kind: HostKind::Reapi(reapi),
        limit,
        lzo: false,
        cpp: false,
        down,
        auth: None,
    })
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `HOST[:PORT]` or `[V6][:PORT]`.
fn authority_of(s: &str, tls: bool) -> Result<(String, u16), String> {
    let (host, port) = if let Some(inner) = s.strip_prefix('[') {
        let (addr, after) = inner
            .split_once(']')
            .ok_or("missing ']' after the IPv6 address")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after ']'")?),
        };
        (addr, port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let valid = !host.is_empty()
        && !host.starts_with(['-', '.'])
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !valid {
        return Err(format!("\"{host}\" is not a host name or address"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("bad port \"{p}\" (1 to 65535)"))?,
        None if tls => TLS_PORT,
        None => return Err("reapi:// needs a port (reapi://HOST:PORT/INSTANCE)".into()),
    };
    Ok((host.to_string(), port))
}

/// The spec in canonical form (`reapi://h:9092/main/4,token=t`).
pub(super) fn canonical(r: &ReapiHost, limit: u32, down: bool) -> String {
    let mut out = r.address();
    out.push_str(&format!("/{limit}"));
    if let Some(t) = &r.token_file {
        out.push_str(&format!(",token={t}"));
    }
    if let Some(c) = &r.ca_file {
        out.push_str(&format!(",ca={c}"));
    }
    if down {
        out.push_str(",down");
    }
    out
}

/// `--show-hosts`' description of an engine, after `head` (`SPEC  host=H`).
pub(super) fn describe(mut out: String, r: &ReapiHost, spec: &HostSpec) -> String {
    out.push_str(&format!(
        " port={} limit={} transport={} instance={}",
        r.port,
        spec.limit,
        if r.tls { "reapi+tls" } else { "reapi" },
        if r.instance.is_empty() {
            "\"\""
        } else {
            &r.instance
        }
    ));
    if let Some(t) = &r.token_file {
        out.push_str(&format!(" token={t}"));
    }
    if let Some(c) = &r.ca_file {
        out.push_str(&format!(" ca={c}"));
    }
    if spec.down {
        out.push_str(" options=down");
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::hosts::{parse, HostKind, ReapiHost};

    fn one(text: &str) -> (ReapiHost, u32, bool) {
        let list = parse(text).unwrap();
        assert!(list.warnings.is_empty(), "{:?}", list.warnings);
        let h = &list.hosts[0];
        match &h.kind {
            HostKind::Reapi(r) => (r.clone(), h.limit, h.down),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn engines_are_read() {
        let (r, limit, _) = one("reapi://127.0.0.1:8980/main");
        assert_eq!(
            (r.host.as_str(), r.port, r.instance.as_str()),
            ("127.0.0.1", 8980, "main")
        );
        assert!(!r.tls);
        assert_eq!(limit, 4);
        let (r, limit, down) = one("reapis://farm.example/a/b/16,token=/t,ca=/ca.pem,down");
        assert_eq!((r.port, r.instance.as_str(), limit), (443, "a/b", 16));
        assert!(r.tls && down);
        assert_eq!(r.token_file.as_deref(), Some("/t"));
        assert_eq!(r.ca_file.as_deref(), Some("/ca.pem"));
        let (r, limit, _) = one("reapi://[::1]:9000/8");
        assert_eq!(
            (r.host.as_str(), r.instance.as_str(), limit),
            ("::1", "", 8)
        );
        let (r, limit, _) = one("reapi://h:1/2024/3");
        assert_eq!((r.instance.as_str(), limit), ("2024", 3));
    }

    #[test]
    fn canonical_form_reads_back() {
        for text in [
            "reapi://127.0.0.1:8980/main",
            "reapis://farm/a/b/16,token=/t,ca=/c,down",
            "reapi://[::1]:9000",
        ] {
            let list = parse(text).unwrap();
            let canon = list.hosts[0].canonical();
            let again = parse(&canon).unwrap();
            assert_eq!(again.hosts[0].kind, list.hosts[0].kind, "{canon}");
            assert_eq!(again.hosts[0].limit, list.hosts[0].limit);
        }
    }

    #[test]
    fn broken_engines_are_skipped_with_the_reason() {
        for (text, why) in [
            ("reapi://h/main", "needs a port"),
            ("reapi://h:0/x", "bad port"),
            ("reapi://h:99999", "bad port"),
            ("reapi:///x", "not a host name"),
            ("reapi://h:1/x/0", "bad limit"),
            ("reapi://h:1/a//b", "empty segment"),
            ("reapi://h:1,lzo", "unknown option \"lzo\""),
            ("reapi://h:1,ca=/c", "reapis://"),
            ("reapis://[::1", "missing ']'"),
        ] {
            let list = parse(&format!("{text} 10.0.0.1")).unwrap();
            assert_eq!(list.hosts.len(), 1, "{text}: only the other host is kept");
            let w = &list.warnings[0];
            assert_eq!(w.token, text);
            assert!(w.message.contains(why), "{text}: {}", w.message);
        }
    }
}
