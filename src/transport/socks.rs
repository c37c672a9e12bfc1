//! TCP connections through a SOCKSv5 proxy, the way out of Gentoo's network-sandbox.
//!
//! Portage (FEATURES `network-sandbox` with `distcc` or `network-sandbox-proxy`) runs
//! each build phase in a network namespace of its own, starts its SOCKSv5 server
//! (`socks5-server.py`) on a UNIX socket outside it
//! (`$PORTAGE_TMPDIR/portage/.portage.<pid>.net.sock`: a path, which reaches across
//! network namespaces), and sets `DISTCC_SOCKS_PROXY` (and `PORTAGE_SOCKS5_PROXY`) to
//! that path.
//! Gentoo's distcc patch (`distcc-3.2_rc1-socks5.patch`) reads the variable as an
//! absolute path to a UNIX socket, or `host[:port]` (port 1080 by default), and sends
//! each host as a domain name so that the proxy resolves it outside the sandbox. The
//! same here; only TCP hosts go through it, as there.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{connect_tcp, Stream};
use crate::protocol::socks::{self as wire, ConnectDecoder, MethodDecoder};

/// The SOCKS port when the value names none.
pub const DEFAULT_PORT: u16 = 1080;

/// Where the proxy listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proxy {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proxy::Unix(p) => write!(f, "{}", p.display()),
            Proxy::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Proxy::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl Proxy {
    /// `/path/to/socket`, `host`, `host:port` or `[v6]:port`, as Gentoo's distcc reads
    /// `DISTCC_SOCKS_PROXY` (the port after the last colon; brackets are also taken
    /// off an IPv6 address, which distcc cannot resolve with them).
    pub fn parse(text: &str) -> Result<Proxy, String> {
        if text.starts_with('/') {
            return Ok(Proxy::Unix(PathBuf::from(text)));
        }
        // `[v6]` or `[v6]:port`; else a colon of a bare IPv6 address is not a port's.
        let (host, port) = match text.strip_prefix('[').and_then(|t| t.split_once(']')) {
            Some((host, "")) => (host, None),
            Some((host, rest)) => (host, Some(rest.strip_prefix(':').unwrap_or(rest))),
            None => match text.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') => (host, Some(port)),
                _ => (text, None),
            },
        };
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| {
                format!("invalid proxy port \"{p}\" in DISTCC_SOCKS_PROXY={text}")
            })?,
        };
        if host.is_empty() {
            return Err(format!("no proxy host in DISTCC_SOCKS_PROXY={text}"));
        }
        Ok(Proxy::Tcp {
            host: host.to_owned(),
            port,
        })
    }

    /// A connection to `host:port` through the proxy, its handshake done within
    /// `timeout` (the proxy's own connect to the host included).
    pub fn connect(&self, host: &str, port: u16, timeout: Duration) -> Result<Stream, String> {
        let deadline = Instant::now() + timeout;
        let stream = match self {
            Proxy::Unix(path) => UnixStream::connect(path).map(Stream::Unix),
            Proxy::Tcp { host, port } => connect_tcp(host, *port, timeout)
                .map(Stream::Tcp)
                .map_err(std::io::Error::other),
        }
        .map_err(|e| format!("cannot reach the SOCKS proxy {self} (DISTCC_SOCKS_PROXY): {e}"))?;
        stream.set_nodelay();
        handshake(&stream, host, port, deadline)
            .map_err(|e| format!("through the SOCKS proxy {self}: {e}"))?;
        Ok(stream)
    }
}

fn handshake(stream: &Stream, host: &str, port: u16, deadline: Instant) -> Result<(), String> {
    let mut out = Vec::with_capacity(8 + host.len());
    wire::encode_greeting(&mut out);
    send(stream, &out, deadline)?;
    let mut method = MethodDecoder;
    if !receive(stream, deadline, |b| method.decode(b))? {
        return Err("the proxy accepts no connection without authentication".into());
    }
    out.clear();
    wire::encode_connect(host, port, &mut out).map_err(|e| e.to_string())?;
    send(stream, &out, deadline)?;
    let mut reply = ConnectDecoder;
    match receive(stream, deadline, |b| reply.decode(b))? {
        0 => Ok(()),
        code => Err(format!(
            "the proxy could not connect to {host}:{port}: {} (SOCKS reply {code})",
            wire::reply_meaning(code)
        )),
    }
}

fn send(stream: &Stream, bytes: &[u8], deadline: Instant) -> Result<(), String> {
    stream
        .set_write_timeout(Some(left(deadline)?))
        .map_err(|e| e.to_string())?;
    let mut w = stream;
    w.write_all(bytes).map_err(|e| {
        if is_timeout(&e) {
            "no answer from the proxy in time".to_owned()
        } else {
            format!("the proxy closed or failed: {e}")
        }
    })
}

/// Reads one byte at a time until `decode` has a whole answer: the proxy's answers
/// are a few bytes, and nothing after them may be taken from the connection.
fn receive<T>(
    stream: &Stream,
    deadline: Instant,
    mut decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, crate::protocol::Error>,
) -> Result<T, String> {
    let mut got = Vec::with_capacity(32);
    loop {
        if let Some((answer, _)) = decode(&got).map_err(|e| e.to_string())? {
            return Ok(answer);
        }
        stream
            .set_read_timeout(Some(left(deadline)?))
            .map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        match (&mut &*stream).read(&mut byte) {
            Ok(0) => return Err("the proxy closed the connection during its handshake".into()),
            Ok(_) => got.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(format!("reading the proxy's answer: {e}")),
        }
    }
}

fn left(deadline: Instant) -> Result<Duration, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err("no answer from the proxy in time (SWARMCC_CONNECT_TIMEOUT)".into())
    } else {
        Ok(left)
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_as_gentoos_distcc_reads_them() {
        let tcp = |host: &str, port| Proxy::Tcp {
            host: host.into(),
            port,
        };
        assert_eq!(
            Proxy::parse("/var/tmp/portage/.portage.42.net.sock").unwrap(),
            Proxy::Unix("/var/tmp/portage/.portage.42.net.sock".into())
        );
        assert_eq!(Proxy::parse("proxy").unwrap(), tcp("proxy", 1080));
        assert_eq!(
            Proxy::parse("10.0.0.1:9050").unwrap(),
            tcp("10.0.0.1", 9050)
        );
        assert_eq!(Proxy::parse("[::1]:9050").unwrap(), tcp("::1", 9050));
        assert_eq!(Proxy::parse("[::1]").unwrap(), tcp("::1", 1080));
        assert!(Proxy::parse("proxy:0").is_err());
        assert!(Proxy::parse("proxy:x")
            .unwrap_err()
            .contains("invalid proxy port"));
        assert!(Proxy::parse(":1080").is_err());
        assert_eq!(Proxy::parse("fe80::1").unwrap(), tcp("fe80::1", 1080));
        assert!(Proxy::parse("[::1]x").is_err());
        assert_eq!(tcp("::1", 5).to_string(), "[::1]:5");
    }
}
