//! Blocking line I/O with the agent over its UNIX socket, for the client side: sends
//! that never raise SIGPIPE, and answer lines read against a deadline. What the lines
//! say is `wire.rs`'s; which requests to send is `client.rs`'s.

use std::io::{self, Read};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use super::wire;

/// One `send` without SIGPIPE: a peer that went away is an error, not a signal.
pub(super) fn send_some(stream: &UnixStream, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`; the fd is owned by `stream`.
    let n = unsafe {
        libc::send(
            stream.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

pub(super) fn send_all(stream: &UnixStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match send_some(stream, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads the agent's answer lines from a blocking stream.
pub(super) struct LineReader<'a> {
    stream: &'a UnixStream,
    buf: Vec<u8>,
    /// When set, reads end at this instant (the stream's read timeout is kept in step).
    deadline: Option<Instant>,
}

impl LineReader<'_> {
    pub(super) fn new(stream: &UnixStream, deadline: Option<Instant>) -> LineReader<'_> {
        LineReader {
            stream,
            buf: Vec::new(),
            deadline,
        }
    }

    /// Sets the stream's read timeout to what is left until the deadline.
    fn arm(&self) -> io::Result<()> {
        let Some(d) = self.deadline else {
            return Ok(());
        };
        let left = d.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))
    }

    /// The next line. A read timeout (set on the stream) comes back as `WouldBlock` or
    /// `TimedOut`; the agent closing comes back as `UnexpectedEof`.
    pub(super) fn next_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=end).collect();
                return wire::line_text(&raw)
                    .map(str::to_string)
                    .map_err(|why| io::Error::new(io::ErrorKind::InvalidData, why));
            }
            if self.buf.len() > wire::MAX_LINE + 1 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "agent: line too long",
                ));
            }
            let mut chunk = [0u8; 4096];
            // Re-armed on every read: a signal restarts the read with what is left.
            self.arm()?;
            match (&mut &*self.stream).read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the agent closed the connection",
                    ))
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

pub(super) fn protocol_error(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
