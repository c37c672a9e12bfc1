//! How the bytes of a connection travel. [`Stream`] is what `conn` reads and writes: a
//! TCP socket, a UNIX socket, or a pair of pipes. [`Dialer`] is how a client gets one
//! for a host: a TCP connect, directly or through a SOCKSv5 proxy (`socks`; Gentoo's
//! network-sandbox), or an ssh child that runs the server in `--inetd` mode (`ssh`;
//! `user@host` hosts). A server gets one from its listener, or with `--inetd` from
//! its standard input and output ([`Stream::take_stdio`]).
//!
//! Timeouts behave alike on every kind: a socket's own (`SO_RCVTIMEO`,
//! `SO_SNDTIMEO`), `poll` on pipes. A read or write that timed out fails with
//! `WouldBlock`, as a socket's does. Besides the SOCKS handshake (a few bytes before
//! any distcc byte), nothing here reads the protocol: that is `conn`'s.

pub mod socks;
pub mod ssh;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use socks::Proxy;
pub use ssh::{SshCommand, Tunnel};

/// One connection's byte stream, either way.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    /// The socketpair to an ssh child, a SOCKS proxy's UNIX socket, or a UNIX socket
    /// on `--inetd`'s standard input.
    Unix(UnixStream),
    /// What sshd gives the command it runs: one pipe in, another out.
    Pipes(Pipes),
}

/// Two descriptors, one each way. They stay in blocking mode (their file status is
/// shared with whoever else holds them); reads wait in `poll` first, and writes go in
/// pieces a pipe that `poll` calls writable always takes whole.
#[derive(Debug)]
pub struct Pipes {
    input: OwnedFd,
    /// `None` once shut down for writing.
    output: Option<OwnedFd>,
    /// Milliseconds; [`NO_TIMEOUT`] for none.
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
}

const NO_TIMEOUT: u64 = u64::MAX;
/// At most what one write to a pipe that `poll` calls writable takes without blocking.
const PIPE_CHUNK: usize = libc::PIPE_BUF;

/// Who is at the other end, for the allow list and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Addr(SocketAddr),
    /// No network address: pipes or a UNIX socket (`--inetd` under sshd). Always
    /// allowed, as by distccd, and shown as distccd shows it.
    Local,
}

impl Peer {
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Peer::Addr(a) => Some(a.ip()),
            Peer::Local => None,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Addr(a) => write!(f, "{a}"),
            Peer::Local => write!(f, "NOTSOCKET"),
        }
    }
}

impl Stream {
    /// The connection `--inetd` serves, from file descriptors 0 and 1: one socket (as
    /// inetd passes it), or two pipes (as sshd passes them). Both descriptors are then
    /// pointed at `/dev/null`, so that neither a compiler nor a stray print can read or
    /// write the protocol stream.
    pub fn take_stdio() -> io::Result<Stream> {
        let input = dup_cloexec(0)?;
        let stream = if socket_family(input.as_raw_fd()).is_some() && same_file(0, 1) {
            socket_stream(input)
        } else {
            Stream::Pipes(Pipes::new(input, dup_cloexec(1)?))
        };
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        for fd in [0, 1] {
            // SAFETY: dup2 onto a standard descriptor; `null` stays open for the call.
            if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(stream)
    }

    pub fn peer(&self) -> Peer {
        match self {
            Stream::Tcp(s) => s.peer_addr().map_or(Peer::Local, Peer::Addr),
            Stream::Unix(_) | Stream::Pipes(_) => Peer::Local,
        }
    }

    /// Small packets must not wait for Nagle (TCP only; the others do not batch).
    pub fn set_nodelay(&self) {
        if let Stream::Tcp(s) = self {
            let _ = s.set_nodelay(true);
        }
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Pipes(p) => {
                p.read_timeout.store(millis(t), Ordering::Relaxed);
                Ok(())
            }
        }
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(t),
            Stream::Unix(s) => s.set_write_timeout(t),
            Stream::Pipes(p) => {
                p.write_timeout.store(millis(t), Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Tells the peer nothing more will be written; reading goes on.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
            Stream::Pipes(p) => {
                p.output = None;
                Ok(())
            }
        }
    }

    /// Reads whatever has arrived without waiting, and drops it (until none is left).
    pub fn drain_nonblocking(&self) {
        let mut scratch = [0u8; 4096];
        while self.readable_now() {
            if !matches!((&mut &*self).read(&mut scratch), Ok(n) if n > 0) {
                break;
            }
        }
    }

    fn readable_now(&self) -> bool {
        matches!(poll_one(self.read_fd(), libc::POLLIN, Some(Duration::ZERO)), Ok(r) if r & libc::POLLIN != 0)
    }

    /// The descriptor bytes arrive on.
    pub fn read_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Pipes(p) => p.input.as_raw_fd(),
        }
    }

    /// Sends up to `count` bytes of `file` from `offset` (advanced) without copying
    /// them through user memory (`sendfile(2)`), under the write timeout.
    pub fn send_file_chunk(
        &self,
        file: &std::fs::File,
        offset: &mut libc::off_t,
        count: usize,
    ) -> io::Result<usize> {
        let (fd, count) = match self {
            Stream::Tcp(s) => (s.as_raw_fd(), count),
            Stream::Unix(s) => (s.as_raw_fd(), count),
            Stream::Pipes(p) => {
                let fd = p.writable()?;
                (fd, count.min(PIPE_CHUNK))
            }
        };
        // SAFETY: both descriptors are open for the call; `offset` is a live local.
        let n = unsafe { libc::sendfile(fd, file.as_raw_fd(), offset, count) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// True when the peer closed its end or the connection broke. Bytes waiting to be
    /// read are not a disconnect (and are left alone).
    pub fn peer_closed(&self) -> bool {
        match self {
            Stream::Tcp(s) => socket_peer_closed(s.as_raw_fd()),
            Stream::Unix(s) => socket_peer_closed(s.as_raw_fd()),
            Stream::Pipes(p) => p.peer_closed(),
        }
    }

    /// Bytes the kernel received on this connection (`TCP_INFO`); 0 where it cannot
    /// say (not TCP, or a kernel before 4.1).
    pub fn bytes_received(&self) -> u64 {
        let Stream::Tcp(s) = self else {
            return 0;
        };
        // SAFETY: an all-zero tcp_info is a valid value for getsockopt to overwrite.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: `info` and `len` are valid, writable and describe the same storage.
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        let needed = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_received) + 8;
        if rc == 0 && len as usize >= needed {
            info.tcpi_bytes_received
        } else {
            0
        }
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            Stream::Tcp(s) => (&mut &*s).read(buf),
            Stream::Unix(s) => (&mut &*s).read(buf),
            Stream::Pipes(p) => p.read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match *self {
            Stream::Tcp(s) => (&mut &*s).write(buf),
            Stream::Unix(s) => (&mut &*s).write(buf),
            Stream::Pipes(p) => p.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Pipes {
    fn new(input: OwnedFd, output: OwnedFd) -> Pipes {
        Pipes {
            input,
            output: Some(output),
            read_timeout: AtomicU64::new(NO_TIMEOUT),
            write_timeout: AtomicU64::new(NO_TIMEOUT),
        }
    }

    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let timeout = duration(self.read_timeout.load(Ordering::Relaxed));
        let fd = self.input.as_raw_fd();
        if poll_one(fd, libc::POLLIN, timeout)? == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        loop {
            // SAFETY: `buf` is valid for writes of its length for the call.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let fd = self.writable()?;
        let piece = &buf[..buf.len().min(PIPE_CHUNK)];
        loop {
            // SAFETY: `piece` is valid for reads of its length for the call.
            let n = unsafe { libc::write(fd, piece.as_ptr().cast(), piece.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// The output descriptor once `poll` says it takes a write, within the timeout.
    fn writable(&self) -> io::Result<RawFd> {
        let Some(out) = &self.output else {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the connection was shut down for writing",
            ));
        };
        let timeout = duration(self.write_timeout.load(Ordering::Relaxed));
        // POLLERR (the reader is gone) also ends the wait: the write then says EPIPE.
        if poll_one(out.as_raw_fd(), libc::POLLOUT, timeout)? == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(out.as_raw_fd())
    }

    fn peer_closed(&self) -> bool {
        let input = poll_one(self.input.as_raw_fd(), libc::POLLIN, Some(Duration::ZERO));
        let hung_up = match input {
            Ok(r) => r & (libc::POLLHUP | libc::POLLERR) != 0 && r & libc::POLLIN == 0,
            Err(_) => true,
        };
        let output_gone = self.output.as_ref().is_some_and(|o| {
            matches!(poll_one(o.as_raw_fd(), 0, Some(Duration::ZERO)),
                Ok(r) if r & (libc::POLLERR | libc::POLLHUP) != 0)
        });
        hung_up || output_gone
    }
}

/// How a client reaches one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    Tcp {
        host: &'a str,
        port: u16,
    },
    /// `[user]@host[:command]`: the server started by ssh in `--inetd` mode.
    Ssh {
        user: Option<&'a str>,
        host: &'a str,
        command: Option<&'a str>,
    },
}

impl Route<'_> {
    /// The host name, as the monitor shows it.
    pub fn host(&self) -> &str {
        match self {
            Route::Tcp { host, .. } | Route::Ssh { host, .. } => host,
        }
    }
}

/// What the environment says about reaching hosts.
#[derive(Debug, Clone, Default)]
pub struct Dialer {
    /// `DISTCC_SSH`: the ssh program and its extra words, for ssh hosts.
    pub ssh: SshCommand,
    /// `DISTCC_SOCKS_PROXY`: every TCP connection goes through this proxy. An `Err` is
    /// a value that cannot be used: each connection fails with it, as in distcc.
    pub socks: Option<Result<Proxy, String>>,
}

/// An open connection to a host, and the ssh child carrying it, if any.
#[derive(Debug)]
pub struct Link {
    pub stream: Stream,
    pub tunnel: Option<Tunnel>,
}

impl Dialer {
    /// From the raw `DISTCC_SSH` and `DISTCC_SOCKS_PROXY` values (an empty proxy
    /// value counts as unset).
    pub fn new(ssh: Option<&str>, socks: Option<&str>) -> Dialer {
        Dialer {
            ssh: SshCommand::parse(ssh),
            socks: socks
                .filter(|v| !v.trim().is_empty())
                .map(|v| Proxy::parse(v.trim())),
        }
    }

    /// Opens a connection along `route`; `timeout` bounds a TCP connect and a proxy's
    /// handshake (an ssh child's own connecting shows later, in its first answer).
    pub fn open(&self, route: Route<'_>, timeout: Duration) -> Result<Link, String> {
        match route {
            Route::Tcp { host, port } => Ok(Link {
                stream: self.tcp(host, port, timeout)?,
                tunnel: None,
            }),
            Route::Ssh {
                user,
                host,
                command,
            } => {
                let (stream, tunnel) = self.ssh.start(user, host, command)?;
                Ok(Link {
                    stream,
                    tunnel: Some(tunnel),
                })
            }
        }
    }

    /// A TCP connection to `host:port`, through the SOCKS proxy when one is set.
    pub fn tcp(&self, host: &str, port: u16, timeout: Duration) -> Result<Stream, String> {
        match &self.socks {
            None => connect_tcp(host, port, timeout).map(Stream::Tcp),
            Some(Ok(proxy)) => proxy.connect(host, port, timeout),
            Some(Err(why)) => Err(why.clone()),
        }
    }

    /// How `route` is reached, for `--check-hosts`.
    pub fn describe(&self, route: Route<'_>) -> String {
        match (route, &self.socks) {
            (Route::Tcp { .. }, None) => "TCP".into(),
            (Route::Tcp { .. }, Some(Ok(proxy))) => {
                format!("TCP through the SOCKS proxy {proxy} (DISTCC_SOCKS_PROXY)")
            }
            (Route::Tcp { .. }, Some(Err(why))) => why.clone(),
            (
                Route::Ssh {
                    user,
                    host,
                    command,
                },
                _,
            ) => format!(
                "ssh: {}",
                shell_words::join(self.ssh.argv(user, host, command))
            ),
        }
    }
}

/// Connects to the first address of `host` that answers within `timeout`.
pub fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(format!("{addr}: {e}")),
        }
    }
    Err(last.unwrap_or_else(|| format!("{host} has no address")))
}

fn millis(t: Option<Duration>) -> u64 {
    // Zero would mean "do not wait" to poll but "forever" to a socket: never either.
    t.map_or(NO_TIMEOUT, |d| {
        (d.as_millis() as u64).clamp(1, NO_TIMEOUT - 1)
    })
}

fn duration(ms: u64) -> Option<Duration> {
    (ms != NO_TIMEOUT).then(|| Duration::from_millis(ms))
}

/// `poll(2)` on one descriptor; the events that happened (0: timed out).
fn poll_one(fd: RawFd, events: libc::c_short, timeout: Option<Duration>) -> io::Result<i16> {
    let ms = timeout.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as i32);
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, for the duration of the call.
        let rc = unsafe { libc::poll(&mut p, 1, ms) };
        if rc >= 0 {
            return Ok(if rc == 0 { 0 } else { p.revents });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn socket_peer_closed(fd: RawFd) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: recv writes at most one byte into `byte`, which outlives the call.
    let n = unsafe {
        libc::recv(
            fd,
            byte.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => true,
        n if n > 0 => false,
        _ => !matches!(
            io::Error::last_os_error().kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        ),
    }
}

fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) returns a new descriptor or -1.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// The address family of a socket descriptor; `None` if it is not a socket.
fn socket_family(fd: RawFd) -> Option<libc::c_int> {
    // SAFETY: an all-zero sockaddr_storage is valid storage for getsockname.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` and `len` describe the same writable storage.
    let rc = unsafe {
        libc::getsockname(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(libc::c_int::from(addr.ss_family))
}

fn socket_stream(fd: OwnedFd) -> Stream {
    match socket_family(fd.as_raw_fd()) {
        Some(libc::AF_UNIX) => Stream::Unix(UnixStream::from(fd)),
        _ => Stream::Tcp(TcpStream::from(fd)),
    }
}

/// Whether two descriptors are the same open file (inetd passes one socket as 0, 1, 2).
fn same_file(a: RawFd, b: RawFd) -> bool {
    let stat = |fd: RawFd| {
        // SAFETY: an all-zero stat is valid storage for fstat.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is writable storage of the right type.
        (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
    };
    matches!((stat(a), stat(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both are fresh descriptors owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    /// A `Pipes` stream and the far ends: what it writes, and what it reads.
    fn pipes() -> (Stream, std::fs::File, std::fs::File) {
        let (in_r, in_w) = pipe();
        let (out_r, out_w) = pipe();
        let stream = Stream::Pipes(Pipes::new(in_r, out_w));
        (
            stream,
            std::fs::File::from(out_r),
            std::fs::File::from(in_w),
        )
    }

    #[test]
    fn pipes_carry_bytes_both_ways_and_time_out_like_a_socket() {
        let (stream, mut from_stream, mut to_stream) = pipes();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut buf = [0u8; 16];
        let e = (&stream).read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        to_stream.write_all(b"hello").unwrap();
        assert_eq!((&stream).read(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        // More than a pipe holds: the writer waits for the reader, in pieces.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            from_stream.read_to_end(&mut got).unwrap();
            got
        });
        (&stream).write_all(&big).unwrap();
        let mut stream = stream;
        stream.shutdown_write().unwrap();
        assert!((&stream).write(b"x").is_err(), "shut down for writing");
        assert_eq!(reader.join().unwrap(), big);
        assert!(!stream.peer_closed(), "its writer is still there");
        drop(to_stream);
        assert!(stream.peer_closed());
    }

    #[test]
    fn a_full_pipe_times_out_the_writer() {
        let (stream, _from_stream, _to_stream) = pipes();
        stream
            .set_write_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let e = (&stream).write_all(&vec![0u8; 1 << 20]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn pipes_tell_a_closed_peer_from_pending_bytes() {
        let (stream, _from_stream, mut to_stream) = pipes();
        assert!(!stream.peer_closed());
        to_stream.write_all(b"x").unwrap();
        drop(to_stream);
        assert!(!stream.peer_closed(), "a byte is still waiting");
        let mut buf = [0u8; 4];
        assert_eq!((&stream).read(&mut buf).unwrap(), 1);
        assert!(stream.peer_closed());
        assert_eq!((&stream).read(&mut buf).unwrap(), 0);

        // The far end that reads what the stream writes goes away: closed too.
        let (stream, from_stream, _to_stream) = pipes();
        drop(from_stream);
        assert!(stream.peer_closed());
        assert_eq!(
            (&stream).write(b"x").unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }

    #[test]
    fn proxy_values_as_gentoos_distcc_reads_them() {
        let d = Dialer::new(None, Some("  "));
        assert!(d.socks.is_none(), "empty counts as unset");
        let d = Dialer::new(Some("ssh -p 2222"), Some("/run/portage.net.sock"));
        assert_eq!(d.ssh.argv(None, "h", None)[..3], ["ssh", "-p", "2222"]);
        assert!(matches!(d.socks, Some(Ok(Proxy::Unix(_)))));
        assert!(d
            .describe(Route::Tcp { host: "h", port: 1 })
            .contains("/run/portage.net.sock"));
    }
}
